//! The JOSE header of an assertion and the local keys that sign it (RSA, P-256).

use aws_lc_rs::signature::{self, EcdsaKeyPair, RsaKeyPair};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::{Alg, Header, SignerError};
use crate::identity;

/// The base64url JSON header of SPEC §6 for `cert` and `alg`, ending with `.`: `x5t` for
/// RS256, `x5t#S256` otherwise; `kid` when configured; `x5c` (standard base64 DER, leaf
/// first, RFC 7515 §4.1.6) when asked for.
pub(super) fn header_b64(
    cert: &CertificateDer<'_>,
    alg: Alg,
    kid: Option<&str>,
    x5c: Option<&[CertificateDer<'static>]>,
) -> Result<String, SignerError> {
    use base64::engine::general_purpose::STANDARD;
    let x5t = identity::x5t(cert.as_ref());
    let x5t_s256 = identity::x5t_s256(cert.as_ref());
    let header = Header {
        alg: alg.as_str(),
        typ: "JWT",
        kid,
        x5t: (alg == Alg::Rs256).then_some(x5t.as_str()),
        x5t_s256: (alg != Alg::Rs256).then_some(x5t_s256.as_str()),
        x5c: x5c.map(|chain| chain.iter().map(|c| STANDARD.encode(c)).collect()),
    };
    let header_json =
        serde_json::to_vec(&header).map_err(|e| SignerError::NotRsa(e.to_string()))?;
    let mut header_b64 = URL_SAFE_NO_PAD.encode(header_json);
    header_b64.push('.');
    Ok(header_b64)
}

/// HSM and vault keys sign RS256 and PS256 only.
pub(super) fn remote_alg(alg: Alg) -> Result<(), SignerError> {
    if alg == Alg::Es256 {
        return Err(SignerError::KeyAlg(
            "ES256 is available for key files and PKCS#12 only; PKCS#11 and Key Vault credentials sign RS256 or PS256".into(),
        ));
    }
    Ok(())
}

/// An RSA key in PKCS#8 or PKCS#1, at least 2048 bits.
pub(super) fn rsa_key(key: &PrivateKeyDer<'_>) -> Result<RsaKeyPair, SignerError> {
    let key = match key {
        PrivateKeyDer::Pkcs8(k) => RsaKeyPair::from_pkcs8(k.secret_pkcs8_der()),
        PrivateKeyDer::Pkcs1(k) => RsaKeyPair::from_der(k.secret_pkcs1_der()),
        _ => return Err(SignerError::NotRsa("SEC1 (EC) key".into())),
    }
    .map_err(|e| SignerError::NotRsa(e.to_string()))?;
    let bits = key.public_modulus_len() * 8;
    if bits < 2048 {
        return Err(SignerError::TooShort(bits));
    }
    Ok(key)
}

/// A P-256 key in PKCS#8 or SEC1, for a certificate on P-256.
pub(super) fn ec_key(
    key: &PrivateKeyDer<'_>,
    cert: &x509_parser::certificate::X509Certificate<'_>,
) -> Result<EcdsaKeyPair, SignerError> {
    let curve = crate::jwk::curve_oid(cert.public_key());
    if curve != crate::jwk::P256 {
        return Err(SignerError::KeyAlg(format!(
            "ES256 needs a P-256 key; the certificate's curve is {curve}"
        )));
    }
    let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
    match key {
        PrivateKeyDer::Pkcs8(k) => EcdsaKeyPair::from_pkcs8(alg, k.secret_pkcs8_der()),
        PrivateKeyDer::Sec1(k) => EcdsaKeyPair::from_private_key_der(alg, k.secret_sec1_der()),
        _ => {
            return Err(SignerError::KeyAlg(
                "an RSA key for an EC certificate".into(),
            ))
        }
    }
    .map_err(|e| SignerError::KeyAlg(format!("the EC key cannot be read: {e}")))
}
