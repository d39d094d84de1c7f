//! The `client_assertion` the gateway signs (RFC 7523, Entra's certificate credential format).
//!
//! The RSA key is parsed once at load and the JWT header is encoded once; a signature per
//! request is the only per-request cryptography.

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::signature::{self, EcdsaKeyPair, RsaKeyPair};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Serialize;

use crate::identity;

/// `client_assertion_type` for a JWT client assertion (RFC 7523 §2.2).
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Lifetime of an assertion: `exp` = now + 5 min (SPEC §6).
pub const LIFETIME_SECS: u64 = 300;

/// Signature algorithm of the assertion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    /// RSASSA-PKCS1-v1_5 with SHA-256, header `x5t` (SHA-1 thumbprint).
    Rs256,
    /// RSASSA-PSS with SHA-256, header `x5t#S256`.
    Ps256,
    /// ECDSA on P-256 with SHA-256 (a P-256 key; generic upstreams), header `x5t#S256`.
    Es256,
}

impl Alg {
    /// Parses `"RS256"` or `"PS256"`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "RS256" => Some(Self::Rs256),
            "PS256" => Some(Self::Ps256),
            "ES256" => Some(Self::Es256),
            _ => None,
        }
    }

    /// The JOSE name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Ps256 => "PS256",
            Self::Es256 => "ES256",
        }
    }
}

/// Why a credential could not be turned into a signer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignerError {
    /// The key is not an RSA key in PKCS#8 or PKCS#1.
    #[error("the key is not an RSA private key (PKCS#8 or PKCS#1): {0}; Entra accepts RSA credentials only")]
    NotRsa(String),
    /// The key is shorter than 2048 bits.
    #[error("the RSA key has {0} bits; at least 2048 are required")]
    TooShort(usize),
    /// The key does not belong to the certificate.
    #[error("the private key does not match the certificate's public key")]
    Mismatch,
    /// The certificate could not be read.
    #[error("the certificate cannot be read: {0}")]
    BadCertificate(String),
    /// A key outside the process (HSM) failed.
    #[error("{0}")]
    Remote(String),
    /// The federated token file cannot be used.
    #[error("federated token file {0}")]
    Federated(String),
    /// The key does not fit the algorithm asked for.
    #[error("{0}")]
    KeyAlg(String),
}

mod federated;
mod keys;
mod reuse;
pub use federated::FederatedToken;
use keys::{ec_key, header_b64, remote_alg, rsa_key};
pub use reuse::{AssertionCache, REUSE_MARGIN_SECS};

/// A key held in this process (a key file or PKCS#12).
enum LocalKey {
    /// RSA (RS256, PS256).
    Rsa(RsaKeyPair),
    /// ECDSA P-256 (ES256).
    Ec(EcdsaKeyPair),
}

/// What produces the assertions of one credential.
enum Backend {
    /// A key held in this process.
    Local(LocalKey),
    /// Entra workload identity federation: the assertion is a token from a file (SPEC §12).
    Federated(FederatedToken),
    /// A key on a PKCS#11 token: it signs inside the device.
    Pkcs11(crate::pkcs11::Pkcs11Key),
    /// A key in Azure Key Vault / Managed HSM: it signs in the vault.
    Vault(Box<crate::keyvault::VaultKey>),
}

/// Why no assertion could be made; `retry_after` when the signer asked to wait (Key Vault 429).
#[derive(Debug, Clone)]
pub struct SignFailure {
    /// Seconds to wait, when known.
    pub retry_after: Option<u64>,
}

/// Signs client assertions for one app-registration credential.
pub struct Signer {
    backend: Backend,
    alg: Alg,
    rng: SystemRandom,
    /// base64url of the JSON header, ending with `.`.
    header_b64: String,
    /// The credential certificate, DER.
    pub cert: CertificateDer<'static>,
    /// `x5t` of the certificate.
    pub x5t: String,
    /// `x5t#S256` of the certificate.
    pub x5t_s256: String,
    /// Certificate notAfter, seconds since the epoch.
    pub not_after: i64,
    /// Its `[credentials.NAME]` name (the `credential` label of `signatures_total`).
    pub name: String,
    /// `kid` written into the header, when configured.
    pub kid: Option<String>,
    /// The certificate file's chain, leaf first (`x5c`, `jwks`).
    pub chain: Vec<CertificateDer<'static>>,
    /// Whether the header carries the chain (`x5c`).
    pub x5c: bool,
}

