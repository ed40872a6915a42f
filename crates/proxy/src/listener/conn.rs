//! Serving one client connection: the TLS handshake on TLS listeners, then HTTP/1.1 (with
//! upgrades) or HTTP/2, chosen by ALPN over TLS and by the connection preface on plain
//! listeners (h2c with prior knowledge, RFC 9113 §3.3), until the client leaves, idles out, or
//! gatehouse drains.
//!
//! Owns keep-alive and idle limits, the header read timeout (408), request-parsing limits,
//! HTTP/2 stream and flow-control limits, panic isolation (a panic in one request is answered
//! 500 `proxy_internal_error` and touches no other request) and graceful drain on shutdown.
//!
//! A failure after a response's headers were sent ends its body with an error
//! (`body::AbortedResponse`): hyper then closes an HTTP/1.1 connection short of the promised
//! length or final chunk, and resets an HTTP/2 stream with RST_STREAM(INTERNAL_ERROR). Proxy-Status
//! is deliberately not sent as a trailer there: on HTTP/2 a trailer section carries END_STREAM,
//! which would make the truncated body look complete to the client.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::FutureExt as _;
use futures_util::future::Either;
use gatehouse_config::ServerConfig;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::server::conn::{http1 as hyper_http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::{Instant, Interval, MissedTickBehavior};

use super::{proxy_header, redirect};
use crate::body::ProxyBody;
use crate::client_body::ClientBody;
use crate::client_io::{ClientActivity, ClientIo};
use crate::failure::{Failure, FailureKind, Phase};
use crate::http1;
use crate::observe::access_log::{AccessRecord, AttemptContext};
use crate::respond::{self, ErrorContext};
use crate::service;
use crate::snapshot::listeners::ListenerKind;
use crate::snapshot::{Current, Snapshot};

/// The HTTP/2 connection preface (RFC 9113 §3.4) an h2c client with prior knowledge opens with.
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// How long to wait before looking again when only part of the preface has arrived.
const PEEK_PAUSE: Duration = Duration::from_millis(5);
/// Streams a client may open and cancel before gatehouse has accepted them (the "rapid reset"
/// attack, CVE-2023-44487); beyond this the connection gets GOAWAY. h2's default.
const MAX_PENDING_ACCEPT_RESETS: usize = 20;
/// Streams gatehouse may have to reset because the client broke the protocol on them, before
/// the connection gets GOAWAY: a client provoking resets on purpose cannot make the server do
/// unbounded work either. hyper's default.
const MAX_LOCAL_ERROR_RESETS: usize = 1024;

/// What answers the requests of a connection.
#[derive(Debug, Clone, Copy)]
enum Handler {
    /// The proxy pipeline.
    Proxy,
    /// A 308 to `https://` (redirect listeners).
    Redirect,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Http1,
    Http2,
}

/// One accepted connection and what it was accepted with.
struct Conn {
    client: SocketAddr,
    /// The address the client connected to.
    local: SocketAddr,
    handler: Handler,
    /// It came in over TLS (`X-Forwarded-Proto: https`).
    https: bool,
    /// The snapshot in force at accept time: connection-level settings come from it; each
    /// request loads the snapshot in force when it arrives.
    snapshot: Arc<Snapshot>,
    current: Current,
    shutdown: watch::Receiver<bool>,
}

/// A connection as the accept loop hands it over.
pub(super) struct Accepted {
    pub(super) stream: TcpStream,
    /// The address the connection came from.
    pub(super) peer: SocketAddr,
    pub(super) kind: ListenerKind,
    /// The listener expects a PROXY protocol header first.
    pub(super) proxy_header: bool,
}

/// Serves one accepted connection as its listener's `kind` says.
pub(super) async fn serve(
    accepted: Accepted,
    snapshot: Arc<Snapshot>,
    current: Current,
    shutdown: watch::Receiver<bool>,
) {
    let Accepted {
        mut stream,
        peer,
        kind,
        proxy_header,
    } = accepted;
    let _ = stream.set_nodelay(true);
    let client = if proxy_header {
        let server = &snapshot.config.server;
        let taken = Box::pin(proxy_header::take(
            &mut stream,
            peer,
            &server.trusted_proxies,
            server.client_header_timeout,
        ))
        .await;
        match taken {
            Ok(client) => client,
            Err(refused) => {
                // Scanners and misconfigured balancers: debug level; the metric shows a trend.
                tracing::debug!(peer = %peer, reason = refused.reason(), detail = ?refused, "connection closed: no acceptable PROXY protocol header");
                snapshot
                    .observer
                    .metrics
                    .proxy_protocol_refused(refused.reason());
                return;
            }
        }
    } else {
        peer
    };
    let local = stream.local_addr().unwrap_or(peer);
    let mut conn = Conn {
        client,
        local,
        handler: Handler::Proxy,
        https: false,
        snapshot,
        current,
        shutdown,
    };
    // Each path is boxed: the connection's task then holds only what its own path needs
    // (an idle plain HTTP/1.1 connection does not carry room for a TLS session or HTTP/2 state).
    match kind {
        ListenerKind::Plain => Box::pin(conn.plain(stream)).await,
        ListenerKind::RedirectHttps => {
            conn.handler = Handler::Redirect;
            Box::pin(conn.plain(stream)).await;
        }
        ListenerKind::Tls(config) => Box::pin(conn.tls(stream, config)).await,
    }
}

impl Conn {
    async fn plain(mut self, stream: TcpStream) {
        let server = &self.snapshot.config.server;
        let protocol = if server.http2.enabled {
            let timeout = server.client_header_timeout;
            let sniffed = tokio::select! {
                sniffed = sniff(&stream, timeout) => sniffed,
                () = stopping(&mut self.shutdown) => return,
            };
            let Some(protocol) = sniffed else {
                return; // nothing arrived: an idle connection, closed like an idle keep-alive
            };
            protocol
        } else {
            Protocol::Http1
        };
        match protocol {
            Protocol::Http1 => self.http1(stream).await,
            Protocol::Http2 => Box::pin(self.http(stream, protocol)).await,
        }
    }

    async fn tls(mut self, stream: TcpStream, config: Arc<rustls::ServerConfig>) {
        let timeout = self.snapshot.config.server.client_header_timeout;
        let accept = tokio::time::timeout(
            timeout,
            tokio_rustls::TlsAcceptor::from(config).accept(stream),
        );
        let accepted = tokio::select! {
            accepted = accept => accepted,
            () = stopping(&mut self.shutdown) => return,
        };
        let metrics = &self.snapshot.observer.metrics;
        let stream = match accepted {
            Ok(Ok(stream)) => stream,
            // Scanners, clients that distrust the certificate, plain HTTP sent to the HTTPS
            // port: routine on a public port, so debug level; the metric shows a trend.
            Ok(Err(err)) => {
                tracing::debug!(client = %self.client, error = %err, "TLS handshake failed");
                metrics.tls_handshake_failed("error");
                return;
            }
            Err(_) => {
                tracing::debug!(client = %self.client, ?timeout, "TLS handshake not completed within client_header_timeout");
                metrics.tls_handshake_failed("timeout");
                return;
            }
        };
        let protocol = match stream.get_ref().1.alpn_protocol() {
            // RFC 8737 §3: a TLS-ALPN-01 validation ends with the handshake.
            Some(crate::acme::ALPN_ACME_TLS) => {
                tracing::info!(client = %self.client, "answered an ACME TLS-ALPN-01 validation");
                return;
            }
            Some(b"h2") => Protocol::Http2,
            _ => Protocol::Http1,
        };
        self.https = true;
        // hyper serves TLS connections; a 408 cannot be written around its TLS session, so a
        // stalled head just closes the connection there (as nginx does).
        self.http(stream, protocol).await;
    }

    /// Plain HTTP/1.1, served by gatehouse's own engine.
    async fn http1(self, stream: TcpStream) {
        let Self {
            client,
            local,
            handler,
            https,
            snapshot,
            current,
            mut shutdown,
        } = self;
        let server = &snapshot.config.server;
        let settings = http1::Settings {
            header_timeout: server.client_header_timeout,
            max_head: head_limit(server),
            response_write: response_write(server),
        };
        let handler = Http1Handler {
            client,
            handler,
            current,
            activity: Arc::new(ClientActivity::new(client, local, 0, https)),
        };
        http1::serve(stream, &handler, settings, &mut shutdown).await;
    }

    /// hyper: HTTP/2, and HTTP/1.1 over TLS.
    async fn http<S>(self, io: S, protocol: Protocol)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Self {
            client,
            local,
            handler,
            https,
            snapshot,
            current,
            mut shutdown,
        } = self;
        let server = &snapshot.config.server;
        let max_buf = head_limit(server);
        // HTTP/2 frames are binary: there is no request head to keep.
        let head_limit = match protocol {
            Protocol::Http1 => max_buf,
            Protocol::Http2 => 0,
        };
        let activity = Arc::new(ClientActivity::new(client, local, head_limit, https));
        let io = TokioIo::new(ClientIo::new(
            io,
            Arc::clone(&activity),
            response_write(server),
        ));
        let service_activity = Arc::clone(&activity);
        let streams = Arc::new(Streams::default());
        let service_streams = Arc::clone(&streams);
        // Only HTTP/2's idle watch reads the stream counts; HTTP/1.1 requests skip them.
        let count_streams = protocol == Protocol::Http2;
        let service = service_fn(move |req: Request<Incoming>| {
            let req = req.map(ClientBody::Hyper);
            let open = count_streams.then(|| OpenStream::new(&service_streams));
            let snapshot = current.load_full();
            let activity = Arc::clone(&service_activity);
            async move {
                let response = match (super::challenge::http01(&snapshot, &req), handler) {
                    (Some(answer), _) => answer,
                    (None, Handler::Proxy) => {
                        handle_isolated(snapshot, client, activity, req).await
                    }
                    (None, Handler::Redirect) => redirect::answer(&snapshot, client, &req),
                };
                Ok::<_, Infallible>(response.map(|body| Counted { body, _open: open }))
            }
        });
        let result = match protocol {
            Protocol::Http1 => {
                // With upgrades, so that `hyper::upgrade::on` works in the service (WebSocket).
                let conn = http1_builder(server, max_buf)
                    .serve_connection(io, service)
                    .with_upgrades();
                drive(pin!(conn), &mut shutdown, None, |conn| {
                    conn.graceful_shutdown();
                })
                .await
            }
            Protocol::Http2 => {
                let conn = http2_builder(server).serve_connection(io, service);
                let idle = IdleWatch::new(&streams, server.client_header_timeout);
                drive(pin!(conn), &mut shutdown, Some(idle), |conn| {
                    conn.graceful_shutdown();
                })
                .await
            }
        };
        if let Some(Err(err)) = result {
            on_connection_error(&err, protocol, client, &snapshot, &activity);
        }
    }
}

