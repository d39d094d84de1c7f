//! Beyond Entra: assertions for identity providers that pick keys by `kid`, want `aud` = their
//! issuer, take ES256 or read `x5c`. The provider here is the embedded one in a profile
//! (Okta, Auth0, Keycloak, generic RFC 7523), started on its own and reached as a `generic`
//! upstream over real HTTPS, as a deployment would reach the real product; refusals are the
//! provider's, passed through unchanged.

use std::sync::Arc;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use mtls_gateway::config::IdpProfile;
use mtls_gateway::idp::{Idp, Registered};
use serde_json::Value;

use crate::support::upstream::{ok_answer, FakeUpstream};
use crate::support::*;

/// An embedded provider in `profile`, trusting `keys` (client, credential file name, kid).
struct ProfileIdp {
    authority: String,
    profile: IdpProfile,
    stop: tokio::sync::watch::Sender<bool>,
}

impl ProfileIdp {
    async fn start(
        profile: IdpProfile,
        keys: &[(&str, &str, Option<&str>)],
        dir: &TestDir,
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (ca, tls) = mtls_gateway::idp::ephemeral_tls(addr).unwrap();
        let pem = format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            STANDARD.encode(ca.as_ref())
        );
        dir.write("profile-idp-ca.pem", &pem);
        let authority = mtls_gateway::upstream::authority_of(addr);
        let registered = keys.iter().map(|(client, cert, kid)| Registered {
            client_id: client.to_string(),
            cert: Some(pki().cert_der(cert)),
            kid: kid.map(str::to_string),
        });
        let idp = Arc::new(Idp::with_profile("realm1", &authority, registered, profile).unwrap());
        let (stop, stopped) = tokio::sync::watch::channel(false);
        tokio::spawn(mtls_gateway::idp::serve(listener, tls, idp, stopped));
        Self {
            authority,
            profile,
            stop,
        }
    }

    /// A generic upstream pointing at it, with extra keys.
    fn upstream(&self, extra: &str) -> String {
        format!(
            "[upstreams.dev]\ntype = \"generic\"\ntoken_endpoint = \"{}{}\"\nmetadata_url = \"{}\"\nca = [\"profile-idp-ca.pem\"]\n{extra}\n",
            self.authority,
            self.profile.token_path("realm1"),
            self.profile.metadata_url(&self.authority, "realm1"),
        )
    }
}

