//! What the pipeline receives from a client, whichever of gatehouse's engines read it: HTTP/1.1
//! (plain and TLS) or HTTP/2.
//!
//! - [`ClientBody`]: the request body, with client-side errors already turned into [`Failure`]s;
//! - [`Interim`]: where the upstream's 1xx responses go to reach the client;
//! - [`RequestBody`]: that body on its way upstream. Bounds how long the client may pause
//!   (`client_header_timeout` doubles as the body idle timeout) and how slowly it may send
//!   ([`ClientPace`]), tells the attempt when the
//!   last byte was handed to the upstream connection (that starts `response_timeout`), and turns
//!   client-side body errors into [`DownstreamBodyError`], which the classifier recognises;
//! - [`ClientUpgrade`]: the client's connection after a `101`, for the tunnel.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body::{Body, Frame, SizeHint};
use tokio::sync::oneshot;
use tokio::time::{Instant, Sleep};

use crate::client_pace::{self, ClientPace, RateGuard};
use crate::failure::marker::{BoxError, DownstreamBodyError};
use crate::failure::{Failure, classify};
use crate::{http1, http2};

/// A request body from a client.
#[derive(Debug)]
pub enum ClientBody {
    Http1(http1::RequestBody),
    Http2(http2::RequestBody),
}

impl From<http1::RequestBody> for ClientBody {
    fn from(body: http1::RequestBody) -> Self {
        Self::Http1(body)
    }
}

impl From<http2::RequestBody> for ClientBody {
    fn from(body: http2::RequestBody) -> Self {
        Self::Http2(body)
    }
}

impl ClientBody {
    /// Where the upstream's interim (1xx) responses go (none for an HTTP/1.0 client).
    pub fn interim(&self) -> Option<Interim> {
        match self {
            Self::Http1(body) => body.interim().map(Interim::Http1),
            Self::Http2(body) => Some(Interim::Http2(body.interim())),
        }
    }
}

/// Relays the upstream's interim (1xx) responses to the client of one request.
#[derive(Debug, Clone)]
pub enum Interim {
    Http1(http1::Interim),
    Http2(http2::Interim),
}

impl Interim {
    /// Relays `status` (102, 103, ...) with `headers`, hop-by-hop fields already removed.
    pub fn send(&self, status: http::StatusCode, headers: &http::HeaderMap) {
        match self {
            Self::Http1(interim) => interim.send(status, headers),
            Self::Http2(interim) => interim.send(status, headers),
        }
    }
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = Failure;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Failure>>> {
        match self.get_mut() {
            Self::Http1(body) => Pin::new(body).poll_frame(cx).map_err(|err| {
                if err.is_client_gone() {
                    Failure::client_gone(err.to_string())
                } else {
                    Failure::client(StatusCode::BAD_REQUEST, err.to_string())
                }
            }),
            Self::Http2(body) => Pin::new(body)
                .poll_frame(cx)
                .map_err(|err| classify::http2_request_body_error(&err)),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Http1(body) => body.is_end_stream(),
            Self::Http2(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Http1(body) => body.size_hint(),
            Self::Http2(body) => body.size_hint(),
        }
    }
}

/// The handle on a client connection that may switch protocols (HTTP/1.1: WebSocket and other
/// upgrades; HTTP/2 has none).
#[derive(Debug)]
pub struct ClientUpgrade(http1::OnUpgrade);

impl ClientUpgrade {
    /// Takes the handle out of a request, when its engine put one there.
    pub fn take<B>(req: &mut Request<B>) -> Option<Self> {
        req.extensions_mut().remove::<http1::OnUpgrade>().map(Self)
    }

    /// Resolves once the `101` went out, with the client's connection.
    pub async fn wait(self) -> Result<ClientStream, String> {
        self.0.wait().await.map_err(ToOwned::to_owned)
    }
}

/// A client connection after `101 Switching Protocols`.
pub type ClientStream = http1::Upgraded;

// === RequestBody ===

/// The client's request body, forwarded to the upstream.
///
/// Small (a body read beforehand, and a box for a streaming one): the request it is part of
/// is moved through every phase of the pipeline, and most requests have no body at all.
#[derive(Debug)]
pub struct RequestBody {
    /// A body read ahead of time (kept so that the request can be replayed to another server).
    buffered: Option<Bytes>,
    streaming: Option<Box<Streaming>>,
}

/// A body still being read from the client, with what bounds the reading.
#[derive(Debug)]
struct Streaming {
    inner: ClientBody,
    pace: ClientPace,
    idle: IdleTimer,
    rate: RateGuard,
    /// Body bytes read from the client so far (for `max_request_body_size`).
    received: u64,
    /// Fired once the last byte was handed over.
    sent: Option<oneshot::Sender<()>>,
}

impl RequestBody {
    /// An empty body (GET and friends, or retries of bodiless requests).
    pub fn empty() -> Self {
        Self {
            buffered: None,
            streaming: None,
        }
    }

