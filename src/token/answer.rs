//! Answering an authenticated, authorized token request: forwarded (and bound), or from the
//! client's token cache, in this process or on the shared store.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::Response;
use http_body_util::Full;

use super::{forward, relay, Audit};
use crate::error::{ErrorKind, GatewayError};
use crate::form::Form;
use crate::gateway::Gateway;
use crate::registry::Registration;
use crate::trust::{now_secs, PeerCertificate};

/// An authenticated, authorized request, ready to be answered.
pub(super) struct Ready<'r> {
    pub(super) gw: &'r Gateway,
    pub(super) reg: &'r Registration,
    pub(super) peer: &'r PeerCertificate,
    pub(super) upstream: &'r Arc<crate::upstream::Upstream>,
    pub(super) url: &'r str,
    pub(super) client_id: &'r str,
    pub(super) form: &'r Form<'r>,
}

impl Ready<'_> {
    /// A cached answer for this request.
    async fn hit(
        &self,
        hit: &crate::cache::Entry,
        now: u64,
        audit: &mut Audit,
    ) -> Result<Response<Full<Bytes>>, GatewayError> {
        self.gw.metrics.token_cache_hits.inc();
        audit.cache = Some("hit");
        let body = hit.body_at(now);
        // The cached token carries its record: written again, in case it was evicted.
        bind(self.gw, self.reg, self.peer, &body, audit).await?;
        let mut response = Response::builder().status(http::StatusCode::OK);
        if let Some(ct) = &hit.content_type {
            response = response.header(CONTENT_TYPE, ct);
        }
        response
            .body(Full::new(body))
            .map_err(|e| GatewayError::internal(e.to_string()))
    }

    /// The token cache on the shared store: a hit from any replica; on a miss one replica
    /// (the lock holder) asks the upstream while the others wait for its answer, or ask
    /// themselves once the holder is gone. The store not answering skips the cache.
    async fn cached_shared(
        &self,
        store: &crate::store::RedisStore,
        key: &crate::cache::CacheKey,
        slot: &crate::cache::Slot,
        audit: &mut Audit,
    ) -> Result<Response<Full<Bytes>>, GatewayError> {
        let gw = self.gw;
        let digest = crate::identity::sha256(
            format!(
                "{}\n{}\n{}\n{}",
                self.client_id, key.url, key.scope, key.x5t_s256
            )
            .as_bytes(),
        );
        let entry_key = store.key("token", &digest);
        let read = |entry_key| shared_entry(store, entry_key);
        // Hits need no lock; misses of this process queue here, so that one of them at a
        // time competes for the replicas' lock.
        let now = now_secs() as u64;
        if let Ok(Some(hit)) = read(&entry_key).await {
            if hit.fresh(now) {
                return self.hit(&hit, now, audit).await;
            }
        }
        let lock_key = format!("{entry_key}:lock");
        let lock_for = self.upstream.spec.timeout + std::time::Duration::from_secs(1);
        let give_up = Instant::now() + lock_for + std::time::Duration::from_secs(1);
        let mut holder = [0u8; 16];
        let _ = aws_lc_rs::rand::fill(&mut holder);
        let holder = crate::identity::hex_lower(&holder);
        let _local = slot.lock().await;
        loop {
            let now = now_secs() as u64;
            match read(&entry_key).await {
                Ok(Some(hit)) if hit.fresh(now) => return self.hit(&hit, now, audit).await,
                Ok(_) => {}
                Err(_) => break,
            }
            if Instant::now() > give_up {
                break;
            }
            match store
                .set("lock", &lock_key, holder.as_bytes(), lock_for, true)
                .await
            {
                Ok(true) => {
                    // Another replica may have filled it between the read and the lock.
                    let now = now_secs() as u64;
                    if let Ok(Some(hit)) = read(&entry_key).await {
                        if hit.fresh(now) {
                            let _ = store.unlock(&lock_key, holder.as_bytes()).await;
                            return self.hit(&hit, now, audit).await;
                        }
                    }
                    gw.metrics.token_cache_misses.inc();
                    audit.cache = Some("miss");
                    let answer = self.forward_bound(audit).await;
                    if let Ok(answer) = &answer {
                        self.store_shared(store, &entry_key, answer).await;
                    }
                    let _ = store.unlock(&lock_key, holder.as_bytes()).await;
                    return relay(answer?);
                }
                Ok(false) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
                Err(_) => break,
            }
        }
        // The store is not answering, or the holder took too long: ask without caching.
        gw.metrics.token_cache_misses.inc();
        audit.cache = Some("miss");
        relay(self.forward_bound(audit).await?)
    }

    /// Writes a cacheable answer to the shared store, sealed, until it stops being served.
    async fn store_shared(
        &self,
        store: &crate::store::RedisStore,
        entry_key: &str,
        answer: &crate::upstream::UpstreamResponse,
    ) {
        if answer.status != http::StatusCode::OK {
            return;
        }
        let now = now_secs() as u64;
        let Some(entry) =
            crate::cache::Entry::from_answer(&answer.body, answer.content_type.clone(), now)
        else {
            return;
        };
        let Some(sealed) = store.sealer.seal(entry_key.as_bytes(), &entry.to_bytes()) else {
            return;
        };
        let ttl = std::time::Duration::from_secs(entry.served_until().saturating_sub(now).max(1));
        let _ = store.set("cache_set", entry_key, &sealed, ttl, false).await;
    }

    /// Forwards, and binds a 2xx answer's token before it is relayed.
    pub(super) async fn forward_bound(
        &self,
        audit: &mut Audit,
    ) -> Result<crate::upstream::UpstreamResponse, GatewayError> {
        let (gw, reg) = (self.gw, self.reg);
        let answer = forward(
            gw,
            reg,
            self.upstream,
            self.url,
            self.client_id,
            self.form,
            audit,
        )
        .await?;
        if answer.status.is_success() {
            bind(gw, reg, self.peer, &answer.body, audit).await?;
        }
        Ok(answer)
    }

    /// `cache_tokens`: a fresh cached answer for this certificate and scope, else one
    /// upstream call for all concurrent requests of the key.
    pub(super) async fn cached(
        &self,
        cache: &crate::cache::TokenCache,
        audit: &mut Audit,
    ) -> Result<Response<Full<Bytes>>, GatewayError> {
        let gw = self.gw;
        let key = crate::cache::CacheKey::new(
            self.url,
            self.form.get("scope"),
            self.form.get("resource"),
            &self.peer.identity.x5t_s256,
        );
        let now = now_secs() as u64;
        let (slot, evicted) = cache.slot(&key, now);
        if evicted > 0 {
            gw.metrics.token_cache_evictions.inc_by(evicted as u64);
        }
        if let Some(store) = &gw.store {
            return self.cached_shared(store, &key, &slot, audit).await;
        }
        // Concurrent misses for one key wait here for a single upstream call.
        let mut entry = slot.lock().await;
        let now = now_secs() as u64;
        if let Some(hit) = entry.as_ref().filter(|e| e.fresh(now)) {
            return self.hit(hit, now, audit).await;
        }
        gw.metrics.token_cache_misses.inc();
        audit.cache = Some("miss");
        let answer = self.forward_bound(audit).await?;
        *entry = if answer.status == http::StatusCode::OK {
            crate::cache::Entry::from_answer(
                &answer.body,
                answer.content_type.clone(),
                now_secs() as u64,
            )
        } else {
            None
        };
        relay(answer)
    }
}

