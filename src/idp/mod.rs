//! The embedded Entra-compatible identity provider: Entra's v2.0 layout, strict the way Entra
//! is, reached over real HTTPS. Used by the shipped `gateway.toml`, `demo` and the tests.

pub mod federated;
pub mod profile;
pub mod validate;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, KeyPair as _, RsaKeyPair};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, PRAGMA};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::assertion::{uuid_v4, ASSERTION_TYPE};
use crate::identity;
use validate::{verify_assertion, AadError, RegisteredKey, ReplayCache};

/// Lifetime of issued access tokens.
pub const TOKEN_LIFETIME_SECS: i64 = 3599;

/// A credential registered for a client: its certificate (none for a client that only has a
/// federated credential) and the `kid` its assertions name it by, if any.
#[derive(Debug, Clone)]
pub struct Registered {
    /// The client.
    pub client_id: String,
    /// The credential certificate.
    pub cert: Option<CertificateDer<'static>>,
    /// The key id registered with it (the credential's `kid`).
    pub kid: Option<String>,
}

impl Registered {
    /// A certificate registered without a key id.
    pub fn cert(client_id: impl Into<String>, cert: CertificateDer<'static>) -> Self {
        Self {
            client_id: client_id.into(),
            cert: Some(cert),
            kid: None,
        }
    }
}

/// The provider's state.
pub struct Idp {
    tenant: String,
    authority: String,
    profile: crate::config::IdpProfile,
    clients: ArcSwap<HashMap<String, Vec<RegisteredKey>>>,
    signing_key: RsaKeyPair,
    kid: String,
    rng: SystemRandom,
    replay: Mutex<ReplayCache>,
    federated: ArcSwap<Vec<federated::Federated>>,
}

impl std::fmt::Debug for Idp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Idp")
            .field("tenant", &self.tenant)
            .field("authority", &self.authority)
            .field("clients", &self.clients.load().len())
            .finish_non_exhaustive()
    }
}

fn now() -> i64 {
    crate::encoding::now_secs()
}

impl Idp {
    /// A provider for `tenant` at `authority` (e.g. `https://127.0.0.1:9443`) that trusts each
    /// (client_id, credential certificate) pair.
    pub fn new(
        tenant: &str,
        authority: &str,
        registrations: impl IntoIterator<Item = Registered>,
    ) -> Result<Self, String> {
        Self::with_profile(
            tenant,
            authority,
            registrations,
            crate::config::IdpProfile::Entra,
        )
    }

    /// As [`Idp::new`], imitating `profile`.
    pub fn with_profile(
        tenant: &str,
        authority: &str,
        registrations: impl IntoIterator<Item = Registered>,
        profile: crate::config::IdpProfile,
    ) -> Result<Self, String> {
        let clients = Self::keys(registrations)?;
        let signing_key = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
            .map_err(|_| "generating the token signing key failed".to_string())?;
        let rng = SystemRandom::new();
        let kid = identity::x5t_s256(signing_key.public_key().as_ref())[..16].to_string();
        Ok(Self {
            tenant: tenant.to_string(),
            authority: authority.trim_end_matches('/').to_string(),
            profile,
            clients: ArcSwap::from_pointee(clients),
            signing_key,
            kid,
            rng,
            replay: Mutex::new(ReplayCache::default()),
            federated: ArcSwap::from_pointee(Vec::new()),
        })
    }

    /// Replaces the federated identity credentials it accepts (`[[upstreams.NAME.federated]]`).
    pub fn set_federated(
        &self,
        credentials: &[crate::config::FederatedCredential],
    ) -> Result<(), String> {
        self.federated
            .store(Arc::new(federated::load(credentials)?));
        Ok(())
    }

    /// Replaces the trusted (client_id, credential certificate) pairs (on configuration reload).
    pub fn set_registrations(
        &self,
        registrations: impl IntoIterator<Item = Registered>,
    ) -> Result<(), String> {
        self.clients.store(Arc::new(Self::keys(registrations)?));
        Ok(())
    }

