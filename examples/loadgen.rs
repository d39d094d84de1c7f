//! The load generator of benches/load/run.sh, and the static upstream it measures against.
//!
//!   loadgen upstream ADDR CERT KEY
//!       an HTTPS responder (HTTP/1.1 + HTTP/2) answering every request with a ~1.3 KB
//!       Entra-shaped token JSON; it performs no checks.
//!   loadgen floor ADDR CERT KEY SIGNING_KEY|-
//!       the floor of a token request on a new connection, for comparison: a TLS server that
//!       requires a client certificate and checks its possession proof (CertificateVerify)
//!       but not its chain (the gateway verifies a chain once per configuration generation),
//!       reads one HTTP/1.1 request, signs one RS256-sized input with SIGNING_KEY (an RSA
//!       PKCS#8 PEM; `-`: no signature, the floor with a reused assertion), answers the static
//!       token JSON and closes. No routing, no form, no registry, no upstream exchange: less
//!       work than any gateway does, on a current-thread runtime like the gateway's benches.
//!   loadgen run MODE URL CA CERT KEY SECONDS CONCURRENCY PIDS
//!       MODE: newconn (a new TLS connection, full handshake, per request), keepalive (one
//!       connection per worker), idle (open CONCURRENCY connections, hold them SECONDS),
//!       nagle1 / nagle2 (a new connection per request from a client that leaves Nagle on,
//!       as `ab` and most legacy clients do, writing the request in one write / the head and
//!       the body in two; HTTP/1.1 with `Connection: close`), resume (as newconn, with the
//!       client's session cache on, as Java, .NET and curl have it: TLS 1.3 tickets resume
//!       when the server issues them; `resumed` in the output counts the handshakes that did).
//!       PIDS: comma-separated server process ids whose CPU time (utime+stime) is measured.
//!       Prints one JSON line: requests, errors, rps, p50_ms, p99_ms, cpu_us_per_req, rss_kib.
//!
//! TLS: rustls with aws-lc-rs, X25519 only; no session resumption except in `resume`.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

const FORM: &str = "grant_type=client_credentials&client_id=11111111-2222-3333-4444-555555555555&scope=https%3A%2F%2Fgraph.microsoft.com%2F.default";

fn token_json() -> String {
    let pad = "A".repeat(1150);
    format!(
        r#"{{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.{pad}.c2ln"}}"#
    )
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    match args.get(1).map(String::as_str) {
        Some("upstream") => runtime.block_on(upstream(&args[2], &args[3], &args[4])),
        Some("run") => runtime.block_on(run(&args[2..])),
        Some("floor") => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(floor(&args[2], &args[3], &args[4], &args[5])),
        _ => {
            eprintln!("usage: loadgen upstream ADDR CERT KEY | loadgen run MODE URL CA CERT KEY SECONDS CONCURRENCY PIDS");
            std::process::exit(2);
        }
    }
}

async fn upstream(addr: &str, cert: &str, key: &str) {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .expect("cert")
        .map(|c| c.expect("cert"))
        .collect();
    let key = PrivateKeyDer::from_pem_file(key).expect("key");
    let mut tls = mtls_gateway::idp::server_config(chain, key).expect("tls");
    // LOADGEN_UPSTREAM_H1=1: offer HTTP/1.1 only, so that clients use a pool of connections.
    if std::env::var_os("LOADGEN_UPSTREAM_H1").is_some() {
        if let Some(config) = std::sync::Arc::get_mut(&mut tls) {
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
        }
    }
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
    let body = Bytes::from(token_json());
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let body = body.clone();
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let service =
                hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let body = body.clone();
                    async move {
                        let _ = req.into_body().collect().await;
                        Ok::<_, Infallible>(
                            http::Response::builder()
                                .header("content-type", "application/json; charset=utf-8")
                                .body(Full::new(body))
                                .expect("response"),
                        )
                    }
                });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), service)
                .await;
        });
    }
}

/// Accepts any client certificate, verifies the handshake signature made with its key.
#[derive(Debug)]
struct PossessionOnly(rustls::crypto::WebPkiSupportedAlgorithms);

impl rustls::server::danger::ClientCertVerifier for PossessionOnly {
    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        &[]
    }
    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        Ok(rustls::server::danger::ClientCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_schemes()
    }
}

