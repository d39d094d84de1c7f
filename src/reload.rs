//! Configuration generations: building one (reusing unchanged upstreams, carrying per-client
//! state), swapping it atomically on SIGHUP or when a named file changes, and keeping the
//! embedded identity providers' registrations in step.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls_pki_types::CertificateDer;

use crate::config::{Config, UpstreamKind};
use crate::gateway::Gateway;
use crate::idp::Idp;
use crate::metrics::{Metrics, ResultLabels};
use crate::state::{ClientStates, MemoryStates};
use crate::upstream::Upstream;

/// How often the files a configuration names are checked for changes.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// A running embedded identity provider.
pub(crate) struct EmbeddedIdp {
    pub(crate) addr: SocketAddr,
    pub(crate) ca: CertificateDer<'static>,
    pub(crate) tenant: String,
    pub(crate) idp: Arc<Idp>,
}

/// Why a reload was refused (the running configuration stays).
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The configuration or a file it names has problems, each with its key.
    #[error("{0}")]
    Config(crate::config::ConfigErrors),
    /// The new generation could not be set up (TLS, an upstream, an embedded IdP).
    #[error("{0}")]
    Setup(String),
}

/// Builds and swaps configuration generations.
pub(crate) struct Reloader {
    pub(crate) path: PathBuf,
    pub(crate) state: Arc<ArcSwap<Gateway>>,
    pub(crate) tls: Arc<ArcSwap<rustls::ServerConfig>>,
    pub(crate) idps: BTreeMap<String, EmbeddedIdp>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) lock: Mutex<()>,
}

impl Reloader {
    /// A gateway generation for `config`, reusing unchanged upstreams (and their pools).
    fn build(
        &self,
        config: Config,
        previous: Option<&Gateway>,
    ) -> Result<(Gateway, Arc<rustls::ServerConfig>), String> {
        build(config, previous, &self.idps, &self.metrics)
    }

    /// Re-reads the configuration and every file it names; swaps atomically, or keeps the
    /// current generation and reports every problem.
    pub(crate) fn reload(&self) -> Result<(), ReloadError> {
        let _serial = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let result = crate::config::load(&self.path)
            .map_err(ReloadError::Config)
            .and_then(|config| {
                let current = self.state.load_full();
                warn_restart_only(&current.config, &config);
                let (gateway, tls) = self
                    .build(config, Some(&current))
                    .map_err(ReloadError::Setup)?;
                for (name, embedded) in &self.idps {
                    embedded
                        .idp
                        .set_registrations(registrations(&gateway.config, name))
                        .map_err(ReloadError::Setup)?;
                    if let Some(spec) = gateway.config.upstreams.get(name) {
                        embedded
                            .idp
                            .set_federated(&spec.federated)
                            .map_err(ReloadError::Setup)?;
                    }
                }
                self.metrics.set_expiry(&gateway.config);
                self.metrics.prime(&gateway.config);
                // Only once the new generation serves: a refused reload keeps every state.
                gateway.states.retain(
                    &gateway
                        .config
                        .registry
                        .iter()
                        .map(|r| r.client_id.as_str())
                        .collect(),
                );
                self.tls.store(tls);
                self.state.store(Arc::new(gateway));
                Ok(())
            });
        let label = if result.is_ok() { "success" } else { "failure" };
        self.metrics
            .config_reloads
            .get_or_create(&ResultLabels { result: label })
            .inc();
        self.metrics
            .config_last_reload_success
            .set(i64::from(result.is_ok()));
        match &result {
            Ok(()) => tracing::info!(config = %self.path.display(), "configuration reloaded"),
            // One event per problem, each naming its key (and file).
            Err(ReloadError::Config(errors)) => {
                for problem in &errors.problems {
                    tracing::error!(config = %errors.file.display(), "reload failed, keeping the running configuration: {problem}");
                }
            }
            Err(ReloadError::Setup(e)) => {
                tracing::error!(config = %self.path.display(), "reload failed, keeping the running configuration: {e}");
            }
        }
        result
    }
}