/// What a write to the client must achieve (`min_response_rate`, `client_write_timeout`).
fn response_write(server: &ServerConfig) -> http1::pace::WriteLimit {
    http1::pace::WriteLimit {
        rate: http1::pace::MinRate {
            bytes_per_second: server.min_response_rate,
            grace: server.min_rate_grace,
        },
        stall: server.client_write_timeout,
    }
}

/// The largest request head read. It sits above gatehouse's own limits, so that requests
/// between the two get the pipeline's 414/431 with the limit's name; only far larger ones are
/// refused while reading.
fn head_limit(server: &ServerConfig) -> usize {
    (server.max_request_header_size * 2)
        .max(server.max_uri_length * 2)
        .max(16 * 1024)
}

/// The pipeline (or the redirect) behind gatehouse's HTTP/1.1 engine.
struct Http1Handler {
    client: SocketAddr,
    handler: Handler,
    current: Current,
    activity: Arc<ClientActivity>,
}

impl http1::Handler for Http1Handler {
    type Body = ProxyBody;

    fn call(
        &self,
        request: Request<http1::RequestBody>,
    ) -> impl Future<Output = Response<ProxyBody>> + Send {
        let req = request.map(ClientBody::Http1);
        let snapshot = self.current.load_full();
        let client = self.client;
        if let Some(response) = super::challenge::http01(&snapshot, &req) {
            return Either::Right(std::future::ready(response));
        }
        match self.handler {
            Handler::Proxy => {
                let activity = Arc::clone(&self.activity);
                Either::Left(handle_isolated(snapshot, client, activity, req))
            }
            Handler::Redirect => {
                let response = redirect::answer(&snapshot, client, &req);
                Either::Right(std::future::ready(response))
            }
        }
    }

