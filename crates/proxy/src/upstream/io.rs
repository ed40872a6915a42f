//! The upstream socket wrapper: counts bytes each way and turns a stalled write into an error.
//!
//! Byte counts are what tell `connection_terminated` (no response byte arrived) from
//! `http_response_incomplete` (part of the head arrived) and what record whether any byte of the
//! request went out (replay safety). hyper has no write timeout, so a write that stays pending
//! longer than `send_timeout` (the upstream stopped reading the request) fails here with
//! [`WriteStalled`], which the classifier finds in hyper's error chain.
//!
//! [`Transport`] is the stream under it: plain TCP, or TLS over TCP.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;
use tokio_rustls::client::TlsStream;

use crate::failure::marker::WriteStalled;

/// Byte counters of one upstream connection, shared with the requests that use it.
#[derive(Debug, Default)]
pub struct ConnStats {
    read: AtomicU64,
    written: AtomicU64,
}

impl ConnStats {
    pub fn read(&self) -> u64 {
        self.read.load(Ordering::Relaxed)
    }
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// Counts bytes handed over outside the socket wrapper: an HTTP/2 stream's own counters,
    /// where the connection's are shared with every other stream (see `h2::Stream`).
    pub(crate) fn add_written(&self, n: u64) {
        self.written.fetch_add(n, Ordering::Relaxed);
    }

    /// Takes back what [`ConnStats::add_written`] counted, once it is known not to have reached
    /// the server.
    pub(crate) fn unwrite(&self, n: u64) {
        self.written.fetch_sub(n, Ordering::Relaxed);
    }
}

/// The byte stream of an upstream connection: plain TCP, or TLS over TCP.
#[derive(Debug)]
pub enum Transport {
    Tcp(TcpStream),
    /// Boxed: a TLS session is a few hundred bytes, a TCP stream a few words.
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(stream) => Pin::new(stream).poll_read(cx, buf),
            Self::Tls(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(stream) => Pin::new(stream).poll_write(cx, buf),
            Self::Tls(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
            Self::Tls(stream) => Pin::new(stream.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Tcp(stream) => stream.is_write_vectored(),
            Self::Tls(stream) => stream.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(stream) => Pin::new(stream).poll_flush(cx),
            Self::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(stream) => Pin::new(stream).poll_shutdown(cx),
            Self::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
        }
    }
}

/// An upstream stream (TCP, or TLS over TCP) with byte counters and a write-stall timeout.
#[derive(Debug)]
pub struct UpstreamIo<S = TcpStream> {
    inner: S,
    stats: Arc<ConnStats>,
    send_timeout: Duration,
    stall: Option<Pin<Box<Sleep>>>,
}

impl<S> UpstreamIo<S> {
    pub fn new(inner: S, send_timeout: Duration) -> (Self, Arc<ConnStats>) {
        let stats = Arc::new(ConnStats::default());
        let io = Self {
            inner,
            stats: Arc::clone(&stats),
            send_timeout,
            stall: None,
        };
        (io, stats)
    }

    /// Called when a write is pending: arms the stall timer, or fails once it fired.
    fn poll_stall(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let timeout = self.send_timeout;
        let stall = self
            .stall
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        ready!(stall.as_mut().poll(cx));
        self.stall = None;
        Poll::Ready(io::Error::new(
            io::ErrorKind::TimedOut,
            WriteStalled(timeout),
        ))
    }

    fn on_written(&mut self, n: usize) {
        self.stall = None;
        self.stats.written.fetch_add(n as u64, Ordering::Relaxed);
    }
}

use std::future::Future;

impl<S: AsyncRead + Unpin> AsyncRead for UpstreamIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        let n = buf.filled().len() - before;
        this.stats.read.fetch_add(n as u64, Ordering::Relaxed);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for UpstreamIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Ready(Ok(n)) => {
                this.on_written(n);
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => this.poll_stall(cx).map(Err),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write_vectored(cx, bufs) {
            Poll::Ready(Ok(n)) => {
                this.on_written(n);
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => this.poll_stall(cx).map(Err),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl UpstreamIo<Transport> {
    /// Whether the kernel holds nothing to read on the socket: no byte, no end of the stream,
    /// no error. Asked with a peek (a system call that consumes nothing), not of the event
    /// loop's readiness: a read that came up short cleared that, and the loop may not have
    /// polled for events since the server closed an idle connection.
    pub fn nothing_to_read(&self) -> bool {
        let stream = match &self.inner {
            Transport::Tcp(stream) => stream,
            Transport::Tls(tls) => tls.get_ref().0,
        };
        let mut byte = [std::mem::MaybeUninit::<u8>::uninit(); 1];
        matches!(
            socket2::SockRef::from(stream).peek(&mut byte),
            Err(err) if err.kind() == io::ErrorKind::WouldBlock
        )
    }

    /// Reads into `buf`'s spare capacity (reserve first), counting the bytes. `Ok(0)` is the
    /// end of the stream. TCP reads straight into the spare capacity; TLS (whose reader wants
    /// an initialised slice) into zeroed room, which costs little beside the decryption.
    pub fn poll_read_buf(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut bytes::BytesMut,
    ) -> Poll<io::Result<usize>> {
        let n = match &mut self.inner {
            Transport::Tcp(stream) => ready!(crate::tcp_read::poll_read_buf(stream, cx, buf))?,
            Transport::Tls(stream) => {
                let start = buf.len();
                let room = buf.capacity() - start;
                buf.resize(start + room.max(1), 0);
                let mut read = ReadBuf::new(&mut buf[start..]);
                let polled = Pin::new(stream.as_mut()).poll_read(cx, &mut read);
                let n = read.filled().len();
                buf.truncate(start + n);
                ready!(polled)?;
                n
            }
        };
        self.stats.read.fetch_add(n as u64, Ordering::Relaxed);
        Poll::Ready(Ok(n))
    }
}
