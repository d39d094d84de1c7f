//! Request routing for the main listener: request ids, the route table of SPEC §4, the
//! forwarded-certificate decision, and the audit event.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::{HeaderValue, CACHE_CONTROL, PRAGMA};
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Body;

use crate::error::error_response;
use crate::error::{ErrorKind, GatewayError, Origin};
use crate::gateway::{ConnInfo, Gateway, Presented};
use crate::token::{self, Audit};
use crate::upstream::TokenRoute;

/// Header carrying the request id.
pub const REQUEST_ID: &str = "x-request-id";

fn count_forwarded(gw: &Gateway, result: &'static str) {
    gw.metrics
        .forwarded_certificates
        .get_or_create(&crate::metrics::ResultLabels { result })
        .inc();
}

/// The plain listener serves trusted peers only (and nobody once a reload removed
/// `[front_proxy]` while the listener stays bound until restart).
fn denied(gw: &Gateway, conn: &ConnInfo) -> bool {
    if !conn.plain {
        return false;
    }
    let trusted = gw
        .config
        .front_proxy
        .as_ref()
        .is_some_and(|fp| fp.trusts_peer(conn.peer_addr.ip()));
    if !trusted {
        count_forwarded(gw, "denied_peer");
        tracing::warn!(peer = %conn.peer_addr, "plain listener: request from an untrusted peer refused");
    }
    !trusted
}

/// The certificate a token request presents (SPEC §3 `[front_proxy]`): a trusted proxy's
/// header when the peer may forward one (`Some`, or why the header was refused), otherwise
/// the handshake's (`None`; a header from anyone else is ignored, logged and counted).
fn forwarded<B>(
    gw: &Gateway,
    conn: &ConnInfo,
    req: &Request<B>,
) -> Option<Result<Presented, GatewayError>> {
    let fp = gw.config.front_proxy.as_ref()?;
    // On the mTLS listener, only a trusted peer that authenticated as a trusted proxy may
    // forward; on the plain listener, `denied` already admitted only trusted peers.
    let proxy_authenticated = match &conn.peer_cert {
        Some(Ok(proxy)) => fp.trusted_proxy_certs.contains(&proxy.identity.sha256),
        _ => false,
    };
    let may_forward = conn.plain || (fp.trusts_peer(conn.peer_addr.ip()) && proxy_authenticated);
    if !may_forward {
        if req.headers().contains_key(fp.format.header()) {
            count_forwarded(gw, "ignored");
            tracing::warn!(
                peer = %conn.peer_addr,
                header = fp.format.header(),
                "forwarded certificate header ignored: the peer is not an authenticated trusted proxy"
            );
        }
        return None;
    }
    let read = crate::forwarded::read(fp.format, req.headers())
        .map_err(|e| GatewayError::invalid_request(e.to_string()))
        .map(|chain| {
            chain.map(|chain| {
                let trust = &gw.config.server.client_trust;
                trust.peer_certificate(&chain).map(Arc::new)
            })
        });
    count_forwarded(
        gw,
        match &read {
            Ok(Some(_)) => "accepted",
            Ok(None) => "absent",
            Err(_) => "refused",
        },
    );
    Some(read)
}

enum Route<'a> {
    Token(TokenRoute, Option<&'a str>),
    Introspect,
    Metadata(Option<&'a str>),
    NotFound,
}

fn route(path: &str) -> Route<'_> {
    match path {
        "/token" => return Route::Token(TokenRoute::Default, None),
        "/introspect" => return Route::Introspect,
        "/.well-known/openid-configuration" | "/.well-known/oauth-authorization-server" => {
            return Route::Metadata(None)
        }
        _ => {}
    }
    let Some(rest) = path.strip_prefix('/') else {
        return Route::NotFound;
    };
    let Some((tenant, tail)) = rest.split_once('/') else {
        return Route::NotFound;
    };
    if tenant.is_empty() {
        return Route::NotFound;
    }
    match tail {
        "oauth2/v2.0/token" => Route::Token(TokenRoute::V2, Some(tenant)),
        "oauth2/token" => Route::Token(TokenRoute::V1, Some(tenant)),
        "v2.0/.well-known/openid-configuration" => Route::Metadata(Some(tenant)),
        _ => Route::NotFound,
    }
}