/// Called once per signature made: its result (`success`, `failure`, `throttled`) and time.
pub type Observe<'a> = &'a (dyn Fn(&'static str, std::time::Duration) + Send + Sync);

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        let mut d = f.debug_struct("Signer");
        d.field("alg", &self.alg).field("x5t", &self.x5t);
        if let Backend::Federated(t) = &self.backend {
            d.field("federated_token_file", &t.path);
        }
        d.finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct Header<'a> {
    alg: &'a str,
    typ: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    kid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    x5t: Option<&'a str>,
    #[serde(rename = "x5t#S256", skip_serializing_if = "Option::is_none")]
    x5t_s256: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    x5c: Option<Vec<String>>,
}

#[derive(Serialize)]
struct Claims<'a> {
    aud: &'a str,
    iss: &'a str,
    sub: &'a str,
    jti: &'a str,
    nbf: u64,
    iat: u64,
    exp: u64,
}

impl Signer {
    /// Builds a signer from a certificate and its private key: RSA (at least 2048 bits) for
    /// RS256/PS256, P-256 for ES256; the key must match the certificate.
    pub fn new(
        cert: CertificateDer<'static>,
        key: &PrivateKeyDer<'_>,
        alg: Alg,
    ) -> Result<Self, SignerError> {
        let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref())
            .map_err(|e| SignerError::BadCertificate(e.to_string()))?;
        let local = match (parsed.public_key().parsed(), alg) {
            (Ok(x509_parser::public_key::PublicKey::RSA(_)), Alg::Es256) => {
                return Err(SignerError::KeyAlg(
                    "alg ES256 needs a P-256 (EC) key; this certificate holds an RSA key: use RS256 or PS256".into(),
                ))
            }
            (Ok(x509_parser::public_key::PublicKey::RSA(rsa)), _) => {
                // Judge the certificate's key first: aws-lc-rs refuses short RSA keys
                // itself, with a message that would not say why.
                let bits = rsa.key_size();
                if bits < 2048 {
                    return Err(SignerError::TooShort(bits));
                }
                LocalKey::Rsa(rsa_key(key)?)
            }
            (Ok(x509_parser::public_key::PublicKey::EC(_)), Alg::Es256) => {
                LocalKey::Ec(ec_key(key, &parsed)?)
            }
            (Ok(other), _) => {
                let kind = match other {
                    x509_parser::public_key::PublicKey::EC(_) => {
                        "an EC key (alg = \"ES256\" signs with it, for generic upstreams)"
                    }
                    _ => "not an RSA key",
                };
                return Err(SignerError::NotRsa(format!("the certificate holds {kind}")));
            }
            (Err(e), _) => return Err(SignerError::BadCertificate(e.to_string())),
        };
        let cert_public_key = parsed.public_key().subject_public_key.data.as_ref();
        let key_public: &[u8] = match &local {
            LocalKey::Rsa(k) => aws_lc_rs::signature::KeyPair::public_key(k).as_ref(),
            LocalKey::Ec(k) => aws_lc_rs::signature::KeyPair::public_key(k).as_ref(),
        };
        if cert_public_key != key_public {
            return Err(SignerError::Mismatch);
        }
        let not_after = parsed.validity().not_after.timestamp();
        Self::certified(Backend::Local(local), cert, alg, not_after)
    }

    /// A signer of `backend` for certificate `cert` (expiring at `not_after`): the header
    /// without `kid` or `x5c` ([`Self::with_header`] sets those), the chain the leaf alone.
    fn certified(
        backend: Backend,
        cert: CertificateDer<'static>,
        alg: Alg,
        not_after: i64,
    ) -> Result<Self, SignerError> {
        Ok(Self {
            backend,
            alg,
            rng: SystemRandom::new(),
            header_b64: header_b64(&cert, alg, None, None)?,
            x5t: identity::x5t(cert.as_ref()),
            x5t_s256: identity::x5t_s256(cert.as_ref()),
            chain: vec![cert.clone()],
            cert,
            not_after,
            name: String::new(),
            kid: None,
            x5c: false,
        })
    }

    /// notAfter of a credential certificate.
    fn not_after_of(cert: &CertificateDer<'_>) -> Result<i64, SignerError> {
        x509_parser::parse_x509_certificate(cert.as_ref())
            .map(|(_, parsed)| parsed.validity().not_after.timestamp())
            .map_err(|e| SignerError::BadCertificate(e.to_string()))
    }

    /// Sets the header options of `[credentials.NAME]`: `kid`, the certificate file's whole
    /// `chain` (leaf first, the leaf being this signer's certificate) and whether the header
    /// carries it (`x5c`).
    pub fn with_header(
        mut self,
        kid: Option<String>,
        chain: Vec<CertificateDer<'static>>,
        x5c: bool,
    ) -> Result<Self, SignerError> {
        if !chain.is_empty() {
            self.chain = chain;
        }
        self.kid = kid;
        self.x5c = x5c;
        let x5c_chain = x5c.then_some(self.chain.as_slice());
        self.header_b64 = header_b64(&self.cert, self.alg, self.kid.as_deref(), x5c_chain)?;
        Ok(self)
    }

    /// A credential whose assertion is the token in `path` (workload identity federation):
    /// nothing is signed, there is no certificate. The file must hold a token now.
    pub fn federated(path: std::path::PathBuf) -> Result<Self, SignerError> {
        let token = FederatedToken::new(path);
        token.current()?;
        Ok(Self {
            backend: Backend::Federated(token),
            alg: Alg::Rs256,
            rng: SystemRandom::new(),
            header_b64: String::new(),
            cert: CertificateDer::from(Vec::new()),
            x5t: String::new(),
            x5t_s256: String::new(),
            not_after: i64::MAX,
            name: String::new(),
            kid: None,
            chain: Vec::new(),
            x5c: false,
        })
    }

    /// A signer whose key is on a PKCS#11 token; `cert` is the credential certificate
    /// registered in Entra. A test signature is verified against the certificate, so that a
    /// key that does not match it is found before serving.
    pub fn pkcs11(
        cert: CertificateDer<'static>,
        key: crate::pkcs11::Pkcs11Key,
        alg: Alg,
    ) -> Result<Self, SignerError> {
        remote_alg(alg)?;
        let not_after = Self::not_after_of(&cert)?;
        let signer = Self::certified(Backend::Pkcs11(key), cert, alg, not_after)?;
        let probe = signer
            .sign_at("mtls-gateway-check", "https://check.invalid/token", 0)
            .map_err(|_| SignerError::Remote("the test signature failed".into()))?;
        if !signer.verifies(&probe) {
            return Err(SignerError::Mismatch);
        }
        Ok(signer)
    }

    /// A signer whose key is in Key Vault; `cert` is the credential certificate registered
    /// in Entra (its thumbprint goes in the header).
    pub fn vault(
        cert: CertificateDer<'static>,
        key: crate::keyvault::VaultKey,
        alg: Alg,
    ) -> Result<Self, SignerError> {
        remote_alg(alg)?;
        let not_after = Self::not_after_of(&cert)?;
        Self::certified(Backend::Vault(Box::new(key)), cert, alg, not_after)
    }

    /// Signs one test assertion and verifies it against the certificate (what `check` does
    /// for credentials not probed at load: Key Vault needs the network and a vault token).
    pub async fn probe(self: &std::sync::Arc<Self>) -> Result<(), String> {
        if self.federated_token().is_some() {
            return Ok(());
        }
        let jwt = self
            .sign_async(
                "mtls-gateway-check",
                "https://check.invalid/token",
                0,
                &|_, _| {},
            )
            .await
            .map_err(|f| match f.retry_after {
                Some(s) => format!("the test signature was throttled (retry after {s} s)"),
                None => "the test signature failed (see the log for why: network, permission, key)"
                    .into(),
            })?;
        if self.verifies(&jwt) {
            Ok(())
        } else {
            Err(
                "the key's signature does not verify with the certificate: they do not match"
                    .into(),
            )
        }
    }

    /// Whether `jwt`'s signature verifies with the certificate's public key.
    fn verifies(&self, jwt: &str) -> bool {
        let Ok((_, parsed)) = x509_parser::parse_x509_certificate(self.cert.as_ref()) else {
            return false;
        };
        let public = &parsed.public_key().subject_public_key.data;
        let Some((signed, sig)) = jwt.rsplit_once('.') else {
            return false;
        };
        let Ok(sig) = URL_SAFE_NO_PAD.decode(sig) else {
            return false;
        };
        let params: &dyn signature::VerificationAlgorithm = match self.alg {
            Alg::Rs256 => &signature::RSA_PKCS1_2048_8192_SHA256,
            Alg::Ps256 => &signature::RSA_PSS_2048_8192_SHA256,
            Alg::Es256 => &signature::ECDSA_P256_SHA256_FIXED,
        };
        signature::UnparsedPublicKey::new(params, public.as_ref())
            .verify(signed.as_bytes(), &sig)
            .is_ok()
    }

    /// The `backend` label of the signature metrics.
    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Local(_) => "local",
            Backend::Pkcs11(_) => "pkcs11",
            Backend::Vault(_) => "key_vault",
            Backend::Federated(_) => "federated",
        }
    }

    /// Whether the key signs outside this process (an HSM, a vault).
    pub fn is_remote(&self) -> bool {
        matches!(self.backend, Backend::Pkcs11(_) | Backend::Vault(_))
    }

    /// An assertion made off the request threads: local and PKCS#11 signatures on the
    /// blocking pool, Key Vault's over HTTPS, a federated token read from its file.
    pub async fn sign_async(
        self: &std::sync::Arc<Self>,
        client_id: &str,
        aud: &str,
        now: u64,
        observe: Observe<'_>,
    ) -> Result<String, SignFailure> {
        let started = std::time::Instant::now();
        let result = self.sign_inner(client_id, aud, now).await;
        let label = match &result {
            Ok(_) => "success",
            Err(SignFailure {
                retry_after: Some(_),
            }) => "throttled",
            Err(_) => "failure",
        };
        observe(label, started.elapsed());
        result
    }

    async fn sign_inner(
        self: &std::sync::Arc<Self>,
        client_id: &str,
        aud: &str,
        now: u64,
    ) -> Result<String, SignFailure> {
        let fail = SignFailure { retry_after: None };
        match &self.backend {
            Backend::Federated(t) => t.current().map(|t| t.to_string()).map_err(|_| fail),
            Backend::Vault(vault) => {
                let input = self
                    .signing_input(client_id, aud, now)
                    .map_err(|_| fail.clone())?;
                match vault.sign(self.alg.as_str(), input.as_bytes()).await {
                    Ok(sig) => {
                        let mut jwt = input;
                        jwt.push('.');
                        URL_SAFE_NO_PAD.encode_string(sig, &mut jwt);
                        Ok(jwt)
                    }
                    Err(crate::keyvault::VaultError::Throttled(secs)) => Err(SignFailure {
                        retry_after: Some(secs),
                    }),
                    Err(e) => {
                        tracing::warn!(error = %e, "Key Vault signature failed");
                        Err(fail)
                    }
                }
            }
            // On a current-thread runtime (one CPU) the blocking pool would only share that
            // CPU and add a thread hand-off per signature: a local key signs in place there.
            Backend::Local(_)
                if tokio::runtime::Handle::try_current().is_ok_and(|h| {
                    h.runtime_flavor() == tokio::runtime::RuntimeFlavor::CurrentThread
                }) =>
            {
                self.sign_at(client_id, aud, now).map_err(|_| fail)
            }
            Backend::Local(_) | Backend::Pkcs11(_) => {
                let signer = self.clone();
                let (client_id, aud) = (client_id.to_string(), aud.to_string());
                tokio::task::spawn_blocking(move || signer.sign_at(&client_id, &aud, now))
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .ok_or(fail)
            }
        }
    }

    /// `header.claims` of a fresh assertion, base64url, ready to be signed.
    fn signing_input(
        &self,
        client_id: &str,
        aud: &str,
        now: u64,
    ) -> Result<String, aws_lc_rs::error::Unspecified> {
        let jti = uuid_v4(&self.rng)?;
        let claims = Claims {
            aud,
            iss: client_id,
            sub: client_id,
            jti: &jti,
            nbf: now,
            iat: now,
            exp: now + LIFETIME_SECS,
        };
        let claims_json = serde_json::to_vec(&claims).map_err(|_| aws_lc_rs::error::Unspecified)?;
        let mut jwt =
            String::with_capacity(self.header_b64.len() + claims_json.len() * 4 / 3 + 350);
        jwt.push_str(&self.header_b64);
        URL_SAFE_NO_PAD.encode_string(claims_json, &mut jwt);
        Ok(jwt)
    }

    /// The federated token file, when this credential is one.
    pub fn federated_token(&self) -> Option<&FederatedToken> {
        match &self.backend {
            Backend::Federated(t) => Some(t),
            Backend::Local(_) | Backend::Pkcs11(_) | Backend::Vault(_) => None,
        }
    }

    /// The signature algorithm.
    pub fn alg(&self) -> Alg {
        self.alg
    }

    /// Signs a fresh assertion for `client_id` with audience `aud`, issued now.
    pub fn sign(
        &self,
        client_id: &str,
        aud: &str,
    ) -> Result<String, aws_lc_rs::error::Unspecified> {
        let now = u64::try_from(crate::encoding::now_secs()).unwrap_or(0);
        self.sign_at(client_id, aud, now)
    }

    /// Signs an assertion issued at `now` (seconds since the epoch).
    pub fn sign_at(
        &self,
        client_id: &str,
        aud: &str,
        now: u64,
    ) -> Result<String, aws_lc_rs::error::Unspecified> {
        if let Backend::Federated(t) = &self.backend {
            return t
                .current()
                .map(|t| t.to_string())
                .map_err(|_| aws_lc_rs::error::Unspecified);
        }
        let mut jwt = self.signing_input(client_id, aud, now)?;
        let sig = match &self.backend {
            Backend::Local(LocalKey::Rsa(key)) => {
                let padding: &'static dyn signature::RsaEncoding = match self.alg {
                    Alg::Ps256 => &signature::RSA_PSS_SHA256,
                    Alg::Rs256 | Alg::Es256 => &signature::RSA_PKCS1_SHA256,
                };
                let mut sig = vec![0u8; key.public_modulus_len()];
                key.sign(padding, &self.rng, jwt.as_bytes(), &mut sig)?;
                sig
            }
            // JWS ES256 is the fixed-length r || s (RFC 7518 §3.4), not DER.
            Backend::Local(LocalKey::Ec(key)) => {
                key.sign(&self.rng, jwt.as_bytes())?.as_ref().to_vec()
            }
            Backend::Pkcs11(key) => {
                let scheme = match self.alg {
                    Alg::Ps256 => crate::pkcs11::Scheme::PssSha256,
                    Alg::Rs256 | Alg::Es256 => crate::pkcs11::Scheme::Pkcs1Sha256,
                };
                key.sign(scheme, jwt.as_bytes()).map_err(|e| {
                    tracing::warn!(error = %e, "PKCS#11 signature failed");
                    aws_lc_rs::error::Unspecified
                })?
            }
            // Remote over HTTPS: only through `sign_async`.
            Backend::Federated(_) | Backend::Vault(_) => return Err(aws_lc_rs::error::Unspecified),
        };
        jwt.push('.');
        URL_SAFE_NO_PAD.encode_string(sig, &mut jwt);
        Ok(jwt)
    }
}

