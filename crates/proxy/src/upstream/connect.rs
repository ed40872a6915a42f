//! Opening a new upstream connection: TCP connect within `connect_timeout`, the TLS handshake
//! (for a TLS server) within `connect_timeout` again, then the HTTP/1.1 or HTTP/2 handshake.
//! Each phase classifies its own failure where the facts are known. Host names were resolved
//! by the pool beforehand (see `pool::keep_resolved`); a server here is one address.
//!
//! Which HTTP version: an `http2` upstream's pooled connections offer ALPN `h2` (then
//! `http/1.1`) over TLS and speak HTTP/2 when the server chose it, HTTP/1.1 otherwise; on
//! cleartext they speak HTTP/2 with prior knowledge (h2c). Upgrade connections are always
//! HTTP/1.1 (ALPN `http/1.1` only), since a protocol switch needs an HTTP/1.1 connection.

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::Mutex;
use std::task::Poll;
use std::time::Duration;

use http::uri::Authority;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::conn::Conn;
use super::h1::H1Conn;
use super::h2::Multiplexed;
use super::io::{ConnStats, Transport, UpstreamIo};
use super::server::{ConnSettings, Reach, TlsTarget};
use super::tls::{self, TlsFacts};
use crate::client_body::RequestBody;
use crate::failure::{Failure, FailureKind, Phase};

/// What a new connection is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnMode {
    /// Ordinary requests; the connection goes back to the server's pool (HTTP/1.1, gatehouse's
    /// own client) or is shared (HTTP/2).
    Pooled,
    /// One request that asks to switch protocols (WebSocket): always HTTP/1.1, with hyper's
    /// upgrade support, never pooled.
    Upgrade,
}

/// A connected stream, before any HTTP: TCP, or TLS over TCP.
#[derive(Debug)]
pub struct Opened {
    pub transport: Transport,
    /// From the start of the TCP connect to the end of the TLS handshake (or of the connect),
    /// like nginx's `$upstream_connect_time`.
    pub connect_time: Duration,
    /// What the TLS handshake negotiated and how long it took.
    pub tls: Option<(TlsFacts, Duration)>,
}

/// Opens a new connection to `addr`: gatehouse's own HTTP/1.1 client, or hyper's connection
/// task for HTTP/2 and upgrades. `settings` is a
/// server's [`ServerSettings`](super::server::ServerSettings) (`server.settings()`: TLS and
/// HTTP/2 as configured) or bare [`ConnSettings`] (cleartext HTTP/1.1). Returns the connection
/// with the time connecting took, TLS handshake included (the handshake alone is in
/// `Conn::tls_handshake`). Requests should go through `Server::connect`, which shares HTTP/2
/// connections.
pub async fn connect<R: Reach + ?Sized>(
    addr: SocketAddr,
    settings: &R,
    mode: ConnMode,
) -> Result<(Conn, Duration), Failure> {
    connect_for(addr, settings, mode, None).await
}

/// [`connect`] on behalf of `client` (its address and the one it reached gatehouse on),
/// named in the PROXY protocol header of a `send_proxy_protocol` server; `None` for
/// gatehouse's own connections (v1 `UNKNOWN`, v2 `LOCAL`).
pub async fn connect_for<R: Reach + ?Sized>(
    addr: SocketAddr,
    settings: &R,
    mode: ConnMode,
    client: Option<(SocketAddr, SocketAddr)>,
) -> Result<(Conn, Duration), Failure> {
    // A connection carrying one client's address is never shared as HTTP/2.
    let want_h2 =
        settings.http2() && mode == ConnMode::Pooled && settings.conn().proxy_protocol.is_none();
    let opened = open_for(addr, settings, want_h2, client).await?;
    let conn_settings = settings.conn();
    let connect_time = opened.connect_time;
    let (speak_h2, tls_handshake) = match &opened.tls {
        None => (want_h2, None),
        Some((facts, took)) => (
            want_h2
                && facts
                    .alpn
                    .as_deref()
                    .is_some_and(|p| p.as_bytes() == tls::ALPN_H2),
            Some(*took),
        ),
    };
    let conn = if speak_h2 {
        let authority = fallback_authority(addr, settings.tls());
        let (sender, driver) = handshake_h2(opened.transport, conn_settings).await?;
        let shared = Multiplexed::new(
            sender,
            addr,
            settings.tls().is_some(),
            authority,
            driver,
            tls_handshake,
        );
        shared.stream(false)
    } else {
        match mode {
            ConnMode::Pooled => {
                let (conn, stats) = H1Conn::new(
                    opened.transport,
                    conn_settings.send_timeout,
                    conn_settings.max_response_header_size,
                );
                Conn::own(conn, stats, addr, tls_handshake)
            }
            ConnMode::Upgrade => {
                let (sender, stats) = handshake_upgradable(
                    opened.transport,
                    conn_settings.send_timeout,
                    conn_settings.max_response_header_size,
                )
                .await?;
                Conn::http1(sender, stats, addr, tls_handshake)
            }
        }
    };
    Ok((conn, connect_time))
}

