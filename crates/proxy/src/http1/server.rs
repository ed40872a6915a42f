//! One client connection served as HTTP/1.1 by gatehouse's own engine: read a head, hand the
//! request to the handler, write the response, and again, on the same task (no channel, no
//! second task), until the client leaves, idles out, or gatehouse drains.
//!
//! Memory per idle connection is the task and the socket: the read buffer is allocated when
//! bytes arrive and released whenever the connection waits for its next request with nothing
//! buffered, and the handler's future is boxed per request rather than held in the task.
//! A client that stalls part-way through a head gets its 408 on the same socket.

use std::future::Future;
use std::io;
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{Method, Request, Response, StatusCode, Version};
use http_body::Body;
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

use super::body::RequestBody;
use super::head::{self, Framing, Head, HeadError};
use super::io::{Shared, Upgraded};
use super::pace::{self, WriteLimit, WritePace};
use super::socket::Socket;
use super::write::{self, BodyFraming, RequestFacts};

/// Read-buffer size for a new request head; it grows (doubling) up to the head limit.
const HEAD_BUFFER: usize = 4096;
/// How long unread request bytes are drained after a refusal, so that closing with them
/// unread does not reset the connection before the client has read the answer.
const LINGER: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 1024 * 1024;
/// How long a request must be in progress before the socket is watched for the client going
/// away (nginx notices at once; a second is soon enough to let go of an upstream request).
const WATCH_AFTER: Duration = Duration::from_secs(1);

/// Connection limits, from the server config.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// How long a request head may take to arrive; also the idle keep-alive limit.
    pub header_timeout: Duration,
    /// Largest request head read.
    pub max_head: usize,
    /// A client taking a response slower than this, or not at all for too long, is
    /// disconnected.
    pub response_write: WriteLimit,
}

/// Answers the requests of one connection.
pub trait Handler: Send + Sync + 'static {
    type Body: Body<Data = Bytes> + Send + Unpin + 'static;

    /// The future lives inside the exchange's own allocation (one per request).
    fn call(
        &self,
        request: Request<RequestBody>,
    ) -> impl Future<Output = Response<Self::Body>> + Send;

    /// The answer to a head that cannot be served (400, 408, 414, 431), which also logs it.
    fn reject(&self, error: HeadError) -> Response<Self::Body>;
}

/// The client's side of a connection that may switch protocols: resolves once the `101` was
/// written, with the connection.
/// (Request extensions must be `Clone`; the first to wait takes the connection.)
#[derive(Debug, Clone)]
pub struct OnUpgrade(Arc<Mutex<Option<oneshot::Receiver<Upgraded>>>>);

impl OnUpgrade {
    pub async fn wait(self) -> Result<Upgraded, &'static str> {
        let receiver = self.0.lock().unwrap_or_else(|e| e.into_inner()).take();
        match receiver {
            Some(receiver) => receiver
                .await
                .map_err(|_| "the client connection ended before the 101 was written"),
            None => Err("the client connection was already taken over"),
        }
    }
}

enum HeadEnd {
    /// Closed, idle, or stopping: close without a response.
    Quiet,
    Refused(HeadError),
}

/// Serves `stream` until the connection ends.
///
/// Not an `async fn`: an async fn keeps its arguments twice in its state (as received, and
/// moved into its body), and this state is what every idle connection holds.
#[allow(
    clippy::manual_async_fn,
    reason = "an async fn would keep its arguments twice in the state an idle connection holds"
)]
pub fn serve<H: Handler>(
    socket: Socket,
    handler: H,
    settings: Settings,
    mut shutdown: watch::Receiver<bool>,
) -> impl Future<Output = ()> {
    let shared = Shared::new(socket);
    async move {
        let mut buf = BytesMut::new();
        let refused = loop {
            // The head is taken out of the result in a statement of its own: a value the
            // statement still held across the exchange's await would stay in the state an idle
            // connection keeps.
            let head = match read_head(&shared, &mut buf, settings, &mut shutdown).await {
                Ok(head) => head,
                Err(HeadEnd::Quiet) => return,
                Err(HeadEnd::Refused(error)) => break error,
            };
            // Boxed: the state of an exchange is allocated while it runs, not held by an idle
            // connection's task.
            let stopping = &shutdown;
            let exchange = Box::pin(exchange(
                &shared, &handler, head, &mut buf, settings, stopping,
            ));
            if !exchange.await {
                return;
            }
            if buf.is_empty() {
                // Nothing buffered: the buffer is released while the connection waits.
                buf = BytesMut::new();
            }
        };
        Box::pin(refuse(&shared, &handler, refused, settings.response_write)).await;
    }
}

