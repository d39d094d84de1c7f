//! The embedded provider in a non-Entra profile (Okta, Auth0, Keycloak, PingFederate,
//! ForgeRock, a plain RFC 7523 server): the product's token endpoint path and issuer, keys
//! picked by `kid` (required where the product requires it), `aud` checked against what the
//! product accepts, RS256, PS256 and ES256 signatures, and RFC 6749 §5.2 errors
//! (`{"error", "error_description"}`) instead of Entra's AADSTS codes.

use std::sync::Arc;

use aws_lc_rs::signature::{self, UnparsedPublicKey};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, PRAGMA};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use serde_json::{json, Value};

use super::validate::{RegisteredKey, Verified, SKEW_SECS};
use super::{now, Idp, TOKEN_LIFETIME_SECS};
use crate::assertion::ASSERTION_TYPE;
use crate::config::IdpProfile;

/// Longest assertion lifetime accepted (Okta's limit: one hour).
const MAX_LIFETIME_SECS: i64 = 3600;

/// An RFC 6749 §5.2 refusal.
#[derive(Debug)]
pub struct OAuthError {
    /// HTTP status.
    pub status: StatusCode,
    /// `error`.
    pub error: &'static str,
    /// `error_description`.
    pub description: String,
}

fn client(description: impl Into<String>) -> OAuthError {
    OAuthError {
        status: StatusCode::UNAUTHORIZED,
        error: "invalid_client",
        description: description.into(),
    }
}

fn request(description: impl Into<String>) -> OAuthError {
    OAuthError {
        status: StatusCode::BAD_REQUEST,
        error: "invalid_request",
        description: description.into(),
    }
}

/// What a profile checks in an assertion.
#[derive(Debug, Clone)]
pub struct Rules {
    /// The header must name the key (`kid`).
    pub require_kid: bool,
    /// The `aud` values accepted (exactly one string, one of these).
    pub audiences: Vec<String>,
}

impl Rules {
    /// The rules of `profile` at `authority` for realm/tenant `tenant`.
    pub fn of(profile: IdpProfile, authority: &str, tenant: &str) -> Self {
        let token = format!("{authority}{}", profile.token_path(tenant));
        let issuer = profile.issuer(authority, tenant);
        let (require_kid, audiences) = match profile {
            IdpProfile::Okta => (true, vec![token]),
            IdpProfile::Auth0 => (true, vec![issuer]),
            IdpProfile::Keycloak => (false, vec![issuer, token]),
            IdpProfile::Entra | IdpProfile::Ping | IdpProfile::ForgeRock | IdpProfile::Generic => {
                (false, vec![token])
            }
        };
        Self {
            require_kid,
            audiences,
        }
    }
}

fn json_part(part: &str, what: &str) -> Result<Value, OAuthError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| client(format!("The client assertion's {what} is not base64url.")))?;
    let v: Value = serde_json::from_slice(&bytes)
        .map_err(|_| client(format!("The client assertion's {what} is not JSON.")))?;
    if v.is_object() {
        Ok(v)
    } else {
        Err(client(format!(
            "The client assertion's {what} is not a JSON object."
        )))
    }
}

/// The registered keys an assertion's header may mean: by `kid` when it names one (then that
/// key only), else by thumbprint, else every key of the client.
fn candidates<'k>(
    header: &Value,
    keys: &'k [RegisteredKey],
    rules: &Rules,
) -> Result<Vec<&'k RegisteredKey>, OAuthError> {
    let kid = header.get("kid").map(|k| k.as_str().ok_or(()));
    match kid {
        Some(Err(())) => Err(client("The client assertion's kid is not a string.")),
        Some(Ok(kid)) => {
            let found: Vec<_> = keys
                .iter()
                .filter(|k| k.kid.as_deref() == Some(kid))
                .collect();
            if found.is_empty() {
                Err(client(format!(
                    "No key with kid '{}' is registered for this client.",
                    kid.chars().take(64).collect::<String>()
                )))
            } else {
                Ok(found)
            }
        }
        None if rules.require_kid => Err(client(
            "The client assertion's header has no kid; this client's keys are selected by kid.",
        )),
        None => {
            let s256 = header.get("x5t#S256").and_then(Value::as_str);
            let x5t = header.get("x5t").and_then(Value::as_str);
            let by_thumbprint: Vec<_> = keys
                .iter()
                .filter(|k| s256 == Some(k.x5t_s256.as_str()) || x5t == Some(k.x5t.as_str()))
                .collect();
            Ok(if by_thumbprint.is_empty() {
                keys.iter().collect()
            } else {
                by_thumbprint
            })
        }
    }
}