/// The TCP connect, then the TLS handshake for a TLS server (offering `h2` when `want_h2`),
/// each within `connect_timeout`. Health checks without a path stop here.
pub async fn open<R: Reach + ?Sized>(
    addr: SocketAddr,
    settings: &R,
    want_h2: bool,
) -> Result<Opened, Failure> {
    open_for(addr, settings, want_h2, None).await
}

/// A TCP connection to `addr`. A connect the kernel refused at once (a local port with
/// nothing listening: the application server is down) is known right after the `connect`
/// call; it fails then, before the socket is registered with the event loop (which would cost
/// an `epoll_ctl` to add it and another to take it out again, on every request while the
/// server is down). Any other connect completes through the event loop, as tokio's does.
async fn dial(addr: SocketAddr) -> io::Result<TcpStream> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(
        Domain::for_address(addr),
        Type::STREAM.nonblocking(),
        Some(Protocol::TCP),
    )?;
    match socket.connect(&addr.into()) {
        Ok(()) => {}
        Err(err) if err.raw_os_error() == Some(libc::EINPROGRESS) => {
            if let Some(refused) = socket.take_error()? {
                return Err(refused);
            }
        }
        Err(err) => return Err(err),
    }
    let stream = TcpStream::from_std(socket.into())?;
    stream.writable().await?;
    match stream.take_error()? {
        Some(err) => Err(err),
        None => Ok(stream),
    }
}

/// [`open`], with the PROXY protocol header for `client` first when the server wants one.
pub async fn open_for<R: Reach + ?Sized>(
    addr: SocketAddr,
    settings: &R,
    want_h2: bool,
    client: Option<(SocketAddr, SocketAddr)>,
) -> Result<Opened, Failure> {
    let started = Instant::now();
    let connect_timeout = settings.conn().connect_timeout;
    let connected = async {
        let mut stream = dial(addr).await?;
        if let Some(version) = settings.conn().proxy_protocol {
            let header = crate::proxy_protocol::encode(version, client);
            tokio::io::AsyncWriteExt::write_all(&mut stream, &header).await?;
        }
        Ok::<_, io::Error>(stream)
    };
    let stream = match tokio::time::timeout(connect_timeout, connected).await {
        Err(_) => {
            return Err(Failure::new(
                FailureKind::ConnectionTimeout,
                Phase::Connecting,
                format!("connect to {addr} did not complete within {connect_timeout:?}"),
            ));
        }
        Ok(Err(err)) => return Err(classify_connect_error(addr, &err)),
        Ok(Ok(stream)) => stream,
    };
    // Small writes (request heads) must not wait for Nagle.
    let _ = stream.set_nodelay(true);
    let Some(target) = settings.tls() else {
        return Ok(Opened {
            transport: Transport::Tcp(stream),
            connect_time: started.elapsed(),
            tls: None,
        });
    };
    let clients = target.clients.as_ref().map_err(|why| {
        Failure::new(
            FailureKind::ProxyConfigurationError,
            Phase::Connecting,
            format!("the upstream's TLS settings cannot be used: {why}"),
        )
    })?;
    let handshake_started = Instant::now();
    let (stream, facts) = tls::handshake(
        stream,
        &target.server_name,
        Arc::clone(clients.config(want_h2)),
        connect_timeout,
    )
    .await
    .map_err(|failure| name_the_server(failure, addr, &target.server_name))?;
    Ok(Opened {
        transport: Transport::Tls(Box::new(stream)),
        connect_time: started.elapsed(),
        tls: Some((facts, handshake_started.elapsed())),
    })
}

/// A TLS failure names the server by its TLS name; the log also wants the address when the
/// two differ.
fn name_the_server(mut failure: Failure, addr: SocketAddr, server_name: &str) -> Failure {
    if server_name != addr.ip().to_string() {
        failure.details = format!("{} (at {addr})", failure.details);
    }
    failure
}

/// The `:authority` of an HTTP/2 request that has no `Host`: the TLS name or the address.
fn fallback_authority(addr: SocketAddr, tls: Option<&TlsTarget>) -> Authority {
    let named = tls.and_then(|target| {
        let name = &target.server_name;
        let text = if name.contains(':') {
            format!("[{name}]:{}", addr.port())
        } else {
            format!("{name}:{}", addr.port())
        };
        Authority::try_from(text).ok()
    });
    named.unwrap_or_else(|| {
        Authority::try_from(addr.to_string()).unwrap_or_else(|_| Authority::from_static("upstream"))
    })
}

