//! Serving one client connection: the TLS handshake on TLS listeners, then HTTP/1.1 (with
//! upgrades) or HTTP/2, chosen by ALPN over TLS and by the connection preface on plain
//! listeners (h2c with prior knowledge, RFC 9113 §3.3), until the client leaves, idles out, or
//! gatehouse drains.
//!
//! Owns keep-alive and idle limits, the header read timeout (408), request-parsing limits,
//! HTTP/2 stream and flow-control limits, panic isolation (a panic in one request is answered
//! 500 `proxy_internal_error` and touches no other request) and graceful drain on shutdown.
//!
//! Both protocols are served by gatehouse's own engines ([`crate::http1`] over a plain socket
//! or a TLS session, [`crate::http2`] on `h2`). A failure after a response's headers were sent
//! ends its body with an error (`body::AbortedResponse`): the HTTP/1.1 engine then closes the
//! connection short of the promised length or final chunk, and the HTTP/2 engine resets the
//! stream with RST_STREAM(INTERNAL_ERROR). Proxy-Status is deliberately not sent as a trailer
//! there: on HTTP/2 a trailer section carries END_STREAM, which would make the truncated body
//! look complete to the client.
//!
//! Beside it: `sniff` tells h2c from HTTP/1.1, `h2_streams` counts HTTP/2 streams for the idle
//! watch, `h2_body` keeps a stream counted while its response body is sent,
//! `settings` reads the limits, `isolate` isolates panics and logs requests that never parsed.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;

use futures_util::future::Either;
use http::{Request, Response};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::h2_body::Counted;
use super::h2_streams::{IdleWatch, OpenStream, Streams};
use super::isolate::{handle_isolated, log_unparsed_request};
use super::settings::{head_limit, http2_settings, response_write};
use super::sniff::sniff;
use super::{proxy_header, redirect};
use crate::body::ProxyBody;
use crate::client_body::ClientBody;
use crate::client_io::{ClientActivity, ClientIo};
use crate::failure::Failure;
use crate::respond::{self, ErrorContext};
use crate::snapshot::listeners::ListenerKind;
use crate::snapshot::{Current, Snapshot};
use crate::{http1, http2};

/// What answers the requests of a connection.
#[derive(Debug, Clone, Copy)]
enum Handler {
    /// The proxy pipeline.
    Proxy,
    /// A 308 to `https://` (redirect listeners).
    Redirect,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Protocol {
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

/// Serves one accepted connection as its listener's `kind` says. (Not an `async fn`, which
/// would keep its arguments twice in the state every connection's task holds.)
#[allow(
    clippy::manual_async_fn,
    reason = "an async fn would keep its arguments twice in the state every connection's task holds"
)]
pub(super) fn serve(
    accepted: Accepted,
    snapshot: Arc<Snapshot>,
    current: Current,
    shutdown: watch::Receiver<bool>,
    guard: super::ConnGuard,
) -> impl Future<Output = ()> + Send {
    async move {
        // Counts the connection as open until this future ends (or is dropped).
        let _guard = guard;
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
        // (an idle plain HTTP/1.1 connection does not carry room for a TLS session, HTTP/2 state,
        // or the h2c sniffing it went through).
        match kind {
            ListenerKind::Plain | ListenerKind::RedirectHttps => {
                if matches!(kind, ListenerKind::RedirectHttps) {
                    conn.handler = Handler::Redirect;
                }
                let protocol = if conn.snapshot.config.server.http2.enabled {
                    match Box::pin(conn.sniff(&stream)).await {
                        Some(protocol) => protocol,
                        // Nothing arrived, or draining: closed like an idle keep-alive connection.
                        None => return,
                    }
                } else {
                    Protocol::Http1
                };
                match protocol {
                    Protocol::Http1 => Box::pin(conn.http1(stream.into())).await,
                    Protocol::Http2 => Box::pin(conn.http2(stream)).await,
                }
            }
            ListenerKind::Tls(config) => Box::pin(conn.tls(stream, config)).await,
        }
    }
}

