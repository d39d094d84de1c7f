//! The decision endpoint (`[authz]`, SPEC §10): may this bearer token be used with this
//! certificate? Asked by the proxy in front of a resource server (nginx `auth_request`,
//! Envoy / Istio `ext_authz`), which passes the token in `Authorization` and the caller's
//! certificate in a `[front_proxy]`-format header.

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use http::header::{HeaderValue, AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::Full;

use crate::binding::{same_certificate, token_hash, Bindings};
use crate::config::{BindingMode, UnknownToken, UpstreamKind};
use crate::error::{error_response, ErrorKind, GatewayError};
use crate::forwarded::{Chain, HeaderFormat};
use crate::gateway::{ConnInfo, Gateway};

/// Header of an allow carrying the token's client.
pub const CLIENT_ID_HEADER: &str = "x-mtls-client-id";
/// Header of an allow carrying the certificate's `x5t#S256`.
pub const THUMBPRINT_HEADER: &str = "x-mtls-cert-thumbprint";
/// A JWT's `nbf` may be this far in the future (clock skew).
pub const NBF_LEEWAY_SECS: i64 = 300;

/// Why a token is refused; `description` is what the caller is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deny {
    /// The `binding_checks_total` result label.
    pub result: &'static str,
    /// The `error_description`.
    pub description: &'static str,
}

/// The answer to one question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The token may be used with this certificate.
    Allow {
        /// The client the token was issued to.
        client_id: Arc<str>,
        /// `x5t#S256` of the certificate.
        thumbprint: String,
    },
    /// No bearer token was presented.
    NoToken,
    /// Refused.
    Deny(Deny),
    /// The records (or the keys) cannot be read now.
    Unavailable(String),
}

impl Decision {
    /// Its `binding_checks_total` label.
    pub fn result(&self) -> &'static str {
        match self {
            Self::Allow { .. } => "allow",
            Self::NoToken => "no_token",
            Self::Deny(d) => d.result,
            Self::Unavailable(_) => "store_error",
        }
    }
}

const fn deny(result: &'static str, description: &'static str) -> Decision {
    Decision::Deny(Deny {
        result,
        description,
    })
}

/// RFC 6750 §2.1 `b64token` characters (before the trailing `=`s).
const B64TOKEN: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] =
            c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~' | b'+' | b'/');
        b += 1;
    }
    table
};

/// Whether `token` is one RFC 6750 §2.1 `b64token`.
pub fn well_formed(token: &str) -> bool {
    let bytes = token.as_bytes();
    let padding = bytes.iter().rev().take_while(|&&b| b == b'=').count();
    padding < bytes.len()
        && bytes[..bytes.len() - padding]
            .iter()
            .all(|&b| B64TOKEN[usize::from(b)])
}

/// A question's inputs: the bearer token and the caller's certificate chain.
#[derive(Debug)]
pub struct Inputs {
    /// The bearer token.
    pub token: String,
    /// Its SHA-256: the record's key and, shortened, its name in logs.
    pub hash: crate::binding::TokenHash,
    /// The certificate chain from the header, leaf first.
    pub chain: Chain,
}

/// Reads the token (RFC 6750 §2.1: `Authorization: Bearer b64token`) and the certificate.
pub fn inputs(format: HeaderFormat, headers: &HeaderMap) -> Result<Inputs, Decision> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Err(Decision::NoToken);
    };
    if values.next().is_some() {
        return Err(deny("unknown_token", "several Authorization headers"));
    }
    let malformed = || deny("unknown_token", "the Authorization header is malformed");
    let text = value.as_bytes().trim_ascii();
    let (scheme, token) = match memchr::memchr(b' ', text) {
        Some(i) => (&text[..i], text[i + 1..].trim_ascii_start()),
        None => (text, &b""[..]),
    };
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        // Another scheme carries no bearer token (RFC 6750 §3.1: no error code).
        return Err(Decision::NoToken);
    }
    // The full b64token check runs only for tokens without a record (`well_formed`): a token
    // with one matched, byte for byte, a token the gateway handed out.
    let token = match std::str::from_utf8(token) {
        Ok(t) if !t.is_empty() && t.len() <= crate::jwt::MAX_TOKEN_BYTES && !t.contains(' ') => t,
        _ => return Err(malformed()),
    };
    let chain = match crate::forwarded::read(format, headers) {
        Ok(Some(chain)) => chain,
        Ok(None) => {
            return Err(deny(
                "no_certificate",
                "no client certificate was presented with the token",
            ))
        }
        Err(e) => {
            tracing::debug!(error = %e, "authz: certificate header refused");
            return Err(deny(
                "no_certificate",
                "the client certificate header is malformed",
            ));
        }
    };
    Ok(Inputs {
        token: token.to_string(),
        hash: token_hash(token),
        chain,
    })
}