/// Answers a head that cannot be served, then closes.
async fn refuse<H: Handler>(shared: &Shared, handler: &H, error: HeadError, limit: WriteLimit) {
    let response = handler.reject(error);
    let facts = RequestFacts {
        method: &Method::GET,
        version: Version::HTTP_11,
    };
    // A client that sent requests without reading the answers may have filled its buffers.
    let mut pace = WritePace::new(limit);
    if write_response(shared, response, facts, false, &mut pace)
        .await
        .is_ok()
    {
        linger(shared).await;
    }
}

/// One request and its response. `true` when the connection may carry another request, with
/// what arrived after this one in `buf`.
///
/// Its state is what `serve` boxes (and copies into the box) for every request, so what lives
/// across its awaits is kept small: the request is built in `prepare`, the handler's future runs
/// in `call` (only the await of `call` holds it), and the response lives only while it is
/// written.
async fn exchange<H: Handler>(
    shared: &Arc<Shared>,
    handler: &H,
    head: Head,
    buf: &mut BytesMut,
    settings: Settings,
    shutdown: &watch::Receiver<bool>,
) -> bool {
    let Prepared {
        request,
        method,
        version,
        keep_alive,
        lent,
        expect_continue,
        upgrade,
    } = prepare(shared, head, buf);
    let mut pace = WritePace::new(settings.response_write);
    let (switching, written) = {
        // While no body is being read, the loop watches the socket for the client going away.
        let watch = (!lent).then_some(ClientWatch {
            buf: &mut *buf,
            limit: settings.max_head,
        });
        let Some(response) = call(
            shared,
            handler,
            request,
            expect_continue && lent,
            watch,
            &mut pace,
        )
        .await
        else {
            return false;
        };
        let switching = response.status() == StatusCode::SWITCHING_PROTOCOLS;
        // An answer that comes before the request body was read (an early 413, say) closes the
        // connection, and says so: the rest of the body cannot be told from a next request.
        let body_pending = lent && shared.given_back_complete() != Some(true);
        let keep_alive = keep_alive
            && !body_pending
            && !*shutdown.borrow()
            && !write::asks_close(response.headers());
        let facts = RequestFacts {
            method: &method,
            version,
        };
        let written = write_response(shared, response, facts, keep_alive, &mut pace).await;
        (switching, written)
    };
    let framed = match written {
        Ok(framed) => framed,
        Err(err) if pace::is_slow_reader(&err) => {
            // The response (and the upstream connection feeding it) is dropped with the
            // connection; the access record says client_aborted.
            let reason = err
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<pace::SlowReader>())
                .map_or("slow_reader", pace::SlowReader::reason);
            tracing::info!(reason, error = %err, "client disconnected: reading the response too slowly");
            return false;
        }
        Err(err) => {
            tracing::debug!(error = %err, "client response ended early");
            return false;
        }
    };
    if lent && !framed && !shared.is_given_back() {
        // The body is still being read by whoever forwards it: the client gets its FIN now,
        // the socket closes once the body is dropped.
        shared.socket.shutdown_write();
        return false;
    }
    if lent {
        // The body may still be on its way upstream (an early answer): wait for it.
        let Ok(returned) = tokio::time::timeout(settings.header_timeout, shared.taken_back()).await
        else {
            return false;
        };
        if !returned.complete {
            // Unread body bytes would be read as the next request: the connection ends.
            if framed {
                linger(shared).await;
            }
            return false;
        }
        *buf = returned.buf;
    }
    if switching && let Some(upgrade) = upgrade {
        // What the client sent after its head belongs to the new protocol.
        let _ = upgrade.send(Upgraded::new(Arc::clone(shared), std::mem::take(buf)));
        return false;
    }
    framed
}

/// A parsed head made into the request the handler gets, and what the exchange keeps of it.
struct Prepared {
    request: Request<RequestBody>,
    method: Method,
    version: Version,
    keep_alive: bool,
    /// The request body reads from the connection (`buf` was lent to it).
    lent: bool,
    expect_continue: bool,
    /// Where the connection goes if the response switches protocols.
    upgrade: Option<oneshot::Sender<Upgraded>>,
}

