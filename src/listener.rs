//! Starting and stopping the gateway: the embedded identity providers, the mTLS accept loop
//! (handshake timeout, connection limits), the admin listener, and graceful shutdown. Reload
//! lives in [`crate::reload`], the connection I/O wrappers in [`crate::net`].

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::CertificateDer;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::config::{Config, UpstreamKind};
use crate::gateway::{ConnInfo, Gateway};
use crate::idp::Idp;
use crate::metrics::{ConnectionGuard, Metrics, ResultLabels};
use crate::net::{Activity, FirstByteDeadline, QuickAck, TrackedBody, Verdict};
use crate::reload::{build, fingerprint, registrations, watch_files, EmbeddedIdp, Reloader};
use crate::service;

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener could not bind.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// TLS or upstream setup failed.
    #[error("{0}")]
    Setup(String),
}

/// A running gateway.
pub struct Running {
    /// The mTLS listener's bound address.
    pub addr: SocketAddr,
    /// The admin listener's bound address.
    pub admin_addr: Option<SocketAddr>,
    /// The plain listener's bound address (`front_proxy.plain_listen`).
    pub plain_addr: Option<SocketAddr>,
    /// The decision listener's bound address (`[authz] listen`).
    pub authz_addr: Option<SocketAddr>,
    /// Bound addresses of embedded identity providers, by upstream name.
    pub idp_addrs: BTreeMap<String, SocketAddr>,
    /// TLS trust anchors of embedded identity providers, by upstream name.
    pub idp_cas: BTreeMap<String, CertificateDer<'static>>,
    /// The metrics registry.
    pub metrics: Arc<Metrics>,
    reloader: Arc<Reloader>,
    ready: Arc<AtomicBool>,
    shutdown: watch::Sender<bool>,
    idp_shutdown: watch::Sender<bool>,
    idp_tasks: Vec<JoinHandle<()>>,
    main: JoinHandle<()>,
    others: Vec<JoinHandle<()>>,
}

impl Running {
    /// Reloads the configuration now (what SIGHUP does).
    pub fn reload(&self) -> Result<(), crate::reload::ReloadError> {
        self.reloader.reload()
    }

    /// The shutdown sequence (SPEC §8): `/readyz` answers 503 at once; serving goes on for
    /// `shutdown_delay` so that load balancers stop sending; then the listeners stop
    /// accepting, connections are closed gracefully (HTTP/2 GOAWAY, HTTP/1.1
    /// `Connection: close`) and the requests in flight finish within `shutdown_grace`; only
    /// then do the embedded identity providers stop, so that those requests reach them.
    pub async fn shutdown(self) {
        self.ready.store(false, Ordering::SeqCst);
        let delay = self.reloader.state.load().config.limits.shutdown_delay;
        if !delay.is_zero() {
            tracing::info!(
                ?delay,
                "not ready; serving on for shutdown_delay before draining"
            );
            tokio::time::sleep(delay).await;
        }
        let _ = self.shutdown.send(true);
        let _ = self.main.await;
        let _ = self.idp_shutdown.send(true);
        for task in self.idp_tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
        for task in self.others {
            task.abort();
        }
    }
}

/// Binds `addr`, reporting the bound address (port 0 picks one).
async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), StartError> {
    let bind_error = |source| StartError::Bind { addr, source };
    let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
    let bound = listener.local_addr().map_err(bind_error)?;
    Ok((listener, bound))
}

/// Binds an optional listener, logging `ready` with its bound address.
async fn bind_optional(
    addr: Option<SocketAddr>,
    ready: &'static str,
) -> Result<Option<(TcpListener, SocketAddr)>, StartError> {
    let Some(addr) = addr else {
        return Ok(None);
    };
    let (l, bound) = bind(addr).await?;
    tracing::info!(addr = %bound, "{ready}");
    Ok(Some((l, bound)))
}