impl Drop for ProfileIdp {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// A credential on test certificate `cert` (its key beside it) with extra keys.
fn credential(cert: &str, extra: &str) -> String {
    format!("[credentials.dev]\ncert = \"{cert}.pem\"\nkey = \"{cert}-key.pem\"\n{extra}\n")
}

/// One token request of the PKI client through a provider in `profile` trusting `keys`
/// (client, credential file, kid), reached as a generic upstream with `upstream_extra`, the
/// gateway signing with `cred`. Returns the answer and the provider's authority.
async fn through(
    profile: IdpProfile,
    keys: &[(&str, &str, Option<&str>)],
    upstream_extra: &str,
    cred: String,
) -> (mtls_gateway::client::Answer, String) {
    let dir = TestDir::new();
    let idp = ProfileIdp::start(profile, keys, &dir).await;
    let mut setup = Setup::new().only_clients(&pki_client_with(""));
    setup.dir = dir;
    setup.upstream = idp.upstream(upstream_extra);
    setup.credential = cred;
    let h = setup.start().await;
    let answer = h.token(Some("client"), &form(PKI_CLIENT)).await;
    h.stop().await;
    (answer, idp.authority.clone())
}

#[tokio::test]
async fn okta_takes_a_token_request_whose_assertion_names_the_key_by_kid() {
    let keys = [(PKI_CLIENT, "signing", Some("key-A"))];
    let (answer, _) = through(
        IdpProfile::Okta,
        &keys,
        "",
        credential("signing", "kid = \"key-A\""),
    )
    .await;
    assert_token(&answer);
}

#[tokio::test]
async fn okta_refuses_a_wrong_or_missing_kid_and_the_refusal_passes_through_unchanged() {
    let keys = [(PKI_CLIENT, "signing", Some("key-A"))];
    for (kid, expected) in [
        (
            "kid = \"key-B\"",
            "No key with kid 'key-B' is registered for this client.",
        ),
        (
            "",
            "The client assertion's header has no kid; this client's keys are selected by kid.",
        ),
    ] {
        let (answer, _) = through(IdpProfile::Okta, &keys, "", credential("signing", kid)).await;
        assert_eq!(answer.status, 401);
        assert_eq!(answer.header("content-type"), Some("application/json"));
        // Byte for byte the provider's body.
        let body = serde_json::json!({"error": "invalid_client", "error_description": expected});
        assert_eq!(String::from_utf8_lossy(&answer.body), body.to_string());
    }
}

#[tokio::test]
async fn auth0_wants_aud_to_be_its_issuer_with_the_trailing_slash() {
    let keys = [(PKI_CLIENT, "signing", Some("k1"))];
    let cred = || credential("signing", "kid = \"k1\"");
    let (answer, _) = through(
        IdpProfile::Auth0,
        &keys,
        "assertion_audience = \"issuer\"",
        cred(),
    )
    .await;
    assert_token(&answer);
    // The token endpoint as aud (the default) is refused by this provider, passed through.
    let (answer, authority) = through(IdpProfile::Auth0, &keys, "", cred()).await;
    assert_eq!(answer.status, 401);
    let body = answer.json();
    assert_eq!(body["error"], "invalid_client");
    let description = body["error_description"].as_str().unwrap();
    assert_eq!(
        description,
        format!("The client assertion's aud '{authority}/oauth/token' is not {authority}/.")
    );
}

#[tokio::test]
async fn es256_credentials_get_tokens_from_a_generic_provider() {
    // The test client certificate holds a P-256 key: here it is a signing credential.
    let keys = [(PKI_CLIENT, "via-intermediate-leaf", None)];
    let cred = credential("via-intermediate-leaf", "alg = \"ES256\"");
    assert_token(&through(IdpProfile::Keycloak, &keys, "", cred).await.0);
    // Without alg the key decides: P-256 signs ES256.
    let cred = credential("via-intermediate-leaf", "");
    assert_token(&through(IdpProfile::Generic, &keys, "", cred).await.0);
}

#[tokio::test]
async fn ping_and_forgerock_take_an_x5c_assertion_on_their_token_paths() {
    // The certificate file holds leaf and intermediate; x5c carries both.
    let keys = [(PKI_CLIENT, "via-intermediate-leaf", None)];
    for profile in [IdpProfile::Ping, IdpProfile::ForgeRock] {
        let cred = "[credentials.dev]\ncert = \"via-intermediate-chain.pem\"\nkey = \"via-intermediate-chain-key.pem\"\nx5c = true\n";
        assert_token(&through(profile, &keys, "", cred.into()).await.0);
    }
}

fn decoded(jwt: &str) -> (Value, Value) {
    let mut parts = jwt.split('.');
    let mut part =
        || serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts.next().unwrap()).unwrap()).unwrap();
    (part(), part())
}

fn sent_assertion(upstream: &FakeUpstream) -> String {
    let forms = upstream.forms();
    let (_, body) = forms.last().unwrap();
    let raw = body
        .split('&')
        .find_map(|p| p.strip_prefix("client_assertion="))
        .unwrap();
    percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .unwrap()
        .into_owned()
}

