//! gatehouse's own HTTP/1.1 client for pooled upstream connections: the request task writes
//! the request and reads the response itself, with no connection task, channel or oneshot in
//! between (hyper's client spawns a task per connection and hands every request and response
//! across to it).
//!
//! - [`H1Conn`]: one connection: its socket with byte counters and the write-stall timeout, the
//!   bytes read ahead, and the request still being written;
//! - [`head`]: request heads written, response heads parsed, how a response body is framed;
//! - [`exchange`]: one request sent and its response head read (1xx relayed on the way);
//! - [`body`]: the response body, read from the socket by whoever forwards it; once it ended
//!   well the connection goes back to the pool.
//!
//! Failures are classified where they happen, in the same kinds and words as
//! [`classify::response_head_error`](crate::failure::classify::response_head_error) gives
//! hyper's errors (health checks, upgrades and `gatehouse doctor` still use hyper).

pub mod body;
pub mod exchange;
pub mod head;
#[cfg(test)]
mod tests;

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http_body::Body as _;
use tokio::io::AsyncWrite;

use super::io::{ConnStats, Transport, UpstreamIo};
use crate::client_body::RequestBody;
use crate::failure::Failure;
use crate::failure::marker::DownstreamBodyError;

pub use body::ResponseBody;
pub use exchange::{SendFailed, send};

/// The read buffer's first size, and how far it grows while reads keep filling it (long
/// bodies then take fewer reads).
const READ_START: usize = 8 * 1024;
const READ_MAX: usize = 256 * 1024;

/// One upstream HTTP/1.1 connection.
#[derive(Debug)]
pub struct H1Conn {
    io: UpstreamIo<Transport>,
    stats: Arc<ConnStats>,
    /// Bytes read and not yet consumed.
    buf: BytesMut,
    /// How much the next read asks room for.
    read_size: usize,
    /// The largest response head accepted.
    max_head: usize,
    /// The request's bytes on their way out.
    out: Outbox,
    sending: Sending,
    /// Bytes were written since the last flush.
    unflushed: bool,
    /// Exchanges completed on this connection.
    served: u32,
}

/// What of the request is still to be written.
// The connection is boxed already; boxing the body as well would cost an allocation per
// request with a body.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Sending {
    /// Everything was handed to the socket (or there is no request).
    Done,
    /// The body streams on: its frames go out as they come.
    Body { body: RequestBody, chunked: bool },
    /// Writing failed or the body broke off: the connection cannot carry another request.
    Broken,
}

/// Why writing the request stopped.
#[derive(Debug)]
pub(crate) enum SendError {
    /// The client's body failed (it is the client's failure, already classified).
    Body(Failure),
    /// The socket failed (a stall, a reset).
    Io(io::Error),
}

/// Bytes queued for the socket: a head or chunk line, a body frame, a fixed tail.
#[derive(Debug, Default)]
struct Outbox {
    head: Vec<u8>,
    head_at: usize,
    data: Bytes,
    tail: &'static [u8],
}

impl Outbox {
    fn is_empty(&self) -> bool {
        self.head_at == self.head.len() && self.data.is_empty() && self.tail.is_empty()
    }

    /// Takes `n` written bytes off the front.
    fn advance(&mut self, mut n: usize) {
        let head = (self.head.len() - self.head_at).min(n);
        self.head_at += head;
        n -= head;
        let data = self.data.len().min(n);
        self.data.advance(data);
        n -= data;
        self.tail = &self.tail[n.min(self.tail.len())..];
    }

    fn clear(&mut self) {
        self.head.clear();
        self.head_at = 0;
        self.data = Bytes::new();
        self.tail = &[];
    }
}

impl H1Conn {
    /// A connection over a connected stream, with byte counters and the write-stall timeout.
    pub fn new(
        transport: Transport,
        send_timeout: Duration,
        max_response_header_size: usize,
    ) -> (Box<Self>, Arc<ConnStats>) {
        let (io, stats) = UpstreamIo::new(transport, send_timeout);
        let conn = Box::new(Self {
            io,
            stats: Arc::clone(&stats),
            buf: BytesMut::new(),
            read_size: READ_START,
            // As hyper was configured: never below 8 KiB, whatever the setting.
            max_head: max_response_header_size.max(8192),
            out: Outbox::default(),
            sending: Sending::Done,
            unflushed: false,
            served: 0,
        });
        (conn, stats)
    }

    /// Whether the connection served an earlier request.
    pub fn reused(&self) -> bool {
        self.served > 0
    }

