//! Reading key material: PEM and DER certificates, CRLs, PKCS#12 files.

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};

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
