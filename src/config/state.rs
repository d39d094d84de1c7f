//! `[state]` (SPEC §11): where per-client state and binding records live.

use super::raw::RawState;
use super::validate::Cx;
use super::*;

/// `state.timeout` when not set.
pub const DEFAULT_STATE_TIMEOUT: Duration = Duration::from_millis(250);

/// A secret read from the environment; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// `[state]` with `store = "redis"`.
#[derive(Debug, Clone)]
pub struct RedisState {
    /// `redis_url` (`redis://` or `rediss://`; an ACL user in it).
    pub url: String,
    /// The password from `redis_password_env`, if named.
    pub password: Option<Secret>,
    /// `redis_ca`, PEM, concatenated (extra trust anchors for `rediss://`).
    pub ca_pem: Option<Vec<u8>>,
    /// `key_prefix`.
    pub key_prefix: String,
    /// `timeout`, per operation.
    pub timeout: Duration,
    /// The sealing keys from `encryption_key_env`.
    pub sealer: Arc<crate::seal::Sealer>,
}

impl RedisState {
    /// What identifies the store, for the restart-only warning (no secret in it).
    pub fn identity(&self) -> String {
        format!("{} {} {:?}", self.url, self.key_prefix, self.timeout)
    }
}

/// `[state]`.
#[derive(Debug, Clone, Default)]
pub enum StateStore {
    /// In this process.
    #[default]
    Memory,
    /// Shared on Redis.
    Redis(RedisState),
}

impl Cx {
    pub(super) fn state(&mut self, s: RawState, env: &dyn Env) -> StateStore {
        match s.store.as_deref().unwrap_or("memory") {
            "memory" => return StateStore::Memory,
            "redis" => {}
            other => {
                self.problem(
                    "state.store",
                    format!("\"{other}\" is not \"memory\" or \"redis\""),
                );
                return StateStore::Memory;
            }
        }
        let url = s
            .redis_url
            .unwrap_or_else(|| "redis://127.0.0.1:6379/0".to_string());
        if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
            self.problem(
                "state.redis_url",
                "must start with redis:// or rediss:// (TLS)",
            );
        }
        let password = match s.redis_password_env.as_deref().filter(|v| !v.is_empty()) {
            None => None,
            Some(name) => match env.var(name) {
                Some(v) if !v.is_empty() => Some(Secret(v)),
                _ => {
                    self.problem(
                        "state.redis_password_env",
                        format!("the variable {name} is not set"),
                    );
                    None
                }
            },
        };
        let mut ca_pem = Vec::new();
        for (i, p) in s.redis_ca.iter().enumerate() {
            let key = format!("state.redis_ca[{i}]");
            let certs = self.certs(&key, p);
            for c in certs {
                use base64::Engine as _;
                let b64 = base64::engine::general_purpose::STANDARD.encode(c.as_ref());
                ca_pem.extend_from_slice(b"-----BEGIN CERTIFICATE-----\n");
                for line in b64.as_bytes().chunks(64) {
                    ca_pem.extend_from_slice(line);
                    ca_pem.push(b'\n');
                }
                ca_pem.extend_from_slice(b"-----END CERTIFICATE-----\n");
            }
        }
        let timeout = self.duration("state.timeout", s.timeout.as_deref(), DEFAULT_STATE_TIMEOUT);
        let key_env = s
            .encryption_key_env
            .unwrap_or_else(|| "MTLS_GATEWAY_STATE_KEY".to_string());
        let sealer =
            match crate::seal::Sealer::from_env_value(&key_env, env.var(&key_env).as_deref()) {
                Ok(s) => Arc::new(s),
                Err(e) => {
                    self.problem("state.encryption_key_env", e);
                    return StateStore::Memory;
                }
            };
        StateStore::Redis(RedisState {
            url,
            password,
            ca_pem: (!ca_pem.is_empty()).then_some(ca_pem),
            key_prefix: s.key_prefix.unwrap_or_else(|| "mtls-gateway:".to_string()),
            timeout,
            sealer,
        })
    }
}
