//! What one configuration generation serves with, and what a connection knows about its
//! peer: the state every request handler reads, below them all.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::config::Config;
use crate::identity::IdentityError;
use crate::trust::PeerCertificate;
use crate::upstream::Upstream;

/// What one configuration generation serves with.
#[derive(Debug)]
pub struct Gateway {
    /// This generation's number, unique in the process: a connection's cached trust verdict
    /// holds only for the generation that made it.
    pub generation: u64,
    /// Per-client state, shared by every generation.
    pub states: Arc<dyn crate::state::ClientStates>,
    /// The validated configuration.
    pub config: Arc<Config>,
    /// Live upstreams by name.
    pub upstreams: HashMap<String, Arc<Upstream>>,
    /// Metrics (shared by every generation).
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Binding records (shared by every generation; the store is chosen at start).
    pub bindings: Arc<crate::binding::Bindings>,
    /// The shared store (`[state] store = "redis"`), chosen at start.
    pub store: Option<Arc<crate::store::RedisStore>>,
    /// TLS resumption keys and sessions (shared by every generation).
    pub resumption: Arc<crate::tls::Resumption>,
}

/// A fresh generation number.
pub fn next_generation() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// A client certificate as the token endpoint sees it: `None` when there is none.
pub type Presented = Option<Result<Arc<PeerCertificate>, IdentityError>>;

/// What the connection knows about its peer.
#[derive(Debug)]
pub struct ConnInfo {
    /// The TCP peer.
    pub peer_addr: SocketAddr,
    /// The handshake certificate: `None` when the client sent none (always on plain HTTP).
    pub peer_cert: Presented,
    /// Whether the connection arrived on a plain-HTTP listener (`front_proxy.plain_listen`,
    /// or `[authz]`).
    pub plain: bool,
    /// Whether the connection arrived on the `[authz]` decision listener.
    pub authz: bool,
}