async fn floor(addr: &str, cert: &str, key: &str, signing_key: &str) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .expect("cert")
        .map(|c| c.expect("cert"))
        .collect();
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    // The gateway's preference: AES-128-GCM-SHA256 first.
    provider
        .cipher_suites
        .sort_by_key(|s| s.suite() != rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
    let verifier = Arc::new(PossessionOnly(provider.signature_verification_algorithms));
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, PrivateKeyDer::from_pem_file(key).expect("key"))
        .expect("server config");
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let signer = (signing_key != "-").then(|| {
        let der = rustls_pki_types::PrivatePkcs8KeyDer::from_pem_file(signing_key)
            .expect("signing key (PKCS#8 PEM)");
        Arc::new(
            aws_lc_rs::signature::RsaKeyPair::from_pkcs8(der.secret_pkcs8_der())
                .expect("RSA signing key"),
        )
    });
    let body = token_json();
    let answer = Bytes::from(format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    ));
    let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let (acceptor, signer, answer) = (acceptor.clone(), signer.clone(), answer.clone());
        tokio::spawn(async move {
            let Ok(mut tls) = acceptor.accept(tcp).await else {
                return;
            };
            let mut request = Vec::with_capacity(1024);
            let mut buf = [0u8; 4096];
            // The head, then as many body bytes as content-length says.
            loop {
                let Ok(n) = tls.read(&mut buf).await else {
                    return;
                };
                if n == 0 {
                    return;
                }
                request.extend_from_slice(&buf[..n]);
                if let Some(end) = memchr::memmem::find(&request, b"\r\n\r\n") {
                    let length = String::from_utf8_lossy(&request[..end])
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse::<usize>().ok())?
                        })
                        .unwrap_or(0);
                    if request.len() >= end + 4 + length {
                        break;
                    }
                }
            }
            if let Some(key) = signer {
                // An assertion's signing input is ≈ 700 bytes.
                let input = [b'a'; 700];
                let mut signature = vec![0u8; key.public_modulus_len()];
                key.sign(
                    &aws_lc_rs::signature::RSA_PKCS1_SHA256,
                    &aws_lc_rs::rand::SystemRandom::new(),
                    &input,
                    &mut signature,
                )
                .expect("signature");
                std::hint::black_box(&signature);
            }
            let _ = tls.write_all(&answer).await;
            let _ = tls.shutdown().await;
        });
    }
}

fn cpu_ticks(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .filter_map(|s| {
            // Fields after the ")" of the command name; utime and stime are the 14th and 15th.
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .sum()
}

fn rss_kib(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
        .filter_map(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))?
                .split_whitespace()
                .nth(1)?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

type Conn = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// Handshakes that resumed a session (mode `resume`).
static RESUMED: AtomicU64 = AtomicU64::new(0);

async fn connect(config: &Arc<rustls::ClientConfig>, addr: &str) -> Result<Conn, String> {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let _ = tcp.set_nodelay(true);
    let tls = tokio_rustls::TlsConnector::from(config.clone())
        .connect(
            ServerName::try_from("localhost").map_err(|e| e.to_string())?,
            tcp,
        )
        .await
        .map_err(|e| e.to_string())?;
    if tls.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed) {
        RESUMED.fetch_add(1, Ordering::Relaxed);
    }
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(send)
}

/// One request on a new connection from a Nagle-on client (TCP_NODELAY left off).
async fn nagle_request(
    config: &Arc<rustls::ClientConfig>,
    addr: &str,
    path: &str,
    split: bool,
) -> Result<(), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let mut tls = tokio_rustls::TlsConnector::from(config.clone())
        .connect(
            ServerName::try_from("localhost").map_err(|e| e.to_string())?,
            tcp,
        )
        .await
        .map_err(|e| e.to_string())?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        FORM.len()
    );
    if split {
        tls.write_all(head.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        tls.flush().await.map_err(|e| e.to_string())?;
        tls.write_all(FORM.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
    } else {
        tls.write_all(format!("{head}{FORM}").as_bytes())
            .await
            .map_err(|e| e.to_string())?;
    }
    tls.flush().await.map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    let _ = tls.read_to_end(&mut answer).await;
    if answer.starts_with(b"HTTP/1.1 200") {
        Ok(())
    } else {
        Err("not a 200".into())
    }
}

async fn post(send: &mut Conn, host: &str, path: &str) -> Result<(), String> {
    send.ready().await.map_err(|e| e.to_string())?;
    let req = http::Request::post(path)
        .header("host", host)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from_static(FORM.as_bytes())))
        .map_err(|e| e.to_string())?;
    let response = send.send_request(req).await.map_err(|e| e.to_string())?;
    let status = response.status();
    let _ = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    if status == 200 {
        Ok(())
    } else {
        Err(format!("status {status}"))
    }
}

