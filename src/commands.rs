//! The commands other than `serve`: `check`, `thumbprint`, `dev-pki`, `mock-idp`, `demo`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use rustls_pki_types::CertificateDer;

use crate::config::{self, Config, UpstreamKind};
use crate::identity::{self, ClientIdentity};
use crate::registry::{AuthMethod, Selector};

/// `check`: validates everything (key files and HSM keys sign a test assertion at load),
/// signs a test assertion with each Key Vault credential, and prints a summary; `Err` holds
/// every problem. `online`: also one real token request per client ([`crate::online`]).
pub async fn check(path: &Path, online: bool) -> Result<String, String> {
    let config = config::load(path).map_err(|e| e.to_string())?;
    let mut problems = Vec::new();
    for (name, signer) in &config.credentials {
        if signer.backend_name() == "key_vault" {
            if let Err(e) = signer.probe().await {
                problems.push(format!("  - credentials.{name}.key_vault: {e}"));
            }
        }
    }
    let mut report = String::new();
    if online && problems.is_empty() {
        for p in crate::online::probe(&config).await? {
            let line = format!(
                "client {} via upstream {}: {}",
                p.client_id, p.upstream, p.line
            );
            if p.ok {
                report.push_str(&format!("online: {line}\n"));
            } else {
                problems.push(format!("  - online: {line}"));
            }
        }
    }
    if !problems.is_empty() {
        // The probes that passed are reported beside the ones that did not.
        return Err(format!(
            "{}: {} problem{}:\n{}\n{report}",
            path.display(),
            problems.len(),
            if problems.len() == 1 { "" } else { "s" },
            problems.join("\n")
        ));
    }
    Ok(summary(&config) + &report)
}

/// The summary table `check` prints.
pub fn summary(config: &Config) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "{}: OK\nlisten {}  public_url {}  admin {}\n",
        config.source.display(),
        config.server.listen,
        config.server.public_url,
        config
            .admin
            .as_ref()
            .map(|a| a.listen.to_string())
            .unwrap_or_else(|| "-".into())
    ));
    for (name, u) in &config.upstreams {
        let what = match &u.kind {
            UpstreamKind::Entra { authority, tenant } => format!("entra {authority}/{tenant}"),
            UpstreamKind::Generic { token_endpoint, .. } => format!("generic {token_endpoint}"),
            UpstreamKind::Embedded {
                listen,
                tenant,
                profile,
            } => {
                format!("embedded ({}) https://{listen}/{tenant}", profile.as_str())
            }
        };
        out.push_str(&format!(
            "upstream {name}: {what} (timeout {:?})\n",
            u.timeout
        ));
    }
    for (name, c) in &config.credentials {
        if let Some(t) = c.federated_token() {
            out.push_str(&format!(
                "credential {name}: federated token file {}\n",
                t.path.display()
            ));
            continue;
        }
        out.push_str(&format!(
            "credential {name}: {} x5t={} expires {}\n",
            c.alg().as_str(),
            c.x5t,
            crate::idp::timestamp(c.not_after)
        ));
    }
    let mut rows: Vec<[String; 5]> = vec![[
        "CLIENT_ID".into(),
        "METHOD".into(),
        "MATCH".into(),
        "UPSTREAM".into(),
        "GRANT_TYPES".into(),
    ]];
    let mut regs: Vec<_> = config.registry.iter().collect();
    regs.sort_by(|a, b| a.client_id.cmp(&b.client_id));
    for r in regs {
        let what = match &r.method {
            AuthMethod::Pki { selector, pin } => {
                let s = match selector {
                    Selector::SubjectDn(_) => "subject_dn".to_string(),
                    Selector::SanDns(v) => format!("san_dns={v}"),
                    Selector::SanUri(v) => format!("san_uri={v}"),
                    Selector::SanIp(v) => format!("san_ip={v}"),
                    Selector::SanEmail(v) => format!("san_email={v}"),
                };
                if pin.is_some() {
                    format!("{s} (CA pinned)")
                } else {
                    s
                }
            }
            AuthMethod::SelfSigned { thumbprints } => format!("{} cert(s)", thumbprints.len()),
        };
        let mut grants: Vec<&str> = r.grant_types.iter().map(String::as_str).collect();
        grants.sort();
        rows.push([
            r.client_id.clone(),
            r.method.name().into(),
            what,
            r.upstream.clone(),
            grants.join(","),
        ]);
    }
    let widths: Vec<usize> = (0..5)
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    for w in &config.warnings {
        out.push_str(&format!("warning: {w}\n"));
    }
    out
}

/// `thumbprint FILE`: what Entra and RFC 8705 call this certificate.
pub fn thumbprint(file: &Path, password_env: Option<&str>) -> Result<String, String> {
    let bytes = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let certs: Vec<CertificateDer<'static>> = if is_pkcs12(file, &bytes) {
        let password = match password_env {
            Some(var) => {
                std::env::var(var).map_err(|_| format!("environment variable {var} is not set"))?
            }
            None => String::new(),
        };
        let (cert, _) = config::read_pkcs12(&bytes, &password)?;
        vec![cert]
    } else {
        config::parse_certs(&bytes)?
    };
    let mut out = String::new();
    for (i, der) in certs.into_iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let id = ClientIdentity::from_der(der.clone()).map_err(|e| e.to_string())?;
        out.push_str(&describe(&id));
    }
    Ok(out)
}

fn is_pkcs12(file: &Path, bytes: &[u8]) -> bool {
    let ext = file
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    (ext == "pfx" || ext == "p12") && !bytes.starts_with(b"-----")
}