/// Decides from the token's record: `None` when it has none.
pub async fn by_record(bindings: &Bindings, inputs: &Inputs, now: u64) -> Option<Decision> {
    let record = match bindings.get(&inputs.hash, now).await {
        Ok(Some(r)) => r,
        Ok(None) => return None,
        Err(e) => return Some(Decision::Unavailable(e.to_string())),
    };
    if record.exp <= now {
        return Some(deny("expired", "the token has expired"));
    }
    let leaf = crate::identity::sha256(inputs.chain.first()?.as_ref());
    if !same_certificate(&record.cert_sha256, &leaf) {
        return Some(deny(
            "mismatch",
            "the token is bound to a different certificate",
        ));
    }
    Some(Decision::Allow {
        client_id: record.client_id,
        thumbprint: URL_SAFE_NO_PAD.encode(leaf),
    })
}

/// Decides whether the token in `headers` may be used with the certificate in them.
pub async fn decide(gw: &Gateway, format: HeaderFormat, headers: &HeaderMap, now: u64) -> Decision {
    match inputs(format, headers) {
        Ok(i) => decide_inputs(gw, &i, now).await,
        Err(d) => d,
    }
}

/// [`decide`] on inputs already read.
pub async fn decide_inputs(gw: &Gateway, inputs: &Inputs, now: u64) -> Decision {
    let Some(binding) = &gw.config.binding else {
        return Decision::Unavailable("[binding] is not configured".into());
    };
    if binding.mode == BindingMode::Certificate {
        if let Some(d) = by_record(&gw.bindings, inputs, now).await {
            return d;
        }
    }
    if !well_formed(&inputs.token) {
        return deny("unknown_token", "the Authorization header is malformed");
    }
    if binding.mode == BindingMode::Certificate && binding.on_unknown_token == UnknownToken::Deny {
        return deny("unknown_token", "the token is not known to this gateway");
    }
    by_registration(gw, inputs, now).await
}

/// Registration mode: a JWT of the client's own upstream, in date, whose client is
/// registered, presented with a certificate that passes that client's SPEC §5 match.
async fn by_registration(gw: &Gateway, inputs: &Inputs, now: u64) -> Decision {
    let unknown = deny(
        "unknown_token",
        "the token is not a valid token of a registered client",
    );
    let Ok(jwt) = crate::jwt::Jwt::parse(&inputs.token) else {
        return unknown;
    };
    let client = match jwt.str_claim("ver") {
        Some("1.0") => jwt.str_claim("appid"),
        _ => jwt.str_claim("azp").or_else(|| jwt.str_claim("appid")),
    };
    let Some(reg) = client.and_then(|c| gw.config.registry.get(c)) else {
        return unknown;
    };
    let Some(upstream) = gw.upstreams.get(&reg.upstream) else {
        return Decision::Unavailable("the client's upstream is not configured".into());
    };
    let keys = match upstream.token_keys(jwt.kid()).await {
        Ok(k) => k,
        Err(e) => return Decision::Unavailable(e.to_string()),
    };
    if keys.keys.verify(&jwt).is_err() {
        return unknown;
    }
    let issuer_ok = jwt.str_claim("iss").is_some_and(|iss| {
        issuer_accepted(&keys.issuer, &upstream.spec.kind, iss, jwt.str_claim("tid"))
    });
    if !issuer_ok {
        return unknown;
    }
    let now_i = i64::try_from(now).unwrap_or(i64::MAX);
    match jwt.time_claim("exp") {
        None => return unknown,
        Some(exp) if exp <= now_i => return deny("expired", "the token has expired"),
        Some(_) => {}
    }
    if jwt
        .time_claim("nbf")
        .is_some_and(|nbf| nbf > now_i.saturating_add(NBF_LEEWAY_SECS))
    {
        return unknown;
    }
    let peer = match gw
        .config
        .server
        .client_trust
        .peer_certificate(&inputs.chain)
    {
        Ok(p) => p,
        Err(_) => return deny("no_certificate", "the client certificate cannot be read"),
    };
    let trust = &gw.config.server.client_trust;
    if reg
        .authenticate(&peer, trust, gw.generation, now_i)
        .is_err()
    {
        return deny(
            "mismatch",
            "the certificate does not match the token's client registration",
        );
    }
    Decision::Allow {
        client_id: reg.client_id.as_str().into(),
        thumbprint: peer.identity.x5t_s256.clone(),
    }
}