/// The request for `head`, its body reading what follows the head in `buf`. (Not part of
/// `exchange`'s body: the head's parts would stay in its state across every await.)
fn prepare(shared: &Arc<Shared>, head: Head, buf: &mut BytesMut) -> Prepared {
    let Head {
        mut parts,
        framing,
        keep_alive,
        expect_continue,
        upgrade,
    } = head;
    let method = parts.method.clone();
    let version = parts.version;
    let (body, lent) = match framing {
        Framing::Empty => (RequestBody::empty(), false),
        Framing::Length(length) => {
            let lent = std::mem::take(buf);
            let body = RequestBody::length(Arc::clone(shared), lent, length, expect_continue);
            (body, true)
        }
        Framing::Chunked => {
            let lent = std::mem::take(buf);
            let body = RequestBody::chunked(Arc::clone(shared), lent, expect_continue);
            (body, true)
        }
    };
    let interim = (version == Version::HTTP_11).then(|| {
        // Anything a finished request's handle queued late is not this request's.
        drop(shared.take_interim());
        super::Interim(Arc::clone(shared))
    });
    let body = body.with_interim(interim);
    let upgrade = upgrade.then(|| {
        let (tx, rx) = oneshot::channel();
        parts
            .extensions
            .insert(OnUpgrade(Arc::new(Mutex::new(Some(rx)))));
        tx
    });
    Prepared {
        request: Request::from_parts(parts, body),
        method,
        version,
        keep_alive,
        lent,
        expect_continue,
        upgrade,
    }
}

/// The connection's buffer while the handler works on a request without a body to read: what
/// the client sends meanwhile (a pipelined request) is kept in it, up to `limit`.
struct ClientWatch<'a> {
    buf: &'a mut BytesMut,
    limit: usize,
}

impl ClientWatch<'_> {
    /// Reads what the client sends: `Ok(0)` once it closed (or half-closed) the connection.
    /// Only requests still in progress after [`WATCH_AFTER`] are watched: a read attempt is a
    /// system call (and a buffer), which a quick answer need not pay for.
    async fn read(&mut self, shared: &Shared) -> io::Result<usize> {
        // Boxed: the exchange's state, copied into its box for every request, stays small.
        Box::pin(tokio::time::sleep(WATCH_AFTER)).await;
        self.buf
            .reserve(HEAD_BUFFER.min(self.limit.saturating_sub(self.buf.len()) + 1));
        std::future::poll_fn(|cx| shared.socket.poll_read_buf(cx, self.buf)).await
    }
}

/// The handler's response, with the interim responses written while it runs (`100 Continue`
/// when the body is first read, and those the handler queues) and those that came with it.
/// `None` when the client could not be written to, or went away while the handler worked
/// (the handler's future is dropped, which lets go of the upstream request, as nginx does
/// with a client that closes early, and hyper did).
async fn call<H: Handler>(
    shared: &Shared,
    handler: &H,
    request: Request<RequestBody>,
    mut continue_owed: bool,
    mut watch: Option<ClientWatch<'_>>,
    pace: &mut WritePace,
) -> Option<Response<H::Body>> {
    let mut call = pin!(handler.call(request));
    let response = loop {
        let watching = watch.as_ref().is_some_and(|w| w.buf.len() < w.limit);
        tokio::select! {
            biased;
            response = &mut call => break response,
            read = async { watch.as_mut()?.read(shared).await.ok() }, if watching => {
                if matches!(read, Some(0) | None) {
                    tracing::debug!("client closed the connection while its request was in progress: the request is dropped");
                    return None;
                }
            }
            () = shared.continue_wanted.notified(), if continue_owed => {
                continue_owed = false;
                if pace.write(shared, &mut [b"HTTP/1.1 100 Continue\r\n\r\n"]).await.is_err() {
                    return None;
                }
            }
            () = shared.interim_ready.notified() => {
                let interim = shared.take_interim();
                if pace.write(shared, &mut [&interim]).await.is_err() {
                    return None;
                }
            }
        }
    };
    // Interim responses that came with the final one (the same read upstream) still go first.
    let interim = shared.take_interim();
    if !interim.is_empty() && pace.write(shared, &mut [&interim]).await.is_err() {
        return None;
    }
    Some(response)
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
fn read_head<'a>(
    shared: &'a Shared,
    buf: &'a mut BytesMut,
    settings: Settings,
    shutdown: &'a mut watch::Receiver<bool>,
) -> impl Future<Output = Result<Head, HeadEnd>> + 'a {
    async move {
        let mut deadline = pin!(tokio::time::sleep_until(
            Instant::now() + settings.header_timeout
        ));
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
                    return Err(HeadEnd::Refused(HeadError {
                        status: StatusCode::REQUEST_TIMEOUT,
                        reason: format!(
                            "client did not send a complete request header section within client_header_timeout ({:?})",
                            settings.header_timeout
                        ),
                    }));
                }
            }
        }
    }
}