/// Starts the embedded identity providers of `config`, each on its own listener.
pub(crate) async fn start_idps(
    config: &Config,
    shutdown: &watch::Receiver<bool>,
) -> Result<(BTreeMap<String, EmbeddedIdp>, Vec<JoinHandle<()>>), StartError> {
    let mut idps = BTreeMap::new();
    let mut tasks = Vec::new();
    for (name, spec) in &config.upstreams {
        let UpstreamKind::Embedded {
            listen,
            tenant,
            profile,
        } = &spec.kind
        else {
            continue;
        };
        let (listener, addr) = bind(*listen).await?;
        let (ca, tls) = crate::idp::ephemeral_tls(addr).map_err(StartError::Setup)?;
        let authority = crate::upstream::authority_of(addr);
        let idp = Arc::new(
            Idp::with_profile(tenant, &authority, registrations(config, name), *profile)
                .map_err(StartError::Setup)?,
        );
        idp.set_federated(&spec.federated)
            .map_err(StartError::Setup)?;
        tracing::info!(upstream = %name, %authority, tenant = %tenant, "embedded identity provider listening");
        tasks.push(tokio::spawn(crate::idp::serve(
            listener,
            tls,
            idp.clone(),
            shutdown.clone(),
        )));
        let tenant = tenant.clone();
        idps.insert(
            name.clone(),
            EmbeddedIdp {
                addr,
                ca,
                tenant,
                idp,
            },
        );
    }
    Ok((idps, tasks))
}

/// Binds every listener and starts serving `config`.
pub async fn start(config: Config) -> Result<Running, StartError> {
    let (shutdown, shutdown_rx) = watch::channel(false);
    let (idp_shutdown, idp_shutdown_rx) = watch::channel(false);
    let metrics = Arc::new(Metrics::new());
    let mut others = Vec::new();
    let (idps, idp_tasks) = start_idps(&config, &idp_shutdown_rx).await?;
    let idp_addrs = idps.iter().map(|(n, e)| (n.clone(), e.addr)).collect();
    let idp_cas = idps
        .iter()
        .map(|(n, e)| (n.clone(), e.ca.clone()))
        .collect();

    metrics.set_expiry(&config);
    metrics.prime(&config);
    let seen = fingerprint(&config.files);
    let path = config.source.clone();
    let listen = config.server.listen;
    let admin = config.admin.as_ref().map(|a| a.listen);
    let admin_head_timeout = config.limits.header_read_timeout;
    let plain_listen = config.front_proxy.as_ref().and_then(|f| f.plain_listen);
    let authz_listen = config.authz.as_ref().map(|a| a.listen);
    let (gateway, tls) = build(config, None, &idps, &metrics).map_err(StartError::Setup)?;
    if let Some(store) = &gateway.store {
        others.push(tokio::spawn(store.clone().watch()));
    }
    let (listener, addr) = bind(listen).await?;
    let plain = bind_optional(plain_listen, "plain listener for trusted proxies ready").await?;
    let plain_addr = plain.as_ref().map(|(_, a)| *a);
    let plain = plain.map(|(l, _)| l);
    let authz = bind_optional(authz_listen, "authz decision listener ready").await?;
    let ready = Arc::new(AtomicBool::new(false));
    let admin = match admin {
        None => None,
        Some(admin) => Some(bind(admin).await?),
    };
    let admin_addr = admin.as_ref().map(|(_, a)| *a);

    let reloader = Arc::new(Reloader {
        path,
        state: Arc::new(ArcSwap::from_pointee(gateway)),
        tls: Arc::new(ArcSwap::from(tls)),
        idps,
        metrics: metrics.clone(),
        lock: Mutex::new(()),
    });
    others.push(tokio::spawn(watch_files(reloader.clone(), seen)));
    if let Some((l, bound)) = admin {
        others.push(tokio::spawn(crate::admin::serve(
            l,
            crate::admin::Shared {
                ready: ready.clone(),
                metrics: metrics.clone(),
                state: reloader.state.clone(),
            },
            admin_head_timeout,
        )));
        tracing::info!(addr = %bound, "admin listener ready");
    }
    let authz_addr = authz.as_ref().map(|(_, a)| *a);
    if let Some((l, _)) = authz {
        others.push(tokio::spawn(authz_loop(
            l,
            reloader.state.clone(),
            shutdown_rx.clone(),
        )));
    }
    let main = tokio::spawn(accept_loop(
        listener,
        plain,
        reloader.state.clone(),
        reloader.tls.clone(),
        shutdown_rx,
    ));
    ready.store(true, Ordering::SeqCst);
    tracing::info!(%addr, "mTLS listener ready");
    Ok(Running {
        addr,
        admin_addr,
        plain_addr,
        authz_addr,
        idp_addrs,
        idp_cas,
        metrics,
        reloader,
        ready,
        shutdown,
        idp_shutdown,
        idp_tasks,
        main,
        others,
    })
}

