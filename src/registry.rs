//! client_id → registration, and the RFC 8705 §2 binding between a client and its certificate,
//! as small pure functions.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use crate::assertion::Signer;
use crate::dn::DistinguishedName;
use crate::identity::ClientIdentity;
use crate::trust::{Anchors, ClientTrust, PeerCertificate, TrustError};

/// All registered clients, looked up in O(1) by client_id.
#[derive(Debug, Default)]
pub struct Registry {
    clients: HashMap<String, Arc<Registration>>,
}

impl Registry {
    /// Adds a registration (client_ids are unique; config validation ensures it).
    pub fn insert(&mut self, reg: Registration) {
        self.clients.insert(reg.client_id.clone(), Arc::new(reg));
    }

    /// The registration of `client_id`.
    pub fn get(&self, client_id: &str) -> Option<&Arc<Registration>> {
        self.clients.get(client_id)
    }

    /// Every registration, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Registration>> {
        self.clients.values()
    }

    /// Gives every registration the state `adopt` returns for it (called while this registry is
    /// not yet shared: a registration already shared keeps its state).
    pub fn adopt_states(
        &mut self,
        mut adopt: impl FnMut(&Registration) -> Arc<crate::state::ClientState>,
    ) {
        for reg in self.clients.values_mut() {
            let state = adopt(reg);
            if let Some(reg) = Arc::get_mut(reg) {
                reg.state = state;
            }
        }
    }
}

/// One `[[clients]]` entry, validated.
#[derive(Debug)]
pub struct Registration {
    /// The OAuth client_id (the app registration's application id for Entra).
    pub client_id: String,
    /// Name of its upstream.
    pub upstream: String,
    /// The credential that signs its assertions.
    pub credential: Arc<Signer>,
    /// How its certificate is bound to it.
    pub method: AuthMethod,
    /// Allowed grant types.
    pub grant_types: HashSet<String>,
    /// Allowed scopes; empty allows any.
    pub scopes: HashSet<String>,
    /// What identifies this registration across reloads: its configuration, its upstream's
    /// spec, its effective rate limit, its credential's certificate and algorithm, and its
    /// binding (pins and registered certificates by content).
    pub fingerprint: [u8; 32],
    /// Its runtime state: rate-limit allowance, reused assertions, token cache. Kept across
    /// reloads while the fingerprint and upstream are unchanged ([`crate::state`]).
    pub state: Arc<crate::state::ClientState>,
}

/// RFC 8705 client authentication methods.
#[derive(Debug)]
pub enum AuthMethod {
    /// `tls_client_auth`: a CA-issued certificate with one expected subject field.
    Pki {
        /// The one configured field.
        selector: Selector,
        /// `tls_client_auth_ca`: the chain must end at one of these CAs instead of any `client_ca`.
        pin: Option<Arc<Anchors>>,
    },
    /// `self_signed_tls_client_auth`: the leaf's SHA-256 must be one of these.
    SelfSigned {
        /// Registered SHA-256 digests of certificate DER.
        thumbprints: HashSet<[u8; 32]>,
    },
}

impl AuthMethod {
    /// The RFC 8705 name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Pki { .. } => "tls_client_auth",
            Self::SelfSigned { .. } => "self_signed_tls_client_auth",
        }
    }
}

/// The `tls_client_auth_*` field a PKI client is registered with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// `tls_client_auth_subject_dn`.
    SubjectDn(DistinguishedName),
    /// `tls_client_auth_san_dns`, lower-cased.
    SanDns(String),
    /// `tls_client_auth_san_uri`.
    SanUri(String),
    /// `tls_client_auth_san_ip`.
    SanIp(IpAddr),
    /// `tls_client_auth_san_email`.
    SanEmail(String),
}

impl Selector {
    /// Whether the leaf carries the expected value.
    pub fn matches(&self, id: &ClientIdentity) -> bool {
        match self {
            Self::SubjectDn(dn) => *dn == id.subject,
            Self::SanDns(name) => id.sans.dns.iter().any(|d| d.eq_ignore_ascii_case(name)),
            Self::SanUri(uri) => id.sans.uri.iter().any(|u| u == uri),
            Self::SanIp(ip) => id.sans.ip.contains(ip),
            Self::SanEmail(email) => id.sans.email.iter().any(|e| e == email),
        }
    }

    /// The field's name, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Self::SubjectDn(_) => "subject DN",
            Self::SanDns(_) => "DNS SAN",
            Self::SanUri(_) => "URI SAN",
            Self::SanIp(_) => "IP SAN",
            Self::SanEmail(_) => "email SAN",
        }
    }
}

/// Why a certificate does not authenticate a client. The `Display` text is what the client
/// is told; it never echoes the expected value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    /// The chain does not verify (or the leaf is out of its validity period).
    #[error("{0}")]
    Untrusted(TrustError),
    /// The chain verifies but the leaf lacks the registered field.
    #[error("the client certificate's {0} does not match the registration of this client_id")]
    Mismatch(&'static str),
    /// The leaf is not one of the registered self-signed certificates.
    #[error("the client certificate is not registered for this client_id (x5t#S256 mismatch)")]
    NotRegistered,
    /// The leaf is outside its validity period (self-signed clients).
    #[error("{0}")]
    Validity(&'static str),
}

impl Registration {
    /// Decides whether `peer` authenticates this client at `now` (seconds since the epoch),
    /// under `trust` of configuration generation `generation`.
    pub fn authenticate(
        &self,
        peer: &PeerCertificate,
        trust: &ClientTrust,
        generation: u64,
        now: i64,
    ) -> Result<(), AuthFailure> {
        match &self.method {
            AuthMethod::Pki { selector, pin } => {
                match pin {
                    Some(pin) => peer.trusted_by_pin(trust, pin, now),
                    None => peer.trusted(trust, generation, now),
                }
                .map_err(AuthFailure::Untrusted)?;
                if selector.matches(&peer.identity) {
                    Ok(())
                } else {
                    Err(AuthFailure::Mismatch(selector.name()))
                }
            }
            AuthMethod::SelfSigned { thumbprints } => {
                peer.identity.valid_at(now).map_err(AuthFailure::Validity)?;
                if thumbprints.contains(&peer.identity.sha256) {
                    Ok(())
                } else {
                    Err(AuthFailure::NotRegistered)
                }
            }
        }
    }
}
