//! The embedded provider's strict checks of a client assertion, each failure carrying the
//! AADSTS code and status Entra answers with (PROTOCOL.md §A).

use std::collections::HashMap;

use aws_lc_rs::signature::{self, UnparsedPublicKey};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::StatusCode;
use serde_json::Value;

/// Allowed clock skew for `exp` and `nbf`.
pub const SKEW_SECS: i64 = 60;
/// Longest assertion lifetime accepted (`exp` − `nbf`, or `exp` − `iat`).
pub const MAX_LIFETIME_SECS: i64 = 600;

/// An Entra-shaped refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AadError {
    /// HTTP status.
    pub status: StatusCode,
    /// OAuth `error`.
    pub error: &'static str,
    /// AADSTS number.
    pub code: u32,
    /// Message after `AADSTSnnnn: `.
    pub message: String,
}

impl AadError {
    /// A refusal.
    pub fn new(
        status: StatusCode,
        error: &'static str,
        code: u32,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            error,
            code,
            message: message.into(),
        }
    }

    fn client(code: u32, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid_client", code, message)
    }

    fn malformed(detail: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            50027,
            format!("JWT token is invalid or malformed. [Reason - {detail}]"),
        )
    }
}

/// A certificate registered for a client (the app registration's keyCredentials).
#[derive(Debug, Clone)]
pub struct RegisteredKey {
    /// base64url SHA-1 of the DER.
    pub x5t: String,
    /// base64url SHA-256 of the DER.
    pub x5t_s256: String,
    /// The certificate's subjectPublicKey: PKCS#1 RSAPublicKey DER, or an EC point.
    pub public_key: Vec<u8>,
    /// An EC key (ES256), which Entra never accepts.
    pub ec: bool,
    /// The key id registered with it.
    pub kid: Option<String>,
}

/// The claims a valid assertion vouches for.
#[derive(Debug)]
pub struct Verified {
    /// `jti`.
    pub jti: String,
    /// `exp`.
    pub exp: i64,
}

fn segment(part: &str, what: &str) -> Result<Vec<u8>, AadError> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| AadError::malformed(&format!("the {what} is not base64url")))
}

/// Checks `jwt` as the assertion of `client_id` posted to `audience`, at `now`.
pub fn verify_assertion(
    jwt: &str,
    client_id: &str,
    audience: &str,
    keys: &[RegisteredKey],
    now: i64,
) -> Result<Verified, AadError> {
    let claims = verify_signature(jwt, client_id, keys)?;
    check_claims(&claims, client_id, audience, now)
}

/// The JWS's form, algorithm, key (by `x5t` / `x5t#S256`) and signature; returns the claims.
fn verify_signature(jwt: &str, client_id: &str, keys: &[RegisteredKey]) -> Result<Value, AadError> {
    // RFC 7523 §2.2: a single JWT; compact JWS only.
    let parts: Vec<&str> = jwt.split('.').collect();
    let [h, c, s] = parts.as_slice() else {
        return Err(AadError::malformed("not a compact JWS of three parts"));
    };
    let header: Value = serde_json::from_slice(&segment(h, "header")?)
        .map_err(|_| AadError::malformed("the header is not JSON"))?;
    let claims: Value = serde_json::from_slice(&segment(c, "payload")?)
        .map_err(|_| AadError::malformed("the payload is not JSON"))?;
    let signature_bytes = segment(s, "signature")?;
    if !header.is_object() || !claims.is_object() {
        return Err(AadError::malformed(
            "header and payload must be JSON objects",
        ));
    }
    let alg = match header.get("alg").and_then(Value::as_str) {
        Some("RS256") => &signature::RSA_PKCS1_2048_8192_SHA256,
        Some("PS256") => &signature::RSA_PSS_2048_8192_SHA256,
        Some(other) => {
            return Err(AadError::malformed(&format!(
                "the algorithm '{}' is not supported; use RS256 or PS256",
                other.chars().take(16).collect::<String>()
            )))
        }
        None => return Err(AadError::malformed("the header has no alg")),
    };
    if let Some(typ) = header.get("typ") {
        if !typ.as_str().is_some_and(|t| t.eq_ignore_ascii_case("JWT")) {
            return Err(AadError::malformed("typ must be JWT"));
        }
    }
    let x5t = header.get("x5t").and_then(Value::as_str);
    let x5t_s256 = header.get("x5t#S256").and_then(Value::as_str);
    let key = match (x5t, x5t_s256) {
        (None, None) => {
            return Err(AadError::client(
                700027,
                "Client assertion failed signature validation. [Reason - The header has neither x5t nor x5t#S256.]",
            ))
        }
        _ => keys.iter().find(|k| {
            x5t.is_some_and(|t| t == k.x5t) || x5t_s256.is_some_and(|t| t == k.x5t_s256)
        }),
    };
    let Some(key) = key else {
        let shown = x5t.or(x5t_s256).unwrap_or_default();
        return Err(AadError::client(
            700027,
            format!(
                "Client assertion contains an invalid signature. [Reason - The key was not found., Thumbprint of key used by client: '{}', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '{client_id}'.]",
                shown.chars().take(64).collect::<String>()
            ),
        ));
    };
    let signed = &jwt[..h.len() + 1 + c.len()];
    if key.ec {
        return Err(AadError::client(
            700027,
            "Client assertion contains an invalid signature. [Reason - The key is not an RSA key.]",
        ));
    }
    UnparsedPublicKey::new(alg, &key.public_key)
        .verify(signed.as_bytes(), &signature_bytes)
        .map_err(|_| {
            AadError::client(
                700027,
                "Client assertion contains an invalid signature. [Reason - The provided signature value did not match the expected signature value.]",
            )
        })?;
    Ok(claims)
}

