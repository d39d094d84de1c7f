//! Client-certificate trust, decided per request (SPEC §5): chain verification against the
//! configuration that serves the request, with its CRLs and intermediates, and the per-connection
//! cache of that verdict. Pure PKI: no sockets, no TLS.

use std::sync::{Arc, Mutex, OnceLock};

use rustls::DistinguishedName;
use rustls_pki_types::{
    CertificateDer, CertificateRevocationListDer, SignatureVerificationAlgorithm, TrustAnchor,
    UnixTime,
};
use webpki::{
    CertRevocationList, EndEntityCert, ExpirationPolicy, KeyUsage, OwnedCertRevocationList,
    RevocationCheckDepth, RevocationOptionsBuilder, UnknownStatusPolicy,
};
use x509_parser::prelude::FromDer;

use crate::identity::{ClientIdentity, IdentityError};

/// Why a client certificate chain is not trusted. `Display` is what the client is told.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TrustError {
    /// No trust anchors are configured for `tls_client_auth`.
    #[error("no CA is configured for tls_client_auth clients")]
    NoTrustAnchors,
    /// The chain does not lead to a trusted CA.
    #[error("the client certificate is not issued by a trusted CA")]
    UnknownIssuer,
    /// The leaf (or an issuer) has expired.
    #[error("the client certificate has expired")]
    Expired,
    /// The leaf (or an issuer) is not yet valid.
    #[error("the client certificate is not yet valid")]
    NotYetValid,
    /// A CRL lists the certificate.
    #[error("the client certificate has been revoked")]
    Revoked,
    /// The applicable CRL is past its nextUpdate: revocation status unknown, fail closed.
    #[error("the revocation status of the client certificate cannot be determined")]
    CrlExpired,
    /// The extended key usage does not allow client authentication.
    #[error(
        "the client certificate is not valid for TLS client authentication (extended key usage)"
    )]
    KeyUsage,
    /// Anything else webpki refused (malformed, bad signature, constraints).
    #[error("the client certificate chain is not valid")]
    Invalid(String),
}

impl From<webpki::Error> for TrustError {
    fn from(e: webpki::Error) -> Self {
        match e {
            webpki::Error::UnknownIssuer => Self::UnknownIssuer,
            webpki::Error::CertExpired { .. } => Self::Expired,
            webpki::Error::CertNotValidYet { .. } => Self::NotYetValid,
            webpki::Error::CertRevoked => Self::Revoked,
            webpki::Error::CrlExpired { .. } => Self::CrlExpired,
            webpki::Error::RequiredEkuNotFoundContext(_) => Self::KeyUsage,
            other => Self::Invalid(format!("{other:?}")),
        }
    }
}

/// Why trust could not be set up from configured files.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TrustSetupError {
    /// A configured CA certificate is not usable as a trust anchor.
    #[error("a CA certificate cannot be used as a trust anchor: {0}")]
    Anchor(String),
    /// A configured CRL does not parse.
    #[error("a CRL cannot be parsed: {0}")]
    Crl(String),
}

/// The signature algorithms chains are verified with, built once.
fn algorithms() -> &'static [&'static dyn SignatureVerificationAlgorithm] {
    static ALGS: OnceLock<&'static [&'static dyn SignatureVerificationAlgorithm]> = OnceLock::new();
    ALGS.get_or_init(|| {
        rustls::crypto::aws_lc_rs::default_provider()
            .signature_verification_algorithms
            .all
    })
}

pub use crate::encoding::now_secs;

fn unix_time(secs: i64) -> UnixTime {
    UnixTime::since_unix_epoch(std::time::Duration::from_secs(
        u64::try_from(secs).unwrap_or(0),
    ))
}

/// notAfter of a certificate, seconds since the epoch (`i64::MIN` when unreadable, so that a
/// cached verdict about it never outlives the request).
fn not_after(der: &[u8]) -> i64 {
    x509_parser::parse_x509_certificate(der)
        .map(|(_, c)| c.validity().not_after.timestamp())
        .unwrap_or(i64::MIN)
}

/// A set of trust anchors: `server.client_ca`, or one client's `tls_client_auth_ca` pin.
#[derive(Debug)]
pub struct Anchors {
    anchors: Vec<TrustAnchor<'static>>,
    /// The anchors' certificates (for expiry metrics and CA hints).
    pub certs: Vec<CertificateDer<'static>>,
    earliest_expiry: i64,
}

