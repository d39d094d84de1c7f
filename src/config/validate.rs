//! Validation: the raw file turned into the domain types, every problem collected with its key.

use super::raw::*;
use super::*;

pub(super) struct Cx {
    pub(super) base: PathBuf,
    pub(super) problems: Vec<ConfigError>,
    pub(super) warnings: Vec<String>,
    pub(super) files: Vec<PathBuf>,
}

impl Cx {
    pub(super) fn problem(&mut self, key: &str, msg: impl std::fmt::Display) {
        self.problems.push(ConfigError::new(key, msg.to_string()));
    }

    pub(super) fn path(&self, p: &Path) -> PathBuf {
        self.base.join(p)
    }

    pub(super) fn read(&mut self, key: &str, p: &Path) -> Option<Vec<u8>> {
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
    pub(super) fn certs(&mut self, key: &str, p: &Path) -> Vec<CertificateDer<'static>> {
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
    pub(super) fn check_private(&mut self, key: &str, p: &Path) {
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

    pub(super) fn private_key(&mut self, key: &str, p: &Path) -> Option<PrivateKeyDer<'static>> {
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

    pub(super) fn duration(
        &mut self,
        key: &str,
        value: Option<&str>,
        default: Duration,
    ) -> Duration {
        match value {
            None => default,
            Some(s) => parse_duration(s).unwrap_or_else(|e| {
                self.problem(key, e);
                default
            }),
        }
    }

    pub(super) fn socket_addr(&mut self, key: &str, s: &str) -> Option<SocketAddr> {
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

    pub(super) fn validate(
        &mut self,
        raw: RawConfig,
        path: &Path,
        env: &dyn Env,
    ) -> Option<Config> {
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
            if let Some(mut signer) = self.credential(&name, c, env) {
                signer.name = name.clone();
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
        self.entra_needs_rsa(&registry, &upstreams);
        let (binding, authz, introspection) =
            self.bound_tokens(raw.binding, raw.authz, raw.introspection, &upstreams);
        let state = raw.state.map(|s| self.state(s, env)).unwrap_or_default();
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
            binding,
            authz,
            introspection,
            state,
            dev_pki,
            warnings: Vec::new(),
            files: Vec::new(),
        })
    }

    /// An EC (ES256) credential used by a client of an Entra upstream: Entra accepts RSA
    /// credentials only. Reported once per credential, on the credential.
    fn entra_needs_rsa(&mut self, registry: &Registry, upstreams: &BTreeMap<String, UpstreamSpec>) {
        let mut reported = HashSet::new();
        let mut regs: Vec<_> = registry.iter().collect();
        regs.sort_by(|a, b| a.client_id.cmp(&b.client_id));
        for reg in regs {
            let entra = upstreams
                .get(&reg.upstream)
                .is_some_and(|u| u.kind.is_entra());
            let cred = &reg.credential;
            if entra && cred.alg() == Alg::Es256 && reported.insert(cred.name.clone()) {
                self.problem(
                    &format!("credentials.{}", cred.name),
                    format!(
                        "the key is not an RSA private key (PKCS#8 or PKCS#1): the certificate holds an EC key (ES256); Entra accepts RSA credentials only, and client {} uses it on upstream {}",
                        reg.client_id, reg.upstream
                    ),
                );
            }
        }
    }

    /// Keeps, per issuer, only the newest CRL (SPEC §5), warning about the others.
    pub(super) fn newest_crls(
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

    pub(super) fn server(&mut self, s: RawServer) -> Option<Server> {
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
        let host = public_url
            .strip_prefix("https://")
            .and_then(|rest| rest.rsplit_once(':').map(|(h, _)| h).or(Some(rest)))
            .unwrap_or_default();
        if matches!(host, "0.0.0.0" | "[::]" | "::") {
            self.warnings.push(format!(
                "server.public_url: the metadata would advertise {public_url}, which no client can reach; set public_url to the address clients use (e.g. https://gateway.example.com:8443)"
            ));
        }
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
            for c in &certs {
                if let Some(subject) = not_a_ca(c) {
                    self.problem(&k, format!("{subject} is not a CA certificate (basicConstraints CA:TRUE is missing): a client certificate here verifies no chain; list the CA that issued the clients' certificates, or register the certificate itself (self_signed_tls_client_auth)"));
                }
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
            resumption: s.resumption == Some(true),
        })
    }

    pub(super) fn front_proxy(&mut self, f: RawFrontProxy) -> Option<FrontProxy> {
        let name = f.header.unwrap_or_else(|| "client-cert".to_string());
        let format = HeaderFormat::parse(&name);
        if format.is_none() {
            self.problem(
                "front_proxy.header",
                format!("\"{name}\" is not {}", HeaderFormat::EXPECTED),
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
                    thumbprint_problem(t),
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

    pub(super) fn limits(&mut self, l: RawLimits) -> Limits {
        let rate_limit = l.rate_limit.filter(|r| !r.trim().is_empty());
        if let Some(r) = &rate_limit {
            if let Err(e) = crate::state::RateLimit::parse(r) {
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
            shutdown_delay: match l.shutdown_delay.as_deref().map(parse_duration_or_zero) {
                None => Duration::ZERO,
                Some(Ok(d)) => d,
                Some(Err(e)) => {
                    self.problem("limits.shutdown_delay", e);
                    Duration::ZERO
                }
            },
            rate_limit,
        }
    }
}

/// The subject of `der` when it is not a CA certificate (no basicConstraints CA:TRUE).
fn not_a_ca(der: &CertificateDer<'_>) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    let is_ca = cert
        .basic_constraints()
        .ok()
        .flatten()
        .is_some_and(|bc| bc.value.ca);
    (!is_ca).then(|| cert.subject().to_string())
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

pub(super) fn valid_tenant(t: &str) -> bool {
    !t.is_empty()
        && !["common", "organizations", "consumers"].contains(&t.to_ascii_lowercase().as_str())
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
}
