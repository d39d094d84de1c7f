//! Binding records (SPEC §10): which certificate obtained which access token. Written at
//! issuance, before the client gets the token; read by the decision endpoint and
//! introspection. Keys are SHA-256 of the token: the store never holds a token.
//!
//! [`Bindings`] is the store seam: the memory store here, a shared store later, chosen at
//! start and kept across reloads.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// SHA-256 of an access token: a record's key.
pub type TokenHash = [u8; 32];

/// Records whose token expired are kept this long (so that a decision can say "expired"
/// rather than "unknown"), unless evicted earlier.
pub const EXPIRED_KEPT_SECS: u64 = 600;

/// The key of `token`'s record.
pub fn token_hash(token: &str) -> TokenHash {
    crate::identity::sha256(token.as_bytes())
}

/// A short, non-reversible reference to a token for logs: the first 6 bytes of its hash, hex.
pub fn log_ref(hash: &TokenHash) -> String {
    crate::identity::hex_lower(&hash[..6])
}

/// What the gateway remembers about one token it handed out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// SHA-256 of the DER certificate that obtained it (`x5t#S256`, decoded).
    pub cert_sha256: [u8; 32],
    /// The client it was issued to.
    pub client_id: Arc<str>,
    /// When it expires (Unix seconds).
    pub exp: u64,
}

pub use crate::store::StoreError;

/// Where binding records live.
#[derive(Debug)]
pub enum Bindings {
    /// In this process, bounded by `max_records`.
    Memory(MemoryBindings),
    /// Shared on Redis, sealed; records read are kept in-process for at most
    /// [`ALLOW_KEPT_SECS`] to decide while Redis is unreachable.
    Redis(RedisBindings),
}

/// A record read from the shared store is used without it for at most this long (never past
/// its `exp`) when the store stops answering.
pub const ALLOW_KEPT_SECS: u64 = 60;
/// Records kept for that, at most; beyond, the oldest half goes.
pub const ALLOWS_MAX: usize = 65_536;

/// Binding records on the shared store.
#[derive(Debug)]
pub struct RedisBindings {
    store: Arc<crate::store::RedisStore>,
    /// Records read recently, with the time until which they may be used without the store.
    allows: Mutex<HashMap<TokenHash, (Record, u64)>>,
}

impl RedisBindings {
    /// Records on `store`.
    pub fn new(store: Arc<crate::store::RedisStore>) -> Self {
        Self {
            store,
            allows: Mutex::new(HashMap::new()),
        }
    }

    async fn put(&self, key: TokenHash, record: Record, now: u64) -> Result<usize, StoreError> {
        let redis_key = self.store.key("binding", &key);
        let sealed = self
            .store
            .sealer
            .seal(redis_key.as_bytes(), &encode(&record))
            .ok_or_else(|| StoreError("the record could not be sealed".into()))?;
        let ttl = record
            .exp
            .saturating_sub(now)
            .saturating_add(EXPIRED_KEPT_SECS);
        // NX: a record is never replaced (a cached token's record is written again as is).
        self.store
            .set(
                "binding_put",
                &redis_key,
                &sealed,
                std::time::Duration::from_secs(ttl),
                true,
            )
            .await?;
        Ok(0)
    }

    async fn get(&self, key: &TokenHash, now: u64) -> Result<Option<Record>, StoreError> {
        let redis_key = self.store.key("binding", key);
        match self.store.get("binding_get", &redis_key).await {
            Ok(None) => Ok(None),
            Ok(Some(sealed)) => {
                let record = self
                    .store
                    .sealer
                    .open(redis_key.as_bytes(), &sealed)
                    .and_then(|plain| decode(&plain));
                let Some(record) = record else {
                    // Not sealed by this deployment's key for this token: forged or corrupt.
                    tracing::warn!(
                        token_ref = log_ref(key),
                        "a binding record in the state store does not authenticate; ignored"
                    );
                    return Ok(None);
                };
                let mut allows = self.allows.lock().unwrap_or_else(|p| p.into_inner());
                if allows.len() >= ALLOWS_MAX {
                    allows.retain(|_, (_, until)| *until > now);
                    if allows.len() >= ALLOWS_MAX {
                        allows.clear();
                    }
                }
                let until = (now + ALLOW_KEPT_SECS).min(record.exp);
                allows.insert(*key, (record.clone(), until));
                Ok(Some(record))
            }
            Err(e) => {
                let allows = self.allows.lock().unwrap_or_else(|p| p.into_inner());
                match allows.get(key) {
                    Some((record, until)) if *until > now => Ok(Some(record.clone())),
                    _ => Err(e),
                }
            }
        }
    }
}