    fn reject(&self, error: http1::HeadError) -> Response<ProxyBody> {
        let snapshot = self.current.load_full();
        let failure = Failure::client(error.status, error.reason);
        let request_id = log_unparsed_request(&failure, self.client, &snapshot);
        respond::render(
            &failure,
            &ErrorContext {
                request_id: &request_id,
                accept: None,
                head_only: false,
                next_hop: None,
                proxy_status: &snapshot.proxy_status,
            },
        )
    }
}

fn http1_builder(server: &ServerConfig, max_buf: usize) -> hyper_http1::Builder {
    let mut builder = hyper_http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .keep_alive(true)
        // Also the idle keep-alive limit: hyper starts it whenever it waits for a request head.
        .header_read_timeout(server.client_header_timeout)
        // hyper's buffer limit sits above gatehouse's own limits (see `max_buf`). hyper's
        // default of 100 header fields is kept (above 100 it heap-allocates its parse arrays
        // for every request).
        .max_buf_size(max_buf);
    builder
}

fn http2_builder(server: &ServerConfig) -> http2::Builder<TokioExecutor> {
    let settings = &server.http2;
    let mut builder = http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .max_concurrent_streams(settings.max_concurrent_streams)
        .initial_stream_window_size(settings.stream_window)
        .initial_connection_window_size(settings.connection_window)
        // Announced in SETTINGS (RFC 9113 §6.5.2). Twice gatehouse's own limit, as hyper's
        // HTTP/1.1 buffer is: a header section between the two gets gatehouse's full 431 (with
        // its body and access record) from the service's check; only far larger ones get the
        // h2 layer's bare 431 (h2 also counts 32 bytes per field, gatehouse 4).
        .max_header_list_size(
            u32::try_from(server.max_request_header_size.saturating_mul(2)).unwrap_or(u32::MAX),
        )
        .max_pending_accept_reset_streams(MAX_PENDING_ACCEPT_RESETS)
        .max_local_error_reset_streams(MAX_LOCAL_ERROR_RESETS);
    builder
}

