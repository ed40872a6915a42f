//! Upstream servers, their pooled connections and their connection slots.
//!
//! A [`Server`] is one address of an upstream pool: a `servers` entry with an IP literal, or
//! one of the addresses its host name resolved to. It keeps a stack of idle HTTP/1.1
//! connections (most recently used first, so idle ones age out at the bottom). A connection goes
//! back only once its response body was read to the end; anything else (an error, an abort, an
//! unread body) drops it, so a half-used connection is never reused.
//!
//! With `http2`, a server's requests share one HTTP/2 connection instead ([`Multiplexed`]):
//! every request opens a stream on it ([`Stream`]); a second connection is opened only when the
//! first is closed, or full (the server's `SETTINGS_MAX_CONCURRENT_STREAMS`, as hyper reports
//! it). A burst of first requests waits for one connect rather than opening one each
//! ([`Server::connect`]).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::Either;
use gatehouse_config::{UpstreamConfig, UpstreamServer, UpstreamTls};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, Uri, Version, header};
use hyper::body::Incoming;
use hyper::client::conn::{TrySendError, http1, http2};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::connect::{self, ConnMode, H2Driver};
use super::health::ServerState;
use super::io::ConnStats;
use super::tls::TlsClients;
use crate::body::RequestBody;
use crate::failure::Failure;

/// Idle connections kept per server.
const MAX_IDLE: usize = 256;
/// Idle connections older than this are closed rather than reused: upstreams commonly close
/// keep-alive connections after 60-75 s, and reusing one they are about to close loses a request.
const IDLE_TIMEOUT: Duration = Duration::from_secs(50);
/// How long a checked-out connection may take to become ready before another is tried.
const READY_WAIT: Duration = Duration::from_secs(1);

/// The per-upstream settings a connection needs.
#[derive(Debug, Clone)]
pub struct ConnSettings {
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
    pub read_timeout: Duration,
    pub send_timeout: Duration,
    pub max_response_header_size: usize,
}

impl From<&UpstreamConfig> for ConnSettings {
    fn from(config: &UpstreamConfig) -> Self {
        Self {
            connect_timeout: config.connect_timeout,
            response_timeout: config.response_timeout,
            read_timeout: config.read_timeout,
            send_timeout: config.send_timeout,
            max_response_header_size: config.max_response_header_size,
        }
    }
}

/// One server's connection settings: the pool's, plus how the server is reached (TLS, HTTP/2).
/// Derefs to the pool's [`ConnSettings`].
#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub conn: ConnSettings,
    /// `http2`: pooled connections speak HTTP/2 (ALPN `h2` over TLS, falling back to HTTP/1.1
    /// when the server does not choose it; prior knowledge on cleartext).
    pub http2: bool,
    /// How the server is reached over TLS; `None` = cleartext.
    pub tls: Option<TlsTarget>,
}

impl std::ops::Deref for ServerSettings {
    type Target = ConnSettings;

    fn deref(&self) -> &ConnSettings {
        &self.conn
    }
}

impl ServerSettings {
    /// Cleartext HTTP/1.1.
    pub fn plain(conn: ConnSettings) -> Self {
        Self {
            conn,
            http2: false,
            tls: None,
        }
    }

    /// The settings of one `servers` entry, with its TLS client configurations built afresh:
    /// for one-off connections (`gatehouse doctor`). The proxy builds them once per pool.
    pub fn for_server(config: &UpstreamConfig, server: &UpstreamServer) -> Self {
        let tls = server.tls.then(|| {
            let clients = TlsClients::new(&config.tls, config.http2)
                .map(Arc::new)
                .map_err(Arc::from);
            TlsTarget::new(&config.tls, &server.address.host, clients)
        });
        Self {
            conn: ConnSettings::from(config),
            http2: config.http2,
            tls,
        }
    }
}

/// What [`connect`](super::connect::connect) needs to know about a server: a bare
/// [`ConnSettings`] means cleartext HTTP/1.1; a [`ServerSettings`] adds TLS and HTTP/2.
pub trait Reach {
    fn conn(&self) -> &ConnSettings;
    fn http2(&self) -> bool;
    fn tls(&self) -> Option<&TlsTarget>;
}

