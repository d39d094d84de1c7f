//! The token endpoint: the ordered checks of SPEC §4, one function each, then the forward.

use std::sync::Arc;
use std::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use http::{Method, Request, Response};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Body;

use crate::error::{ErrorKind, GatewayError};
use crate::form::{parse_form, printable, Form};
use crate::gateway::{Gateway, Presented};
use crate::metrics::{UpstreamLabels, UpstreamNameLabels};
use crate::registry::{AuthFailure, Registration};
use crate::trust::{now_secs, PeerCertificate};
use crate::upstream::TokenRoute;

mod answer;
use answer::Ready;

/// What the audit event of one token request records. Never a token, assertion or secret.
#[derive(Debug, Default)]
pub struct Audit {
    /// client_id as sent (truncated), if any.
    pub client_id: Option<String>,
    /// The registered auth method.
    pub method: Option<&'static str>,
    /// The presented certificate (its `x5t#S256` and subject are logged), whether or not the
    /// client_id is known and the certificate matches.
    pub cert: Option<Arc<PeerCertificate>>,
    /// Upstream status, when forwarded.
    pub upstream_status: Option<u16>,
    /// Upstream latency in milliseconds.
    pub upstream_ms: Option<f64>,
    /// Whether the client authenticated (certificate matched its registration).
    pub authenticated: bool,
    /// Whether the certificate came from a trusted proxy's header.
    pub forwarded: bool,
    /// `hit` or `miss` when the client's token cache was consulted.
    pub cache: Option<&'static str>,
    /// The issued token's binding reference ([`crate::binding::log_ref`]), never the token.
    pub token_ref: Option<String>,
    /// The client's W3C trace context, continued to the upstream.
    pub trace: Option<crate::trace::TraceParent>,
}

/// Step 1: method, content type, size; the body read within `request_timeout`. `endpoint`
/// names the endpoint in the refusal of another method. Also the introspection endpoint's.
pub async fn read_body<B>(
    gw: &Gateway,
    req: Request<B>,
    endpoint: &str,
) -> Result<Bytes, GatewayError>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if req.method() != Method::POST {
        return Err(GatewayError::new(
            ErrorKind::MethodNotAllowed,
            format!("the {endpoint} endpoint accepts POST only"),
        ));
    }
    let form_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| {
            t.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !form_type {
        return Err(GatewayError::invalid_request(
            "Content-Type must be application/x-www-form-urlencoded",
        ));
    }
    let limits = &gw.config.limits;
    let too_large = || {
        GatewayError::new(
            ErrorKind::PayloadTooLarge,
            format!("the request body exceeds {} bytes", limits.max_body_bytes),
        )
    };
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let body = req.into_body();
    if declared.is_some_and(|n| n > limits.max_body_bytes as u64) {
        drain(body).await;
        return Err(too_large());
    }
    let read = Limited::new(body, limits.max_body_bytes).collect();
    match tokio::time::timeout(limits.request_timeout, read).await {
        Err(_) => Err(GatewayError::new(
            ErrorKind::RequestTimeout,
            "the request body did not arrive within the request timeout",
        )),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Ok(Err(e)) => Err(
            GatewayError::invalid_request("the request body could not be read")
                .with_reason(e.to_string()),
        ),
    }
}

/// Reads and discards up to 1 MiB (for at most 2 s) of a refused body, so that the client,
/// still sending, receives the 413 instead of a connection reset.
async fn drain<B>(body: B)
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    const DRAIN_BYTES: usize = 1 << 20;
    let limited = Limited::new(body, DRAIN_BYTES);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), limited.collect()).await;
}

