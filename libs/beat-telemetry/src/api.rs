//! Limits of a public gRPC API (the ordering and market APIs): what one client, or many, can
//! make a server hold.
//!
//! - **Connections**: at most `max_connections` at once and `max_connections_per_ip` from one
//!   source (an IPv4 address, or an IPv6 /64: one host's allocation); one more is closed at
//!   accept. A connection that sends no byte within
//!   `first_byte_timeout_ms` is closed, so idle sockets cannot hold the slots.
//! - **Requests**: at most `max_request_bytes` per message (refused by the codec from the
//!   length prefix, before the body is buffered), `max_concurrent_streams` HTTP/2 streams and
//!   `concurrency_per_connection` requests in handling per connection, and every unary request
//!   within `request_timeout_ms` — including receiving its body, so a client that withholds the
//!   last byte is cut off. A server-streaming response (a watch) is not cut by the timeout.
//! - **Request bytes in flight**: bodies being received count against one budget of
//!   `max_inflight_request_bytes` for the whole server and `max_inflight_request_bytes_per_ip`
//!   for one source; a frame that would exceed either fails its request with
//!   `RESOURCE_EXHAUSTED` (retry later), so many clients each withholding the end of a large
//!   body cannot add up to more memory than that, and one source cannot take the whole budget.
//!   A body that receives nothing for `body_stall_timeout_ms` fails with `DEADLINE_EXCEEDED`,
//!   so a withheld tail gives its bytes back within seconds, not at the request timeout. Bytes
//!   are given back when the body is dropped (decoded, abandoned or failed).
//! - **Closing a connection**: a handler that finds its client holding memory it will not take
//!   (a watcher that stopped reading while the server has data queued for it) closes the
//!   client's connection through [`Connections::close`]; that is the only way to take back what
//!   HTTP/2 has queued for a stream whose flow-control window stays shut.
//! - **HTTP/2**: keepalive pings (dead peers are dropped), a cap on streams reset before they
//!   were accepted (the "rapid reset" attack) and on header lists.

use std::{
    collections::HashMap,
    io,
    net::{IpAddr, SocketAddr},
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use futures::{Stream, StreamExt as _};
use parking_lot::Mutex;
use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};
use serde::{Deserialize, Serialize};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tonic::transport::server::{Connected, TcpConnectInfo};
use tower::{
    Layer, Service,
    layer::util::{Identity, Stack},
};

/// The limits of one public gRPC server (module docs), and who may call it ([`crate::auth`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiLimits {
    /// TLS on this API (`[api.tls]`); without it the API is plaintext, which only a loopback
    /// address or `plaintext_off_loopback` allows.
    pub tls: Option<crate::auth::TlsFiles>,
    /// Bearer tokens: a file of `name sha256-hex` lines; every request must carry one.
    pub tokens_file: Option<std::path::PathBuf>,
    /// Serve plaintext on a non-loopback address: only behind a service-mesh sidecar that
    /// terminates (m)TLS for this API.
    pub plaintext_off_loopback: bool,
    /// Most connections at once.
    pub max_connections: usize,
    /// Most connections at once from one IP address.
    pub max_connections_per_ip: usize,
    /// A connection that sends no byte for this long after accept is closed, in milliseconds.
    pub first_byte_timeout_ms: u64,
    /// Largest request message, in bytes.
    pub max_request_bytes: usize,
    /// Most HTTP/2 streams at once per connection.
    pub max_concurrent_streams: u32,
    /// Most requests in handling at once per connection (more wait).
    pub concurrency_per_connection: usize,
    /// A unary request (body included) must be handled within this long, in milliseconds.
    pub request_timeout_ms: u64,
    /// Request body bytes being received at once, over all connections.
    pub max_inflight_request_bytes: usize,
    /// Request body bytes being received at once from one source (IPv4 address or IPv6 /64).
    pub max_inflight_request_bytes_per_ip: usize,
    /// A request body that receives no data for this long fails, in milliseconds.
    pub body_stall_timeout_ms: u64,
}

