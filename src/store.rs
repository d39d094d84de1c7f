//! The shared store (SPEC §11 `[state] store = "redis"`): Redis, or anything speaking its
//! protocol (Valkey, Azure Cache for Redis), through redis-rs's connection manager (reconnects
//! by itself) with TLS through rustls. Every operation is bounded by `state.timeout`, timed,
//! and counted; `state_store_up` follows the last answer and a background PING.
//!
//! Keys: `{prefix}binding:{hex SHA-256 of the token}`, `{prefix}token:{hex SHA-256 of client,
//! URL, scope, certificate}` (+ `:lock`), `{prefix}rate:{client_id}`. Values that hold a
//! token or a binding are sealed ([`crate::seal`]) with the key as associated data.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::config::RedisState;
use crate::metrics::Metrics;
use crate::seal::Sealer;

/// GCRA in one script, atomic across replicas: `KEYS[1]` the client's theoretical arrival
/// time, `ARGV[1]` the emission interval (ms), `ARGV[2]` the burst. Answers 0 (allowed) or
/// the milliseconds to wait. The clock is Redis's, so replicas' clocks do not matter.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local tolerance = interval * (tonumber(ARGV[2]) - 1)
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
if now < tat - tolerance then return tat - tolerance - now end
local new_tat = tat + interval
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil(new_tat - now + interval))
return 0
";

/// Deletes a lock only when it still holds this holder's value.
const UNLOCK: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// Why the store could not answer.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the state store is unavailable: {0}")]
pub struct StoreError(pub String);

/// How often the store is pinged so that `state_store_up` and reconnection do not wait for
/// traffic.
pub const PING_INTERVAL: Duration = Duration::from_secs(1);

/// A connection to the shared store.
pub struct RedisStore {
    conn: ConnectionManager,
    prefix: String,
    timeout: Duration,
    /// Seals and opens values.
    pub sealer: Arc<Sealer>,
    metrics: Arc<Metrics>,
    up: AtomicBool,
    gcra: redis::Script,
    unlock: redis::Script,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .field("up", &self.up.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Prepares the store without connecting: the gateway starts (and serves) with Redis down.
    pub fn new(settings: &RedisState, metrics: Arc<Metrics>) -> Result<Self, String> {
        use redis::IntoConnectionInfo as _;
        let mut info = settings
            .url
            .as_str()
            .into_connection_info()
            .map_err(|e| format!("state.redis_url: {e}"))?;
        if let Some(password) = &settings.password {
            let redis = info.redis_settings().clone().set_password(&password.0);
            info = info.set_redis_settings(redis);
        }
        let client = match &settings.ca_pem {
            Some(pem) => redis::Client::build_with_tls(
                info,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem.clone()),
                },
            ),
            None => redis::Client::open(info),
        }
        .map_err(|e| format!("state.redis_url: {e}"))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(settings.timeout))
            .set_response_timeout(Some(settings.timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| format!("state.redis_url: {e}"))?;
        metrics.state_store_up.set(0);
        Ok(Self {
            conn,
            prefix: settings.key_prefix.clone(),
            timeout: settings.timeout,
            sealer: settings.sealer.clone(),
            metrics,
            up: AtomicBool::new(false),
            gcra: redis::Script::new(GCRA),
            unlock: redis::Script::new(UNLOCK),
        })
    }

    /// `{prefix}{kind}:{hex digest}`.
    pub fn key(&self, kind: &str, digest: &[u8; 32]) -> String {
        format!(
            "{}{kind}:{}",
            self.prefix,
            crate::identity::hex_lower(digest)
        )
    }

    /// `{prefix}rate:{client_id}`.
    pub fn rate_key(&self, client_id: &str) -> String {
        format!("{}rate:{client_id}", self.prefix)
    }

    /// Whether the last operation (or PING) was answered.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    fn mark(&self, up: bool) {
        if self.up.swap(up, Ordering::Relaxed) != up {
            if up {
                tracing::info!("state store reachable again");
            } else {
                tracing::warn!("state store unreachable: caches skipped, rate limits local, binding issuance refused");
            }
        }
        self.metrics.state_store_up.set(i64::from(up));
    }

    async fn run<T, F>(&self, op: &'static str, call: F) -> Result<T, StoreError>
    where
        F: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let started = Instant::now();
        let result = tokio::time::timeout(self.timeout, call).await;
        self.metrics
            .state_store_duration(op, started.elapsed().as_secs_f64());
        let result = match result {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(StoreError(format!("{op}: {:?}", e.kind()))),
            Err(_) => Err(StoreError(format!(
                "{op}: no answer within {:?}",
                self.timeout
            ))),
        };
        match &result {
            Ok(_) => self.mark(true),
            Err(e) => {
                self.metrics.state_store_error(op);
                tracing::debug!(error = %e, "state store operation failed");
                self.mark(false);
            }
        }
        result
    }

    /// `GET key`.
    pub async fn get(&self, op: &'static str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut conn = self.conn.clone();
        let cmd = redis::cmd("GET").arg(key).to_owned();
        self.run(op, async move { cmd.query_async(&mut conn).await })
            .await
    }

    /// `SET key value PX ttl [NX]`: whether it was set.
    pub async fn set(
        &self,
        op: &'static str,
        key: &str,
        value: &[u8],
        ttl: Duration,
        nx: bool,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let mut cmd = redis::cmd("SET");
        cmd.arg(key)
            .arg(value)
            .arg("PX")
            .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1));
        if nx {
            cmd.arg("NX");
        }
        let set: Option<String> = self
            .run(op, async move { cmd.query_async(&mut conn).await })
            .await?;
        Ok(set.is_some())
    }

    /// Releases a lock taken with [`RedisStore::set`] NX, if this holder still has it.
    pub async fn unlock(&self, key: &str, holder: &[u8]) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let mut invocation = self.unlock.prepare_invoke();
        invocation.key(key).arg(holder);
        let _: i64 = self
            .run(
                "unlock",
                async move { invocation.invoke_async(&mut conn).await },
            )
            .await?;
        Ok(())
    }

    /// One request against the shared GCRA limit of `key`: `Ok(None)` allowed,
    /// `Ok(Some(seconds))` to wait.
    pub async fn rate_limit(
        &self,
        key: &str,
        interval: Duration,
        burst: u32,
    ) -> Result<Option<u64>, StoreError> {
        let mut conn = self.conn.clone();
        let mut invocation = self.gcra.prepare_invoke();
        invocation
            .key(key)
            .arg(
                u64::try_from(interval.as_millis())
                    .unwrap_or(u64::MAX)
                    .max(1),
            )
            .arg(burst.max(1));
        let wait_ms: i64 = self
            .run("rate_limit", async move {
                invocation.invoke_async(&mut conn).await
            })
            .await?;
        Ok((wait_ms > 0).then(|| (wait_ms as u64).div_ceil(1000).max(1)))
    }

    /// PINGs every [`PING_INTERVAL`] until the process ends, keeping `state_store_up` true
    /// and the connection re-established without traffic.
    pub async fn watch(self: Arc<Self>) {
        loop {
            let mut conn = self.conn.clone();
            let _ = self
                .run("ping", async move {
                    redis::cmd("PING").query_async::<String>(&mut conn).await
                })
                .await;
            tokio::time::sleep(PING_INTERVAL).await;
        }
    }
}