/// Reads more of a head. The first read goes into the stack: a wake-up with nothing to read
/// (readiness left over from the last request) allocates nothing, so an idle connection holds
/// no buffer, and a small head takes only its own size.
fn read_more(
    socket: &Socket,
    cx: &mut std::task::Context<'_>,
    buf: &mut BytesMut,
    max_head: usize,
) -> Poll<io::Result<usize>> {
    if buf.is_empty() {
        let mut first = [0u8; 2048];
        let n = std::task::ready!(socket.poll_read(cx, &mut first))?;
        buf.extend_from_slice(&first[..n]);
        return Poll::Ready(Ok(n));
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

/// Writes a response; `Ok(true)` when the connection is still framed for another request.
async fn write_response<B>(
    shared: &Shared,
    response: Response<B>,
    request: RequestFacts<'_>,
    keep_alive: bool,
    pace: &mut WritePace,
) -> io::Result<bool>
where
    B: Body<Data = Bytes> + Unpin,
{
    let (parts, mut body) = response.into_parts();
    let exact = if body.is_end_stream() {
        Some(0)
    } else {
        body.size_hint().exact()
    };
    let framing = write::framing(request, parts.status, &parts.headers, exact);
    let keep_alive = keep_alive && framing != BodyFraming::UntilClose;
    let mut head = Vec::with_capacity(256 + parts.headers.len() * 32);
    write::encode_head(
        &mut head,
        parts.status,
        &parts.headers,
        framing,
        keep_alive,
        request.version,
    );
    drop(parts);
    if framing == BodyFraming::None {
        pace.write(shared, &mut [&head]).await?;
        return Ok(keep_alive);
    }
    let mut head = Some(head);
    let mut sent: u64 = 0;
    loop {
        // The head goes out with the first body bytes when they are at hand, else on its own.
        let polled =
            std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut body).poll_frame(cx))).await;
        let frame = match polled {
            Poll::Ready(frame) => frame,
            Poll::Pending => {
                if let Some(head) = head.take() {
                    pace.write(shared, &mut [&head]).await?;
                }
                std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
            }
        };
        let pending_head = head.take().unwrap_or_default();
        let data = match frame {
            None => {
                let tail: &[u8] = if framing == BodyFraming::Chunked {
                    b"0\r\n\r\n"
                } else {
                    b""
                };
                pace.write(shared, &mut [&pending_head, tail]).await?;
                if let BodyFraming::Length(length) = framing
                    && sent < length
                {
                    return Err(io::Error::other(format!(
                        "response body ended after {sent} of {length} bytes"
                    )));
                }
                return Ok(keep_alive);
            }
            Some(Err(_)) => {
                // hyper's behaviour: the head (if not yet out) goes, then the connection closes
                // short of the promised length or the last chunk, so the client sees the cut.
                pace.write(shared, &mut [&pending_head]).await?;
                return Err(io::Error::other("response body failed"));
            }
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => data,
                Err(_trailers) => {
                    pace.write(shared, &mut [&pending_head]).await?;
                    continue;
                }
            },
        };
        let end = body.is_end_stream();
        match framing {
            BodyFraming::Chunked => {
                let (line, n) = write::chunk_line(data.len());
                let line: &[u8] = if data.is_empty() { b"" } else { &line[..n] };
                let after: &[u8] = match (data.is_empty(), end) {
                    (true, true) => b"0\r\n\r\n",
                    (true, false) => b"",
                    (false, true) => b"\r\n0\r\n\r\n",
                    (false, false) => b"\r\n",
                };
                pace.write(shared, &mut [&pending_head, line, &data, after])
                    .await?;
            }
            BodyFraming::Length(length) => {
                let room = usize::try_from(length - sent).unwrap_or(usize::MAX);
                if data.len() > room {
                    pace.write(shared, &mut [&pending_head, &data[..room]])
                        .await?;
                    return Err(io::Error::other("response body longer than its length"));
                }
                pace.write(shared, &mut [&pending_head, &data]).await?;
            }
            BodyFraming::UntilClose | BodyFraming::None => {
                pace.write(shared, &mut [&pending_head, &data]).await?;
            }
        }
        sent += data.len() as u64;
        if end {
            if let BodyFraming::Length(length) = framing
                && sent < length
            {
                return Err(io::Error::other("response body ended early"));
            }
            return Ok(keep_alive);
        }
    }
}

/// Half-closes, then reads and drops what the client still sends, for a bounded time, so that
/// the answer is not destroyed by a reset from unread bytes (nginx's lingering close).
async fn linger(shared: &Shared) {
    shared.socket.shutdown_write();
    let mut scratch = BytesMut::with_capacity(16 * 1024);
    let mut drained = 0;
    let _ = tokio::time::timeout(LINGER, async {
        while drained < LINGER_BYTES {
            scratch.clear();
            match std::future::poll_fn(|cx| shared.poll_read_buf(cx, &mut scratch)).await {
                Ok(0) | Err(_) => return,
                Ok(n) => drained += n,
            }
        }
    })
    .await;
}