/// With `[binding]` in certificate mode, records that the access token of a 2xx `answer`
/// belongs to `peer`'s certificate (SPEC §10), before the client gets the token; a record
/// that cannot be written means no token (503).
async fn bind(
    gw: &Gateway,
    reg: &Registration,
    peer: &PeerCertificate,
    answer: &[u8],
    audit: &mut Audit,
) -> Result<(), GatewayError> {
    if !gw
        .config
        .binding
        .as_ref()
        .is_some_and(|b| b.writes_records())
    {
        return Ok(());
    }
    let Some((token, expires_in)) = crate::binding::issued(answer) else {
        return Ok(());
    };
    let now = now_secs().max(0) as u64;
    let key = crate::binding::token_hash(&token);
    audit.token_ref = Some(crate::binding::log_ref(&key));
    let record = crate::binding::Record {
        cert_sha256: peer.identity.sha256,
        client_id: reg.client_id.as_str().into(),
        exp: crate::binding::expiry(&token, expires_in, now),
    };
    match gw.bindings.put(key, record, now).await {
        Ok(evicted) => {
            gw.metrics.binding_written("success");
            if evicted > 0 {
                gw.metrics.binding_records_evicted.inc_by(evicted as u64);
            }
            if let Some(n) = gw.bindings.records() {
                gw.metrics.binding_records.set(n as i64);
            }
            Ok(())
        }
        Err(e) => {
            gw.metrics.binding_written("failure");
            Err(GatewayError::new(
                ErrorKind::Unavailable,
                "the token could not be bound to the client certificate; no token is issued",
            )
            .with_reason(e.to_string()))
        }
    }
}

/// The cached answer under `entry_key` on the shared store, if it opens (sealed by this
/// deployment's key for this key).
async fn shared_entry(
    store: &crate::store::RedisStore,
    entry_key: &str,
) -> Result<Option<crate::cache::Entry>, crate::store::StoreError> {
    let sealed = store.get("cache_get", entry_key).await?;
    Ok(sealed.and_then(|s| {
        store
            .sealer
            .open(entry_key.as_bytes(), &s)
            .and_then(|plain| crate::cache::Entry::from_bytes(&plain))
    }))
}