/// `iss`, `sub`, `aud`, `exp`, `nbf`, lifetime and `jti`, with Entra's codes.
fn check_claims(
    claims: &Value,
    client_id: &str,
    audience: &str,
    now: i64,
) -> Result<Verified, AadError> {
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    let number = |name: &str| claims.get(name).and_then(Value::as_i64);
    let Some(iss) = text("iss") else {
        return Err(AadError::malformed("the iss claim is missing"));
    };
    let Some(sub) = text("sub") else {
        return Err(AadError::malformed("the sub claim is missing"));
    };
    if iss != client_id {
        return Err(AadError::client(
            700021,
            "Client assertion application identifier doesn't match 'client_id' parameter.",
        ));
    }
    if sub != iss {
        return Err(AadError::client(
            50048,
            "Subject mismatches Issuer claim in the client assertion.",
        ));
    }
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => a == audience,
        Some(Value::Array(list)) => list.len() == 1 && list[0].as_str() == Some(audience),
        _ => false,
    };
    if !aud_ok {
        return Err(AadError::client(
            700023,
            "Client assertion audience claim does not match Realm issuer.",
        ));
    }
    let Some(exp) = number("exp") else {
        return Err(AadError::malformed("the exp claim is missing"));
    };
    let Some(jti) = text("jti").filter(|j| !j.is_empty()) else {
        return Err(AadError::malformed("the jti claim is missing"));
    };
    let nbf = number("nbf");
    let iat = number("iat");
    let window = |detail: &str| {
        AadError::client(
            700024,
            format!(
                "Client assertion is not within its valid time range. Current time: {now}, assertion valid from {}, expiry time of assertion {exp}. [Reason - {detail}]",
                nbf.or(iat).map(|t| t.to_string()).unwrap_or_else(|| "-".into())
            ),
        )
    };
    // Saturating arithmetic: hostile claims near i64::MIN/MAX neither overflow nor wrap.
    if now > exp.saturating_add(SKEW_SECS) {
        return Err(window("The assertion has expired."));
    }
    if nbf.is_some_and(|n| n > now.saturating_add(SKEW_SECS)) {
        return Err(window("The assertion is not yet valid."));
    }
    let start = nbf.or(iat).unwrap_or(now);
    if exp.saturating_sub(start) > MAX_LIFETIME_SECS {
        return Err(window("The assertion lifetime exceeds 10 minutes."));
    }
    Ok(Verified {
        jti: jti.to_string(),
        exp,
    })
}

/// `jti` values seen until their assertion expires (replay refused). Expired entries leave in
/// amortised O(log n) per request (a min-heap by expiry); at most [`REPLAY_CACHE_MAX`] are
/// held, the soonest to expire going first when it is full.
#[derive(Debug, Default)]
pub struct ReplayCache {
    seen: HashMap<String, i64>,
    by_expiry: std::collections::BinaryHeap<std::cmp::Reverse<(i64, String)>>,
}

/// The most `jti` values the embedded IdP remembers.
pub const REPLAY_CACHE_MAX: usize = 1_000_000;

impl ReplayCache {
    /// Records `jti`; false when it was already used.
    pub fn first_use(&mut self, jti: &str, exp: i64, now: i64) -> bool {
        while let Some(std::cmp::Reverse((e, _))) = self.by_expiry.peek() {
            let expired = e.saturating_add(SKEW_SECS) < now;
            if !expired && self.seen.len() < REPLAY_CACHE_MAX {
                break;
            }
            if let Some(std::cmp::Reverse((_, old))) = self.by_expiry.pop() {
                self.seen.remove(&old);
            }
        }
        if self.seen.contains_key(jti) {
            return false;
        }
        self.seen.insert(jti.to_string(), exp);
        self.by_expiry
            .push(std::cmp::Reverse((exp, jti.to_string())));
        true
    }

    /// How many `jti` values are held.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod replay_tests {
    use super::*;

    #[test]
    fn expired_jtis_leave_and_replays_are_refused() {
        let mut cache = ReplayCache::default();
        assert!(cache.first_use("a", 100, 0));
        assert!(!cache.first_use("a", 100, 1));
        for i in 0..1000 {
            assert!(cache.first_use(&format!("j{i}"), 200, 1));
        }
        assert_eq!(cache.len(), 1001);
        // Past every exp (and the skew): all leave on the next use.
        assert!(cache.first_use("b", 10_000, 1_000));
        assert_eq!(cache.len(), 1);
    }
}
