//! The admin listener (plain HTTP): `/healthz`, `/readyz`.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

/// Serves the admin endpoints until shutdown.
pub async fn serve(
    listener: TcpListener,
    ready: Arc<AtomicBool>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let (tcp, _) = tokio::select! {
            a = listener.accept() => match a { Ok(p) => p, Err(_) => continue },
            _ = shutdown.changed() => break,
        };
        let ready = ready.clone();
        let stopping = shutdown.clone();
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let ready = ready.load(Ordering::SeqCst) && !*stopping.borrow();
                    async move {
                        Ok::<_, Infallible>(match req.uri().path() {
                            "/healthz" => text(StatusCode::OK, "ok\n"),
                            "/readyz" if ready => text(StatusCode::OK, "ready\n"),
                            "/readyz" => text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
                            _ => text(StatusCode::NOT_FOUND, "not found\n"),
                        })
                    }
                });
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10));
            let _ = builder.serve_connection(TokioIo::new(tcp), service).await;
        });
    }
}
