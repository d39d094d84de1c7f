//! Accepted connections, below every listener: the first-byte deadline, immediate ACKs, and
//! the activity a connection's watchdog reads (requests in flight, responses unwritten).

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Fails a connection's reads with `TimedOut` when its first byte does not arrive in time.
///
/// hyper-util's auto builder waits for the first bytes (to tell HTTP/1 from HTTP/2) without a
/// timeout, and hyper's `header_read_timeout` starts only after them: without this, a client that
/// completes the handshake and then sends nothing holds a connection slot forever.
pub(crate) struct FirstByteDeadline<I> {
    inner: I,
    deadline: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl<I> FirstByteDeadline<I> {
    pub(crate) fn new(inner: I, within: Duration) -> Self {
        Self {
            inner,
            deadline: Some(Box::pin(tokio::time::sleep(within))),
        }
    }
}

impl<I: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for FirstByteDeadline<I> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::future::Future as _;
        use std::task::Poll;
        let before = buf.filled().len();
        let this = &mut *self;
        match std::pin::Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.deadline = None;
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                let expired = this
                    .deadline
                    .as_mut()
                    .is_some_and(|deadline| deadline.as_mut().poll(cx).is_ready());
                if expired {
                    Poll::Ready(Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "no request within header_read_timeout",
                    )))
                } else {
                    Poll::Pending
                }
            }
            other => other,
        }
    }
}

impl<I: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for FirstByteDeadline<I> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// An accepted TCP stream that acknowledges received data at once.
///
/// Most legacy clients leave Nagle's algorithm on (the socket default). Nagle holds a client's
/// next small write until everything it sent before is acknowledged, and Linux delays an ACK
/// that has no data to ride on by up to 40 ms. Two places in a token request have no answer to
/// ride on: the client's last handshake flight (TLS 1.3 without session tickets sends nothing
/// back), after which the request waits; and a request head written apart from its body, after
/// which the body waits. Setting `TCP_QUICKACK` after each read that returned data sends the
/// pending ACK now (the kernel flushes a scheduled ACK when the option is set) instead of when
/// the delayed-ACK timer fires. It costs one `setsockopt` per read once the gateway has
/// written on the connection; answers still carry their ACKs as before.
///
/// Before that first write the option is not set: Linux acknowledges
/// a connection's first data segments at once by itself (quick-ACK mode at the first data) and
/// delays ACKs only once it has seen the server answer (interactive mode, entered when data is
/// sent). So the ClientHello's read costs no `setsockopt` and sends no ACK of its own; the
/// ServerHello flight carries it.
pub(crate) struct QuickAck {
    inner: TcpStream,
    wrote: bool,
}

impl QuickAck {
    pub(crate) fn new(inner: TcpStream) -> Self {
        // Small answers go out at once too (the gateway writes whole responses).
        let _ = inner.set_nodelay(true);
        Self {
            inner,
            wrote: false,
        }
    }

    fn ack_now(&self) {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            // Best effort: a socket that refuses the option just acknowledges later.
            let _ = socket2::SockRef::from(&self.inner).set_tcp_quickack(true);
        }
    }
}

impl AsyncRead for QuickAck {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if self.wrote && matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.ack_now();
        }
        result
    }
}

impl AsyncWrite for QuickAck {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.wrote |= matches!(result, Poll::Ready(Ok(n)) if n > 0);
        result
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.wrote |= matches!(result, Poll::Ready(Ok(n)) if n > 0);
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// What a connection is doing, for its watchdog: requests in flight (from the start of the
/// service call until the response body is dropped, i.e. written or abandoned), responses
/// produced but not yet written, and when either last changed.
#[derive(Debug)]
pub(crate) struct Activity {
    started: std::time::Instant,
    in_flight: std::sync::atomic::AtomicUsize,
    unsent: std::sync::atomic::AtomicUsize,
    /// Milliseconds since `started` of the last change of `in_flight`.
    last_change: std::sync::atomic::AtomicU64,
    /// Milliseconds since `started` since when some response has waited to be written with
    /// no response finishing.
    unsent_since: std::sync::atomic::AtomicU64,
}

/// What the watchdog should do now.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Nothing until this long from now.
    Wait(Duration),
    /// No request in flight for the idle limit: close gracefully.
    Idle,
    /// A response has not been written within the write limit: abandon the connection.
    Stalled,
}

