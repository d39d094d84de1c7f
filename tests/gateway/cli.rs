//! The binary as a user runs it.

use std::process::Command;

use crate::support::*;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mtls-gateway"))
}

#[test]
fn demo_fetches_a_token_over_mtls() {
    let out = bin().arg("demo").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("demo succeeded"), "{stdout}");
    assert!(
        stdout.contains("\"x5t\""),
        "the assertion header is shown: {stdout}"
    );
    assert!(stdout.contains("access token claims"), "{stdout}");
}

#[test]
fn check_prints_the_clients_and_exits_0() {
    let setup = Setup::new();
    let path = setup.write();
    let out = bin().args(["check", "-c"]).arg(&path).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(PKI_CLIENT) && stdout.contains(SELF_SIGNED_CLIENT),
        "{stdout}"
    );
    assert!(stdout.contains("tls_client_auth") && stdout.contains("self_signed_tls_client_auth"));
    // MTLS_GATEWAY_CONFIG replaces -c.
    let out = bin()
        .arg("check")
        .env("MTLS_GATEWAY_CONFIG", &path)
        .output()
        .unwrap();
    assert!(out.status.success());
}

#[test]
fn check_exits_1_listing_every_problem() {
    let setup = Setup::new()
        .only_clients(&(pki_client("a", "") + &pki_client("a", "tls_client_auth_san_dns = \"x\"")));
    let out = bin()
        .args(["check", "-c"])
        .arg(setup.write())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("needs exactly one of"), "{stderr}");
    assert!(stderr.contains("registered more than once"), "{stderr}");
}

#[test]
fn usage_errors_exit_2() {
    let out = bin().arg("no-such-command").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

fn openssl_fingerprint(file: &std::path::Path, digest: &str) -> Option<String> {
    let mut openssl = crate::support::openssl()?;
    let out = openssl
        .args(["x509", "-noout", "-fingerprint", digest, "-in"])
        .arg(file)
        .output()
        .expect("openssl is installed by .ci/run");
    let text = String::from_utf8_lossy(&out.stdout);
    Some(text.trim().rsplit('=').next().unwrap().replace(':', ""))
}

#[test]
fn thumbprints_match_openssl() {
    let dir = TestDir::new();
    let file = dir.path("signing.pem");
    let out = bin().arg("thumbprint").arg(&file).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| panic!("no {name} in {text}"))
    };
    let (Some(sha1_hex), Some(sha256_hex)) = (
        openssl_fingerprint(&file, "-sha1"),
        openssl_fingerprint(&file, "-sha256"),
    ) else {
        return;
    };
    assert_eq!(sha1_hex.len(), 40);
    assert_eq!(field("SHA-1:"), sha1_hex);
    let b64 = |hex: &str| {
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, bytes)
    };
    assert_eq!(field("x5t:"), b64(&sha1_hex));
    assert_eq!(field("x5t#S256:"), b64(&sha256_hex));
    assert_eq!(field("subject:"), "CN=billing signing,O=mtls-gateway dev");
    // DER input gives the same answer.
    let der = dir.path("signing.der");
    write_file(&der, pki().cert_der("signing").as_ref());
    let out = bin().arg("thumbprint").arg(&der).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains(&sha1_hex));
    // SANs are listed.
    let out = bin()
        .arg("thumbprint")
        .arg(dir.path("client.pem"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("DNS:Billing.Contoso.Internal")
            && text.contains("IP:::1")
            && text.contains("URI:spiffe://contoso/billing"),
        "{text}"
    );
}

