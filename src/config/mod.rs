//! `gateway.toml`: the validated configuration. [`raw`] holds the file format, [`validate`]
//! and [`clients`] turn it into these types in one place, collecting every problem to report
//! them together; [`crate::keys`] reads key material.

use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::assertion::{Alg, Signer};
use crate::dn::{DistinguishedName, DnError};
use crate::forwarded::{Cidr, HeaderFormat};
use crate::identity;
use crate::registry::{AuthMethod, Registration, Registry, Selector};
use crate::trust::{Anchors, ClientTrust};

mod binding;
mod clients;
mod credentials;
mod effective;
mod raw;
mod state;
mod upstreams;
mod validate;

use raw::RawConfig;
use validate::Cx;

pub use crate::keys::{parse_certs, parse_crls, pem_error, read_pkcs12};
pub use binding::{Authz, Binding, BindingMode, Introspection, UnknownToken, DEFAULT_MAX_RECORDS};
pub use effective::{effective, redact_url};
pub use state::{RedisState, Secret, StateStore, DEFAULT_STATE_TIMEOUT};

// ---------------------------------------------------------------------------------------------
// Raw file format

/// `limits.max_connection_age` when not set.
pub const DEFAULT_MAX_CONNECTION_AGE: Duration = Duration::from_secs(3600);
/// `limits.max_connections_per_peer` when not set.
pub const DEFAULT_MAX_CONNECTIONS_PER_PEER: usize = 256;
/// `limits.idle_timeout` when not set.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
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
    /// `[binding]`: certificate-bound access tokens (SPEC §10).
    pub binding: Option<Binding>,
    /// `[authz]`: the decision listener.
    pub authz: Option<Authz>,
    /// `[introspection]`: RFC 7662 on the main listener.
    pub introspection: Option<Introspection>,
    /// `[state]`: memory or Redis.
    pub state: StateStore,
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
    /// `resumption`: TLS 1.3 tickets and TLS 1.2 session ids on the mTLS listener.
    pub resumption: bool,
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
    /// Whether `reuse_assertion` was written (else remote signers reuse by default on Entra).
    pub reuse_explicit: bool,
    /// `[[upstreams.NAME.federated]]` (embedded only): federated credentials it accepts.
    pub federated: Vec<FederatedCredential>,
    /// `assertion_audience`: the `aud` of the assertions sent here.
    pub audience: AssertionAudience,
}

/// `assertion_audience` (generic upstreams).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AssertionAudience {
    /// The URL the assertion is posted to (RFC 7523 §3; Entra, Okta, Keycloak, Ping).
    #[default]
    TokenEndpoint,
    /// The `issuer` of the upstream's metadata document, exactly as written (Auth0 wants its
    /// tenant URL with the trailing slash).
    Issuer,
    /// This URL, as written.
    Exact(String),
}

/// What the embedded identity provider imitates (`profile`). Entra is the default; the others
/// are RFC 7523 servers with the layout and the assertion rules of the product they name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdpProfile {
    /// Entra ID: tenant routes, AADSTS errors, `x5t`/`x5t#S256` key lookup, RSA only.
    Entra,
    /// Okta (custom authorization server `default`): `kid` required, `aud` = token endpoint.
    Okta,
    /// Auth0: `kid` required, `aud` = the tenant URL with its trailing slash (the issuer).
    Auth0,
    /// Keycloak (realm = tenant): `kid` optional, `aud` = issuer or token endpoint.
    Keycloak,
    /// PingFederate: `kid` optional, `aud` = token endpoint.
    Ping,
    /// ForgeRock / PingAM (realm = tenant): `kid` optional, `aud` = token endpoint.
    ForgeRock,
    /// A plain RFC 7523 server: `kid` optional, `aud` = token endpoint.
    Generic,
}

impl IdpProfile {
    /// The accepted `profile` values.
    pub const NAMES: &'static str =
        "\"entra\", \"okta\", \"auth0\", \"keycloak\", \"ping\", \"forgerock\" or \"generic\"";

