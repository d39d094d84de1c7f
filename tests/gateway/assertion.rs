//! SPEC §6: the client assertion as it leaves the gateway, verified by an independent JWT
//! implementation (jsonwebtoken) against the registered credential certificate.

use std::collections::HashMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use crate::support::upstream::{ok_answer, FakeUpstream};
use crate::support::*;

fn parse_form(body: &str) -> Vec<(String, String)> {
    body.split('&')
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(&s.replace('+', " "))
                    .decode_utf8()
                    .unwrap()
                    .into_owned()
            };
            (decode(k), decode(v))
        })
        .collect()
}

fn public_key(cert: &str) -> DecodingKey {
    let der = pki().cert_der(cert);
    let (_, parsed) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
    DecodingKey::from_rsa_der(parsed.public_key().subject_public_key.data.as_ref())
}

fn sha(alg: &'static aws_lc_rs::digest::Algorithm, cert: &str) -> String {
    URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
        alg,
        pki().cert_der(cert).as_ref(),
    ))
}

async fn captured(setup: Setup, upstream: &FakeUpstream, n: usize) -> Vec<HashMap<String, String>> {
    let h = setup.upstream(&upstream.config("5s")).start().await;
    for _ in 0..n {
        let answer = h
            .token(
                Some("client"),
                &format!("{}&extra=kept+as%20sent", form(PKI_CLIENT)),
            )
            .await;
        assert_eq!(
            answer.status,
            200,
            "{}",
            String::from_utf8_lossy(&answer.body)
        );
    }
    h.stop().await;
    upstream
        .forms()
        .into_iter()
        .map(|(_, body)| {
            let pairs = parse_form(&body);
            // Every parameter appears once.
            let map: HashMap<String, String> = pairs.iter().cloned().collect();
            assert_eq!(
                map.len(),
                pairs.len(),
                "a parameter was forwarded twice: {body}"
            );
            map
        })
        .collect()
}

#[tokio::test]
async fn the_rs256_assertion_verifies_against_the_registered_certificate() {
    let upstream = FakeUpstream::start(ok_answer()).await;
    let forms = captured(Setup::new(), &upstream, 2).await;
    let aud = format!("https://127.0.0.1:{}/oauth2/token", upstream.addr.port());
    let mut jtis = Vec::new();
    for form in &forms {
        assert_eq!(
            form["client_assertion_type"],
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        );
        assert_eq!(form["client_id"], PKI_CLIENT);
        assert_eq!(form["grant_type"], "client_credentials");
        assert_eq!(form["scope"], "api://billing/.default");
        assert_eq!(form["extra"], "kept as sent");
        let jwt = &form["client_assertion"];
        let header = jsonwebtoken::decode_header(jwt).unwrap();
        assert_eq!(header.alg, Algorithm::RS256);
        assert_eq!(header.typ.as_deref(), Some("JWT"));
        assert_eq!(
            header.x5t.as_deref(),
            Some(sha(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, "signing").as_str())
        );
        assert_eq!(header.x5t.as_ref().unwrap().len(), 27);
        assert!(header.x5t_s256.is_none(), "exactly one thumbprint header");
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_audience(&[&aud]);
        validation.set_issuer(&[PKI_CLIENT]);
        validation.sub = Some(PKI_CLIENT.to_string());
        validation.validate_nbf = true;
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "nbf", "aud", "iss", "sub"]);
        let claims = jsonwebtoken::decode::<Value>(jwt, &public_key("signing"), &validation)
            .unwrap()
            .claims;
        let (nbf, iat, exp) = (
            claims["nbf"].as_i64().unwrap(),
            claims["iat"].as_i64().unwrap(),
            claims["exp"].as_i64().unwrap(),
        );
        assert_eq!(nbf, iat);
        assert_eq!(exp - nbf, 300);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        assert!((now - nbf).abs() <= 5);
        let jti = claims["jti"].as_str().unwrap().to_string();
        assert_eq!(jti.len(), 36);
        assert_eq!(&jti[14..15], "4", "a v4 UUID: {jti}");
        jtis.push(jti);
        // And it does not verify with another key.
        assert!(jsonwebtoken::decode::<Value>(jwt, &public_key("signing2"), &validation).is_err());
    }
    assert_ne!(jtis[0], jtis[1], "a fresh jti per request");
    assert_ne!(
        forms[0]["client_assertion"], forms[1]["client_assertion"],
        "a fresh assertion per request"
    );
}