impl Reach for ConnSettings {
    fn conn(&self) -> &ConnSettings {
        self
    }
    fn http2(&self) -> bool {
        false
    }
    fn tls(&self) -> Option<&TlsTarget> {
        None
    }
}

impl Reach for ServerSettings {
    fn conn(&self) -> &ConnSettings {
        &self.conn
    }
    fn http2(&self) -> bool {
        self.http2
    }
    fn tls(&self) -> Option<&TlsTarget> {
        self.tls.as_ref()
    }
}

/// How one server is reached over TLS.
#[derive(Debug, Clone)]
pub struct TlsTarget {
    /// Sent as SNI and verified against the certificate: `tls_server_name`, else the server's
    /// host as written (an IP literal is verified as an address and sends no SNI).
    pub server_name: Arc<str>,
    /// The pool's client configurations, or why they could not be built.
    pub clients: Result<Arc<TlsClients>, Arc<str>>,
}

impl TlsTarget {
    pub fn new(tls: &UpstreamTls, host: &str, clients: Result<Arc<TlsClients>, Arc<str>>) -> Self {
        Self {
            server_name: tls.server_name.as_deref().unwrap_or(host).into(),
            clients,
        }
    }
}

/// One upstream server: where it is, how it is weighted and limited, its health, and its
/// pooled connections.
#[derive(Debug)]
pub struct Server {
    pub addr: SocketAddr,
    /// The host as written in the config (an IP literal or a name), for `Host` on checks.
    pub host: Arc<str>,
    /// `pool/host:port`, plus ` (ip)` when the host is a name: the `next-hop` and log name.
    pub label: String,
    pub weight: u32,
    /// In-flight requests allowed at once; `None` = unlimited.
    pub max_connections: Option<u32>,
    pub backup: bool,
    /// Stable across restarts and reloads: the consistent-hash identity of this address.
    pub hash_id: u64,
    /// Health, ejection and in-flight count; survives reloads (see `StateRegistry`).
    pub state: Arc<ServerState>,
    /// The pool's wait queue, woken when a slot is freed.
    queue: Arc<WaitQueue>,
    settings: ServerSettings,
    idle: Mutex<Vec<Idle>>,
    /// HTTP/2 connections its requests share (usually one).
    multiplexed: Mutex<Vec<Arc<Multiplexed>>>,
    /// Held while an HTTP/2 connection is being opened. Holds the failure of the last attempt,
    /// which the requests that waited for it share rather than each trying again in turn.
    opening: tokio::sync::Mutex<Option<(Instant, Failure)>>,
    /// The server answered an `h2` offer with HTTP/1.1: its connections are not shared, and
    /// opening them need not wait for one another.
    http1_only: AtomicBool,
}

/// The requests of a pool waiting for a connection slot.
#[derive(Debug, Default)]
pub struct WaitQueue {
    pub slot_freed: Notify,
    pub waiting: AtomicU32,
}

impl WaitQueue {
    pub fn waiting(&self) -> u32 {
        self.waiting.load(Ordering::Relaxed)
    }
}

/// How a server is described when it is built.
#[derive(Debug)]
pub struct ServerSpec {
    pub addr: SocketAddr,
    pub host: Arc<str>,
    /// The host is a DNS name (the label then shows the address too).
    pub named: bool,
    pub weight: u32,
    pub max_connections: Option<u32>,
    pub backup: bool,
}

/// How a server is named in logs, `next-hop` and reports: `pool/host:port`, plus ` (ip)` when
/// the host is a DNS name.
pub fn label(pool: &str, host: &str, named: bool, addr: SocketAddr) -> String {
    let authority = match addr {
        SocketAddr::V6(_) if !named => format!("[{host}]:{}", addr.port()),
        _ => format!("{host}:{}", addr.port()),
    };
    if named {
        format!("{pool}/{authority} ({})", addr.ip())
    } else {
        format!("{pool}/{authority}")
    }
}

