//! The transport under the HTTP/1.1 engine: a plain TCP socket, or a TLS session over one.
//!
//! Both are used through `&self`, from the connection's loop and from the task its request
//! body streams upstream on. A plain socket needs no lock (tokio's `&TcpStream` readiness
//! calls); a TLS session keeps state for both directions and sits behind a mutex held only for
//! the length of one non-blocking call.

use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::{Pin, pin};
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

/// How long a closing TLS session may take to send its `close_notify`.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// A client connection's transport.
#[derive(Debug)]
pub enum Socket {
    Plain(TcpStream),
    Tls(TlsSocket),
}

/// A TLS session: boxed (a plain connection does not carry room for one), and `None` only
/// once dropped (its close is then sent on a task of its own).
#[derive(Debug)]
pub struct TlsSocket(Option<Box<Mutex<TlsStream<TcpStream>>>>);

impl Drop for TlsSocket {
    /// A TLS session ends with `close_notify` (RFC 8446 §6.1), so that the client can tell the
    /// end from a truncation (a response framed by the close, say). Sending it may have to wait
    /// for the client to read: a task of its own does that, for [`CLOSE_WAIT`] at most.
    fn drop(&mut self) {
        let Some(tls) = self.0.take() else {
            return;
        };
        let mut tls = tls.into_inner().unwrap_or_else(|e| e.into_inner());
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    let _ = tokio::time::timeout(CLOSE_WAIT, tls.shutdown()).await;
                });
            }
            // No runtime (a test's teardown): the alert goes only if the socket takes it now.
            Err(_) => {
                tls.get_mut().1.send_close_notify();
                let mut cx = Context::from_waker(std::task::Waker::noop());
                let _ = Pin::new(&mut tls).poll_flush(&mut cx);
            }
        }
    }
}

impl TlsSocket {
    /// The session, locked; `None` once dropped.
    fn lock(&self) -> Option<MutexGuard<'_, TlsStream<TcpStream>>> {
        let tls = self.0.as_ref()?;
        Some(tls.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

fn closed() -> io::Error {
    io::ErrorKind::NotConnected.into()
}

impl From<TcpStream> for Socket {
    fn from(stream: TcpStream) -> Self {
        Self::Plain(stream)
    }
}

impl From<TlsStream<TcpStream>> for Socket {
    fn from(stream: TlsStream<TcpStream>) -> Self {
        Self::Tls(TlsSocket(Some(Box::new(Mutex::new(stream)))))
    }
}

impl Socket {
    /// For a plain TCP socket, waits until it has something to read (bytes, or its end)
    /// without reading, and so without a system call; `None` for a TLS session, whose
    /// socket's readiness says little of what the session will give (part of a record, a key
    /// update).
    pub fn poll_read_ready(&self, cx: &mut Context<'_>) -> Option<Poll<io::Result<()>>> {
        match self {
            Self::Plain(stream) => Some(stream.poll_read_ready(cx)),
            Self::Tls(_) => None,
        }
    }

    /// Reads into `buf`'s spare capacity (reserve first). `Ok(0)` is the end of the stream.
    pub fn poll_read_buf(
        &self,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
    ) -> Poll<io::Result<usize>> {
        match self {
            Self::Plain(stream) => crate::tcp_read::poll_read_buf(stream, cx, buf),
            // `read_buf` keeps no state between polls: dropping it after `Pending` loses
            // nothing, and it fills the buffer's uninitialised spare capacity safely.
            Self::Tls(tls) => match tls.lock() {
                Some(mut tls) => pin!(tls.read_buf(buf)).poll(cx),
                None => Poll::Ready(Ok(0)),
            },
        }
    }

    /// Reads into `dst`. `Ok(0)` is the end of the stream (or an empty `dst`).
    pub fn poll_read(&self, cx: &mut Context<'_>, dst: &mut [u8]) -> Poll<io::Result<usize>> {
        match self {
            Self::Plain(stream) => crate::tcp_read::poll_read(stream, cx, dst),
            Self::Tls(tls) => {
                let Some(mut tls) = tls.lock() else {
                    return Poll::Ready(Ok(0));
                };
                let mut read = ReadBuf::new(dst);
                ready!(Pin::new(&mut *tls).poll_read(cx, &mut read))?;
                Poll::Ready(Ok(read.filled().len()))
            }
        }
    }

    /// Writes some of `bufs`. Over TLS, what an earlier write left in the session goes out
    /// first, so that no more than one write's worth waits there; [`Socket::poll_flush`] sends
    /// the rest.
    pub fn poll_write_vectored(
        &self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self {
            Self::Plain(stream) => loop {
                ready!(stream.poll_write_ready(cx))?;
                match stream.try_write_vectored(bufs) {
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                    result => return Poll::Ready(result),
                }
            },
            Self::Tls(tls) => {
                let Some(mut tls) = tls.lock() else {
                    return Poll::Ready(Err(closed()));
                };
                ready!(Pin::new(&mut *tls).poll_flush(cx))?;
                Pin::new(&mut *tls).poll_write_vectored(cx, bufs)
            }
        }
    }

    /// Sends what a TLS session still holds (a plain socket holds nothing).
    pub fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Self::Plain(_) => Poll::Ready(Ok(())),
            Self::Tls(tls) => match tls.lock() {
                Some(mut tls) => Pin::new(&mut *tls).poll_flush(cx),
                None => Poll::Ready(Err(closed())),
            },
        }
    }

    /// Half-closes once everything written was sent: over TLS after a `close_notify`.
    pub fn poll_shutdown(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Self::Tls(tls) = self
            && let Some(mut tls) = tls.lock()
        {
            tls.get_mut().1.send_close_notify();
            ready!(Pin::new(&mut *tls).poll_flush(cx))?;
        }
        self.shutdown_write();
        Poll::Ready(Ok(()))
    }

    /// Half-closes now: the client gets its FIN (over TLS after a `close_notify`, sent if the
    /// socket takes it at once), and may go on sending until it closes too.
    pub fn shutdown_write(&self) {
        match self {
            Self::Plain(stream) => {
                let _ = socket2::SockRef::from(stream).shutdown(std::net::Shutdown::Write);
            }
            Self::Tls(tls) => {
                let Some(mut tls) = tls.lock() else {
                    return;
                };
                tls.get_mut().1.send_close_notify();
                let mut cx = Context::from_waker(std::task::Waker::noop());
                let _ = Pin::new(&mut *tls).poll_flush(&mut cx);
                let _ = socket2::SockRef::from(tls.get_ref().0).shutdown(std::net::Shutdown::Write);
            }
        }
    }
}