/// Drives a connection to its end; on shutdown (or, for HTTP/2, when idle) asks it to finish
/// gracefully: HTTP/1.1 closes after the response in progress, HTTP/2 sends GOAWAY and lets
/// open streams finish. `None` when an HTTP/2 connection was dropped because its client,
/// told to go, stayed without a stream for another idle period (it never answered the
/// GOAWAY's PING).
async fn drive<C: Future>(
    mut conn: Pin<&mut C>,
    shutdown: &mut watch::Receiver<bool>,
    mut idle: Option<IdleWatch<'_>>,
    graceful: impl Fn(Pin<&mut C>),
) -> Option<C::Output> {
    let mut closing = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => return Some(result),
            () = stopping(shutdown), if !closing => {
                graceful(conn.as_mut());
                closing = true;
            }
            () = IdleWatch::idle(&mut idle) => {
                if closing {
                    return None;
                }
                graceful(conn.as_mut());
                closing = true;
            }
        }
    }
}

// === HTTP/2 streams and idleness ===

/// The streams (requests) of one connection: how many are open now, how many were opened.
#[derive(Debug, Default)]
struct Streams {
    open: AtomicUsize,
    opened: AtomicU64,
}

/// One open stream's place in [`Streams`], held by its request and then by its response
/// body until hyper is done with it (sent completely, or reset).
#[derive(Debug)]
struct OpenStream(Arc<Streams>);