/// The request id to use: the incoming one when it is a short token, else a fresh one.
pub fn request_id<B>(req: &Request<B>) -> String {
    req.headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 128
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        })
        .map(str::to_string)
        .unwrap_or_else(fresh_id)
}

fn fresh_id() -> String {
    let mut b = [0u8; 16];
    // An id that fails to be random is still an id.
    let _ = aws_lc_rs::rand::fill(&mut b);
    crate::identity::hex_lower(&b)
}

/// Serves one request on the main listener.
pub async fn handle<B>(
    gw: Arc<Gateway>,
    conn: Arc<ConnInfo>,
    req: Request<B>,
) -> Response<Full<Bytes>>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if conn.authz {
        return crate::authz::handle(gw, conn, req).await;
    }
    let started = Instant::now();
    let id = request_id(&req);
    let path = req.uri().path().to_string();
    let (mut response, route_label, outcome) = match route(&path) {
        _ if denied(&gw, &conn) => {
            let e = GatewayError::new(
                ErrorKind::Forbidden,
                "this listener serves trusted proxies only",
            );
            let label = match route(&path) {
                Route::Token(..) => "token",
                Route::Introspect => "introspection",
                Route::Metadata(_) => "metadata",
                Route::NotFound => "other",
            };
            (error_response(&e, ""), label, e.kind.outcome())
        }
        Route::Token(which, tenant) => {
            let (response, outcome) =
                token_route(&gw, &conn, req, which, tenant, &id, started).await;
            (response, "token", outcome)
        }
        Route::Introspect => {
            let (mut response, outcome) = match crate::introspect::handle(&gw, &conn, req).await {
                Ok((r, _)) => (r, "success"),
                Err(e) => (error_response(&e, "POST"), e.kind.outcome()),
            };
            let headers = response.headers_mut();
            headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            (response, "introspection", outcome)
        }
        Route::Metadata(tenant) => {
            let (response, outcome) =
                if req.method() != http::Method::GET && req.method() != http::Method::HEAD {
                    let e = GatewayError::new(
                        ErrorKind::MethodNotAllowed,
                        "the metadata endpoint accepts GET only",
                    );
                    (error_response(&e, "GET"), e.kind.outcome())
                } else {
                    crate::metadata::handle(&gw, tenant).await
                };
            (response, "metadata", outcome)
        }
        Route::NotFound => {
            let e = GatewayError::new(
                ErrorKind::NotFound,
                "no such endpoint; POST token requests to /token",
            );
            (error_response(&e, ""), "other", e.kind.outcome())
        }
    };
    if route_label == "token" {
        // RFC 6749 §5.1, for every answer of the token endpoint, refusals included.
        let headers = response.headers_mut();
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    }
    gw.metrics
        .request(route_label, outcome, started.elapsed().as_secs_f64());
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, v);
    }
    response
}

/// A token request: the certificate it presents, the SPEC §4 checks, the audit event.
async fn token_route<B>(
    gw: &Gateway,
    conn: &ConnInfo,
    req: Request<B>,
    which: TokenRoute,
    tenant: Option<&str>,
    id: &str,
    started: Instant,
) -> (Response<Full<Bytes>>, &'static str)
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut audit = Audit {
        trace: crate::trace::from_headers(req.headers()),
        ..Audit::default()
    };
    let client_addr = client_addr(gw, conn, req.headers());
    let presented = match forwarded(gw, conn, &req) {
        Some(read) => {
            audit.forwarded = true;
            read
        }
        None => Ok(conn.peer_cert.clone()),
    };
    let result = token::handle(gw, presented, which, tenant, req, &mut audit).await;
    let (response, outcome, reason) = match result {
        Ok(r) => {
            let outcome = if r.status().is_success() {
                "success"
            } else {
                "upstream_error"
            };
            (r, outcome, None)
        }
        Err(e) => (error_response(&e, "POST"), e.kind.outcome(), Some(e)),
    };
    log_audit(
        id,
        conn,
        client_addr,
        &audit,
        outcome,
        reason.as_ref(),
        response.status().as_u16(),
        started,
    );
    (response, outcome)
}

