//! The admin listener (plain HTTP): `/metrics`, `/healthz`, `/readyz`, `/version`, and
//! `/config` (the effective configuration of the generation serving now, secrets redacted:
//! [`crate::config::effective`]). Bind it where only operators and the kubelet reach it.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use arc_swap::ArcSwap;

use crate::gateway::Gateway;
use crate::metrics::Metrics;

/// What the admin endpoints read.
pub struct Shared {
    /// Ready to serve (false before start and from SIGTERM on).
    pub ready: Arc<AtomicBool>,
    /// The metrics.
    pub metrics: Arc<Metrics>,
    /// The generation serving now.
    pub state: Arc<ArcSwap<Gateway>>,
}

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

fn text(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, content_type)
        .body(Full::new(body.into()))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

/// Connections the admin listener serves at once; more are accepted and closed at once.
pub const MAX_CONNECTIONS: usize = 64;

/// Serves the admin endpoints; runs until the gateway aborts it after draining, so that
/// `/readyz` answers 503 while in-flight requests finish. Bounded like the main listener: a
/// first-byte and head deadline (`head_timeout`, the main listener's `header_read_timeout`),
/// and at most [`MAX_CONNECTIONS`] connections.
pub async fn serve(listener: TcpListener, shared: Shared, head_timeout: std::time::Duration) {
    let shared = Arc::new(shared);
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            continue;
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            shared.metrics.connection_refused("admin_cap");
            drop(tcp);
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let service =
                hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let answer = route(&shared, req.method(), req.uri().path());
                    async move { Ok::<_, Infallible>(answer) }
                });
            let builder = crate::net::http_server(head_timeout, 8);
            let io = crate::net::FirstByteDeadline::new(tcp, head_timeout);
            // A connection that never finishes is cut after a minute: probes and scrapes are quick.
            let _ = tokio::time::timeout(
                std::time::Duration::from_secs(60),
                builder.serve_connection(TokioIo::new(io), service),
            )
            .await;
        });
    }
}

fn route(shared: &Shared, method: &http::Method, path: &str) -> Response<Full<Bytes>> {
    let plain = "text/plain; charset=utf-8";
    let json = "application/json";
    if method != http::Method::GET {
        return text(StatusCode::METHOD_NOT_ALLOWED, plain, "only GET\n");
    }
    match path {
        "/metrics" => text(StatusCode::OK, OPENMETRICS, shared.metrics.encode()),
        "/healthz" => text(StatusCode::OK, plain, "ok\n"),
        "/readyz" if shared.ready.load(Ordering::SeqCst) => text(StatusCode::OK, plain, "ready\n"),
        "/readyz" => text(StatusCode::SERVICE_UNAVAILABLE, plain, "not ready\n"),
        "/version" => text(StatusCode::OK, json, pretty(&crate::version::json())),
        "/config" => {
            let gateway = shared.state.load();
            let mut doc = crate::config::effective(&gateway.config);
            doc["generation"] = serde_json::json!(gateway.generation);
            text(StatusCode::OK, json, pretty(&doc))
        }
        _ => text(StatusCode::NOT_FOUND, plain, "not found\n"),
    }
}

fn pretty(v: &serde_json::Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default() + "\n"
}
