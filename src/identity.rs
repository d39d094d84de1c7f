//! A client certificate's identity: leaf DER → subject RDNs, SANs, thumbprints, validity.

use std::net::IpAddr;

use aws_lc_rs::digest;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rustls_pki_types::CertificateDer;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::dn::{self, DistinguishedName};

/// What the gateway knows about a leaf certificate, computed once per connection.
#[derive(Debug, Clone)]
pub struct ClientIdentity {
    /// The certificate, DER.
    pub der: CertificateDer<'static>,
    /// Subject as comparable RDNs (DER order).
    pub subject: DistinguishedName,
    /// Subject as an RFC 4514 string, for logs and `thumbprint`.
    pub subject_display: String,
    /// Issuer as an RFC 4514 string.
    pub issuer_display: String,
    /// Subject alternative names.
    pub sans: SubjectAltNames,
    /// SHA-256 of the DER.
    pub sha256: [u8; 32],
    /// `x5t#S256`: base64url SHA-256 of the DER, unpadded (RFC 8705 §3.1).
    pub x5t_s256: String,
    /// notBefore, seconds since the epoch.
    pub not_before: i64,
    /// notAfter, seconds since the epoch.
    pub not_after: i64,
}

/// The SANs that RFC 8705 selectors can name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubjectAltNames {
    /// dNSName entries.
    pub dns: Vec<String>,
    /// uniformResourceIdentifier entries.
    pub uri: Vec<String>,
    /// iPAddress entries (malformed lengths are dropped).
    pub ip: Vec<IpAddr>,
    /// rfc822Name entries.
    pub email: Vec<String>,
}

/// Why a certificate could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// Not a DER X.509 certificate.
    #[error("not a valid X.509 certificate: {0}")]
    Malformed(String),
    /// Bytes follow the certificate.
    #[error("trailing data after the certificate")]
    TrailingData,
}

impl ClientIdentity {
    /// Reads a leaf certificate.
    pub fn from_der(der: CertificateDer<'static>) -> Result<Self, IdentityError> {
        let (rest, cert) = X509Certificate::from_der(der.as_ref())
            .map_err(|e| IdentityError::Malformed(e.to_string()))?;
        if !rest.is_empty() {
            return Err(IdentityError::TrailingData);
        }
        let subject_rdns = name_rdns(cert.subject());
        let subject = DistinguishedName::from_der_order(
            subject_rdns
                .iter()
                .map(|rdn| rdn.iter().map(|(o, v)| (o.as_str(), v.as_str()))),
        );
        let subject_display = rfc4514(&subject_rdns);
        let issuer_display = rfc4514(&name_rdns(cert.issuer()));
        let mut sans = SubjectAltNames::default();
        // A malformed or duplicated SAN extension yields no SANs rather than a guess.
        if let Ok(Some(ext)) = cert.subject_alternative_name() {
            for name in &ext.value.general_names {
                match name {
                    GeneralName::DNSName(d) => sans.dns.push(d.to_string()),
                    GeneralName::URI(u) => sans.uri.push(u.to_string()),
                    GeneralName::RFC822Name(e) => sans.email.push(e.to_string()),
                    GeneralName::IPAddress(bytes) => {
                        if let Ok(v4) = <[u8; 4]>::try_from(*bytes) {
                            sans.ip.push(IpAddr::from(v4));
                        } else if let Ok(v6) = <[u8; 16]>::try_from(*bytes) {
                            sans.ip.push(IpAddr::from(v6));
                        }
                    }
                    _ => {}
                }
            }
        }
        let validity = cert.validity();
        let not_before = validity.not_before.timestamp();
        let not_after = validity.not_after.timestamp();
        let sha256 = sha256(der.as_ref());
        Ok(Self {
            x5t_s256: URL_SAFE_NO_PAD.encode(sha256),
            sha256,
            subject,
            subject_display,
            issuer_display,
            sans,
            not_before,
            not_after,
            der,
        })
    }

    /// Whether `now` (seconds since the epoch) lies within the validity period.
    pub fn valid_at(&self, now: i64) -> Result<(), &'static str> {
        if now < self.not_before {
            Err("the client certificate is not yet valid")
        } else if now > self.not_after {
            Err("the client certificate has expired")
        } else {
            Ok(())
        }
    }
}

type Rdns = Vec<Vec<(String, String)>>;

/// A name's RDNs in DER order as (dotted OID, value) pairs. Values that are not a string
/// type x509-parser can read are kept as `#hex` of their content so they never match by accident.
fn name_rdns(name: &x509_parser::x509::X509Name<'_>) -> Rdns {
    name.iter_rdn()
        .map(|rdn| {
            rdn.iter()
                .map(|ava| {
                    let oid = ava.attr_type().to_id_string();
                    let value = match ava.as_str() {
                        Ok(s) => s.to_string(),
                        Err(_) => bmp_or_hex(ava.attr_value().data),
                    };
                    (oid, value)
                })
                .collect()
        })
        .collect()
}

fn bmp_or_hex(data: &[u8]) -> String {
    if data.len() % 2 == 0 {
        let units: Vec<u16> = data
            .chunks_exact(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]))
            .collect();
        if let Ok(s) = String::from_utf16(&units) {
            return s;
        }
    }
    format!("#{}", hex_lower(data))
}

fn rfc4514(rdns: &Rdns) -> String {
    dn::to_rfc4514(
        rdns.iter()
            .map(|rdn| rdn.iter().map(|(o, v)| (o.as_str(), v.as_str()))),
    )
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, data).as_ref());
    out
}

/// SHA-1 of `data` (certificate thumbprints only; Entra shows and matches them).
pub fn sha1(data: &[u8]) -> [u8; 20] {
    let mut out = [0u8; 20];
    out.copy_from_slice(digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, data).as_ref());
    out
}

/// `x5t`: base64url of the raw SHA-1 digest of the DER (27 characters).
pub fn x5t(der: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(sha1(der))
}

/// `x5t#S256`: base64url of the raw SHA-256 digest of the DER (43 characters).
pub fn x5t_s256(der: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(sha256(der))
}

/// Upper-case hex, as the Entra portal shows a certificate thumbprint.
pub fn hex_upper(bytes: &[u8]) -> String {
    hex_with(bytes, b"0123456789ABCDEF")
}

/// Lower-case hex.
pub fn hex_lower(bytes: &[u8]) -> String {
    hex_with(bytes, b"0123456789abcdef")
}

fn hex_with(bytes: &[u8], digits: &[u8; 16]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(digits[usize::from(b >> 4)]));
        out.push(char::from(digits[usize::from(b & 0x0f)]));
    }
    out
}

/// base64url (unpadded) of an already computed SHA-256 digest.
pub fn x5t_s256_of_digest(digest: &[u8; 32]) -> String {
    URL_SAFE_NO_PAD.encode(digest)
}

#[cfg(test)]
mod tests {
    #[test]
    fn hex_matches_the_format_macro() {
        let bytes: Vec<u8> = (0..=255).collect();
        let expected: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(super::hex_lower(&bytes), expected);
        assert_eq!(super::hex_upper(&bytes), expected.to_uppercase());
    }
}
