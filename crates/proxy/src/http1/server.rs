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
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{Method, Request, Response, StatusCode, Version};
use http_body::Body;
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

use super::body::RequestBody;
use super::head::{Framing, Head, HeadError};
use super::io::{Shared, Upgraded};
use super::pace::{self, WriteLimit, WritePace};
use super::read_head::{HEAD_BUFFER, HeadEnd, read_head};
use super::send::{linger, write_response};
use super::socket::Socket;
use super::write::{self, RequestFacts};

/// How long after the client closed (or, over TLS, after the request began) the request in
/// progress is let go of: time for a client that closes its sending side once the request is
/// out to get its answer anyway, and soon enough to free an upstream request. A reset lets go
/// at once.
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
    /// The request body the handler takes, made from the engine's: the request is built with
    /// it at once rather than rebuilt (and copied) by the handler.
    type RequestBody: From<RequestBody> + Send;
    type Body: Body<Data = Bytes> + Send + Unpin + 'static;

    /// The future lives inside the exchange's own allocation (one per request).
    fn call(
        &self,
        request: Request<Self::RequestBody>,
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
        // The header timeout's timer, one for the connection's life (see `read_head`).
        let mut head_deadline = pin!(tokio::time::sleep(settings.header_timeout));
        let refused = loop {
            // The head is taken out of the result in a statement of its own: a value the
            // statement still held across the exchange's await would stay in the state an idle
            // connection keeps.
            let deadline = head_deadline.as_mut();
            let head = match read_head(&shared, &mut buf, settings, deadline, &mut shutdown).await {
                Ok(head) => head,
                Err(HeadEnd::Quiet) => return,
                Err(HeadEnd::Refused(error)) => break error,
            };
            // Boxed: the state of an exchange is allocated while it runs, not held by an idle
            // connection's task. Built in the box: it is several KiB.
            let stopping = &shutdown;
            let exchange = crate::boxed::pinned(|| {
                exchange(&shared, &handler, head, &mut buf, settings, stopping)
            });
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

/// Answers a head that cannot be served (logged, and answered unless it is not HTTP/1.x at
/// all), then closes.
async fn refuse<H: Handler>(shared: &Shared, handler: &H, error: HeadError, limit: WriteLimit) {
    let unanswered = error.unanswered;
    let response = handler.reject(error);
    if unanswered {
        return;
    }
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
    } = prepare::<H::RequestBody>(shared, head, buf);
    let mut pace = WritePace::new(settings.response_write);
    let (switching, written) = {
        // While no body is being read, the loop watches the socket for the client going away.
        let watch = (!lent).then_some(ClientWatch {
            buf: &mut *buf,
            limit: settings.max_head,
            until: None,
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
struct Prepared<B> {
    request: Request<B>,
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
fn prepare<B: From<RequestBody>>(
    shared: &Arc<Shared>,
    head: Head,
    buf: &mut BytesMut,
) -> Prepared<B> {
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
        request: Request::from_parts(parts, B::from(body)),
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
    /// When the wait of [`WATCH_AFTER`] ends, once it began: kept across the handler's loop,
    /// whose every turn (a 1xx written, say) starts the read again.
    until: Option<Instant>,
}

impl ClientWatch<'_> {
    /// Reads what the client sends: `Ok(0)` once it closed (or half-closed) the connection,
    /// [`WATCH_AFTER`] later; a reset or another error at once.
    ///
    /// A plain socket is read only once it has something to give: the read that ended the
    /// head has usually cleared its readiness (a short read does), so a quick answer costs
    /// neither a system call nor a timer. A TLS session is read once the request has been in
    /// progress for [`WATCH_AFTER`].
    async fn read(&mut self, shared: &Shared) -> io::Result<usize> {
        // `true` once a plain socket is readable; `false` at once for TLS.
        let plain = std::future::poll_fn(|cx| match shared.socket.poll_read_ready(cx) {
            Some(Poll::Pending) => Poll::Pending,
            Some(Poll::Ready(ready)) => Poll::Ready(ready.map(|()| true)),
            None => Poll::Ready(Ok(false)),
        })
        .await?;
        if !plain {
            self.wait().await;
        }
        self.buf
            .reserve(HEAD_BUFFER.min(self.limit.saturating_sub(self.buf.len()) + 1));
        let n = std::future::poll_fn(|cx| shared.socket.poll_read_buf(cx, self.buf)).await?;
        if n == 0 && plain {
            self.wait().await;
        }
        Ok(n)
    }

    /// Waits until [`WATCH_AFTER`] after the first call.
    async fn wait(&mut self) {
        let until = *self
            .until
            .get_or_insert_with(|| Instant::now() + WATCH_AFTER);
        // Boxed: the exchange's state, copied into its box for every request, stays small.
        Box::pin(tokio::time::sleep_until(until)).await;
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
    request: Request<H::RequestBody>,
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
            () = shared.continue_wanted.raised(), if continue_owed => {
                continue_owed = false;
                if pace.write(shared, &mut [b"HTTP/1.1 100 Continue\r\n\r\n"]).await.is_err() {
                    return None;
                }
            }
            () = shared.interim_ready.raised() => {
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