impl Default for ApiLimits {
    fn default() -> Self {
        Self {
            tls: None,
            tokens_file: None,
            plaintext_off_loopback: false,
            max_connections: 1024,
            max_connections_per_ip: 256,
            first_byte_timeout_ms: 10_000,
            max_request_bytes: 4 << 20,
            max_concurrent_streams: 128,
            concurrency_per_connection: 32,
            request_timeout_ms: 30_000,
            max_inflight_request_bytes: 16 << 20,
            max_inflight_request_bytes_per_ip: 8 << 20,
            body_stall_timeout_ms: 5_000,
        }
    }
}

impl ApiLimits {
    /// Checks the limits.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_connections == 0
            || self.max_connections_per_ip == 0
            || self.max_concurrent_streams == 0
            || self.concurrency_per_connection == 0
        {
            return Err("api limits: connection and stream limits must be at least 1".to_owned());
        }
        if self.first_byte_timeout_ms == 0
            || self.request_timeout_ms == 0
            || self.body_stall_timeout_ms == 0
        {
            return Err("api limits: timeouts must be at least 1 ms".to_owned());
        }
        if self.max_request_bytes < 1024 {
            return Err("api limits: max_request_bytes must be at least 1024".to_owned());
        }
        if self.max_inflight_request_bytes_per_ip < self.max_request_bytes {
            return Err(
                "api limits: max_inflight_request_bytes_per_ip must be at least max_request_bytes"
                    .to_owned(),
            );
        }
        if self.max_inflight_request_bytes < self.max_inflight_request_bytes_per_ip {
            return Err("api limits: max_inflight_request_bytes must be at least \
                 max_inflight_request_bytes_per_ip"
                .to_owned());
        }
        Ok(())
    }

    /// A server for `listen` with TLS and client authentication as configured and the request,
    /// body-budget and HTTP/2 limits (refusals are counted in `registry`). Serve it on
    /// [`limited_incoming`] for the connection limits. Refuses plaintext on an address other
    /// than loopback unless `plaintext_off_loopback` is set, and unreadable TLS or token files.
    pub fn server(&self, registry: &Registry, listen: SocketAddr) -> anyhow::Result<ApiServer> {
        if self.tls.is_none() && !listen.ip().is_loopback() && !self.plaintext_off_loopback {
            anyhow::bail!(
                "the public API on {listen} would be plaintext off loopback: configure [api.tls] \
                 (cert_file, key_file, and client_ca_file for mutual TLS), or set \
                 api.plaintext_off_loopback = true if a service-mesh sidecar terminates TLS for \
                 it (docs/security.md)"
            );
        }
        let auth = crate::auth::AuthLayer::new(self.tokens_file.as_deref(), registry)?;
        let refused = IntCounter::new(
            "beat_api_requests_over_inflight_budget_total",
            "Requests refused because request bodies in flight reached max_inflight_request_bytes",
        )?;
        let inflight = IntGauge::new(
            "beat_api_inflight_request_bytes",
            "Request body bytes being received now",
        )?;
        registry.register(Box::new(refused.clone()))?;
        registry.register(Box::new(inflight.clone()))?;
        let budget = BodyBudgetLayer {
            budget: Arc::new(BodyBudget {
                limit: self.max_inflight_request_bytes,
                limit_per_source: self.max_inflight_request_bytes_per_ip,
                used: Mutex::new(Used::default()),
                stall: Duration::from_millis(self.body_stall_timeout_ms),
                refused,
                inflight,
            }),
        };
        let mut builder = tonic::transport::Server::builder();
        if let Some(tls) = &self.tls {
            builder = builder
                .tls_config(tls.server_config()?)
                .map_err(|e| anyhow::anyhow!("TLS configuration of the public API: {e}"))?;
        }
        Ok(builder
            .concurrency_limit_per_connection(self.concurrency_per_connection)
            .timeout(Duration::from_millis(self.request_timeout_ms))
            .max_concurrent_streams(self.max_concurrent_streams)
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .http2_keepalive_timeout(Some(Duration::from_secs(10)))
            .http2_max_pending_accept_reset_streams(Some(64))
            .http2_max_header_list_size(16 * 1024)
            .layer(auth)
            .layer(budget))
    }
}