#[test]
fn a_pkcs1_credential_key_loads() {
    let dir = TestDir::new();
    let Some(mut openssl) = crate::support::openssl() else {
        return;
    };
    let out = openssl
        .args(["rsa", "-traditional", "-in"])
        .arg(dir.path("signing-key.pem"))
        .arg("-out")
        .arg(dir.path("signing-key-pkcs1.pem"))
        .output()
        .expect("openssl is installed by .ci/run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pkcs1 = std::fs::read_to_string(dir.path("signing-key-pkcs1.pem")).unwrap();
    assert!(pkcs1.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    let setup = Setup::new()
        .credential("[credentials.dev]\ncert = \"signing.pem\"\nkey = \"signing-key-pkcs1.pem\"\n");
    setup.dir.write("signing-key-pkcs1.pem", &pkcs1);
    mtls_gateway::config::load(&setup.write()).unwrap();
}

#[test]
fn dev_pki_writes_the_spec_files_with_private_keys_owner_only() {
    let dir = TestDir::new();
    let out_dir = dir.path("pki");
    // A key file that exists with a wider mode is narrowed too.
    std::fs::create_dir_all(&out_dir).unwrap();
    std::fs::write(out_dir.join("signing-key.pem"), "old").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            out_dir.join("signing-key.pem"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
    }
    let out = bin()
        .arg("dev-pki")
        .arg("--out")
        .arg(&out_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for f in mtls_gateway::pki::FILES {
        let p = out_dir.join(f);
        assert!(p.exists(), "{f}");
        #[cfg(unix)]
        if f.ends_with("-key.pem") {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o600,
                "{f}"
            );
        }
    }
    assert!(String::from_utf8_lossy(&out.stdout).contains("x5t#S256"));
    // A second run refuses to replace the CA, and changes nothing; --force replaces it.
    let ca = std::fs::read(out_dir.join("ca.pem")).unwrap();
    let again = bin()
        .arg("dev-pki")
        .arg("--out")
        .arg(&out_dir)
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(
        stderr.contains("ca.pem exists: a new CA would leave every certificate the old one issued unverifiable; pass --force"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(out_dir.join("ca.pem")).unwrap(), ca);
    let forced = bin()
        .args(["dev-pki", "--force", "--out"])
        .arg(&out_dir)
        .output()
        .unwrap();
    assert!(forced.status.success());
    assert_ne!(std::fs::read(out_dir.join("ca.pem")).unwrap(), ca);
}

#[test]
fn mock_idp_runs_alone_and_issues_tokens_for_registered_credentials() {
    use std::io::BufRead;
    let dir = TestDir::new();
    let ca_out = dir.path("idp-ca.pem");
    let mut child = crate::support::process::Supervised::spawn(
        bin()
            .args([
                "mock-idp",
                "--listen",
                "127.0.0.1:0",
                "--tenant",
                "contoso",
                "--client",
            ])
            .arg(format!(
                "{PKI_CLIENT}={}",
                dir.path("signing.pem").display()
            ))
            .arg("--ca-out")
            .arg(&ca_out)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null()),
        "TERM",
    );
    let mut lines = std::io::BufReader::new(child.child_mut().stdout.take().unwrap()).lines();
    let endpoint = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| {
            l.trim()
                .strip_prefix("token endpoint:")
                .map(|e| e.trim().to_string())
        })
        .expect("mock-idp prints its token endpoint");
    assert!(
        endpoint.ends_with("/contoso/oauth2/v2.0/token"),
        "{endpoint}"
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = serde_json::json!({"aud": endpoint, "iss": PKI_CLIENT, "sub": PKI_CLIENT, "jti": "3f1c2a8e-1111-4222-8333-444455556666", "nbf": now, "exp": now + 300});
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.x5t = Some(mtls_gateway::identity::x5t(
        pki().cert_der("signing").as_ref(),
    ));
    let jwt = jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_rsa_pem(pki().get("signing").key.as_bytes()).unwrap(),
    )
    .unwrap();
    let ca = mtls_gateway::config::parse_certs(&std::fs::read(&ca_out).unwrap()).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let answer = runtime.block_on(async {
        mtls_gateway::client::MtlsClient::new(&ca, None, false)
            .unwrap()
            .post_form(
                &endpoint,
                &format!("grant_type=client_credentials&client_id={PKI_CLIENT}&scope={SCOPE}&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={jwt}"),
            )
            .await
            .unwrap()
    });
    drop(child);
    assert_token(&answer);
}

#[test]
fn ec_and_short_rsa_credential_keys_are_refused() {
    // An ECDSA certificate and key (Entra accepts RSA credentials only).
    let setup = Setup::new()
        .credential("[credentials.dev]\ncert = \"client.pem\"\nkey = \"client-key.pem\"\n");
    let text = mtls_gateway::config::load(&setup.write())
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("credentials.dev: the key is not an RSA private key"),
        "{text}"
    );
    // RSA-1024, made by openssl.
    let dir = &setup.dir;
    let Some(mut openssl) = crate::support::openssl() else {
        return;
    };
    let out = openssl
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:1024",
            "-nodes",
            "-days",
            "30",
            "-subj",
            "/CN=short",
            "-keyout",
        ])
        .arg(dir.path("short-key.pem"))
        .arg("-out")
        .arg(dir.path("short.pem"))
        .output()
        .expect("openssl is installed by .ci/run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let setup =
        setup.credential("[credentials.dev]\ncert = \"short.pem\"\nkey = \"short-key.pem\"\n");
    let text = mtls_gateway::config::load(&setup.write())
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("the RSA key has 1024 bits; at least 2048 are required"),
        "{text}"
    );
}