    fn keys(
        registrations: impl IntoIterator<Item = Registered>,
    ) -> Result<HashMap<String, Vec<RegisteredKey>>, String> {
        let mut clients: HashMap<String, Vec<RegisteredKey>> = HashMap::new();
        for Registered {
            client_id,
            cert,
            kid,
        } in registrations
        {
            // A client with a federated credential only: registered, no certificate.
            let Some(cert) = cert else {
                clients.entry(client_id).or_default();
                continue;
            };
            let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref())
                .map_err(|e| format!("credential certificate of {client_id}: {e}"))?;
            let ec = matches!(
                parsed.public_key().parsed(),
                Ok(x509_parser::public_key::PublicKey::EC(_))
            );
            clients.entry(client_id).or_default().push(RegisteredKey {
                x5t: identity::x5t(cert.as_ref()),
                x5t_s256: identity::x5t_s256(cert.as_ref()),
                public_key: parsed.public_key().subject_public_key.data.to_vec(),
                ec,
                kid,
            });
        }
        Ok(clients)
    }

    /// What it imitates.
    pub fn profile(&self) -> crate::config::IdpProfile {
        self.profile
    }

    /// `{authority}/{tenant}/oauth2/v2.0/token`.
    pub fn token_endpoint(&self) -> String {
        format!("{}/{}/oauth2/v2.0/token", self.authority, self.tenant)
    }

    /// The issuer of access tokens (the profile's).
    pub fn issuer(&self) -> String {
        self.profile.issuer(&self.authority, &self.tenant)
    }

    /// The JWKS with the access-token signing key.
    pub fn jwks(&self) -> Value {
        let public = self.signing_key.public_key();
        json!({"keys": [{
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": self.kid,
            "n": URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
            "e": URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
        }]})
    }

    /// The OpenID discovery document, shaped like Entra's v2.0 one.
    pub fn discovery(&self) -> Value {
        let a = &self.authority;
        let t = &self.tenant;
        json!({
            "issuer": self.issuer(),
            "token_endpoint": self.token_endpoint(),
            "authorization_endpoint": format!("{a}/{t}/oauth2/v2.0/authorize"),
            "jwks_uri": format!("{a}/{t}/discovery/v2.0/keys"),
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "tenant_region_scope": "EU",
            "cloud_instance_name": "embedded.mtls-gateway.invalid",
        })
    }

    /// Handles a token request on `/{path_tenant}/oauth2/{v2.0/}token`.
    pub fn token(&self, path_tenant: &str, v1: bool, body: &[u8]) -> (StatusCode, Value) {
        match self.issue(path_tenant, v1, body) {
            Ok(v) => (StatusCode::OK, v),
            Err(e) => (e.status, self.error_body(&e)),
        }
    }

    fn error_body(&self, e: &AadError) -> Value {
        let trace = uuid_v4(&self.rng).unwrap_or_default();
        let corr = uuid_v4(&self.rng).unwrap_or_default();
        let ts = timestamp(now());
        json!({
            "error": e.error,
            "error_description": format!(
                "AADSTS{}: {}\r\nTrace ID: {trace}\r\nCorrelation ID: {corr}\r\nTimestamp: {ts}",
                e.code, e.message
            ),
            "error_codes": [e.code],
            "timestamp": ts,
            "trace_id": trace,
            "correlation_id": corr,
            "error_uri": format!("{}/error?code={}", self.authority, e.code),
        })
    }

    fn issue(&self, path_tenant: &str, v1: bool, body: &[u8]) -> Result<Value, AadError> {
        let bad =
            |code, msg: &str| AadError::new(StatusCode::BAD_REQUEST, "invalid_request", code, msg);
        if !path_tenant.eq_ignore_ascii_case(&self.tenant) {
            return Err(bad(
                90002,
                "Tenant not found. Check to make sure you have the correct tenant ID.",
            ));
        }
        let form = crate::form::parse_form(body).map_err(|e| {
            bad(
                900144,
                &format!("The request body is not a valid form: {}", e.description),
            )
        })?;
        let missing = |p: &str| {
            bad(
                900144,
                &format!("The request body must contain the following parameter: '{p}'."),
            )
        };
        let grant_type = form
            .get("grant_type")
            .ok_or_else(|| missing("grant_type"))?;
        let client_id = form.get("client_id").ok_or_else(|| missing("client_id"))?;
        let assertion = client_assertion(&form)?;
        let clients = self.clients.load();
        let Some(keys) = clients.get(client_id) else {
            return Err(AadError::new(
                StatusCode::BAD_REQUEST,
                "unauthorized_client",
                700016,
                format!(
                    "Application with identifier '{}' was not found in the directory '{}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant.",
                    client_id.chars().take(64).collect::<String>(),
                    self.tenant
                ),
            ));
        };
        let audience = if v1 {
            format!("{}/{}/oauth2/token", self.authority, self.tenant)
        } else {
            self.token_endpoint()
        };
        let t = now();
        let fed = self.federated.load();
        let fresh = if !fed.is_empty() && federated::is_federated(assertion, client_id) {
            // A federated token is reused for its whole lifetime: no jti check (as Entra).
            federated::verify(assertion, &fed, t)?;
            true
        } else {
            let verified = verify_assertion(assertion, client_id, &audience, keys, t)?;
            self.replay
                .lock()
                .map(|mut r| r.first_use(&verified.jti, verified.exp, t))
                .unwrap_or(false)
        };
        if !fresh {
            return Err(bad(
                50027,
                "JWT token is invalid or malformed. [Reason - The jti of this client assertion has been used before.]",
            ));
        }
        if grant_type != "client_credentials" {
            return Err(AadError::new(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                70003,
                "The app requested an unsupported grant type. The embedded identity provider supports client_credentials only.",
            ));
        }
        let resource = requested_resource(&form, v1)?;
        let token = self.access_token(client_id, &resource, t).map_err(|_| {
            AadError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                90033,
                "A transient error has occurred. Please try again.",
            )
        })?;
        Ok(json!({
            "token_type": "Bearer",
            "expires_in": TOKEN_LIFETIME_SECS,
            "ext_expires_in": TOKEN_LIFETIME_SECS,
            "access_token": token,
        }))
    }

    fn access_token(
        &self,
        client_id: &str,
        resource: &str,
        now: i64,
    ) -> Result<String, aws_lc_rs::error::Unspecified> {
        let header = json!({"typ": "JWT", "alg": "RS256", "kid": self.kid});
        let claims = json!({
            "aud": resource,
            "iss": self.issuer(),
            "iat": now,
            "nbf": now,
            "exp": now + TOKEN_LIFETIME_SECS,
            "appid": client_id,
            "azp": client_id,
            "sub": client_id,
            "oid": client_id,
            "tid": self.tenant,
            "idtyp": "app",
            "ver": "2.0",
            "uti": uuid_v4(&self.rng)?,
        });
        let mut jwt = URL_SAFE_NO_PAD.encode(header.to_string());
        jwt.push('.');
        URL_SAFE_NO_PAD.encode_string(claims.to_string(), &mut jwt);
        let mut sig = vec![0u8; self.signing_key.public_modulus_len()];
        self.signing_key.sign(
            &signature::RSA_PKCS1_SHA256,
            &self.rng,
            jwt.as_bytes(),
            &mut sig,
        )?;
        jwt.push('.');
        URL_SAFE_NO_PAD.encode_string(sig, &mut jwt);
        Ok(jwt)
    }

    /// Serves one HTTP request.
    pub async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Response<Full<Bytes>> {
        if self.profile != crate::config::IdpProfile::Entra {
            return profile::handle(&self, req).await;
        }
        let path = req.uri().path().to_string();
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let json_response = |status: StatusCode, body: Value| {
            Response::builder()
                .status(status)
                .header(CONTENT_TYPE, "application/json; charset=utf-8")
                .header(CACHE_CONTROL, "no-store, no-cache")
                .header(PRAGMA, "no-cache")
                .body(Full::new(Bytes::from(body.to_string())))
                .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
        };
        match segments.as_slice() {
            [tenant, "oauth2", "v2.0", "token"] | [tenant, "oauth2", "token"] => {
                let v1 = segments.len() == 3;
                let tenant = tenant.to_string();
                let body = match form_body(req).await {
                    Ok(body) => body,
                    Err(refusal) => {
                        let e = match refusal {
                            BodyRefusal::Method => AadError::new(
                                StatusCode::METHOD_NOT_ALLOWED,
                                "invalid_request",
                                900561,
                                "The endpoint only accepts POST requests.",
                            ),
                            BodyRefusal::ContentType => AadError::new(
                                StatusCode::BAD_REQUEST,
                                "invalid_request",
                                900144,
                                "The request body must contain the following parameter: 'grant_type'.",
                            ),
                            BodyRefusal::Unreadable => AadError::new(
                                StatusCode::BAD_REQUEST,
                                "invalid_request",
                                900144,
                                "The request body could not be read.",
                            ),
                        };
                        return json_response(e.status, self.error_body(&e));
                    }
                };
                let (status, body) = self.token(&tenant, v1, &body);
                json_response(status, body)
            }
            [tenant, "v2.0", ".well-known", "openid-configuration"]
                if tenant.eq_ignore_ascii_case(&self.tenant) =>
            {
                json_response(StatusCode::OK, self.discovery())
            }
            [tenant, "discovery", "v2.0", "keys"] if tenant.eq_ignore_ascii_case(&self.tenant) => {
                json_response(StatusCode::OK, self.jwks())
            }
            _ => json_response(
                StatusCode::NOT_FOUND,
                json!({"error": "not_found", "error_description": "no such endpoint"}),
            ),
        }
    }
}

