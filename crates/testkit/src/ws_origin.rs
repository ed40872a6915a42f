//! A WebSocket echo origin on `127.0.0.1:0` (tungstenite, one std thread per connection) that
//! records the handshakes it accepted and how each session ended, and a blocking WebSocket
//! client ([`ws_connect`]) that talks to gatehouse with `Host: app.test`.
//!
//! [`tungstenite`] is re-exported so that tests use the same `Message` and error types.

use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

pub use tungstenite;
use tungstenite::client::IntoClientRequest as _;
use tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tungstenite::{Error, Message, WebSocket};

use crate::PATIENCE;
use crate::http1::Headers;
use crate::record::Recorder;

/// How often a session thread looks at the stop flag while no message arrives.
const TICK: Duration = Duration::from_millis(50);

/// A handshake the origin accepted: the upgrade request as it arrived.
#[derive(Debug, Clone)]
pub struct Handshake {
    pub target: String,
    pub headers: Headers,
}

/// How a WebSocket session on the origin ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEnd {
    /// The peer sent a close frame (the origin answered it and closed).
    CloseFrame,
    /// The connection ended without a close frame (EOF or reset), with the error seen.
    Dropped(String),
    /// The origin was dropped while the session was open.
    Stopped,
}

#[derive(Debug, Default)]
struct Shared {
    handshakes: Recorder<Handshake>,
    ends: Recorder<SessionEnd>,
    open: AtomicUsize,
    stop: AtomicBool,
    /// Handles on the open sessions' sockets, by session number, to close them when the origin
    /// is dropped.
    sockets: Mutex<Vec<(usize, TcpStream)>>,
    sessions: AtomicUsize,
}

/// The echo origin: every text or binary message comes back as it was sent.
#[derive(Debug)]
pub struct WsOrigin {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl WsOrigin {
    pub fn start() -> Self {
        let listener =
            TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind ws origin: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("local_addr: {e}"));
        let shared = Arc::new(Shared::default());
        let accepting = Arc::clone(&shared);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if accepting.stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let shared = Arc::clone(&accepting);
                std::thread::spawn(move || session(stream, &shared));
            }
        });
        Self { addr, shared }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The handshakes accepted so far.
    pub fn handshakes(&self) -> Vec<Handshake> {
        self.shared.handshakes.snapshot()
    }

    /// Waits up to [`PATIENCE`] for `n` accepted handshakes.
    pub fn wait_for_handshakes(&self, n: usize) -> Vec<Handshake> {
        let found = self
            .shared
            .handshakes
            .wait_until(PATIENCE, |all| (all.len() >= n).then(|| all.to_vec()));
        found.unwrap_or_else(|| {
            panic!(
                "expected {n} WebSocket handshakes at the origin, got {:#?}",
                self.handshakes()
            )
        })
    }

    /// Sessions currently open.
    pub fn open_sessions(&self) -> usize {
        self.shared.open.load(Ordering::SeqCst)
    }

    /// How the sessions that ended so far ended, in order.
    pub fn ends(&self) -> Vec<SessionEnd> {
        self.shared.ends.snapshot()
    }

    /// Waits up to `timeout` for `n` sessions to have ended; `None` if fewer did.
    pub fn wait_for_ends(&self, n: usize, timeout: Duration) -> Option<Vec<SessionEnd>> {
        self.shared
            .ends
            .wait_until(timeout, |all| (all.len() >= n).then(|| all.to_vec()))
    }
}

impl Drop for WsOrigin {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wakes the acceptor, which then sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        let sockets = sockets(&self.shared);
        for (_, socket) in sockets.iter() {
            let _ = socket.shutdown(Shutdown::Both);
        }
    }
}

