//! The discovery endpoints: the upstream's document with this gateway's mTLS token endpoint.

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::Response;
use http_body_util::Full;
use serde_json::Value;

use crate::error::error_response;
use crate::error::{ErrorKind, GatewayError};
use crate::gateway::Gateway;
use crate::upstream::Upstream;

/// Serves `/{tenant}/v2.0/.well-known/openid-configuration` (`tenant` set) or the two
/// root well-known paths (only when exactly one upstream is configured). Returns the
/// response and its `requests_total` outcome.
pub async fn handle(gw: &Gateway, tenant: Option<&str>) -> (Response<Full<Bytes>>, &'static str) {
    let not_found = || {
        let e = GatewayError::new(
            ErrorKind::NotFound,
            "no identity provider metadata at this path",
        );
        (error_response(&e, ""), e.kind.outcome())
    };
    let upstream = match tenant {
        Some(t) => gw.upstreams.values().find(|u| {
            u.spec
                .kind
                .tenant()
                .is_some_and(|ut| ut.eq_ignore_ascii_case(t))
        }),
        None if gw.upstreams.len() == 1 => gw.upstreams.values().next(),
        None => None,
    };
    let Some(upstream) = upstream else {
        return not_found();
    };
    match document(gw, upstream).await {
        Ok(body) => (
            Response::builder()
                .header(CONTENT_TYPE, "application/json")
                .body(Full::new(body))
                .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()))),
            "success",
        ),
        Err(e) => {
            tracing::warn!(upstream = %upstream.spec.name, error = %e, "metadata unavailable");
            (error_response(&e, "GET"), e.kind.outcome())
        }
    }
}

async fn document(gw: &Gateway, upstream: &Upstream) -> Result<Bytes, GatewayError> {
    let raw = upstream.metadata().await.map_err(|f| {
        let kind = match f {
            crate::upstream::UpstreamFailure::Timeout(_) => ErrorKind::UpstreamTimeout,
            crate::upstream::UpstreamFailure::Unavailable(_) => ErrorKind::UpstreamUnavailable,
        };
        GatewayError::new(kind, "the identity provider's metadata cannot be fetched")
            .with_reason(f.to_string())
    })?;
    let mut doc: Value = serde_json::from_slice(&raw).map_err(|e| {
        GatewayError::new(
            ErrorKind::UpstreamUnavailable,
            "the identity provider's metadata is not JSON",
        )
        .with_reason(e.to_string())
    })?;
    let Some(object) = doc.as_object_mut() else {
        return Err(GatewayError::new(
            ErrorKind::UpstreamUnavailable,
            "the identity provider's metadata is not a JSON object",
        ));
    };
    let public = &gw.config.server.public_url;
    let token_endpoint = match upstream.spec.kind.tenant() {
        Some(tenant) => format!("{public}/{tenant}/oauth2/v2.0/token"),
        None => format!("{public}/token"),
    };
    let aliases = object
        .entry("mtls_endpoint_aliases")
        .or_insert_with(|| Value::Object(Default::default()));
    if !aliases.is_object() {
        *aliases = Value::Object(Default::default());
    }
    let introspection = gw
        .config
        .introspection
        .as_ref()
        .map(|_| format!("{public}/introspect"));
    if let Some(a) = aliases.as_object_mut() {
        a.insert("token_endpoint".into(), Value::String(token_endpoint));
        if let Some(url) = &introspection {
            a.insert("introspection_endpoint".into(), Value::String(url.clone()));
        }
    }
    if let Some(url) = introspection {
        object.insert("introspection_endpoint".into(), Value::String(url));
    }
    // RFC 8705 §3.4: advertised only when the gateway binds tokens itself (Entra does not).
    if gw.config.binding.is_some() {
        object.insert(
            "tls_client_certificate_bound_access_tokens".into(),
            Value::Bool(true),
        );
    } else {
        object.remove("tls_client_certificate_bound_access_tokens");
    }
    let methods = object
        .entry("token_endpoint_auth_methods_supported")
        .or_insert_with(|| Value::Array(Vec::new()));
    if !methods.is_array() {
        *methods = Value::Array(Vec::new());
    }
    if let Some(list) = methods.as_array_mut() {
        for m in ["tls_client_auth", "self_signed_tls_client_auth"] {
            if !list.iter().any(|v| v == m) {
                list.push(Value::String(m.into()));
            }
        }
    }
    serde_json::to_vec(&doc)
        .map(Bytes::from)
        .map_err(|e| GatewayError::internal(e.to_string()))
}
