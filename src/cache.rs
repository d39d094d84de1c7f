//! `cache_tokens = true`: client_credentials tokens served from memory.
//!
//! One cache per client; entries keyed by the upstream URL, the normalized scope (or v1
//! `resource`), and the presenting certificate's `x5t#S256`. A lookup happens only after every
//! check of the request passed. Concurrent misses for one key wait for a single upstream call.
//! Only 200 answers with a usable `expires_in` are stored; errors never are.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::HeaderValue;
use serde_json::{Map, Value};

/// A cached token is dropped this long before it expires.
pub const SAFETY_SECS: u64 = 300;
/// A cached token is never served with less than this left.
pub const MIN_LEFT_SECS: u64 = 60;
/// Entries kept per client; beyond it expired entries, then the oldest, are evicted.
pub const MAX_ENTRIES: usize = 1024;

/// What a cached answer is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    /// The upstream token URL.
    pub url: String,
    /// Sorted, de-duplicated scope values (and v1 `resource`).
    pub scope: String,
    /// `x5t#S256` of the certificate that authenticated the request.
    pub x5t_s256: String,
}

impl CacheKey {
    /// Normalizes `scope` (space-separated, order and duplicates irrelevant) and `resource`.
    pub fn new(url: &str, scope: Option<&str>, resource: Option<&str>, x5t_s256: &str) -> Self {
        let mut scopes: Vec<&str> = scope
            .unwrap_or_default()
            .split(' ')
            .filter(|s| !s.is_empty())
            .collect();
        scopes.sort_unstable();
        scopes.dedup();
        Self {
            url: url.to_string(),
            scope: format!("{}\n{}", scopes.join(" "), resource.unwrap_or_default()),
            x5t_s256: x5t_s256.to_string(),
        }
    }
}

/// A cached token answer.
#[derive(Debug, Clone)]
pub struct Entry {
    body: Map<String, Value>,
    /// The upstream's `Content-Type`.
    pub content_type: Option<HeaderValue>,
    stored_at: u64,
    expires_at: u64,
}

fn lifetime(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        // Entra's v1 endpoint writes numbers as strings.
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

impl Entry {
    /// A cacheable 200 answer: a JSON object whose `expires_in` leaves time after the margins.
    pub fn from_answer(body: &[u8], content_type: Option<HeaderValue>, now: u64) -> Option<Self> {
        let Value::Object(body) = serde_json::from_slice(body).ok()? else {
            return None;
        };
        let expires_in = body.get("expires_in").and_then(lifetime)?;
        if expires_in <= SAFETY_SECS + MIN_LEFT_SECS || !body.contains_key("access_token") {
            return None;
        }
        Some(Self {
            body,
            content_type,
            stored_at: now,
            expires_at: now + expires_in,
        })
    }

    /// When the cached token stops being served (Unix seconds).
    pub fn served_until(&self) -> u64 {
        self.expires_at.saturating_sub(SAFETY_SECS)
    }

    /// The entry as kept in a shared store (JSON; sealed by the caller).
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "body": self.body,
            "content_type": self.content_type.as_ref().and_then(|v| v.to_str().ok()),
            "stored_at": self.stored_at,
            "expires_at": self.expires_at,
        }))
        .unwrap_or_default()
    }

    /// An entry read back from [`Entry::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let Value::Object(mut v) = serde_json::from_slice(bytes).ok()? else {
            return None;
        };
        let Some(Value::Object(body)) = v.remove("body") else {
            return None;
        };
        Some(Self {
            body,
            content_type: v
                .get("content_type")
                .and_then(Value::as_str)
                .and_then(|c| HeaderValue::from_str(c).ok()),
            stored_at: v.get("stored_at")?.as_u64()?,
            expires_at: v.get("expires_at")?.as_u64()?,
        })
    }

    /// Whether it may be served at `now`.
    pub fn fresh(&self, now: u64) -> bool {
        now + SAFETY_SECS < self.expires_at && self.expires_at.saturating_sub(now) >= MIN_LEFT_SECS
    }

    /// The answer at `now`, with `expires_in` (and `ext_expires_in`) reduced by the time spent
    /// in the cache, keeping each value's JSON type.
    pub fn body_at(&self, now: u64) -> Bytes {
        let elapsed = now.saturating_sub(self.stored_at);
        let mut body = self.body.clone();
        for field in ["expires_in", "ext_expires_in"] {
            if let Some(v) = body.get_mut(field) {
                if let Some(n) = lifetime(v) {
                    let left = n.saturating_sub(elapsed);
                    *v = match v {
                        Value::String(_) => Value::String(left.to_string()),
                        _ => Value::from(left),
                    };
                }
            }
        }
        serde_json::to_vec(&body)
            .map(Bytes::from)
            .unwrap_or_default()
    }
}

/// The single-flight slot of one key.
pub type Slot = tokio::sync::Mutex<Option<Entry>>;

/// One client's token cache.
#[derive(Debug, Default)]
pub struct TokenCache {
    slots: Mutex<HashMap<CacheKey, (u64, Arc<Slot>)>>,
}

