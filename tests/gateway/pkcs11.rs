//! Credentials whose key lives in an HSM (SPEC §12 `pkcs11`), with a real SoftHSM2: a token in
//! a temp dir, the credential key imported with `softhsm2-util`; the embedded identity provider
//! verifies every signature against the registered certificate.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::process::{tool_available, Served};
use crate::support::*;

const PIN: &str = "hsm-pin-7f3a9c";

fn module() -> Option<PathBuf> {
    [
        "/usr/lib/softhsm/libsofthsm2.so",
        "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

/// A SoftHSM token "gw" in `dir` holding the test credential key as "dev-key"; returns the
/// module and the SOFTHSM2_CONF file.
fn token(dir: &Path) -> Option<(PathBuf, PathBuf)> {
    if !tool_available("softhsm2-util", "softhsm2") {
        return None;
    }
    let module = module().expect("softhsm2 installs libsofthsm2.so");
    std::fs::create_dir_all(dir.join("tokens")).unwrap();
    let conf = dir.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            dir.join("tokens").display()
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let out = Command::new("softhsm2-util")
            .env("SOFTHSM2_CONF", &conf)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "softhsm2-util {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "--init-token",
        "--free",
        "--label",
        "gw",
        "--pin",
        PIN,
        "--so-pin",
        "so-pin-1234",
    ]);
    let key = dir.join("signing-key.pem").display().to_string();
    run(&[
        "--import", &key, "--token", "gw", "--label", "dev-key", "--id", "01", "--pin", PIN,
    ]);
    Some((module, conf))
}

fn hsm_setup(module: &Path) -> Setup {
    let pkcs11 = format!(
        "pkcs11 = {{ module = \"{}\", token_label = \"gw\", key_label = \"dev-key\", pin_env = \"TEST_HSM_PIN\" }}",
        module.display()
    );
    Setup::new()
        .credential(&format!(
            "[credentials.dev]\ncert = \"signing.pem\"\n{pkcs11}\n\n[credentials.ps]\ncert = \"signing.pem\"\nalg = \"PS256\"\n{pkcs11}\n"
        ))
        .only_clients(&format!(
            "{}\n[[clients]]\nclient_id = \"{SELF_SIGNED_CLIENT}\"\nupstream = \"dev\"\ncredential = \"ps\"\ntoken_endpoint_auth_method = \"self_signed_tls_client_auth\"\nself_signed_certs = [\"selfsigned.pem\"]\n",
            pki_client_with("")
        ))
}

#[tokio::test]
async fn rs256_and_ps256_assertions_signed_in_softhsm_get_tokens_under_concurrency() {
    let setup = Setup::new();
    let Some((module, conf)) = token(&setup.dir.0) else {
        return;
    };
    let setup = hsm_setup(&module);
    // The token lives in the first setup's folder; this one shares the PKI files.
    let config = setup.write();
    let mut served = Served::command(
        Command::new(env!("CARGO_BIN_EXE_mtls-gateway"))
            .env("SOFTHSM2_CONF", &conf)
            .env("TEST_HSM_PIN", PIN)
            .args(["--log-format", "json", "serve", "-c"])
            .arg(&config),
    );
    let addr = served.addr("mTLS listener ready");
    let url = format!("https://localhost:{}/token", addr.port());
    for answer in tokens_at_once(std::slice::from_ref(&url), 20).await {
        assert_eq!(
            answer.status,
            200,
            "{}",
            String::from_utf8_lossy(&answer.body)
        );
    }
    let ps = client_for(Some("selfsigned"), false)
        .post_form(&url, &form(SELF_SIGNED_CLIENT))
        .await
        .unwrap();
    assert_eq!(
        ps.status,
        200,
        "PS256: {}",
        String::from_utf8_lossy(&ps.body)
    );
    served.signal("TERM");
    served.wait_exit();
    assert!(
        !served.seen().join("\n").contains(PIN),
        "the PIN was logged"
    );
    drop(setup);
}

#[test]
fn check_refuses_a_wrong_pin_naming_the_credential_and_accepts_the_right_one() {
    let setup = Setup::new();
    let Some((module, conf)) = token(&setup.dir.0) else {
        return;
    };
    let config = setup.dir.write("gateway.toml", &hsm_setup(&module).toml());
    let check = |pin: &str| {
        Command::new(env!("CARGO_BIN_EXE_mtls-gateway"))
            .env("SOFTHSM2_CONF", &conf)
            .env("TEST_HSM_PIN", pin)
            .args(["check", "-c"])
            .arg(&config)
            .output()
            .unwrap()
    };
    let wrong = check("wrong-pin-0000");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&wrong.stdout),
        String::from_utf8_lossy(&wrong.stderr)
    );
    assert_eq!(wrong.status.code(), Some(1), "{text}");
    assert!(
        text.contains("credentials.dev.pkcs11") && text.contains("PIN"),
        "{text}"
    );
    assert!(
        !text.contains("wrong-pin-0000"),
        "the PIN was echoed: {text}"
    );
    let right = check(PIN);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&right.stdout),
        String::from_utf8_lossy(&right.stderr)
    );
    assert!(right.status.success(), "{text}");
    assert!(!text.contains(PIN));
    // A key label that is not on the token.
    let missing = setup.dir.write(
        "missing.toml",
        &hsm_setup(&module).toml().replace("dev-key", "no-such-key"),
    );
    let out = Command::new(env!("CARGO_BIN_EXE_mtls-gateway"))
        .env("SOFTHSM2_CONF", &conf)
        .env("TEST_HSM_PIN", PIN)
        .args(["check", "-c"])
        .arg(&missing)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("no private key labelled \"no-such-key\""),
        "{text}"
    );
}