/// Checks `jwt` as `client_id`'s assertion under `rules` at `now`.
pub fn verify(
    jwt: &str,
    client_id: &str,
    rules: &Rules,
    keys: &[RegisteredKey],
    now: i64,
) -> Result<Verified, OAuthError> {
    let parts: Vec<&str> = jwt.split('.').collect();
    let [h, c, s] = parts.as_slice() else {
        return Err(client("The client assertion is not a compact JWS."));
    };
    let header = json_part(h, "header")?;
    let claims = json_part(c, "payload")?;
    let sig = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| client("The client assertion's signature is not base64url."))?;
    let (alg, ec): (&'static dyn signature::VerificationAlgorithm, bool) =
        match header.get("alg").and_then(Value::as_str) {
            Some("RS256") => (&signature::RSA_PKCS1_2048_8192_SHA256, false),
            Some("PS256") => (&signature::RSA_PSS_2048_8192_SHA256, false),
            Some("ES256") => (&signature::ECDSA_P256_SHA256_FIXED, true),
            other => {
                return Err(client(format!(
                    "The client assertion's alg '{}' is not RS256, PS256 or ES256.",
                    other
                        .unwrap_or_default()
                        .chars()
                        .take(16)
                        .collect::<String>()
                )))
            }
        };
    let signed = &jwt[..h.len() + 1 + c.len()];
    let verified = candidates(&header, keys, rules)?.into_iter().any(|k| {
        k.ec == ec
            && UnparsedPublicKey::new(alg, &k.public_key)
                .verify(signed.as_bytes(), &sig)
                .is_ok()
    });
    if !verified {
        return Err(client(
            "The client assertion's signature does not verify with the client's registered key.",
        ));
    }
    check_claims(&claims, client_id, rules, now)
}

fn check_claims(
    claims: &Value,
    client_id: &str,
    rules: &Rules,
    now: i64,
) -> Result<Verified, OAuthError> {
    let text = |n: &str| claims.get(n).and_then(Value::as_str);
    if text("iss") != Some(client_id) || text("sub") != Some(client_id) {
        return Err(client(
            "The client assertion's iss and sub must be the client_id.",
        ));
    }
    match claims.get("aud") {
        Some(Value::String(aud)) if rules.audiences.iter().any(|a| a == aud) => {}
        Some(Value::String(aud)) => {
            return Err(client(format!(
                "The client assertion's aud '{}' is not {}.",
                aud.chars().take(200).collect::<String>(),
                rules.audiences.join(" or ")
            )))
        }
        _ => return Err(client("The client assertion's aud must be one string.")),
    }
    let Some(exp) = claims.get("exp").and_then(Value::as_i64) else {
        return Err(client("The client assertion has no exp."));
    };
    if now > exp.saturating_add(SKEW_SECS) {
        return Err(client("The client assertion has expired."));
    }
    let start = claims
        .get("nbf")
        .or_else(|| claims.get("iat"))
        .and_then(Value::as_i64)
        .unwrap_or(now);
    if start > now.saturating_add(SKEW_SECS) {
        return Err(client("The client assertion is not valid yet."));
    }
    if exp.saturating_sub(start) > MAX_LIFETIME_SECS {
        return Err(client("The client assertion lives longer than one hour."));
    }
    let Some(jti) = text("jti").filter(|j| !j.is_empty()) else {
        return Err(client("The client assertion has no jti."));
    };
    Ok(Verified {
        jti: jti.to_string(),
        exp,
    })
}

