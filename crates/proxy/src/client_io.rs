//! The client socket wrapper for connections hyper serves (TLS listeners, HTTP/2): what hyper
//! does not tell about a downstream connection. It wraps whatever carries the HTTP bytes (a TCP
//! socket, or a TLS stream, where it sees plaintext). Plain HTTP/1.1 connections are served by
//! gatehouse's own engine ([`crate::http1`]), which sees all of this itself.
//!
//! - Whether bytes of a new request arrived since the last response was written, which tells
//!   a client that stalled part-way through a request head (answered 408) from an idle
//!   keep-alive connection timing out (closed silently).
//! - The raw bytes of the current request head. hyper resolves a request carrying both
//!   `Transfer-Encoding` and `Content-Length` by dropping `Content-Length` (RFC 9112 §6.1 allows
//!   that), so the service cannot see the conflict; gatehouse refuses such requests with 400
//!   instead (a request-smuggling vector), and checks the raw head for it when a request
//!   arrives with `Transfer-Encoding`.
//! - How fast the client takes what is written: one slower than `min_response_rate` is cut off
//!   (the same measure the own engine applies, `http1::pace`).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use http::HeaderValue;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::http1::pace::{WriteLimit, WriteWait};

/// Bytes kept of what arrived since the last write: enough for any request head gatehouse
/// accepts in full (hyper's buffer limit is twice `max_request_header_size`, at most 2 MiB).
const HEAD_KEEP: usize = 2 * 1024 * 1024 + 1024;

/// Shared between the socket wrapper and the request handlers of one connection.
#[derive(Debug)]
pub struct ClientActivity {
    /// The client's IP formatted as a header value once per connection (X-Forwarded-For,
    /// X-Real-IP).
    pub client_ip: HeaderValue,
    /// The connection came in over TLS (`X-Forwarded-Proto: https`).
    pub https: bool,
    /// The address the client reached gatehouse on (for a PROXY header sent upstream).
    pub local: SocketAddr,
    /// What was read since the last write, on connections hyper serves; `None` on gatehouse's
    /// own engine, which sees its heads itself (and whose idle connections should not carry
    /// this).
    reads: Option<Box<Reads>>,
}

/// The bytes read since the last write, kept for what hyper does not tell.
#[derive(Debug)]
struct Reads {
    read: AtomicU64,
    read_at_last_write: AtomicU64,
    /// Bytes read since the last write, up to `head_limit`.
    since_write: Mutex<Vec<u8>>,
    head_limit: usize,
}

impl ClientActivity {
    pub fn new(client: SocketAddr, local: SocketAddr, https: bool) -> Self {
        Self {
            https,
            local,
            client_ip: HeaderValue::from_str(&client.ip().to_string())
                .unwrap_or_else(|_| HeaderValue::from_static("unknown")),
            reads: None,
        }
    }

    /// Also keeps what is read between writes (for a connection hyper serves): up to
    /// `head_limit` bytes of it (0: only counts).
    #[must_use]
    pub fn watching_reads(mut self, head_limit: usize) -> Self {
        self.reads = Some(Box::new(Reads {
            read: AtomicU64::new(0),
            read_at_last_write: AtomicU64::new(0),
            since_write: Mutex::new(Vec::new()),
            head_limit: head_limit.min(HEAD_KEEP),
        }));
        self
    }

    /// Bytes of a request arrived after the last response bytes went out.
    pub fn request_in_progress(&self) -> bool {
        self.reads.as_ref().is_some_and(|reads| {
            reads.read.load(Ordering::Relaxed) > reads.read_at_last_write.load(Ordering::Relaxed)
        })
    }

    /// Whether the request head received since the last response carries both
    /// `Transfer-Encoding` and `Content-Length`. Only the first head is examined; a pipelined
    /// request behind it is not (hyper still frames it by Transfer-Encoding alone).
    pub fn head_has_te_and_cl(&self) -> bool {
        let Some(reads) = &self.reads else {
            return false;
        };
        let bytes = reads.since_write.lock().unwrap_or_else(|e| e.into_inner());
        let mut headers = [httparse::EMPTY_HEADER; 256];
        let mut request = httparse::Request::new(&mut headers);
        if request.parse(&bytes).is_err() {
            return false;
        }
        let has = |name: &str| {
            request
                .headers
                .iter()
                .any(|h| h.name.eq_ignore_ascii_case(name))
        };
        has("transfer-encoding") && has("content-length")
    }
}

/// The client's connection with [`ClientActivity`] bookkeeping.
#[derive(Debug)]
pub struct ClientIo<S = TcpStream> {
    inner: S,
    activity: Arc<ClientActivity>,
    /// `min_response_rate` and `client_write_timeout`: a client taking what is written
    /// slower than the rate, or not at all for the timeout, is cut off.
    limit: WriteLimit,
    wait: WriteWait,
}

impl<S> ClientIo<S> {
    pub fn new(inner: S, activity: Arc<ClientActivity>, limit: WriteLimit) -> Self {
        Self {
            inner,
            activity,
            limit,
            wait: WriteWait::default(),
        }
    }

    /// A write under the minimum rate: bytes written after a wait count as taken by the client;
    /// a client too slow for the rate ends the connection (hyper closes it on the error).
    fn paced<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
        written: impl Fn(&T) -> usize,
    ) -> Poll<io::Result<T>> {
        match &polled {
            Poll::Ready(Ok(done)) => {
                self.wait.progress(written(done));
                return polled;
            }
            Poll::Ready(Err(_)) => return polled,
            Poll::Pending => {}
        }
        let error = ready!(self.wait.poll_waiting(cx, &self.limit));
        tracing::info!(client = ?self.activity.client_ip, reason = error.reason(), error = %error, "client disconnected: reading the response too slowly");
        Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, error)))
    }

    fn on_read(&self, bytes: &[u8]) {
        let Some(reads) = &self.activity.reads else {
            return;
        };
        reads.read.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        let mut kept = reads.since_write.lock().unwrap_or_else(|e| e.into_inner());
        let room = reads.head_limit.saturating_sub(kept.len());
        kept.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    fn on_write(&self) {
        let Some(reads) = &self.activity.reads else {
            return;
        };
        let read = reads.read.load(Ordering::Relaxed);
        if reads.read_at_last_write.swap(read, Ordering::Relaxed) != read {
            reads
                .since_write
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clear();
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ClientIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.on_read(&buf.filled()[before..]);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ClientIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.on_write();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.paced(cx, polled, |n| *n)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.on_write();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.paced(cx, polled, |n| *n)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_flush(cx);
        this.paced(cx, polled, |()| 0)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