/// The server [`ApiLimits::server`] builds.
pub type ApiServer =
    tonic::transport::Server<Stack<BodyBudgetLayer, Stack<crate::auth::AuthLayer, Identity>>>;

/// The source a connection is counted under: an IPv4 address, or the /64 an IPv6 address is in
/// (one host usually holds a whole /64, so per-address limits would not bind it).
pub fn source_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(std::net::Ipv6Addr::from(
                u128::from(v6) & !((1u128 << 64) - 1),
            )),
        },
    }
}

/// Request body bytes in flight, in all and per source.
#[derive(Debug, Default)]
struct Used {
    total: usize,
    per_source: HashMap<Option<IpAddr>, usize>,
}

/// The server-wide budget of request body bytes in flight.
#[derive(Debug)]
struct BodyBudget {
    limit: usize,
    limit_per_source: usize,
    used: Mutex<Used>,
    stall: Duration,
    refused: IntCounter,
    inflight: IntGauge,
}

impl BodyBudget {
    /// Takes `n` bytes for `source` if both its share and the whole budget allow.
    fn take(&self, source: Option<IpAddr>, n: usize) -> bool {
        let mut used = self.used.lock();
        let mine = used.per_source.get(&source).copied().unwrap_or(0);
        let fits = |held: usize, limit: usize| held.checked_add(n).is_some_and(|t| t <= limit);
        if !fits(used.total, self.limit) || !fits(mine, self.limit_per_source) {
            return false;
        }
        used.total += n;
        *used.per_source.entry(source).or_default() += n;
        drop(used);
        self.inflight.add(i64::try_from(n).unwrap_or(i64::MAX));
        true
    }

    fn give_back(&self, source: Option<IpAddr>, n: usize) {
        let mut used = self.used.lock();
        used.total = used.total.saturating_sub(n);
        if let Some(held) = used.per_source.get_mut(&source) {
            *held = held.saturating_sub(n);
            if *held == 0 {
                used.per_source.remove(&source);
            }
        }
        drop(used);
        self.inflight.sub(i64::try_from(n).unwrap_or(i64::MAX));
    }
}

/// Wraps every request body so that its bytes count against the server's budget.
#[derive(Clone, Debug)]
pub struct BodyBudgetLayer {
    budget: Arc<BodyBudget>,
}

impl<S> Layer<S> for BodyBudgetLayer {
    type Service = BodyBudgetService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BodyBudgetService {
            inner,
            budget: self.budget.clone(),
        }
    }
}

/// See [`BodyBudgetLayer`].
#[derive(Clone, Debug)]
pub struct BodyBudgetService<S> {
    inner: S,
    budget: Arc<BodyBudget>,
}

impl<S> Service<http::Request<tonic::body::Body>> for BodyBudgetService<S>
where
    S: Service<http::Request<tonic::body::Body>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let budget = self.budget.clone();
        let source = crate::auth::remote_addr(request.extensions()).map(|a| source_of(a.ip()));
        self.inner.call(request.map(|body| {
            tonic::body::Body::new(CountedBody {
                inner: body,
                budget,
                source,
                held: 0,
                stalled: None,
            })
        }))
    }
}

