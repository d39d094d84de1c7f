//! The upstream identity provider: token URLs, the pooled HTTPS client, and the exchange.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls_pki_types::CertificateDer;

use crate::config::{UpstreamKind, UpstreamSpec};

/// Largest upstream answer read; a larger one is treated as not an HTTP answer we can relay.
pub const MAX_RESPONSE_BYTES: usize = 1 << 20;

/// How long fetched discovery documents are served from memory.
pub const METADATA_TTL: Duration = Duration::from_secs(600);
/// How long fetched signing keys (JWKS) are used before they are fetched again.
pub const JWKS_TTL: Duration = Duration::from_secs(3600);
/// A token naming an unknown key fetches the keys again at most this often: tokens with
/// made-up `kid`s cannot make the gateway hammer the identity provider.
pub const JWKS_MIN_REFRESH: Duration = Duration::from_secs(30);

/// The identity provider's token signing keys and issuer, from its metadata.
#[derive(Debug)]
pub struct TokenKeys {
    /// `issuer` of the discovery document.
    pub issuer: String,
    /// The keys of its `jwks_uri`.
    pub keys: crate::jwt::KeySet,
}

type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Which token endpoint a request addressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRoute {
    /// `/token`: the upstream's default (Entra v2.0, or the generic `token_endpoint`).
    Default,
    /// `/{tenant}/oauth2/v2.0/token`.
    V2,
    /// `/{tenant}/oauth2/token` (Entra v1).
    V1,
}

/// An upstream's answer, as relayed to the client.
#[derive(Debug)]
pub struct UpstreamResponse {
    /// Status.
    pub status: StatusCode,
    /// `Content-Type`.
    pub content_type: Option<HeaderValue>,
    /// `Retry-After`.
    pub retry_after: Option<HeaderValue>,
    /// Body.
    pub body: Bytes,
}

/// Why no upstream answer could be relayed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamFailure {
    /// Connection refused, TLS failure, reset, or not an HTTP answer.
    #[error("upstream unavailable: {0}")]
    Unavailable(String),
    /// No complete answer within the upstream's timeout.
    #[error("upstream did not answer within {0:?}")]
    Timeout(Duration),
}

/// A discovery document as fetched (when), and its `issuer`.
type Fetched = (Instant, Bytes, Option<Arc<str>>);

/// A live upstream: URLs plus a connection pool.
pub struct Upstream {
    /// The validated settings.
    pub spec: UpstreamSpec,
    v2_url: Option<String>,
    v1_url: Option<String>,
    default_url: String,
    metadata_url: Option<String>,
    client: HttpClient,
    /// The discovery document and when it was fetched; held across a fetch, so concurrent
    /// requests after expiry make one upstream call.
    /// The discovery document when fetched, and its `issuer` read once.
    metadata: tokio::sync::Mutex<Option<Fetched>>,
    /// The signing keys and when they were fetched; held across a fetch.
    jwks: tokio::sync::Mutex<Option<(Instant, Arc<TokenKeys>)>>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("name", &self.spec.name)
            .field("token_url", &self.default_url)
            .finish_non_exhaustive()
    }
}

impl Upstream {
    /// Builds the client for `spec`. `embedded` is the bound address and TLS CA of an embedded
    /// identity provider (required for `type = "embedded"`).
    pub fn new(
        spec: UpstreamSpec,
        embedded: Option<(SocketAddr, CertificateDer<'static>)>,
    ) -> Result<Self, String> {
        let mut extra = spec.ca.clone();
        let authority = match (&spec.kind, embedded) {
            (UpstreamKind::Entra { authority, .. }, _) => Some(authority.clone()),
            (UpstreamKind::Embedded { .. }, Some((addr, ca))) => {
                extra.push(ca);
                Some(authority_of(addr))
            }
            (UpstreamKind::Embedded { .. }, None) => {
                return Err("the embedded identity provider is not running".into())
            }
            (UpstreamKind::Generic { .. }, _) => None,
        };
        // An embedded provider is never a public host: only its own CA.
        let public_roots = !matches!(spec.kind, UpstreamKind::Embedded { .. });
        let tls = crate::net::tls_client_config(&extra, public_roots)
            .map_err(|e| format!("upstream {e}"))?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(spec.timeout));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build(https);
        let (v2_url, v1_url, default_url, metadata_url) = match (&spec.kind, authority) {
            (
                UpstreamKind::Generic {
                    token_endpoint,
                    metadata_url,
                },
                _,
            ) => (None, None, token_endpoint.clone(), metadata_url.clone()),
            // The embedded provider imitating another product: its paths, no tenant routes.
            (
                UpstreamKind::Embedded {
                    tenant, profile, ..
                },
                Some(authority),
            ) if *profile != crate::config::IdpProfile::Entra => (
                None,
                None,
                format!("{authority}{}", profile.token_path(tenant)),
                Some(profile.metadata_url(&authority, tenant)),
            ),
            (kind, Some(authority)) => {
                let tenant = kind.tenant().unwrap_or_default();
                let v2 = format!("{authority}/{tenant}/oauth2/v2.0/token");
                (
                    Some(v2.clone()),
                    Some(format!("{authority}/{tenant}/oauth2/token")),
                    v2,
                    Some(format!(
                        "{authority}/{tenant}/v2.0/.well-known/openid-configuration"
                    )),
                )
            }
            (_, None) => return Err("no authority".into()),
        };
        Ok(Self {
            spec,
            v2_url,
            v1_url,
            default_url,
            metadata_url,
            client,
            metadata: tokio::sync::Mutex::new(None),
            jwks: tokio::sync::Mutex::new(None),
        })
    }