pub(crate) fn registrations(config: &Config, upstream: &str) -> Vec<crate::idp::Registered> {
    config
        .registry
        .iter()
        .filter(|r| r.upstream == upstream)
        .map(|r| {
            let cert = r
                .credential
                .federated_token()
                .is_none()
                .then(|| r.credential.cert.clone());
            crate::idp::Registered {
                client_id: r.client_id.clone(),
                cert,
                kid: r.credential.kid.clone(),
            }
        })
        .collect()
}

fn warn_restart_only(old: &Config, new: &Config) {
    let mut changed = Vec::new();
    if old.server.listen != new.server.listen {
        changed.push("server.listen");
    }
    if old.admin.as_ref().map(|a| a.listen) != new.admin.as_ref().map(|a| a.listen) {
        changed.push("admin.listen");
    }
    let plain = |c: &Config| c.front_proxy.as_ref().and_then(|f| f.plain_listen);
    if plain(old) != plain(new) {
        changed.push("front_proxy.plain_listen");
    }
    let state = |c: &Config| match &c.state {
        crate::config::StateStore::Memory => "memory".to_string(),
        crate::config::StateStore::Redis(r) => r.identity(),
    };
    if state(old) != state(new) {
        changed.push("state");
    }
    let authz = |c: &Config| c.authz.as_ref().map(|a| a.listen);
    if authz(old) != authz(new) {
        changed.push("authz.listen");
    }
    if old.limits.max_connections != new.limits.max_connections {
        changed.push("limits.max_connections");
    }
    if old.limits.shutdown_grace != new.limits.shutdown_grace {
        changed.push("limits.shutdown_grace");
    }
    let mut changed: Vec<String> = changed.into_iter().map(String::from).collect();
    // An embedded identity provider keeps the socket it bound at start.
    for (name, spec) in &new.upstreams {
        let listen = |s: &crate::config::UpstreamSpec| match &s.kind {
            UpstreamKind::Embedded { listen, .. } => Some(*listen),
            _ => None,
        };
        if let (Some(before), Some(after)) =
            (old.upstreams.get(name).and_then(listen), listen(spec))
        {
            if before != after {
                changed.push(format!("upstreams.{name}.listen"));
            }
        }
    }
    for name in changed {
        tracing::warn!(
            key = name,
            "this setting changes only on restart; the rest of the new configuration applies now"
        );
    }
}

