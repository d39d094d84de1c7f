//! SPEC §8: connections cannot be held hostage. Idle HTTP/2 connections (PINGs do not count),
//! per-peer caps, responses kept unwritten by a zero flow-control window, client resets kept
//! off the shared upstream connection, the admin listener's bounds, the HTTP/2 413, and the
//! shutdown delay.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rustls_pki_types::ServerName;
use tokio::io::AsyncReadExt;

use crate::support::process::Served;
use crate::support::upstream::{Behaviour, FakeUpstream};
use crate::support::*;

type H2Send = h2::client::SendRequest<Bytes>;

/// A raw HTTP/2 connection (the `h2` crate), with `window` as SETTINGS_INITIAL_WINDOW_SIZE;
/// returns the sender and a handle that finishes when the server closes the connection.
async fn raw_h2(
    h: &Harness,
    cert: Option<&str>,
    window: u32,
) -> (H2Send, tokio::task::JoinHandle<Instant>, h2::PingPong) {
    let tls = raw_tls(h.addr(), cert, b"h2").await;
    let (send, mut conn) = h2::client::Builder::new()
        .initial_window_size(window)
        .handshake::<_, Bytes>(tls)
        .await
        .unwrap();
    let ping = conn.ping_pong().expect("ping_pong is taken once");
    let closed = tokio::spawn(async move {
        let _ = conn.await;
        Instant::now()
    });
    (send, closed, ping)
}

