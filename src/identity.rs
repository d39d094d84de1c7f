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
                .map(|rdn| rdn.iter().map(|(o, v)| (o.as_str(), v))),
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

/// A certificate attribute value: decoded text, or the DER of a value that is not text.
#[derive(Debug, Clone)]
enum Value {
    Text(String),
    Opaque(Vec<u8>),
}

impl<'a> From<&'a Value> for dn::AttrValue<'a> {
    fn from(v: &'a Value) -> Self {
        match v {
            Value::Text(t) => dn::AttrValue::Text(t),
            Value::Opaque(d) => dn::AttrValue::Opaque(d),
        }
    }
}

type Rdns = Vec<Vec<(String, Value)>>;

/// A name's RDNs in DER order as (dotted OID, value) pairs, each value decoded exactly as its
/// ASN.1 tag says (SPEC §5, [`dn::decode_directory_string`]); any other value is opaque.
fn name_rdns(name: &x509_parser::x509::X509Name<'_>) -> Rdns {
    name.iter_rdn()
        .map(|rdn| {
            rdn.iter()
                .map(|ava| {
                    let oid = ava.attr_type().to_id_string();
                    let any = ava.attr_value();
                    let header = &any.header;
                    let universal_primitive = header.class()
                        == x509_parser::der_parser::asn1_rs::Class::Universal
                        && !header.is_constructed();
                    let text = u8::try_from(header.tag().0)
                        .ok()
                        .filter(|_| universal_primitive)
                        .and_then(|tag| dn::decode_directory_string(tag, any.data));
                    let value = match text {
                        Some(t) => Value::Text(t),
                        None => Value::Opaque(der_of(header, any.data)),
                    };
                    (oid, value)
                })
                .collect()
        })
        .collect()
}

/// Re-encodes a value's tag, length and content (DER lengths).
fn der_of(header: &x509_parser::der_parser::asn1_rs::Header<'_>, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 6);
    match header.raw_tag() {
        Some(raw) => out.extend_from_slice(raw),
        None => {
            let class = (header.class() as u8) << 6;
            let constructed = if header.is_constructed() { 0x20 } else { 0 };
            let tag = header.tag().0;
            if tag < 0x1f {
                out.push(class | constructed | tag as u8);
            } else {
                // High tag number form: base-128, most significant group first.
                out.push(class | constructed | 0x1f);
                let groups: Vec<u8> = (0..5)
                    .rev()
                    .map(|i| ((tag >> (7 * i)) & 0x7f) as u8)
                    .skip_while(|g| *g == 0)
                    .collect();
                let last = groups.len().saturating_sub(1);
                for (i, g) in groups.iter().enumerate() {
                    out.push(if i < last { g | 0x80 } else { *g });
                }
            }
        }
    }
    let len = data.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(data);
    out
}

fn rfc4514(rdns: &Rdns) -> String {
    dn::to_rfc4514(
        rdns.iter()
            .map(|rdn| rdn.iter().map(|(o, v)| (o.as_str(), v))),
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

pub use crate::encoding::{hex_lower, hex_upper};

/// base64url (unpadded) of an already computed SHA-256 digest.
pub fn x5t_s256_of_digest(digest: &[u8; 32]) -> String {
    URL_SAFE_NO_PAD.encode(digest)
}