/// A request body whose received bytes are held against the budget until it is dropped, and
/// which fails if no data arrives for the stall timeout.
struct CountedBody {
    inner: tonic::body::Body,
    budget: Arc<BodyBudget>,
    source: Option<IpAddr>,
    held: usize,
    /// Armed while the body waits for data.
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl http_body::Body for CountedBody {
    type Data = bytes::Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        let frame = Pin::new(&mut this.inner).poll_frame(cx);
        if frame.is_pending() {
            let stall = this.budget.stall;
            let timer = this
                .stalled
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(stall)));
            if timer.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Some(Err(tonic::Status::deadline_exceeded(
                    "the request body stalled; send it without pauses",
                ))));
            }
            return Poll::Pending;
        }
        this.stalled = None;
        if let Poll::Ready(Some(Ok(f))) = &frame
            && let Some(data) = f.data_ref()
        {
            if !this.budget.take(this.source, data.len()) {
                this.budget.refused.inc();
                return Poll::Ready(Some(Err(tonic::Status::resource_exhausted(
                    "the server is receiving too many request bytes at once; retry later",
                ))));
            }
            this.held += data.len();
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for CountedBody {
    fn drop(&mut self) {
        if self.held > 0 {
            self.budget.give_back(self.source, self.held);
        }
    }
}

/// `beat_api_connections_*`: the connection limits at work.
#[derive(Clone)]
struct ConnectionMetrics {
    open: IntGauge,
    refused: IntCounterVec,
}

impl ConnectionMetrics {
    fn new(registry: &Registry) -> prometheus::Result<Self> {
        let open = IntGauge::new(
            "beat_api_connections_open",
            "Public API connections open now",
        )?;
        let refused = IntCounterVec::new(
            Opts::new(
                "beat_api_connections_refused_total",
                "Public API connections closed by a limit (max_connections, per_ip, first_byte_timeout)",
            ),
            &["reason"],
        )?;
        registry.register(Box::new(open.clone()))?;
        registry.register(Box::new(refused.clone()))?;
        Ok(Self { open, refused })
    }
}

#[derive(Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
    /// How to close each open connection, by the client's address.
    closers: HashMap<SocketAddr, CancellationToken>,
}

/// The open connections of one server: handlers close a client's connection through it.
#[derive(Clone)]
pub struct Connections {
    counts: Arc<Mutex<Counts>>,
    refused: IntCounterVec,
}

impl Connections {
    /// Closes the connection from `peer` (counted under `reason` in
    /// `beat_api_connections_refused_total`); false if it is not open.
    pub fn close(&self, peer: SocketAddr, reason: &str) -> bool {
        let closer = self.counts.lock().closers.get(&peer).cloned();
        match closer {
            Some(c) => {
                c.cancel();
                self.refused.with_label_values(&[reason]).inc();
                tracing::info!(%peer, reason, "closed a public API connection");
                true
            }
            None => false,
        }
    }
}

/// A connection's place in the counts, given back when it closes.
struct Slot {
    counts: Arc<Mutex<Counts>>,
    ip: IpAddr,
    peer: SocketAddr,
    open: IntGauge,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.counts.lock();
        counts.closers.remove(&self.peer);
        counts.total = counts.total.saturating_sub(1);
        if let Some(n) = counts.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.per_ip.remove(&self.ip);
            }
        }
        self.open.dec();
    }
}

/// An accepted connection within the limits.
pub struct LimitedStream {
    inner: TcpStream,
    _slot: Slot,
    first_byte: Option<Pin<Box<tokio::time::Sleep>>>,
    refused: IntCounterVec,
    /// Ready once a handler closed the connection ([`Connections::close`]).
    closed: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl LimitedStream {
    /// An error once the connection was closed by a handler.
    fn check_closed(&mut self, cx: &mut Context<'_>) -> Option<io::Error> {
        self.closed.as_mut().poll(cx).is_ready().then(|| {
            io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "closed by the server (see beat_api_connections_refused_total)",
            )
        })
    }
}

impl AsyncRead for LimitedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if let Some(e) = this.check_closed(cx) {
            return Poll::Ready(Err(e));
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.first_byte = None;
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                if let Some(deadline) = this.first_byte.as_mut()
                    && deadline.as_mut().poll(cx).is_ready()
                {
                    this.first_byte = None;
                    this.refused
                        .with_label_values(&["first_byte_timeout"])
                        .inc();
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "no request within the first-byte deadline",
                    )));
                }
                Poll::Pending
            }
            ready => ready,
        }
    }
}

