//! Verifying an identity provider's JWT access tokens against its published keys (JWKS):
//! what binding's registration mode needs (SPEC §10). Pure: fetching the keys is
//! [`crate::upstream`]'s job.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{Map, Value};

/// Longest token considered (Entra's are 1–3 KB).
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// Largest JWKS document read.
pub const MAX_JWKS_BYTES: usize = 256 * 1024;
/// Most keys kept from one JWKS.
pub const MAX_KEYS: usize = 64;

/// Why a token is not a valid JWT of the issuer. `Display` is safe to tell a caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// Not three base64url segments with JSON header and claims.
    #[error("the token is not a JWT: {0}")]
    Malformed(&'static str),
    /// An algorithm the gateway does not verify (`none`, HMAC, unknown).
    #[error("the token's algorithm is not accepted")]
    Algorithm,
    /// No published key has the token's `kid` (and algorithm).
    #[error("the token's signing key is not published by the identity provider")]
    UnknownKey,
    /// The signature does not verify.
    #[error("the token's signature does not verify")]
    Signature,
}

/// Signature algorithms verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    /// RSASSA-PKCS1-v1_5 with SHA-256 (Entra).
    Rs256,
    /// … SHA-384.
    Rs384,
    /// … SHA-512.
    Rs512,
    /// RSASSA-PSS with SHA-256.
    Ps256,
    /// ECDSA P-256 with SHA-256.
    Es256,
    /// ECDSA P-384 with SHA-384.
    Es384,
}

impl Alg {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "RS256" => Self::Rs256,
            "RS384" => Self::Rs384,
            "RS512" => Self::Rs512,
            "PS256" => Self::Ps256,
            "ES256" => Self::Es256,
            "ES384" => Self::Es384,
            _ => return None,
        })
    }

    fn is_rsa(self) -> bool {
        matches!(self, Self::Rs256 | Self::Rs384 | Self::Rs512 | Self::Ps256)
    }
}

/// A parsed, not yet verified, JWT.
#[derive(Debug)]
pub struct Jwt<'t> {
    alg: Alg,
    kid: Option<String>,
    signed: &'t str,
    signature: Vec<u8>,
    /// The claims (unverified until [`KeySet::verify`] succeeds).
    pub claims: Map<String, Value>,
}

impl<'t> Jwt<'t> {
    /// Parses a compact JWS carrying JSON claims.
    pub fn parse(token: &'t str) -> Result<Self, JwtError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(JwtError::Malformed("too long"));
        }
        let mut parts = token.split('.');
        let (Some(h), Some(c), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtError::Malformed("expected three dot-separated parts"));
        };
        let decode = |part: &str| {
            URL_SAFE_NO_PAD
                .decode(part)
                .map_err(|_| JwtError::Malformed("a part is not base64url"))
        };
        let header: Value = serde_json::from_slice(&decode(h)?)
            .map_err(|_| JwtError::Malformed("the header is not JSON"))?;
        let Value::Object(claims) = serde_json::from_slice(&decode(c)?)
            .map_err(|_| JwtError::Malformed("the claims are not JSON"))?
        else {
            return Err(JwtError::Malformed("the claims are not a JSON object"));
        };
        let alg = header
            .get("alg")
            .and_then(Value::as_str)
            .and_then(Alg::parse)
            .ok_or(JwtError::Algorithm)?;
        let kid = header
            .get("kid")
            .and_then(Value::as_str)
            .map(str::to_string);
        if header.get("crit").is_some() {
            return Err(JwtError::Malformed(
                "critical header parameters are not understood",
            ));
        }
        Ok(Self {
            alg,
            kid,
            signed: &token[..h.len() + 1 + c.len()],
            signature: decode(s)?,
            claims,
        })
    }

    /// The `kid` of the header.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// A string claim.
    pub fn str_claim(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(Value::as_str)
    }

    /// A numeric date claim (seconds), as a whole number.
    pub fn time_claim(&self, name: &str) -> Option<i64> {
        let v = self.claims.get(name)?;
        v.as_i64().or_else(|| v.as_f64().map(|f| f as i64))
    }
}