/// Whether `iss` is the upstream's issuer. The metadata's `{tenantid}` placeholder (multi-tenant
/// documents) stands for the token's `tid`; for Entra, the v1 issuer
/// `https://sts.windows.net/{tenant id}/` of the same tenant is accepted too: which token
/// version Entra issues depends on the resource application, not on the endpoint.
pub fn issuer_accepted(expected: &str, kind: &UpstreamKind, iss: &str, tid: Option<&str>) -> bool {
    let expected = match tid {
        Some(t) if expected.contains("{tenantid}") => expected.replace("{tenantid}", t),
        _ => expected.to_string(),
    };
    if iss == expected {
        return true;
    }
    if let UpstreamKind::Entra { .. } = kind {
        let tenant = expected
            .split_once("://")
            .and_then(|(_, rest)| rest.split('/').nth(1))
            .filter(|t| !t.is_empty());
        if let Some(t) = tenant {
            return iss == format!("https://sts.windows.net/{t}/");
        }
    }
    false
}

fn bearer_error(description: &str) -> String {
    format!("Bearer error=\"invalid_token\", error_description=\"{description}\"")
}

/// Renders a decision.
pub fn response(decision: &Decision) -> Response<Full<Bytes>> {
    let builder = Response::builder().header(CACHE_CONTROL, "no-store");
    let built = match decision {
        Decision::Allow {
            client_id,
            thumbprint,
        } => {
            let mut b = builder.status(StatusCode::OK);
            if let Ok(v) = HeaderValue::from_str(client_id) {
                b = b.header(CLIENT_ID_HEADER, v);
            }
            b.header(THUMBPRINT_HEADER, thumbprint.as_str())
                .body(Full::new(Bytes::new()))
        }
        Decision::NoToken => builder
            .status(StatusCode::UNAUTHORIZED)
            .header(WWW_AUTHENTICATE, "Bearer")
            .body(Full::new(Bytes::new())),
        Decision::Deny(d) => builder
            .status(StatusCode::UNAUTHORIZED)
            .header(WWW_AUTHENTICATE, bearer_error(d.description))
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(
                serde_json::json!({"error": "invalid_token", "error_description": d.description})
                    .to_string(),
            ))),
        Decision::Unavailable(_) => {
            return error_response(
                &GatewayError::new(
                    ErrorKind::Unavailable,
                    "the binding decision cannot be made now; retry later",
                ),
                "",
            )
        }
    };
    built.unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

