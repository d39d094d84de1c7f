//! `check` as an operator runs it: each diagnosis of a configuration that would fail later,
//! with its exact words, and `check --online` asking the real upstream for a token.

use std::process::{Command, Output};

use crate::support::upstream::{Behaviour, FakeUpstream};
use crate::support::*;

fn check(setup: &Setup, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mtls-gateway"))
        .arg("check")
        .args(args)
        .arg("-c")
        .arg(setup.write())
        .output()
        .unwrap()
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_dn_in_openssl_3_order_is_warned_about_with_the_spelling_to_write() {
    let setup = Setup::new().only_clients(&pki_client(
        PKI_CLIENT,
        "tls_client_auth_subject_dn = \"C = US, O = Contoso, CN = billing-legacy\"",
    ));
    let out = check(&setup, &[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains(&format!(
        "warning: clients[0] (client_id \"{PKI_CLIENT}\").tls_client_auth_subject_dn: \"C = US, O = Contoso, CN = billing-legacy\" is written most general RDN first (OpenSSL's order); RFC 4514 puts the most specific first and a reversed DN does not match: write \"CN=billing-legacy,O=Contoso,C=US\"\n"
    )), "{stdout}");
    // Two RDNs are enough to be read as reversed; the right order is not warned about.
    let setup = Setup::new().only_clients(&pki_client(
        PKI_CLIENT,
        "tls_client_auth_subject_dn = \"O = Contoso, CN = billing-legacy\"",
    ));
    let (stdout, _) = text(&check(&setup, &[]));
    assert!(
        stdout.contains("write \"CN=billing-legacy,O=Contoso\""),
        "{stdout}"
    );
    let (stdout, _) = text(&check(&Setup::new(), &[]));
    assert!(!stdout.contains("most general RDN first"), "{stdout}");
}

#[test]
fn a_client_id_that_is_not_a_guid_on_an_entra_upstream_is_warned_about() {
    let mut setup = Setup::new().only_clients(&pki_client(
        "billing-legacy",
        &format!("tls_client_auth_subject_dn = \"{PKI_DN}\""),
    ));
    setup.upstream =
        "[upstreams.dev]\ntype = \"entra\"\ntenant = \"contoso.onmicrosoft.com\"\n".into();
    let out = check(&setup, &[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("warning: clients[0] (client_id \"billing-legacy\").client_id: \"billing-legacy\" is not a GUID; Entra knows an app registration by its Application (client) ID, a GUID such as 6f1c1a8e-1111-2222-3333-444455556666, and answers AADSTS700016 for anything else\n"), "{stdout}");
    // A GUID (any case) is not warned about, nor is a non-GUID on a generic upstream.
    let mut setup = Setup::new().only_clients(&pki_client(
        "6F1C1A8E-1111-2222-3333-444455556666",
        &format!("tls_client_auth_subject_dn = \"{PKI_DN}\""),
    ));
    setup.upstream =
        "[upstreams.dev]\ntype = \"entra\"\ntenant = \"contoso.onmicrosoft.com\"\n".into();
    let (stdout, _) = text(&check(&setup, &[]));
    assert!(!stdout.contains("is not a GUID"), "{stdout}");
    let mut setup = Setup::new().only_clients(&pki_client(
        "billing-legacy",
        &format!("tls_client_auth_subject_dn = \"{PKI_DN}\""),
    ));
    setup.upstream =
        "[upstreams.dev]\ntype = \"generic\"\ntoken_endpoint = \"https://idp.example/token\"\n"
            .into();
    let (stdout, _) = text(&check(&setup, &[]));
    assert!(!stdout.contains("is not a GUID"), "{stdout}");
}

#[test]
fn thumbprints_with_colons_are_accepted_and_sha1_is_named() {
    let der = pki().cert_der("selfsigned");
    let colons: Vec<String> = mtls_gateway::identity::sha256(der.as_ref())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    let sha1: Vec<String> = mtls_gateway::identity::sha1(der.as_ref())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    let client = |t: &str| {
        format!("[[clients]]\nclient_id = \"{SELF_SIGNED_CLIENT}\"\nupstream = \"dev\"\ncredential = \"dev\"\ntoken_endpoint_auth_method = \"self_signed_tls_client_auth\"\nself_signed_thumbprints = [\"{t}\"]\n")
    };
    let out = check(&Setup::new().only_clients(&client(&colons.join(":"))), &[]);
    assert!(out.status.success(), "{:?}", text(&out));
    let out = check(&Setup::new().only_clients(&client(&sha1.join(":"))), &[]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("self_signed_thumbprints[0]: this is SHA-1; use `mtls-gateway thumbprint FILE` for the x5t#S256\n"),
        "{stderr}"
    );
}

#[test]
fn toml_errors_show_the_line_and_the_key_meant_and_problems_one_per_line() {
    let setup = Setup::new();
    let toml = setup.toml().replacen("listen = ", "listn = ", 1);
    let path = setup.dir.write("gateway.toml", &toml);
    let out = Command::new(env!("CARGO_BIN_EXE_mtls-gateway"))
        .args(["check", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(
        lines[1].starts_with(
            "  - toml: line 2, column 1: unknown field `listn`, expected one of `listen`"
        ),
        "{stderr}"
    );
    assert!(lines[1].ends_with("; did you mean `listen`?"), "{stderr}");
    assert_eq!(lines[3], "      2 | listn = \"127.0.0.1:0\"", "{stderr}");
    assert_eq!(lines[4], "        | ^^^^^", "{stderr}");
    // Several problems: one line each, each naming its key.
    let setup = Setup::new()
        .only_clients(&(pki_client("a", "") + &pki_client("b", "tls_client_auth_san_dns = \"\"")));
    let out = check(&setup, &[]);
    let (_, stderr) = text(&out);
    let problems: Vec<&str> = stderr.lines().filter(|l| l.starts_with("  - ")).collect();
    assert_eq!(problems.len(), 2, "{stderr}");
    assert!(
        problems[0].starts_with("  - clients[0] (client_id \"a\")"),
        "{stderr}"
    );
    assert!(
        problems[1].starts_with("  - clients[1] (client_id \"b\")"),
        "{stderr}"
    );
    assert!(
        stderr.starts_with("error: ") && stderr.contains(": 2 problems:\n"),
        "{stderr}"
    );
}

#[test]
fn check_online_gets_a_token_from_the_embedded_provider_and_prints_no_token() {
    let setup = Setup::new();
    let out = check(&setup, &["--online"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for client in [PKI_CLIENT, SELF_SIGNED_CLIENT] {
        assert!(
            stdout.contains(&format!("online: client {client} via upstream dev: token issued for scope https://graph.microsoft.com/.default (expires in 3599 s) by https://127.0.0.1:")),
            "{stdout}"
        );
    }
    assert!(
        !stdout.contains("eyJ") && !stderr.contains("eyJ"),
        "a JWT was printed"
    );
}

/// An Entra-typed upstream whose authority is a scripted server answering `status`/`body`.
fn entra_at(upstream: &FakeUpstream) -> String {
    format!(
        "[upstreams.dev]\ntype = \"entra\"\nauthority = \"https://127.0.0.1:{}\"\ntenant = \"contoso.onmicrosoft.com\"\nca = [\"ca1.pem\"]\n",
        upstream.addr.port()
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn check_online_turns_entra_refusals_into_the_fix() {
    let cert = pki().cert_der("signing");
    let sha1: String = mtls_gateway::identity::sha1(cert.as_ref())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    let s256 = mtls_gateway::identity::x5t_s256(cert.as_ref());
    let cases = [
        (
            401,
            r#"{"error":"invalid_client","error_description":"AADSTS700027: The certificate with identifier used to sign the client assertion is not registered on application.","error_codes":[700027]}"#,
            format!("answered 401 invalid_client AADSTS700027: upload this certificate (credential dev, SHA-1 thumbprint {sha1}, x5t#S256 {s256}) to app registration {PKI_CLIENT}: Certificates & secrets → Certificates → Upload certificate"),
        ),
        (
            400,
            r#"{"error":"invalid_request","error_description":"AADSTS90002: Tenant 'contoso.onmicrosoft.com' not found."}"#,
            "answered 400 invalid_request AADSTS90002: tenant contoso.onmicrosoft.com does not exist in this cloud: set [upstreams.dev] tenant to the directory's GUID or a verified domain, and authority to the cloud it lives in".to_string(),
        ),
        (
            400,
            r#"{"error":"unauthorized_client","error_description":"AADSTS700016: Application with identifier 'x' was not found.","error_codes":[700016]}"#,
            format!("AADSTS700016: no app registration with Application (client) ID {PKI_CLIENT} in tenant contoso.onmicrosoft.com"),
        ),
        (
            500,
            "not json",
            "answered 500 (no OAuth error): the identity provider refused: no error description".to_string(),
        ),
    ];
    for (status, body, expected) in cases {
        let upstream = FakeUpstream::start(Behaviour::Answer(
            status,
            vec![("content-type", "application/json")],
            body.to_string(),
        ))
        .await;
        let mut setup = Setup::new().only_clients(&pki_client_with(""));
        setup.upstream = entra_at(&upstream);
        let path = setup.write();
        let out = tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_mtls-gateway"))
                .args(["check", "--online", "-c"])
                .arg(path)
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains(&format!("  - online: client {PKI_CLIENT} via upstream dev: https://127.0.0.1:{}/contoso.onmicrosoft.com/oauth2/v2.0/token ", upstream.addr.port())),
            "{stderr}"
        );
        assert!(stderr.contains(&expected), "{expected}\n{stderr}");
        // The probe was a real client_credentials request with a signed assertion.
        let forms = upstream.forms();
        assert_eq!(forms.len(), 1, "{forms:?}");
        let form = &forms[0].1;
        assert!(form.contains("grant_type=client_credentials"), "{form}");
        assert!(form.contains("client_assertion=eyJ"), "{form}");
        assert!(!stderr.contains("eyJ"), "the assertion was printed");
    }
}