#[derive(Debug)]
enum PublicKey {
    Rsa { n: Vec<u8>, e: Vec<u8> },
    Ec { point: Vec<u8>, p384: bool },
}

#[derive(Debug)]
struct Jwk {
    kid: Option<String>,
    alg: Option<Alg>,
    key: PublicKey,
}

/// Published signing keys.
#[derive(Debug, Default)]
pub struct KeySet {
    keys: Vec<Jwk>,
}

impl KeySet {
    /// Reads a JWKS document; keys of unknown types, other uses, or malformed ones are
    /// skipped; at most [`MAX_KEYS`] are kept.
    pub fn from_json(bytes: &[u8]) -> Result<Self, JwtError> {
        if bytes.len() > MAX_JWKS_BYTES {
            return Err(JwtError::Malformed("the key set is too large"));
        }
        let doc: Value = serde_json::from_slice(bytes)
            .map_err(|_| JwtError::Malformed("the key set is not JSON"))?;
        let list = doc
            .get("keys")
            .and_then(Value::as_array)
            .ok_or(JwtError::Malformed("the key set has no \"keys\" array"))?;
        let keys = list.iter().filter_map(jwk).take(MAX_KEYS).collect();
        Ok(Self { keys })
    }

    /// Whether a key with `kid` is published (any key when the token names none).
    pub fn has(&self, kid: Option<&str>) -> bool {
        match kid {
            None => !self.keys.is_empty(),
            Some(k) => self.keys.iter().any(|j| j.kid.as_deref() == Some(k)),
        }
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when no key was usable.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Verifies the signature of `jwt` with the key its `kid` names (every key of its type
    /// when it names none).
    pub fn verify(&self, jwt: &Jwt<'_>) -> Result<(), JwtError> {
        let candidates = self.keys.iter().filter(|k| {
            k.alg.is_none_or(|a| a == jwt.alg)
                && match (&jwt.kid, &k.kid) {
                    (Some(want), Some(have)) => want == have,
                    (Some(_), None) => false,
                    (None, _) => true,
                }
                && matches!(
                    (&k.key, jwt.alg.is_rsa()),
                    (PublicKey::Rsa { .. }, true) | (PublicKey::Ec { .. }, false)
                )
        });
        let mut any = false;
        for k in candidates {
            any = true;
            if verify_with(&k.key, jwt.alg, jwt.signed.as_bytes(), &jwt.signature) {
                return Ok(());
            }
        }
        Err(if any {
            JwtError::Signature
        } else {
            JwtError::UnknownKey
        })
    }
}

fn jwk(v: &Value) -> Option<Jwk> {
    let field = |name: &str| v.get(name).and_then(Value::as_str);
    let bytes = |name: &str| field(name).and_then(|s| URL_SAFE_NO_PAD.decode(s).ok());
    if field("use").is_some_and(|u| u != "sig") {
        return None;
    }
    let key = match field("kty")? {
        "RSA" => PublicKey::Rsa {
            n: bytes("n")?,
            e: bytes("e")?,
        },
        "EC" => {
            let p384 = match field("crv")? {
                "P-256" => false,
                "P-384" => true,
                _ => return None,
            };
            let (x, y) = (bytes("x")?, bytes("y")?);
            let len = if p384 { 48 } else { 32 };
            if x.len() != len || y.len() != len {
                return None;
            }
            let mut point = Vec::with_capacity(1 + 2 * len);
            point.push(4);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            PublicKey::Ec { point, p384 }
        }
        _ => return None,
    };
    let alg = match field("alg") {
        None => None,
        Some(a) => Some(Alg::parse(a)?),
    };
    Some(Jwk {
        kid: field("kid").map(str::to_string),
        alg,
        key,
    })
}

fn verify_with(key: &PublicKey, alg: Alg, message: &[u8], signature: &[u8]) -> bool {
    use aws_lc_rs::signature as sig;
    match key {
        PublicKey::Rsa { n, e } => {
            let params: &sig::RsaParameters = match alg {
                Alg::Rs256 => &sig::RSA_PKCS1_2048_8192_SHA256,
                Alg::Rs384 => &sig::RSA_PKCS1_2048_8192_SHA384,
                Alg::Rs512 => &sig::RSA_PKCS1_2048_8192_SHA512,
                Alg::Ps256 => &sig::RSA_PSS_2048_8192_SHA256,
                Alg::Es256 | Alg::Es384 => return false,
            };
            sig::RsaPublicKeyComponents { n, e }
                .verify(params, message, signature)
                .is_ok()
        }
        PublicKey::Ec { point, p384 } => {
            let params: &'static dyn sig::VerificationAlgorithm = match (alg, p384) {
                (Alg::Es256, false) => &sig::ECDSA_P256_SHA256_FIXED,
                (Alg::Es384, true) => &sig::ECDSA_P384_SHA384_FIXED,
                _ => return false,
            };
            sig::UnparsedPublicKey::new(params, point)
                .verify(message, signature)
                .is_ok()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING};

    fn es256(claims: &str, kid: &str) -> (String, String) {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
        let point = pair.public_key().as_ref();
        let jwks = format!(
            r#"{{"keys":[{{"kty":"EC","crv":"P-256","kid":"{kid}","x":"{}","y":"{}"}}]}}"#,
            URL_SAFE_NO_PAD.encode(&point[1..33]),
            URL_SAFE_NO_PAD.encode(&point[33..])
        );
        let mut jwt = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"ES256","kid":"{kid}"}}"#));
        jwt.push('.');
        jwt.push_str(&URL_SAFE_NO_PAD.encode(claims));
        let s = pair.sign(&rng, jwt.as_bytes()).unwrap();
        jwt.push('.');
        jwt.push_str(&URL_SAFE_NO_PAD.encode(s.as_ref()));
        (jwt, jwks)
    }