async fn run(args: &[String]) {
    let [mode, url, ca, cert, key, seconds, concurrency, pids] = args else {
        eprintln!("run: expected MODE URL CA CERT KEY SECONDS CONCURRENCY PIDS");
        std::process::exit(2);
    };
    let seconds: u64 = seconds.parse().expect("seconds");
    let concurrency: usize = concurrency.parse().expect("concurrency");
    let pids: Vec<u32> = pids.split(',').filter_map(|p| p.parse().ok()).collect();
    let rest = url.strip_prefix("https://").expect("https URL");
    let (addr, path) = rest
        .split_once('/')
        .map(|(a, p)| (a.to_string(), format!("/{p}")))
        .expect("URL with a path");
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).expect("ca") {
        roots.add(c.expect("ca")).expect("ca");
    }
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .expect("cert")
        .map(|c| c.expect("cert"))
        .collect();
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    provider.kx_groups = vec![rustls::crypto::aws_lc_rs::kx_group::X25519];
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, PrivateKeyDer::from_pem_file(key).expect("key"))
        .expect("client auth");
    config.resumption = if mode == "resume" {
        rustls::client::Resumption::in_memory_sessions(256)
    } else {
        rustls::client::Resumption::disabled()
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let config = Arc::new(config);

    if mode == "idle" {
        let before = rss_kib(&pids);
        let mut held = Vec::new();
        let mut errors = 0u64;
        for _ in 0..concurrency {
            match connect(&config, &addr).await {
                Ok(c) => held.push(c),
                Err(_) => errors += 1,
            }
        }
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        let during = rss_kib(&pids);
        println!(
            "{{\"mode\":\"idle\",\"connections\":{},\"errors\":{errors},\"rss_kib_before\":{before},\"rss_kib\":{during}}}",
            held.len()
        );
        return;
    }

    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(Mutex::new(Vec::<u32>::with_capacity(1 << 20)));
    let cpu_before = cpu_ticks(&pids);
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (config, addr, path, stop, count, errors, latencies) = (
            config.clone(),
            addr.clone(),
            path.clone(),
            stop.clone(),
            count.clone(),
            errors.clone(),
            latencies.clone(),
        );
        let keepalive = mode == "keepalive";
        let nagle = match mode.as_str() {
            "nagle1" => Some(false),
            "nagle2" => Some(true),
            _ => None,
        };
        workers.push(tokio::spawn(async move {
            let mut conn: Option<Conn> = None;
            let mut local = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let result = async {
                    if let Some(split) = nagle {
                        return nagle_request(&config, &addr, &path, split).await;
                    }
                    if conn.is_none() || !keepalive {
                        conn = Some(connect(&config, &addr).await?);
                    }
                    let c = conn.as_mut().ok_or("no connection")?;
                    post(c, "localhost", &path).await
                }
                .await;
                match result {
                    Ok(()) => {
                        count.fetch_add(1, Ordering::Relaxed);
                        local.push(t.elapsed().as_micros() as u32);
                    }
                    Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        conn = None;
                    }
                }
                if !keepalive {
                    conn = None;
                }
            }
            if let Ok(mut l) = latencies.lock() {
                l.extend(local);
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    let cpu_after = cpu_ticks(&pids);
    for w in workers {
        let _ = w.await;
    }
    let n = count.load(Ordering::Relaxed);
    let mut l = latencies.lock().map(|l| l.clone()).unwrap_or_default();
    l.sort_unstable();
    let pct = |p: f64| {
        l.get(((l.len() as f64 * p) as usize).min(l.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0) as f64
            / 1000.0
    };
    // Ticks are 1/100 s (CLK_TCK).
    let cpu_us = (cpu_after.saturating_sub(cpu_before)) as f64 * 10_000.0;
    println!(
        "{{\"mode\":\"{mode}\",\"concurrency\":{concurrency},\"requests\":{n},\"errors\":{},\"resumed\":{},\"rps\":{:.0},\"p50_ms\":{:.3},\"p99_ms\":{:.3},\"cpu_us_per_req\":{:.0},\"rss_kib\":{}}}",
        errors.load(Ordering::Relaxed),
        RESUMED.load(Ordering::Relaxed),
        n as f64 / elapsed,
        pct(0.50),
        pct(0.99),
        if n > 0 { cpu_us / n as f64 } else { 0.0 },
        rss_kib(&pids)
    );
}