pub use crate::encoding::timestamp;

/// Why a token request's body was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyRefusal {
    /// Not a POST.
    Method,
    /// Not `application/x-www-form-urlencoded`.
    ContentType,
    /// Over 1 MiB, or the connection failed.
    Unreadable,
}

/// The form body of a token request (every profile): POST, the form content type, ≤ 1 MiB.
pub async fn form_body(req: Request<Incoming>) -> Result<Bytes, BodyRefusal> {
    if req.method() != Method::POST {
        return Err(BodyRefusal::Method);
    }
    let form_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    if !form_type {
        return Err(BodyRefusal::ContentType);
    }
    Limited::new(req.into_body(), 1 << 20)
        .collect()
        .await
        .map(|b| b.to_bytes())
        .map_err(|_| BodyRefusal::Unreadable)
}

/// A fresh in-memory TLS identity for the provider: a throwaway CA and a leaf for `addr`
/// (plus localhost, 127.0.0.1 and ::1). Returns the CA to trust and the server config.
pub fn ephemeral_tls(
    addr: SocketAddr,
) -> Result<(CertificateDer<'static>, Arc<rustls::ServerConfig>), String> {
    let ca = crate::pki::Ca::new("mtls-gateway embedded IdP CA").map_err(|e| e.to_string())?;
    let ip = addr.ip().to_string();
    let mut hosts = vec!["localhost", "127.0.0.1", "::1"];
    if !addr.ip().is_unspecified() {
        hosts.push(&ip);
    }
    let params = crate::pki::server_params("mtls-gateway embedded IdP", &hosts)
        .map_err(|e| e.to_string())?;
    let leaf = ca.issue(&params).map_err(|e| e.to_string())?;
    let ca_der = crate::config::parse_certs(ca.pem.cert.as_bytes())?
        .into_iter()
        .next()
        .ok_or("no CA certificate")?;
    let chain = crate::config::parse_certs(leaf.cert.as_bytes())?;
    let key = {
        use rustls_pki_types::pem::PemObject as _;
        PrivateKeyDer::from_pem_slice(leaf.key.as_bytes()).map_err(|e| e.to_string())?
    };
    Ok((ca_der, server_config(chain, key)?))
}