fn token_request(h: &Harness) -> http::Request<()> {
    http::Request::post(h.url("/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(())
        .unwrap()
}

#[tokio::test]
async fn an_http2_connection_without_a_certificate_that_only_pings_is_closed() {
    let h = Setup::new()
        .limits("header_read_timeout = \"1s\"\nidle_timeout = \"60s\"")
        .start()
        .await;
    let (_send, mut closed, mut ping) = raw_h2(&h, None, 65_535).await;
    let started = Instant::now();
    loop {
        tokio::select! {
            at = &mut closed => {
                let lived = at.unwrap() - started;
                assert!(lived < Duration::from_secs(10), "{lived:?}");
                break;
            }
            _ = tokio::time::sleep(Duration::from_millis(200)) => {
                // PINGs keep nothing alive.
                let _ = ping.ping(h2::Ping::opaque()).await;
                assert!(started.elapsed() < Duration::from_secs(10), "the connection was never closed");
            }
        }
    }
    h.stop().await;
}

#[tokio::test]
async fn an_idle_http2_connection_with_a_certificate_is_closed_after_idle_timeout() {
    let h = Setup::new()
        .limits("header_read_timeout = \"30s\"\nidle_timeout = \"1s\"")
        .start()
        .await;
    let (send, closed, _ping) = raw_h2(&h, Some("client"), 65_535).await;
    // One request, then idle.
    let mut send = send.ready().await.unwrap();
    let (response, mut body) = send.send_request(token_request(&h), false).unwrap();
    body.send_data(Bytes::from(form(PKI_CLIENT)), true).unwrap();
    assert_eq!(response.await.unwrap().status(), 200);
    tokio::time::timeout(Duration::from_secs(10), closed)
        .await
        .expect("the idle connection was closed")
        .unwrap();
    h.stop().await;
}

async fn tls_from(h: &Harness, source: &str) -> std::io::Result<Vec<u8>> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(format!("{source}:0").parse().unwrap())?;
    let tcp = socket.connect(h.addr()).await?;
    let mut config = client_tls(Some("client"), &[&rustls::version::TLS13]);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await?;
    use tokio::io::AsyncWriteExt;
    let body = form(PKI_CLIENT);
    tls.write_all(format!("POST /token HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len()).as_bytes()).await?;
    let mut out = Vec::new();
    tls.read_to_end(&mut out).await?;
    Ok(out)
}

#[tokio::test]
async fn one_address_holds_at_most_max_connections_per_peer() {
    let h = Setup::new()
        .limits("max_connections_per_peer = 2")
        .start()
        .await;
    // Two connections from 127.0.0.1 held open (handshake done, nothing sent yet).
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(raw_tls(h.addr(), Some("client"), b"http/1.1").await);
    }
    // A third from the same address is closed at once.
    let third = tls_from(&h, "127.0.0.1").await;
    assert!(
        third.as_ref().map_or(true, |out| out.is_empty()),
        "{third:?}"
    );
    // Another address is served meanwhile.
    let other = tls_from(&h, "127.0.0.2").await.unwrap();
    assert!(
        String::from_utf8_lossy(&other).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&other)
    );
    let (_, text) = http_get(&h.admin_url("/metrics")).await;
    assert!(
        metric(
            &text,
            "mtls_gateway_connections_refused_total{reason=\"per_peer\"}"
        )
        .unwrap_or(0.0)
            >= 1.0,
        "{text}"
    );
    drop(held);
    h.stop().await;
}

#[tokio::test]
async fn a_connection_whose_window_stays_zero_is_closed_after_request_timeout() {
    let h = Setup::new()
        .limits("request_timeout = \"1s\"\nidle_timeout = \"60s\"")
        .start()
        .await;
    let (send, closed, _ping) = raw_h2(&h, Some("client"), 0).await;
    let mut send = send.ready().await.unwrap();
    let mut responses = Vec::new();
    for _ in 0..8 {
        let request = http::Request::get(h.url("/nope")).body(()).unwrap();
        let (response, _) = send.send_request(request, true).unwrap();
        responses.push(response);
        send = send.ready().await.unwrap();
    }
    // Heads arrive; bodies cannot (the window is never opened). The bodies are kept: dropping
    // one would reset its stream.
    let mut kept = Vec::new();
    for r in responses {
        let response = r.await.unwrap();
        assert_eq!(response.status(), 404);
        kept.push(response);
    }
    tokio::time::timeout(Duration::from_secs(10), closed)
        .await
        .expect("the stalled connection was abandoned")
        .unwrap();
    drop(kept);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_resets_never_reach_the_shared_upstream_connection() {
    let upstream = FakeUpstream::start(Behaviour::Delayed(
        150,
        200,
        r#"{"token_type":"Bearer","expires_in":3599,"access_token":"eyJhbGciOiJub25lIn0.e30.c2xvdw"}"#.into(),
    ))
    .await;
    let h = Setup::new().upstream(&upstream.config("10s")).start().await;
    // A parallel, well-behaved client.
    let url = h.url("/token");
    let steady = tokio::spawn(async move {
        let client = client_for(Some("client"), true);
        let mut statuses = Vec::new();
        for _ in 0..10 {
            statuses.push(
                client
                    .post_form(&url, &form(PKI_CLIENT))
                    .await
                    .unwrap()
                    .status
                    .as_u16(),
            );
        }
        statuses
    });
    // 100 requests, each reset a few milliseconds after it was sent.
    let (send, _closed, _ping) = raw_h2(&h, Some("client"), 65_535).await;
    let mut send = send.ready().await.unwrap();
    for i in 0..100u64 {
        let (response, mut body) = send.send_request(token_request(&h), false).unwrap();
        body.send_data(Bytes::from(form(PKI_CLIENT)), true).unwrap();
        tokio::time::sleep(Duration::from_millis(2 + i % 8)).await;
        body.send_reset(h2::Reason::CANCEL);
        drop(response);
        send = send.ready().await.unwrap();
    }
    let statuses = steady.await.unwrap();
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    // Every forwarded exchange completed: none was cancelled at the upstream.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (_, text) = loop {
        let (code, text) = http_get(&h.admin_url("/metrics")).await;
        let dropped = metric(&text, "mtls_gateway_upstream_answers_dropped_total").unwrap_or(0.0);
        if dropped >= 1.0 || Instant::now() > deadline {
            break (code, text);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(upstream.cancelled.load(Ordering::SeqCst), 0);
    assert!(
        metric(&text, "mtls_gateway_upstream_answers_dropped_total").unwrap_or(0.0) >= 1.0,
        "{text}"
    );
    h.stop().await;
}

#[tokio::test]
async fn the_admin_listener_closes_a_silent_connection() {
    let h = Setup::new()
        .limits("header_read_timeout = \"1s\"")
        .start()
        .await;
    let admin = h.running.as_ref().unwrap().admin_addr.unwrap();
    let mut tcp = tokio::net::TcpStream::connect(admin).await.unwrap();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut buf))
        .await
        .expect("the admin listener closed the silent connection");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    h.stop().await;
}

#[tokio::test]
async fn a_3_mb_body_over_http2_gets_its_413() {
    let h = Setup::new().start().await;
    let body = "a".repeat(3 * 1024 * 1024);
    let answer = client_for(Some("client"), true)
        .post_form(&h.url("/token"), &body)
        .await
        .unwrap();
    assert_error(&answer, 413, "invalid_request");
    h.stop().await;
}

#[test]
fn sigterm_with_a_shutdown_delay_turns_not_ready_at_once_and_keeps_serving() {
    let setup = Setup::new().limits("shutdown_delay = \"3s\"");
    let path = setup.write();
    let mut served = Served::start(&path);
    let addr = served.addr("mTLS listener ready");
    let admin = served.addr("admin listener ready");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let url = format!("https://localhost:{}/token", addr.port());
        let client = client_for(Some("client"), false);
        assert_eq!(
            client
                .post_form(&url, &form(PKI_CLIENT))
                .await
                .unwrap()
                .status,
            200
        );
        served.signal("TERM");
        let signalled = Instant::now();
        // Not ready at once…
        let deadline = Instant::now() + Duration::from_secs(1);
        loop {
            if http_get(&format!("http://{admin}/readyz")).await.0 == 503 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "/readyz did not turn 503 at once"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // …while requests are still answered during the delay, on new connections too.
        let fresh = client_for(Some("client"), false);
        let answer = fresh.post_form(&url, &form(PKI_CLIENT)).await.unwrap();
        assert_eq!(answer.status, 200);
        assert!(signalled.elapsed() < Duration::from_secs(3));
    });
    let status = served.wait_exit();
    assert!(status.success(), "{status:?}");
}
