//! The client's socket, shared by the connection loop and the request body it lends out.
//!
//! The body may stream upstream from another task (an upstream connection's), so both hold the
//! socket through an `Arc` and use it through `&self` ([`Socket`]). They never read at the
//! same time: the loop lends its buffer to the body and waits for it back
//! ([`Shared::give_back`] / [`Shared::taken_back`]) before it reads again. Only the loop writes
//! (`100 Continue` included: the body asks the loop for it).

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use bytes::{Buf, BytesMut};
use futures_util::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

use super::socket::Socket;

/// What a request body hands back when it ends.
#[derive(Debug)]
pub struct Returned {
    /// The loop's buffer: bytes after the body (a pipelined request) stay in it.
    pub buf: BytesMut,
    /// The body was read to its end, so the connection is still framed.
    pub complete: bool,
}

/// A wake-up for the connection's loop, the one task that waits for it: a flag and a waker.
/// Lighter than a `Notify`, whose waiter is queued and taken out again under a lock, for a
/// wait that is set up on every request.
#[derive(Debug, Default)]
pub struct Signal {
    raised: AtomicBool,
    waker: AtomicWaker,
}

impl Signal {
    /// Wakes the waiting loop; a raise with no one waiting is kept for the next wait.
    pub fn raise(&self) {
        self.raised.store(true, Ordering::Release);
        self.waker.wake();
    }

    /// Resolves once raised (since the last wait that resolved).
    pub async fn raised(&self) {
        std::future::poll_fn(|cx| {
            if self.raised.swap(false, Ordering::Acquire) {
                return Poll::Ready(());
            }
            self.waker.register(cx.waker());
            // A raise between the check and the registration woke no one: look again.
            if self.raised.swap(false, Ordering::Acquire) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
    }
}

/// One client connection's socket and the hand-over points between loop and body.
#[derive(Debug)]
pub struct Shared {
    pub socket: Socket,
    returned: Mutex<Option<Returned>>,
    body_done: Notify,
    /// The body was polled while `100 Continue` is owed: the loop writes it.
    pub continue_wanted: Signal,
    /// Interim responses queued for the client (see `interim.rs`), written by the loop.
    interim: Mutex<Vec<u8>>,
    pub(super) interim_ready: Signal,
    /// Bytes written to the client so far (the minimum response rate watches its progress).
    written: AtomicU64,
}

impl Shared {
    pub fn new(socket: Socket) -> Arc<Self> {
        Arc::new(Self {
            socket,
            returned: Mutex::new(None),
            body_done: Notify::new(),
            continue_wanted: Signal::default(),
            interim: Mutex::new(Vec::new()),
            interim_ready: Signal::default(),
            written: AtomicU64::new(0),
        })
    }

    /// Bytes written to the client so far.
    pub(super) fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    pub(super) fn lock_interim(&self) -> std::sync::MutexGuard<'_, Vec<u8>> {
        self.interim.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The interim responses queued so far, taken.
    pub(super) fn take_interim(&self) -> Vec<u8> {
        std::mem::take(&mut *self.lock_interim())
    }

    /// Called once by a body when it ends or is dropped.
    pub fn give_back(&self, returned: Returned) {
        *self.returned.lock().unwrap_or_else(|e| e.into_inner()) = Some(returned);
        self.body_done.notify_one();
    }

    /// Whether the lent body has ended (read to its end or not).
    pub fn is_given_back(&self) -> bool {
        self.given_back_complete().is_some()
    }

    /// `Some(complete)` once the lent body has ended, `None` while it is still out.
    pub fn given_back_complete(&self) -> Option<bool> {
        self.returned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|returned| returned.complete)
    }

    /// Waits for the lent body to end.
    pub async fn taken_back(&self) -> Returned {
        loop {
            if let Some(returned) = self
                .returned
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take()
            {
                return returned;
            }
            self.body_done.notified().await;
        }
    }

    /// Reads into `buf`'s spare capacity (reserve first). `Ok(0)` is the end of the stream.
    pub fn poll_read_buf(
        &self,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
    ) -> Poll<io::Result<usize>> {
        self.socket.poll_read_buf(cx, buf)
    }

    pub fn poll_write_vectored(
        &self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let n = ready!(self.socket.poll_write_vectored(cx, bufs))?;
        self.written.fetch_add(n as u64, Ordering::Relaxed);
        Poll::Ready(Ok(n))
    }

    /// Writes all of `parts` (in as few system calls as the socket allows), and sends them:
    /// over TLS nothing is left in the session.
    pub async fn write_all(&self, parts: &mut [&[u8]]) -> io::Result<()> {
        let mut first = 0;
        while first < parts.len() {
            if parts[first].is_empty() {
                first += 1;
                continue;
            }
            let slices: Vec<IoSlice<'_>>;
            let mut stack = [IoSlice::new(&[]); 4];
            let bufs: &[IoSlice<'_>] = if parts.len() - first <= stack.len() {
                for (slot, part) in stack.iter_mut().zip(&parts[first..]) {
                    *slot = IoSlice::new(part);
                }
                &stack[..parts.len() - first]
            } else {
                slices = parts[first..].iter().map(|p| IoSlice::new(p)).collect();
                &slices
            };
            let mut written = std::future::poll_fn(|cx| self.poll_write_vectored(cx, bufs)).await?;
            if written == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            while written > 0 && first < parts.len() {
                let part = parts[first];
                if written >= part.len() {
                    written -= part.len();
                    first += 1;
                } else {
                    parts[first] = &part[written..];
                    written = 0;
                }
            }
        }
        std::future::poll_fn(|cx| self.socket.poll_flush(cx)).await
    }
}

// === after a 101 ===

/// The client's connection after `101 Switching Protocols`, as a byte stream: what the client
/// sent after its request head first, then the socket.
#[derive(Debug)]
pub struct Upgraded {
    shared: Arc<Shared>,
    pending: BytesMut,
}

impl Upgraded {
    pub fn new(shared: Arc<Shared>, pending: BytesMut) -> Self {
        Self { shared, pending }
    }
}

impl AsyncRead for Upgraded {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.pending.is_empty() {
            let n = this.pending.len().min(buf.remaining());
            buf.put_slice(&this.pending[..n]);
            this.pending.advance(n);
            return Poll::Ready(Ok(()));
        }
        let n = ready!(this.shared.socket.poll_read(cx, buf.initialize_unfilled()))?;
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Upgraded {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.shared.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.shared.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.shared.socket.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // A half-close (FIN): the other direction keeps flowing until the peer closes too.
        self.shared.socket.poll_shutdown(cx)
    }
}