fn describe(id: &ClientIdentity) -> String {
    let mut sans = Vec::new();
    sans.extend(id.sans.dns.iter().map(|d| format!("DNS:{d}")));
    sans.extend(id.sans.ip.iter().map(|i| format!("IP:{i}")));
    sans.extend(id.sans.uri.iter().map(|u| format!("URI:{u}")));
    sans.extend(id.sans.email.iter().map(|e| format!("email:{e}")));
    let der = id.der.as_ref();
    let jwk = crate::jwk::PublicJwk::from_certificate(der)
        .map(|k| k.thumbprint())
        .unwrap_or_else(|e| format!("- ({e})"));
    format!(
        "subject:    {}\nissuer:     {}\nSANs:       {}\nnot before: {}\nnot after:  {}\nSHA-1:      {}\nx5t:        {}\nx5t#S256:   {}\nJWK thumbprint (RFC 7638): {jwk}\n",
        id.subject_display,
        id.issuer_display,
        if sans.is_empty() { "-".to_string() } else { sans.join(", ") },
        crate::idp::timestamp(id.not_before),
        crate::idp::timestamp(id.not_after),
        identity::hex_upper(&identity::sha1(der)),
        identity::x5t(der),
        id.x5t_s256,
    )
}

/// `jwks -c FILE [CREDENTIAL…]`: the public JWK Set of the named credentials (all when none
/// is named), one key each, for an identity provider to register or a URL to host. Only the
/// set goes to standard output.
pub fn jwks(path: &Path, names: &[String]) -> Result<String, String> {
    let config = config::load(path).map_err(|e| e.to_string())?;
    let wanted: Vec<&String> = if names.is_empty() {
        config.credentials.keys().collect()
    } else {
        names.iter().collect()
    };
    let mut keys = Vec::new();
    for name in wanted {
        let Some(c) = config.credentials.get(name) else {
            let known: Vec<&str> = config.credentials.keys().map(String::as_str).collect();
            return Err(format!(
                "{}: no [credentials.{name}]; the credentials are: {}",
                path.display(),
                known.join(", ")
            ));
        };
        if c.federated_token().is_some() {
            if names.is_empty() {
                continue;
            }
            return Err(format!(
                "credentials.{name} is a federated token file: it has no key of its own"
            ));
        }
        let chain: Vec<Vec<u8>> = c.chain.iter().map(|d| d.as_ref().to_vec()).collect();
        keys.push(
            crate::jwk::credential_jwk(&chain, c.kid.as_deref())
                .map_err(|e| format!("credentials.{name}: {e}"))?,
        );
    }
    let set = serde_json::json!({ "keys": keys });
    Ok(serde_json::to_string_pretty(&set).unwrap_or_default() + "\n")
}

/// `dev-pki --out DIR`: writes the files and describes each certificate.
pub fn dev_pki(out: &Path, force: bool) -> Result<String, String> {
    let ca = out.join("ca.pem");
    if ca.exists() && !force {
        return Err(format!(
            "{} exists: a new CA would leave every certificate the old one issued unverifiable; pass --force to replace the development PKI in {}",
            ca.display(),
            out.display()
        ));
    }
    let written = crate::pki::write_dev_pki(out)?;
    let mut text = format!(
        "wrote a development PKI to {} (never use it in production):\n",
        out.display()
    );
    for p in &written {
        text.push_str(&format!("  {}\n", p.display()));
    }
    for p in written
        .iter()
        .filter(|p| !p.to_string_lossy().ends_with("-key.pem"))
    {
        text.push_str(&format!("\n{}\n{}", p.display(), thumbprint(p, None)?));
    }
    Ok(text)
}

/// `mock-idp`: runs the embedded identity provider alone until Ctrl-C.
pub async fn mock_idp(
    listen: SocketAddr,
    tenant: &str,
    clients: &[(String, PathBuf)],
    tls: Option<(PathBuf, PathBuf)>,
    ca_out: Option<&Path>,
) -> Result<(), String> {
    let mut registrations = Vec::new();
    for (client_id, cert) in clients {
        let bytes = std::fs::read(cert).map_err(|e| format!("{}: {e}", cert.display()))?;
        for c in config::parse_certs(&bytes)? {
            registrations.push(crate::idp::Registered::cert(client_id.clone(), c));
        }
    }
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    let tls = match tls {
        Some((cert, key)) => {
            let (chain, key) = crate::client::load_identity(&cert, &key)?;
            crate::idp::server_config(chain, key)?
        }
        None => {
            let (ca, tls) = crate::idp::ephemeral_tls(bound)?;
            let pem = pem_of(&ca);
            match ca_out {
                Some(p) => {
                    std::fs::write(p, &pem).map_err(|e| format!("{}: {e}", p.display()))?;
                    println!("its TLS CA certificate was written to {}", p.display());
                }
                None => println!("its TLS CA certificate (trust it as the upstream's ca):\n{pem}"),
            }
            tls
        }
    };
    let authority = crate::upstream::authority_of(bound);
    let idp = crate::idp::Idp::new(tenant, &authority, registrations)?;
    println!("embedded identity provider for tenant {tenant}");
    println!("  token endpoint: {}", idp.token_endpoint());
    println!("  metadata:       {authority}/{tenant}/v2.0/.well-known/openid-configuration");
    println!("  keys:           {authority}/{tenant}/discovery/v2.0/keys");
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let server = tokio::spawn(crate::idp::serve(listener, tls, Arc::new(idp), stop_rx));
    let _ = tokio::signal::ctrl_c().await;
    let _ = stop.send(true);
    let _ = server.await;
    Ok(())
}

fn pem_of(der: &CertificateDer<'_>) -> String {
    use base64::engine::general_purpose::STANDARD;
    let b64 = STANDARD.encode(der.as_ref());
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

pub use crate::demo::{decode_jwt, demo, demo_config};
