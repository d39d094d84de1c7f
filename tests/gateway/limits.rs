//! SPEC §3 `[limits]` and §8: rate limits, slow and oversized input, connection limits.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

#[tokio::test]
async fn a_burst_over_the_rate_limit_gets_429_while_other_clients_keep_working() {
    let h = Setup::new()
        .only_clients(&format!(
            "{}rate_limit = \"3/m\"\n\n[[clients]]\nclient_id = \"{SELF_SIGNED_CLIENT}\"\nupstream = \"dev\"\ncredential = \"dev\"\ntoken_endpoint_auth_method = \"self_signed_tls_client_auth\"\nself_signed_certs = [\"selfsigned.pem\"]\n",
            pki_client(PKI_CLIENT, &format!("tls_client_auth_subject_dn = \"{PKI_DN}\""))
        ))
        .start()
        .await;
    // Failed authentications never spend the client's allowance.
    for _ in 0..5 {
        assert_eq!(h.token(Some("other"), &form(PKI_CLIENT)).await.status, 401);
    }
    for _ in 0..3 {
        assert_eq!(h.token(Some("client"), &form(PKI_CLIENT)).await.status, 200);
    }
    let limited = h.token(Some("client"), &form(PKI_CLIENT)).await;
    assert_error(&limited, 429, "temporarily_unavailable");
    let retry: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!(
        (1..=20).contains(&retry),
        "3/m refills one every 20 s: {retry}"
    );
    assert_eq!(limited.header("cache-control"), Some("no-store"));
    // The other client has its own allowance.
    for _ in 0..5 {
        assert_eq!(
            h.token(Some("selfsigned"), &form(SELF_SIGNED_CLIENT))
                .await
                .status,
            200
        );
    }
    let (_, text) = http_get(&h.admin_url("/metrics")).await;
    assert_eq!(
        metric(
            &text,
            "mtls_gateway_requests_total{route=\"token\",outcome=\"rate_limited\"}"
        ),
        Some(1.0)
    );
    h.stop().await;
}

#[tokio::test]
async fn the_default_rate_limit_applies_to_each_client_separately_and_can_be_turned_off() {
    let h = Setup::new()
        .limits("rate_limit = \"2/h\"")
        .only_clients(&format!(
            "{}\n{}rate_limit = \"\"\n",
            pki_client(
                PKI_CLIENT,
                &format!("tls_client_auth_subject_dn = \"{PKI_DN}\"")
            ),
            pki_client(
                "unlimited",
                "tls_client_auth_subject_dn = \"CN=other-app,O=Contoso,C=US\""
            )
        ))
        .start()
        .await;
    assert_eq!(h.token(Some("client"), &form(PKI_CLIENT)).await.status, 200);
    assert_eq!(h.token(Some("client"), &form(PKI_CLIENT)).await.status, 200);
    assert_eq!(h.token(Some("client"), &form(PKI_CLIENT)).await.status, 429);
    for _ in 0..4 {
        assert_eq!(h.token(Some("other"), &form("unlimited")).await.status, 200);
    }
    h.stop().await;
}

#[test]
fn bad_rates_are_refused() {
    for bad in ["20", "20/d", "0/s", "x/s", "-1/m"] {
        let setup = Setup::new().limits(&format!("rate_limit = \"{bad}\""));
        let text = mtls_gateway::config::load(&setup.write())
            .unwrap_err()
            .to_string();
        assert!(text.contains("limits.rate_limit"), "{bad}: {text}");
    }
}

#[tokio::test]
async fn a_slowloris_head_is_cut_within_header_read_timeout_plus_a_second() {
    let h = Setup::new()
        .limits("header_read_timeout = \"1s\"")
        .start()
        .await;
    let mut tls = raw_tls(h.addr(), Some("client"), b"http/1.1").await;
    let started = Instant::now();
    tls.write_all(b"POST /token HTTP/1.1\r\nhost: localhost\r\n")
        .await
        .unwrap();
    // One header byte every 200 ms: never a complete head.
    let mut closed_after = None;
    for _ in 0..50 {
        if tls.write_all(b"x").await.is_err() {
            closed_after = Some(started.elapsed());
            break;
        }
        let mut buf = [0u8; 256];
        match tokio::time::timeout(Duration::from_millis(200), tls.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed_after = Some(started.elapsed());
                break;
            }
            Ok(Ok(_)) => {
                // hyper may answer 408 before closing; keep reading until the close.
                continue;
            }
            Err(_) => {}
        }
    }
    let closed_after = closed_after.expect("the connection was never closed");
    assert!(
        closed_after < Duration::from_secs(2),
        "closed after {closed_after:?}"
    );
    h.stop().await;
}

