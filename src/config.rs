//! `gateway.toml`: raw serde structs (unknown keys refused) turned into a validated [`Config`]
//! in one place. Every problem is collected and reported together.

use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use serde::Deserialize;

use crate::assertion::{Alg, Signer};
use crate::dn::{DistinguishedName, DnError};
use crate::forwarded::{Cidr, HeaderFormat};
use crate::identity;
use crate::registry::{AuthMethod, Registration, Registry, Selector};
use crate::trust::{Anchors, ClientTrust};

// ---------------------------------------------------------------------------------------------
// Raw file format

/// `limits.max_connection_age` when not set.
pub const DEFAULT_MAX_CONNECTION_AGE: Duration = Duration::from_secs(3600);
/// `limits.max_connections_per_peer` when not set.
pub const DEFAULT_MAX_CONNECTIONS_PER_PEER: usize = 256;
/// `limits.idle_timeout` when not set.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    server: RawServer,
    admin: Option<RawAdmin>,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    upstreams: BTreeMap<String, RawUpstream>,
    #[serde(default)]
    credentials: BTreeMap<String, RawCredential>,
    #[serde(default)]
    clients: Vec<RawClient>,
    front_proxy: Option<RawFrontProxy>,
    dev: Option<RawDev>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFrontProxy {
    header: Option<String>,
    #[serde(default)]
    trusted_peers: Vec<String>,
    #[serde(default)]
    trusted_proxy_certs: Vec<String>,
    plain_listen: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: String,
    public_url: Option<String>,
    cert: PathBuf,
    key: PathBuf,
    #[serde(default)]
    client_ca: Vec<PathBuf>,
    #[serde(default)]
    client_intermediates: Vec<PathBuf>,
    #[serde(default)]
    crl: Vec<PathBuf>,
    min_tls_version: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    listen: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_body_bytes: Option<usize>,
    header_read_timeout: Option<String>,
    request_timeout: Option<String>,
    max_connections: Option<usize>,
    shutdown_grace: Option<String>,
    max_connection_age: Option<String>,
    max_connections_per_peer: Option<usize>,
    idle_timeout: Option<String>,
    shutdown_delay: Option<String>,
    rate_limit: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpstream {
    #[serde(rename = "type")]
    kind: String,
    tenant: Option<String>,
    authority: Option<String>,
    token_endpoint: Option<String>,
    metadata_url: Option<String>,
    timeout: Option<String>,
    #[serde(default)]
    ca: Vec<PathBuf>,
    #[serde(default)]
    reuse_assertion: bool,
    listen: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCredential {
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    pkcs12: Option<PathBuf>,
    pkcs12_password_env: Option<String>,
    alg: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClient {
    client_id: String,
    upstream: String,
    credential: String,
    token_endpoint_auth_method: String,
    tls_client_auth_subject_dn: Option<String>,
    tls_client_auth_san_dns: Option<String>,
    tls_client_auth_san_uri: Option<String>,
    tls_client_auth_san_ip: Option<String>,
    tls_client_auth_san_email: Option<String>,
    tls_client_auth_ca: Option<PathBuf>,
    #[serde(default)]
    self_signed_certs: Vec<PathBuf>,
    #[serde(default)]
    self_signed_thumbprints: Vec<String>,
    grant_types: Option<Vec<String>>,
    #[serde(default)]
    scopes: Vec<String>,
    rate_limit: Option<String>,
    #[serde(default)]
    cache_tokens: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDev {
    pki: PathBuf,
}

// ---------------------------------------------------------------------------------------------
// Validated configuration

/// The whole validated configuration.
#[derive(Debug)]
pub struct Config {
    /// The file it was read from.
    pub source: PathBuf,
    /// `[server]`.
    pub server: Server,
    /// `[admin]`.
    pub admin: Option<Admin>,
    /// `[limits]`.
    pub limits: Limits,
    /// `[upstreams.*]` by name.
    pub upstreams: BTreeMap<String, UpstreamSpec>,
    /// `[credentials.*]` by name.
    pub credentials: BTreeMap<String, Arc<Signer>>,
    /// `[[clients]]` by client_id.
    pub registry: Registry,
    /// `[front_proxy]`.
    pub front_proxy: Option<FrontProxy>,
    /// `[dev]` pki folder, resolved.
    pub dev_pki: Option<PathBuf>,
    /// Non-fatal findings `check` prints (e.g. a DN that looks reversed).
    pub warnings: Vec<String>,
    /// Every file the configuration read, itself included: a change to any reloads it.
    pub files: Vec<PathBuf>,
}

/// `[server]`.
#[derive(Debug)]
pub struct Server {
    /// Where the mTLS listener binds.
    pub listen: SocketAddr,
    /// How clients reach the gateway (no trailing slash).
    pub public_url: String,
    /// Server certificate chain, leaf first.
    pub cert_chain: Vec<CertificateDer<'static>>,
    /// Server private key.
    pub key: PrivateKeyDer<'static>,
    /// Trust for `tls_client_auth` clients.
    pub client_trust: Arc<ClientTrust>,
    /// TLS 1.3 only when true.
    pub tls13_only: bool,
}

/// `[admin]`.
#[derive(Debug)]
pub struct Admin {
    /// Where the admin listener binds.
    pub listen: SocketAddr,
}

/// `[front_proxy]`: where a forwarded client certificate counts.
#[derive(Debug, Clone)]
pub struct FrontProxy {
    /// The header format (and name).
    pub format: HeaderFormat,
    /// Peers allowed to forward a certificate.
    pub trusted_peers: Vec<Cidr>,
    /// On the mTLS listener, the proxy must also present one of these (SHA-256 of DER).
    pub trusted_proxy_certs: HashSet<[u8; 32]>,
    /// A plain-HTTP listener that serves trusted peers only.
    pub plain_listen: Option<SocketAddr>,
}

impl FrontProxy {
    /// Whether `ip` may forward a certificate.
    pub fn trusts_peer(&self, ip: IpAddr) -> bool {
        self.trusted_peers.iter().any(|c| c.contains(ip))
    }
}

/// `[limits]`.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Time allowed for the whole request head (and the TLS handshake).
    pub header_read_timeout: Duration,
    /// Time allowed for one request, body included.
    pub request_timeout: Duration,
    /// Connections served at once; more wait unaccepted.
    pub max_connections: usize,
    /// Time in-flight requests get on shutdown.
    pub shutdown_grace: Duration,
    /// Age after which a connection is closed gracefully (HTTP/2 GOAWAY, HTTP/1.1
    /// `Connection: close`), so that no connection lives forever.
    pub max_connection_age: Duration,
    /// Connections one source address may hold; `front_proxy.trusted_peers` are exempt.
    pub max_connections_per_peer: usize,
    /// A connection with no request in flight is closed after this (one without a client
    /// certificate on the mTLS listener: after `header_read_timeout`).
    pub idle_timeout: Duration,
    /// On SIGTERM, `/readyz` turns 503 at once and serving goes on this long before the drain.
    pub shutdown_delay: Duration,
    /// Default per-client rate limit (`"20/s"`), if any.
    pub rate_limit: Option<String>,
}

/// How to reach one upstream identity provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamSpec {
    /// Its name in the config.
    pub name: String,
    /// Entra, generic or embedded.
    pub kind: UpstreamKind,
    /// Bound on one upstream exchange.
    pub timeout: Duration,
    /// Extra trust anchors for the upstream's TLS.
    pub ca: Vec<CertificateDer<'static>>,
    /// Reuse one signed assertion per client until near `exp` (Entra only).
    pub reuse_assertion: bool,
}

/// The kinds of upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamKind {
    /// Microsoft Entra ID.
    Entra {
        /// e.g. `https://login.microsoftonline.com` (no trailing slash).
        authority: String,
        /// Tenant GUID or domain.
        tenant: String,
    },
    /// Any IdP that accepts private_key_jwt.
    Generic {
        /// Token endpoint URL.
        token_endpoint: String,
        /// Discovery document URL.
        metadata_url: Option<String>,
    },
    /// The in-process Entra-compatible identity provider.
    Embedded {
        /// Where it listens.
        listen: SocketAddr,
        /// Its tenant name.
        tenant: String,
    },
}

impl UpstreamKind {
    /// The tenant, for Entra-shaped upstreams.
    pub fn tenant(&self) -> Option<&str> {
        match self {
            Self::Entra { tenant, .. } | Self::Embedded { tenant, .. } => Some(tenant),
            Self::Generic { .. } => None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Loading

/// All problems found in a configuration, each with file and key.
#[derive(Debug, Clone)]
pub struct ConfigErrors {
    /// The file.
    pub file: PathBuf,
    /// One line per problem.
    pub problems: Vec<String>,
}

impl std::fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.problems.len();
        writeln!(
            f,
            "{}: {n} problem{}:",
            self.file.display(),
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            writeln!(f, "  - {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Where secrets such as PKCS#12 passwords come from; tests inject values.
pub trait Env {
    /// The value of variable `name`.
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

/// Reads and validates the configuration file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    load_with(path, &ProcessEnv)
}

/// Reads the `[dev] pki` folder of a config, resolved, without validating the rest; `serve`
/// creates it before loading when missing.
pub fn dev_pki_dir(path: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string(path).ok()?;
    let table: toml::Table = toml::from_str(&text).ok()?;
    let pki = table.get("dev")?.get("pki")?.as_str()?;
    Some(base_dir(path).join(pki))
}

fn base_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// As [`load`], with secrets read from `env`.
pub fn load_with(path: &Path, env: &dyn Env) -> Result<Config, ConfigErrors> {
    let fail = |problems| ConfigErrors {
        file: path.to_path_buf(),
        problems,
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| fail(vec![format!("cannot read the file: {e}")]))?;
    load_str(&text, path, env)
}

/// Validates configuration `text` as if read from `path` (relative paths resolve against its
/// folder). For callers that hold the text already, and for fuzzing.
pub fn load_str(text: &str, path: &Path, env: &dyn Env) -> Result<Config, ConfigErrors> {
    let fail = |problems| ConfigErrors {
        file: path.to_path_buf(),
        problems,
    };
    let raw: RawConfig = toml::from_str(text).map_err(|e| fail(vec![toml_error(&e)]))?;
    let mut cx = Cx {
        base: base_dir(path),
        problems: Vec::new(),
        warnings: Vec::new(),
        files: vec![path.to_path_buf()],
    };
    let config = cx.validate(raw, path, env);
    if cx.problems.is_empty() {
        if let Some(mut config) = config {
            config.warnings = cx.warnings;
            config.files = cx.files;
            return Ok(config);
        }
    }
    Err(fail(cx.problems))
}

fn toml_error(e: &toml::de::Error) -> String {
    // toml's message carries line, column and the offending key; keep it on one line.
    e.to_string()
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" | ")
}

struct Cx {
    base: PathBuf,
    problems: Vec<String>,
    warnings: Vec<String>,
    files: Vec<PathBuf>,
}

impl Cx {
    fn problem(&mut self, key: &str, msg: impl std::fmt::Display) {
        self.problems.push(format!("{key}: {msg}"));
    }

    fn path(&self, p: &Path) -> PathBuf {
        self.base.join(p)
    }

    fn read(&mut self, key: &str, p: &Path) -> Option<Vec<u8>> {
        let full = self.path(p);
        if !self.files.contains(&full) {
            self.files.push(full.clone());
        }
        match std::fs::read(&full) {
            Ok(bytes) => Some(bytes),
            Err(e) => {
                self.problem(key, format!("cannot read {}: {e}", full.display()));
                None
            }
        }
    }

    /// Certificates from a PEM file (all CERTIFICATE blocks) or a single DER certificate.
    fn certs(&mut self, key: &str, p: &Path) -> Vec<CertificateDer<'static>> {
        let Some(bytes) = self.read(key, p) else {
            return Vec::new();
        };
        match parse_certs(&bytes) {
            Ok(certs) => certs,
            Err(e) => {
                self.problem(key, format!("{}: {e}", self.path(p).display()));
                Vec::new()
            }
        }
    }

    /// Warns when a file holding a private key is readable by group or others.
    fn check_private(&mut self, key: &str, p: &Path) {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let full = self.path(p);
            if let Ok(meta) = std::fs::metadata(&full) {
                let mode = meta.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    self.warnings.push(format!(
                        "{key}: {} holds a private key and is readable by group or others (mode {mode:o}); chmod 600 it",
                        full.display()
                    ));
                }
            }
        }
        #[cfg(not(unix))]
        let _ = (key, p);
    }

    fn private_key(&mut self, key: &str, p: &Path) -> Option<PrivateKeyDer<'static>> {
        self.check_private(key, p);
        let bytes = self.read(key, p)?;
        match PrivateKeyDer::from_pem_slice(&bytes) {
            Ok(k) => Some(k),
            Err(_) => match PrivateKeyDer::try_from(bytes) {
                Ok(k) => Some(k),
                Err(_) => {
                    self.problem(
                        key,
                        format!(
                            "{}: no private key found (expected PEM PKCS#8 \"PRIVATE KEY\" or PKCS#1 \"RSA PRIVATE KEY\")",
                            self.path(p).display()
                        ),
                    );
                    None
                }
            },
        }
    }

    fn duration(&mut self, key: &str, value: Option<&str>, default: Duration) -> Duration {
        match value {
            None => default,
            Some(s) => parse_duration(s).unwrap_or_else(|e| {
                self.problem(key, e);
                default
            }),
        }
    }

    fn socket_addr(&mut self, key: &str, s: &str) -> Option<SocketAddr> {
        match s.parse() {
            Ok(a) => Some(a),
            Err(_) => {
                self.problem(
                    key,
                    format!("\"{s}\" is not an address:port such as \"0.0.0.0:8443\""),
                );
                None
            }
        }
    }

    fn validate(&mut self, raw: RawConfig, path: &Path, env: &dyn Env) -> Option<Config> {
        let server = self.server(raw.server);
        let admin = raw.admin.and_then(|a| {
            self.socket_addr("admin.listen", &a.listen)
                .map(|listen| Admin { listen })
        });
        let limits = self.limits(raw.limits);
        let front_proxy = raw.front_proxy.and_then(|f| self.front_proxy(f));
        let mut upstreams = BTreeMap::new();
        for (name, u) in raw.upstreams {
            if let Some(spec) = self.upstream(&name, u) {
                upstreams.insert(name, spec);
            }
        }
        let mut credentials = BTreeMap::new();
        for (name, c) in raw.credentials {
            if let Some(signer) = self.credential(&name, c, env) {
                credentials.insert(name, Arc::new(signer));
            }
        }
        let mut registry = Registry::default();
        let mut seen = HashSet::new();
        for (i, c) in raw.clients.into_iter().enumerate() {
            let key = format!("clients[{i}] (client_id \"{}\")", c.client_id);
            if !seen.insert(c.client_id.clone()) {
                self.problem(&key, "client_id is registered more than once");
                continue;
            }
            if let Some(reg) = self.client(
                &key,
                c,
                &upstreams,
                &credentials,
                limits.rate_limit.as_deref(),
            ) {
                registry.insert(reg);
            }
        }
        let dev_pki = raw.dev.map(|d| self.path(&d.pki));
        if let Some(dir) = dev_pki.as_ref().filter(|d| !d.exists()) {
            self.problem(
                "dev.pki",
                format!(
                    "{} does not exist: `mtls-gateway serve` creates it on first start, or run `mtls-gateway dev-pki --out {}`",
                    dir.display(),
                    dir.display()
                ),
            );
        }
        Some(Config {
            source: path.to_path_buf(),
            server: server?,
            admin,
            limits,
            upstreams,
            credentials,
            registry,
            front_proxy,
            dev_pki,
            warnings: Vec::new(),
            files: Vec::new(),
        })
    }

    /// Keeps, per issuer, only the newest CRL (SPEC §5), warning about the others.
    fn newest_crls(
        &mut self,
        crls: Vec<rustls_pki_types::CertificateRevocationListDer<'static>>,
        files: &[String],
    ) -> Vec<rustls_pki_types::CertificateRevocationListDer<'static>> {
        let ders: Vec<&[u8]> = crls.iter().map(|c| c.as_ref()).collect();
        let (keep, superseded) = crate::trust::select_crls(&ders);
        for (old, kept) in superseded {
            let old: Vec<&str> = old.iter().map(|i| files[*i].as_str()).collect();
            self.warnings.push(format!(
                "server.crl: several CRLs have the same issuer; only the newest (highest CRL number, then latest thisUpdate) counts: using {}, ignoring {}",
                files[kept],
                old.join(", ")
            ));
        }
        crls.into_iter()
            .enumerate()
            .filter(|(i, _)| keep.contains(i))
            .map(|(_, c)| c)
            .collect()
    }

    fn server(&mut self, s: RawServer) -> Option<Server> {
        let listen = self.socket_addr("server.listen", &s.listen);
        let public_url = match s.public_url {
            Some(u) => {
                if !u.starts_with("https://") {
                    self.problem("server.public_url", "must start with https://");
                }
                u.trim_end_matches('/').to_string()
            }
            None => listen.map(|a| format!("https://{a}")).unwrap_or_default(),
        };
        let cert_chain = self.certs("server.cert", &s.cert);
        if cert_chain.is_empty() && self.path(&s.cert).exists() {
            self.problem("server.cert", "holds no certificate");
        }
        let key = self.private_key("server.key", &s.key);
        if let (Some(leaf), Some(key)) = (cert_chain.first(), key.as_ref()) {
            if let Err(e) = check_server_key(leaf, key) {
                self.problem("server.key", e);
            }
        }
        let mut anchors = Vec::new();
        for (i, p) in s.client_ca.iter().enumerate() {
            let k = format!("server.client_ca[{i}]");
            let certs = self.certs(&k, p);
            if certs.is_empty() && self.path(p).exists() {
                self.problem(&k, "holds no certificate");
            }
            anchors.extend(certs);
        }
        let mut intermediates = Vec::new();
        for (i, p) in s.client_intermediates.iter().enumerate() {
            intermediates.extend(self.certs(&format!("server.client_intermediates[{i}]"), p));
        }
        let mut crls = Vec::new();
        let mut crl_files = Vec::new();
        for (i, p) in s.crl.iter().enumerate() {
            let k = format!("server.crl[{i}]");
            if let Some(bytes) = self.read(&k, p) {
                match parse_crls(&bytes) {
                    Ok(list) => {
                        crl_files.extend(std::iter::repeat_n(p.display().to_string(), list.len()));
                        crls.extend(list);
                    }
                    Err(e) => self.problem(&k, e),
                }
            }
        }
        let crls = self.newest_crls(crls, &crl_files);
        let client_trust = match ClientTrust::new(anchors, intermediates, crls) {
            Ok(t) => Arc::new(t),
            Err(e) => {
                self.problem("server.client_ca", e);
                return None;
            }
        };
        let tls13_only = match s.min_tls_version.as_deref() {
            None | Some("1.2") => false,
            Some("1.3") => true,
            Some(other) => {
                self.problem(
                    "server.min_tls_version",
                    format!("\"{other}\" is not \"1.2\" or \"1.3\""),
                );
                false
            }
        };
        Some(Server {
            listen: listen?,
            public_url,
            cert_chain,
            key: key?,
            client_trust,
            tls13_only,
        })
    }

    fn front_proxy(&mut self, f: RawFrontProxy) -> Option<FrontProxy> {
        let name = f.header.unwrap_or_else(|| "client-cert".to_string());
        let format = HeaderFormat::parse(&name);
        if format.is_none() {
            self.problem(
                "front_proxy.header",
                format!("\"{name}\" is not \"client-cert\", \"x-forwarded-client-cert\", \"x-ssl-client-cert\" or \"x-forwarded-tls-client-cert\""),
            );
        }
        if f.trusted_peers.is_empty() {
            self.problem(
                "front_proxy.trusted_peers",
                "required: the addresses (CIDR) of the proxies allowed to forward a certificate",
            );
        }
        let mut trusted_peers = Vec::new();
        for (i, p) in f.trusted_peers.iter().enumerate() {
            match Cidr::parse(p) {
                Some(c) => trusted_peers.push(c),
                None => self.problem(
                    &format!("front_proxy.trusted_peers[{i}]"),
                    format!("\"{p}\" is not an address or CIDR range such as \"10.0.0.0/8\""),
                ),
            }
        }
        let mut trusted_proxy_certs = HashSet::new();
        for (i, t) in f.trusted_proxy_certs.iter().enumerate() {
            match parse_thumbprint(t) {
                Some(d) => {
                    trusted_proxy_certs.insert(d);
                }
                None => self.problem(
                    &format!("front_proxy.trusted_proxy_certs[{i}]"),
                    "not an x5t#S256 (43 base64url characters) or a 64-digit SHA-256 hex thumbprint",
                ),
            }
        }
        let plain_listen = f
            .plain_listen
            .as_deref()
            .and_then(|l| self.socket_addr("front_proxy.plain_listen", l));
        if let Some(addr) = plain_listen.filter(|a| !a.ip().is_loopback()) {
            self.warnings.push(format!(
                "front_proxy.plain_listen: {addr} is not a loopback address; every peer in trusted_peers can claim any client certificate on it"
            ));
        }
        Some(FrontProxy {
            format: format?,
            trusted_peers,
            trusted_proxy_certs,
            plain_listen,
        })
    }

    fn limits(&mut self, l: RawLimits) -> Limits {
        let rate_limit = l.rate_limit.filter(|r| !r.trim().is_empty());
        if let Some(r) = &rate_limit {
            if let Err(e) = crate::registry::RateLimit::parse(r) {
                self.problem("limits.rate_limit", e);
            }
        }
        let max_connections = l.max_connections.unwrap_or(10_000);
        if max_connections == 0 {
            self.problem("limits.max_connections", "must be at least 1");
        }
        let max_body_bytes = l.max_body_bytes.unwrap_or(65_536);
        if max_body_bytes < 1024 {
            self.problem("limits.max_body_bytes", "must be at least 1024");
        }
        Limits {
            max_body_bytes,
            header_read_timeout: self.duration(
                "limits.header_read_timeout",
                l.header_read_timeout.as_deref(),
                Duration::from_secs(10),
            ),
            request_timeout: self.duration(
                "limits.request_timeout",
                l.request_timeout.as_deref(),
                Duration::from_secs(30),
            ),
            max_connections: max_connections.max(1),
            shutdown_grace: self.duration(
                "limits.shutdown_grace",
                l.shutdown_grace.as_deref(),
                Duration::from_secs(30),
            ),
            max_connection_age: self.duration(
                "limits.max_connection_age",
                l.max_connection_age.as_deref(),
                DEFAULT_MAX_CONNECTION_AGE,
            ),
            max_connections_per_peer: match l.max_connections_per_peer {
                Some(0) => {
                    self.problem("limits.max_connections_per_peer", "must be at least 1");
                    1
                }
                Some(n) => n,
                None => DEFAULT_MAX_CONNECTIONS_PER_PEER,
            },
            idle_timeout: self.duration(
                "limits.idle_timeout",
                l.idle_timeout.as_deref(),
                DEFAULT_IDLE_TIMEOUT,
            ),
            shutdown_delay: self.duration(
                "limits.shutdown_delay",
                l.shutdown_delay.as_deref(),
                Duration::ZERO,
            ),
            rate_limit,
        }
    }

    fn upstream(&mut self, name: &str, u: RawUpstream) -> Option<UpstreamSpec> {
        let key = format!("upstreams.{name}");
        let timeout = self.duration(
            &format!("{key}.timeout"),
            u.timeout.as_deref(),
            Duration::from_secs(10),
        );
        let mut ca = Vec::new();
        for (i, p) in u.ca.iter().enumerate() {
            ca.extend(self.certs(&format!("{key}.ca[{i}]"), p));
        }
        let mut misplaced = |field: &str, present: bool, kind: &str| {
            if present {
                self.problems
                    .push(format!("{key}.{field}: not a key of type = \"{kind}\""));
            }
        };
        let kind = match u.kind.as_str() {
            "entra" => {
                misplaced("token_endpoint", u.token_endpoint.is_some(), "entra");
                misplaced("metadata_url", u.metadata_url.is_some(), "entra");
                misplaced("listen", u.listen.is_some(), "entra");
                let authority = u
                    .authority
                    .unwrap_or_else(|| "https://login.microsoftonline.com".to_string());
                if !authority.starts_with("https://") {
                    self.problem(&format!("{key}.authority"), "must start with https://");
                }
                let Some(tenant) = u.tenant.filter(|t| valid_tenant(t)) else {
                    self.problem(
                        &format!("{key}.tenant"),
                        "required for type = \"entra\": the tenant GUID or domain (not common/organizations/consumers), letters, digits, '.', '-'",
                    );
                    return None;
                };
                UpstreamKind::Entra {
                    authority: authority.trim_end_matches('/').to_string(),
                    tenant,
                }
            }
            "generic" => {
                misplaced("tenant", u.tenant.is_some(), "generic");
                misplaced("authority", u.authority.is_some(), "generic");
                misplaced("listen", u.listen.is_some(), "generic");
                if u.reuse_assertion {
                    self.problem(
                        &format!("{key}.reuse_assertion"),
                        "Entra only: generic identity providers may refuse a replayed jti",
                    );
                }
                let Some(token_endpoint) = u.token_endpoint else {
                    self.problem(
                        &format!("{key}.token_endpoint"),
                        "required for type = \"generic\"",
                    );
                    return None;
                };
                for (field, url) in [
                    ("token_endpoint", Some(&token_endpoint)),
                    ("metadata_url", u.metadata_url.as_ref()),
                ] {
                    if url.is_some_and(|u| !u.starts_with("https://")) {
                        self.problem(&format!("{key}.{field}"), "must start with https://");
                    }
                }
                UpstreamKind::Generic {
                    token_endpoint,
                    metadata_url: u.metadata_url,
                }
            }
            "embedded" => {
                misplaced("token_endpoint", u.token_endpoint.is_some(), "embedded");
                misplaced("metadata_url", u.metadata_url.is_some(), "embedded");
                misplaced("authority", u.authority.is_some(), "embedded");
                let listen_text = u.listen.unwrap_or_else(|| "127.0.0.1:9443".to_string());
                let listen = self.socket_addr(&format!("{key}.listen"), &listen_text)?;
                let tenant = u.tenant.unwrap_or_else(|| "dev".to_string());
                if !valid_tenant(&tenant) {
                    self.problem(&format!("{key}.tenant"), "letters, digits, '.', '-' only");
                }
                UpstreamKind::Embedded { listen, tenant }
            }
            other => {
                self.problem(
                    &format!("{key}.type"),
                    format!("\"{other}\" is not \"entra\", \"generic\" or \"embedded\""),
                );
                return None;
            }
        };
        if u.reuse_assertion && matches!(kind, UpstreamKind::Embedded { .. }) {
            self.problem(
                &format!("{key}.reuse_assertion"),
                "Entra only: the embedded identity provider refuses a replayed jti",
            );
        }
        Some(UpstreamSpec {
            name: name.to_string(),
            kind,
            timeout,
            ca,
            reuse_assertion: u.reuse_assertion,
        })
    }

    fn credential(&mut self, name: &str, c: RawCredential, env: &dyn Env) -> Option<Signer> {
        let key = format!("credentials.{name}");
        let alg = match c.alg.as_deref() {
            None => Alg::Rs256,
            Some(s) => match Alg::parse(s) {
                Some(a) => a,
                None => {
                    self.problem(
                        &format!("{key}.alg"),
                        format!("\"{s}\" is not \"RS256\" or \"PS256\""),
                    );
                    return None;
                }
            },
        };
        let (cert, private_key) = match (c.cert, c.key, c.pkcs12) {
            (Some(cert), Some(k), None) => {
                let certs = self.certs(&format!("{key}.cert"), &cert);
                let pk = self.private_key(&format!("{key}.key"), &k);
                let Some(leaf) = certs.into_iter().next() else {
                    if self.path(&cert).exists() {
                        self.problem(&format!("{key}.cert"), "holds no certificate");
                    }
                    return None;
                };
                (leaf, pk?)
            }
            (None, None, Some(p12)) => {
                let Some(var) = c.pkcs12_password_env else {
                    self.problem(
                        &format!("{key}.pkcs12_password_env"),
                        "required with pkcs12: the environment variable that holds the password",
                    );
                    return None;
                };
                let Some(password) = env.var(&var) else {
                    self.problem(
                        &format!("{key}.pkcs12_password_env"),
                        format!("environment variable {var} is not set"),
                    );
                    return None;
                };
                self.check_private(&format!("{key}.pkcs12"), &p12);
                let bytes = self.read(&format!("{key}.pkcs12"), &p12)?;
                match read_pkcs12(&bytes, &password) {
                    Ok(pair) => pair,
                    Err(e) => {
                        self.problem(&format!("{key}.pkcs12"), e);
                        return None;
                    }
                }
            }
            _ => {
                self.problem(
                    &key,
                    "give either cert and key, or pkcs12 (with pkcs12_password_env)",
                );
                return None;
            }
        };
        match Signer::new(cert, &private_key, alg) {
            Ok(s) => Some(s),
            Err(e) => {
                self.problem(&key, e);
                None
            }
        }
    }

    fn client(
        &mut self,
        key: &str,
        c: RawClient,
        upstreams: &BTreeMap<String, UpstreamSpec>,
        credentials: &BTreeMap<String, Arc<Signer>>,
        default_rate: Option<&str>,
    ) -> Option<Registration> {
        // What identifies this registration across reloads, with its upstream's spec.
        let identity_text = format!("{c:?}\n{:?}", upstreams.get(&c.upstream));
        let mut ok = true;
        if c.client_id.trim().is_empty() || c.client_id.chars().any(char::is_control) {
            self.problem(
                key,
                "client_id must be a non-empty string without control characters",
            );
            ok = false;
        }
        if !upstreams.contains_key(&c.upstream) {
            self.problem(
                &format!("{key}.upstream"),
                format!("no [upstreams.{}] is defined", c.upstream),
            );
            ok = false;
        }
        let credential = credentials.get(&c.credential).cloned();
        if credential.is_none() {
            self.problem(
                &format!("{key}.credential"),
                format!("no usable [credentials.{}] is defined", c.credential),
            );
            ok = false;
        }
        // A client's own rate_limit overrides the default; "" turns it off for this client.
        let rate_limit = match c.rate_limit.as_deref().or(default_rate) {
            Some(r) if !r.trim().is_empty() => match crate::registry::RateLimit::parse(r) {
                Ok(limit) => Some(limit),
                Err(e) => {
                    self.problem(&format!("{key}.rate_limit"), e);
                    ok = false;
                    None
                }
            },
            _ => None,
        };
        if c.cache_tokens
            && c.grant_types
                .as_ref()
                .is_some_and(|g| !g.iter().any(|g| g == "client_credentials"))
        {
            self.warnings.push(format!(
                "{key}.cache_tokens: only client_credentials tokens are cached, and this client may not use that grant"
            ));
        }
        let selectors: Vec<(&str, &String)> = [
            (
                "tls_client_auth_subject_dn",
                c.tls_client_auth_subject_dn.as_ref(),
            ),
            (
                "tls_client_auth_san_dns",
                c.tls_client_auth_san_dns.as_ref(),
            ),
            (
                "tls_client_auth_san_uri",
                c.tls_client_auth_san_uri.as_ref(),
            ),
            ("tls_client_auth_san_ip", c.tls_client_auth_san_ip.as_ref()),
            (
                "tls_client_auth_san_email",
                c.tls_client_auth_san_email.as_ref(),
            ),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect();
        let method = match c.token_endpoint_auth_method.as_str() {
            "tls_client_auth" => {
                if !c.self_signed_certs.is_empty() || !c.self_signed_thumbprints.is_empty() {
                    self.problem(
                        key,
                        "self_signed_certs / self_signed_thumbprints belong to self_signed_tls_client_auth",
                    );
                    ok = false;
                }
                let selector = match selectors.as_slice() {
                    [(name, value)] => self.selector(key, name, value),
                    [] => {
                        self.problem(
                            key,
                            "tls_client_auth needs exactly one of tls_client_auth_subject_dn, _san_dns, _san_uri, _san_ip, _san_email; none is set",
                        );
                        None
                    }
                    many => {
                        let names: Vec<&str> = many.iter().map(|(n, _)| *n).collect();
                        self.problem(
                            key,
                            format!(
                                "tls_client_auth needs exactly one tls_client_auth_* selector (RFC 8705 §2.1.2); {} are set: {}",
                                names.len(),
                                names.join(", ")
                            ),
                        );
                        None
                    }
                };
                // Every certificate of the pin file is a CA the client may chain to.
                let pin = match &c.tls_client_auth_ca {
                    None => None,
                    Some(p) => {
                        let pin_key = format!("{key}.tls_client_auth_ca");
                        let certs = self.certs(&pin_key, p);
                        if certs.is_empty() {
                            if self.path(p).exists() {
                                self.problem(&pin_key, "holds no certificate");
                            }
                            ok = false;
                            None
                        } else {
                            match Anchors::new(certs) {
                                Ok(t) => Some(Arc::new(t)),
                                Err(e) => {
                                    self.problem(&pin_key, e);
                                    ok = false;
                                    None
                                }
                            }
                        }
                    }
                };
                match selector {
                    Some(selector) => AuthMethod::Pki { selector, pin },
                    None => return None,
                }
            }
            "self_signed_tls_client_auth" => {
                if !selectors.is_empty() || c.tls_client_auth_ca.is_some() {
                    self.problem(
                        key,
                        "tls_client_auth_* keys belong to tls_client_auth; self-signed clients use self_signed_certs / self_signed_thumbprints",
                    );
                    ok = false;
                }
                let mut thumbprints = HashSet::new();
                for (i, p) in c.self_signed_certs.iter().enumerate() {
                    let k = format!("{key}.self_signed_certs[{i}]");
                    let certs = self.certs(&k, p);
                    if certs.is_empty() && self.path(p).exists() {
                        self.problem(&k, "holds no certificate");
                    }
                    for cert in certs {
                        thumbprints.insert(identity::sha256(cert.as_ref()));
                    }
                }
                for (i, t) in c.self_signed_thumbprints.iter().enumerate() {
                    match parse_thumbprint(t) {
                        Some(d) => {
                            thumbprints.insert(d);
                        }
                        None => {
                            self.problem(
                                &format!("{key}.self_signed_thumbprints[{i}]"),
                                "not an x5t#S256 (43 base64url characters) or a 64-digit SHA-256 hex thumbprint",
                            );
                            ok = false;
                        }
                    }
                }
                if c.self_signed_certs.is_empty() && c.self_signed_thumbprints.is_empty() {
                    self.problem(
                        key,
                        "self_signed_tls_client_auth needs self_signed_certs or self_signed_thumbprints",
                    );
                    return None;
                }
                AuthMethod::SelfSigned { thumbprints }
            }
            other => {
                self.problem(
                    &format!("{key}.token_endpoint_auth_method"),
                    format!(
                        "\"{other}\" is not \"tls_client_auth\" or \"self_signed_tls_client_auth\""
                    ),
                );
                return None;
            }
        };
        let grant_types = c
            .grant_types
            .unwrap_or_else(|| vec!["client_credentials".to_string()]);
        if grant_types.is_empty() {
            self.problem(
                &format!("{key}.grant_types"),
                "must allow at least one grant type",
            );
            ok = false;
        }
        if !ok {
            return None;
        }
        let credential = credential?;
        let fingerprint = {
            // Hash sets print in a random order: the binding is written out sorted.
            let binding = match &method {
                AuthMethod::Pki { selector, pin } => {
                    format!("{selector:?} {:?}", pin.as_ref().map(|p| &p.certs))
                }
                AuthMethod::SelfSigned { thumbprints } => {
                    let mut t: Vec<_> = thumbprints.iter().collect();
                    t.sort();
                    format!("{t:?}")
                }
            };
            let text = format!(
                "{identity_text}\n{:?}\n{}\n{:?}\n{binding}",
                rate_limit.as_ref().map(|r| r.text.as_str()),
                credential.x5t_s256,
                credential,
            );
            crate::identity::sha256(text.as_bytes())
        };
        let state = crate::state::ClientState {
            rate_limit,
            assertions: Default::default(),
            token_cache: c.cache_tokens.then(crate::cache::TokenCache::default),
            upstream_slots: crate::registry::upstream_slots(),
        };
        Some(Registration {
            client_id: c.client_id,
            upstream: c.upstream,
            credential,
            method,
            grant_types: grant_types.into_iter().collect(),
            scopes: c.scopes.into_iter().collect(),
            fingerprint,
            state: Arc::new(state),
        })
    }

    fn selector(&mut self, key: &str, name: &str, value: &str) -> Option<Selector> {
        let k = format!("{key}.{name}");
        if value.trim().is_empty() || value.chars().any(char::is_control) {
            self.problem(&k, "must be non-empty and free of control characters");
            return None;
        }
        match name {
            "tls_client_auth_subject_dn" => match DistinguishedName::parse_rfc4514(value) {
                Ok(dn) => {
                    if dn.looks_reversed() {
                        self.warnings.push(format!(
                            "{k}: \"{value}\" looks like it is written in DER (OpenSSL) order; RFC 4514 puts the most specific RDN first (CN=...,O=...,C=...), and a reversed DN does not match"
                        ));
                    }
                    Some(Selector::SubjectDn(dn))
                }
                Err(DnError::SlashForm(_)) => match DistinguishedName::parse_openssl_slash(value) {
                    Ok((dn, rfc4514)) => {
                        self.warnings.push(format!(
                            "{k}: \"{value}\" is OpenSSL's /C=../CN=.. form; it is read as the RFC 4514 DN \"{rfc4514}\": write that instead"
                        ));
                        Some(Selector::SubjectDn(dn))
                    }
                    Err(e) => {
                        self.problem(&k, format!("\"{value}\" looks like OpenSSL's /C=../CN=.. form but cannot be read: {e}"));
                        None
                    }
                },
                Err(e) => {
                    self.problem(&k, e);
                    None
                }
            },
            "tls_client_auth_san_dns" => Some(Selector::SanDns(value.to_ascii_lowercase())),
            "tls_client_auth_san_uri" => Some(Selector::SanUri(value.to_string())),
            "tls_client_auth_san_email" => Some(Selector::SanEmail(value.to_string())),
            "tls_client_auth_san_ip" => match value.parse::<IpAddr>() {
                Ok(ip) => Some(Selector::SanIp(ip)),
                Err(_) => {
                    self.problem(&k, format!("\"{value}\" is not an IPv4 or IPv6 address"));
                    None
                }
            },
            _ => None,
        }
    }
}

fn valid_tenant(t: &str) -> bool {
    !t.is_empty()
        && !["common", "organizations", "consumers"].contains(&t.to_ascii_lowercase().as_str())
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
}

/// A PEM error in words: rustls-pki-types prints the offending line as a list of numbers.
pub fn pem_error(e: &rustls_pki_types::pem::Error) -> String {
    use rustls_pki_types::pem::Error;
    let text = |bytes: &[u8]| {
        String::from_utf8_lossy(bytes)
            .trim()
            .chars()
            .take(80)
            .collect::<String>()
    };
    match e {
        Error::MissingSectionEnd { end_marker } => {
            format!(
                "a section is not closed: \"{}\" is missing",
                text(end_marker)
            )
        }
        Error::IllegalSectionStart { line } => {
            format!("the line \"{}\" does not start a PEM section", text(line))
        }
        Error::Base64Decode(why) => format!("a section's base64 is invalid ({why})"),
        Error::NoItemsFound => "no PEM section of the expected kind".into(),
        other => other.to_string(),
    }
}

fn check_server_key(leaf: &CertificateDer<'_>, key: &PrivateKeyDer<'_>) -> Result<(), String> {
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let signing = provider
        .key_provider
        .load_private_key(key.clone_key())
        .map_err(|e| format!("unusable private key: {e}"))?;
    let certified = rustls::sign::CertifiedKey::new(vec![leaf.clone().into_owned()], signing);
    match certified.keys_match() {
        Ok(()) => Ok(()),
        Err(rustls::Error::InconsistentKeys(_)) => {
            Err("the private key does not match the server certificate".into())
        }
        // Key types whose public key rustls cannot derive: accept, the handshake will tell.
        Err(_) => Ok(()),
    }
}

/// Certificates from PEM (every CERTIFICATE block) or one DER certificate.
pub fn parse_certs(bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    if bytes.starts_with(b"-----") || bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(bytes).collect();
        let certs = certs.map_err(|e| format!("bad PEM: {}", pem_error(&e)))?;
        if certs.is_empty() {
            return Err("no CERTIFICATE block in the PEM file".into());
        }
        Ok(certs)
    } else {
        x509_parser::parse_x509_certificate(bytes)
            .map_err(|e| format!("neither PEM nor a DER certificate: {e}"))?;
        Ok(vec![CertificateDer::from(bytes.to_vec())])
    }
}