#[tokio::test]
async fn x5c_carries_the_whole_certificate_file_leaf_first_and_an_exact_audience_is_used_as_written(
) {
    let upstream = FakeUpstream::start(ok_answer()).await;
    let mut setup = Setup::new().only_clients(&pki_client_with(""));
    setup.upstream =
        upstream.config("5s") + "assertion_audience = \"https://idp.example/custom/aud\"\n";
    setup.credential = "[credentials.dev]\ncert = \"via-intermediate-chain.pem\"\nkey = \"via-intermediate-chain-key.pem\"\nkid = \"chain-key\"\nx5c = true\n".into();
    let h = setup.start().await;
    assert_eq!(h.token(Some("client"), &form(PKI_CLIENT)).await.status, 200);
    h.stop().await;
    let (header, claims) = decoded(&sent_assertion(&upstream));
    assert_eq!(header["alg"], "ES256");
    assert_eq!(header["kid"], "chain-key");
    let expected: Vec<String> = [
        pki().cert_der("via-intermediate-leaf"),
        pki().cert_der("intermediate"),
    ]
    .iter()
    .map(|c| STANDARD.encode(c.as_ref()))
    .collect();
    assert_eq!(header["x5c"], serde_json::json!(expected));
    assert_eq!(
        claims["aud"], "https://idp.example/custom/aud",
        "one string, as written"
    );
    // Without x5c (the default) the header has no x5c member, and aud is the token endpoint.
    let upstream = FakeUpstream::start(ok_answer()).await;
    let mut setup = Setup::new().only_clients(&pki_client_with(""));
    setup.upstream = upstream.config("5s");
    setup.credential = credential("signing", "");
    let h = setup.start().await;
    assert_eq!(h.token(Some("client"), &form(PKI_CLIENT)).await.status, 200);
    h.stop().await;
    let (header, claims) = decoded(&sent_assertion(&upstream));
    assert!(
        header.get("x5c").is_none() && header.get("kid").is_none(),
        "{header}"
    );
    assert_eq!(
        claims["aud"],
        format!("https://127.0.0.1:{}/oauth2/token", upstream.addr.port())
    );
}

#[test]
fn an_entra_upstream_still_refuses_an_ec_credential_in_check() {
    let mut setup =
        Setup::new().credential(&credential("via-intermediate-leaf", "alg = \"ES256\""));
    setup.upstream =
        "[upstreams.dev]\ntype = \"entra\"\ntenant = \"contoso.onmicrosoft.com\"\n".into();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mtls-gateway"))
        .args(["check", "-c"])
        .arg(setup.write())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("credentials.dev: the key is not an RSA private key (PKCS#8 or PKCS#1): the certificate holds an EC key (ES256); Entra accepts RSA credentials only"),
        "{stderr}"
    );
    // The same credential on a generic upstream is fine.
    let mut setup =
        Setup::new().credential(&credential("via-intermediate-leaf", "alg = \"ES256\""));
    setup.upstream =
        "[upstreams.dev]\ntype = \"generic\"\ntoken_endpoint = \"https://idp.example/token\"\n"
            .into();
    assert!(mtls_gateway::config::load(&setup.write()).is_ok());
}

