//! TEST DOUBLE of two Azure services that cannot be reached from here, written from
//! Microsoft's published REST references:
//! - Key Vault "Keys - Sign" (`POST {vaultBaseUrl}/keys/{key-name}/{key-version}/sign?api-version=7.4`,
//!   body `{"alg": "RS256"|"PS256", "value": base64url(digest)}`, answer `{"kid", "value"}`), with
//!   the bearer challenge (401 + `WWW-Authenticate: Bearer authorization="…", resource="…"`)
//!   and throttling (429 + `Retry-After`), over real HTTPS;
//! - the Azure Instance Metadata Service token endpoint (`GET /metadata/identity/oauth2/token?
//!   api-version=2018-02-01&resource=…` with `Metadata: true`; `expires_in` as a string), plain
//!   HTTP as IMDS is.
//!
//! Signatures are real: the digest is signed with the test credential key by
//! `openssl pkeyutl` (PKCS#1 v1.5, or PSS with a 32-byte salt).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;

/// What the double saw and how it behaves.
#[derive(Default)]
pub struct VaultState {
    /// Sign calls answered with a signature.
    pub signatures: AtomicUsize,
    /// Token requests to the IMDS double.
    pub imds_calls: AtomicUsize,
    /// When set, sign calls get 429 with `Retry-After: 2`.
    pub throttle: AtomicBool,
    /// Sign calls answered 429.
    pub throttled: AtomicUsize,
    /// When set, sign calls get 403: the identity lacks the keys/sign permission.
    pub forbid: AtomicBool,
    /// Token requests with a federated assertion (AKS workload identity), answered.
    pub workload_calls: AtomicUsize,
    /// The federated token the workload-identity endpoint accepts.
    pub federated_token: std::sync::Mutex<Option<String>>,
    /// Vault tokens issued (the IMDS double's), accepted by the vault.
    pub tokens: std::sync::Mutex<Vec<String>>,
}

impl VaultState {
    /// A fresh vault token, remembered as one the vault accepts.
    fn mint(&self) -> String {
        let mut raw = [0u8; 24];
        aws_lc_rs::rand::fill(&mut raw).unwrap();
        let token = format!("vault-token-{}", URL_SAFE_NO_PAD.encode(raw));
        self.tokens.lock().unwrap().push(token.clone());
        token
    }
}