    /// The upstream URL a token request on `route` is POSTed to (and the assertion's `aud`);
    /// `None` when the upstream has no such endpoint (tenant routes on a generic upstream).
    pub fn token_url(&self, route: TokenRoute) -> Option<&str> {
        match route {
            TokenRoute::Default => Some(&self.default_url),
            TokenRoute::V2 => self.v2_url.as_deref(),
            TokenRoute::V1 => self.v1_url.as_deref(),
        }
    }

    /// POSTs a form to `url`.
    pub async fn post_form(
        &self,
        url: &str,
        form: Bytes,
    ) -> Result<UpstreamResponse, UpstreamFailure> {
        self.exchange(Method::POST, url, Some(form), None).await
    }

    /// As [`Self::post_form`], carrying a W3C `traceparent` (the gateway's own span in the
    /// client's trace, [`crate::trace`]).
    pub async fn post_form_traced(
        &self,
        url: &str,
        form: Bytes,
        traceparent: Option<&HeaderValue>,
    ) -> Result<UpstreamResponse, UpstreamFailure> {
        self.exchange(Method::POST, url, Some(form), traceparent)
            .await
    }

    /// The `aud` of an assertion posted to `url` (`assertion_audience`): the URL itself, the
    /// metadata document's `issuer` exactly as written, or the configured URL. Borrowed but for
    /// the issuer, which is read once per metadata fetch.
    pub async fn assertion_audience<'a>(
        &'a self,
        url: &'a str,
    ) -> Result<std::borrow::Cow<'a, str>, UpstreamFailure> {
        use std::borrow::Cow;
        match &self.spec.audience {
            crate::config::AssertionAudience::TokenEndpoint => Ok(Cow::Borrowed(url)),
            crate::config::AssertionAudience::Exact(aud) => Ok(Cow::Borrowed(aud)),
            crate::config::AssertionAudience::Issuer => {
                let (_, issuer) = self.metadata_and_issuer().await?;
                issuer.map(|i| Cow::Owned(i.to_string())).ok_or_else(|| {
                    UpstreamFailure::Unavailable(
                        "the metadata document has no issuer (assertion_audience = \"issuer\")"
                            .into(),
                    )
                })
            }
        }
    }

    /// The discovery document, from memory when fetched less than 10 minutes ago.
    pub async fn metadata(&self) -> Result<Bytes, UpstreamFailure> {
        self.metadata_and_issuer().await.map(|(doc, _)| doc)
    }

    /// The discovery document and its `issuer` string, parsed once per fetch.
    async fn metadata_and_issuer(&self) -> Result<(Bytes, Option<Arc<str>>), UpstreamFailure> {
        let mut cached = self.metadata.lock().await;
        if let Some((at, doc, issuer)) = cached.as_ref() {
            if at.elapsed() < METADATA_TTL {
                return Ok((doc.clone(), issuer.clone()));
            }
        }
        let url = self
            .metadata_url
            .as_deref()
            .ok_or_else(|| UpstreamFailure::Unavailable("no metadata_url is configured".into()))?;
        let response = self.exchange(Method::GET, url, None, None).await?;
        if !response.status.is_success() {
            return Err(UpstreamFailure::Unavailable(format!(
                "metadata answered {}",
                response.status
            )));
        }
        let issuer = serde_json::from_slice::<serde_json::Value>(&response.body)
            .ok()
            .and_then(|d| d.get("issuer").and_then(|i| i.as_str()).map(Arc::from));
        *cached = Some((Instant::now(), response.body.clone(), issuer.clone()));
        Ok((response.body, issuer))
    }

    /// The token signing keys and issuer: from memory while younger than [`JWKS_TTL`] and
    /// knowing `kid`; fetched again for an unknown `kid` at most every [`JWKS_MIN_REFRESH`].
    /// When a fetch fails the keys held are used.
    pub async fn token_keys(&self, kid: Option<&str>) -> Result<Arc<TokenKeys>, UpstreamFailure> {
        let mut cached = self.jwks.lock().await;
        if let Some((at, keys)) = cached.as_ref() {
            let age = at.elapsed();
            if age < JWKS_TTL && (keys.keys.has(kid) || age < JWKS_MIN_REFRESH) {
                return Ok(keys.clone());
            }
        }
        match self.fetch_keys().await {
            Ok(keys) => {
                let keys = Arc::new(keys);
                *cached = Some((Instant::now(), keys.clone()));
                Ok(keys)
            }
            Err(e) => match cached.as_ref() {
                Some((_, keys)) => {
                    tracing::warn!(upstream = %self.spec.name, error = %e, "signing keys could not be fetched again; using the keys held");
                    Ok(keys.clone())
                }
                None => Err(e),
            },
        }
    }

    async fn fetch_keys(&self) -> Result<TokenKeys, UpstreamFailure> {
        let bad = |what: &str| UpstreamFailure::Unavailable(format!("metadata: {what}"));
        let doc: serde_json::Value =
            serde_json::from_slice(&self.metadata().await?).map_err(|_| bad("not JSON"))?;
        let issuer = doc
            .get("issuer")
            .and_then(|v| v.as_str())
            .ok_or_else(|| bad("no issuer"))?
            .to_string();
        let jwks_uri = doc
            .get("jwks_uri")
            .and_then(|v| v.as_str())
            .ok_or_else(|| bad("no jwks_uri"))?;
        let answer = self.exchange(Method::GET, jwks_uri, None, None).await?;
        if !answer.status.is_success() {
            return Err(UpstreamFailure::Unavailable(format!(
                "jwks_uri answered {}",
                answer.status
            )));
        }
        let keys = crate::jwt::KeySet::from_json(&answer.body)
            .map_err(|e| UpstreamFailure::Unavailable(format!("jwks_uri: {e}")))?;
        Ok(TokenKeys { issuer, keys })
    }

    async fn exchange(
        &self,
        method: Method,
        url: &str,
        form: Option<Bytes>,
        traceparent: Option<&HeaderValue>,
    ) -> Result<UpstreamResponse, UpstreamFailure> {
        let timeout = self.spec.timeout;
        let attempt = async {
            // A connect failure means nothing was sent: retry it once, nothing else.
            match self
                .send(method.clone(), url, form.clone(), traceparent)
                .await
            {
                Err(Retry::Connect(_)) => self.send(method, url, form, traceparent).await,
                other => other,
            }
        };
        match tokio::time::timeout(timeout, attempt).await {
            Err(_) => Err(UpstreamFailure::Timeout(timeout)),
            Ok(Ok(r)) => Ok(r),
            Ok(Err(Retry::Connect(e) | Retry::Other(e))) => Err(UpstreamFailure::Unavailable(e)),
        }
    }

    async fn send(
        &self,
        method: Method,
        url: &str,
        form: Option<Bytes>,
        traceparent: Option<&HeaderValue>,
    ) -> Result<UpstreamResponse, Retry> {
        let mut builder = Request::builder()
            .method(method)
            .uri(url)
            .header(http::header::ACCEPT, "application/json")
            .header(
                http::header::USER_AGENT,
                concat!("mtls-gateway/", env!("CARGO_PKG_VERSION")),
            );
        if form.is_some() {
            builder = builder.header(CONTENT_TYPE, "application/x-www-form-urlencoded");
        }
        if let Some(t) = traceparent {
            builder = builder.header(crate::trace::TRACEPARENT, t.clone());
        }
        let request = builder
            .body(Full::new(form.unwrap_or_default()))
            .map_err(|e| Retry::Other(format!("bad upstream URL: {e}")))?;
        let response = self.client.request(request).await.map_err(|e| {
            let text = error_chain(&e);
            if e.is_connect() {
                Retry::Connect(text)
            } else {
                Retry::Other(text)
            }
        })?;
        let (parts, body) = response.into_parts();
        // An answer that declares more than the cap fails at once, unread.
        let declared = parts
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|n| n > MAX_RESPONSE_BYTES as u64) {
            return Err(Retry::Other(format!(
                "the answer declares {} bytes, more than the {MAX_RESPONSE_BYTES}-byte limit",
                declared.unwrap_or_default()
            )));
        }
        let body = Limited::new(body, MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map_err(|e| Retry::Other(format!("reading the answer: {e}")))?
            .to_bytes();
        Ok(UpstreamResponse {
            status: parts.status,
            content_type: parts.headers.get(CONTENT_TYPE).cloned(),
            retry_after: parts.headers.get(RETRY_AFTER).cloned(),
            body,
        })
    }
}

enum Retry {
    Connect(String),
    Other(String),
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The `https://host:port` base of an address (loopback when bound to the unspecified address).
pub fn authority_of(addr: SocketAddr) -> String {
    let ip = if addr.ip().is_unspecified() {
        std::net::IpAddr::from([127, 0, 0, 1])
    } else {
        addr.ip()
    };
    format!("https://{}", SocketAddr::new(ip, addr.port()))
}

impl From<UpstreamFailure> for crate::error::GatewayError {
    fn from(f: UpstreamFailure) -> Self {
        use crate::error::{ErrorKind, GatewayError};
        let (kind, description) = match f {
            UpstreamFailure::Timeout(_) => (
                ErrorKind::UpstreamTimeout,
                "the identity provider did not answer in time",
            ),
            UpstreamFailure::Unavailable(_) => (
                ErrorKind::UpstreamUnavailable,
                "the identity provider cannot be reached",
            ),
        };
        GatewayError::new(kind, description).with_reason(f.to_string())
    }
}
