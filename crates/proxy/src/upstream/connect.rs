//! Opening a new upstream connection: TCP connect within `connect_timeout`, HTTP/1.1 handshake.
//! Each phase classifies its own failure where the facts are known. Host names were resolved
//! by the pool beforehand (see `pool::keep_resolved`); a server here is one address.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::io::{ConnStats, UpstreamIo};
use super::server::{Conn, ConnSettings};
use crate::body::RequestBody;
use crate::failure::{Failure, FailureKind, Phase};

/// What a new connection is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnMode {
    /// Ordinary requests; the connection goes back to the server's idle pool.
    Pooled,
    /// One request that asks to switch protocols (WebSocket): always HTTP/1.1, with hyper's
    /// upgrade support, never pooled.
    Upgrade,
}

/// Opens a new connection to `addr` and starts its hyper connection task. Returns it with
/// the time the TCP connect took.
pub async fn connect(
    addr: SocketAddr,
    settings: &ConnSettings,
    mode: ConnMode,
) -> Result<(Conn, Duration), Failure> {
    let started = Instant::now();
    let stream =
        match tokio::time::timeout(settings.connect_timeout, TcpStream::connect(addr)).await {
            Err(_) => {
                return Err(Failure::new(
                    FailureKind::ConnectionTimeout,
                    Phase::Connecting,
                    format!(
                        "connect to {addr} did not complete within {:?}",
                        settings.connect_timeout
                    ),
                ));
            }
            Ok(Err(err)) => return Err(classify_connect_error(addr, &err)),
            Ok(Ok(stream)) => stream,
        };
    let connect_time = started.elapsed();
    // Small writes (request heads) must not wait for Nagle.
    let _ = stream.set_nodelay(true);

    let (sender, stats) = match mode {
        ConnMode::Pooled => {
            handshake(
                stream,
                settings.send_timeout,
                settings.max_response_header_size,
            )
            .await?
        }
        ConnMode::Upgrade => {
            handshake_upgradable(
                stream,
                settings.send_timeout,
                settings.max_response_header_size,
            )
            .await?
        }
    };
    Ok((Conn::new(sender, stats, addr, false), connect_time))
}

/// Starts an HTTP/1.1 client connection over a connected stream (TCP, or TLS over TCP) with
/// byte counters and the write-stall timeout, and spawns its connection task.
pub async fn handshake<S>(
    stream: S,
    send_timeout: Duration,
    max_response_header_size: usize,
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
    tokio::spawn(async move {
        // Errors surface to the request through its response or body; the log line is written there.
        let _ = connection.await;
    });
    Ok((sender, stats))
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
    let (io, stats) = UpstreamIo::new(stream, send_timeout);
    let mut builder = http1::Builder::new();
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
    tokio::spawn(async move {
        let _ = connection.with_upgrades().await;
    });
    Ok((sender, stats))
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
    Failure::new(kind, Phase::Connecting, format!("connect to {addr}: {err}")).with_os_error(err)
}