/// Milliseconds rounded to the microsecond, as logs show them (`duration_ms=0.057`).
fn ms(seconds: f64) -> f64 {
    (seconds * 1_000_000.0).round() / 1000.0
}

/// The address of the client behind a trusted proxy: the last (rightmost) entry of the last
/// `X-Forwarded-For` header, the one the proxy itself appended; earlier entries were written
/// by whoever sent the request and are not believed. `None` when the peer is not a trusted
/// proxy or the entry is not an address.
fn client_addr(
    gw: &Gateway,
    conn: &ConnInfo,
    headers: &http::HeaderMap,
) -> Option<std::net::IpAddr> {
    let fp = gw.config.front_proxy.as_ref()?;
    if !fp.trusts_peer(conn.peer_addr.ip()) {
        return None;
    }
    let last = headers.get_all("x-forwarded-for").iter().next_back()?;
    let entry = last.to_str().ok()?.rsplit(',').next()?.trim();
    parse_forwarded_addr(entry)
}

/// `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1` or `[2001:db8::1]:4711`.
fn parse_forwarded_addr(entry: &str) -> Option<std::net::IpAddr> {
    if let Ok(ip) = entry.parse() {
        return Some(ip);
    }
    if let Ok(sa) = entry.parse::<std::net::SocketAddr>() {
        return Some(sa.ip());
    }
    entry
        .strip_prefix('[')
        .and_then(|e| e.strip_suffix(']'))
        .and_then(|e| e.parse().ok())
}

#[allow(clippy::too_many_arguments)]
fn log_audit(
    id: &str,
    conn: &ConnInfo,
    client_addr: Option<std::net::IpAddr>,
    audit: &Audit,
    outcome: &str,
    error: Option<&GatewayError>,
    status: u16,
    started: Instant,
) {
    let reason = error.map(|e| e.to_string());
    let level_is_warn = error.is_some_and(|e| e.kind.origin() != Origin::Client);
    macro_rules! audit_event {
        ($level:ident) => {
            tracing::$level!(
                target: "audit",
                request_id = id,
                peer = %conn.peer_addr,
                client_addr = client_addr.map(tracing::field::display),
                trace_id = audit.trace.as_ref().map(|t| t.trace_id.as_str()),
                client_id = audit.client_id.as_deref(),
                auth_method = audit.method,
                cert_source = if audit.forwarded { "forwarded" } else { "handshake" },
                token_cache = audit.cache,
                token_ref = audit.token_ref.as_deref(),
                cert_x5t_s256 = audit.cert.as_ref().map(|c| c.identity.x5t_s256.as_str()),
                cert_subject = audit.cert.as_ref().map(|c| c.identity.subject_display.as_str()),
                authenticated = audit.authenticated,
                outcome,
                reason = reason.as_deref(),
                status,
                upstream_status = audit.upstream_status,
                upstream_ms = audit.upstream_ms,
                duration_ms = ms(started.elapsed().as_secs_f64()),
                "token request"
            )
        };
    }
    if level_is_warn {
        audit_event!(warn);
    } else {
        audit_event!(info);
    }
}

#[cfg(test)]
mod tests {
    use super::parse_forwarded_addr;

    #[test]
    fn forwarded_addresses_parse_with_or_without_ports() {
        let ip = |s: &str| parse_forwarded_addr(s).map(|a| a.to_string());
        assert_eq!(ip("192.0.2.1").as_deref(), Some("192.0.2.1"));
        assert_eq!(ip("192.0.2.1:4711").as_deref(), Some("192.0.2.1"));
        assert_eq!(ip("2001:db8::1").as_deref(), Some("2001:db8::1"));
        assert_eq!(ip("[2001:db8::1]:4711").as_deref(), Some("2001:db8::1"));
        assert_eq!(ip("[2001:db8::1]").as_deref(), Some("2001:db8::1"));
        for bad in ["", "unknown", "_hidden", "192.0.2", "[::1"] {
            assert_eq!(ip(bad), None, "{bad}");
        }
    }
}