/// Step 3: this endpoint authenticates by mTLS only (RFC 6749 §5.2: 401 + WWW-Authenticate
/// of the scheme the client tried).
fn reject_authorization_header<B>(req: &Request<B>) -> Result<(), GatewayError> {
    let Some(value) = req.headers().get(AUTHORIZATION) else {
        return Ok(());
    };
    let scheme = value
        .to_str()
        .ok()
        .and_then(|v| v.split_whitespace().next())
        .filter(|s| s.len() <= 32 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        .unwrap_or("Basic");
    let mut err = GatewayError::invalid_client(
        "this endpoint authenticates clients by mutual TLS only; remove the Authorization header",
    );
    err.www_authenticate = Some(format!("{scheme} realm=\"mtls-gateway\""));
    Err(err)
}

/// Steps 4 and 5: `client_id` and `grant_type` present; no other client authentication.
fn required_parameters<'f>(form: &'f Form<'_>) -> Result<(&'f str, &'f str), GatewayError> {
    let client_id = form.get("client_id").ok_or_else(|| {
        GatewayError::invalid_request("the client_id parameter is required (RFC 8705 §2)")
    })?;
    let grant_type = form
        .get("grant_type")
        .ok_or_else(|| GatewayError::invalid_request("the grant_type parameter is required"))?;
    for other in ["client_secret", "client_assertion", "client_assertion_type"] {
        if form.get(other).is_some() {
            return Err(GatewayError::invalid_request(format!(
                "the request utilizes more than one authentication method: remove {other}; the client is authenticated by its TLS certificate"
            )));
        }
    }
    Ok((client_id, grant_type))
}

/// Step 6: the client is registered, and a tenant in the path is its upstream's tenant.
fn registration<'g>(
    gw: &'g Gateway,
    client_id: &str,
    tenant: Option<&str>,
) -> Result<&'g std::sync::Arc<Registration>, GatewayError> {
    let reg = gw.config.registry.get(client_id).ok_or_else(|| {
        GatewayError::invalid_client("the client_id is not registered at this gateway")
    })?;
    if let Some(tenant) = tenant {
        let expected = gw
            .config
            .upstreams
            .get(&reg.upstream)
            .and_then(|u| u.kind.tenant());
        match expected {
            Some(t) if t.eq_ignore_ascii_case(tenant) => {}
            Some(_) => {
                return Err(GatewayError::invalid_request(
                    "the tenant in the path is not this client's tenant",
                ))
            }
            None => {
                return Err(GatewayError::invalid_request(
                    "this client's identity provider has no tenant endpoints; use /token",
                ))
            }
        }
    }
    Ok(reg)
}

/// Steps 7 and 8: a certificate is present, trusted, and bound to this client. A failure
/// carries its `client_auth_total` result label.
fn authenticate(
    gw: &Gateway,
    presented: Result<Presented, GatewayError>,
    reg: &Registration,
    audit: &mut Audit,
) -> Result<Arc<PeerCertificate>, (&'static str, GatewayError)> {
    let presented = presented.map_err(|e| ("bad_certificate", e))?;
    let peer = match &presented {
        None => {
            return Err((
                "no_certificate",
                GatewayError::invalid_client(
                    "no client certificate was presented in the TLS handshake",
                ),
            ))
        }
        Some(Err(e)) => {
            return Err((
                "bad_certificate",
                GatewayError::invalid_client("the client certificate cannot be read")
                    .with_reason(e.to_string()),
            ))
        }
        Some(Ok(peer)) => peer,
    };
    reg.authenticate(
        peer,
        &gw.config.server.client_trust,
        gw.generation,
        now_secs(),
    )
    .map_err(|f| {
        let label = match f {
            AuthFailure::Untrusted(_) | AuthFailure::Validity(_) => "untrusted",
            AuthFailure::Mismatch(_) | AuthFailure::NotRegistered => "mismatch",
        };
        (label, GatewayError::invalid_client(f.to_string()))
    })?;
    audit.authenticated = true;
    Ok(peer.clone())
}

