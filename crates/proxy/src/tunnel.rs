//! Upgraded connections (WebSocket and other HTTP/1.1 Upgrades): once the upstream answered
//! `101 Switching Protocols` and the 101 went to the client, bytes are copied both ways until
//! either side closes, or until nothing moved either way for `tunnel_idle_timeout`.
//!
//! A tunnel holds only what it needs: the two connections, its server's connection slot
//! ([`Lease`], so a WebSocket counts against `max_connections` and least-connections balancing
//! for as long as it is open) and names for its log line. It holds no config snapshot, so it
//! carries on unchanged across reloads, with the idle timeout in force when it opened.
//!
//! The request's access record was written when the 101 was sent (status 101); the tunnel's
//! end is logged here, at debug, with the bytes each way and how long it lasted.
//!
//! Shutdown: tunnels are not counted by the listener's graceful drain (hyper stops tracking a
//! connection once it hands it over after the 101). A stop waits for ordinary requests only;
//! when the process exits, open tunnels end with the runtime and both TCP connections close
//! without a WebSocket close frame, which clients see as an abnormal closure (1006) and handle
//! like any lost connection (reconnect).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

use crate::client_body::{ClientStream, ClientUpgrade};
use crate::observe::Observer;
use crate::upstream::server::Lease;

/// One upgraded exchange, ready to be tunnelled.
#[derive(Debug)]
pub struct Tunnel {
    /// The client's side: resolves once hyper has written the 101 and handed the connection over.
    pub client: ClientUpgrade,
    /// The upstream's side, already taken over after its 101.
    pub upstream: Upgraded,
    /// No byte either way for this long closes the tunnel (validated to be more than zero).
    pub idle_timeout: Duration,
    pub request_id: Arc<str>,
    /// The server's slot, freed when the tunnel ends.
    pub lease: Lease,
    /// The pool's name, for the tunnel metrics.
    pub pool: Arc<str>,
    /// Where the tunnel is counted (`gatehouse_tunnels_open`, `gatehouse_tunnels_closed_total`):
    /// the process-wide observer, not a config snapshot.
    pub observer: Arc<Observer>,
}

/// How a tunnel ended.
#[derive(Debug)]
enum End {
    /// Both directions finished (each side closed its sending half).
    Closed,
    /// Nothing moved for the idle timeout.
    Idle,
    /// A read or write failed (a reset, a stalled upstream write).
    Failed(io::Error),
    /// The client's connection could not be taken over (it went away before the 101 was
    /// written, or the listener does not serve upgrades).
    ClientNotUpgraded(String),
}

impl End {
    fn token(&self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Idle => "idle_timeout",
            Self::Failed(_) => "error",
            Self::ClientNotUpgraded(_) => "client_not_upgraded",
        }
    }
}

/// Runs the tunnel on its own task; the request's task returns the 101 meanwhile.
pub fn spawn(tunnel: Tunnel) {
    tokio::spawn(tunnel.run());
}

impl Tunnel {
    async fn run(self) {
        let Self {
            client,
            upstream,
            idle_timeout,
            request_id,
            lease,
            pool,
            observer,
        } = self;
        observer.metrics.tunnel_opened(&pool);
        let activity = Activity::new();
        let (end, up, down) = match with_idle_limit(client, idle_timeout).await {
            Err(end) => (end, 0, 0),
            Ok(client) => {
                let up = AtomicU64::new(0);
                let down = AtomicU64::new(0);
                let mut client = CountedSide {
                    inner: client,
                    bytes: &up,
                    activity: &activity,
                };
                let mut upstream = CountedSide {
                    inner: TokioIo::new(upstream),
                    bytes: &down,
                    activity: &activity,
                };
                // Dropping the copy (on idle) drops both connections, which closes them.
                let end = tokio::select! {
                    copied = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {
                        match copied {
                            Ok(_) => End::Closed,
                            Err(err) => End::Failed(err),
                        }
                    }
                    () = activity.idle_for(idle_timeout) => End::Idle,
                };
                (end, up.into_inner(), down.into_inner())
            }
        };
        let error = match &end {
            End::Failed(err) => Some(err.to_string()),
            End::ClientNotUpgraded(why) => Some(why.clone()),
            End::Closed | End::Idle => None,
        };
        tracing::debug!(
            target: "gatehouse::tunnel",
            request_id = %request_id,
            upstream = %lease.server.label,
            end = end.token(),
            error,
            client_to_upstream_bytes = up,
            upstream_to_client_bytes = down,
            duration_ms = activity.opened.elapsed().as_secs_f64() * 1000.0,
            "tunnel closed"
        );
        observer.metrics.tunnel_closed(&pool, end.token());
        drop(lease);
    }
}

/// Waits for the client's side of the upgrade. Bounded by the idle timeout too: a client that
/// never completes the switch must not hold the upstream connection and its slot.
async fn with_idle_limit(
    client: ClientUpgrade,
    idle_timeout: Duration,
) -> Result<ClientStream, End> {
    let Ok(upgraded) = tokio::time::timeout(idle_timeout, client.wait()).await else {
        return Err(End::Idle);
    };
    upgraded.map_err(End::ClientNotUpgraded)
}

/// When a byte last moved, either way, shared by both directions and the idle watch of one
/// tunnel (atomics because the tunnel's future must be `Send`; there is no contention).
#[derive(Debug)]
struct Activity {
    opened: Instant,
    /// Milliseconds after `opened` when a byte last arrived from either side.
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            opened: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.opened + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }

    /// Resolves once nothing moved for `timeout`. Sleeps until the deadline the last activity
    /// sets, then looks again, so traffic costs no timer resets.
    async fn idle_for(&self, timeout: Duration) {
        loop {
            let deadline = self.last() + timeout;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// One side of a tunnel: counts the bytes read from it (what it sent into the tunnel) and
/// notes the activity; writes pass through.
#[derive(Debug)]
struct CountedSide<'a, T> {
    inner: T,
    bytes: &'a AtomicU64,
    activity: &'a Activity,
}

impl<T: AsyncRead + Unpin> AsyncRead for CountedSide<'_, T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        let n = buf.filled().len().saturating_sub(before);
        if n > 0 {
            this.bytes.fetch_add(n as u64, Ordering::Relaxed);
            this.activity.touch();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for CountedSide<'_, T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt as _;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn idle_watch_waits_for_the_last_activity() {
        let activity = Activity::new();
        let timeout = Duration::from_secs(10);
        let watch = activity.idle_for(timeout);
        tokio::pin!(watch);
        tokio::time::advance(Duration::from_secs(6)).await;
        activity.touch();
        // 12 s after opening, but only 6 s after the last byte: still open.
        tokio::time::advance(Duration::from_secs(6)).await;
        assert!(watch.as_mut().now_or_never().is_none());
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(watch.as_mut().now_or_never().is_some());
    }

    #[tokio::test]
    async fn counted_side_counts_what_it_reads() {
        let (mut near, far) = tokio::io::duplex(64);
        let activity = Activity::new();
        let bytes = AtomicU64::new(0);
        let mut counted = CountedSide {
            inner: far,
            bytes: &bytes,
            activity: &activity,
        };
        near.write_all(b"hello").await.unwrap();
        let mut buf = [0u8; 16];
        let n = counted.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"hello");
        counted.write_all(b"hi").await.unwrap();
        assert_eq!(
            bytes.load(Ordering::Relaxed),
            5,
            "writes are not counted here"
        );
    }
}