impl AsyncWrite for LimitedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Some(e) = self.check_closed(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if let Some(e) = self.check_closed(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

impl Connected for LimitedStream {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

/// The connections a public gRPC server accepts on `listener` (`TCP_NODELAY`, keepalive, as
/// [`crate::grpc::incoming`]), within `limits`, and the handle that closes them; the limits'
/// metrics are registered in `registry`.
pub fn limited_incoming(
    listener: TcpListener,
    limits: &ApiLimits,
    registry: &Registry,
) -> prometheus::Result<(
    impl Stream<Item = io::Result<LimitedStream>> + Send + 'static,
    Connections,
)> {
    let metrics = ConnectionMetrics::new(registry)?;
    let counts = Arc::new(Mutex::new(Counts::default()));
    let connections = Connections {
        counts: counts.clone(),
        refused: metrics.refused.clone(),
    };
    let limits = limits.clone();
    let incoming = crate::grpc::incoming(listener).filter_map(move |accepted| {
        let admitted = match accepted {
            Err(e) => Some(Err(e)),
            Ok(stream) => admit(stream, &limits, &counts, &metrics).map(Ok),
        };
        futures::future::ready(admitted)
    });
    Ok((incoming, connections))
}

/// Counts `stream` in, or closes it (by dropping it) if a limit is reached.
fn admit(
    stream: TcpStream,
    limits: &ApiLimits,
    counts: &Arc<Mutex<Counts>>,
    metrics: &ConnectionMetrics,
) -> Option<LimitedStream> {
    let (peer, ip) = match stream.peer_addr() {
        Ok(addr) => (addr, source_of(addr.ip())),
        Err(_) => return None,
    };
    let closer = CancellationToken::new();
    {
        let mut c = counts.lock();
        let refused = if c.total >= limits.max_connections {
            Some("max_connections")
        } else if c.per_ip.get(&ip).copied().unwrap_or(0) >= limits.max_connections_per_ip {
            Some("per_ip")
        } else {
            None
        };
        if let Some(reason) = refused {
            drop(c);
            metrics.refused.with_label_values(&[reason]).inc();
            tracing::debug!(%ip, reason, "refused a public API connection");
            return None;
        }
        c.total += 1;
        *c.per_ip.entry(ip).or_default() += 1;
        c.closers.insert(peer, closer.clone());
    }
    metrics.open.inc();
    Some(LimitedStream {
        inner: stream,
        _slot: Slot {
            counts: counts.clone(),
            ip,
            peer,
            open: metrics.open.clone(),
        },
        closed: Box::pin(closer.cancelled_owned()),
        first_byte: Some(Box::pin(tokio::time::sleep(Duration::from_millis(
            limits.first_byte_timeout_ms,
        )))),
        refused: metrics.refused.clone(),
    })
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    async fn served(limits: ApiLimits) -> (std::net::SocketAddr, Registry) {
        let (addr, registry, _) = served_with_handle(limits).await;
        (addr, registry)
    }

    async fn served_with_handle(
        limits: ApiLimits,
    ) -> (std::net::SocketAddr, Registry, Connections) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let registry = Registry::new();
        let (incoming, connections) = limited_incoming(listener, &limits, &registry).unwrap();
        let mut incoming = Box::pin(incoming);
        // An echo server: what a connection sends comes back; a limit closes it.
        tokio::spawn(async move {
            while let Some(Ok(mut conn)) = incoming.next().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 64];
                    while let Ok(n) = conn.read(&mut buf).await {
                        if n == 0 || conn.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        (addr, registry, connections)
    }

    /// A handler closes one client's connection, even one the server is waiting to read from;
    /// the others stay open, and the slot comes back.
    #[tokio::test]
    async fn a_handler_closes_one_connection() {
        let (addr, registry, connections) = served_with_handle(ApiLimits::default()).await;
        let mut victim = TcpStream::connect(addr).await.unwrap();
        let mut other = TcpStream::connect(addr).await.unwrap();
        // Both are served (the echo answers).
        for c in [&mut victim, &mut other] {
            c.write_all(b"a").await.unwrap();
            let mut buf = [0u8; 1];
            c.read_exact(&mut buf).await.unwrap();
        }
        let peer = victim.local_addr().unwrap();
        assert!(connections.close(peer, "test"));
        let mut buf = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(5), victim.read(&mut buf)).await;
        assert!(matches!(read, Ok(Ok(0) | Err(_))), "{read:?}");
        assert!(!closed(&mut other).await);
        assert_eq!(count(&registry, "test"), 1);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            !connections.close(peer, "test"),
            "the closed connection is still known"
        );
    }

    fn count(registry: &Registry, reason: &str) -> u64 {
        let series = format!("beat_api_connections_refused_total{{reason=\"{reason}\"}} ");
        crate::metrics::encode(registry)
            .lines()
            .find_map(|l| l.strip_prefix(series.as_str())?.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Whether the server closed `conn` (EOF or reset) rather than echoing.
    async fn closed(conn: &mut TcpStream) -> bool {
        if conn.write_all(b"x").await.is_err() {
            return true;
        }
        let mut buf = [0u8; 1];
        matches!(
            tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf)).await,
            Ok(Ok(0) | Err(_))
        )
    }

    #[test]
    fn ipv6_sources_are_counted_by_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(source_of(a), source_of(b));
        assert_ne!(source_of(a), source_of(c));
        let mapped: IpAddr = "::ffff:10.0.0.7".parse().unwrap();
        assert_eq!(source_of(mapped), "10.0.0.7".parse::<IpAddr>().unwrap());
        let v4: IpAddr = "10.0.0.7".parse().unwrap();
        assert_eq!(source_of(v4), v4);
    }

    #[tokio::test]
    async fn per_ip_and_total_caps_and_slots_come_back() {
        let limits = ApiLimits {
            max_connections: 5,
            max_connections_per_ip: 3,
            ..ApiLimits::default()
        };
        let (addr, registry) = served(limits).await;
        let from = |last: u8| async move {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket
                .bind(std::net::SocketAddr::from(([127, 0, 0, last], 0)))
                .unwrap();
            socket.connect(addr).await.unwrap()
        };
        let mut a: Vec<TcpStream> = Vec::new();
        for _ in 0..3 {
            a.push(from(2).await);
        }
        for c in &mut a {
            assert!(!closed(c).await);
        }
        let mut fourth = from(2).await;
        assert!(closed(&mut fourth).await, "a fourth from one address");
        assert_eq!(count(&registry, "per_ip"), 1);
        let mut b1 = from(3).await;
        let mut b2 = from(3).await;
        assert!(!closed(&mut b1).await && !closed(&mut b2).await);
        let mut sixth = from(4).await;
        assert!(closed(&mut sixth).await, "a sixth in all");
        assert_eq!(count(&registry, "max_connections"), 1);
        // Closing one gives its slot back.
        drop(a.pop());
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut again = from(4).await;
        assert!(!closed(&mut again).await);
    }

    #[tokio::test]
    async fn a_silent_connection_is_closed_at_the_first_byte_deadline() {
        let limits = ApiLimits {
            first_byte_timeout_ms: 300,
            ..ApiLimits::default()
        };
        let (addr, registry) = served(limits).await;
        let mut talking = TcpStream::connect(addr).await.unwrap();
        assert!(!closed(&mut talking).await);
        let mut silent = TcpStream::connect(addr).await.unwrap();
        let mut buf = [0u8; 1];
        let got = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut buf))
            .await
            .expect("a silent connection was kept past the deadline");
        assert!(matches!(got, Ok(0) | Err(_)), "{got:?}");
        assert_eq!(count(&registry, "first_byte_timeout"), 1);
        // One that spoke in time is not cut later.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(!closed(&mut talking).await);
    }
}