/// A record as stored: digest (32 bytes), exp (8 bytes, big endian), client_id.
fn encode(record: &Record) -> Vec<u8> {
    let mut out = Vec::with_capacity(40 + record.client_id.len());
    out.extend_from_slice(&record.cert_sha256);
    out.extend_from_slice(&record.exp.to_be_bytes());
    out.extend_from_slice(record.client_id.as_bytes());
    out
}

fn decode(bytes: &[u8]) -> Option<Record> {
    let cert_sha256: [u8; 32] = bytes.get(..32)?.try_into().ok()?;
    let exp = u64::from_be_bytes(bytes.get(32..40)?.try_into().ok()?);
    let client_id = std::str::from_utf8(bytes.get(40..)?).ok()?;
    Some(Record {
        cert_sha256,
        client_id: client_id.into(),
        exp,
    })
}

impl Bindings {
    /// Stores `record` under `key` (replacing one for the same token). Returns how many
    /// records were evicted to make room.
    pub async fn put(&self, key: TokenHash, record: Record, now: u64) -> Result<usize, StoreError> {
        match self {
            Self::Memory(m) => Ok(m.put(key, record, now)),
            Self::Redis(r) => r.put(key, record, now).await,
        }
    }

    /// The record of `key`, if any.
    pub async fn get(&self, key: &TokenHash, now: u64) -> Result<Option<Record>, StoreError> {
        match self {
            Self::Memory(m) => Ok(m.get(key)),
            Self::Redis(r) => r.get(key, now).await,
        }
    }

    /// Records held, when this store can tell.
    pub fn records(&self) -> Option<usize> {
        match self {
            Self::Memory(m) => Some(m.len()),
            Self::Redis(_) => None,
        }
    }

    /// Applies a reloaded bound.
    pub fn set_max_records(&self, max: usize) {
        match self {
            Self::Memory(m) => m.max.store(max.max(1), Ordering::Relaxed),
            // Redis bounds itself (maxmemory, and each record's PX).
            Self::Redis(_) => {}
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    /// Record and its issuance sequence number.
    records: HashMap<TokenHash, (u64, Record)>,
    /// Issuance order: sequence number → key.
    order: BTreeMap<u64, TokenHash>,
    next: u64,
}

/// Records in memory; beyond `max` the least recently issued are evicted.
#[derive(Debug)]
pub struct MemoryBindings {
    inner: Mutex<Inner>,
    max: AtomicUsize,
}

impl MemoryBindings {
    /// An empty store holding at most `max` records.
    pub fn new(max: usize) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            max: AtomicUsize::new(max.max(1)),
        }
    }

    fn put(&self, key: TokenHash, record: Record, now: u64) -> usize {
        let max = self.max.load(Ordering::Relaxed);
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let seq = inner.next;
        inner.next += 1;
        if let Some((old, _)) = inner.records.insert(key, (seq, record)) {
            inner.order.remove(&old);
        }
        inner.order.insert(seq, key);
        // Long-expired records at the old end go first (not counted as evictions) …
        for _ in 0..8 {
            let Some((&s, k)) = inner.order.first_key_value() else {
                break;
            };
            let k = *k;
            let stale = inner
                .records
                .get(&k)
                .is_some_and(|(_, r)| r.exp.saturating_add(EXPIRED_KEPT_SECS) < now);
            if !stale || s == seq {
                break;
            }
            inner.order.remove(&s);
            inner.records.remove(&k);
        }
        // … then the least recently issued, counted.
        let mut evicted = 0;
        while inner.records.len() > max {
            let Some((_, k)) = inner.order.pop_first() else {
                break;
            };
            inner.records.remove(&k);
            evicted += 1;
        }
        evicted
    }

