//! Credentials whose key is in Azure Key Vault (SPEC §12 `key_vault`), against the Key Vault
//! and IMDS test double of `tests/support/keyvault.rs` (real HTTPS, real RSA signatures).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::support::keyvault::VaultDouble;
use crate::support::upstream::{ok_answer, FakeUpstream};
use crate::support::*;

async fn double(setup: &Setup) -> VaultDouble {
    VaultDouble::start(setup.dir.path("signing-key.pem")).await
}

#[tokio::test]
async fn assertions_signed_in_the_vault_get_tokens_from_the_embedded_idp() {
    let setup = Setup::new();
    let vault = double(&setup).await;
    let setup = setup
        .credential(&format!(
            "[credentials.dev]\ncert = \"signing.pem\"\n{}\n\n[credentials.ps]\ncert = \"signing.pem\"\nalg = \"PS256\"\n{}\n",
            vault.credential(""),
            vault.credential("")
        ))
        .only_clients(&format!(
            "{}\n[[clients]]\nclient_id = \"{SELF_SIGNED_CLIENT}\"\nupstream = \"dev\"\ncredential = \"ps\"\ntoken_endpoint_auth_method = \"self_signed_tls_client_auth\"\nself_signed_certs = [\"selfsigned.pem\"]\n",
            pki_client_with("")
        ));
    let h = setup.start().await;
    for _ in 0..3 {
        let answer = h.token(Some("client"), &form(PKI_CLIENT)).await;
        assert_eq!(
            answer.status,
            200,
            "{}",
            String::from_utf8_lossy(&answer.body)
        );
    }
    let ps = h.token(Some("selfsigned"), &form(SELF_SIGNED_CLIENT)).await;
    assert_eq!(
        ps.status,
        200,
        "PS256: {}",
        String::from_utf8_lossy(&ps.body)
    );
    // The embedded IdP checks jti, so nothing is reused there: one signature per request;
    // one vault token (from IMDS) per credential, reused for its signatures.
    assert_eq!(vault.state.signatures.load(Ordering::SeqCst), 4);
    assert_eq!(vault.state.imds_calls.load(Ordering::SeqCst), 2);
    let logs = logs();
    for t in vault.state.tokens.lock().unwrap().iter() {
        assert!(!logs.contains(t.as_str()), "a vault token was logged");
    }
    h.stop().await;
}

#[tokio::test]
async fn with_an_entra_upstream_ten_requests_cost_one_signature() {
    let upstream = FakeUpstream::start(ok_answer()).await;
    let setup = Setup::new();
    let vault = double(&setup).await;
    let setup = setup
        .upstream(&format!(
            "[upstreams.dev]\ntype = \"entra\"\nauthority = \"https://127.0.0.1:{}\"\ntenant = \"contoso.onmicrosoft.com\"\nca = [\"ca1.pem\"]\n",
            upstream.addr.port()
        ))
        .credential(&format!("[credentials.dev]\ncert = \"signing.pem\"\n{}\n", vault.credential("")))
        .only_clients(&pki_client_with(""));
    let h = setup.start().await;
    for answer in tokens_at_once(&[h.url("/token")], 10).await {
        assert_eq!(answer.status, 200);
    }
    assert_eq!(upstream.forms().len(), 10);
    let signatures = vault.state.signatures.load(Ordering::SeqCst);
    assert!(
        (1..=2).contains(&signatures),
        "{signatures} signatures for 10 requests"
    );
    h.stop().await;
}

#[tokio::test]
async fn a_throttled_vault_gives_503_at_once_and_serving_resumes_by_itself() {
    let setup = Setup::new();
    let vault = double(&setup).await;
    let setup = setup
        .credential(&format!(
            "[credentials.dev]\ncert = \"signing.pem\"\n{}\n",
            vault.credential(", sign_timeout = \"1s\"")
        ))
        .only_clients(&pki_client_with(""));
    let h = setup.start().await;
    assert_eq!(h.token(Some("client"), &form(PKI_CLIENT)).await.status, 200);
    vault.state.throttle.store(true, Ordering::SeqCst);
    let started = Instant::now();
    let refused = h.token(Some("client"), &form(PKI_CLIENT)).await;
    assert_error(&refused, 503, "temporarily_unavailable");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "not within sign_timeout"
    );
    assert_eq!(refused.header("retry-after"), Some("2"));
    // While Retry-After runs, no sign call is made.
    let again = h.token(Some("client"), &form(PKI_CLIENT)).await;
    assert_error(&again, 503, "temporarily_unavailable");
    assert_eq!(vault.state.throttled.load(Ordering::SeqCst), 1);
    vault.state.throttle.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let answer = h.token(Some("client"), &form(PKI_CLIENT)).await;
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    // Two throttled requests (one 429 from the vault, one refused locally), two signatures.
    let metrics = http_get(&h.admin_url("/metrics")).await.1;
    let sample = |result: &str| {
        format!("mtls_gateway_signatures_total{{credential=\"dev\",backend=\"key_vault\",result=\"{result}\"}}")
    };
    assert_metric(&metrics, &sample("throttled"), 2.0);
    assert_metric(&metrics, &sample("success"), 2.0);
    h.stop().await;
}