impl Activity {
    pub(crate) fn new() -> Self {
        Self {
            started: std::time::Instant::now(),
            in_flight: Default::default(),
            unsent: Default::default(),
            last_change: Default::default(),
            unsent_since: Default::default(),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// A request starts; the guard ends it.
    pub(crate) fn begin(self: &std::sync::Arc<Self>) -> InFlight {
        use std::sync::atomic::Ordering::SeqCst;
        self.in_flight.fetch_add(1, SeqCst);
        self.last_change.store(self.now_ms(), SeqCst);
        InFlight {
            activity: self.clone(),
            unsent: false,
        }
    }

    /// Decides at `now` given the idle and write limits.
    pub(crate) fn verdict(&self, idle: Duration, write: Duration) -> Verdict {
        use std::sync::atomic::Ordering::SeqCst;
        let now = self.now_ms();
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let left = |since: u64, limit: Duration| {
            since
                .saturating_add(ms(limit))
                .checked_sub(now)
                .filter(|l| *l > 0)
        };
        if self.unsent.load(SeqCst) > 0 {
            return match left(self.unsent_since.load(SeqCst), write) {
                Some(l) => Verdict::Wait(Duration::from_millis(l)),
                None => Verdict::Stalled,
            };
        }
        if self.in_flight.load(SeqCst) > 0 {
            // Busy: look again after the shorter limit.
            return Verdict::Wait(idle.min(write));
        }
        match left(self.last_change.load(SeqCst), idle) {
            Some(l) => Verdict::Wait(Duration::from_millis(l)),
            None => Verdict::Idle,
        }
    }
}

/// One request in flight; dropped when its response body is dropped (written, or abandoned).
#[derive(Debug)]
pub(crate) struct InFlight {
    activity: std::sync::Arc<Activity>,
    unsent: bool,
}

impl InFlight {
    /// The response is ready and waits to be written.
    pub(crate) fn response_ready(&mut self) {
        use std::sync::atomic::Ordering::SeqCst;
        if !self.unsent {
            self.unsent = true;
            if self.activity.unsent.fetch_add(1, SeqCst) == 0 {
                self.activity
                    .unsent_since
                    .store(self.activity.now_ms(), SeqCst);
            }
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        use std::sync::atomic::Ordering::SeqCst;
        let a = &self.activity;
        let now = a.now_ms();
        if self.unsent {
            a.unsent.fetch_sub(1, SeqCst);
            // A response finished: the stall clock of the others starts again.
            a.unsent_since.store(now, SeqCst);
        }
        a.in_flight.fetch_sub(1, SeqCst);
        a.last_change.store(now, SeqCst);
    }
}

/// A response body that ends its request's [`InFlight`] when hyper drops it.
#[derive(Debug)]
pub(crate) struct TrackedBody {
    inner: http_body_util::Full<bytes::Bytes>,
    _in_flight: InFlight,
}

impl TrackedBody {
    pub(crate) fn new(inner: http_body_util::Full<bytes::Bytes>, mut in_flight: InFlight) -> Self {
        in_flight.response_ready();
        Self {
            inner,
            _in_flight: in_flight,
        }
    }
}

impl hyper::body::Body for TrackedBody {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// The HTTP/1.1 + HTTP/2 server every listener starts from (main, admin, embedded IdP): tokio
/// timers, the whole request head within `head_timeout`, and `max_streams` concurrent HTTP/2
/// streams. Listeners add their own bounds.
pub fn http_server(
    head_timeout: Duration,
    max_streams: u32,
) -> hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor> {
    use hyper_util::rt::{TokioExecutor, TokioTimer};
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(head_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(max_streams);
    builder
}

/// The rustls client configuration of the gateway's outbound HTTPS (identity providers, Key
/// Vault): aws-lc-rs, safe protocol versions, the compiled-in public roots when `public_roots`,
/// plus `extra` anchors.
pub fn tls_client_config(
    extra: &[rustls_pki_types::CertificateDer<'static>],
    public_roots: bool,
) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    if public_roots {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    for ca in extra {
        roots
            .add(ca.clone())
            .map_err(|e| format!("CA certificate rejected: {e}"))?;
    }
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}
