//! Upstream servers and their idle keep-alive connections.
//!
//! A [`Server`] is one entry of an upstream's `servers` list. It keeps a stack of idle HTTP/1.1
//! connections (most recently used first, so idle ones age out at the bottom). A connection goes
//! back only once its response body was read to the end; anything else (an error, an abort, an
//! unread body) drops it, so a half-used connection is never reused.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use gatehouse_config::{ServerAddress, UpstreamConfig};
use hyper::client::conn::http1::SendRequest;
use tokio::time::Instant;

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

/// One upstream server and its idle connections.
#[derive(Debug)]
pub struct Server {
    pub address: ServerAddress,
    /// `pool/host:port`, the `next-hop` and log name of this server.
    pub label: String,
    settings: ConnSettings,
    idle: Mutex<Vec<Idle>>,
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
    pub fn new(pool: &str, address: ServerAddress, settings: ConnSettings) -> Self {
        let label = format!("{pool}/{}", address.authority());
        Self {
            address,
            label,
            settings,
            idle: Mutex::new(Vec::new()),
        }
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