/// Step 9: grant type and scopes are allowed for this client. With an allow-list, the request
/// must name what it asks for (`scope`, or the v1 `resource`), and all of it must be listed.
fn authorize(
    reg: &Registration,
    grant_type: &str,
    scope: Option<&str>,
    resource: Option<&str>,
) -> Result<(), GatewayError> {
    if !reg.grant_types.contains(grant_type) {
        return Err(GatewayError::new(
            ErrorKind::UnauthorizedClient,
            "this client is not allowed to use this grant_type",
        ));
    }
    if reg.scopes.is_empty() {
        return Ok(());
    }
    let scopes: Vec<&str> = scope
        .map(|s| s.split(' ').filter(|s| !s.is_empty()).collect())
        .unwrap_or_default();
    if scopes.is_empty() && resource.is_none() {
        return Err(GatewayError::new(
            ErrorKind::InvalidScope,
            "this client has a scope allow-list: name the scope (or the v1 resource) it asks for",
        ));
    }
    if let Some(bad) = scopes.iter().find(|s| !reg.scopes.contains(**s)) {
        return Err(GatewayError::new(
            ErrorKind::InvalidScope,
            format!("scope '{}' is not allowed for this client", printable(bad)),
        ));
    }
    if let Some(r) = resource {
        let default = format!("{r}/.default");
        if !reg.scopes.contains(r) && !reg.scopes.contains(&default) {
            return Err(GatewayError::new(
                ErrorKind::InvalidScope,
                format!("resource '{}' is not allowed for this client", printable(r)),
            ));
        }
    }
    Ok(())
}

/// [`crate::assertion::ASSERTION_TYPE`] form-encoded, written once rather than encoded per request.
const ASSERTION_TYPE_ENCODED: &str =
    "urn%3Aietf%3Aparams%3Aoauth%3Aclient%2Dassertion%2Dtype%3Ajwt%2Dbearer";

/// Step 10: the forwarded form: every non-empty parameter as sent, plus the assertion.
fn forward_form(form: &Form<'_>, assertion: &str) -> Bytes {
    let mut out = BytesMut::with_capacity(
        form.pairs
            .iter()
            .map(|(_, _, raw)| raw.len() + 1)
            .sum::<usize>()
            + assertion.len()
            + 120,
    );
    for (_, value, raw) in &form.pairs {
        if value.is_empty() {
            continue;
        }
        out.put_slice(raw);
        out.put_u8(b'&');
    }
    out.put_slice(b"client_assertion_type=");
    out.put_slice(ASSERTION_TYPE_ENCODED.as_bytes());
    // A compact JWS is base64url and '.': nothing to escape.
    out.put_slice(b"&client_assertion=");
    out.put_slice(assertion.as_bytes());
    out.freeze()
}

/// Handles one token request. Errors are rendered by the caller.
pub async fn handle<B>(
    gw: &Gateway,
    presented: Result<Presented, GatewayError>,
    route: TokenRoute,
    tenant: Option<&str>,
    req: Request<B>,
    audit: &mut Audit,
) -> Result<Response<Full<Bytes>>, GatewayError>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if let Ok(Some(Ok(peer))) = &presented {
        audit.cert = Some(peer.clone());
    }
    let authorization = reject_authorization_header(&req);
    let body = read_body(gw, req, "token").await?;
    let form = parse_form(&body)?;
    audit.client_id = form.get("client_id").map(|c| c.chars().take(128).collect());
    authorization?;
    let (client_id, grant_type) = required_parameters(&form)?;
    let reg = registration(gw, client_id, tenant).inspect_err(|e| {
        if e.kind == ErrorKind::InvalidClient {
            gw.metrics.client_auth(None, "unknown_client");
        }
    })?;
    audit.method = Some(reg.method.name());
    let decision = authenticate(gw, presented, reg, audit);
    gw.metrics.client_auth(
        Some(&reg.client_id),
        decision.as_ref().map_or_else(|(r, _)| *r, |_| "success"),
    );
    let peer = decision.map_err(|(_, e)| e)?;
    rate_limit(gw, reg).await?;
    authorize(reg, grant_type, form.get("scope"), form.get("resource"))?;

    let upstream = gw.upstreams.get(&reg.upstream).ok_or_else(|| {
        GatewayError::new(
            ErrorKind::Unavailable,
            "the identity provider is not configured",
        )
    })?;
    let url = upstream.token_url(route).ok_or_else(|| {
        GatewayError::invalid_request(
            "this client's identity provider has no such endpoint; use /token",
        )
    })?;
    let ready = Ready {
        gw,
        reg,
        peer: &peer,
        upstream,
        url,
        client_id,
        form: &form,
    };
    match (&reg.state.token_cache, grant_type) {
        (Some(cache), "client_credentials") => ready.cached(cache, audit).await,
        _ => {
            let answer = ready.forward_bound(audit).await?;
            relay(answer)
        }
    }
}