/// `openssl` output for `args` on `file`, if openssl is installed.
fn openssl_out(args: &[&str], stdin: Option<&[u8]>) -> Option<String> {
    use std::io::Write as _;
    let mut cmd = crate::support::openssl()?;
    let mut child = cmd
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .ok()?;
    if let Some(input) = stdin {
        child.stdin.take()?.write_all(input).ok()?;
    } else {
        drop(child.stdin.take());
    }
    let out = child.wait_with_output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    let clean: String = hex.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    (0..clean.len() / 2)
        .map(|i| u8::from_str_radix(&clean[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

/// RFC 7638 §3: the required members, lexicographic, no white space, SHA-256, base64url.
fn rfc7638(members: &[(&str, &str)]) -> String {
    let json = format!(
        "{{{}}}",
        members
            .iter()
            .map(|(k, v)| format!("\"{k}\":\"{v}\""))
            .collect::<Vec<_>>()
            .join(",")
    );
    URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        json.as_bytes(),
    ))
}

#[test]
fn jwks_prints_only_public_keys_that_match_openssl_and_an_independent_thumbprint() {
    let mut setup = Setup::new();
    setup.credential = format!(
        "{}{}",
        credential("signing", "kid = \"rsa-1\""),
        "[credentials.ec]\ncert = \"via-intermediate-chain.pem\"\nkey = \"via-intermediate-chain-key.pem\"\n"
    );
    let path = setup.write();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mtls-gateway"))
        .args(["jwks", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Standard output is the JWK Set and nothing else.
    let set: Value = serde_json::from_slice(&out.stdout).unwrap();
    let keys = set["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    let allowed = ["kty", "n", "e", "crv", "x", "y", "kid", "x5c", "x5t#S256"];
    for k in keys {
        for member in k.as_object().unwrap().keys() {
            assert!(allowed.contains(&member.as_str()), "member {member} in {k}");
        }
    }
    let rsa = keys.iter().find(|k| k["kty"] == "RSA").unwrap();
    let ec = keys.iter().find(|k| k["kty"] == "EC").unwrap();
    assert_eq!(rsa["kid"], "rsa-1");
    assert!(ec.get("kid").is_none(), "no kid configured, none printed");
    assert_eq!(
        rsa["x5t#S256"],
        mtls_gateway::identity::x5t_s256(pki().cert_der("signing").as_ref())
    );
    assert_eq!(
        ec["x5c"],
        serde_json::json!([
            STANDARD.encode(pki().cert_der("via-intermediate-leaf").as_ref()),
            STANDARD.encode(pki().cert_der("intermediate").as_ref())
        ])
    );
    // n and e, x and y as openssl reads the certificates.
    let rsa_pem = pki().get("signing").cert.as_bytes().to_vec();
    let Some(modulus) = openssl_out(&["x509", "-noout", "-modulus"], Some(&rsa_pem)) else {
        return;
    };
    let n = hex_bytes(modulus.trim().trim_start_matches("Modulus="));
    assert_eq!(rsa["n"], URL_SAFE_NO_PAD.encode(&n));
    assert_eq!(rsa["e"], "AQAB");
    let ec_pem = pki().get("via-intermediate-leaf").cert.as_bytes().to_vec();
    let spki = openssl_out(&["x509", "-noout", "-pubkey"], Some(&ec_pem)).unwrap();
    let text = openssl_out(
        &["pkey", "-pubin", "-noout", "-text"],
        Some(spki.as_bytes()),
    )
    .unwrap();
    let point_hex: String = text
        .split("pub:")
        .nth(1)
        .unwrap()
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with(' '))
        .collect();
    let point = hex_bytes(&point_hex);
    assert_eq!(point.len(), 65, "{text}");
    assert_eq!(ec["crv"], "P-256");
    assert_eq!(ec["x"], URL_SAFE_NO_PAD.encode(&point[1..33]));
    assert_eq!(ec["y"], URL_SAFE_NO_PAD.encode(&point[33..]));
    // `thumbprint FILE` prints the RFC 7638 thumbprint computed here from those members.
    let expected_rsa = rfc7638(&[
        ("e", "AQAB"),
        ("kty", "RSA"),
        ("n", rsa["n"].as_str().unwrap()),
    ]);
    let expected_ec = rfc7638(&[
        ("crv", "P-256"),
        ("kty", "EC"),
        ("x", ec["x"].as_str().unwrap()),
        ("y", ec["y"].as_str().unwrap()),
    ]);
    for (file, expected) in [
        ("signing.pem", expected_rsa),
        ("via-intermediate-leaf.pem", expected_ec),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_mtls-gateway"))
            .arg("thumbprint")
            .arg(setup.dir.path(file))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains(&format!("JWK thumbprint (RFC 7638): {expected}\n")),
            "{file}: {stdout}"
        );
    }
    // A name that is not a credential: exit 1, the known ones named.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mtls-gateway"))
        .args(["jwks", "-c"])
        .arg(&path)
        .arg("nope")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("no [credentials.nope]; the credentials are: dev, ec"));
}
