//! Upstream servers, their pooled connections and their connection slots.
//!
//! A [`Server`] is one address of an upstream pool: a `servers` entry with an IP literal, or
//! one of the addresses its host name resolved to. It keeps stacks of idle HTTP/1.1
//! connections, one per worker (`idle.rs`). A connection goes
//! back only once its response body was read to the end; anything else (an error, an abort, an
//! unread body) drops it, so a half-used connection is never reused.
//!
//! With `http2`, a server's requests share one HTTP/2 connection instead ([`Multiplexed`], in
//! `h2.rs`): every request opens a stream on it (`h2::Stream`); a second connection is opened only when the
//! first is closed, or full (the server's `SETTINGS_MAX_CONCURRENT_STREAMS`, as hyper reports
//! it). A burst of first requests waits for one connect rather than opening one each
//! ([`Server::connect`]).
//!
//! A connection checked out for one request, and sending on it, are in `conn.rs`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use gatehouse_config::{UpstreamConfig, UpstreamServer, UpstreamTls};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::conn::{Conn, Sender, poll_ready_now};
use super::connect::{self, ConnMode};
use super::h2::Multiplexed;
use super::health::ServerState;
use super::idle::IdleStacks;
use super::tls::TlsClients;
use crate::failure::Failure;

/// Idle connections kept per server when it has no `max_connections`. Above the concurrency a
/// busy server sees (an HTTP/2 client multiplexing hundreds of streams onto HTTP/1.1
/// connections), so that connections are not closed after each burst only to be opened again;
/// idle ones still close after the upstream keep-alive timeout.
const MAX_IDLE: usize = 4096;
use super::idle::POOL_IDLE_TIMEOUT as IDLE_TIMEOUT;
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
    /// `send_proxy_protocol`: each connection starts with this PROXY protocol header.
    pub proxy_protocol: Option<crate::proxy_protocol::Version>,
}

impl From<&UpstreamConfig> for ConnSettings {
    fn from(config: &UpstreamConfig) -> Self {
        Self {
            proxy_protocol: config.send_proxy_protocol.map(|version| match version {
                gatehouse_config::ProxyProtocolVersion::V1 => crate::proxy_protocol::Version::V1,
                gatehouse_config::ProxyProtocolVersion::V2 => crate::proxy_protocol::Version::V2,
            }),
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
    idle: Mutex<IdleStacks<Conn>>,
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
            idle: Mutex::new(IdleStacks::default()),
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
    /// An idle connection of gatehouse's own client is checked on the spot (one read attempt:
    /// a close, an error or stray bytes retire it). One driven by hyper (an upgrade request
    /// answered without a 101 leaves one) may not be marked ready yet right after its response
    /// body ended (its connection task has not run since); waiting for that here, briefly,
    /// costs nothing in the common case and saves a task per request at check-in.
    ///
    /// `careful`: the request cannot be sent again if the connection turns out closed (not
    /// idempotent). A server that closes a connection right after a response (a max-requests
    /// limit, without `Connection: close`) has its FIN on the way or already in the socket
    /// while nobody has looked yet; yielding once lets the runtime poll its sockets, so that
    /// the check sees the close before the request is written.
    pub async fn checkout(&self, careful: bool) -> Option<Conn> {
        if self.sends_proxy_header() {
            return None;
        }
        if self.settings.http2
            && let Some(conn) = self.shared_stream()
        {
            return Some(conn);
        }
        let now = Instant::now();
        let worker = crate::workers::current();
        loop {
            let idle = {
                let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(cutoff) = now.checked_sub(IDLE_TIMEOUT) {
                    idle.drop_older_than(cutoff);
                }
                idle.pop(worker, now)?
            };
            let mut conn = idle.conn;
            if careful {
                tokio::task::yield_now().await;
            }
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
    ///
    /// `client`: the client and the address it reached gatehouse on, for the PROXY protocol
    /// header of a `send_proxy_protocol` server (whose connections are the client's own:
    /// never pooled, never shared).
    pub async fn connect(
        &self,
        mode: ConnMode,
        client: Option<(SocketAddr, SocketAddr)>,
    ) -> Result<(Conn, Duration), Failure> {
        if self.sends_proxy_header() {
            return connect::connect_for(self.addr, &self.settings, mode, client).await;
        }
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
                    Sender::Own(_) | Sender::Http1(_) => {
                        self.http1_only.store(true, Ordering::Relaxed);
                    }
                }
            }
            Err(failure) => *opening = Some((Instant::now(), failure.clone())),
        }
        result
    }

    /// Connections to this server start with a PROXY protocol header naming one client.
    fn sends_proxy_header(&self) -> bool {
        self.settings.conn.proxy_protocol.is_some()
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
        if matches!(conn.sender, Sender::Own(_) | Sender::Http1(_))
            && !conn.sender.is_closed()
            && !self.sends_proxy_header()
        {
            self.push(conn);
        }
    }

    fn push(&self, conn: Conn) {
        // A server with a connection limit never has more open than that limit.
        let cap = self.max_connections.map_or(MAX_IDLE, |max| max as usize);
        let window = super::idle::reuse_window(conn.keep_alive, IDLE_TIMEOUT);
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).push(
            crate::workers::current(),
            conn,
            window,
            cap,
        );
    }
}
