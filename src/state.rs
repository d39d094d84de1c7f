//! Per-client runtime state (SPEC §7 "Reload"): rate-limit allowances, reused assertions,
//! cached tokens and upstream slots belong to the client, not to the configuration
//! generation. A reload that leaves a client's registration, credential and upstream
//! unchanged keeps its state; a changed one starts afresh.
//!
//! [`ClientStates`] is the seam where a shared store plugs in; [`MemoryStates`] keeps the
//! state in this process.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use crate::assertion::AssertionCache;
use crate::cache::TokenCache;

/// What the gateway remembers about one client between requests.
#[derive(Debug)]
pub struct ClientState {
    /// Its rate limit (its own `rate_limit`, else `[limits] rate_limit`), if any.
    pub rate_limit: Option<RateLimit>,
    /// Signed assertions kept for reuse (used when its upstream has `reuse_assertion`).
    pub assertions: AssertionCache,
    /// Its token cache (`cache_tokens = true`).
    pub token_cache: Option<TokenCache>,
    /// Its upstream exchanges in flight, at most [`MAX_UPSTREAM_IN_FLIGHT`].
    pub upstream_slots: Arc<tokio::sync::Semaphore>,
}

impl ClientState {
    /// Fresh state for a client with `rate_limit` (already validated) and `cache_tokens`.
    pub fn new(rate_limit: Option<&str>, cache_tokens: bool) -> Self {
        Self {
            rate_limit: rate_limit.and_then(|r| RateLimit::parse(r).ok()),
            assertions: AssertionCache::default(),
            token_cache: cache_tokens.then(TokenCache::default),
            upstream_slots: upstream_slots(),
        }
    }
}

/// Where per-client state lives across configuration generations.
pub trait ClientStates: Send + Sync + std::fmt::Debug {
    /// The state of `client_id` for a registration whose identity is `fingerprint`: the
    /// existing one when the fingerprint is unchanged, else `fresh`.
    fn adopt(
        &self,
        client_id: &str,
        fingerprint: [u8; 32],
        fresh: Arc<ClientState>,
    ) -> Arc<ClientState>;

    /// Forgets every client not in `live` (removed by a reload).
    fn retain(&self, live: &HashSet<&str>);
}

/// A client's state with the fingerprint of the registration it belongs to.
type Entry = ([u8; 32], Arc<ClientState>);

/// Per-client state in this process's memory.
#[derive(Debug, Default)]
pub struct MemoryStates {
    clients: Mutex<HashMap<String, Entry>>,
}

impl ClientStates for MemoryStates {
    fn adopt(
        &self,
        client_id: &str,
        fingerprint: [u8; 32],
        fresh: Arc<ClientState>,
    ) -> Arc<ClientState> {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        match clients.get(client_id) {
            Some((f, state)) if *f == fingerprint => state.clone(),
            _ => {
                clients.insert(client_id.to_string(), (fingerprint, fresh.clone()));
                fresh
            }
        }
    }

    fn retain(&self, live: &HashSet<&str>) {
        self.clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|id, _| live.contains(id.as_str()));
    }
}

/// The most upstream exchanges one client may have in flight: exchanges outlive a client's
/// reset (SPEC §8), so without a bound a client could pile them up by resetting.
pub const MAX_UPSTREAM_IN_FLIGHT: usize = 64;

/// A fresh set of upstream slots for one client.
pub fn upstream_slots() -> Arc<tokio::sync::Semaphore> {
    Arc::new(tokio::sync::Semaphore::new(MAX_UPSTREAM_IN_FLIGHT))
}

/// A per-client rate limit: `N/s`, `N/m` or `N/h`, with a burst of N.
pub struct RateLimit {
    /// As configured, e.g. `20/s`.
    pub text: String,
    /// Time between two requests at the sustained rate (the GCRA emission interval).
    pub interval: std::time::Duration,
    /// Requests allowed at once (N of `N/unit`).
    pub burst: u32,
    limiter: governor::DefaultDirectRateLimiter,
}

impl std::fmt::Debug for RateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl RateLimit {
    /// Parses `"20/s"`, `"600/m"`, `"1000/h"`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || format!("\"{text}\" is not a rate such as \"20/s\", \"600/m\" or \"1000/h\"");
        let (n, unit) = text.trim().split_once('/').ok_or_else(bad)?;
        let n: u32 = n.trim().parse().map_err(|_| bad())?;
        let n = std::num::NonZeroU32::new(n).ok_or_else(bad)?;
        let (quota, period) = match unit.trim() {
            "s" => (governor::Quota::per_second(n), 1_000_000u64),
            "m" => (governor::Quota::per_minute(n), 60_000_000),
            "h" => (governor::Quota::per_hour(n), 3_600_000_000),
            _ => return Err(bad()),
        };
        Ok(Self {
            text: text.trim().to_string(),
            interval: std::time::Duration::from_micros(period / u64::from(n.get())),
            burst: n.get(),
            limiter: governor::RateLimiter::direct(quota),
        })
    }

    /// Takes one request from the allowance; `Err(seconds)` to wait when it is spent.
    pub fn check(&self) -> Result<(), u64> {
        use governor::clock::{Clock, DefaultClock};
        self.limiter.check().map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            // Retry-After is whole seconds, rounded up; never tell a client to retry at once.
            (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
        })
    }
}
