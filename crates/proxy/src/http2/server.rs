//! One HTTP/2 client connection: the handshake (SETTINGS both ways), then streams accepted and
//! each answered on a task of its own, until the client goes away or, after
//! [`Connection::graceful_shutdown`], the open streams have finished (GOAWAY, RFC 9113 §6.8).
//! Polling the connection is what drives every stream's frames in and out.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use tokio::io::{AsyncRead, AsyncWrite};

use super::body::RequestBody;
use super::interim::Interim;
use super::stream;

/// Stream and flow-control limits, from the server config.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// SETTINGS_MAX_CONCURRENT_STREAMS.
    pub max_concurrent_streams: u32,
    /// SETTINGS_INITIAL_WINDOW_SIZE: what a stream may send before gatehouse reads it.
    pub stream_window: u32,
    /// The connection's receive window.
    pub connection_window: u32,
    /// SETTINGS_MAX_HEADER_LIST_SIZE.
    pub max_header_list_size: u32,
    /// Streams a client may open and reset before gatehouse accepted them (rapid reset,
    /// CVE-2023-44487) before the connection is closed.
    pub max_pending_accept_reset_streams: usize,
    /// Streams gatehouse may reset for the client's protocol errors before the connection is
    /// closed (CVE-2024-27316-like floods).
    pub max_local_error_reset_streams: usize,
    /// How long a stream's response may wait for the client's flow-control window before the
    /// stream is reset (`None`: as long as the connection lives).
    pub stream_write_timeout: Option<Duration>,
}

/// Answers the requests of one connection.
pub trait Handler: Send + Sync + Unpin + 'static {
    /// The request body the handler takes, made from the stream's: the request is built with
    /// it at once rather than rebuilt (and copied) by the handler.
    type RequestBody: From<RequestBody> + Send;
    type Body: Body<Data = Bytes> + Send + Unpin + 'static;

    /// Called on the connection's task as the stream is accepted; the future runs on the
    /// stream's own task.
    fn call(
        &self,
        request: Request<Self::RequestBody>,
    ) -> impl Future<Output = Response<Self::Body>> + Send + 'static;
}

/// Streams a client may reset while gatehouse works on them before their share is weighed.
const RESETS_FORGIVEN: u32 = 100;

/// The streams a client reset while gatehouse was working on them (after they were accepted,
/// which h2's own pending-accept limit does not see), counted by each stream's task.
///
/// Rapid reset (CVE-2023-44487) paced so that every stream is accepted before its reset makes
/// gatehouse start each request, and an upstream connection for it, for nothing. A client
/// whose resets pass [`RESETS_FORGIVEN`] and make up more than half of its streams gets
/// GOAWAY with ENHANCE_YOUR_CALM, as Envoy does with premature resets; a browser that cancels
/// some of its requests stays well below.
#[derive(Debug, Default)]
pub(super) struct ClientResets(AtomicU32);

impl ClientResets {
    pub(super) fn add(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    fn too_many(&self, streams: u32) -> bool {
        let resets = self.0.load(Ordering::Relaxed);
        resets > RESETS_FORGIVEN && resets.saturating_mul(2) > streams
    }
}

/// An HTTP/2 connection being served: a future that ends when the connection does.
pub struct Connection<T, H> {
    state: State<T>,
    handler: H,
    stream_write_timeout: Option<Duration>,
    /// Shutdown was asked for before the handshake completed.
    close_pending: bool,
    /// Streams accepted so far, and those of them the client reset before their response.
    streams: u32,
    resets: Arc<ClientResets>,
}

impl<T, H> std::fmt::Debug for Connection<T, H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.state {
            State::Handshaking(_) => "handshaking",
            State::Serving(_) => "serving",
        };
        f.debug_struct("Connection").field("state", &state).finish()
    }
}

enum State<T> {
    Handshaking(h2::server::Handshake<T, Bytes>),
    Serving(h2::server::Connection<T, Bytes>),
}

impl<T, H> Connection<T, H>
where
    T: AsyncRead + AsyncWrite + Unpin,
    H: Handler,
{
    pub fn new(io: T, handler: H, settings: Settings) -> Self {
        let mut builder = h2::server::Builder::new();
        builder
            .max_concurrent_streams(settings.max_concurrent_streams)
            .initial_window_size(settings.stream_window)
            .initial_connection_window_size(settings.connection_window)
            .max_header_list_size(settings.max_header_list_size)
            .max_pending_accept_reset_streams(settings.max_pending_accept_reset_streams)
            .max_local_error_reset_streams(Some(settings.max_local_error_reset_streams));
        Self {
            state: State::Handshaking(builder.handshake(io)),
            handler,
            stream_write_timeout: settings.stream_write_timeout,
            close_pending: false,
            streams: 0,
            resets: Arc::default(),
        }
    }

    /// Sends GOAWAY (after a PING round trip, so that streams already on their way are still
    /// served) and ends once the open streams have finished.
    pub fn graceful_shutdown(self: Pin<&mut Self>) {
        let this = self.get_mut();
        match &mut this.state {
            State::Handshaking(_) => this.close_pending = true,
            State::Serving(conn) => conn.graceful_shutdown(),
        }
    }
}

/// The stream's `Content-Length`, when valid (`h2` refuses a stream whose body disagrees).
fn content_length(request: &Request<h2::RecvStream>) -> Option<u64> {
    let mut values = request
        .headers()
        .get_all(http::header::CONTENT_LENGTH)
        .iter();
    let first = values.next()?.to_str().ok()?.trim().parse().ok()?;
    values.next().is_none().then_some(first)
}

/// The request asks for `100 Continue` before its body.
fn expects_continue(request: &Request<h2::RecvStream>) -> bool {
    request
        .headers()
        .get(http::header::EXPECT)
        .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

impl<T, H> Future for Connection<T, H>
where
    T: AsyncRead + AsyncWrite + Unpin,
    H: Handler,
{
    type Output = Result<(), h2::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        loop {
            match &mut this.state {
                State::Handshaking(handshake) => {
                    let mut conn = ready!(Pin::new(handshake).poll(cx))?;
                    if this.close_pending {
                        conn.graceful_shutdown();
                    }
                    this.state = State::Serving(conn);
                }
                State::Serving(conn) => {
                    let Some(accepted) = ready!(conn.poll_accept(cx)) else {
                        return Poll::Ready(Ok(()));
                    };
                    let (request, respond) = accepted?;
                    this.streams = this.streams.saturating_add(1);
                    if this.resets.too_many(this.streams) {
                        tracing::warn!(
                            streams = this.streams,
                            "HTTP/2 client reset most of its streams while they were being \
                             answered (rapid reset); closing the connection with ENHANCE_YOUR_CALM"
                        );
                        // The stream is dropped unanswered (reset); the connection ends once
                        // the GOAWAY is out.
                        drop((request, respond));
                        conn.abrupt_shutdown(h2::Reason::ENHANCE_YOUR_CALM);
                        continue;
                    }
                    let length = content_length(&request);
                    let expect_continue = expects_continue(&request);
                    let (parts, recv) = request.into_parts();
                    let reply = Interim::new(respond);
                    let body = RequestBody::new(recv, length, expect_continue, reply.clone());
                    // Boxed: tokio moves the task's future through several calls on its way
                    // into the task, and a box moves as a pointer.
                    let request = Request::from_parts(parts, H::RequestBody::from(body));
                    let call = Box::pin(this.handler.call(request));
                    tokio::spawn(stream::Respond::new(
                        call,
                        reply,
                        this.stream_write_timeout,
                        Arc::clone(&this.resets),
                    ));
                }
            }
        }
    }
}
