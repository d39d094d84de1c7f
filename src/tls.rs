//! The mTLS listener's rustls configuration: client certificates requested but optional,
//! possession proven in the handshake, trust decided after it (for every request, resumed
//! sessions included). Session resumption only with `server.resumption = true`.

pub mod verifier;

use std::sync::Arc;

use rustls::server::{NoServerSessionStorage, ProducesTickets, StoresServerSessions};
use rustls::{DistinguishedName, ServerConfig};

use crate::config::Server;
use verifier::AcceptAnyClientCert;

/// Builds the rustls server configuration of the mTLS listener. `hints` are the CA names
/// offered in the CertificateRequest (`client_ca` and every client's pinned CA), so that a
/// client with several certificates chooses the right one.
pub fn server_config(
    server: &Server,
    hints: Vec<DistinguishedName>,
    resumption: &Resumption,
) -> Result<Arc<ServerConfig>, rustls::Error> {
    let provider = Arc::new(preferring_sha256(
        rustls::crypto::aws_lc_rs::default_provider(),
    ));
    let versions: &[&rustls::SupportedProtocolVersion] = if server.tls13_only {
        &[&rustls::version::TLS13]
    } else {
        &[&rustls::version::TLS13, &rustls::version::TLS12]
    };
    let verifier = Arc::new(AcceptAnyClientCert::new(
        hints,
        provider.signature_verification_algorithms,
    ));
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(server.cert_chain.clone(), server.key.clone_key())?;
    if server.resumption {
        // A resumed session carries the client's chain from its full handshake (where it
        // proved possession of the key); the gateway verifies that chain per request like any
        // other, against the serving generation.
        config.ticketer = resumption.ticketer.clone();
        config.session_storage = resumption.sessions.clone();
        config.send_tls13_tickets = 2;
    } else {
        config.session_storage = Arc::new(NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
    }
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    // The server's preference decides (below): clients commonly list AES-256 first.
    config.ignore_client_order = true;
    Ok(Arc::new(config))
}

/// Resumption state of the process, kept across configuration generations so that a reload
/// does not void the tickets and sessions clients hold: TLS 1.3 tickets (and TLS 1.2 tickets)
/// encrypted under keys rustls rotates every 6 hours (a ticket is accepted for at most 12
/// hours), and TLS 1.2 session ids for clients without tickets, in memory.
pub struct Resumption {
    ticketer: Arc<dyn ProducesTickets>,
    sessions: Arc<dyn StoresServerSessions>,
}

/// TLS 1.2 sessions held for session-id resumption; the least recently used leave first.
pub const MAX_SESSIONS: usize = 20_000;

impl Resumption {
    /// Fresh ticket keys and an empty session cache.
    pub fn new() -> Result<Self, rustls::Error> {
        Ok(Self {
            ticketer: rustls::crypto::aws_lc_rs::Ticketer::new()?,
            sessions: rustls::server::ServerSessionMemoryCache::new(MAX_SESSIONS),
        })
    }
}

impl std::fmt::Debug for Resumption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resumption").finish_non_exhaustive()
    }
}

/// The same suites, AES-128-GCM with SHA-256 first (TLS 1.3's mandatory suite, and the
/// ECDHE ones of TLS 1.2): a handshake's key schedule and transcript then hash with SHA-256,
/// which runs on the CPU's SHA extensions where SHA-384 runs in software. Every suite stays
/// accepted; a client that offers only AES-256 or ChaCha20 gets it.
fn preferring_sha256(
    mut provider: rustls::crypto::CryptoProvider,
) -> rustls::crypto::CryptoProvider {
    provider.cipher_suites.sort_by_key(|suite| {
        use rustls::CipherSuite::*;
        match suite.suite() {
            TLS13_AES_128_GCM_SHA256 => 0,
            TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 | TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => 1,
            _ => 2,
        }
    });
    provider
}
