//! Entra workload identity federation in the embedded provider (SPEC §12): a client
//! assertion issued by an external identity provider (an AKS cluster's service-account
//! token) is accepted when its issuer, subject and audience match a federated credential and
//! its signature verifies with that issuer's keys, as Entra does; refusals carry Entra's codes.

use http::StatusCode;
use serde_json::Value;

use super::validate::{AadError, SKEW_SECS};
use crate::config::FederatedCredential;
use crate::jwt::{Jwt, KeySet};

/// A federated credential with its keys read.
#[derive(Debug)]
pub struct Federated {
    /// The credential.
    pub credential: FederatedCredential,
    keys: KeySet,
}

/// Reads the keys of each credential.
pub fn load(credentials: &[FederatedCredential]) -> Result<Vec<Federated>, String> {
    credentials
        .iter()
        .map(|c| {
            KeySet::from_json(&c.jwks)
                .map(|keys| Federated {
                    credential: c.clone(),
                    keys,
                })
                .map_err(|e| format!("federated credential {}: {e}", c.issuer))
        })
        .collect()
}

/// Whether `assertion` is meant as a federated token: its `iss` is not the client itself.
pub fn is_federated(assertion: &str, client_id: &str) -> bool {
    Jwt::parse(assertion).is_ok_and(|j| j.str_claim("iss").is_some_and(|iss| iss != client_id))
}

fn no_match(code: u32, what: &str, value: &str) -> AadError {
    AadError::new(
        StatusCode::BAD_REQUEST,
        "invalid_client",
        code,
        format!(
            "No matching federated identity record found for presented assertion {what} '{}'. Please check your federated identity credential Subject, Audience and Issuer against the presented assertion.",
            value.chars().take(256).collect::<String>()
        ),
    )
}

/// Checks a federated assertion at `now` against `credentials`.
pub fn verify(assertion: &str, credentials: &[Federated], now: i64) -> Result<(), AadError> {
    let malformed = |why: &str| {
        AadError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            50027,
            format!("JWT token is invalid or malformed. [Reason - {why}]"),
        )
    };
    let jwt = Jwt::parse(assertion).map_err(|e| malformed(&e.to_string()))?;
    let iss = jwt.str_claim("iss").unwrap_or_default();
    let by_issuer: Vec<&Federated> = credentials
        .iter()
        .filter(|f| f.credential.issuer == iss)
        .collect();
    if by_issuer.is_empty() {
        return Err(no_match(700211, "issuer", iss));
    }
    let audiences: Vec<&str> = match jwt.claims.get("aud") {
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let by_audience: Vec<&Federated> = by_issuer
        .into_iter()
        .filter(|f| audiences.contains(&f.credential.audience.as_str()))
        .collect();
    if by_audience.is_empty() {
        return Err(no_match(700212, "audience", &audiences.join(",")));
    }
    let sub = jwt.str_claim("sub").unwrap_or_default();
    let Some(matched) = by_audience
        .into_iter()
        .find(|f| f.credential.subject == sub)
    else {
        return Err(no_match(700213, "subject", sub));
    };
    if matched.keys.verify(&jwt).is_err() {
        return Err(AadError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            700027,
            "Client assertion failed signature validation.",
        ));
    }
    let exp = jwt
        .time_claim("exp")
        .ok_or_else(|| malformed("exp is missing"))?;
    let nbf = jwt.time_claim("nbf").unwrap_or(i64::MIN);
    if exp.saturating_add(SKEW_SECS) < now || nbf.saturating_sub(SKEW_SECS) > now {
        return Err(AadError::new(
            StatusCode::BAD_REQUEST,
            "invalid_client",
            700024,
            "Client assertion is not within its valid time range.",
        ));
    }
    Ok(())
}
