//! `dev-pki`: a development PKI made with rcgen. Never for production.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, PKCS_RSA_SHA256,
};

/// Subject of the dev PKI client certificate, as `gateway.toml` registers it.
pub const CLIENT_SUBJECT: &str = "CN=legacy-client,O=mtls-gateway dev";

/// The files `dev-pki` writes, in order.
pub const FILES: [&str; 10] = [
    "ca.pem",
    "ca-key.pem",
    "server.pem",
    "server-key.pem",
    "client.pem",
    "client-key.pem",
    "client-selfsigned.pem",
    "client-selfsigned-key.pem",
    "signing.pem",
    "signing-key.pem",
];

fn name(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "mtls-gateway dev");
    dn.push(DnType::CommonName, cn);
    dn
}

fn validity(params: &mut CertificateParams, days: i64) {
    let now = std::time::SystemTime::now();
    params.not_before = (now - std::time::Duration::from_secs(3600)).into();
    params.not_after = (now + std::time::Duration::from_secs(days as u64 * 86_400)).into();
}

fn ca_params(cn: &str, days: i64) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = name(cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    validity(&mut params, days);
    params
}

/// A PEM certificate and its PEM (PKCS#8) key.
#[derive(Debug, Clone)]
pub struct Pem {
    /// CERTIFICATE.
    pub cert: String,
    /// PRIVATE KEY.
    pub key: String,
}

/// A CA certificate with its signing key.
pub struct Ca {
    /// The CA certificate and key.
    pub pem: Pem,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    /// A new self-signed CA named `cn`.
    pub fn new(cn: &str) -> Result<Self, rcgen::Error> {
        Self::make(cn, 3650, None)
    }

    /// A CA named `cn` issued by this one.
    pub fn intermediate(&self, cn: &str) -> Result<Self, rcgen::Error> {
        Self::make(cn, 1825, Some(&self.issuer))
    }

    fn make(
        cn: &str,
        days: i64,
        parent: Option<&Issuer<'static, KeyPair>>,
    ) -> Result<Self, rcgen::Error> {
        let key = KeyPair::generate()?;
        let params = ca_params(cn, days);
        let cert = match parent {
            Some(issuer) => params.signed_by(&key, issuer)?,
            None => params.self_signed(&key)?,
        };
        let pem = Pem {
            cert: cert.pem(),
            key: key.serialize_pem(),
        };
        Ok(Self {
            pem,
            issuer: Issuer::new(params, key),
        })
    }

    /// Issues a certificate with `params` for a fresh ECDSA P-256 key.
    pub fn issue(&self, params: &CertificateParams) -> Result<Pem, rcgen::Error> {
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Pem {
            cert: cert.pem(),
            key: key.serialize_pem(),
        })
    }

    /// The rcgen issuer (for CRLs and custom certificates in tests).
    pub fn issuer(&self) -> &Issuer<'static, KeyPair> {
        &self.issuer
    }
}

/// Parameters of a TLS server certificate for `hosts` (DNS names or IP addresses).
pub fn server_params(cn: &str, hosts: &[&str]) -> Result<CertificateParams, rcgen::Error> {
    let mut params =
        CertificateParams::new(hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>())?;
    params.distinguished_name = name(cn);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    validity(&mut params, 825);
    Ok(params)
}

/// Parameters of a TLS client certificate with subject `dn` (RFC 4514 is not parsed here:
/// pairs are given most general first) and `sans`.
pub fn client_params(dn: &[(DnType, &str)], sans: Vec<SanType>) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    for (t, v) in dn {
        name.push(t.clone(), *v);
    }
    params.distinguished_name = name;
    params.subject_alt_names = sans;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    validity(&mut params, 825);
    params
}

/// A self-signed TLS client certificate (ECDSA P-256) named `cn`.
pub fn self_signed_client(cn: &str) -> Result<Pem, rcgen::Error> {
    let key = KeyPair::generate()?;
    let mut params = client_params(
        &[
            (DnType::OrganizationName, "mtls-gateway dev"),
            (DnType::CommonName, cn),
        ],
        vec![],
    );
    params.is_ca = IsCa::NoCa;
    let cert = params.self_signed(&key)?;
    Ok(Pem {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

/// A self-signed RSA-2048 signing credential, as registered on an app registration.
pub fn signing_credential(cn: &str) -> Result<Pem, rcgen::Error> {
    let key = KeyPair::generate_for(&PKCS_RSA_SHA256)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = name(cn);
    validity(&mut params, 365);
    let cert = params.self_signed(&key)?;
    Ok(Pem {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

/// Writes the dev PKI into `dir` (created if needed) and returns the paths written.
pub fn write_dev_pki(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let err = |e: rcgen::Error| format!("generating the dev PKI: {e}");
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let ca = Ca::new("mtls-gateway dev CA").map_err(err)?;
    let server = ca
        .issue(&server_params("localhost", &["localhost", "127.0.0.1", "::1"]).map_err(err)?)
        .map_err(err)?;
    let client = ca
        .issue(&client_params(
            &[
                (DnType::OrganizationName, "mtls-gateway dev"),
                (DnType::CommonName, "legacy-client"),
            ],
            vec![SanType::DnsName(
                "legacy-client.dev.internal".try_into().map_err(err)?,
            )],
        ))
        .map_err(err)?;
    let selfsigned = self_signed_client("legacy-selfsigned").map_err(err)?;
    let signing = signing_credential("mtls-gateway dev signing credential").map_err(err)?;
    let mut written = Vec::new();
    for (file, pem) in [
        ("ca", &ca.pem),
        ("server", &server),
        ("client", &client),
        ("client-selfsigned", &selfsigned),
        ("signing", &signing),
    ] {
        let cert_path = dir.join(format!("{file}.pem"));
        let key_path = dir.join(format!("{file}-key.pem"));
        std::fs::write(&cert_path, &pem.cert)
            .map_err(|e| format!("writing {}: {e}", cert_path.display()))?;
        write_private(&key_path, &pem.key)?;
        written.push(cert_path);
        written.push(key_path);
    }
    Ok(written)
}

/// Writes a private key readable by its owner only.
pub fn write_private(path: &Path, contents: &str) -> Result<(), String> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut f = options
        .open(path)
        .map_err(|e| format!("writing {}: {e}", path.display()))?;
    // `mode` applies only to a file this call creates: an existing one is narrowed too,
    // before the key is written into it.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(|e| format!("restricting {}: {e}", path.display()))?;
    }
    f.write_all(contents.as_bytes())
        .map_err(|e| format!("writing {}: {e}", path.display()))
}
