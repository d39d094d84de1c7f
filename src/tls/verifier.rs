//! Client-certificate trust. The handshake accepts any certificate whose key the client
//! proves it holds; the chain is verified afterwards (once per connection, with
//! rustls-webpki) so that every failure reaches the client as a JSON `invalid_client`.

use std::time::SystemTime;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, TrustAnchor, UnixTime};
use webpki::{
    CertRevocationList, EndEntityCert, ExpirationPolicy, KeyUsage, OwnedCertRevocationList,
    RevocationCheckDepth, RevocationOptionsBuilder, UnknownStatusPolicy,
};

use crate::identity::ClientIdentity;

/// Requests a client certificate, does not require one, and checks only the handshake
/// signature (proof of possession).
#[derive(Debug)]
pub struct AcceptAnyClientCert {
    hints: Vec<DistinguishedName>,
    algs: WebPkiSupportedAlgorithms,
}

impl AcceptAnyClientCert {
    /// A verifier that advertises `hints` as acceptable CA names.
    pub fn new(hints: Vec<DistinguishedName>, algs: WebPkiSupportedAlgorithms) -> Self {
        Self { hints, algs }
    }
}

impl ClientCertVerifier for AcceptAnyClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // Trust is decided after the handshake (see module docs).
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

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

/// Trust anchors, intermediates and CRLs for verifying client chains.
#[derive(Debug)]
pub struct ClientTrust {
    anchors: Vec<TrustAnchor<'static>>,
    /// The anchors' certificates (for expiry metrics and hints).
    pub ca_certs: Vec<CertificateDer<'static>>,
    intermediates: Vec<CertificateDer<'static>>,
    crls: Vec<CertRevocationList<'static>>,
}

impl ClientTrust {
    /// Trust in `anchors`, completing chains from `intermediates`, checking `crls`.
    pub fn new(
        ca_certs: Vec<CertificateDer<'static>>,
        intermediates: Vec<CertificateDer<'static>>,
        crls: Vec<CertificateRevocationListDer<'static>>,
    ) -> Result<Self, String> {
        let anchors = ca_certs
            .iter()
            .map(|c| {
                webpki::anchor_from_trusted_cert(c)
                    .map(|a| a.to_owned())
                    .map_err(|e| {
                        format!("a CA certificate cannot be used as a trust anchor: {e:?}")
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let crls = crls
            .iter()
            .map(|c| {
                OwnedCertRevocationList::from_der(c.as_ref())
                    .map(CertRevocationList::from)
                    .map_err(|e| format!("a CRL cannot be parsed: {e:?}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            anchors,
            ca_certs,
            intermediates,
            crls,
        })
    }

    /// Trust in exactly one CA (a client's `tls_client_auth_ca` pin).
    pub fn pinned(ca: CertificateDer<'static>) -> Result<Self, String> {
        Self::new(vec![ca], Vec::new(), Vec::new())
    }

    /// The CA names advertised in the CertificateRequest.
    pub fn root_hint_subjects(&self) -> Vec<DistinguishedName> {
        self.anchors
            .iter()
            .map(|a| DistinguishedName::in_sequence(a.subject.as_ref()))
            .collect()
    }

    /// Verifies the leaf of `peer` with the intermediates it presented plus configured ones.
    pub fn verify(&self, peer: &PeerCertificate) -> Result<(), TrustError> {
        self.verify_chain(&peer.identity.der, &peer.intermediates, now())
    }

    /// Verifies `leaf` at `time`.
    pub fn verify_chain(
        &self,
        leaf: &CertificateDer<'_>,
        presented: &[CertificateDer<'static>],
        time: UnixTime,
    ) -> Result<(), TrustError> {
        if self.anchors.is_empty() {
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
        let algs = rustls::crypto::aws_lc_rs::default_provider()
            .signature_verification_algorithms
            .all;
        ee.verify_for_usage(
            algs,
            &self.anchors,
            &intermediates,
            time,
            KeyUsage::client_auth(),
            revocation,
            None,
        )
        .map(|_| ())
        .map_err(TrustError::from)
    }
}

fn now() -> UnixTime {
    UnixTime::since_unix_epoch(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default(),
    )
}

/// The certificate a connection presented, read and checked against `client_ca` once.
#[derive(Debug)]
pub struct PeerCertificate {
    /// The leaf's identity.
    pub identity: ClientIdentity,
    /// Intermediates the client sent after its leaf.
    pub intermediates: Vec<CertificateDer<'static>>,
    /// The chain checked against `server.client_ca`.
    pub trust: Result<(), TrustError>,
}

impl PeerCertificate {
    /// Reads a presented chain (leaf first) and verifies it against `trust`.
    pub fn new(
        chain: &[CertificateDer<'static>],
        trust: &ClientTrust,
    ) -> Result<Self, crate::identity::IdentityError> {
        let (leaf, rest) = chain
            .split_first()
            .ok_or_else(|| crate::identity::IdentityError::Malformed("empty chain".into()))?;
        let identity = ClientIdentity::from_der(leaf.clone())?;
        let mut peer = Self {
            identity,
            intermediates: rest.to_vec(),
            trust: Err(TrustError::NoTrustAnchors),
        };
        peer.trust = trust.verify(&peer);
        Ok(peer)
    }
}
