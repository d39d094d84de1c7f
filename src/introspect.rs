//! `POST /introspect` (RFC 7662, SPEC §10 `[introspection]`): resource servers authenticated by
//! their handshake certificate ask what the gateway knows about a token it bound.

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, PRAGMA};
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Body;
use serde_json::json;

use crate::error::{ErrorKind, GatewayError};
use crate::gateway::{ConnInfo, Gateway};

fn json_answer(body: serde_json::Value) -> Response<Full<Bytes>> {
    Response::builder()
        .header(CONTENT_TYPE, "application/json")
        .header(CACHE_CONTROL, "no-store")
        .header(PRAGMA, "no-cache")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

/// The introspection answer for `token` at `now`: RFC 7662 §2.2, exactly `{"active":false}`
/// unless the token has a live record.
pub async fn answer(
    gw: &Gateway,
    token: &str,
    now: u64,
) -> Result<serde_json::Value, GatewayError> {
    let record = gw
        .bindings
        .get(&crate::binding::token_hash(token), now)
        .await
        .map_err(|e| {
            GatewayError::new(
                ErrorKind::Unavailable,
                "the binding records cannot be read now",
            )
            .with_reason(e.to_string())
        })?;
    Ok(match record {
        Some(r) if r.exp > now => json!({
            "active": true,
            "client_id": &*r.client_id,
            "exp": r.exp,
            "token_type": "Bearer",
            "cnf": {"x5t#S256": crate::identity::x5t_s256_of_digest(&r.cert_sha256)},
        }),
        _ => json!({"active": false}),
    })
}

/// Serves `/introspect`; the `introspection_requests_total` result goes with the response.
pub async fn handle<B>(
    gw: &Gateway,
    conn: &ConnInfo,
    req: Request<B>,
) -> Result<(Response<Full<Bytes>>, &'static str), GatewayError>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let Some(introspection) = &gw.config.introspection else {
        return Err(GatewayError::new(
            ErrorKind::NotFound,
            "introspection is not enabled",
        ));
    };
    let caller = match &conn.peer_cert {
        Some(Ok(peer)) if introspection.clients.contains(&peer.identity.sha256) => peer,
        _ => {
            gw.metrics.introspection("unauthorized");
            return Err(GatewayError::invalid_client(
                "introspection callers authenticate with a certificate listed in introspection.clients",
            ));
        }
    };
    let fail = |e: GatewayError| {
        gw.metrics.introspection("invalid_request");
        e
    };
    let body = crate::token::read_body(gw, req, "introspection")
        .await
        .map_err(fail)?;
    let form = crate::form::parse_form(&body).map_err(fail)?;
    let Some(token) = form.get("token") else {
        return Err(fail(GatewayError::invalid_request(
            "the token parameter is required (RFC 7662 §2.1)",
        )));
    };
    let now = crate::trust::now_secs().max(0) as u64;
    let answer = answer(gw, token, now).await?;
    let active = answer["active"] == true;
    let result = if active { "active" } else { "inactive" };
    gw.metrics.introspection(result);
    tracing::info!(
        target: "audit",
        caller_x5t_s256 = caller.identity.x5t_s256.as_str(),
        token_ref = crate::binding::log_ref(&crate::binding::token_hash(token)),
        active,
        "introspection"
    );
    Ok((json_answer(answer), result))
}