async fn accept_loop(
    listener: TcpListener,
    plain: Option<TcpListener>,
    state: Arc<ArcSwap<Gateway>>,
    tls: Arc<ArcSwap<rustls::ServerConfig>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let limits = state.load().config.limits.clone();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let peers = Arc::new(PeerCounts::default());
    loop {
        // Beyond max_connections, connections wait in the kernel's backlog, unaccepted.
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = shutdown.changed() => break,
        };
        let plain_accept = async {
            match &plain {
                Some(l) => l.accept().await,
                None => std::future::pending().await,
            }
        };
        let (accepted, is_plain) = tokio::select! {
            a = listener.accept() => (a, false),
            a = plain_accept => (a, true),
            _ = shutdown.changed() => break,
        };
        let (tcp, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let gw = state.load();
        let exempt = gw
            .config
            .front_proxy
            .as_ref()
            .is_some_and(|fp| fp.trusts_peer(peer.ip()));
        let per_peer = if exempt {
            None
        } else {
            match peers.enter(peer.ip(), gw.config.limits.max_connections_per_peer) {
                Some(guard) => Some(guard),
                None => {
                    // Accepted and closed at once: one address cannot take every slot.
                    gw.metrics.connection_refused("per_peer");
                    tracing::debug!(%peer, "max_connections_per_peer reached; connection closed");
                    drop(tcp);
                    continue;
                }
            }
        };
        drop(gw);
        let state = state.clone();
        let watcher = shutdown.clone();
        let acceptor = (!is_plain).then(|| TlsAcceptor::from(tls.load_full()));
        tokio::spawn(async move {
            let _permit = permit;
            let _per_peer = per_peer;
            serve_connection(tcp, peer, acceptor, state, watcher).await;
        });
    }
    drop(listener);
    drop(plain);
    tracing::info!("stopped accepting; finishing in-flight requests");
    // Every connection holds a slot until it is done: all slots back means all drained.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(limits.shutdown_grace, slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!(grace = ?limits.shutdown_grace, "shutdown grace elapsed with requests still in flight");
    }
}

/// Connections the decision listener serves at once; more wait unaccepted.
pub const AUTHZ_MAX_CONNECTIONS: usize = 1024;

/// The `[authz]` decision listener: plain HTTP from the proxies in front of resource servers,
/// bounded like the main listeners (first-byte and head deadlines, the idle and stall
/// watchdog, a connection cap). Peers outside `authz.trusted_peers` get 403 per request.
async fn authz_loop(
    listener: TcpListener,
    state: Arc<ArcSwap<Gateway>>,
    shutdown: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(AUTHZ_MAX_CONNECTIONS));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            break;
        };
        let (tcp, peer_addr) = match listener.accept().await {
            Ok(pair) => pair,
            Err(e) => {
                tracing::warn!(error = %e, "authz accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let state = state.clone();
        let watcher = shutdown.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let limits = state.load().config.limits.clone();
            let conn = ConnInfo {
                peer_addr,
                peer_cert: None,
                plain: true,
                authz: true,
            };
            let io = FirstByteDeadline::new(QuickAck::new(tcp), limits.header_read_timeout);
            serve_http(TokioIo::new(io), conn, state, &limits, watcher).await;
        });
    }
}