/// One connection slot on a server, held from the moment a request is assigned to it until
/// its response is finished (or it fails). Dropping it frees the slot.
#[derive(Debug)]
pub struct Lease {
    pub server: Arc<Server>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.server.state.in_flight.fetch_sub(1, Ordering::Relaxed);
        if self.server.max_connections.is_some() && self.server.queue.waiting() > 0 {
            // One slot, one waiter; tokio hands the wakeup on if that waiter has gone.
            self.server.queue.slot_freed.notify_one();
        }
    }
}

#[derive(Debug)]
struct Idle {
    conn: Conn,
    since: Instant,
}

/// The application protocol of a connection, as an ALPN token (what Proxy-Status
/// `next-protocol` names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Http1,
    /// HTTP/2 over TLS.
    H2,
    /// HTTP/2 over cleartext TCP, prior knowledge.
    H2c,
}

impl Protocol {
    pub fn alpn(self) -> &'static str {
        match self {
            Self::Http1 => "http/1.1",
            Self::H2 => "h2",
            Self::H2c => "h2c",
        }
    }
}

/// A connection checked out for one request (for HTTP/2: a stream on a shared connection).
#[derive(Debug)]
pub struct Conn {
    pub sender: Sender,
    /// Byte counters for the retry decision: the connection's for HTTP/1.1, the request's own
    /// for an HTTP/2 stream (see [`Stream::try_send_request`]).
    pub stats: Arc<ConnStats>,
    pub peer: SocketAddr,
    /// Whether this connection served an earlier request (a failure on it may be a stale
    /// keep-alive connection rather than a dead server).
    pub reused: bool,
    pub protocol: Protocol,
    /// How long the TLS handshake took, when this request opened a TLS connection.
    pub tls_handshake: Option<Duration>,
}

impl Conn {
    /// A new HTTP/1.1 connection.
    pub fn http1(
        sender: http1::SendRequest<RequestBody>,
        stats: Arc<ConnStats>,
        peer: SocketAddr,
        tls_handshake: Option<Duration>,
    ) -> Self {
        Self {
            sender: Sender::Http1(sender),
            stats,
            peer,
            reused: false,
            protocol: Protocol::Http1,
            tls_handshake,
        }
    }
}

/// Sends requests on a connection: an HTTP/1.1 connection's, or an HTTP/2 stream's. The methods
/// are hyper's, so the request path does not care which.
#[derive(Debug)]
pub enum Sender {
    Http1(http1::SendRequest<RequestBody>),
    Http2(Stream),
}

/// What sending a request resolves to.
pub type SendResult = Result<Response<Incoming>, TrySendError<Request<RequestBody>>>;

impl Sender {
    /// Sends a request; a request hyper did not start to send comes back in the error.
    pub fn try_send_request(
        &mut self,
        request: Request<RequestBody>,
    ) -> impl Future<Output = SendResult> + use<> {
        match self {
            Self::Http1(sender) => Either::Left(sender.try_send_request(request)),
            Self::Http2(stream) => Either::Right(stream.try_send_request(request)),
        }
    }

    /// Sends a request (health checks, `gatehouse doctor`).
    pub fn send_request(
        &mut self,
        request: Request<RequestBody>,
    ) -> impl Future<Output = Result<Response<Incoming>, hyper::Error>> + use<> {
        match self {
            Self::Http1(sender) => Either::Left(sender.send_request(request)),
            Self::Http2(stream) => {
                let request = stream.prepare(request);
                Either::Right(stream.sender.send_request(request))
            }
        }
    }

    pub fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), hyper::Error>> {
        match self {
            Self::Http1(sender) => sender.poll_ready(cx),
            Self::Http2(stream) => stream.sender.poll_ready(cx),
        }
    }

    pub async fn ready(&mut self) -> Result<(), hyper::Error> {
        std::future::poll_fn(|cx| self.poll_ready(cx)).await
    }

    pub fn is_closed(&self) -> bool {
        match self {
            Self::Http1(sender) => sender.is_closed(),
            Self::Http2(stream) => stream.sender.is_closed(),
        }
    }
}