pub struct VaultDouble {
    pub vault: SocketAddr,
    pub imds: SocketAddr,
    pub state: Arc<VaultState>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for VaultDouble {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn json(
    status: u16,
    headers: &[(&str, &str)],
    body: serde_json::Value,
) -> http::Response<Full<Bytes>> {
    let mut r = http::Response::builder()
        .status(status)
        .header("content-type", "application/json; charset=utf-8");
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    r.body(Full::new(Bytes::from(body.to_string()))).unwrap()
}

fn url_decode_form(body: &[u8]) -> std::collections::HashMap<String, String> {
    String::from_utf8_lossy(body)
        .split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| {
            let d = |s: &str| {
                percent_encoding::percent_decode_str(&s.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (d(k), d(v))
        })
        .collect()
}

/// Signs `digest` with `key_file` as Key Vault would for `alg`.
fn sign_digest(key_file: &std::path::Path, alg: &str, digest: &[u8]) -> Option<Vec<u8>> {
    use std::io::Write as _;
    let mut cmd = std::process::Command::new("openssl");
    cmd.args(["pkeyutl", "-sign", "-inkey"])
        .arg(key_file)
        .args(["-pkeyopt", "digest:sha256"]);
    if alg == "PS256" {
        cmd.args([
            "-pkeyopt",
            "rsa_padding_mode:pss",
            "-pkeyopt",
            "rsa_pss_saltlen:32",
        ]);
    }
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    child.stdin.take()?.write_all(digest).ok()?;
    let out = child.wait_with_output().ok()?;
    out.status.success().then_some(out.stdout)
}

async fn vault(
    req: http::Request<hyper::body::Incoming>,
    state: Arc<VaultState>,
    key_file: Arc<std::path::PathBuf>,
) -> http::Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or_default().to_string();
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    // Entra's token endpoint for workload identity: {authority}{tenant}/oauth2/v2.0/token.
    if req.method() == http::Method::POST && path.ends_with("/oauth2/v2.0/token") {
        let body = req
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let form: std::collections::HashMap<String, String> = url_decode_form(&body);
        let expected = state.federated_token.lock().unwrap().clone();
        let ok = form.get("grant_type").map(String::as_str) == Some("client_credentials")
            && form.get("scope").map(String::as_str) == Some("https://vault.azure.net/.default")
            && form.get("client_assertion_type").map(String::as_str)
                == Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
            && expected.is_some()
            && form.get("client_assertion") == expected.as_ref();
        if !ok {
            return json(
                401,
                &[],
                serde_json::json!({"error": "invalid_client", "error_description": "AADSTS700211: No matching federated identity record found for presented assertion issuer."}),
            );
        }
        state.workload_calls.fetch_add(1, Ordering::SeqCst);
        let token = state.mint();
        return json(
            200,
            &[],
            serde_json::json!({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token}),
        );
    }
    let is_sign = req.method() == http::Method::POST
        && segments.first() == Some(&"keys")
        && segments.last() == Some(&"sign")
        && (segments.len() == 3 || segments.len() == 4);
    if !is_sign || !query.contains("api-version=7.4") {
        return json(
            404,
            &[],
            serde_json::json!({"error": {"code": "NotFound", "message": "no such operation"}}),
        );
    }
    let known = auth.is_some_and(|t| state.tokens.lock().unwrap().contains(&t));
    if !known {
        return json(
            401,
            &[("www-authenticate", "Bearer authorization=\"https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47\", resource=\"https://vault.azure.net\"")],
            serde_json::json!({"error": {"code": "Unauthorized", "message": "AKV10000: Request is missing a Bearer or PoP token."}}),
        );
    }
    if state.forbid.load(Ordering::SeqCst) {
        return json(
            403,
            &[],
            serde_json::json!({"error": {"code": "Forbidden", "message": "The user, group or application does not have keys sign permission on key vault.", "innererror": {"code": "ForbiddenByPolicy"}}}),
        );
    }
    if state.throttle.load(Ordering::SeqCst) {
        state.throttled.fetch_add(1, Ordering::SeqCst);
        return json(
            429,
            &[("retry-after", "2")],
            serde_json::json!({"error": {"code": "Throttled", "message": "Request was not processed because too many requests were received."}}),
        );
    }
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let doc: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let alg = doc["alg"].as_str().unwrap_or_default().to_string();
    let digest = doc["value"]
        .as_str()
        .and_then(|v| URL_SAFE_NO_PAD.decode(v).ok());
    let (Some(digest), true) = (digest, alg == "RS256" || alg == "PS256") else {
        return json(
            400,
            &[],
            serde_json::json!({"error": {"code": "BadParameter", "message": "alg and value are required"}}),
        );
    };
    if digest.len() != 32 {
        return json(
            400,
            &[],
            serde_json::json!({"error": {"code": "BadParameter", "message": "the digest must be 32 bytes for RS256/PS256"}}),
        );
    }
    let key_file = key_file.clone();
    let signed = tokio::task::spawn_blocking(move || sign_digest(&key_file, &alg, &digest))
        .await
        .ok()
        .flatten();
    let Some(sig) = signed else {
        return json(
            500,
            &[],
            serde_json::json!({"error": {"code": "InternalError", "message": "signing failed"}}),
        );
    };
    state.signatures.fetch_add(1, Ordering::SeqCst);
    json(
        200,
        &[],
        serde_json::json!({"kid": format!("https://vault.test{}", path.trim_end_matches("/sign")), "value": URL_SAFE_NO_PAD.encode(sig)}),
    )
}

async fn imds(
    req: http::Request<hyper::body::Incoming>,
    state: Arc<VaultState>,
) -> http::Response<Full<Bytes>> {
    let query = req.uri().query().unwrap_or_default().to_string();
    if req.uri().path() != "/metadata/identity/oauth2/token" {
        return json(404, &[], serde_json::json!({"error": "not_found"}));
    }
    if req.headers().get("metadata").and_then(|v| v.to_str().ok()) != Some("true") {
        return json(
            400,
            &[],
            serde_json::json!({"error": "invalid_request", "error_description": "Required metadata header not specified"}),
        );
    }
    if !query.contains("api-version=2018-02-01")
        || !query.contains("resource=https://vault.azure.net")
    {
        return json(
            400,
            &[],
            serde_json::json!({"error": "invalid_request", "error_description": "api-version and resource are required"}),
        );
    }
    state.imds_calls.fetch_add(1, Ordering::SeqCst);
    let token = state.mint();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    json(
        200,
        &[],
        serde_json::json!({
        "access_token": token, "client_id": "00000000-0000-0000-0000-0000000000aa",
        "expires_in": "86399", "expires_on": (now + 86399).to_string(), "ext_expires_in": "86399",
        "not_before": now.to_string(), "resource": "https://vault.azure.net", "token_type": "Bearer"}),
    )
}

impl VaultDouble {
    /// Starts both doubles; the vault signs with the PEM key in `key_file`.
    pub async fn start(key_file: std::path::PathBuf) -> Self {
        let state = Arc::new(VaultState::default());
        let pki = super::pki();
        let server = pki.get("server");
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(server.cert.as_bytes())
                .collect::<Result<_, _>>()
                .unwrap();
        let key = PrivateKeyDer::from_pem_slice(server.key.as_bytes()).unwrap();
        let acceptor =
            tokio_rustls::TlsAcceptor::from(mtls_gateway::idp::server_config(chain, key).unwrap());
        let vault_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let imds_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (vault_addr, imds_addr) = (
            vault_listener.local_addr().unwrap(),
            imds_listener.local_addr().unwrap(),
        );
        let key_file = Arc::new(key_file);
        let vault_state = state.clone();
        let vault_task = tokio::spawn(async move {
            while let Ok((tcp, _)) = vault_listener.accept().await {
                let (acceptor, state, key_file) =
                    (acceptor.clone(), vault_state.clone(), key_file.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |req| {
                        let (state, key_file) = (state.clone(), key_file.clone());
                        async move { Ok::<_, Infallible>(vault(req, state, key_file).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
                });
            }
        });
        let imds_state = state.clone();
        let imds_task = tokio::spawn(async move {
            while let Ok((tcp, _)) = imds_listener.accept().await {
                let state = imds_state.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(imds(req, state).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        Self {
            vault: vault_addr,
            imds: imds_addr,
            state,
            tasks: vec![vault_task, imds_task],
        }
    }

    /// A `key_vault = { … }` value for this double.
    pub fn credential(&self, extra: &str) -> String {
        format!(
            "key_vault = {{ url = \"https://localhost:{}\", key = \"gateway-signing\", identity = \"managed\", identity_endpoint = \"http://{}/metadata/identity/oauth2/token\", ca = [\"ca1.pem\"]{extra} }}",
            self.vault.port(),
            self.imds
        )
    }
}