    /// Parses a `profile` value.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "entra" => Self::Entra,
            "okta" => Self::Okta,
            "auth0" => Self::Auth0,
            "keycloak" => Self::Keycloak,
            "ping" => Self::Ping,
            "forgerock" => Self::ForgeRock,
            "generic" => Self::Generic,
            _ => return None,
        })
    }

    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Entra => "entra",
            Self::Okta => "okta",
            Self::Auth0 => "auth0",
            Self::Keycloak => "keycloak",
            Self::Ping => "ping",
            Self::ForgeRock => "forgerock",
            Self::Generic => "generic",
        }
    }

    /// The token endpoint's path on the provider's host.
    pub fn token_path(self, tenant: &str) -> String {
        match self {
            Self::Entra => format!("/{tenant}/oauth2/v2.0/token"),
            Self::Okta => "/oauth2/default/v1/token".into(),
            Self::Auth0 => "/oauth/token".into(),
            Self::Keycloak => format!("/realms/{tenant}/protocol/openid-connect/token"),
            Self::Ping => "/as/token.oauth2".into(),
            Self::ForgeRock => format!("/am/oauth2/realms/root/realms/{tenant}/access_token"),
            Self::Generic => "/token".into(),
        }
    }

    /// The issuer, exactly as the provider writes it (Auth0's ends with `/`).
    pub fn issuer(self, authority: &str, tenant: &str) -> String {
        match self {
            Self::Entra => format!("{authority}/{tenant}/v2.0"),
            Self::Okta => format!("{authority}/oauth2/default"),
            Self::Auth0 => format!("{authority}/"),
            Self::Keycloak => format!("{authority}/realms/{tenant}"),
            Self::ForgeRock => format!("{authority}/am/oauth2/realms/root/realms/{tenant}"),
            Self::Ping | Self::Generic => authority.to_string(),
        }
    }

    /// Where its discovery document is: `{issuer}/.well-known/openid-configuration`
    /// (Entra's is under `/{tenant}/v2.0/`).
    pub fn metadata_url(self, authority: &str, tenant: &str) -> String {
        format!(
            "{}/.well-known/openid-configuration",
            self.issuer(authority, tenant).trim_end_matches('/')
        )
    }
}

/// Audience of Entra workload identity federation tokens.
pub const FEDERATION_AUDIENCE: &str = "api://AzureADTokenExchange";

/// A federated identity credential the embedded identity provider trusts (SPEC §12).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FederatedCredential {
    /// `iss` of the external tokens (e.g. the AKS cluster's OIDC issuer).
    pub issuer: String,
    /// `sub` (e.g. `system:serviceaccount:NAMESPACE:NAME`).
    pub subject: String,
    /// `aud` (default `api://AzureADTokenExchange`).
    pub audience: String,
    /// The issuer's JWKS document.
    pub jwks: Vec<u8>,
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
    /// The in-process identity provider (Entra-compatible, or another profile).
    Embedded {
        /// Where it listens.
        listen: SocketAddr,
        /// Its tenant name (the realm of Keycloak and ForgeRock).
        tenant: String,
        /// What it imitates.
        profile: IdpProfile,
    },
}

impl UpstreamKind {
    /// The tenant, for Entra-shaped upstreams (an embedded provider in another profile has
    /// none: it has no tenant routes).
    pub fn tenant(&self) -> Option<&str> {
        match self {
            Self::Entra { tenant, .. }
            | Self::Embedded {
                tenant,
                profile: IdpProfile::Entra,
                ..
            } => Some(tenant),
            Self::Generic { .. } | Self::Embedded { .. } => None,
        }
    }

