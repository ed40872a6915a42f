//! Upstream servers, their idle keep-alive connections and their connection slots.
//!
//! A [`Server`] is one address of an upstream pool: a `servers` entry with an IP literal, or
//! one of the addresses its host name resolved to. It keeps a stack of idle HTTP/1.1
//! connections (most recently used first, so idle ones age out at the bottom). A connection goes
//! back only once its response body was read to the end; anything else (an error, an abort, an
//! unread body) drops it, so a half-used connection is never reused.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use gatehouse_config::UpstreamConfig;
use hyper::client::conn::http1::SendRequest;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::health::ServerState;
use super::io::ConnStats;
use crate::body::RequestBody;

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

/// One upstream server: where it is, how it is weighted and limited, its health, and its
/// idle connections.
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
    settings: ConnSettings,
    idle: Mutex<Vec<Idle>>,
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

/// A connection checked out for one request.
#[derive(Debug)]
pub struct Conn {
    pub sender: SendRequest<RequestBody>,
    pub stats: Arc<ConnStats>,
    pub peer: SocketAddr,
    /// Whether this connection served an earlier request (a failure on it may be a stale
    /// keep-alive connection rather than a dead server).
    pub reused: bool,
}

impl Conn {
    pub fn new(
        sender: SendRequest<RequestBody>,
        stats: Arc<ConnStats>,
        peer: SocketAddr,
        reused: bool,
    ) -> Self {
        Self {
            sender,
            stats,
            peer,
            reused,
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
            settings,
            idle: Mutex::new(Vec::new()),
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

    pub fn settings(&self) -> &ConnSettings {
        &self.settings
    }

    /// An idle connection that is ready for a request, if there is one.
    ///
    /// A connection checked in right after its response body ended may not be marked ready by
    /// hyper yet (its connection task has not run since); waiting for that here, briefly,
    /// costs nothing in the common case and saves a task per request at check-in.
    pub async fn checkout(&self) -> Option<Conn> {
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

    /// Returns a connection whose last response was read completely.
    pub fn checkin(&self, conn: Conn) {
        if !conn.sender.is_closed() {
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
fn poll_ready_now(sender: &mut SendRequest<RequestBody>) -> Poll<Result<(), hyper::Error>> {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    sender.poll_ready(&mut cx)
}