#[tokio::test]
async fn the_vault_token_comes_from_aks_workload_identity() {
    let setup = Setup::new();
    let vault = double(&setup).await;
    *vault.state.federated_token.lock().unwrap() = Some("projected.sa.token".into());
    setup
        .dir
        .write("azure-identity-token", "projected.sa.token\n");
    let setup = setup
        .credential(&format!(
            "[credentials.dev]\ncert = \"signing.pem\"\nkey_vault = {{ url = \"https://localhost:{}\", key = \"k\", identity = \"workload\", ca = [\"ca1.pem\"] }}\n",
            vault.vault.port()
        ))
        .only_clients(&pki_client_with(""));
    let config = setup.write();
    let mut served = crate::support::process::Served::command(
        std::process::Command::new(env!("CARGO_BIN_EXE_mtls-gateway"))
            .env("AZURE_CLIENT_ID", "00000000-0000-0000-0000-0000000000bb")
            .env("AZURE_TENANT_ID", "72f988bf-86f1-41af-91ab-2d7cd011db47")
            .env(
                "AZURE_FEDERATED_TOKEN_FILE",
                setup.dir.path("azure-identity-token"),
            )
            .env(
                "AZURE_AUTHORITY_HOST",
                format!("https://localhost:{}", vault.vault.port()),
            )
            .args(["--log-format", "json", "serve", "-c"])
            .arg(&config),
    );
    let addr = served.addr("mTLS listener ready");
    for _ in 0..2 {
        let answer = client_for(Some("client"), false)
            .post_form(
                &format!("https://localhost:{}/token", addr.port()),
                &form(PKI_CLIENT),
            )
            .await
            .unwrap();
        assert_eq!(
            answer.status,
            200,
            "{}",
            String::from_utf8_lossy(&answer.body)
        );
    }
    assert_eq!(
        vault.state.workload_calls.load(Ordering::SeqCst),
        1,
        "the vault token is cached"
    );
    assert_eq!(vault.state.imds_calls.load(Ordering::SeqCst), 0);
    assert_eq!(vault.state.signatures.load(Ordering::SeqCst), 2);
    served.signal("TERM");
    served.wait_exit();
    let log = served.seen().join("\n");
    for t in vault.state.tokens.lock().unwrap().iter() {
        assert!(!log.contains(t.as_str()), "a vault token was logged");
    }
    assert!(!log.contains("projected.sa.token"));
}

#[tokio::test]
async fn check_signs_a_test_assertion_in_the_vault_and_names_a_missing_permission() {
    let setup = Setup::new();
    let vault = double(&setup).await;
    let setup = setup
        .credential(&format!(
            "[credentials.dev]\ncert = \"signing.pem\"\n{}\n",
            vault.credential("")
        ))
        .only_clients(&pki_client_with(""));
    let config = setup.write();
    let check = |config: std::path::PathBuf| async move {
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_mtls-gateway"))
                .args(["check", "-c"])
                .arg(&config)
                .output()
                .unwrap()
        })
        .await
        .unwrap()
    };
    let ok = check(config.clone()).await;
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(vault.state.signatures.load(Ordering::SeqCst), 1);
    vault.state.forbid.store(true, Ordering::SeqCst);
    let refused = check(config).await;
    let text = String::from_utf8_lossy(&refused.stderr).into_owned();
    assert_eq!(refused.status.code(), Some(1), "{text}");
    assert!(text.contains("credentials.dev.key_vault"), "{text}");
    for t in vault.state.tokens.lock().unwrap().iter() {
        assert!(!text.contains(t.as_str()));
    }
}