impl Conn {
    /// HTTP/1.1 or h2c (prior knowledge) on a plain listener; `None` when the client sent
    /// nothing in time or gatehouse is draining.
    async fn sniff(&mut self, stream: &TcpStream) -> Option<Protocol> {
        let timeout = self.snapshot.config.server.client_header_timeout;
        tokio::select! {
            sniffed = sniff(stream, timeout) => sniffed,
            () = stopping(&mut self.shutdown) => None,
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
        match protocol {
            Protocol::Http2 => self.http2(stream).await,
            Protocol::Http1 => self.http1(stream.into()).await,
        }
    }

    /// HTTP/1.1, plain or over TLS, served by gatehouse's own engine. (The engine's future is
    /// what an idle connection holds, so this adds no state of its own around it.)
    fn http1(self, socket: http1::Socket) -> impl Future<Output = ()> + Send {
        let Self {
            client,
            local,
            handler,
            https,
            snapshot,
            current,
            shutdown,
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
            activity: Arc::new(ClientActivity::new(client, local, https)),
        };
        http1::serve(socket, handler, settings, shutdown)
    }

    /// HTTP/2 (h2c, or TLS with ALPN `h2`), served by gatehouse's own engine on `h2`.
    async fn http2<S>(self, io: S)
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
        let activity = Arc::new(ClientActivity::new(client, local, https));
        let io = ClientIo::new(io, Arc::clone(&activity), response_write(server));
        let streams = Arc::new(Streams::default());
        let handler = Http2Handler {
            client,
            handler,
            current,
            activity,
            streams: Arc::clone(&streams),
        };
        let conn = http2::Connection::new(io, handler, http2_settings(server));
        let idle = IdleWatch::new(&streams, server.client_header_timeout);
        let result = drive(pin!(conn), &mut shutdown, Some(idle), |conn| {
            conn.graceful_shutdown();
        })
        .await;
        if let Some(Err(err)) = result {
            // Stream-level failures are answered per stream; what ends a whole HTTP/2
            // connection (a GOAWAY for a protocol error, a reset socket) has no request to log.
            tracing::debug!(%client, error = %err, "HTTP/2 client connection ended with an error");
        }
    }
}

/// The pipeline (or the redirect) behind gatehouse's HTTP/1.1 engine.
struct Http1Handler {
    client: SocketAddr,
    handler: Handler,
    current: Current,
    activity: Arc<ClientActivity>,
}

impl http1::Handler for Http1Handler {
    type RequestBody = ClientBody;
    type Body = ProxyBody;

    fn call(&self, req: Request<ClientBody>) -> impl Future<Output = Response<ProxyBody>> + Send {
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

/// The pipeline (or the redirect) behind gatehouse's HTTP/2 engine. Each stream is counted
/// open until its response body is done with, for the idle watch.
struct Http2Handler {
    client: SocketAddr,
    handler: Handler,
    current: Current,
    activity: Arc<ClientActivity>,
    streams: Arc<Streams>,
}

impl http2::Handler for Http2Handler {
    type RequestBody = ClientBody;
    type Body = Counted;

    fn call(
        &self,
        mut req: Request<ClientBody>,
    ) -> impl Future<Output = Response<Counted>> + Send + 'static {
        // Room for the fields the pipeline adds (Host, Via, X-Forwarded-*, X-Request-ID) at
        // once: the map the decoder filled is just large enough for what the client sent, and
        // would otherwise grow, rehashing every field, once or twice per request.
        req.headers_mut().reserve(crate::forward::ADDED_FIELDS);
        let open = OpenStream::new(&self.streams);
        let snapshot = self.current.load_full();
        let activity = Arc::clone(&self.activity);
        let (client, handler) = (self.client, self.handler);
        async move {
            let response = match (super::challenge::http01(&snapshot, &req), handler) {
                (Some(answer), _) => answer,
                // Boxed in place: the pipeline's future is kilobytes, and this one, small, is
                // what the stream's task is spawned with (and moved through tokio's calls).
                (None, Handler::Proxy) => {
                    crate::boxed::pinned(|| handle_isolated(snapshot, client, activity, req)).await
                }
                (None, Handler::Redirect) => redirect::answer(&snapshot, client, &req),
            };
            response.map(|body| Counted::http2(body, open))
        }
    }
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

/// Resolves when gatehouse begins to shut down.
async fn stopping(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

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
            activity: Arc::new(ClientActivity::new(addr, addr, false)),
        };
        let (_stop, shutdown) = watch::channel(false);
        let settings = http1::Settings {
            header_timeout: Duration::from_secs(1),
            max_head: 16 * 1024,
            response_write: http1::pace::WriteLimit::OFF,
        };
        let serve = http1::serve(stream.into(), handler, settings, shutdown);
        let size = std::mem::size_of_val(&serve);
        assert!(
            size <= 640,
            "the HTTP/1.1 connection future is {size} bytes"
        );
    }
}