/// Step 8½: the client's rate limit: one limit across replicas on the shared store (GCRA in
/// Redis), this process's own when there is none or it does not answer.
async fn rate_limit(gw: &Gateway, reg: &Registration) -> Result<(), GatewayError> {
    let Some(limit) = &reg.state.rate_limit else {
        return Ok(());
    };
    let verdict = match &gw.store {
        Some(store) => {
            let key = store.rate_key(&reg.client_id);
            match store.rate_limit(&key, limit.interval, limit.burst).await {
                Ok(None) => Ok(()),
                Ok(Some(wait)) => Err(wait),
                Err(_) => limit.check(),
            }
        }
        None => limit.check(),
    };
    verdict.map_err(|wait| {
        let mut e = GatewayError::new(
            ErrorKind::RateLimited,
            format!(
                "this client exceeded its rate limit of {}; retry later",
                limit.text
            ),
        );
        e.retry_after = Some(wait);
        e
    })
}

/// Steps 10 and 11: sign (or reuse) the assertion, forward, and count the exchange.
async fn forward(
    gw: &Gateway,
    reg: &Registration,
    upstream: &Arc<crate::upstream::Upstream>,
    url: &str,
    client_id: &str,
    form: &Form<'_>,
    audit: &mut Audit,
) -> Result<crate::upstream::UpstreamResponse, GatewayError> {
    // Remote signers (HSM) reuse by default on Entra: each signature costs a device round trip.
    let reuse = upstream.spec.reuse_assertion
        || (!upstream.spec.reuse_explicit
            && reg.credential.is_remote()
            && matches!(
                upstream.spec.kind,
                crate::config::UpstreamKind::Entra { .. }
            ));
    let now = now_secs() as u64;
    let aud = upstream.assertion_audience(url).await.map_err(|f| {
        GatewayError::new(
            ErrorKind::UpstreamUnavailable,
            "the identity provider's metadata (the assertion's audience) cannot be fetched",
        )
        .with_reason(f.to_string())
    })?;
    let observe = |result: &'static str, took: std::time::Duration| {
        gw.metrics.signature(
            &reg.credential.name,
            reg.credential.backend_name(),
            result,
            took,
        );
    };
    let signed = if reuse && reg.credential.federated_token().is_none() {
        reg.state
            .assertions
            .get_async(&reg.credential, client_id, &aud, now, &observe)
            .await
    } else {
        reg.credential
            .sign_async(client_id, &aud, now, &observe)
            .await
            .map(Into::into)
    };
    let assertion = signed.map_err(|f| {
        let mut e = GatewayError::new(
            ErrorKind::Unavailable,
            "the client assertion could not be signed",
        );
        e.retry_after = f.retry_after;
        e
    })?;
    // The exchange runs in a task of its own: a client that resets or disconnects drops this
    // future, never the exchange, so its resets never become RST_STREAMs on the pooled upstream
    // connection other clients share (SPEC §8). The answer is then dropped and counted.
    let slot = reg
        .state
        .upstream_slots
        .clone()
        .try_acquire_owned()
        .map_err(|_| {
            GatewayError::new(
                ErrorKind::Unavailable,
                "this client has too many token requests in flight; retry later",
            )
        })?;
    let traceparent = audit.trace.as_ref().and_then(|t| t.child());
    let exchange = {
        let upstream = upstream.clone();
        let url = url.to_string();
        let body = forward_form(form, &assertion);
        let metrics = gw.metrics.clone();
        let name = reg.upstream.clone();
        let task = tokio::spawn(async move {
            let _slot = slot;
            let started = Instant::now();
            let result = upstream
                .post_form_traced(&url, body, traceparent.as_ref())
                .await;
            let elapsed = started.elapsed();
            count_exchange(&metrics, name, &result, elapsed);
            (result, elapsed)
        });
        DropNotice {
            metrics: gw.metrics.clone(),
            task: Some(task),
        }
    };
    let (result, elapsed) = exchange.wait().await?;
    audit.upstream_ms = Some((elapsed.as_secs_f64() * 1_000_000.0).round() / 1000.0);
    let answer = result?;
    audit.upstream_status = Some(answer.status.as_u16());
    Ok(answer)
}