/// A random (version 4) UUID, lower-case hyphenated.
pub fn uuid_v4(rng: &dyn SecureRandom) -> Result<String, aws_lc_rs::error::Unspecified> {
    let mut b = [0u8; 16];
    rng.fill(&mut b)?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = identity::hex_lower(&b);
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls_pki_types::pem::PemObject as _;

    /// An RS256 signer with a fresh RSA-2048 credential.
    pub(super) fn signer() -> Signer {
        let pem = crate::pki::signing_credential("test").unwrap();
        let cert = CertificateDer::from_pem_slice(pem.cert.as_bytes()).unwrap();
        let key = PrivateKeyDer::from_pem_slice(pem.key.as_bytes()).unwrap();
        Signer::new(cert, &key, Alg::Rs256).unwrap()
    }

    fn header_of(jwt: &str) -> serde_json::Value {
        let h = jwt.split('.').next().unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).unwrap()).unwrap()
    }

    #[test]
    fn headers_carry_kid_and_x5c_only_when_configured() {
        let plain = signer();
        let h = header_of(&plain.sign("c", "https://idp/token").unwrap());
        assert_eq!(h["alg"], "RS256");
        assert!(h["x5t"].is_string() && h.get("kid").is_none() && h.get("x5c").is_none());
        let chain = vec![plain.cert.clone(), plain.cert.clone()];
        let with = signer()
            .with_header(Some("key-1".into()), chain.clone(), true)
            .unwrap();
        let jwt = with.sign("c", "https://idp/token").unwrap();
        let h = header_of(&jwt);
        assert_eq!(h["kid"], "key-1");
        let x5c: Vec<String> = chain
            .iter()
            .map(|c| base64::engine::general_purpose::STANDARD.encode(c))
            .collect();
        assert_eq!(h["x5c"], serde_json::json!(x5c));
        assert!(with.verifies(&jwt));
        let no_x5c = signer()
            .with_header(Some("k".into()), chain, false)
            .unwrap();
        assert!(header_of(&no_x5c.sign("c", "a").unwrap())
            .get("x5c")
            .is_none());
    }

    #[test]
    fn es256_signs_with_a_p256_key_in_jws_form_and_rsa_algs_refuse_it() {
        let pem = crate::pki::self_signed_client("es256").unwrap();
        let cert = CertificateDer::from_pem_slice(pem.cert.as_bytes()).unwrap();
        let key = PrivateKeyDer::from_pem_slice(pem.key.as_bytes()).unwrap();
        let es = Signer::new(cert.clone(), &key, Alg::Es256).unwrap();
        let jwt = es.sign("c", "https://idp/token").unwrap();
        let h = header_of(&jwt);
        assert_eq!(h["alg"], "ES256");
        assert!(h["x5t#S256"].is_string() && h.get("x5t").is_none());
        let sig = URL_SAFE_NO_PAD
            .decode(jwt.rsplit('.').next().unwrap())
            .unwrap();
        assert_eq!(sig.len(), 64, "r || s, not DER");
        assert!(es.verifies(&jwt));
        let refused = Signer::new(cert, &key, Alg::Rs256).unwrap_err().to_string();
        assert!(
            refused.contains("Entra accepts RSA credentials only"),
            "{refused}"
        );
        let rsa = crate::pki::signing_credential("rsa").unwrap();
        let rsa_cert = CertificateDer::from_pem_slice(rsa.cert.as_bytes()).unwrap();
        let rsa_key = PrivateKeyDer::from_pem_slice(rsa.key.as_bytes()).unwrap();
        let refused = Signer::new(rsa_cert, &rsa_key, Alg::Es256)
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains("ES256 needs a P-256 (EC) key"),
            "{refused}"
        );
    }

    #[test]
    fn uuids_are_version_4() {
        let id = uuid_v4(&SystemRandom::new()).unwrap();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"));
    }
}