/// Open connections per source address.
#[derive(Debug, Default)]
struct PeerCounts(Mutex<HashMap<std::net::IpAddr, usize>>);

/// One connection counted against its address until dropped.
struct PeerGuard {
    counts: Arc<PeerCounts>,
    ip: std::net::IpAddr,
}

impl PeerCounts {
    /// Counts a connection from `ip`, unless it already holds `cap`.
    fn enter(self: &Arc<Self>, ip: std::net::IpAddr, cap: usize) -> Option<PeerGuard> {
        let mut counts = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let n = counts.entry(ip).or_insert(0);
        if *n >= cap {
            return None;
        }
        *n += 1;
        Some(PeerGuard {
            counts: self.clone(),
            ip,
        })
    }
}

impl Drop for PeerGuard {
    fn drop(&mut self) {
        let mut counts = self.counts.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = counts.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// Serves one accepted connection: TLS (`acceptor` set: handshake, then the client
/// certificate is read and verified once) or plain HTTP from a proxy (`front_proxy.plain_listen`).
async fn serve_connection(
    tcp: TcpStream,
    peer_addr: SocketAddr,
    acceptor: Option<TlsAcceptor>,
    state: Arc<ArcSwap<Gateway>>,
    watcher: watch::Receiver<bool>,
) {
    let tcp = QuickAck::new(tcp);
    let gw = state.load_full();
    let metrics = gw.metrics.clone();
    let _open = ConnectionGuard::new(&metrics.open_connections);
    let limits = gw.config.limits.clone();
    let Some(acceptor) = acceptor else {
        drop(gw);
        let conn = ConnInfo {
            peer_addr,
            peer_cert: None,
            plain: true,
            authz: false,
        };
        let io = FirstByteDeadline::new(tcp, limits.header_read_timeout);
        return serve_http(TokioIo::new(io), conn, state, &limits, watcher).await;
    };
    let handshake = |result: &'static str| {
        metrics
            .tls_handshakes
            .get_or_create(&ResultLabels { result })
            .inc();
    };
    let started = Instant::now();
    let stream = match tokio::time::timeout(limits.header_read_timeout, acceptor.accept(tcp)).await
    {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            handshake("failure");
            tracing::debug!(peer = %peer_addr, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            handshake("timeout");
            tracing::debug!(peer = %peer_addr, after = ?started.elapsed(), "TLS handshake timed out");
            return;
        }
    };
    handshake("success");
    let peer_cert = stream.get_ref().1.peer_certificates().map(|chain| {
        gw.config
            .server
            .client_trust
            .peer_certificate(chain)
            .map(Arc::new)
    });
    drop(gw);
    let conn = ConnInfo {
        peer_addr,
        peer_cert,
        plain: false,
        authz: false,
    };
    let io = FirstByteDeadline::new(stream, limits.header_read_timeout);
    serve_http(TokioIo::new(io), conn, state, &limits, watcher).await;
}

/// Most concurrent HTTP/2 streams per connection (SPEC §8).
const MAX_STREAMS: u32 = 32;

/// The HTTP/1.1 + HTTP/2 server settings of the main listeners (SPEC §8 bounds).
fn http_builder(
    limits: &crate::config::Limits,
) -> hyper_util::server::conn::auto::Builder<TokioExecutor> {
    let mut builder = crate::net::http_server(limits.header_read_timeout, MAX_STREAMS);
    builder.http1().max_buf_size(64 * 1024);
    // Request bodies buffered per connection stay within 4 × max_body_bytes: the connection
    // window bounds what a client may send before the gateway reads it.
    let window = |n: usize| u32::try_from(n).unwrap_or(u32::MAX).max(65_535);
    builder
        .http2()
        .max_header_list_size(32 * 1024)
        .initial_stream_window_size(window(limits.max_body_bytes))
        .initial_connection_window_size(window(limits.max_body_bytes.saturating_mul(4)))
        // Detect dead peers; idle live ones are closed by the watchdog below.
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(10));
    builder
}