type Exchange = (
    Result<crate::upstream::UpstreamResponse, crate::upstream::UpstreamFailure>,
    std::time::Duration,
);

/// A detached upstream exchange: when the request is dropped before the answer is taken,
/// the exchange still completes, and its answer is counted as dropped.
struct DropNotice {
    metrics: Arc<crate::metrics::Metrics>,
    task: Option<tokio::task::JoinHandle<Exchange>>,
}

impl DropNotice {
    async fn wait(mut self) -> Result<Exchange, GatewayError> {
        let internal = |why: String| GatewayError::internal(why);
        let Some(task) = self.task.as_mut() else {
            return Err(internal("the upstream exchange was lost".into()));
        };
        let joined = task.await;
        // Taken: dropping self now counts nothing.
        self.task = None;
        joined.map_err(|e| internal(e.to_string()))
    }
}

impl Drop for DropNotice {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            // The client went away first: let the exchange finish, then count its answer.
            let metrics = self.metrics.clone();
            tokio::spawn(async move {
                if task.await.is_ok() {
                    metrics.upstream_answers_dropped.inc();
                }
            });
        }
    }
}

fn count_exchange(
    metrics: &crate::metrics::Metrics,
    upstream: String,
    result: &Result<crate::upstream::UpstreamResponse, crate::upstream::UpstreamFailure>,
    elapsed: std::time::Duration,
) {
    let status: std::borrow::Cow<'static, str> = match result {
        Ok(answer) => answer.status.as_str().to_string().into(),
        Err(crate::upstream::UpstreamFailure::Timeout(_)) => "timeout".into(),
        Err(crate::upstream::UpstreamFailure::Unavailable(_)) => "error".into(),
    };
    metrics
        .upstream_duration
        .get_or_create(&UpstreamNameLabels {
            upstream: upstream.clone(),
        })
        .observe(elapsed.as_secs_f64());
    metrics
        .upstream_requests
        .get_or_create(&UpstreamLabels { upstream, status })
        .inc();
}

/// The upstream's answer as the client receives it: status, `Content-Type`, `Retry-After`, body.
fn relay(answer: crate::upstream::UpstreamResponse) -> Result<Response<Full<Bytes>>, GatewayError> {
    let mut response = Response::builder().status(answer.status);
    if let Some(ct) = answer.content_type {
        response = response.header(CONTENT_TYPE, ct);
    }
    if let Some(ra) = answer.retry_after {
        response = response.header(http::header::RETRY_AFTER, ra);
    }
    response
        .body(Full::new(answer.body))
        .map_err(|e| GatewayError::internal(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assertion::ASSERTION_TYPE;

    #[test]
    fn the_encoded_assertion_type_is_the_assertion_type() {
        assert_eq!(
            percent_encoding::utf8_percent_encode(
                ASSERTION_TYPE,
                percent_encoding::NON_ALPHANUMERIC
            )
            .to_string(),
            ASSERTION_TYPE_ENCODED
        );
    }

    #[test]
    fn forwarded_form_keeps_parameters_as_sent_and_drops_empty_ones() {
        let form = parse_form(b"grant_type=client_credentials&scope=a%20b&x=&client_id=c").unwrap();
        let out = forward_form(&form, "h.c.s");
        assert_eq!(
            &out[..],
            b"grant_type=client_credentials&scope=a%20b&client_id=c&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient%2Dassertion%2Dtype%3Ajwt%2Dbearer&client_assertion=h.c.s"
        );
    }
}