/// An HTTP/2 connection shared by the requests of one server.
#[derive(Debug)]
pub struct Multiplexed {
    sender: http2::SendRequest<RequestBody>,
    peer: SocketAddr,
    protocol: Protocol,
    /// `https` or `http`: HTTP/2 requests carry it (`:scheme`).
    scheme: Scheme,
    /// The `:authority` of a request without `Host`.
    authority: Authority,
    /// Streams open now (checked-out [`Conn`]s).
    streams: AtomicUsize,
    /// The connection object, which knows how many streams the server allows at once.
    driver: Arc<H2Driver>,
    /// When its last stream ended: an unused connection ages out like an idle HTTP/1.1 one.
    idle_since: Mutex<Instant>,
    tls_handshake: Option<Duration>,
}

impl Multiplexed {
    pub fn new(
        sender: http2::SendRequest<RequestBody>,
        peer: SocketAddr,
        tls: bool,
        authority: Authority,
        driver: Arc<H2Driver>,
        tls_handshake: Option<Duration>,
    ) -> Arc<Self> {
        Arc::new(Self {
            sender,
            peer,
            protocol: if tls { Protocol::H2 } else { Protocol::H2c },
            scheme: if tls { Scheme::HTTPS } else { Scheme::HTTP },
            authority,
            streams: AtomicUsize::new(0),
            driver,
            idle_since: Mutex::new(Instant::now()),
            tls_handshake,
        })
    }

    /// A stream for one request (the first one on a new connection is not `reused`).
    pub fn stream(self: &Arc<Self>, reused: bool) -> Conn {
        self.streams.fetch_add(1, Ordering::AcqRel);
        let stats = Arc::new(ConnStats::default());
        Conn {
            sender: Sender::Http2(Stream {
                sender: self.sender.clone(),
                conn: Arc::clone(self),
                stats: Arc::clone(&stats),
            }),
            stats,
            peer: self.peer,
            reused,
            protocol: self.protocol,
            tls_handshake: if reused { None } else { self.tls_handshake },
        }
    }

    fn has_room(&self) -> bool {
        self.streams.load(Ordering::Acquire) < self.driver.max_send_streams()
    }

    /// Closed by either side, or unused for longer than idle connections are kept.
    fn is_spent(&self, now: Instant) -> bool {
        if self.sender.is_closed() {
            return true;
        }
        let idle_since = *self.idle_since.lock().unwrap_or_else(|e| e.into_inner());
        self.streams.load(Ordering::Acquire) == 0 && now.duration_since(idle_since) > IDLE_TIMEOUT
    }
}

/// One request's stream on a [`Multiplexed`] connection. Dropping it ends the request's use of
/// the connection (hyper resets a stream whose response is dropped unread).
#[derive(Debug)]
pub struct Stream {
    sender: http2::SendRequest<RequestBody>,
    conn: Arc<Multiplexed>,
    stats: Arc<ConnStats>,
}

impl Stream {
    /// The connection this stream is on.
    pub fn connection(&self) -> &Arc<Multiplexed> {
        &self.conn
    }

    /// Sends the request on its own stream.
    ///
    /// Retry safety: the connection's byte counters are shared by every stream (and carry
    /// SETTINGS, PING and WINDOW_UPDATE frames), so they cannot tell whether this request went
    /// out. Each stream has its own counters instead: "written" as soon as hyper takes the
    /// request (from then on its HEADERS may be on the wire, and a request timed out by the
    /// caller counts as sent), "read" never (an HTTP/2 response head arrives whole: a stream
    /// fails before it or not at all). So a request hyper gives back (the connection was not
    /// ready) is unsent and may go anywhere, and so is one the server refused with
    /// REFUSED_STREAM, which RFC 9113 §8.7 guarantees was not processed. Any other failure
    /// counts as sent: retried only for idempotent (or opted-in) methods, as failures.md allows
    /// when no response byte arrived. That includes a GOAWAY below this stream's id, which
    /// would prove the same, because h2 reports it with the same error as a connection that
    /// ended after processing the stream.
    // The error is hyper's own type, passed on as hyper returns it (hyper allows the lint too).
    #[allow(clippy::result_large_err)]
    pub fn try_send_request(
        &mut self,
        request: Request<RequestBody>,
    ) -> impl Future<Output = SendResult> + use<> {
        let request = self.prepare(request);
        let stats = Arc::clone(&self.stats);
        stats.add_written(1);
        self.sender.try_send_request(request).map(move |result| {
            if let Err(err) = &result
                && refused_stream(err.error())
            {
                stats.unwrite(1);
            }
            result
        })
    }