    /// Wraps the client's body. The receiver fires once the body was fully handed over.
    pub fn streaming(inner: ClientBody, pace: ClientPace) -> (Self, oneshot::Receiver<()>) {
        let (tx, rx) = oneshot::channel();
        let streaming = Streaming {
            inner,
            pace,
            idle: IdleTimer::default(),
            rate: RateGuard::default(),
            received: 0,
            sent: Some(tx),
        };
        (
            Self {
                buffered: None,
                streaming: Some(Box::new(streaming)),
            },
            rx,
        )
    }

    /// A body read completely beforehand.
    pub fn full(bytes: Bytes) -> Self {
        Self {
            buffered: (!bytes.is_empty()).then_some(bytes),
            streaming: None,
        }
    }

    /// The bytes of a body read beforehand, taken out to go with the request head in one
    /// write. A streaming body has none.
    pub fn take_buffered(&mut self) -> Option<Bytes> {
        self.buffered.take()
    }

    /// Whether the body streams from an HTTP/2 client without a declared length: DATA frames
    /// that a request whose HEADERS did not end its stream may or may not send (an HTTP/1.1
    /// body of unknown length is one the client framed as chunked).
    pub fn is_unframed_http2(&self) -> bool {
        self.streaming
            .as_ref()
            .is_some_and(|s| matches!(s.inner, ClientBody::Http2(_)))
    }
}

impl Streaming {
    fn finished(&mut self) {
        if let Some(sent) = self.sent.take() {
            let _ = sent.send(());
        }
    }

    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                self.idle.disarm();
                let len = frame.data_ref().map_or(0, Bytes::len);
                self.received += len as u64;
                if self.pace.max_bytes > 0 && self.received > self.pace.max_bytes {
                    let failure = client_pace::too_large(self.pace.max_bytes, None);
                    return Poll::Ready(Some(Err(Box::new(DownstreamBodyError(failure)))));
                }
                if let Err(slow) = self.rate.moved(len, &self.pace.min_rate) {
                    let failure = client_pace::too_slow(slow);
                    return Poll::Ready(Some(Err(Box::new(DownstreamBodyError(failure)))));
                }
                if self.inner.is_end_stream() {
                    self.finished();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(failure))) => {
                Poll::Ready(Some(Err(Box::new(DownstreamBodyError(failure)))))
            }
            Poll::Ready(None) => {
                self.finished();
                Poll::Ready(None)
            }
            Poll::Pending => {
                if let Poll::Ready(slow) = self.rate.poll_waiting(cx, &self.pace.min_rate) {
                    let failure = client_pace::too_slow(slow);
                    return Poll::Ready(Some(Err(Box::new(DownstreamBodyError(failure)))));
                }
                let timeout = self.pace.idle_timeout;
                ready!(self.idle.poll_expired(cx, timeout));
                let failure = Failure::client(
                    StatusCode::REQUEST_TIMEOUT,
                    format!("client sent no request body bytes for {timeout:?}"),
                );
                Poll::Ready(Some(Err(Box::new(DownstreamBodyError(failure)))))
            }
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if let Some(bytes) = this.buffered.take() {
            return Poll::Ready(Some(Ok(Frame::data(bytes))));
        }
        match this.streaming.as_mut() {
            Some(streaming) => streaming.poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.buffered.is_none()
            && self
                .streaming
                .as_ref()
                .is_none_or(|streaming| streaming.inner.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        match (&self.buffered, &self.streaming) {
            (Some(bytes), _) => SizeHint::with_exact(bytes.len() as u64),
            (None, Some(streaming)) => streaming.inner.size_hint(),
            (None, None) => SizeHint::with_exact(0),
        }
    }
}

// === IdleTimer ===

/// A timer for "no progress for `timeout`": armed when a poll finds nothing to do, disarmed on
/// progress. The sleep is allocated once per body and reset afterwards. Shared with the
/// response body ([`UpstreamBody`](crate::body::UpstreamBody)).
#[derive(Debug, Default)]
pub(crate) struct IdleTimer {
    sleep: Option<Pin<Box<Sleep>>>,
    armed: bool,
}

impl IdleTimer {
    pub(crate) fn disarm(&mut self) {
        self.armed = false;
    }

    pub(crate) fn poll_expired(&mut self, cx: &mut Context<'_>, timeout: Duration) -> Poll<()> {
        let deadline = Instant::now() + timeout;
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if !self.armed {
            sleep.as_mut().reset(deadline);
            self.armed = true;
        }
        ready!(sleep.as_mut().poll(cx));
        self.armed = false;
        Poll::Ready(())
    }
}
