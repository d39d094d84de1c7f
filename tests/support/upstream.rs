//! A scriptable HTTPS upstream on loopback: records the forms it receives and answers as told
//! (a fixed JSON answer, garbage bytes, silence, a reset).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

#[derive(Clone, Debug)]
pub enum Behaviour {
    /// Answer with this status, extra headers and body.
    Answer(u16, Vec<(&'static str, &'static str)>, String),
    /// Answer like `Answer`, after a delay.
    Delayed(u64, u16, String),
    /// Write bytes that are not HTTP, then close.
    Garbage,
    /// Complete TLS, then never answer.
    Silent,
    /// Answer headers, then reset mid-body.
    ResetMidBody,
    /// Over HTTP/1.1: declare a 50 MB answer, send one byte of it, then stall.
    DeclaresHuge,
}

pub struct FakeUpstream {
    pub addr: SocketAddr,
    pub forms: Arc<Mutex<Vec<(String, String)>>>,
    /// The headers of each request, in order.
    pub headers: Arc<Mutex<Vec<http::HeaderMap>>>,
    /// TCP connections accepted.
    pub connections: Arc<std::sync::atomic::AtomicUsize>,
    /// Requests whose handling was cancelled before it answered: over HTTP/2, each is a
    /// RST_STREAM from the gateway (or its connection going away).
    pub cancelled: Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeUpstream {
    /// A generic-upstream config block named "dev" pointing at this server.
    pub fn config(&self, timeout: &str) -> String {
        format!(
            "[upstreams.dev]\ntype = \"generic\"\ntoken_endpoint = \"https://127.0.0.1:{port}/oauth2/token\"\nmetadata_url = \"https://127.0.0.1:{port}/.well-known/openid-configuration\"\nca = [\"ca1.pem\"]\ntimeout = \"{timeout}\"\n",
            port = self.addr.port()
        )
    }

    /// The forms received (path, body).
    pub fn forms(&self) -> Vec<(String, String)> {
        self.forms.lock().unwrap().clone()
    }

    pub async fn start(behaviour: Behaviour) -> Self {
        let pki = super::pki();
        let server = pki.get("server");
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(server.cert.as_bytes())
                .collect::<Result<_, _>>()
                .unwrap();
        let key = PrivateKeyDer::from_pem_slice(server.key.as_bytes()).unwrap();
        let mut tls = mtls_gateway::idp::server_config(chain, key).unwrap();
        if matches!(behaviour, Behaviour::DeclaresHuge) {
            let mut http1 = (*tls).clone();
            http1.alpn_protocols = vec![b"http/1.1".to_vec()];
            tls = Arc::new(http1);
        }
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let forms: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
        let recorded = forms.clone();
        let headers: Arc<Mutex<Vec<http::HeaderMap>>> = Arc::default();
        let heads = headers.clone();
        let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = connections.clone();
        let cancelled = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let cancels = cancelled.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let acceptor = acceptor.clone();
                let behaviour = behaviour.clone();
                let recorded = recorded.clone();
                let heads = heads.clone();
                let cancels = cancels.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    match behaviour {
                        Behaviour::Garbage => {
                            let _ = tls.write_all(b"this is not HTTP at all\r\n\r\n").await;
                            let _ = tls.shutdown().await;
                        }
                        Behaviour::Silent => {
                            tokio::time::sleep(std::time::Duration::from_secs(60)).await;
                        }
                        Behaviour::DeclaresHuge => {
                            let _ = tls
                                .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 50000000\r\n\r\n{")
                                .await;
                            tokio::time::sleep(std::time::Duration::from_secs(30)).await;
                        }
                        Behaviour::ResetMidBody => {
                            let _ = tls
                                .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{\"access_")
                                .await;
                            drop(tls);
                        }
                        Behaviour::Delayed(ms, status, body) => {
                            let json = vec![("content-type", "application/json")];
                            answer(tls, (recorded, heads), cancels, ms, status, json, body).await;
                        }
                        Behaviour::Answer(status, headers, body) => {
                            answer(tls, (recorded, heads), cancels, 0, status, headers, body).await;
                        }
                    }
                });
            }
        });
        Self {
            addr,
            forms,
            headers,
            connections,
            cancelled,
            task,
        }
    }
}

/// Counts a request handler dropped before it answered.
struct Pending(Arc<std::sync::atomic::AtomicUsize>, bool);

impl Pending {
    fn done(&mut self) {
        self.1 = false;
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if self.1 {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

/// A 200 Entra-shaped token answer.
pub fn ok_answer() -> Behaviour {
    Behaviour::Answer(
        200,
        vec![("content-type", "application/json; charset=utf-8")],
        r#"{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"eyJ0eXAiOiJKV1QifQ.e30.c2lnbmF0dXJl"}"#.into(),
    )
}

/// Where requests are recorded: (path, body) and headers.
type Recorders = (
    Arc<Mutex<Vec<(String, String)>>>,
    Arc<Mutex<Vec<http::HeaderMap>>>,
);

/// Serves HTTP on `tls`: records each request's path and body, waits `delay_ms`, answers.
async fn answer(
    tls: tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
    (recorded, heads): Recorders,
    cancels: Arc<std::sync::atomic::AtomicUsize>,
    delay_ms: u64,
    status: u16,
    headers: Vec<(&'static str, &'static str)>,
    body: String,
) {
    let service = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
        let (recorded, headers, body) = (recorded.clone(), headers.clone(), body.clone());
        let heads = heads.clone();
        let cancels = cancels.clone();
        async move {
            let mut pending = Pending(cancels, true);
            let path = req.uri().path().to_string();
            heads.lock().unwrap().push(req.headers().clone());
            let form = req
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            recorded
                .lock()
                .unwrap()
                .push((path, String::from_utf8_lossy(&form).into_owned()));
            tokio::time::sleep(std::time::Duration::from_millis(delay_ms)).await;
            let mut response = http::Response::builder().status(status);
            for (k, v) in headers {
                response = response.header(k, v);
            }
            pending.done();
            Ok::<_, Infallible>(response.body(Full::new(Bytes::from(body))).unwrap())
        }
    });
    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(tls), service)
        .await;
}
