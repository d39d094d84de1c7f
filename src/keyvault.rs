//! Azure Key Vault / Managed HSM keys (SPEC §12 `key_vault = { … }`): the digest of the
//! assertion is signed in the vault (`POST {url}/keys/{key}/{version}/sign?api-version=7.4`),
//! with a token for `https://vault.azure.net` from managed identity (IMDS) or AKS workload
//! identity (the `AZURE_*` variables), cached until shortly before it expires. A 401 challenge
//! fetches a fresh token and retries once; a 429 stops signing for its `Retry-After`.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls_pki_types::CertificateDer;

/// The resource (and scope base) of Key Vault tokens.
pub const VAULT_RESOURCE: &str = "https://vault.azure.net";
/// IMDS when `identity_endpoint` is not set.
pub const DEFAULT_IMDS: &str = "http://169.254.169.254/metadata/identity/oauth2/token";
/// A vault token is replaced this long before it expires.
pub const TOKEN_MARGIN: Duration = Duration::from_secs(300);
/// RFC 7523's client assertion type (the same as `assertion::ASSERTION_TYPE`; this module
/// sits below `assertion`).
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Largest answer read from the vault or the identity endpoint.
const MAX_ANSWER: usize = 64 * 1024;

/// Where the vault token comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VaultIdentity {
    /// Managed identity: `GET {endpoint}?api-version=2018-02-01&resource=…` with `Metadata: true`.
    Managed {
        /// The IMDS token endpoint.
        endpoint: String,
    },
    /// AKS workload identity: the federated token file exchanged at the authority host.
    Workload {
        /// `AZURE_CLIENT_ID`.
        client_id: String,
        /// `AZURE_TENANT_ID`.
        tenant_id: String,
        /// `AZURE_FEDERATED_TOKEN_FILE`.
        token_file: std::path::PathBuf,
        /// `AZURE_AUTHORITY_HOST` (ends in `/`).
        authority_host: String,
    },
}

/// The validated `key_vault` settings.
#[derive(Debug, Clone)]
pub struct VaultSettings {
    /// `https://NAME.vault.azure.net` (no trailing slash).
    pub url: String,
    /// Key name.
    pub key: String,
    /// Key version; empty: the current one.
    pub version: String,
    /// How the vault token is obtained.
    pub identity: VaultIdentity,
    /// Extra trust anchors (private endpoints, tests).
    pub ca: Vec<CertificateDer<'static>>,
    /// Bound on one signature, token fetch included.
    pub sign_timeout: Duration,
}

/// Why the vault did not sign.
#[derive(Debug, Clone, thiserror::Error)]
pub enum VaultError {
    /// Throttled: no sign call until then.
    #[error("Key Vault is throttling signatures; retry after {0} s")]
    Throttled(u64),
    /// Anything else (network, permission, timeout); never a token in the text.
    #[error("Key Vault: {0}")]
    Failed(String),
}

type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A key in Key Vault that signs.
pub struct VaultKey {
    settings: VaultSettings,
    client: HttpClient,
    token: tokio::sync::Mutex<Option<(String, Instant)>>,
    throttled_until: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for VaultKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the vault token.
        f.debug_struct("VaultKey")
            .field("url", &self.settings.url)
            .field("key", &self.settings.key)
            .finish_non_exhaustive()
    }
}

struct Answer {
    status: StatusCode,
    retry_after: Option<u64>,
    challenge: Option<String>,
    body: Bytes,
}