/// Starts a hyper HTTP/1.1 client connection over a connected stream (TCP, or TLS over TCP)
/// with byte counters and the write-stall timeout, and spawns its connection task: for the
/// tools that read what only hyper reports (`gatehouse doctor`, `probe`, `reload`); pooled
/// connections use gatehouse's own client (`upstream::h1`).
pub async fn handshake<S>(
    stream: S,
    send_timeout: Duration,
    max_response_header_size: usize,
) -> Result<(http1::SendRequest<RequestBody>, Arc<ConnStats>), Failure>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    handshake_http1(stream, send_timeout, max_response_header_size, false).await
}

/// Like [`handshake`], for a connection whose one request may switch protocols: after a `101`
/// the connection task hands the stream over (`hyper::upgrade::on(response)`).
pub async fn handshake_upgradable<S>(
    stream: S,
    send_timeout: Duration,
    max_response_header_size: usize,
) -> Result<(http1::SendRequest<RequestBody>, Arc<ConnStats>), Failure>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    handshake_http1(stream, send_timeout, max_response_header_size, true).await
}

async fn handshake_http1<S>(
    stream: S,
    send_timeout: Duration,
    max_response_header_size: usize,
    upgrades: bool,
) -> Result<(http1::SendRequest<RequestBody>, Arc<ConnStats>), Failure>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (io, stats) = UpstreamIo::new(stream, send_timeout);
    let mut builder = http1::Builder::new();
    // hyper's default of 100 header fields is kept: above 100 it allocates its parse arrays on
    // the heap for every message (measured: 128 KB per proxied request).
    builder.max_buf_size(max_response_header_size.max(8192));
    let (sender, connection) = builder
        .handshake::<_, RequestBody>(TokioIo::new(io))
        .await
        .map_err(|err| {
            Failure::new(
                FailureKind::ProxyInternalError,
                Phase::Connecting,
                err.to_string(),
            )
        })?;
    // Errors surface to the request through its response or body; the log line is written there.
    if upgrades {
        tokio::spawn(async move {
            let _ = connection.with_upgrades().await;
        });
    } else {
        tokio::spawn(async move {
            let _ = connection.await;
        });
    }
    Ok((sender, stats))
}

/// hyper's HTTP/2 client connection over an upstream stream.
type H2Connection = http2::Connection<TokioIo<UpstreamIo<Transport>>, RequestBody, TokioExecutor>;

/// An HTTP/2 connection object, shared between its task (which polls it) and the server's
/// pool, which asks it how many streams the server allows at once: only the connection can
/// tell, and h2 updates the number in its own task whenever the server's SETTINGS change it,
/// so it is read live rather than copied. `None` once the connection ended: it must be dropped
/// then, for hyper to report its senders closed.
pub struct H2Driver(Mutex<Option<Pin<Box<H2Connection>>>>);

impl H2Driver {
    /// The server's `SETTINGS_MAX_CONCURRENT_STREAMS` as last received (hyper's initial 100
    /// until the server's SETTINGS arrive); 0 once the connection ended.
    pub fn max_send_streams(&self) -> usize {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map_or(0, |connection| connection.current_max_send_streams())
    }
}

impl std::fmt::Debug for H2Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H2Driver").finish_non_exhaustive()
    }
}

/// How often a shared upstream HTTP/2 connection is checked with a PING.
const H2_PING_INTERVAL: Duration = Duration::from_secs(20);
/// How long a PING may go unanswered before the connection is closed.
const H2_PING_TIMEOUT: Duration = Duration::from_secs(10);

/// Starts an HTTP/2 client connection and spawns its connection task.
pub async fn handshake_h2(
    transport: Transport,
    settings: &ConnSettings,
) -> Result<(http2::SendRequest<RequestBody>, Arc<H2Driver>), Failure> {
    // The connection-level counters are not used for retry decisions on HTTP/2 (each stream
    // has its own, see `h2::Stream`); the write-stall timeout still applies.
    let (io, _stats) = UpstreamIo::new(transport, settings.send_timeout);
    let mut builder = http2::Builder::new(TokioExecutor::new());
    builder
        .max_header_list_size(u32::try_from(settings.max_response_header_size).unwrap_or(u32::MAX))
        // One connection carries every request to the server, so a connection that went
        // silently dead (a NAT or firewall dropped it) must be noticed before requests pile
        // onto it: a PING unanswered within the timeout closes it, and the next request opens
        // a new one.
        .timer(hyper_util::rt::TokioTimer::new())
        .keep_alive_interval(H2_PING_INTERVAL)
        .keep_alive_timeout(H2_PING_TIMEOUT)
        .keep_alive_while_idle(true);
    let (sender, connection) = builder
        .handshake::<_, RequestBody>(TokioIo::new(io))
        .await
        .map_err(|err| {
            Failure::new(
                FailureKind::ConnectionTerminated,
                Phase::Connecting,
                format!("the HTTP/2 connection preface could not be sent: {err}"),
            )
        })?;
    let driver = Arc::new(H2Driver(Mutex::new(Some(Box::pin(connection)))));
    let task = Arc::clone(&driver);
    tokio::spawn(std::future::poll_fn(move |cx| {
        // The lock is held for one poll at a time. Errors surface to the requests through
        // their responses or bodies.
        let mut slot = task.0.lock().unwrap_or_else(|e| e.into_inner());
        let Some(connection) = slot.as_mut() else {
            return Poll::Ready(());
        };
        match connection.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(_) => {
                *slot = None;
                Poll::Ready(())
            }
        }
    }));
    Ok((sender, driver))
}

