//! The admin listener (plain HTTP): `/metrics`, `/healthz`, `/readyz`.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::metrics::Metrics;

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
pub async fn serve(
    listener: TcpListener,
    ready: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
    head_timeout: std::time::Duration,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            continue;
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            metrics.connection_refused("admin_cap");
            drop(tcp);
            continue;
        };
        let ready = ready.clone();
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let service =
                hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let ready = ready.load(Ordering::SeqCst);
                    let metrics = metrics.clone();
                    async move {
                        let plain = "text/plain; charset=utf-8";
                        Ok::<_, Infallible>(match (req.method(), req.uri().path()) {
                            (&http::Method::GET, "/metrics") => {
                                text(StatusCode::OK, OPENMETRICS, metrics.encode())
                            }
                            (&http::Method::GET, "/healthz") => text(StatusCode::OK, plain, "ok\n"),
                            (&http::Method::GET, "/readyz") if ready => {
                                text(StatusCode::OK, plain, "ready\n")
                            }
                            (&http::Method::GET, "/readyz") => {
                                text(StatusCode::SERVICE_UNAVAILABLE, plain, "not ready\n")
                            }
                            _ => text(StatusCode::NOT_FOUND, plain, "not found\n"),
                        })
                    }
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