impl TokenCache {
    /// The slot for `key`, created when missing; returns how many cached tokens were evicted
    /// to make room (empty slots — never filled, or whose request failed — are dropped first
    /// and not counted).
    pub fn slot(&self, key: &CacheKey, now: u64) -> (Arc<Slot>, usize) {
        let Ok(mut slots) = self.slots.lock() else {
            return (Arc::new(tokio::sync::Mutex::new(None)), 0);
        };
        if let Some((_, slot)) = slots.get(key) {
            return (slot.clone(), 0);
        }
        let mut evicted = 0;
        if slots.len() >= MAX_ENTRIES {
            // Drop slots that can no longer serve (and that nobody is filling) …
            slots.retain(|_, (_, slot)| match slot.try_lock() {
                Ok(entry) => match entry.as_ref() {
                    Some(e) if e.fresh(now) => true,
                    Some(_) => {
                        evicted += 1;
                        false
                    }
                    None => false,
                },
                Err(_) => true,
            });
            // … then the oldest.
            while slots.len() >= MAX_ENTRIES {
                let Some(oldest) = slots
                    .iter()
                    .min_by_key(|(_, (at, _))| *at)
                    .map(|(k, _)| k.clone())
                else {
                    break;
                };
                slots.remove(&oldest);
                evicted += 1;
            }
        }
        let slot = Arc::new(tokio::sync::Mutex::new(None));
        slots.insert(key.clone(), (now, slot.clone()));
        (slot, evicted)
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.slots.lock().map(|s| s.len()).unwrap_or(0)
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANSWER: &[u8] =
        br#"{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"t"}"#;

    #[test]
    fn expires_in_is_reduced_by_the_time_in_the_cache() {
        let e = Entry::from_answer(ANSWER, None, 1000).unwrap();
        let body: Value = serde_json::from_slice(&e.body_at(1100)).unwrap();
        assert_eq!(body["expires_in"], 3499);
        assert_eq!(body["ext_expires_in"], 3499);
        assert_eq!(body["access_token"], "t");
        // v1 strings stay strings.
        let v1 =
            Entry::from_answer(br#"{"expires_in":"3599","access_token":"t"}"#, None, 0).unwrap();
        let body: Value = serde_json::from_slice(&v1.body_at(99)).unwrap();
        assert_eq!(body["expires_in"], "3500");
    }

    #[test]
    fn entries_survive_the_shared_store_format() {
        let e = Entry::from_answer(
            ANSWER,
            Some(HeaderValue::from_static("application/json")),
            1000,
        )
        .unwrap();
        let back = Entry::from_bytes(&e.to_bytes()).unwrap();
        assert_eq!(back.body_at(1100), e.body_at(1100));
        assert_eq!(back.content_type, e.content_type);
        assert_eq!(back.served_until(), 1000 + 3599 - SAFETY_SECS);
        assert!(Entry::from_bytes(b"{}").is_none());
    }

    #[test]
    fn entries_expire_five_minutes_before_the_token() {
        let e = Entry::from_answer(ANSWER, None, 1000).unwrap();
        assert!(e.fresh(1000));
        assert!(e.fresh(1000 + 3599 - SAFETY_SECS - 1));
        assert!(!e.fresh(1000 + 3599 - SAFETY_SECS));
        assert!(!e.fresh(1000 + 3599));
    }

    #[test]
    fn short_lived_errors_and_odd_answers_are_not_cacheable() {
        assert!(Entry::from_answer(br#"{"expires_in":360,"access_token":"t"}"#, None, 0).is_none());
        assert!(Entry::from_answer(br#"{"expires_in":361,"access_token":"t"}"#, None, 0).is_some());
        assert!(Entry::from_answer(br#"{"error":"invalid_scope"}"#, None, 0).is_none());
        assert!(Entry::from_answer(br#"{"expires_in":3599}"#, None, 0).is_none());
        assert!(Entry::from_answer(b"[]", None, 0).is_none());
        assert!(Entry::from_answer(b"not json", None, 0).is_none());
    }

    #[test]
    fn keys_normalize_scope_order_and_duplicates() {
        let a = CacheKey::new("u", Some("b a a"), None, "x");
        assert_eq!(a, CacheKey::new("u", Some(" a  b"), None, "x"));
        assert_ne!(a, CacheKey::new("u", Some("a b c"), None, "x"));
        assert_ne!(a, CacheKey::new("u", Some("a b"), None, "y"));
        assert_ne!(
            CacheKey::new("u", None, Some("r1"), "x"),
            CacheKey::new("u", None, Some("r2"), "x")
        );
    }

    #[test]
    fn the_cache_is_bounded_and_evicts_the_oldest_token() {
        let cache = TokenCache::default();
        let mut evicted = 0;
        for i in 0..(MAX_ENTRIES + 10) {
            let (slot, n) = cache.slot(
                &CacheKey::new("u", Some(&i.to_string()), None, "x"),
                i as u64,
            );
            evicted += n;
            *slot.try_lock().unwrap() = Entry::from_answer(ANSWER, None, i as u64);
        }
        assert_eq!(cache.len(), MAX_ENTRIES);
        assert_eq!(evicted, 10);
        // The last keys are kept.
        let (slot, _) = cache.slot(
            &CacheKey::new("u", Some(&(MAX_ENTRIES + 9).to_string()), None, "x"),
            0,
        );
        assert!(slot.try_lock().unwrap().is_some());
    }

    #[test]
    fn empty_slots_make_room_first_and_are_not_counted() {
        let cache = TokenCache::default();
        let mut evicted = 0;
        for i in 0..(MAX_ENTRIES + 10) {
            evicted += cache
                .slot(
                    &CacheKey::new("u", Some(&i.to_string()), None, "x"),
                    i as u64,
                )
                .1;
        }
        assert_eq!(evicted, 0);
        assert!(cache.len() <= MAX_ENTRIES);
    }
}