/// One connection: the handshake (recorded), then echo until it ends (recorded).
fn session(stream: TcpStream, shared: &Shared) {
    if shared.stop.load(Ordering::SeqCst) {
        return;
    }
    let _ = stream.set_read_timeout(Some(PATIENCE));
    let id = shared.sessions.fetch_add(1, Ordering::SeqCst);
    if let Ok(handle) = stream.try_clone() {
        sockets(shared).push((id, handle));
    }
    // The signature is tungstenite's handshake callback, large error type included.
    #[allow(clippy::result_large_err)]
    let record = |request: &Request, response: Response| {
        let headers = request
            .headers()
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect();
        shared.handshakes.push(Handshake {
            target: request.uri().to_string(),
            headers: Headers(headers),
        });
        // Like a chat server: the first subprotocol offered is the one chosen.
        let mut response = response;
        if let Some(first) = request
            .headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .and_then(|p| p.trim().parse().ok())
        {
            response
                .headers_mut()
                .insert("sec-websocket-protocol", first);
        }
        Ok::<_, ErrorResponse>(response)
    };
    if let Ok(mut ws) = tungstenite::accept_hdr(stream, record) {
        shared.open.fetch_add(1, Ordering::SeqCst);
        // Short reads from here on, so that a dropped origin ends its sessions promptly.
        let _ = ws.get_ref().set_read_timeout(Some(TICK));
        let end = echo(&mut ws, shared);
        // Closed for good (the handle kept for Drop would otherwise hold the socket open).
        let _ = ws.get_ref().shutdown(Shutdown::Both);
        shared.open.fetch_sub(1, Ordering::SeqCst);
        shared.ends.push(end);
    }
    sockets(shared).retain(|(session, _)| *session != id);
}

fn sockets(shared: &Shared) -> MutexGuard<'_, Vec<(usize, TcpStream)>> {
    shared
        .sockets
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

fn echo(ws: &mut WebSocket<TcpStream>, shared: &Shared) -> SessionEnd {
    let mut closing = false;
    loop {
        match ws.read() {
            Ok(message @ (Message::Text(_) | Message::Binary(_))) => {
                if let Err(err) = ws.send(message) {
                    return SessionEnd::Dropped(err.to_string());
                }
            }
            // tungstenite queues the close reply; the next read sends it and then reports
            // ConnectionClosed.
            Ok(Message::Close(_)) => closing = true,
            Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => {}
            Err(Error::Io(err))
                if matches!(
                    err.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                if shared.stop.load(Ordering::SeqCst) {
                    return SessionEnd::Stopped;
                }
            }
            Err(Error::ConnectionClosed | Error::AlreadyClosed) if closing => {
                return SessionEnd::CloseFrame;
            }
            Err(err) => return SessionEnd::Dropped(err.to_string()),
        }
    }
}

/// A WebSocket client connection, as [`ws_connect`] opens it.
pub type WsClient = WebSocket<TcpStream>;

/// Opens a WebSocket to `ws://app.test{target}` over a TCP connection to `addr` (gatehouse),
/// with these extra request headers (a header named here replaces tungstenite's own). Reads
/// time out after [`PATIENCE`].
pub fn ws_connect(
    addr: SocketAddr,
    target: &str,
    headers: &[(&str, &str)],
) -> Result<(WsClient, tungstenite::handshake::client::Response), Error> {
    let stream = TcpStream::connect_timeout(&addr, PATIENCE).map_err(Error::Io)?;
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(PATIENCE));
    let mut request = format!("ws://app.test{target}").into_client_request()?;
    for (name, value) in headers {
        let name = tungstenite::http::HeaderName::from_bytes(name.as_bytes())
            .unwrap_or_else(|e| panic!("header name {name:?}: {e}"));
        let value = tungstenite::http::HeaderValue::from_str(value)
            .unwrap_or_else(|e| panic!("header value {value:?}: {e}"));
        request.headers_mut().insert(name, value);
    }
    tungstenite::client(request, stream).map_err(|err| match err {
        tungstenite::HandshakeError::Failure(err) => err,
        tungstenite::HandshakeError::Interrupted(_) => Error::Io(io::Error::new(
            io::ErrorKind::TimedOut,
            "handshake timed out",
        )),
    })
}
