//! Starting and stopping the gateway: the embedded identity providers, the mTLS accept loop
//! (handshake timeout, connection limit), the admin listener, graceful shutdown.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use rustls_pki_types::CertificateDer;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::config::{Config, UpstreamKind};
use crate::service::{self, ConnInfo, Gateway};
use crate::tls::verifier::PeerCertificate;
use crate::upstream::Upstream;

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
    /// Bound addresses of embedded identity providers, by upstream name.
    pub idp_addrs: BTreeMap<String, SocketAddr>,
    /// TLS trust anchors of embedded identity providers, by upstream name.
    pub idp_cas: BTreeMap<String, CertificateDer<'static>>,
    shutdown: watch::Sender<bool>,
    main: JoinHandle<()>,
    others: Vec<JoinHandle<()>>,
}

impl Running {
    /// Stops accepting, lets in-flight requests finish within `shutdown_grace`, then returns.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.main.await;
        for task in self.others {
            task.abort();
        }
    }
}

/// Binds every listener and starts serving `config`.
pub async fn start(config: Config) -> Result<Running, StartError> {
    let (shutdown, shutdown_rx) = watch::channel(false);
    let mut others = Vec::new();
    let mut idp_addrs = BTreeMap::new();
    let mut idp_cas = BTreeMap::new();
    let mut upstreams = HashMap::new();
    for (name, spec) in &config.upstreams {
        let embedded = if let UpstreamKind::Embedded { listen, tenant } = &spec.kind {
            let listener = TcpListener::bind(listen)
                .await
                .map_err(|source| StartError::Bind {
                    addr: *listen,
                    source,
                })?;
            let bound = listener.local_addr().map_err(|source| StartError::Bind {
                addr: *listen,
                source,
            })?;
            let (ca, tls) = crate::idp::ephemeral_tls(bound).map_err(StartError::Setup)?;
            let registrations = config
                .registry
                .iter()
                .filter(|r| &r.upstream == name)
                .map(|r| (r.client_id.clone(), r.credential.cert.clone()));
            let authority = authority_of(bound);
            let idp = crate::idp::Idp::new(tenant, &authority, registrations)
                .map_err(StartError::Setup)?;
            tracing::info!(upstream = %name, %authority, tenant = %tenant, "embedded identity provider listening");
            others.push(tokio::spawn(crate::idp::serve(
                listener,
                tls,
                Arc::new(idp),
                shutdown_rx.clone(),
            )));
            idp_addrs.insert(name.clone(), bound);
            idp_cas.insert(name.clone(), ca.clone());
            Some((bound, ca))
        } else {
            None
        };
        let upstream = Upstream::new(spec.clone(), embedded)
            .map_err(|e| StartError::Setup(format!("upstream {name}: {e}")))?;
        upstreams.insert(name.clone(), Arc::new(upstream));
    }

    let tls = crate::tls::server_config(&config.server)
        .map_err(|e| StartError::Setup(format!("server TLS: {e}")))?;
    let listen = config.server.listen;
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: listen,
        source,
    })?;

    let ready = Arc::new(AtomicBool::new(false));
    let admin_addr = match &config.admin {
        None => None,
        Some(admin) => {
            let l = TcpListener::bind(admin.listen)
                .await
                .map_err(|source| StartError::Bind {
                    addr: admin.listen,
                    source,
                })?;
            let bound = l.local_addr().map_err(|source| StartError::Bind {
                addr: admin.listen,
                source,
            })?;
            others.push(tokio::spawn(crate::admin::serve(
                l,
                ready.clone(),
                shutdown_rx.clone(),
            )));
            Some(bound)
        }
    };

    let gateway = Arc::new(Gateway {
        config: Arc::new(config),
        upstreams,
    });
    let state = Arc::new(ArcSwap::from(gateway));
    let main = tokio::spawn(accept_loop(
        listener,
        state,
        Arc::new(ArcSwap::from(tls)),
        shutdown_rx,
    ));
    ready.store(true, Ordering::SeqCst);
    tracing::info!(%addr, "mTLS listener ready");
    Ok(Running {
        addr,
        admin_addr,
        idp_addrs,
        idp_cas,
        shutdown,
        main,
        others,
    })
}

/// The `https://host:port` base of an address (loopback when bound to the unspecified address).
pub fn authority_of(addr: SocketAddr) -> String {
    let ip = if addr.ip().is_unspecified() {
        std::net::IpAddr::from([127, 0, 0, 1])
    } else {
        addr.ip()
    };
    format!("https://{}", SocketAddr::new(ip, addr.port()))
}

async fn accept_loop(
    listener: TcpListener,
    state: Arc<ArcSwap<Gateway>>,
    tls: Arc<ArcSwap<rustls::ServerConfig>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let graceful = GracefulShutdown::new();
    let limits = state.load().config.limits.clone();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        // Beyond max_connections, connections wait in the kernel's backlog, unaccepted.
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = shutdown.changed() => break,
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let acceptor = TlsAcceptor::from(tls.load_full());
        let state = state.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _permit = permit;
            serve_connection(tcp, peer, acceptor, state, watcher).await;
        });
    }
    drop(listener);
    tracing::info!("stopped accepting; finishing in-flight requests");
    if tokio::time::timeout(limits.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(grace = ?limits.shutdown_grace, "shutdown grace elapsed with requests still in flight");
    }
}

async fn serve_connection(
    tcp: TcpStream,
    peer_addr: SocketAddr,
    acceptor: TlsAcceptor,
    state: Arc<ArcSwap<Gateway>>,
    watcher: hyper_util::server::graceful::Watcher,
) {
    let _ = tcp.set_nodelay(true);
    let gw = state.load_full();
    let limits = gw.config.limits.clone();
    let stream = match tokio::time::timeout(limits.header_read_timeout, acceptor.accept(tcp)).await
    {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!(peer = %peer_addr, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(peer = %peer_addr, "TLS handshake timed out");
            return;
        }
    };
    let peer_cert = stream.get_ref().1.peer_certificates().map(|chain| {
        let chain: Vec<CertificateDer<'static>> =
            chain.iter().map(|c| c.clone().into_owned()).collect();
        PeerCertificate::new(&chain, &gw.config.server.client_trust).map(Arc::new)
    });
    let conn = Arc::new(ConnInfo {
        peer_addr,
        peer_cert,
    });
    let service = hyper::service::service_fn(move |req| {
        let gw = state.load_full();
        let conn = conn.clone();
        async move { Ok::<_, Infallible>(service::handle(gw, conn, req).await) }
    });
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(64 * 1024);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(128)
        .max_header_list_size(32 * 1024);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    if let Err(e) = watcher.watch(conn.into_owned()).await {
        tracing::debug!(peer = %peer_addr, error = %e, "connection ended with an error");
    }
}