pub(crate) fn build(
    mut config: Config,
    previous: Option<&Gateway>,
    idps: &BTreeMap<String, EmbeddedIdp>,
    metrics: &Arc<Metrics>,
) -> Result<(Gateway, Arc<rustls::ServerConfig>), String> {
    // Per-client state outlives generations: unchanged registrations keep theirs.
    let states: Arc<dyn ClientStates> = match previous {
        Some(p) => p.states.clone(),
        None => Arc::new(MemoryStates::default()),
    };
    // So are binding records: a reload applies only the new bound.
    let max_records = config
        .binding
        .as_ref()
        .map_or(crate::config::DEFAULT_MAX_RECORDS, |b| b.max_records);
    // The store is chosen at start: a reload keeps it (and warns when [state] changed).
    let store = match previous {
        Some(p) => p.store.clone(),
        None => match &config.state {
            crate::config::StateStore::Memory => None,
            crate::config::StateStore::Redis(settings) => Some(Arc::new(
                crate::store::RedisStore::new(settings, metrics.clone())?,
            )),
        },
    };
    let bindings = match (previous, &store) {
        (Some(p), _) => {
            p.bindings.set_max_records(max_records);
            p.bindings.clone()
        }
        (None, Some(store)) => Arc::new(crate::binding::Bindings::Redis(
            crate::binding::RedisBindings::new(store.clone()),
        )),
        (None, None) => Arc::new(crate::binding::Bindings::Memory(
            crate::binding::MemoryBindings::new(max_records),
        )),
    };
    config
        .registry
        .adopt_states(|reg| states.adopt(&reg.client_id, reg.fingerprint, reg.state.clone()));
    let mut upstreams = HashMap::new();
    for (name, spec) in &config.upstreams {
        if let Some(old) = previous.and_then(|p| p.upstreams.get(name)) {
            if old.spec == *spec {
                upstreams.insert(name.clone(), old.clone());
                continue;
            }
        }
        let embedded = match &spec.kind {
            UpstreamKind::Embedded {
                tenant, profile, ..
            } => {
                let running = idps.get(name).ok_or_else(|| {
                    format!("upstreams.{name}: a new embedded identity provider needs a restart")
                })?;
                if !running.tenant.eq_ignore_ascii_case(tenant) {
                    return Err(format!(
                        "upstreams.{name}.tenant: the embedded identity provider's tenant changes only on restart"
                    ));
                }
                if running.idp.profile() != *profile {
                    return Err(format!(
                        "upstreams.{name}.profile: the embedded identity provider's profile changes only on restart"
                    ));
                }
                Some((running.addr, running.ca.clone()))
            }
            _ => None,
        };
        let upstream =
            Upstream::new(spec.clone(), embedded).map_err(|e| format!("upstreams.{name}: {e}"))?;
        upstreams.insert(name.clone(), Arc::new(upstream));
    }
    let resumption = match previous {
        Some(p) => p.resumption.clone(),
        None => {
            Arc::new(crate::tls::Resumption::new().map_err(|e| format!("TLS ticket keys: {e}"))?)
        }
    };
    let tls = crate::tls::server_config(&config.server, ca_hints(&config), &resumption)
        .map_err(|e| format!("server TLS: {e}"))?;
    Ok((
        Gateway {
            generation: crate::gateway::next_generation(),
            states,
            config: Arc::new(config),
            upstreams,
            metrics: metrics.clone(),
            bindings,
            store,
            resumption,
        },
        tls,
    ))
}

/// The CA names offered to clients: `client_ca`, then every pinned CA not already listed.
fn ca_hints(config: &Config) -> Vec<rustls::DistinguishedName> {
    let mut hints = config.server.client_trust.anchors.hints();
    for reg in config.registry.iter() {
        if let crate::registry::AuthMethod::Pki { pin: Some(pin), .. } = &reg.method {
            for hint in pin.hints() {
                if !hints.iter().any(|h| h.as_ref() == hint.as_ref()) {
                    hints.push(hint);
                }
            }
        }
    }
    hints
}

/// What identifies a file's content cheaply: follows symlinks, so a Kubernetes `..data` swap
/// (a new inode behind the same path) is seen.
pub(crate) type Fingerprint = Vec<Option<(u64, Option<std::time::SystemTime>, u64)>>;

pub(crate) fn fingerprint(files: &[PathBuf]) -> Fingerprint {
    files
        .iter()
        .map(|f| {
            std::fs::metadata(f).ok().map(|m| {
                #[cfg(unix)]
                let inode = std::os::unix::fs::MetadataExt::ino(&m);
                #[cfg(not(unix))]
                let inode = 0;
                (m.len(), m.modified().ok(), inode)
            })
        })
        .collect()
}

/// Reloads when a file of the configuration changes. `seen` is the fingerprint taken when
/// the configuration was loaded, so that a change before this task first runs is not missed.
pub(crate) async fn watch_files(reloader: Arc<Reloader>, mut seen: Fingerprint) {
    let mut files = reloader.state.load().config.files.clone();
    loop {
        tokio::time::sleep(WATCH_INTERVAL).await;
        let current = reloader.state.load().config.files.clone();
        if current != files {
            // A reload (SIGHUP or ours) changed the set of files.
            files = current;
            seen = fingerprint(&files);
            continue;
        }
        let now = fingerprint(&files);
        if now == seen {
            continue;
        }
        // Let a writer finish (editors write in steps; Kubernetes swaps at once).
        tokio::time::sleep(Duration::from_millis(200)).await;
        tracing::info!("a configured file changed; reloading");
        let r = reloader.clone();
        let _ = tokio::task::spawn_blocking(move || r.reload()).await;
        files = reloader.state.load().config.files.clone();
        seen = fingerprint(&files);
    }
}