impl Anchors {
    /// Anchors from CA certificates.
    pub fn new(certs: Vec<CertificateDer<'static>>) -> Result<Self, TrustSetupError> {
        let anchors = certs
            .iter()
            .map(|c| {
                webpki::anchor_from_trusted_cert(c)
                    .map(|a| a.to_owned())
                    .map_err(|e| TrustSetupError::Anchor(format!("{e:?}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let earliest_expiry = certs.iter().map(|c| not_after(c)).min().unwrap_or(i64::MAX);
        Ok(Self {
            anchors,
            certs,
            earliest_expiry,
        })
    }

    /// The CA names to advertise in the CertificateRequest.
    pub fn hints(&self) -> Vec<DistinguishedName> {
        self.anchors
            .iter()
            .map(|a| DistinguishedName::in_sequence(a.subject.as_ref()))
            .collect()
    }
}

/// Trust anchors, intermediates and CRLs of one configuration generation.
#[derive(Debug)]
pub struct ClientTrust {
    /// `server.client_ca`.
    pub anchors: Anchors,
    intermediates: Vec<CertificateDer<'static>>,
    crls: Vec<CertRevocationList<'static>>,
    /// The earliest notAfter of the configured intermediates and nextUpdate of the CRLs:
    /// no cached verdict lives past it.
    earliest_change: i64,
    /// Chains of this generation that verified, shared by every connection: a client that
    /// opens many connections with one chain pays the verification once per generation.
    verified: Mutex<ByHash<i64>>,
    /// Leaf certificates read this generation, by the SHA-256 of their DER: a client that
    /// opens many connections with one certificate has it parsed once.
    identities: Mutex<ByHash<Arc<ClientIdentity>>>,
}

/// Entries held in each of [`ClientTrust`]'s caches at most; the oldest leaves first.
pub const MAX_VERIFIED_CHAINS: usize = 4096;

/// A bounded map by SHA-256, first in first out. Holds successful chain verifications (each
/// valid until its notAfter/nextUpdate bound) and parsed leaves; failures are never kept: a
/// chain refused for being not yet valid must be accepted once it is.
#[derive(Debug)]
struct ByHash<V> {
    map: std::collections::HashMap<[u8; 32], V>,
    order: std::collections::VecDeque<[u8; 32]>,
}

impl<V> Default for ByHash<V> {
    fn default() -> Self {
        Self {
            map: std::collections::HashMap::new(),
            order: std::collections::VecDeque::new(),
        }
    }
}

impl<V> ByHash<V> {
    fn get(&self, key: &[u8; 32]) -> Option<&V> {
        self.map.get(key)
    }

    fn put(&mut self, key: [u8; 32], value: V) {
        if self.map.insert(key, value).is_none() {
            self.order.push_back(key);
            while self.order.len() > MAX_VERIFIED_CHAINS {
                if let Some(old) = self.order.pop_front() {
                    self.map.remove(&old);
                }
            }
        }
    }
}

impl ClientTrust {
    /// Trust in `ca_certs`, completing chains from `intermediates`, checking `crls`.
    pub fn new(
        ca_certs: Vec<CertificateDer<'static>>,
        intermediates: Vec<CertificateDer<'static>>,
        crls: Vec<CertificateRevocationListDer<'static>>,
    ) -> Result<Self, TrustSetupError> {
        let anchors = Anchors::new(ca_certs)?;
        let mut earliest_change = intermediates
            .iter()
            .map(|c| not_after(c))
            .min()
            .unwrap_or(i64::MAX);
        let mut parsed = Vec::with_capacity(crls.len());
        for crl in &crls {
            let owned = OwnedCertRevocationList::from_der(crl.as_ref())
                .map_err(|e| TrustSetupError::Crl(format!("{e:?}")))?;
            parsed.push(CertRevocationList::from(owned));
            if let Some(next) = crl_facts(crl.as_ref()).and_then(|f| f.next_update) {
                earliest_change = earliest_change.min(next);
            }
        }
        Ok(Self {
            anchors,
            intermediates,
            crls: parsed,
            earliest_change,
            verified: Mutex::new(ByHash::default()),
            identities: Mutex::new(ByHash::default()),
        })
    }

    /// How many verified chains this generation remembers.
    pub fn verified_chains(&self) -> usize {
        self.verified.lock().map(|v| v.map.len()).unwrap_or(0)
    }

    /// Reads a presented chain (leaf first), the leaf's identity parsed once per generation
    /// for the same DER.
    pub fn peer_certificate(
        &self,
        chain: &[CertificateDer<'_>],
    ) -> Result<PeerCertificate, IdentityError> {
        let (leaf, rest) = chain
            .split_first()
            .ok_or_else(|| IdentityError::Malformed("empty chain".into()))?;
        let sha256 = crate::identity::sha256(leaf.as_ref());
        let known = self
            .identities
            .lock()
            .ok()
            .and_then(|ids| ids.get(&sha256).cloned())
            .filter(|id| id.der.as_ref() == leaf.as_ref());
        let identity = match known {
            Some(id) => id,
            None => {
                let id = Arc::new(ClientIdentity::from_der(leaf.clone().into_owned())?);
                if let Ok(mut ids) = self.identities.lock() {
                    ids.put(sha256, id.clone());
                }
                id
            }
        };
        Ok(PeerCertificate::with_identity(identity, rest))
    }

    /// Verifies `leaf` (with the intermediates it presented) against the configured anchors.
    pub fn verify_chain(
        &self,
        leaf: &CertificateDer<'_>,
        presented: &[CertificateDer<'static>],
        now: i64,
    ) -> Result<(), TrustError> {
        self.verify_chain_to(&self.anchors, leaf, presented, now)
    }

    /// Verifies `leaf` against `anchors` (a client's pin) with this configuration's
    /// intermediates and CRLs.
    pub fn verify_chain_to(
        &self,
        anchors: &Anchors,
        leaf: &CertificateDer<'_>,
        presented: &[CertificateDer<'static>],
        now: i64,
    ) -> Result<(), TrustError> {
        if anchors.anchors.is_empty() {
            return Err(TrustError::NoTrustAnchors);
        }
        let ee = EndEntityCert::try_from(leaf).map_err(TrustError::from)?;
        let mut intermediates = presented.to_vec();
        intermediates.extend(self.intermediates.iter().cloned());
        let crl_refs: Vec<&CertRevocationList<'_>> = self.crls.iter().collect();
        let revocation = if crl_refs.is_empty() {
            None
        } else {
            RevocationOptionsBuilder::new(&crl_refs).ok().map(|b| {
                b.with_depth(RevocationCheckDepth::Chain)
                    .with_status_policy(UnknownStatusPolicy::Allow)
                    .with_expiration_policy(ExpirationPolicy::Enforce)
                    .build()
            })
        };
        ee.verify_for_usage(
            algorithms(),
            &anchors.anchors,
            &intermediates,
            unix_time(now),
            KeyUsage::client_auth(),
            revocation,
            None,
        )
        .map(|_| ())
        .map_err(TrustError::from)
    }
}

/// What CRL selection and cache lifetimes need from a CRL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlFacts {
    /// The issuer's DER name.
    pub issuer: Vec<u8>,
    /// The CRL number extension, as big-endian bytes without leading zeros.
    pub number: Option<Vec<u8>>,
    /// thisUpdate, seconds since the epoch.
    pub this_update: i64,
    /// nextUpdate, seconds since the epoch.
    pub next_update: Option<i64>,
}

/// Reads a DER CRL's issuer, number and dates; `None` when it does not parse.
pub fn crl_facts(der: &[u8]) -> Option<CrlFacts> {
    let (_, crl) = x509_parser::revocation_list::CertificateRevocationList::from_der(der).ok()?;
    Some(CrlFacts {
        issuer: crl.issuer().as_raw().to_vec(),
        number: crl.crl_number().map(|n| n.to_bytes_be()),
        this_update: crl.last_update().timestamp(),
        next_update: crl.next_update().map(|t| t.timestamp()),
    })
}

/// Of several CRLs of one issuer, only the newest counts (SPEC §5): the highest CRL number,
/// then the latest thisUpdate. Returns the indexes of the CRLs to use, in input order, and
/// for each issuer with several, the indexes that were set aside and the one kept.
pub fn select_crls(crls: &[&[u8]]) -> (Vec<usize>, Vec<(Vec<usize>, usize)>) {
    let facts: Vec<Option<CrlFacts>> = crls.iter().map(|c| crl_facts(c)).collect();
    let mut keep = Vec::new();
    let mut superseded = Vec::new();
    let mut issuers: Vec<&[u8]> = Vec::new();
    for (i, f) in facts.iter().enumerate() {
        let Some(f) = f else {
            // Unreadable here: ClientTrust::new reports it.
            keep.push(i);
            continue;
        };
        if issuers.contains(&f.issuer.as_slice()) {
            continue;
        }
        issuers.push(&f.issuer);
        let same: Vec<usize> = facts
            .iter()
            .enumerate()
            .filter(|(_, g)| g.as_ref().is_some_and(|g| g.issuer == f.issuer))
            .map(|(j, _)| j)
            .collect();
        let newest = same
            .iter()
            .copied()
            .max_by(|a, b| {
                let (Some(fa), Some(fb)) = (&facts[*a], &facts[*b]) else {
                    return std::cmp::Ordering::Equal;
                };
                crl_order(fa).cmp(&crl_order(fb))
            })
            .unwrap_or(i);
        keep.push(newest);
        if same.len() > 1 {
            superseded.push((same.into_iter().filter(|j| *j != newest).collect(), newest));
        }
    }
    keep.sort_unstable();
    (keep, superseded)
}

/// Orders CRLs of one issuer: a CRL number beats none; numbers compare as integers.
fn crl_order(f: &CrlFacts) -> (bool, usize, Vec<u8>, i64) {
    let number = f.number.clone().unwrap_or_default();
    (f.number.is_some(), number.len(), number, f.this_update)
}

/// A cached verdict: valid for one configuration generation, until `until`.
#[derive(Debug, Clone)]
struct Verdict {
    generation: u64,
    until: i64,
    result: Result<(), TrustError>,
}

/// The certificate a connection (or a forwarded header) presented. Its chain is verified per
/// request against the serving configuration; a verdict is reused only within one generation
/// and only until the earliest notAfter of the chain or nextUpdate of the CRLs used.
#[derive(Debug)]
pub struct PeerCertificate {
    /// The leaf's identity.
    pub identity: Arc<ClientIdentity>,
    /// Intermediates the client sent after its leaf.
    pub intermediates: Vec<CertificateDer<'static>>,
    /// The earliest notAfter of the leaf and the presented intermediates.
    chain_expiry: i64,
    /// SHA-256 of the leaf, or of the leaf's and each intermediate's hash when it sent some:
    /// the key of [`ClientTrust`]'s cache of verified chains.
    chain_key: [u8; 32],
    verdict: Mutex<Option<Verdict>>,
}

impl PeerCertificate {
    /// Reads a presented chain (leaf first).
    pub fn new(chain: &[CertificateDer<'_>]) -> Result<Self, IdentityError> {
        let (leaf, rest) = chain
            .split_first()
            .ok_or_else(|| IdentityError::Malformed("empty chain".into()))?;
        let identity = ClientIdentity::from_der(leaf.clone().into_owned())?;
        Ok(Self::with_identity(Arc::new(identity), rest))
    }

    fn with_identity(identity: Arc<ClientIdentity>, rest: &[CertificateDer<'_>]) -> Self {
        let chain_expiry = rest
            .iter()
            .map(|c| not_after(c))
            .fold(identity.not_after, i64::min);
        let chain_key = if rest.is_empty() {
            identity.sha256
        } else {
            let mut all = identity.sha256.to_vec();
            for c in rest {
                all.extend_from_slice(&crate::identity::sha256(c.as_ref()));
            }
            crate::identity::sha256(&all)
        };
        Self {
            identity,
            intermediates: rest.iter().map(|c| c.clone().into_owned()).collect(),
            chain_expiry,
            chain_key,
            verdict: Mutex::new(None),
        }
    }

    /// Whether the chain verifies to `server.client_ca` of generation `generation` at `now`,
    /// reusing this connection's verdict, or the generation's for the same chain, while it
    /// still holds.
    pub fn trusted(
        &self,
        trust: &ClientTrust,
        generation: u64,
        now: i64,
    ) -> Result<(), TrustError> {
        let mut cached = self.verdict.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(v) = cached.as_ref() {
            if v.generation == generation && now < v.until {
                return v.result.clone();
            }
        }
        let until = self
            .chain_expiry
            .min(trust.earliest_change)
            .min(trust.anchors.earliest_expiry);
        let known = trust
            .verified
            .lock()
            .map(|v| v.get(&self.chain_key).is_some_and(|until| now < *until))
            .unwrap_or(false);
        let result = if known {
            Ok(())
        } else {
            let result = trust.verify_chain(&self.identity.der, &self.intermediates, now);
            if result.is_ok() && now < until {
                if let Ok(mut v) = trust.verified.lock() {
                    v.put(self.chain_key, until);
                }
            }
            result
        };
        *cached = Some(Verdict {
            generation,
            until,
            result: result.clone(),
        });
        result
    }

    /// Whether the chain verifies to a client's pinned `anchors`, with the serving
    /// configuration's intermediates and CRLs.
    pub fn trusted_by_pin(
        &self,
        trust: &ClientTrust,
        pin: &Anchors,
        now: i64,
    ) -> Result<(), TrustError> {
        trust.verify_chain_to(pin, &self.identity.der, &self.intermediates, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls_pki_types::pem::PemObject as _;

    fn pki() -> (
        CertificateDer<'static>,
        CertificateDer<'static>,
        CertificateDer<'static>,
    ) {
        let ca = crate::pki::Ca::new("trust test CA").unwrap();
        let other = crate::pki::Ca::new("another CA").unwrap();
        let leaf = ca
            .issue(&crate::pki::client_params(
                &[(rcgen::DnType::CommonName, "c")],
                vec![],
            ))
            .unwrap();
        let der = |pem: &str| CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
        (der(&ca.pem.cert), der(&other.pem.cert), der(&leaf.cert))
    }

    #[test]
    fn a_chain_verified_once_is_known_to_every_connection_of_the_generation_only() {
        let (ca, other, leaf) = pki();
        let now = crate::encoding::now_secs();
        let generation = ClientTrust::new(vec![ca.clone()], vec![], vec![]).unwrap();
        let first = PeerCertificate::new(std::slice::from_ref(&leaf)).unwrap();
        assert_eq!(first.trusted(&generation, 1, now), Ok(()));
        assert_eq!(generation.verified_chains(), 1);
        // Another connection with the same chain: answered from the generation's cache.
        let second = PeerCertificate::new(std::slice::from_ref(&leaf)).unwrap();
        assert_eq!(second.trusted(&generation, 1, now), Ok(()));
        assert_eq!(generation.verified_chains(), 1);
        // Not past the chain's notAfter.
        let late = PeerCertificate::new(std::slice::from_ref(&leaf)).unwrap();
        assert!(late
            .trusted(&generation, 1, first.chain_expiry + 1)
            .is_err());
        // A new generation that no longer trusts the CA verifies again, and refuses.
        let next = ClientTrust::new(vec![other], vec![], vec![]).unwrap();
        let third = PeerCertificate::new(std::slice::from_ref(&leaf)).unwrap();
        assert!(third.trusted(&next, 2, now).is_err());
        assert_eq!(next.verified_chains(), 0, "failures are not kept");
    }

    #[test]
    fn a_leaf_is_parsed_once_per_generation_and_only_for_its_exact_der() {
        let (ca, other, leaf) = pki();
        let generation = ClientTrust::new(vec![ca.clone()], vec![], vec![]).unwrap();
        let a = generation
            .peer_certificate(std::slice::from_ref(&leaf))
            .unwrap();
        let b = generation
            .peer_certificate(std::slice::from_ref(&leaf))
            .unwrap();
        assert!(
            Arc::ptr_eq(&a.identity, &b.identity),
            "the second read reuses the first"
        );
        assert_eq!(a.identity.der.as_ref(), leaf.as_ref());
        let c = generation
            .peer_certificate(std::slice::from_ref(&other))
            .unwrap();
        assert_eq!(c.identity.der.as_ref(), other.as_ref());
        assert!(!Arc::ptr_eq(&a.identity, &c.identity));
        // A chain with intermediates keeps them, the leaf still shared.
        let chained = generation
            .peer_certificate(&[leaf.clone(), ca.clone()])
            .unwrap();
        assert!(Arc::ptr_eq(&a.identity, &chained.identity));
        assert_eq!(chained.intermediates, vec![ca.clone()]);
        // Bytes that are no certificate are refused each time, never remembered.
        let junk = CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x01]);
        assert!(generation
            .peer_certificate(std::slice::from_ref(&junk))
            .is_err());
        assert!(generation.peer_certificate(&[]).is_err());
        assert_eq!(generation.identities.lock().unwrap().map.len(), 2);
        // Another generation starts empty.
        let next = ClientTrust::new(vec![ca], vec![], vec![]).unwrap();
        let d = next.peer_certificate(std::slice::from_ref(&leaf)).unwrap();
        assert!(!Arc::ptr_eq(&a.identity, &d.identity));
    }

    #[test]
    fn the_cache_of_verified_chains_is_bounded() {
        let mut v = ByHash::default();
        for i in 0..(MAX_VERIFIED_CHAINS + 10) {
            let mut key = [0u8; 32];
            key[..8].copy_from_slice(&(i as u64).to_be_bytes());
            v.put(key, i64::MAX);
        }
        assert_eq!(v.map.len(), MAX_VERIFIED_CHAINS);
        assert!(v.get(&[0u8; 32]).is_none(), "the oldest left first");
    }

    #[test]
    fn crl_order_compares_numbers_as_integers() {
        let f = |n: &[u8], t| CrlFacts {
            issuer: vec![],
            number: Some(n.to_vec()),
            this_update: t,
            next_update: None,
        };
        assert!(crl_order(&f(&[2], 0)) > crl_order(&f(&[1], 5)));
        assert!(crl_order(&f(&[1, 0], 0)) > crl_order(&f(&[0xff], 0)));
        assert!(crl_order(&f(&[1], 6)) > crl_order(&f(&[1], 5)));
    }
}