    /// hyper's HTTP/2 client needs an absolute URI (`:scheme` and `:authority`): the authority is
    /// the request's `Host` (the `Host` field stays, as RFC 9113 §8.3.1 lets an intermediary
    /// keep it, and matches). Only the URI changes, which the request path never takes back
    /// from a request returned unsent, so a retry on HTTP/1.1 still sends origin-form.
    fn prepare(&self, mut request: Request<RequestBody>) -> Request<RequestBody> {
        http2_form(&mut request, &self.conn.scheme, &self.conn.authority);
        request
    }
}

/// Makes a request ready for hyper's HTTP/2 client: version 2, and an absolute URI whose
/// authority is the `Host` field (else `fallback`). An absolute URI is kept as it is.
fn http2_form<B>(request: &mut Request<B>, scheme: &Scheme, fallback: &Authority) {
    *request.version_mut() = Version::HTTP_2;
    if request.uri().scheme().is_some() {
        return;
    }
    let authority = request
        .headers()
        .get(header::HOST)
        .and_then(|host| Authority::try_from(host.as_bytes()).ok())
        .unwrap_or_else(|| fallback.clone());
    let mut parts = request.uri().clone().into_parts();
    parts.scheme = Some(scheme.clone());
    parts.authority = Some(authority);
    if parts.path_and_query.is_none() {
        parts.path_and_query = Some(PathAndQuery::from_static("/"));
    }
    // Cannot fail with a scheme, an authority and a path; were it to, h2 refuses the
    // relative URI and the request fails cleanly.
    if let Ok(uri) = Uri::from_parts(parts) {
        *request.uri_mut() = uri;
    }
}

/// h2's words for a stream the server reset with REFUSED_STREAM. hyper keeps h2's typed error
/// reason to itself (and `h2` is not a direct dependency), so this one fact is read from h2's
/// `Display`, exactly: if the wording ever changes, refused streams count as sent again
/// (conservative), never the reverse. `refused_streams_are_unsent` pins it.
const H2_REFUSED_STREAM: &str =
    "stream error received: refused stream before processing any application logic";

/// Whether the server refused the request's stream before processing it.
fn refused_stream(err: &hyper::Error) -> bool {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = current {
        if e.to_string() == H2_REFUSED_STREAM {
            return true;
        }
        current = e.source();
    }
    false
}

impl Drop for Stream {
    fn drop(&mut self) {
        if self.conn.streams.fetch_sub(1, Ordering::AcqRel) == 1 {
            *self
                .conn
                .idle_since
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Instant::now();
        }
    }
}

// === impl Server ===

impl Server {
    pub fn new(
        pool: &str,
        spec: ServerSpec,
        state: Arc<ServerState>,
        queue: Arc<WaitQueue>,
        settings: ConnSettings,
    ) -> Self {
        let label = label(pool, &spec.host, spec.named, spec.addr);
        Self {
            hash_id: super::balance::stable_hash(spec.addr.to_string().as_bytes()),
            addr: spec.addr,
            host: spec.host,
            label,
            weight: spec.weight.max(1),
            max_connections: spec.max_connections,
            backup: spec.backup,
            state,
            queue,
            settings: ServerSettings::plain(settings),
            idle: Mutex::new(Vec::new()),
            multiplexed: Mutex::new(Vec::new()),
            opening: tokio::sync::Mutex::new(None),
            http1_only: AtomicBool::new(false),
        }
    }