/// Reads CRLs from a PEM file (every X509 CRL block) or one DER CRL.
pub fn parse_crls(bytes: &[u8]) -> Result<Vec<CertificateRevocationListDer<'static>>, String> {
    if bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        let crls: Result<Vec<_>, _> = CertificateRevocationListDer::pem_slice_iter(bytes).collect();
        let crls = crls.map_err(|e| format!("bad PEM: {}", pem_error(&e)))?;
        if crls.is_empty() {
            return Err("no X509 CRL block in the PEM file".into());
        }
        Ok(crls)
    } else {
        Ok(vec![CertificateRevocationListDer::from(bytes.to_vec())])
    }
}

/// Reads the first key and its certificate from a PKCS#12 file.
pub fn read_pkcs12(
    bytes: &[u8],
    password: &str,
) -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>), String> {
    let store = p12_keystore::KeyStore::from_pkcs12(bytes, password)
        .map_err(|e| format!("cannot open the PKCS#12 file (wrong password?): {e}"))?;
    let (_, chain) = store
        .private_key_chain()
        .ok_or("the PKCS#12 file holds no private key with a certificate")?;
    let leaf = chain
        .chain()
        .first()
        .ok_or("the PKCS#12 key has no certificate")?;
    let key = PrivateKeyDer::try_from(chain.key().to_vec())
        .map_err(|e| format!("the PKCS#12 key is not PKCS#8: {e}"))?;
    Ok((CertificateDer::from(leaf.as_der().to_vec()), key))
}