#[test]
fn thumbprint_reads_pkcs12_with_the_password_from_the_environment() {
    let dir = TestDir::new();
    let Some(mut openssl) = crate::support::openssl() else {
        return;
    };
    let out = openssl
        .args(["pkcs12", "-export", "-passout", "pass:s3cret", "-in"])
        .arg(dir.path("signing.pem"))
        .arg("-inkey")
        .arg(dir.path("signing-key.pem"))
        .arg("-out")
        .arg(dir.path("signing.pfx"))
        .output()
        .expect("openssl is installed by .ci/run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = bin()
        .args(["thumbprint", "--password-env", "MTLS_GATEWAY_TEST_PFX"])
        .arg(dir.path("signing.pfx"))
        .env("MTLS_GATEWAY_TEST_PFX", "s3cret")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected = mtls_gateway::identity::x5t(pki().cert_der("signing").as_ref());
    assert!(text.contains(&expected), "{text}");
    // A wrong password is a precise error, exit 1, and the password is not echoed.
    let out = bin()
        .args(["thumbprint", "--password-env", "MTLS_GATEWAY_TEST_PFX"])
        .arg(dir.path("signing.pfx"))
        .env("MTLS_GATEWAY_TEST_PFX", "wrong-password-xyz")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("PKCS#12") && !stderr.contains("wrong-password-xyz"),
        "{stderr}"
    );
}

#[test]
fn log_format_and_level_come_from_the_environment_too() {
    let setup = crate::support::Setup::new();
    let config = setup.write();
    let mut served = crate::support::process::Served::command(
        std::process::Command::new(env!("CARGO_BIN_EXE_mtls-gateway"))
            .env("MTLS_GATEWAY_LOG_FORMAT", "json")
            .env("MTLS_GATEWAY_LOG_LEVEL", "info")
            .args(["serve", "-c"])
            .arg(&config),
    );
    // The JSON events are read only when the format came from the variable.
    let _ = served.addr("mTLS listener ready");
    served.signal("TERM");
    assert!(served.wait_exit().success());
}

#[test]
fn fatal_start_up_errors_are_one_json_event_with_json_logs() {
    let setup = Setup::new().only_clients(&pki_client("a", ""));
    let config = setup.write();
    let out = bin()
        .args(["--log-format", "json", "serve", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let events: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
        .collect();
    let fatal = events.last().unwrap();
    assert_eq!(fatal["level"], "ERROR");
    assert_eq!(fatal["message"], "fatal: the command failed");
    let error = fatal["error"].as_str().unwrap();
    assert!(
        error.contains("1 problem") && error.contains("needs exactly one of"),
        "{error}"
    );
    // Text logs keep the plain line.
    let out = bin().args(["serve", "-c"]).arg(&config).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("error: "), "{stderr}");
}