/// Serves one request on the `[authz]` listener.
pub async fn handle<B>(
    gw: Arc<Gateway>,
    conn: Arc<ConnInfo>,
    req: Request<B>,
) -> Response<Full<Bytes>> {
    let Some(authz) = gw.config.authz.as_ref() else {
        return error_response(
            &GatewayError::new(ErrorKind::Unavailable, "[authz] is not configured"),
            "",
        );
    };
    if !authz.trusts_peer(conn.peer_addr.ip()) {
        tracing::warn!(peer = %conn.peer_addr, "authz: request from a peer outside authz.trusted_peers refused");
        return error_response(
            &GatewayError::new(
                ErrorKind::Forbidden,
                "this listener serves authz.trusted_peers only",
            ),
            "",
        );
    }
    let path = req.uri().path();
    if path != "/authz" && !path.starts_with("/authz/") {
        return error_response(
            &GatewayError::new(ErrorKind::NotFound, "decisions are served under /authz/"),
            "",
        );
    }
    let now = crate::trust::now_secs().max(0) as u64;
    let (decision, token_ref) = match inputs(authz.format, req.headers()) {
        Ok(i) => (
            decide_inputs(&gw, &i, now).await,
            Some(crate::binding::log_ref(&i.hash)),
        ),
        Err(d) => (d, None),
    };
    let result = decision.result();
    gw.metrics.binding_check(result);
    match &decision {
        Decision::Allow {
            client_id,
            thumbprint,
        } => {
            tracing::debug!(target: "authz", peer = %conn.peer_addr, result, client_id = &**client_id, cert_x5t_s256 = thumbprint.as_str(), token_ref, "binding decision")
        }
        Decision::Unavailable(why) => {
            tracing::warn!(target: "authz", peer = %conn.peer_addr, result, reason = why.as_str(), token_ref, "binding decision")
        }
        Decision::NoToken => {
            tracing::info!(target: "authz", peer = %conn.peer_addr, result, "binding decision")
        }
        Decision::Deny(d) => {
            tracing::info!(target: "authz", peer = %conn.peer_addr, result, reason = d.description, token_ref, "binding decision")
        }
    }
    response(&decision)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn tokens_are_read_from_one_bearer_authorization() {
        let f = HeaderFormat::NginxEscaped;
        assert_eq!(inputs(f, &headers(&[])).unwrap_err(), Decision::NoToken);
        assert_eq!(
            inputs(f, &headers(&[("authorization", "Basic abc")])).unwrap_err(),
            Decision::NoToken
        );
        assert!(well_formed("abc.def-_~+/=="));
        assert!(!well_formed("a\"b") && !well_formed("==") && !well_formed(""));
        for bad in ["Bearer", "Bearer ", "Bearer a b"] {
            assert_eq!(
                inputs(f, &headers(&[("authorization", bad)]))
                    .unwrap_err()
                    .result(),
                "unknown_token",
                "{bad}"
            );
        }
        assert_eq!(
            inputs(
                f,
                &headers(&[("authorization", "Bearer a"), ("authorization", "Bearer b")])
            )
            .unwrap_err()
            .result(),
            "unknown_token"
        );
        // A good token without a certificate.
        assert_eq!(
            inputs(f, &headers(&[("authorization", "bearer abc.def-_~+/==")]))
                .unwrap_err()
                .result(),
            "no_certificate"
        );
    }

    #[test]
    fn entra_v1_and_v2_issuers_of_the_tenant_are_accepted() {
        let entra = UpstreamKind::Entra {
            authority: "https://login.microsoftonline.com".into(),
            tenant: "contoso.onmicrosoft.com".into(),
        };
        let v2 = "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0";
        assert!(issuer_accepted(v2, &entra, v2, None));
        assert!(issuer_accepted(
            v2,
            &entra,
            "https://sts.windows.net/72f988bf-86f1-41af-91ab-2d7cd011db47/",
            None
        ));
        assert!(!issuer_accepted(
            v2,
            &entra,
            "https://sts.windows.net/00000000-86f1-41af-91ab-2d7cd011db47/",
            None
        ));
        let generic = UpstreamKind::Generic {
            token_endpoint: "https://idp/token".into(),
            metadata_url: None,
        };
        assert!(!issuer_accepted(
            "https://idp",
            &generic,
            "https://other",
            None
        ));
        assert!(issuer_accepted(
            "https://login.microsoftonline.com/{tenantid}/v2.0",
            &generic,
            "https://login.microsoftonline.com/t1/v2.0",
            Some("t1")
        ));
    }
}