/// A plain server-auth TLS config for the provider.
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<rustls::ServerConfig>, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| e.to_string())?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves the provider on `listener` until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    idp: Arc<Idp>,
    mut shutdown: watch::Receiver<bool>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let (tcp, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "embedded IdP accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let acceptor = acceptor.clone();
        let idp = idp.clone();
        let mut stop = shutdown.clone();
        tokio::spawn(async move {
            let Ok(Ok(tls)) =
                tokio::time::timeout(std::time::Duration::from_secs(10), acceptor.accept(tcp))
                    .await
            else {
                return;
            };
            let service = hyper::service::service_fn(move |req| {
                let idp = idp.clone();
                async move { Ok::<_, Infallible>(idp.handle(req).await) }
            });
            let builder = crate::net::http_server(std::time::Duration::from_secs(10), 128);
            let conn = builder.serve_connection(TokioIo::new(tls), service);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = stop.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), conn).await;
                }
            }
        });
    }
}

/// The request's client authentication: a jwt-bearer `client_assertion`, as Entra requires of
/// certificate credentials.
fn client_assertion<'f>(form: &'f crate::form::Form<'_>) -> Result<&'f str, AadError> {
    if form.get("client_secret").is_some() {
        return Err(AadError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000215,
            "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.",
        ));
    }
    let Some(assertion) = form.get("client_assertion") else {
        return Err(AadError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        ));
    };
    if form.get("client_assertion_type") != Some(ASSERTION_TYPE) {
        return Err(AadError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            50027,
            "JWT token is invalid or malformed. [Reason - client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer]",
        ));
    }
    Ok(assertion)
}

/// The resource a client-credentials request asks for: v1's `resource`, or v2's single
/// `…/.default` scope.
fn requested_resource(form: &crate::form::Form<'_>, v1: bool) -> Result<String, AadError> {
    let missing = |p: &str| {
        AadError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            format!("The request body must contain the following parameter: '{p}'."),
        )
    };
    if v1 {
        form.get("resource")
            .map(str::to_string)
            .ok_or_else(|| missing("resource"))
    } else {
        let scope = form.get("scope").ok_or_else(|| missing("scope"))?;
        let scopes: Vec<&str> = scope.split(' ').filter(|s| !s.is_empty()).collect();
        match scopes.as_slice() {
            [one] if one.ends_with("/.default") && one.len() > "/.default".len() => {
                Ok(one.trim_end_matches("/.default").to_string())
            }
            _ => {
                Err(AadError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_scope",
                    1002012,
                    "The provided value for scope is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).",
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::timestamp;

    #[test]
    fn timestamps_are_utc_calendar_dates() {
        assert_eq!(timestamp(0), "1970-01-01 00:00:00Z");
        assert_eq!(timestamp(951_782_400), "2000-02-29 00:00:00Z");
        assert_eq!(timestamp(1_795_000_000), "2026-11-18 11:06:40Z");
    }
}