    /// Whether Entra's rules apply (RSA credentials, `x5t`, reuse by default for HSMs).
    pub fn is_entra(&self) -> bool {
        matches!(
            self,
            Self::Entra { .. }
                | Self::Embedded {
                    profile: IdpProfile::Entra,
                    ..
                }
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Loading

/// One problem of a configuration: the key it concerns (`server.cert`, `clients[2].upstream`,
/// or `toml` / `file` for the file as a whole) and what is wrong, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The key.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

impl ConfigError {
    /// A problem of `key`.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// All problems found in a configuration, each with file and key.
#[derive(Debug, Clone)]
pub struct ConfigErrors {
    /// The file.
    pub file: PathBuf,
    /// Every problem, in the order found.
    pub problems: Vec<ConfigError>,
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
    let text = std::fs::read_to_string(path).map_err(|e| {
        fail(vec![ConfigError::new(
            "file",
            format!("cannot read the file: {e}"),
        )])
    })?;
    load_str(&text, path, env)
}

/// Validates configuration `text` as if read from `path` (relative paths resolve against its
/// folder). For callers that hold the text already, and for fuzzing.
pub fn load_str(text: &str, path: &Path, env: &dyn Env) -> Result<Config, ConfigErrors> {
    let fail = |problems| ConfigErrors {
        file: path.to_path_buf(),
        problems,
    };
    let raw: RawConfig = toml::from_str(text)
        .map_err(|e| fail(vec![ConfigError::new("toml", toml_error(&e, text))]))?;
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

/// A TOML error as `check` prints it: `line L, column C: what`, a "did you mean" for an
/// unknown key that is close to a known one, then the line itself with the span marked.
fn toml_error(e: &toml::de::Error, text: &str) -> String {
    let message = e.message().trim_end();
    let mut out = String::new();
    let span = e.span().filter(|s| s.start <= text.len());
    if let Some(span) = &span {
        let before = &text[..span.start];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        out.push_str(&format!("line {line}, column {column}: "));
    }
    out.push_str(&message.replace('\n', "; "));
    if let Some(suggestion) = did_you_mean(message) {
        out.push_str(&format!("; did you mean `{suggestion}`?"));
    }
    if let Some(span) = span {
        let start = text[..span.start].rfind('\n').map_or(0, |i| i + 1);
        let end = text[span.start..]
            .find('\n')
            .map_or(text.len(), |i| span.start + i);
        let line_text = text[start..end].trim_end_matches('\r');
        let number = text[..span.start].matches('\n').count() + 1;
        let pad = " ".repeat(number.to_string().len());
        let lead = text[start..span.start].chars().count();
        let width = text[span.start..span.end.min(end).max(span.start)]
            .chars()
            .count()
            .max(1);
        out.push_str(&format!(
            "\n      {pad} |\n      {number} | {line_text}\n      {pad} | {}{}",
            " ".repeat(lead),
            "^".repeat(width)
        ));
    }
    out
}

/// For serde's "unknown field `x`, expected one of `a`, `b`" (or "expected `a`"): the known
/// key closest to `x`, when it is close enough to be a typo.
fn did_you_mean(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    let (unknown, expected) = rest.split_once('`')?;
    let best = expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(|k| (strsim::damerau_levenshtein(unknown, k), k))
        .min()?;
    let limit = (unknown.chars().count() / 3).max(2);
    (best.0 <= limit).then(|| best.1.to_string())
}

/// Parses an `x5t#S256` (base64url, 43 chars) or a hex SHA-256 thumbprint, with or without
/// colons (`openssl x509 -fingerprint -sha256` prints `AB:CD:…`).
pub fn parse_thumbprint(t: &str) -> Option<[u8; 32]> {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    let t = t.trim();
    let hex: String = t.chars().filter(|c| *c != ':').collect();
    let colons_ok = !t.contains(':') || t.split(':').all(|p| p.len() == 2);
    let bytes = if hex.len() == 64 && colons_ok && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        crate::encoding::hex_decode(hex.as_bytes())?
    } else if t.contains(':') {
        return None;
    } else {
        URL_SAFE_NO_PAD.decode(t.trim_end_matches('=')).ok()?
    };
    bytes.try_into().ok()
}

/// What to tell about a thumbprint [`parse_thumbprint`] refused.
pub fn thumbprint_problem(t: &str) -> String {
    let hex: String = t.trim().chars().filter(|c| *c != ':').collect();
    if hex.len() == 40 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return "this is SHA-1; use `mtls-gateway thumbprint FILE` for the x5t#S256".into();
    }
    "not an x5t#S256 (43 base64url characters) or a SHA-256 hex thumbprint (64 digits, colons allowed)".into()
}

/// Parses `"250ms"`, `"5s"`, `"2m"`, `"1h"`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = parse_duration_or_zero(s)?;
    if d.is_zero() {
        return Err(format!("\"{}\" must be greater than zero", s.trim()));
    }
    Ok(d)
}

/// Like [`parse_duration`], zero allowed (`limits.shutdown_delay = "0s"`).
pub fn parse_duration_or_zero(s: &str) -> Result<Duration, String> {
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
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::validate::valid_tenant;
    use super::*;

    #[test]
    fn toml_errors_name_the_line_and_suggest_the_key_meant() {
        let text = "[server]\nlistn = \"127.0.0.1:8443\"\n";
        let e = toml::from_str::<RawConfig>(text).unwrap_err();
        let shown = toml_error(&e, text);
        let lines: Vec<&str> = shown.lines().collect();
        assert!(
            lines[0]
                .starts_with("line 2, column 1: unknown field `listn`, expected one of `listen`"),
            "{shown}"
        );
        assert!(lines[0].ends_with("; did you mean `listen`?"), "{shown}");
        assert_eq!(lines[2], "      2 | listn = \"127.0.0.1:8443\"");
        assert_eq!(lines[3], "        | ^^^^^");
        // Nothing close: no suggestion.
        assert_eq!(
            did_you_mean("unknown field `zzzzzzzz`, expected `listen`"),
            None
        );
        assert_eq!(
            did_you_mean("unknown field `client_idd`, expected one of `client_id`, `upstream`"),
            Some("client_id".into())
        );
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("0s").is_err());
        assert_eq!(parse_duration_or_zero("0s"), Ok(Duration::ZERO));
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
        let colons = vec!["07"; 32].join(":");
        assert_eq!(parse_thumbprint(&colons), Some(digest));
        assert_eq!(parse_thumbprint(&colons[1..]), None);
        assert!(thumbprint_problem(&"ab".repeat(20)).contains("SHA-1"));
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