    /// Whether an idle connection can take a request: the server neither closed it nor sent
    /// anything unasked. Looks once, without waiting (what the socket told the runtime so far).
    pub fn is_idle_usable(&mut self) -> bool {
        if !self.buf.is_empty() || !matches!(self.sending, Sending::Done) {
            return false;
        }
        // A close, an error or stray bytes: the connection is done.
        if !self.io.nothing_to_read() {
            return false;
        }
        // Over TLS the session may hold what the socket no longer does (a close_notify read
        // with the last record).
        let mut cx = Context::from_waker(std::task::Waker::noop());
        self.buf.reserve(64);
        self.io.poll_read_buf(&mut cx, &mut self.buf).is_pending()
    }

    /// Reads more into the buffer. `Ok(0)` is the end of the stream.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.buf.capacity() - self.buf.len() < self.read_size / 4 {
            self.buf.reserve(self.read_size);
        }
        let room = self.buf.capacity() - self.buf.len();
        let polled = self.io.poll_read_buf(cx, &mut self.buf);
        if let Poll::Ready(Ok(n)) = polled
            && n == room
        {
            // The read filled all the room there was: the next may ask for more.
            self.read_size = (self.read_size * 2).min(READ_MAX);
        }
        polled
    }

    /// Writes what is queued, then the body's frames as they come. Ready once the whole
    /// request was handed to the socket; an error leaves the connection broken.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), SendError>> {
        loop {
            while !self.out.is_empty() {
                let out = &self.out;
                let slices = [
                    IoSlice::new(&out.head[out.head_at..]),
                    IoSlice::new(&out.data),
                    IoSlice::new(out.tail),
                ];
                match Pin::new(&mut self.io).poll_write_vectored(cx, &slices) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(0)) => {
                        return self.broken(SendError::Io(io::ErrorKind::WriteZero.into()));
                    }
                    Poll::Ready(Ok(n)) => {
                        self.out.advance(n);
                        self.unflushed = true;
                    }
                    Poll::Ready(Err(err)) => return self.broken(SendError::Io(err)),
                }
            }
            // TLS keeps records it could not write yet; TCP has nothing to flush.
            if self.unflushed {
                match Pin::new(&mut self.io).poll_flush(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(())) => self.unflushed = false,
                    Poll::Ready(Err(err)) => return self.broken(SendError::Io(err)),
                }
            }
            let Sending::Body { body, chunked } = &mut self.sending else {
                return Poll::Ready(match self.sending {
                    Sending::Broken => Err(SendError::Io(io::ErrorKind::BrokenPipe.into())),
                    _ => Ok(()),
                });
            };
            let chunked = *chunked;
            match Pin::new(body).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => {
                    self.out.clear();
                    if chunked {
                        self.out.tail = b"0\r\n\r\n";
                    }
                    self.sending = Sending::Done;
                }
                Poll::Ready(Some(Ok(frame))) => {
                    // Trailers are dropped, as the request path drops the client's.
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    if data.is_empty() {
                        continue;
                    }
                    self.out.clear();
                    if chunked {
                        let (line, len) = crate::http1::write::chunk_line(data.len());
                        self.out.head.extend_from_slice(&line[..len]);
                        self.out.tail = b"\r\n";
                    }
                    self.out.data = data;
                }
                Poll::Ready(Some(Err(err))) => {
                    let failure = match err.downcast::<DownstreamBodyError>() {
                        Ok(failed) => failed.0,
                        Err(other) => Failure::client(
                            http::StatusCode::BAD_REQUEST,
                            format!("could not read the request body: {other}"),
                        ),
                    };
                    return self.broken(SendError::Body(failure));
                }
            }
        }
    }

    fn broken(&mut self, err: SendError) -> Poll<Result<(), SendError>> {
        self.sending = Sending::Broken;
        self.out.clear();
        Poll::Ready(Err(err))
    }

    /// Whether the request is still being written.
    fn is_sending(&self) -> bool {
        matches!(self.sending, Sending::Body { .. }) || !self.out.is_empty()
    }

    /// After a response that ended well: ready for the next request, its read buffer
    /// shrunk back if a long body grew it.
    fn finished_exchange(&mut self) {
        self.served += 1;
        if self.buf.is_empty() && self.buf.capacity() > 2 * READ_START {
            self.buf = BytesMut::new();
            self.read_size = READ_START;
        }
    }
}

/// Whether this connection may carry another request after its response: the request was
/// written whole and nothing came after the response.
fn reusable(conn: &H1Conn) -> bool {
    matches!(conn.sending, Sending::Done) && conn.out.is_empty() && conn.buf.is_empty()
}