/// Serves HTTP/1.1 and HTTP/2 on an established connection (TLS, or plain from a proxy), with
/// a watchdog: idle connections are closed (after `header_read_timeout` for a TLS connection
/// without a client certificate, else after `idle_timeout`; PINGs are not requests), a
/// response not written within `request_timeout` abandons the connection, and no connection
/// outlives `max_connection_age` or shutdown.
async fn serve_http<I>(
    io: I,
    conn: ConnInfo,
    state: Arc<ArcSwap<Gateway>>,
    limits: &crate::config::Limits,
    mut shutdown: watch::Receiver<bool>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let peer_addr = conn.peer_addr;
    let idle_limit = if !conn.plain && conn.peer_cert.is_none() {
        limits.header_read_timeout
    } else {
        limits.idle_timeout
    };
    let write_limit = limits.request_timeout;
    let activity = Arc::new(Activity::new());
    let conn = Arc::new(conn);
    let tracker = activity.clone();
    let service = hyper::service::service_fn(move |req| {
        let gw = state.load_full();
        let conn = conn.clone();
        let in_flight = tracker.begin();
        async move {
            let response = service::handle(gw, conn, req).await;
            Ok::<_, Infallible>(response.map(|body| TrackedBody::new(body, in_flight)))
        }
    });
    let builder = http_builder(limits);
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let age = tokio::time::sleep(limits.max_connection_age);
    tokio::pin!(age);
    let watchdog = tokio::time::sleep(idle_limit.min(write_limit));
    tokio::pin!(watchdog);
    // After a graceful close starts, the requests in flight get at most this long.
    let drain = tokio::time::sleep(Duration::MAX / 4);
    tokio::pin!(drain);
    let mut closing = false;
    let close =
        |conn: std::pin::Pin<&mut _>, drain: std::pin::Pin<&mut tokio::time::Sleep>, why: &str| {
            tracing::debug!(peer = %peer_addr, why, "closing the connection gracefully");
            hyper_util::server::conn::auto::Connection::graceful_shutdown(conn);
            drain.reset(tokio::time::Instant::now() + limits.shutdown_grace.max(write_limit));
        };
    if *shutdown.borrow_and_update() {
        close(conn.as_mut(), drain.as_mut(), "shutdown");
        closing = true;
    }
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(peer = %peer_addr, error = %e, "connection ended with an error");
                }
                break;
            }
            _ = &mut watchdog => match activity.verdict(idle_limit, write_limit) {
                Verdict::Wait(d) => watchdog.as_mut().reset(tokio::time::Instant::now() + d),
                Verdict::Idle if !closing => {
                    close(conn.as_mut(), drain.as_mut(), "idle");
                    closing = true;
                    watchdog.as_mut().reset(tokio::time::Instant::now() + write_limit);
                }
                Verdict::Idle => watchdog.as_mut().reset(tokio::time::Instant::now() + write_limit),
                Verdict::Stalled => {
                    tracing::debug!(peer = %peer_addr, "a response was not written within request_timeout; abandoning the connection");
                    break;
                }
            },
            _ = &mut age, if !closing => {
                close(conn.as_mut(), drain.as_mut(), "max_connection_age");
                closing = true;
            }
            _ = &mut drain, if closing => {
                tracing::debug!(peer = %peer_addr, "requests did not finish after a graceful close; dropping the connection");
                break;
            }
            changed = shutdown.changed(), if !closing => {
                if changed.is_err() || *shutdown.borrow() {
                    close(conn.as_mut(), drain.as_mut(), "shutdown");
                    closing = true;
                }
            }
        }
    }
}