impl Idp {
    fn profile_token(&self, body: &[u8]) -> Result<Value, OAuthError> {
        let form = crate::form::parse_form(body).map_err(|e| {
            request(format!(
                "The request body is not a valid form: {}",
                e.description
            ))
        })?;
        let grant = form
            .get("grant_type")
            .ok_or_else(|| request("grant_type is required."))?;
        if grant != "client_credentials" {
            return Err(OAuthError {
                status: StatusCode::BAD_REQUEST,
                error: "unsupported_grant_type",
                description: "Only client_credentials is supported.".into(),
            });
        }
        let client_id = form
            .get("client_id")
            .ok_or_else(|| request("client_id is required."))?;
        if form.get("client_assertion_type") != Some(ASSERTION_TYPE) {
            return Err(client(format!(
                "client_assertion_type must be {ASSERTION_TYPE}."
            )));
        }
        let assertion = form
            .get("client_assertion")
            .ok_or_else(|| client("client_assertion is required."))?;
        let clients = self.clients.load();
        let keys = clients
            .get(client_id)
            .ok_or_else(|| client("The client is not registered."))?;
        let rules = Rules::of(self.profile, &self.authority, &self.tenant);
        let t = now();
        let verified = verify(assertion, client_id, &rules, keys, t)?;
        let fresh = self
            .replay
            .lock()
            .map(|mut r| r.first_use(&verified.jti, verified.exp, t))
            .unwrap_or(false);
        if !fresh {
            return Err(client("The client assertion's jti has been used before."));
        }
        let scope = form.get("scope").unwrap_or("api://default");
        let token = self
            .access_token(client_id, scope, t)
            .map_err(|_| OAuthError {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                error: "server_error",
                description: "The token could not be signed.".into(),
            })?;
        Ok(json!({
            "token_type": "Bearer",
            "expires_in": TOKEN_LIFETIME_SECS,
            "access_token": token,
            "scope": scope,
        }))
    }

    fn profile_discovery(&self) -> Value {
        let issuer = self.profile.issuer(&self.authority, &self.tenant);
        let base = issuer.trim_end_matches('/');
        json!({
            "issuer": issuer,
            "token_endpoint": format!("{}{}", self.authority, self.profile.token_path(&self.tenant)),
            "jwks_uri": format!("{base}/keys"),
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": ["RS256", "PS256", "ES256"],
        })
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "application/json")
        .header(CACHE_CONTROL, "no-store")
        .header(PRAGMA, "no-cache")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

fn refusal(e: &OAuthError) -> Response<Full<Bytes>> {
    json_response(
        e.status,
        &json!({"error": e.error, "error_description": e.description}),
    )
}

/// Serves one request of a non-Entra profile.
pub async fn handle(idp: &Arc<Idp>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let issuer = idp.profile.issuer(&idp.authority, &idp.tenant);
    let base_path = issuer
        .trim_end_matches('/')
        .strip_prefix(&idp.authority)
        .unwrap_or_default()
        .to_string();
    if path == idp.profile.token_path(&idp.tenant) {
        let body = match super::form_body(req).await {
            Ok(body) => body,
            Err(super::BodyRefusal::Method) => {
                return refusal(&OAuthError {
                    status: StatusCode::METHOD_NOT_ALLOWED,
                    error: "invalid_request",
                    description: "POST only.".into(),
                })
            }
            Err(super::BodyRefusal::ContentType) => {
                return refusal(&request(
                    "The body must be application/x-www-form-urlencoded.",
                ))
            }
            Err(super::BodyRefusal::Unreadable) => {
                return refusal(&request("The request body could not be read."))
            }
        };
        return match idp.profile_token(&body) {
            Ok(v) => json_response(StatusCode::OK, &v),
            Err(e) => refusal(&e),
        };
    }
    if path == format!("{base_path}/.well-known/openid-configuration")
        || path == format!("{base_path}/.well-known/oauth-authorization-server")
    {
        return json_response(StatusCode::OK, &idp.profile_discovery());
    }
    if path == format!("{base_path}/keys") {
        return json_response(StatusCode::OK, &idp.jwks());
    }
    json_response(
        StatusCode::NOT_FOUND,
        &json!({"error": "not_found", "error_description": "no such endpoint"}),
    )
}