#[tokio::test]
async fn an_idle_connection_after_the_handshake_is_closed_too() {
    let h = Setup::new()
        .limits("header_read_timeout = \"500ms\"")
        .start()
        .await;
    let mut tls = raw_tls(h.addr(), Some("client"), b"http/1.1").await;
    let started = Instant::now();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(5), tls.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
    assert!(started.elapsed() < Duration::from_millis(1500));
    // And an HTTP/1.1 keep-alive connection idle after a request.
    let mut tls = raw_tls(h.addr(), Some("client"), b"http/1.1").await;
    let body = form(PKI_CLIENT);
    tls.write_all(format!("POST /token HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\n\r\n{body}", body.len()).as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 16384];
    let n = tls.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let started = Instant::now();
    let mut closed = false;
    while started.elapsed() < Duration::from_secs(5) {
        match tokio::time::timeout(Duration::from_secs(5), tls.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed = true;
                break;
            }
            Ok(Ok(_)) => continue,
            Err(_) => break,
        }
    }
    assert!(
        closed && started.elapsed() < Duration::from_millis(1500),
        "idle keep-alive connection kept for {:?}",
        started.elapsed()
    );
    h.stop().await;
}

#[tokio::test]
async fn a_body_slower_than_request_timeout_gets_408() {
    let h = Setup::new()
        .limits("request_timeout = \"500ms\"")
        .start()
        .await;
    let mut tls = raw_tls(h.addr(), Some("client"), b"http/1.1").await;
    tls.write_all(b"POST /token HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: 100\r\n\r\ngrant_type=").await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("\"invalid_request\""), "{text}");
    h.stop().await;
}

#[tokio::test]
async fn an_oversized_head_is_refused_without_harm() {
    let h = Setup::new().start().await;
    let mut tls = raw_tls(h.addr(), Some("client"), b"http/1.1").await;
    let big = format!(
        "POST /token HTTP/1.1\r\nhost: localhost\r\nx-filler: {}\r\n\r\n",
        "a".repeat(200_000)
    );
    let _ = tls.write_all(big.as_bytes()).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 431"),
        "{text}"
    );
    // Still serving.
    assert_eq!(h.token(Some("client"), &form(PKI_CLIENT)).await.status, 200);
    h.stop().await;
}

#[tokio::test]
async fn connections_beyond_max_connections_wait_unaccepted() {
    let h = Setup::new().limits("max_connections = 2").start().await;
    let first = raw_tls(h.addr(), Some("client"), b"http/1.1").await;
    let _second = raw_tls(h.addr(), Some("client"), b"http/1.1").await;
    // A third connection completes TCP (kernel backlog) but is not served while both slots are taken.
    let h_url = h.url("/token");
    let waiting = tokio::spawn(async move {
        let started = Instant::now();
        let answer = client_for(Some("client"), false)
            .post_form(&h_url, &form(PKI_CLIENT))
            .await;
        (started.elapsed(), answer.map(|a| a.status.as_u16()))
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        !waiting.is_finished(),
        "a third connection was served while two were open"
    );
    drop(first);
    let (elapsed, status) = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status, Ok(200));
    assert!(elapsed >= Duration::from_millis(700));
    h.stop().await;
}

#[tokio::test]
async fn many_http2_streams_on_one_connection_are_all_answered() {
    let h = Setup::new().start().await;
    let client = client_for(Some("client"), true);
    // Once the server's SETTINGS (32 streams at most) are known, the client queues the rest;
    // before that an HTTP/2 client may be refused streams beyond the limit (REFUSED_STREAM).
    assert_eq!(client.get(&h.url("/nope")).await.unwrap().status, 404);
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let client = client.clone();
        let url = h.url("/nope");
        tasks.push(tokio::spawn(async move {
            client.get(&url).await.map(|a| a.status.as_u16())
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), Ok(404));
    }
    h.stop().await;
}

#[tokio::test]
async fn a_replaced_crl_revokes_without_a_restart() {
    let h = Setup::new().server("crl = [\"crl-current.pem\"]");
    // Start with a CRL that revokes nothing relevant to "client": the stale one is not usable,
    // so use the good CRL (which revokes only "revoked") and then one that is stale.
    std::fs::copy(h.dir.path("crl.pem"), h.dir.path("crl-current.pem")).unwrap();
    let h = h.start().await;
    assert_eq!(h.token(Some("client"), &form(PKI_CLIENT)).await.status, 200);
    assert_eq!(
        h.token(Some("revoked"), &form(PKI_CLIENT)).await.status,
        401
    );
    // The CRL file is replaced by one past its nextUpdate: the gateway now fails closed.
    std::fs::copy(
        h.setup.dir.path("crl-stale.pem"),
        h.setup.dir.path("crl-current.pem"),
    )
    .unwrap();
    h.running.as_ref().unwrap().reload().unwrap();
    let answer = h.token(Some("client"), &form(PKI_CLIENT)).await;
    assert_error(&answer, 401, "invalid_client");
    h.stop().await;
}