/// Parses an `x5t#S256` (base64url, 43 chars) or 64-digit hex SHA-256 thumbprint.
pub fn parse_thumbprint(t: &str) -> Option<[u8; 32]> {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    let t = t.trim();
    let bytes = if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
        (0..64)
            .step_by(2)
            .map(|i| u8::from_str_radix(&t[i..i + 2], 16).ok())
            .collect::<Option<Vec<u8>>>()?
    } else {
        URL_SAFE_NO_PAD.decode(t.trim_end_matches('=')).ok()?
    };
    bytes.try_into().ok()
}

/// Parses `"250ms"`, `"5s"`, `"2m"`, `"1h"`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("\"{s}\" has no unit: write e.g. \"250ms\", \"5s\", \"2m\""))?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("\"{s}\" is not a duration such as \"250ms\", \"5s\", \"2m\""))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        _ => {
            return Err(format!(
                "\"{s}\": unknown unit \"{unit}\" (use ms, s, m or h)"
            ))
        }
    };
    if d.is_zero() {
        return Err(format!("\"{s}\" must be greater than zero"));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn thumbprints_parse_as_base64url_or_hex() {
        let digest = [7u8; 32];
        let b64 = identity::x5t_s256_of_digest(&digest);
        assert_eq!(parse_thumbprint(&b64), Some(digest));
        assert_eq!(parse_thumbprint(&"07".repeat(32)), Some(digest));
        assert_eq!(parse_thumbprint("abc"), None);
    }

    #[test]
    fn tenants_exclude_multi_tenant_aliases() {
        assert!(valid_tenant("contoso.onmicrosoft.com"));
        assert!(valid_tenant("72f988bf-86f1-41af-91ab-2d7cd011db47"));
        assert!(!valid_tenant("common"));
        assert!(!valid_tenant("a/b"));
        assert!(!valid_tenant(""));
    }
}