    #[test]
    fn a_signed_token_verifies_and_a_changed_one_does_not() {
        let (jwt, jwks) = es256(r#"{"azp":"c","exp":99}"#, "k1");
        let keys = KeySet::from_json(jwks.as_bytes()).unwrap();
        let parsed = Jwt::parse(&jwt).unwrap();
        assert_eq!(keys.verify(&parsed), Ok(()));
        assert_eq!(parsed.str_claim("azp"), Some("c"));
        assert_eq!(parsed.time_claim("exp"), Some(99));
        // Claims swapped under the same signature.
        let mut parts: Vec<&str> = jwt.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(r#"{"azp":"d","exp":99}"#);
        parts[1] = &forged;
        let forged = parts.join(".");
        assert_eq!(
            keys.verify(&Jwt::parse(&forged).unwrap()),
            Err(JwtError::Signature)
        );
        // Another key set does not know the kid.
        let (_, other) = es256("{}", "k2");
        let other = KeySet::from_json(other.as_bytes()).unwrap();
        assert_eq!(other.verify(&parsed), Err(JwtError::UnknownKey));
    }

    #[test]
    fn unsigned_and_malformed_tokens_are_refused() {
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
            URL_SAFE_NO_PAD.encode("{}")
        );
        assert_eq!(Jwt::parse(&none).unwrap_err(), JwtError::Algorithm);
        let hs = format!(
            "{}.{}.c2ln",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256"}"#),
            URL_SAFE_NO_PAD.encode("{}")
        );
        assert_eq!(Jwt::parse(&hs).unwrap_err(), JwtError::Algorithm);
        for bad in ["", "a.b", "a.b.c.d", "!!.e30.e30", "e30.W10.e30"] {
            assert!(
                matches!(Jwt::parse(bad), Err(JwtError::Malformed(_))),
                "{bad}"
            );
        }
        assert!(KeySet::from_json(b"[]").is_err());
        assert!(
            KeySet::from_json(br#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#)
                .unwrap()
                .is_empty()
        );
    }
}
