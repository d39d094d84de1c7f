//! The mTLS listener: protocol versions, ALPN, session resumption (off by default; when on,
//! resumed sessions are verified per request like any other), handshake timeout.

use std::sync::Arc;

use rustls::client::Resumption;
use rustls::{ClientConfig, HandshakeKind};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

fn config(versions: &[&'static rustls::SupportedProtocolVersion], alpn: &[&[u8]]) -> ClientConfig {
    let mut config = client_tls(Some("client"), versions);
    config.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
    config.resumption = Resumption::in_memory_sessions(16);
    config
}

async fn connect(
    h: &Harness,
    config: Arc<ClientConfig>,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let tcp = tokio::net::TcpStream::connect(h.addr()).await?;
    tokio_rustls::TlsConnector::from(config)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}

async fn token_over(tls: tokio_rustls::client::TlsStream<tokio::net::TcpStream>) -> String {
    token_for(tls, PKI_CLIENT).await
}

/// A token request for `client_id`; reading the answer to its end also takes the TLS 1.3
/// tickets the server sent.
async fn token_for(
    mut tls: tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    client_id: &str,
) -> String {
    let body = form(client_id);
    let request = format!(
        "POST /token HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tls.read_to_end(&mut out).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn tls12_clients_authenticate_by_default() {
    let h = Setup::new().start().await;
    let tls = connect(
        &h,
        Arc::new(config(&[&rustls::version::TLS12], &[b"http/1.1"])),
    )
    .await
    .unwrap();
    assert_eq!(
        tls.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    let answer = token_over(tls).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    h.stop().await;
}

#[tokio::test]
async fn min_tls_version_1_3_refuses_tls12() {
    let h = Setup::new()
        .server("min_tls_version = \"1.3\"")
        .start()
        .await;
    assert!(
        connect(&h, Arc::new(config(&[&rustls::version::TLS12], &[])))
            .await
            .is_err()
    );
    let tls = connect(&h, Arc::new(config(&[&rustls::version::TLS13], &[])))
        .await
        .unwrap();
    assert!(token_over(tls).await.starts_with("HTTP/1.1 200"));
    h.stop().await;
}

#[tokio::test]
async fn alpn_offers_h2_and_http11() {
    let h = Setup::new().start().await;
    let tls = connect(
        &h,
        Arc::new(config(&[&rustls::version::TLS13], &[b"h2", b"http/1.1"])),
    )
    .await
    .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let tls = connect(
        &h,
        Arc::new(config(&[&rustls::version::TLS13], &[b"http/1.1"])),
    )
    .await
    .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    h.stop().await;
}

#[tokio::test]
async fn without_server_resumption_sessions_are_never_resumed() {
    let h = Setup::new().start().await;
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        // One client config, so a resumable session would be offered on the second connection.
        let config = Arc::new(config(&[version], &[b"http/1.1"]));
        for _ in 0..2 {
            let tls = connect(&h, config.clone()).await.unwrap();
            assert_eq!(tls.get_ref().1.handshake_kind(), Some(HandshakeKind::Full));
            assert!(token_over(tls).await.starts_with("HTTP/1.1 200"));
        }
    }
    h.stop().await;
}

#[tokio::test]
async fn the_server_prefers_aes_128_gcm_sha256_and_still_accepts_the_others() {
    use rustls::CipherSuite::*;
    let h = Setup::new().start().await;
    // rustls clients list AES-256 first; the server's order decides.
    let tls = connect(
        &h,
        Arc::new(config(&[&rustls::version::TLS13], &[b"http/1.1"])),
    )
    .await
    .unwrap();
    let suite = tls.get_ref().1.negotiated_cipher_suite().unwrap().suite();
    assert_eq!(suite, TLS13_AES_128_GCM_SHA256);
    assert!(token_over(tls).await.starts_with("HTTP/1.1 200"));
    // A client that offers only AES-256 gets it.
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    provider
        .cipher_suites
        .retain(|s| s.suite() == TLS13_AES_256_GCM_SHA384);
    let mut only_256 = client_tls_with(provider, Some("client"), &[&rustls::version::TLS13]);
    only_256.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tls = connect(&h, Arc::new(only_256)).await.unwrap();
    let suite = tls.get_ref().1.negotiated_cipher_suite().unwrap().suite();
    assert_eq!(suite, TLS13_AES_256_GCM_SHA384);
    assert!(token_over(tls).await.starts_with("HTTP/1.1 200"));
    h.stop().await;
}

/// A new connection with `config` (whose session cache offers what it holds): how the
/// handshake went, and the status of a token request for `client_id` over it.
async fn resumed_token(
    h: &Harness,
    config: &Arc<ClientConfig>,
    client_id: &str,
) -> (HandshakeKind, String) {
    let tls = connect(h, config.clone()).await.unwrap();
    let kind = tls.get_ref().1.handshake_kind().unwrap();
    let answer = token_for(tls, client_id).await;
    (kind, answer.get(9..12).unwrap_or_default().to_string())
}

#[tokio::test]
async fn with_server_resumption_tls13_and_tls12_sessions_resume_and_still_authenticate() {
    let h = Setup::new().server("resumption = true").start().await;
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let config = Arc::new(config(&[version], &[b"http/1.1"]));
        assert_eq!(
            resumed_token(&h, &config, PKI_CLIENT).await,
            (HandshakeKind::Full, "200".into())
        );
        // The resumed session carries the certificate of its full handshake: it authenticates
        // this client and no other.
        assert_eq!(
            resumed_token(&h, &config, PKI_CLIENT).await,
            (HandshakeKind::Resumed, "200".into())
        );
        assert_eq!(
            resumed_token(&h, &config, SELF_SIGNED_CLIENT).await,
            (HandshakeKind::Resumed, "401".into())
        );
    }
    h.stop().await;
}

#[tokio::test]
async fn a_reload_that_distrusts_the_ca_refuses_requests_on_resumed_sessions() {
    let h = Setup::new().server("resumption = true").start().await;
    let config = Arc::new(config(&[&rustls::version::TLS13], &[b"http/1.1"]));
    assert_eq!(
        resumed_token(&h, &config, PKI_CLIENT).await,
        (HandshakeKind::Full, "200".into())
    );
    // ca1, the client's issuer, leaves client_ca; the ticket keys survive the reload.
    let toml = h.setup.toml().replace(
        "client_ca = [\"ca1.pem\", \"ca2.pem\"]",
        "client_ca = [\"ca2.pem\"]",
    );
    assert_ne!(toml, h.setup.toml());
    h.setup.dir.write("gateway.toml", &toml);
    h.running.as_ref().unwrap().reload().unwrap();
    assert_eq!(
        resumed_token(&h, &config, PKI_CLIENT).await,
        (HandshakeKind::Resumed, "401".into()),
        "trust is decided per request, resumed or not"
    );
    h.stop().await;
}

#[tokio::test]
async fn a_silent_connection_is_closed_after_the_handshake_timeout() {
    let h = Setup::new()
        .limits("header_read_timeout = \"300ms\"")
        .start()
        .await;
    let mut tcp = tokio::net::TcpStream::connect(h.addr()).await.unwrap();
    let started = std::time::Instant::now();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(std::time::Duration::from_secs(5), tcp.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "the gateway closes the connection: {read:?}"
    );
    assert!(started.elapsed() < std::time::Duration::from_millis(1300));
    h.stop().await;
}

/// One token request on a new TLS connection from a client that leaves Nagle on (the socket
/// default) and writes the head and the body separately, as many legacy HTTP stacks do;
/// returns the time from the first byte of the request to the end of the answer.
async fn nagle_client_request(h: &Harness, version: &str) -> (std::time::Duration, String) {
    let mut tls = raw_tls(h.addr(), Some("client"), b"http/1.1").await;
    assert!(
        !tls.get_ref().0.nodelay().unwrap(),
        "the client must leave Nagle on"
    );
    // An unregistered client_id: the whole request is read (head and body), and the answer
    // needs no signature or upstream, so only the network path is timed.
    let body = form("00000000-0000-0000-0000-00000000dead");
    let head = format!(
        "POST /token {version}\r\nhost: localhost\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let started = std::time::Instant::now();
    tls.write_all(head.as_bytes()).await.unwrap();
    tls.flush().await.unwrap();
    tls.write_all(body.as_bytes()).await.unwrap();
    tls.flush().await.unwrap();
    let mut out = Vec::new();
    let _ = tls.read_to_end(&mut out).await;
    (
        started.elapsed(),
        String::from_utf8_lossy(&out).into_owned(),
    )
}

#[tokio::test]
async fn a_nagle_on_client_writing_head_and_body_apart_is_not_held_by_delayed_acks() {
    let h = Setup::new().start().await;
    for version in ["HTTP/1.0", "HTTP/1.1"] {
        let mut times = Vec::new();
        for _ in 0..5 {
            let (took, answer) = nagle_client_request(&h, version).await;
            assert!(answer.contains(" 401 Unauthorized"), "{version}: {answer}");
            times.push(took);
        }
        times.sort();
        // Without immediate ACKs each request waits for the 40 ms delayed-ACK timer, once
        // after the handshake and once after the head.
        assert!(
            times[2] < std::time::Duration::from_millis(20),
            "{version}: median {:?} of {times:?}",
            times[2]
        );
    }
    h.stop().await;
}