    /// Takes a connection slot if the server is below its limit.
    pub fn try_lease(self: &Arc<Self>) -> Option<Lease> {
        let in_flight = &self.state.in_flight;
        match self.max_connections {
            None => {
                in_flight.fetch_add(1, Ordering::Relaxed);
            }
            Some(max) => {
                in_flight
                    .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| {
                        (n < max).then_some(n + 1)
                    })
                    .ok()?;
            }
        }
        Some(Lease {
            server: Arc::clone(self),
        })
    }

    /// Reached over TLS (`tls`) and/or speaking HTTP/2 on pooled connections (`http2`).
    #[must_use]
    pub fn with_protocols(mut self, http2: bool, tls: Option<TlsTarget>) -> Self {
        self.settings.http2 = http2;
        self.settings.tls = tls;
        self
    }

    pub fn settings(&self) -> &ServerSettings {
        &self.settings
    }

    /// A pooled connection that is ready for a request, if there is one: a stream on a shared
    /// HTTP/2 connection with room, else an idle HTTP/1.1 connection.
    ///
    /// A connection checked in right after its response body ended may not be marked ready by
    /// hyper yet (its connection task has not run since); waiting for that here, briefly,
    /// costs nothing in the common case and saves a task per request at check-in.
    pub async fn checkout(&self) -> Option<Conn> {
        if self.settings.http2
            && let Some(conn) = self.shared_stream()
        {
            return Some(conn);
        }
        let now = Instant::now();
        loop {
            let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop()?;
            if now.duration_since(idle.since) > IDLE_TIMEOUT {
                // The most recent one is too old, so all below it are too.
                self.idle.lock().unwrap_or_else(|e| e.into_inner()).clear();
                return None;
            }
            let mut conn = idle.conn;
            let ready = match poll_ready_now(&mut conn.sender) {
                Poll::Ready(result) => result.is_ok(),
                Poll::Pending => tokio::time::timeout(READY_WAIT, conn.sender.ready())
                    .await
                    .is_ok_and(|result| result.is_ok()),
            };
            if ready {
                conn.reused = true;
                return Some(conn);
            }
        }
    }

    /// Opens a new connection for a request that found none to check out. For an `http2`
    /// server, the new HTTP/2 connection is shared from then on; while it is being opened, the
    /// server's other new requests wait for it (and share its failure) rather than opening one
    /// each. Upgrade requests and servers that chose HTTP/1.1 connect directly.
    pub async fn connect(&self, mode: ConnMode) -> Result<(Conn, Duration), Failure> {
        if mode == ConnMode::Upgrade
            || !self.settings.http2
            || self.http1_only.load(Ordering::Relaxed)
        {
            return connect::connect(self.addr, &self.settings, mode).await;
        }
        let started = Instant::now();
        let mut opening = self.opening.lock().await;
        if let Some(conn) = self.shared_stream() {
            // Opened by the request this one waited for.
            return Ok((conn, started.elapsed()));
        }
        if let Some((when, failure)) = opening.as_ref()
            && *when >= started
        {
            return Err(failure.clone());
        }
        let result = connect::connect(self.addr, &self.settings, mode).await;
        match &result {
            Ok((conn, _)) => {
                *opening = None;
                match &conn.sender {
                    Sender::Http2(stream) => self
                        .multiplexed
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(Arc::clone(stream.connection())),
                    Sender::Http1(_) => self.http1_only.store(true, Ordering::Relaxed),
                }
            }
            Err(failure) => *opening = Some((Instant::now(), failure.clone())),
        }
        result
    }

    /// A new stream on a shared HTTP/2 connection with room for one, dropping connections that
    /// closed or sat unused too long.
    fn shared_stream(&self) -> Option<Conn> {
        let now = Instant::now();
        let mut shared = self.multiplexed.lock().unwrap_or_else(|e| e.into_inner());
        shared.retain(|conn| !conn.is_spent(now));
        shared
            .iter()
            .find(|conn| conn.has_room())
            .map(|conn| conn.stream(true))
    }

    /// Returns a connection whose last response was read completely. An HTTP/2 stream just
    /// ends (dropped); its connection stays shared.
    pub fn checkin(&self, conn: Conn) {
        if matches!(conn.sender, Sender::Http1(_)) && !conn.sender.is_closed() {
            self.push(conn);
        }
    }

    fn push(&self, conn: Conn) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(Idle {
                conn,
                since: Instant::now(),
            });
        }
    }
}

