//! Reading a request head: the wait for its bytes (bounded by the header timeout, cut short by
//! a drain while the connection idles), the reads into the connection's buffer, the parse.

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::pin::{Pin, pin};
use std::task::Poll;

use bytes::BytesMut;
use http::StatusCode;
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};

use super::head::{self, Head, HeadError};
use super::io::Shared;
use super::server::Settings;
use super::socket::Socket;

/// Read-buffer size for a new request head; it grows (doubling) up to the head limit.
pub(super) const HEAD_BUFFER: usize = 4096;

/// Why no head came.
pub(super) enum HeadEnd {
    /// Closed, idle, or stopping: close without a response.
    Quiet,
    Refused(HeadError),
}

/// What ended a wait for the next bytes of a head.
enum HeadWait {
    /// Bytes were read.
    Read,
    Closed,
    Deadline,
    Stopping,
}

/// Reads until a whole head is buffered and parses it.
///
/// The wait is polled by hand rather than with `select!`: an idle connection waits here, and
/// the socket's readiness needs no future of its own this way.
#[allow(
    clippy::manual_async_fn,
    reason = "an async fn would keep its arguments twice in the state an idle connection holds"
)]
pub(super) fn read_head<'a>(
    shared: &'a Shared,
    buf: &'a mut BytesMut,
    settings: Settings,
    mut deadline: Pin<&'a mut Sleep>,
    shutdown: &'a mut watch::Receiver<bool>,
) -> impl Future<Output = Result<Head, HeadEnd>> + 'a {
    async move {
        // The connection's timer, moved on rather than made anew: a later deadline for a
        // registered timer is only recorded (tokio's `reset` moves it in the timer wheel only
        // when it fires at the old one), where a new timer is inserted into the wheel and
        // removed again for every request.
        deadline
            .as_mut()
            .reset(Instant::now() + settings.header_timeout);
        let mut stopping = pin!(stopping(shutdown));
        loop {
            if !buf.is_empty() {
                match head::parse(buf, settings.max_head) {
                    Ok(Some(head)) => return Ok(head),
                    Ok(None) => {}
                    Err(error) => return Err(HeadEnd::Refused(error)),
                }
            }
            let idle = buf.is_empty();
            let woke = std::future::poll_fn(|cx| {
                match read_more(&shared.socket, cx, buf, settings.max_head) {
                    Poll::Ready(Ok(0) | Err(_)) => return Poll::Ready(HeadWait::Closed),
                    Poll::Ready(Ok(_)) => return Poll::Ready(HeadWait::Read),
                    Poll::Pending => {}
                }
                if deadline.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(HeadWait::Deadline);
                }
                // Draining closes only connections with no request under way.
                if idle && stopping.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(HeadWait::Stopping);
                }
                Poll::Pending
            })
            .await;
            match woke {
                HeadWait::Read => {}
                HeadWait::Closed | HeadWait::Stopping => return Err(HeadEnd::Quiet),
                // An idle keep-alive connection: closed.
                HeadWait::Deadline if idle => return Err(HeadEnd::Quiet),
                HeadWait::Deadline => {
                    return Err(HeadEnd::Refused(HeadError::with_status(
                        StatusCode::REQUEST_TIMEOUT,
                        format!(
                            "client did not send a complete request header section within client_header_timeout ({:?})",
                            settings.header_timeout
                        ),
                    )));
                }
            }
        }
    }
}

/// Size of the scratch space the first read of a head lands in.
const FIRST_READ: usize = 2048;

thread_local! {
    /// Where the first read of every head on this thread lands: zeroed once for the thread
    /// rather than for every read (a poll is synchronous, so one per thread is never shared).
    static FIRST_READ_SPACE: RefCell<[u8; FIRST_READ]> = const { RefCell::new([0; FIRST_READ]) };
}

/// Reads more of a head. The first read goes into scratch space: a wake-up with nothing to
/// read (readiness left over from the last request) allocates nothing, so an idle connection
/// holds no buffer, and a small head takes only its own size.
fn read_more(
    socket: &Socket,
    cx: &mut std::task::Context<'_>,
    buf: &mut BytesMut,
    max_head: usize,
) -> Poll<io::Result<usize>> {
    if buf.is_empty() {
        return FIRST_READ_SPACE.with_borrow_mut(|first| {
            let n = std::task::ready!(socket.poll_read(cx, first))?;
            buf.extend_from_slice(&first[..n]);
            Poll::Ready(Ok(n))
        });
    }
    if buf.capacity() - buf.len() < HEAD_BUFFER / 4 {
        let grow = HEAD_BUFFER.max(buf.len()).min(max_head + 1);
        buf.reserve(grow);
    }
    socket.poll_read_buf(cx, buf)
}

/// Resolves once gatehouse drains (or its shutdown signal is gone). Written with `changed`
/// rather than `wait_for`, whose future is twice the size: every idle connection holds one.
async fn stopping(shutdown: &mut watch::Receiver<bool>) {
    while !*shutdown.borrow_and_update() {
        if shutdown.changed().await.is_err() {
            return;
        }
    }
}
