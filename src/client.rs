//! A minimal HTTPS client that presents a client certificate: used by `demo` and the tests to
//! talk to the gateway the way a legacy client does.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// An answer: status, headers, body.
#[derive(Debug)]
pub struct Answer {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
}

impl Answer {
    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// An HTTPS client trusting `roots`, presenting `identity` when given.
#[derive(Clone)]
pub struct MtlsClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl MtlsClient {
    /// Builds the client; `http2` forces HTTP/2 via ALPN, else HTTP/1.1.
    pub fn new(
        roots: &[CertificateDer<'static>],
        identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
        http2: bool,
    ) -> Result<Self, String> {
        let mut store = rustls::RootCertStore::empty();
        for r in roots {
            store.add(r.clone()).map_err(|e| e.to_string())?;
        }
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(store);
        let config = match identity {
            Some((chain, key)) => builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| e.to_string())?,
            None => builder.with_no_client_auth(),
        };
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_only();
        let connector = if http2 {
            connector.enable_http2().build()
        } else {
            connector.enable_http1().build()
        };
        let client = Client::builder(TokioExecutor::new())
            .http2_only(http2)
            .build(connector);
        Ok(Self { client })
    }

    /// Sends a request and reads the whole answer.
    pub async fn send(&self, request: Request<Full<Bytes>>) -> Result<Answer, String> {
        let response = self.client.request(request).await.map_err(|e| {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                text.push_str(": ");
                text.push_str(&s.to_string());
                source = s.source();
            }
            text
        })?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
        Ok(Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }

    /// POSTs a form.
    pub async fn post_form(&self, url: &str, form: &str) -> Result<Answer, String> {
        let request = Request::post(url)
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(Full::new(Bytes::from(form.to_string())))
            .map_err(|e| e.to_string())?;
        self.send(request).await
    }

    /// GETs a URL.
    pub async fn get(&self, url: &str) -> Result<Answer, String> {
        let request = Request::get(url)
            .body(Full::new(Bytes::new()))
            .map_err(|e| e.to_string())?;
        self.send(request).await
    }
}

/// Reads a PEM certificate chain and key from files.
pub fn load_identity(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    use rustls_pki_types::pem::PemObject as _;
    let chain = crate::config::parse_certs(
        &std::fs::read(cert).map_err(|e| format!("{}: {e}", cert.display()))?,
    )?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
    Ok((chain, key))
}