/// Polls the sender's readiness once without waiting.
fn poll_ready_now(sender: &mut Sender) -> Poll<Result<(), hyper::Error>> {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    sender.poll_ready(&mut cx)
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;

    #[test]
    fn http2_requests_get_an_absolute_uri_from_host() {
        let fallback = Authority::from_static("10.0.0.5:8443");
        let mut request = Request::new(());
        *request.uri_mut() = Uri::from_static("/a/b?c=d");
        request.headers_mut().insert(
            header::HOST,
            "app.test".parse().unwrap_or_else(|e| panic!("{e}")),
        );
        http2_form(&mut request, &Scheme::HTTPS, &fallback);
        assert_eq!(request.uri(), "https://app.test/a/b?c=d");
        assert_eq!(request.version(), Version::HTTP_2);

        // No Host: the server's own authority.
        let mut request = Request::new(());
        *request.uri_mut() = Uri::from_static("/");
        http2_form(&mut request, &Scheme::HTTP, &fallback);
        assert_eq!(request.uri(), "http://10.0.0.5:8443/");
    }

    /// One HTTP/2 frame.
    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = u32::try_from(payload.len()).unwrap_or(0).to_be_bytes();
        let mut out = vec![len[1], len[2], len[3], kind, flags];
        out.extend_from_slice(&stream.to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    /// A bare HTTP/2 server (prior knowledge) that resets every stream it is sent with
    /// RST_STREAM `code`: hyper's server cannot be made to refuse a stream on purpose.
    fn resetting_server(code: u32) -> SocketAddr {
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        std::thread::spawn(move || {
            let Ok((mut stream, _)) = listener.accept() else {
                return;
            };
            let mut preface = [0u8; 24];
            if stream.read_exact(&mut preface).is_err() {
                return;
            }
            let _ = stream.write_all(&frame(4, 0, 0, &[]));
            loop {
                let mut head = [0u8; 9];
                if stream.read_exact(&mut head).is_err() {
                    return;
                }
                let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
                let (kind, flags) = (head[3], head[4]);
                let id = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
                let mut payload = vec![0u8; len];
                if stream.read_exact(&mut payload).is_err() {
                    return;
                }
                let reply = match kind {
                    // SETTINGS (not an ACK): acknowledge.
                    4 if flags & 1 == 0 => frame(4, 1, 0, &[]),
                    // HEADERS: reset the stream.
                    1 => frame(3, 0, id, &code.to_be_bytes()),
                    _ => continue,
                };
                if stream.write_all(&reply).is_err() {
                    return;
                }
            }
        });
        addr
    }

    /// Sends a GET over a new h2c connection to `addr`; returns whether the request counted as
    /// sent and the error.
    async fn reset_request(addr: SocketAddr) -> (bool, hyper::Error) {
        let settings = ServerSettings {
            http2: true,
            ..ServerSettings::plain(ConnSettings {
                connect_timeout: Duration::from_secs(1),
                response_timeout: Duration::from_secs(1),
                read_timeout: Duration::from_secs(1),
                send_timeout: Duration::from_secs(1),
                max_response_header_size: 8192,
            })
        };
        let (mut conn, _) = connect::connect(addr, &settings, ConnMode::Pooled)
            .await
            .unwrap_or_else(|f| panic!("connect: {f}"));
        assert_eq!(conn.protocol, Protocol::H2c);
        let mut request = Request::new(RequestBody::empty());
        request.headers_mut().insert(
            header::HOST,
            "app.test".parse().unwrap_or_else(|e| panic!("{e}")),
        );
        let before = conn.stats.written();
        let sent = tokio::time::timeout(
            Duration::from_secs(5),
            conn.sender.try_send_request(request),
        );
        let Ok(result) = sent.await else {
            panic!("no answer");
        };
        let Err(err) = result else {
            panic!("the stream was reset, yet a response came");
        };
        (conn.stats.written() > before, err.into_error())
    }

    #[tokio::test]
    async fn refused_streams_are_unsent_other_resets_are_sent() {
        // REFUSED_STREAM (7): never processed (RFC 9113 §8.7), so any method may be retried.
        let (sent, err) = reset_request(resetting_server(7)).await;
        assert!(refused_stream(&err), "{err:?}");
        assert!(!sent, "a refused stream counted as sent");
        // INTERNAL_ERROR (2): the server may have acted on it.
        let (sent, err) = reset_request(resetting_server(2)).await;
        assert!(!refused_stream(&err), "{err:?}");
        assert!(sent, "a reset stream counted as unsent");
    }
}