impl OpenStream {
    fn new(streams: &Arc<Streams>) -> Self {
        streams.open.fetch_add(1, Ordering::Relaxed);
        streams.opened.fetch_add(1, Ordering::Relaxed);
        Self(Arc::clone(streams))
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A response body that keeps its HTTP/2 stream counted as open (HTTP/1.1: no count).
#[derive(Debug)]
struct Counted {
    body: ProxyBody,
    _open: Option<OpenStream>,
}

impl http_body::Body for Counted {
    type Data = bytes::Bytes;
    type Error = crate::body::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        // An error passed up here (a failure after the head went out) is what makes hyper
        // reset an HTTP/2 stream with RST_STREAM(INTERNAL_ERROR), or cut an HTTP/1.1 response
        // short. No Proxy-Status trailer is sent instead: a trailer section ends the stream
        // (END_STREAM) and would make the truncated body look complete.
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// HTTP/1.1's idle keep-alive limit (`client_header_timeout`) for HTTP/2, where hyper has
/// none: a connection that had no stream open and opened none for a whole period gets GOAWAY,
/// as nginx and Envoy close idle HTTP/2 connections. Client frames such as PINGs do not count
/// as activity.
struct IdleWatch<'a> {
    streams: &'a Streams,
    interval: Interval,
    last_opened: u64,
}

impl<'a> IdleWatch<'a> {
    fn new(streams: &'a Streams, period: Duration) -> Self {
        let mut interval = tokio::time::interval_at(Instant::now() + period, period);
        // After a stall, a whole period still passes between GOAWAY and dropping the
        // connection (no burst of catch-up ticks).
        interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Self {
            streams,
            interval,
            last_opened: streams.opened.load(Ordering::Relaxed),
        }
    }

    /// Resolves at the end of an idle period; never without a watch.
    async fn idle(watch: &mut Option<IdleWatch<'_>>) {
        let Some(watch) = watch else {
            return std::future::pending().await;
        };
        loop {
            watch.interval.tick().await;
            let opened = watch.streams.opened.load(Ordering::Relaxed);
            let idle =
                opened == watch.last_opened && watch.streams.open.load(Ordering::Relaxed) == 0;
            watch.last_opened = opened;
            if idle {
                return;
            }
        }
    }
}

/// Resolves when gatehouse begins to shut down.
async fn stopping(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Waits for the client's first bytes and tells an HTTP/2 connection preface from anything
/// else, which is served as HTTP/1.1. It peeks, so the bytes stay for hyper. `None` when the
/// client sent nothing within `timeout` (or closed): such a connection is closed silently, as
/// an idle keep-alive one would be.
async fn sniff(stream: &TcpStream, timeout: Duration) -> Option<Protocol> {
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; H2_PREFACE.len()];
    loop {
        let n = match tokio::time::timeout_at(deadline, stream.peek(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => n,
            Ok(_) | Err(_) => return None,
        };
        if buf[..n] != H2_PREFACE[..n] {
            return Some(Protocol::Http1);
        }
        if n == H2_PREFACE.len() {
            return Some(Protocol::Http2);
        }
        // Only part of the preface so far. A peek would return the same bytes at once (the
        // socket stays readable), so pause before looking again.
        if Instant::now() + PEEK_PAUSE >= deadline {
            return None;
        }
        tokio::time::sleep(PEEK_PAUSE).await;
    }
}

/// Runs the pipeline, answering a panic with 500 `proxy_internal_error`.
async fn handle_isolated(
    snapshot: Arc<Snapshot>,
    client: SocketAddr,
    activity: Arc<ClientActivity>,
    req: Request<ClientBody>,
) -> Response<ProxyBody> {
    let head_only = req.method() == http::Method::HEAD;
    let accept = req.headers().get(http::header::ACCEPT).cloned();
    let handled = std::panic::AssertUnwindSafe(service::handle(
        Arc::clone(&snapshot),
        client,
        &activity,
        req,
    ))
    .catch_unwind()
    .await;
    match handled {
        Ok(response) => response,
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(ToString::to_string)
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            let failure = Failure::new(
                FailureKind::ProxyInternalError,
                Phase::Internal,
                format!("panic: {message}"),
            );
            let request_id = service::new_request_id();
            snapshot
                .observer
                .failure(&failure, &AttemptContext::before_any_attempt(&request_id));
            respond::render(
                &failure,
                &ErrorContext {
                    request_id: &request_id,
                    accept: accept.as_ref(),
                    head_only,
                    next_hop: None,
                    proxy_status: &snapshot.proxy_status,
                },
            )
        }
    }
}

/// hyper ended the connection with an error: log it. A TLS client that stalled part-way
/// through a request head is logged as a 408; the connection is only closed (no response can be
/// written around hyper's TLS session).
fn on_connection_error(
    err: &hyper::Error,
    protocol: Protocol,
    client: SocketAddr,
    snapshot: &Snapshot,
    activity: &ClientActivity,
) {
    if protocol == Protocol::Http2 {
        // Stream-level failures are answered per stream; what ends a whole HTTP/2 connection
        // (a GOAWAY for a protocol error, a reset socket) has no request to log.
        tracing::debug!(%client, error = %crate::failure::classify::describe(err), "HTTP/2 client connection ended with an error");
        return;
    }
    if err.is_timeout() {
        if !activity.request_in_progress() {
            return; // an idle keep-alive connection: closing it is normal
        }
        let failure = Failure::client(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "client did not send a complete request header section within client_header_timeout ({:?})",
                snapshot.config.server.client_header_timeout
            ),
        );
        log_unparsed_request(&failure, client, snapshot);
        return;
    }
    if err.is_parse() || err.is_parse_too_large() {
        // hyper has answered 400/414/431 itself (a bare response); the log lines are ours.
        let status = if err.is_parse_too_large() {
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        } else {
            StatusCode::BAD_REQUEST
        };
        let failure = Failure::client(
            status,
            format!(
                "unparseable request: {}",
                crate::failure::classify::describe(err)
            ),
        );
        log_unparsed_request(&failure, client, snapshot);
        return;
    }
    tracing::debug!(%client, error = %crate::failure::classify::describe(err), "client connection ended with an error");
}

/// The failure warning and access record for a request that never became a `Request`
/// (method and target unknown, logged as `-`). Returns the request id used.
fn log_unparsed_request(failure: &Failure, client: SocketAddr, snapshot: &Snapshot) -> String {
    let request_id = service::new_request_id();
    snapshot
        .observer
        .failure(failure, &AttemptContext::before_any_attempt(&request_id));
    let method = http::Method::from_bytes(b"-").unwrap_or_default();
    let mut record = AccessRecord::new(
        snapshot.config.server.access_log,
        client,
        request_id.as_str().into(),
        method,
        "-".to_owned(),
    );
    record.status = failure.status().as_u16();
    record.failure = Some(failure.kind.token());
    snapshot.observer.finished(record);
    request_id
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An idle connection's task holds the engine's future between requests: each exchange's
    /// state is boxed while it runs, so the future stays small (idle memory per connection).
    #[tokio::test]
    async fn an_idle_http1_connection_holds_a_small_future() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let stream = TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let config = gatehouse_config::parse(
            "test.toml",
            "[[route]]\nupstream = \"app\"\n[upstream.app]\nservers = [\"127.0.0.1:1\"]\n",
        )
        .unwrap_or_else(|e| panic!("config: {e:?}"))
        .config;
        let lasting = crate::snapshot::Lasting::in_memory(
            Arc::new(crate::observe::Observer::default()),
            1 << 20,
            1 << 16,
        );
        let snapshot = Arc::new(Snapshot::build(
            config,
            &lasting,
            super::super::Listeners::default(),
        ));
        let handler = Http1Handler {
            client: addr,
            handler: Handler::Proxy,
            current: Arc::new(arc_swap::ArcSwap::from(Arc::clone(&snapshot))),
            activity: Arc::new(ClientActivity::new(addr, addr, 0, false)),
        };
        let (_stop, mut shutdown) = watch::channel(false);
        let settings = http1::Settings {
            header_timeout: Duration::from_secs(1),
            max_head: 16 * 1024,
            response_write: http1::pace::WriteLimit::OFF,
        };
        let serve = http1::serve(stream, &handler, settings, &mut shutdown);
        let size = std::mem::size_of_val(&serve);
        assert!(
            size <= 1280,
            "the HTTP/1.1 connection future is {size} bytes"
        );
    }
}
