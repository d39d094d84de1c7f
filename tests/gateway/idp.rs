//! The embedded identity provider refuses each bad assertion the way Entra does: status,
//! `error`, AADSTS code, and Entra's error body shape. Assertions are made with an independent
//! JWT library and posted over real HTTPS.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{json, Value};

use crate::support::*;
use mtls_gateway::client::{Answer, MtlsClient};

struct Idp {
    harness: Harness,
    client: MtlsClient,
    base: String,
}

const TENANT: &str = "contoso.onmicrosoft.com";

impl Idp {
    async fn start() -> Self {
        let harness = Setup::new().start().await;
        let running = harness.running.as_ref().unwrap();
        let client = MtlsClient::new(&[running.idp_cas["dev"].clone()], None, false).unwrap();
        let base = format!("https://{}", running.idp_addrs["dev"]);
        Self {
            harness,
            client,
            base,
        }
    }

    fn aud(&self) -> String {
        format!("{}/{TENANT}/oauth2/v2.0/token", self.base)
    }

    async fn post(&self, form: &str) -> Answer {
        self.client.post_form(&self.aud(), form).await.unwrap()
    }

    async fn with_assertion(&self, jwt: &str) -> Answer {
        self.post(&format!(
            "grant_type=client_credentials&client_id={PKI_CLIENT}&scope={SCOPE}&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={jwt}"
        ))
        .await
    }

    fn claims(&self) -> Value {
        let now = now();
        json!({"aud": self.aud(), "iss": PKI_CLIENT, "sub": PKI_CLIENT, "jti": uuid(), "nbf": now, "iat": now, "exp": now + 300})
    }
}

pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub(crate) fn uuid() -> String {
    mtls_gateway::assertion::uuid_v4(&aws_lc_rs::rand::SystemRandom::new()).unwrap()
}

fn x5t(cert: &str) -> String {
    mtls_gateway::identity::x5t(pki().cert_der(cert).as_ref())
}

/// Signs `claims` with the key of `key_of`, naming the certificate `thumbprint_of`.
pub(crate) fn sign(alg: Algorithm, claims: &Value, key_of: &str, thumbprint_of: &str) -> String {
    let mut header = Header::new(alg);
    header.x5t = Some(x5t(thumbprint_of));
    let key = EncodingKey::from_rsa_pem(pki().get(key_of).key.as_bytes()).unwrap();
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

#[track_caller]
fn assert_aadsts(answer: &Answer, status: u16, error: &str, code: u32) {
    let body = answer.json();
    assert_eq!(answer.status.as_u16(), status, "{body}");
    assert_eq!(body["error"], error, "{body}");
    assert_eq!(body["error_codes"], json!([code]), "{body}");
    let description = body["error_description"].as_str().unwrap();
    assert!(
        description.starts_with(&format!("AADSTS{code}: ")),
        "{description}"
    );
    for field in ["timestamp", "trace_id", "correlation_id"] {
        assert!(body[field].is_string(), "{field} missing: {body}");
    }
}

#[tokio::test]
async fn a_good_assertion_gets_a_token_that_verifies_with_the_jwks() {
    let idp = Idp::start().await;
    let answer = idp
        .with_assertion(&sign(Algorithm::RS256, &idp.claims(), "signing", "signing"))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.json());
    let body = answer.json();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3599);
    assert_eq!(body["ext_expires_in"], 3599);
    let jwks = idp
        .client
        .get(&format!("{}/{TENANT}/discovery/v2.0/keys", idp.base))
        .await
        .unwrap()
        .json();
    let key = &jwks["keys"][0];
    let decoding =
        DecodingKey::from_rsa_components(key["n"].as_str().unwrap(), key["e"].as_str().unwrap())
            .unwrap();
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&["api://billing"]);
    validation.set_issuer(&[format!("{}/{TENANT}/v2.0", idp.base)]);
    let token = jsonwebtoken::decode::<Value>(
        body["access_token"].as_str().unwrap(),
        &decoding,
        &validation,
    )
    .unwrap();
    assert_eq!(token.claims["appid"], PKI_CLIENT);
    assert_eq!(token.claims["tid"], TENANT);
    assert_eq!(
        jsonwebtoken::decode_header(body["access_token"].as_str().unwrap())
            .unwrap()
            .kid
            .as_deref(),
        key["kid"].as_str()
    );
    idp.harness.stop().await;
}

#[tokio::test]
async fn signature_and_key_failures_are_700027() {
    let idp = Idp::start().await;
    // Signed with another key than the certificate it names.
    let wrong_key = sign(Algorithm::RS256, &idp.claims(), "signing2", "signing");
    assert_aadsts(
        &idp.with_assertion(&wrong_key).await,
        401,
        "invalid_client",
        700027,
    );
    // Names a certificate that is not registered.
    let unknown = sign(Algorithm::RS256, &idp.claims(), "signing2", "signing2");
    let answer = idp.with_assertion(&unknown).await;
    assert_aadsts(&answer, 401, "invalid_client", 700027);
    assert!(answer.json()["error_description"]
        .as_str()
        .unwrap()
        .contains("The key was not found"));
    // No thumbprint at all.
    let key = EncodingKey::from_rsa_pem(pki().get("signing").key.as_bytes()).unwrap();
    let bare = jsonwebtoken::encode(&Header::new(Algorithm::RS256), &idp.claims(), &key).unwrap();
    assert_aadsts(
        &idp.with_assertion(&bare).await,
        401,
        "invalid_client",
        700027,
    );
    idp.harness.stop().await;
}