    fn get(&self, key: &TokenHash) -> Option<Record> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.records.get(key).map(|(_, r)| r.clone())
    }

    fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .records
            .len()
    }
}

/// The token and its lifetime in a 2xx token answer: `access_token` and `expires_in`
/// (a number, or a string as Entra's v1 endpoint writes it). Without `expires_in` the token's
/// own `exp` claim is used when it is a JWT, else one hour.
pub fn issued(body: &[u8]) -> Option<(String, u64)> {
    let serde_json::Value::Object(answer) = serde_json::from_slice(body).ok()? else {
        return None;
    };
    let token = answer.get("access_token")?.as_str()?.to_string();
    if token.is_empty() {
        return None;
    }
    let expires_in = answer.get("expires_in").and_then(|v| match v {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    });
    Some((token, expires_in.unwrap_or(u64::MAX)))
}

/// When a token issued at `now` with `expires_in` (from [`issued`]) expires.
pub fn expiry(token: &str, expires_in: u64, now: u64) -> u64 {
    if expires_in != u64::MAX {
        return now.saturating_add(expires_in);
    }
    crate::jwt::Jwt::parse(token)
        .ok()
        .and_then(|j| j.time_claim("exp"))
        .and_then(|e| u64::try_from(e).ok())
        .unwrap_or(now + 3600)
}

/// Compares two certificate digests in constant time (aws-lc's `CRYPTO_memcmp`).
pub fn same_certificate(a: &[u8; 32], b: &[u8; 32]) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a, b).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(exp: u64) -> Record {
        Record {
            cert_sha256: [1; 32],
            client_id: "c".into(),
            exp,
        }
    }

    #[test]
    fn the_store_is_bounded_and_evicts_the_least_recently_issued() {
        let store = MemoryBindings::new(3);
        let key = |i: u8| [i; 32];
        let mut evicted = 0;
        for i in 0..5 {
            evicted += store.put(key(i), record(1000), 10);
        }
        assert_eq!(evicted, 2);
        assert_eq!(store.len(), 3);
        assert!(store.get(&key(0)).is_none() && store.get(&key(1)).is_none());
        // Re-issuing the oldest moves it to the newest end.
        store.put(key(2), record(1000), 10);
        store.put(key(5), record(1000), 10);
        assert!(store.get(&key(2)).is_some());
        assert!(store.get(&key(3)).is_none());
    }

    #[test]
    fn long_expired_records_leave_without_counting_as_evictions() {
        let store = MemoryBindings::new(10);
        store.put([1; 32], record(100), 100);
        assert_eq!(
            store.put([2; 32], record(5000), 100 + EXPIRED_KEPT_SECS + 1),
            0
        );
        assert!(store.get(&[1; 32]).is_none());
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn answers_give_the_token_and_its_lifetime() {
        assert_eq!(
            issued(br#"{"access_token":"t","expires_in":3599}"#),
            Some(("t".into(), 3599))
        );
        assert_eq!(
            issued(br#"{"access_token":"t","expires_in":"3599"}"#),
            Some(("t".into(), 3599))
        );
        assert_eq!(issued(br#"{"error":"x"}"#), None);
        assert_eq!(issued(br#"{"access_token":""}"#), None);
        assert_eq!(issued(b"nonsense"), None);
        assert_eq!(expiry("opaque", u64::MAX, 10), 3610);
        assert_eq!(expiry("opaque", 5, 10), 15);
    }

    #[test]
    fn records_encode_and_decode() {
        let r = record(77);
        assert_eq!(decode(&encode(&r)), Some(r));
        assert_eq!(decode(&[0; 39]), None);
    }

    #[test]
    fn digests_compare_by_every_byte() {
        let a = [7u8; 32];
        let mut b = a;
        assert!(same_certificate(&a, &b));
        b[31] ^= 1;
        assert!(!same_certificate(&a, &b));
    }
}
