//! Public JSON Web Keys of certificates (RFC 7517 / 7518 §6): what `jwks` prints for an
//! identity provider to register, and the RFC 7638 thumbprint `thumbprint` prints for IdPs
//! that derive `kid`s that way. Only public members are ever produced.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde_json::{json, Map, Value};

/// The public key of a certificate, as a JWK's key members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicJwk {
    /// `kty` RSA: modulus and exponent, big-endian without leading zeros.
    Rsa {
        /// `n`.
        n: Vec<u8>,
        /// `e`.
        e: Vec<u8>,
    },
    /// `kty` EC: the curve's name and the point's coordinates (each the curve's size).
    Ec {
        /// `crv`: `P-256`, `P-384` or `P-521`.
        crv: &'static str,
        /// `x`.
        x: Vec<u8>,
        /// `y`.
        y: Vec<u8>,
    },
}

/// The named curve of an EC public key (dotted OID; empty when there is none).
pub fn curve_oid(spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>) -> String {
    spki.algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok())
        .map(|o| o.to_id_string())
        .unwrap_or_default()
}

/// The OID of P-256 (prime256v1).
pub const P256: &str = "1.2.840.10045.3.1.7";

fn strip_zeros(b: &[u8]) -> Vec<u8> {
    let first = b
        .iter()
        .position(|x| *x != 0)
        .unwrap_or(b.len().saturating_sub(1));
    b[first..].to_vec()
}

impl PublicJwk {
    /// The key of certificate `der`; an error names what it is when it is neither RSA nor
    /// EC on a NIST curve.
    pub fn from_certificate(der: &[u8]) -> Result<Self, String> {
        use x509_parser::public_key::PublicKey;
        let (_, cert) = x509_parser::parse_x509_certificate(der)
            .map_err(|e| format!("not a certificate: {e}"))?;
        let spki = cert.public_key();
        match spki
            .parsed()
            .map_err(|e| format!("its public key cannot be read: {e}"))?
        {
            PublicKey::RSA(rsa) => Ok(Self::Rsa {
                n: strip_zeros(rsa.modulus),
                e: strip_zeros(rsa.exponent),
            }),
            PublicKey::EC(point) => {
                let curve = curve_oid(spki);
                let (crv, size) = match curve.as_str() {
                    P256 => ("P-256", 32),
                    "1.3.132.0.34" => ("P-384", 48),
                    "1.3.132.0.35" => ("P-521", 66),
                    other => return Err(format!("an EC key on curve {other}, not P-256/384/521")),
                };
                let bytes = point.data();
                // Uncompressed point: 0x04 || x || y.
                if bytes.len() != 1 + 2 * size || bytes[0] != 4 {
                    return Err("an EC point that is not in uncompressed form".into());
                }
                Ok(Self::Ec {
                    crv,
                    x: bytes[1..1 + size].to_vec(),
                    y: bytes[1 + size..].to_vec(),
                })
            }
            _ => Err("a key that is neither RSA nor EC".into()),
        }
    }

    /// The required members in the lexicographic order RFC 7638 §3.2 hashes them in.
    fn required(&self) -> Vec<(&'static str, String)> {
        let b = |v: &[u8]| URL_SAFE_NO_PAD.encode(v);
        match self {
            Self::Rsa { n, e } => vec![("e", b(e)), ("kty", "RSA".into()), ("n", b(n))],
            Self::Ec { crv, x, y } => vec![
                ("crv", (*crv).to_string()),
                ("kty", "EC".into()),
                ("x", b(x)),
                ("y", b(y)),
            ],
        }
    }

    /// RFC 7638 JWK thumbprint (SHA-256, base64url).
    pub fn thumbprint(&self) -> String {
        let members: Vec<String> = self
            .required()
            .iter()
            .map(|(k, v)| format!("\"{k}\":\"{v}\""))
            .collect();
        let canonical = format!("{{{}}}", members.join(","));
        URL_SAFE_NO_PAD.encode(crate::identity::sha256(canonical.as_bytes()))
    }

    /// The key members as a JSON object.
    pub fn members(&self) -> Map<String, Value> {
        let mut m = Map::new();
        for (k, v) in self.required() {
            m.insert(k.into(), Value::String(v));
        }
        m
    }
}

/// The public JWK of a credential: its key, `kid` when configured, `x5c` (the chain, leaf
/// first, standard base64 DER as RFC 7517 §4.7 says) and `x5t#S256` of the leaf.
pub fn credential_jwk(chain: &[Vec<u8>], kid: Option<&str>) -> Result<Value, String> {
    let leaf = chain.first().ok_or("no certificate")?;
    let mut m = PublicJwk::from_certificate(leaf)?.members();
    if let Some(kid) = kid {
        m.insert("kid".into(), json!(kid));
    }
    m.insert(
        "x5c".into(),
        json!(chain.iter().map(|c| STANDARD.encode(c)).collect::<Vec<_>>()),
    );
    m.insert("x5t#S256".into(), json!(crate::identity::x5t_s256(leaf)));
    Ok(Value::Object(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_7638_example_thumbprint() {
        // RFC 7638 §3.1's RSA key and its published thumbprint.
        let n = URL_SAFE_NO_PAD.decode("0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw").unwrap();
        let e = URL_SAFE_NO_PAD.decode("AQAB").unwrap();
        let jwk = PublicJwk::Rsa { n, e };
        assert_eq!(
            jwk.thumbprint(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn leading_zeros_are_not_part_of_n_or_e() {
        assert_eq!(strip_zeros(&[0, 0, 1, 0]), vec![1, 0]);
        assert_eq!(strip_zeros(&[0]), vec![0]);
    }
}