#[tokio::test]
async fn the_ps256_assertion_carries_x5t_s256_only() {
    let upstream = FakeUpstream::start(ok_answer()).await;
    let setup = Setup::new().credential(
        "[credentials.dev]\ncert = \"signing.pem\"\nkey = \"signing-key.pem\"\nalg = \"PS256\"\n",
    );
    let forms = captured(setup, &upstream, 1).await;
    let jwt = &forms[0]["client_assertion"];
    let header = jsonwebtoken::decode_header(jwt).unwrap();
    assert_eq!(header.alg, Algorithm::PS256);
    assert_eq!(
        header.x5t_s256.as_deref(),
        Some(sha(&aws_lc_rs::digest::SHA256, "signing").as_str())
    );
    assert!(header.x5t.is_none());
    let mut validation = Validation::new(Algorithm::PS256);
    validation.set_audience(&[format!(
        "https://127.0.0.1:{}/oauth2/token",
        upstream.addr.port()
    )]);
    jsonwebtoken::decode::<Value>(jwt, &public_key("signing"), &validation).unwrap();
}

#[tokio::test]
async fn the_embedded_idp_accepts_ps256_assertions() {
    let h = Setup::new()
        .credential("[credentials.dev]\ncert = \"signing.pem\"\nkey = \"signing-key.pem\"\nalg = \"PS256\"\n")
        .start()
        .await;
    assert_eq!(h.token(Some("client"), &form(PKI_CLIENT)).await.status, 200);
    h.stop().await;
}

#[tokio::test]
async fn the_aud_is_the_exact_url_posted_to_per_route() {
    // The embedded IdP refuses any other aud (AADSTS700023); each route must pass.
    let h = Setup::new().start().await;
    let c = h.client(Some("client"));
    for path in ["/token", "/contoso.onmicrosoft.com/oauth2/v2.0/token"] {
        let answer = c.post_form(&h.url(path), &form(PKI_CLIENT)).await.unwrap();
        assert_eq!(
            answer.status,
            200,
            "{path}: {}",
            String::from_utf8_lossy(&answer.body)
        );
    }
    h.stop().await;
}

#[tokio::test]
async fn a_pkcs12_credential_signs_like_pem() {
    use p12_keystore::{Certificate, KeyStore, KeyStoreEntry, PrivateKeyChain};
    use rustls_pki_types::pem::PemObject;
    let pki = pki();
    let key =
        rustls_pki_types::PrivateKeyDer::from_pem_slice(pki.get("signing").key.as_bytes()).unwrap();
    let cert = Certificate::from_der(pki.cert_der("signing").as_ref()).unwrap();
    let mut store = KeyStore::new();
    store.add_entry(
        "signing",
        KeyStoreEntry::PrivateKeyChain(PrivateKeyChain::new(
            key.secret_der(),
            [1u8; 20],
            vec![cert],
        )),
    );
    let pfx = store.writer("correct horse").write().unwrap();
    let setup = Setup::new().credential(
        "[credentials.dev]\npkcs12 = \"signing.pfx\"\npkcs12_password_env = \"MTLS_GATEWAY_TEST_PFX_PASSWORD\"\n",
    );
    write_file(&setup.dir.path("signing.pfx"), &pfx);
    let path = setup.write();
    let env = |v: Option<&str>| TestEnv(v.map(str::to_string));
    let config = mtls_gateway::config::load_with(&path, &env(Some("correct horse"))).unwrap();
    assert_eq!(
        config.credentials["dev"].x5t,
        sha(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, "signing")
    );
    let running = mtls_gateway::listener::start(config).await.unwrap();
    let url = format!("https://localhost:{}/token", running.addr.port());
    let answer = client_for(Some("client"), false)
        .post_form(&url, &form(PKI_CLIENT))
        .await
        .unwrap();
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    running.shutdown().await;
    // A wrong or missing password is a precise configuration error.
    let wrong = mtls_gateway::config::load_with(&path, &env(Some("wrong")))
        .unwrap_err()
        .to_string();
    assert!(wrong.contains("credentials.dev.pkcs12"), "{wrong}");
    let missing = mtls_gateway::config::load_with(&path, &env(None))
        .unwrap_err()
        .to_string();
    assert!(
        missing.contains("MTLS_GATEWAY_TEST_PFX_PASSWORD is not set"),
        "{missing}"
    );
}

struct TestEnv(Option<String>);

impl mtls_gateway::config::Env for TestEnv {
    fn var(&self, _: &str) -> Option<String> {
        self.0.clone()
    }
}