impl VaultKey {
    /// A client for `settings` (no request is made yet).
    pub fn new(settings: VaultSettings) -> Result<Self, String> {
        let tls = crate::net::tls_client_config(&settings.ca, true)
            .map_err(|e| format!("key_vault.ca: {e}"))?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(settings.sign_timeout));
        // IMDS is plain HTTP on a link-local address; the vault is HTTPS only (checked below).
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build(https);
        if !settings.url.starts_with("https://") {
            return Err("key_vault.url must be https://".into());
        }
        Ok(Self {
            settings,
            client,
            token: tokio::sync::Mutex::new(None),
            throttled_until: Mutex::new(None),
        })
    }

    async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, String)],
        body: Option<(&'static str, Bytes)>,
    ) -> Result<Answer, VaultError> {
        let mut req = Request::builder().method(method).uri(url);
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        if let Some((ct, _)) = &body {
            req = req.header(http::header::CONTENT_TYPE, *ct);
        }
        let req = req
            .body(Full::new(body.map(|(_, b)| b).unwrap_or_default()))
            .map_err(|e| VaultError::Failed(format!("bad URL: {e}")))?;
        let response = self
            .client
            .request(req)
            .await
            .map_err(|e| VaultError::Failed(format!("{url}: {e}")))?;
        let (parts, body) = response.into_parts();
        let header = |name| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let retry_after = header(http::header::RETRY_AFTER).and_then(|v| v.trim().parse().ok());
        let challenge = header(http::header::WWW_AUTHENTICATE);
        let body = Limited::new(body, MAX_ANSWER)
            .collect()
            .await
            .map_err(|e| VaultError::Failed(format!("{url}: reading the answer: {e}")))?
            .to_bytes();
        Ok(Answer {
            status: parts.status,
            retry_after,
            challenge,
            body,
        })
    }

    /// A vault token: the held one until [`TOKEN_MARGIN`] before it expires, else a new one.
    async fn vault_token(&self, fresh: bool) -> Result<String, VaultError> {
        let mut held = self.token.lock().await;
        if let Some((token, until)) = held.as_ref() {
            if !fresh && Instant::now() < *until {
                return Ok(token.clone());
            }
        }
        let answer = match &self.settings.identity {
            VaultIdentity::Managed { endpoint } => {
                let url = format!("{endpoint}?api-version=2018-02-01&resource={VAULT_RESOURCE}");
                self.send(Method::GET, &url, &[("metadata", "true".into())], None)
                    .await?
            }
            VaultIdentity::Workload {
                client_id,
                tenant_id,
                token_file,
                authority_host,
            } => {
                let assertion = std::fs::read_to_string(token_file)
                    .map_err(|e| VaultError::Failed(format!("{}: {e}", token_file.display())))?;
                let form = format!(
                    "grant_type=client_credentials&client_id={}&scope={}&client_assertion_type={}&client_assertion={}",
                    percent_encoding::utf8_percent_encode(client_id, percent_encoding::NON_ALPHANUMERIC),
                    percent_encoding::utf8_percent_encode(&format!("{VAULT_RESOURCE}/.default"), percent_encoding::NON_ALPHANUMERIC),
                    percent_encoding::utf8_percent_encode(JWT_BEARER, percent_encoding::NON_ALPHANUMERIC),
                    assertion.trim()
                );
                let url = format!("{authority_host}{tenant_id}/oauth2/v2.0/token");
                self.send(
                    Method::POST,
                    &url,
                    &[],
                    Some(("application/x-www-form-urlencoded", Bytes::from(form))),
                )
                .await?
            }
        };
        if !answer.status.is_success() {
            return Err(VaultError::Failed(format!(
                "the identity endpoint answered {}",
                answer.status
            )));
        }
        let doc: serde_json::Value = serde_json::from_slice(&answer.body)
            .map_err(|_| VaultError::Failed("the identity endpoint's answer is not JSON".into()))?;
        let token = doc
            .get("access_token")
            .and_then(|v| v.as_str())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| VaultError::Failed("the identity endpoint gave no access_token".into()))?
            .to_string();
        // IMDS writes expires_in as a string.
        let expires_in = doc
            .get("expires_in")
            .and_then(|v| {
                v.as_u64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            })
            .unwrap_or(600);
        let until = Instant::now()
            + Duration::from_secs(expires_in)
                .saturating_sub(TOKEN_MARGIN.min(Duration::from_secs(expires_in / 2)));
        *held = Some((token.clone(), until));
        Ok(token)
    }

    async fn sign_call(&self, token: &str, alg: &str, digest: &[u8]) -> Result<Answer, VaultError> {
        let version = if self.settings.version.is_empty() {
            String::new()
        } else {
            format!("/{}", self.settings.version)
        };
        let url = format!(
            "{}/keys/{}{version}/sign?api-version=7.4",
            self.settings.url, self.settings.key
        );
        let body = serde_json::json!({"alg": alg, "value": URL_SAFE_NO_PAD.encode(digest)});
        self.send(
            Method::POST,
            &url,
            &[("authorization", format!("Bearer {token}"))],
            Some(("application/json", Bytes::from(body.to_string()))),
        )
        .await
    }

    /// Signs `message` (its SHA-256 digest is sent) with `alg` (`RS256` or `PS256`).
    pub async fn sign(&self, alg: &str, message: &[u8]) -> Result<Vec<u8>, VaultError> {
        let wait = self
            .throttled_until
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .and_then(|until| until.checked_duration_since(Instant::now()));
        if let Some(left) = wait {
            return Err(VaultError::Throttled(left.as_secs().max(1)));
        }
        let digest = crate::identity::sha256(message);
        let attempt = async {
            let token = self.vault_token(false).await?;
            let mut answer = self.sign_call(&token, alg, &digest).await?;
            if answer.status == StatusCode::UNAUTHORIZED {
                // The challenge (expired or revoked token): a fresh token, once.
                tracing::debug!(
                    challenge = answer.challenge.as_deref(),
                    "Key Vault challenged the token; fetching a new one"
                );
                let token = self.vault_token(true).await?;
                answer = self.sign_call(&token, alg, &digest).await?;
            }
            Ok::<_, VaultError>(answer)
        };
        let answer = tokio::time::timeout(self.settings.sign_timeout, attempt)
            .await
            .map_err(|_| {
                VaultError::Failed(format!(
                    "no signature within {:?}",
                    self.settings.sign_timeout
                ))
            })??;
        if answer.status == StatusCode::TOO_MANY_REQUESTS {
            let secs = answer.retry_after.unwrap_or(1).max(1);
            *self
                .throttled_until
                .lock()
                .unwrap_or_else(|p| p.into_inner()) =
                Some(Instant::now() + Duration::from_secs(secs));
            tracing::warn!(retry_after = secs, "Key Vault throttled the signature");
            return Err(VaultError::Throttled(secs));
        }
        if !answer.status.is_success() {
            return Err(VaultError::Failed(format!(
                "sign answered {}",
                answer.status
            )));
        }
        let doc: serde_json::Value = serde_json::from_slice(&answer.body)
            .map_err(|_| VaultError::Failed("the sign answer is not JSON".into()))?;
        doc.get("value")
            .and_then(|v| v.as_str())
            .and_then(|v| URL_SAFE_NO_PAD.decode(v.trim_end_matches('=')).ok())
            .ok_or_else(|| VaultError::Failed("the sign answer has no value".into()))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_workload_assertion_type_is_rfc_7523s() {
        assert_eq!(super::JWT_BEARER, crate::assertion::ASSERTION_TYPE);
    }
}