#[tokio::test]
async fn claim_failures_have_entras_codes() {
    let idp = Idp::start().await;
    let cases: Vec<(&str, Value, u16, &str, u32)> = vec![
        (
            "wrong aud",
            json!({"aud": "https://login.microsoftonline.com/other/oauth2/v2.0/token"}),
            401,
            "invalid_client",
            700023,
        ),
        (
            "iss is not the client_id",
            json!({"iss": "someone-else", "sub": "someone-else"}),
            401,
            "invalid_client",
            700021,
        ),
        (
            "sub differs from iss",
            json!({"sub": "someone-else"}),
            401,
            "invalid_client",
            50048,
        ),
        (
            "expired",
            json!({"nbf": now() - 900, "iat": now() - 900, "exp": now() - 600}),
            401,
            "invalid_client",
            700024,
        ),
        (
            "not yet valid",
            json!({"nbf": now() + 600, "iat": now() + 600, "exp": now() + 900}),
            401,
            "invalid_client",
            700024,
        ),
        (
            "lives too long",
            json!({"exp": now() + 3600}),
            401,
            "invalid_client",
            700024,
        ),
        (
            "hostile times that would overflow",
            json!({"nbf": i64::MIN, "iat": i64::MIN, "exp": i64::MAX}),
            401,
            "invalid_client",
            700024,
        ),
        (
            "no exp",
            json!({"exp": null}),
            400,
            "invalid_request",
            50027,
        ),
        (
            "no jti",
            json!({"jti": null}),
            400,
            "invalid_request",
            50027,
        ),
        (
            "no iss",
            json!({"iss": null}),
            400,
            "invalid_request",
            50027,
        ),
    ];
    for (what, changes, status, error, code) in cases {
        let mut claims = idp.claims();
        for (k, v) in changes.as_object().unwrap() {
            if v.is_null() {
                claims.as_object_mut().unwrap().remove(k);
            } else {
                claims[k] = v.clone();
            }
        }
        let answer = idp
            .with_assertion(&sign(Algorithm::RS256, &claims, "signing", "signing"))
            .await;
        assert_eq!(answer.status.as_u16(), status, "{what}: {}", answer.json());
        assert_aadsts(&answer, status, error, code);
    }
    idp.harness.stop().await;
}

#[tokio::test]
async fn a_replayed_jti_is_refused() {
    let idp = Idp::start().await;
    let jwt = sign(Algorithm::RS256, &idp.claims(), "signing", "signing");
    assert_eq!(idp.with_assertion(&jwt).await.status, 200);
    let again = idp.with_assertion(&jwt).await;
    assert_aadsts(&again, 400, "invalid_request", 50027);
    assert!(again.json()["error_description"]
        .as_str()
        .unwrap()
        .contains("jti"));
    idp.harness.stop().await;
}

#[tokio::test]
async fn wrong_algorithms_and_garbage_are_50027() {
    let idp = Idp::start().await;
    let mut header = Header::new(Algorithm::HS256);
    header.x5t = Some(x5t("signing"));
    let hs256 = jsonwebtoken::encode(
        &header,
        &idp.claims(),
        &EncodingKey::from_secret(b"a shared secret"),
    )
    .unwrap();
    let b64 = |v: &Value| {
        base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            v.to_string(),
        )
    };
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT", "x5t": x5t("signing")})),
        b64(&idp.claims())
    );
    for jwt in [
        hs256.as_str(),
        none.as_str(),
        "garbage",
        "a.b.c",
        "e30.e30.e30.e30",
    ] {
        assert_aadsts(
            &idp.with_assertion(jwt).await,
            400,
            "invalid_request",
            50027,
        );
    }
    idp.harness.stop().await;
}

#[tokio::test]
async fn request_level_failures_have_entras_codes() {
    let idp = Idp::start().await;
    let jwt = sign(Algorithm::RS256, &idp.claims(), "signing", "signing");
    let no_assertion = idp
        .post(&format!(
            "grant_type=client_credentials&client_id={PKI_CLIENT}&scope={SCOPE}"
        ))
        .await;
    assert_aadsts(&no_assertion, 401, "invalid_client", 7000218);
    let secret = idp
        .post(&format!(
            "grant_type=client_credentials&client_id={PKI_CLIENT}&scope={SCOPE}&client_secret=x"
        ))
        .await;
    assert_aadsts(&secret, 401, "invalid_client", 7000215);
    let unknown_app = idp
        .post(&format!("grant_type=client_credentials&client_id=nobody&scope={SCOPE}&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={jwt}"))
        .await;
    assert_aadsts(&unknown_app, 400, "unauthorized_client", 700016);
    let bad_scope = idp
        .post(&format!("grant_type=client_credentials&client_id={PKI_CLIENT}&scope=api%3A%2F%2Fbilling&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={}", sign(Algorithm::RS256, &idp.claims(), "signing", "signing")))
        .await;
    assert_aadsts(&bad_scope, 400, "invalid_scope", 1002012);
    let other_tenant = idp
        .client
        .post_form(
            &format!("{}/fabrikam.onmicrosoft.com/oauth2/v2.0/token", idp.base),
            "grant_type=client_credentials",
        )
        .await
        .unwrap();
    assert_aadsts(&other_tenant, 400, "invalid_request", 90002);
    idp.harness.stop().await;
}