/// connect(2) errors by errno: refused, unreachable, timed out (by the kernel), denied.
pub fn classify_connect_error(addr: SocketAddr, err: &io::Error) -> Failure {
    let kind = match err.kind() {
        io::ErrorKind::ConnectionRefused => FailureKind::ConnectionRefused,
        io::ErrorKind::NetworkUnreachable | io::ErrorKind::HostUnreachable => {
            FailureKind::DestinationIpUnroutable
        }
        io::ErrorKind::TimedOut => FailureKind::ConnectionTimeout,
        io::ErrorKind::PermissionDenied => FailureKind::DestinationIpProhibited,
        io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted => {
            FailureKind::ConnectionTerminated
        }
        _ => match err.raw_os_error() {
            Some(libc::ENETUNREACH | libc::EHOSTUNREACH | libc::EADDRNOTAVAIL) => {
                FailureKind::DestinationIpUnroutable
            }
            _ => FailureKind::ProxyInternalError,
        },
    };
    Failure::new(kind, Phase::Connecting, connect_error_details(addr, err)).with_os_error(err)
}

/// `connect to {addr}: {err}`. The text of an OS error depends only on its code, and a server
/// that refuses connections refuses many in a row: the text last made on this thread is used
/// again when the address and the code are the same (formatting it, the OS's message looked up,
/// costs more than the rest of the failure's handling).
fn connect_error_details(addr: SocketAddr, err: &io::Error) -> String {
    thread_local! {
        static LAST: RefCell<Option<(SocketAddr, i32, String)>> = const { RefCell::new(None) };
    }
    let format = || format!("connect to {addr}: {err}");
    let Some(code) = err.raw_os_error() else {
        return format();
    };
    LAST.with(|last| {
        let Ok(mut last) = last.try_borrow_mut() else {
            return format();
        };
        if let Some((last_addr, last_code, text)) = last.as_ref()
            && *last_addr == addr
            && *last_code == code
        {
            return text.clone();
        }
        let text = format();
        *last = Some((addr, code, text.clone()));
        text
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A port with nothing listening is refused (the error the failure kind is read from), and
    /// a listening one gives a stream that carries bytes both ways.
    #[tokio::test]
    async fn dial_reports_a_refusal_and_connects_to_a_listener() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let closed_addr = closed.local_addr().unwrap_or_else(|e| panic!("{e}"));
        drop(closed);
        let refused = dial(closed_addr).await.err();
        assert_eq!(
            refused.as_ref().map(io::Error::kind),
            Some(io::ErrorKind::ConnectionRefused),
            "{refused:?}"
        );

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let (stream, accepted) = tokio::join!(dial(addr), listener.accept());
        let mut stream = stream.unwrap_or_else(|e| panic!("{e}"));
        let (mut server, _) = accepted.unwrap_or_else(|e| panic!("{e}"));
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream
            .write_all(b"ping")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut got = [0u8; 4];
        server
            .read_exact(&mut got)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(&got, b"ping");
        server
            .write_all(b"pong")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        stream
            .read_exact(&mut got)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(&got, b"pong");
    }

    /// A text used again is the one formatting makes; another address or code gets its own.
    #[test]
    fn connect_error_details_are_their_formatting() {
        let a = SocketAddr::from(([127, 0, 0, 1], 1));
        let b = SocketAddr::from(([127, 0, 0, 1], 2));
        let refused = io::Error::from_raw_os_error(libc::ECONNREFUSED);
        let unreachable = io::Error::from_raw_os_error(libc::ENETUNREACH);
        let other = io::Error::other("no route");
        for (addr, err) in [
            (a, &refused),
            (a, &refused),
            (b, &refused),
            (b, &unreachable),
            (b, &other),
            (b, &unreachable),
            (a, &unreachable),
        ] {
            assert_eq!(
                connect_error_details(addr, err),
                format!("connect to {addr}: {err}")
            );
        }
    }
}
