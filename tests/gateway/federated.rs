//! Entra workload identity federation (SPEC §12 `federated_token_file`): the gateway sends a
//! projected service-account token as the client assertion; the embedded identity provider
//! accepts it as Entra does for a matching federated credential. The tokens are made with an
//! independent JWT library and an RSA key of the test PKI.

use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::PrivateKeyDer;
use serde_json::json;

use crate::support::*;

const ISSUER: &str = "https://oidc.aks.test/6f1c1a8e/";
const SUBJECT: &str = "system:serviceaccount:billing:legacy";

/// The "cluster's" JWKS, from the test key `signing2`.
fn jwks() -> String {
    let pem = pki().get("signing2");
    let key = match PrivateKeyDer::from_pem_slice(pem.key.as_bytes()).unwrap() {
        PrivateKeyDer::Pkcs8(k) => aws_lc_rs::rsa::KeyPair::from_pkcs8(k.secret_pkcs8_der()),
        PrivateKeyDer::Pkcs1(k) => aws_lc_rs::rsa::KeyPair::from_der(k.secret_pkcs1_der()),
        _ => panic!("signing2 is RSA"),
    }
    .unwrap();
    use aws_lc_rs::signature::KeyPair as _;
    let public = key.public_key();
    json!({"keys": [{"kty": "RSA", "use": "sig", "alg": "RS256", "kid": "cluster-1",
        "n": URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
        "e": URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero())}]})
    .to_string()
}

/// A service-account token as the cluster would project it.
fn sa_token(aud: &str, sub: &str) -> String {
    let now = crate::idp::now();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some("cluster-1".into());
    let claims = json!({"iss": ISSUER, "sub": sub, "aud": [aud], "iat": now, "nbf": now, "exp": now + 3600,
        "kubernetes.io": {"namespace": "billing", "serviceaccount": {"name": "legacy"}}});
    let key =
        jsonwebtoken::EncodingKey::from_rsa_pem(pki().get("signing2").key.as_bytes()).unwrap();
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

/// Replaces the token file atomically (a rename, as the kubelet's `..data` swap is).
fn rotate(dir: &std::path::Path, token: &str) {
    let tmp = dir.join("sa-token.new");
    std::fs::write(&tmp, token).unwrap();
    std::fs::rename(&tmp, dir.join("sa-token")).unwrap();
}

fn federated_setup() -> Setup {
    let setup = Setup::new();
    setup.dir.write("cluster-jwks.json", &jwks());
    rotate(
        &setup.dir.0,
        &sa_token("api://AzureADTokenExchange", SUBJECT),
    );
    setup
        .upstream(&format!(
            "[upstreams.dev]\ntype = \"embedded\"\nlisten = \"127.0.0.1:0\"\ntenant = \"contoso.onmicrosoft.com\"\n\n[[upstreams.dev.federated]]\nissuer = \"{ISSUER}\"\nsubject = \"{SUBJECT}\"\njwks = \"cluster-jwks.json\"\n"
        ))
        .credential("[credentials.dev]\nfederated_token_file = \"sa-token\"\n")
}

#[tokio::test]
async fn a_federated_token_file_is_the_assertion_and_rotations_are_picked_up() {
    let h = federated_setup().start().await;
    let answer = h.token(Some("client"), &form(PKI_CLIENT)).await;
    assert_token(&answer);
    // Rotated to a token for the wrong audience: the next request sends it, and the IdP's
    // AADSTS answer comes back unchanged.
    rotate(&h.setup.dir.0, &sa_token("api://SomethingElse", SUBJECT));
    let refused = h.token(Some("client"), &form(PKI_CLIENT)).await;
    assert_eq!(
        refused.status,
        400,
        "{}",
        String::from_utf8_lossy(&refused.body)
    );
    let body = refused.json();
    assert_eq!(body["error"], "invalid_client");
    assert_eq!(body["error_codes"], json!([700212]));
    assert!(body["error_description"]
        .as_str()
        .unwrap()
        .starts_with("AADSTS700212: "));
    // Another service account's token.
    rotate(
        &h.setup.dir.0,
        &sa_token("api://AzureADTokenExchange", "system:serviceaccount:x:y"),
    );
    let refused = h.token(Some("client"), &form(PKI_CLIENT)).await;
    assert_eq!(refused.json()["error_codes"], json!([700213]));
    // Back to a good one: served again at once.
    rotate(
        &h.setup.dir.0,
        &sa_token("api://AzureADTokenExchange", SUBJECT),
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let answer = h.token(Some("client"), &form(PKI_CLIENT)).await;
        if answer.status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{}",
            String::from_utf8_lossy(&answer.body)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The token sent is never logged (its signature is what makes it unique).
    let sent = std::fs::read_to_string(h.setup.dir.path("sa-token")).unwrap();
    let signature = sent.rsplit('.').next().unwrap();
    let logs = logs();
    assert!(!logs.contains(sent.trim()) && !logs.contains(signature));
    h.stop().await;
}

#[tokio::test]
async fn a_token_signed_by_another_key_is_refused_and_a_missing_file_refuses_to_start() {
    let setup = federated_setup();
    // Signed with the gateway's own credential key instead of the cluster's.
    let now = crate::idp::now();
    let claims = json!({"iss": ISSUER, "sub": SUBJECT, "aud": "api://AzureADTokenExchange", "exp": now + 600});
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some("cluster-1".into());
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(pki().get("signing").key.as_bytes()).unwrap();
    rotate(
        &setup.dir.0,
        &jsonwebtoken::encode(&header, &claims, &key).unwrap(),
    );
    let h = setup.start().await;
    let refused = h.token(Some("client"), &form(PKI_CLIENT)).await;
    assert_eq!(
        refused.json()["error_codes"],
        json!([700027]),
        "{}",
        String::from_utf8_lossy(&refused.body)
    );
    h.stop().await;

    let setup = federated_setup()
        .credential("[credentials.dev]\nfederated_token_file = \"missing-token\"\n");
    let err = mtls_gateway::config::load(&setup.write())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("credentials.dev.federated_token_file"),
        "{err}"
    );
}
