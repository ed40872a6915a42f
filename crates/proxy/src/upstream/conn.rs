//! A connection checked out for one request ([`Conn`]) and how a request is sent on it
//! ([`Sender`]): gatehouse's own HTTP/1.1 client, hyper's HTTP/1.1 connection (upgrades), or a
//! stream on a shared HTTP/2 connection; the request path does not care which.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::FutureExt as _;
use futures_util::future::Either;
use http::{HeaderMap, Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::{TrySendError, http1};

use super::h1::{self, H1Conn};
use super::h2::Stream;
use super::incoming::UpstreamIncoming;
use super::io::ConnStats;
use crate::client_body::Interim;
use crate::client_body::RequestBody;
use crate::failure::classify::{self, HeadFacts};
use crate::failure::{Failure, FailureKind, Phase};

/// The application protocol of a connection, as an ALPN token (what Proxy-Status
/// `next-protocol` names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Http1,
    /// HTTP/2 over TLS.
    H2,
    /// HTTP/2 over cleartext TCP, prior knowledge.
    H2c,
}

impl Protocol {
    pub fn alpn(self) -> &'static str {
        match self {
            Self::Http1 => "http/1.1",
            Self::H2 => "h2",
            Self::H2c => "h2c",
        }
    }
}

/// A connection checked out for one request (for HTTP/2: a stream on a shared connection).
#[derive(Debug)]
pub struct Conn {
    pub sender: Sender,
    /// Byte counters for the retry decision: the connection's for HTTP/1.1, the request's own
    /// for an HTTP/2 stream (see [`Stream::try_send_request`]).
    pub stats: Arc<ConnStats>,
    pub peer: SocketAddr,
    /// Whether this connection served an earlier request (a failure on it may be a stale
    /// keep-alive connection rather than a dead server).
    pub reused: bool,
    pub protocol: Protocol,
    /// How long the TLS handshake took, when this request opened a TLS connection.
    pub tls_handshake: Option<Duration>,
    /// The idle timeout the server announced in its last response (`Keep-Alive: timeout=N`).
    pub keep_alive: Option<Duration>,
}

impl Conn {
    /// Takes note of what a response head says about reusing the connection.
    pub fn note_response(&mut self, headers: &http::HeaderMap) {
        self.keep_alive = super::idle::keep_alive_timeout(headers);
    }

    /// A new HTTP/1.1 connection driven by hyper (upgrades, `gatehouse doctor`).
    pub fn http1(
        sender: http1::SendRequest<RequestBody>,
        stats: Arc<ConnStats>,
        peer: SocketAddr,
        tls_handshake: Option<Duration>,
    ) -> Self {
        Self::with_sender(Sender::Http1(sender), stats, peer, tls_handshake)
    }

    /// A new pooled HTTP/1.1 connection of gatehouse's own client.
    pub fn own(
        conn: Box<H1Conn>,
        stats: Arc<ConnStats>,
        peer: SocketAddr,
        tls_handshake: Option<Duration>,
    ) -> Self {
        Self::with_sender(Sender::Own(Some(conn)), stats, peer, tls_handshake)
    }

    fn with_sender(
        sender: Sender,
        stats: Arc<ConnStats>,
        peer: SocketAddr,
        tls_handshake: Option<Duration>,
    ) -> Self {
        Self {
            sender,
            stats,
            peer,
            reused: false,
            protocol: Protocol::Http1,
            tls_handshake,
            keep_alive: None,
        }
    }

    /// Puts back the own client's connection after its response body ended well.
    pub fn restore(&mut self, conn: Box<H1Conn>) {
        self.sender = Sender::Own(Some(conn));
    }
}

/// Sends requests on a connection: an HTTP/1.1 connection's (gatehouse's own client, or
/// hyper's for upgrades), or an HTTP/2 stream's, so the request path does not care which.
#[derive(Debug)]
pub enum Sender {
    /// `None` while a request is on it (its response body holds the connection).
    Own(Option<Box<H1Conn>>),
    Http1(http1::SendRequest<RequestBody>),
    Http2(Stream),
}

/// What sending a request resolves to.
pub type SendResult = Result<Response<UpstreamIncoming>, SendFailed>;

/// A request that got no response head.
#[derive(Debug)]
pub struct SendFailed {
    pub error: SendError,
    /// The request, when none of it was sent: it may go again. Boxed: it is rare, and a large
    /// error would be copied with every response.
    pub unsent: Option<Box<Request<RequestBody>>>,
}

/// Why a request got no response head.
#[derive(Debug)]
pub enum SendError {
    /// Classified by the own client.
    Own(Failure),
    Hyper(hyper::Error),
}

impl SendFailed {
    pub fn from_hyper(mut err: TrySendError<Request<RequestBody>>) -> Self {
        let unsent = err.take_message().map(Box::new);
        Self {
            error: SendError::Hyper(err.into_error()),
            unsent,
        }
    }

    /// The failure, classified with what was known about the connection.
    pub fn failure(&self, facts: HeadFacts) -> Failure {
        match &self.error {
            SendError::Own(failure) => failure.clone(),
            SendError::Hyper(err) => classify::response_head_error(err, facts),
        }
    }
}

impl Sender {
    /// Sends a request; a request that did not start to go out comes back in the error.
    // The error carries the request back, as hyper's does (hyper allows the lint too).
    #[allow(clippy::result_large_err)]
    ///
    /// The upstream's interim responses (102, 103 Early Hints, ...) go to `interim` as they come,
    /// hop-by-hop fields removed (RFC 9110 §15.2); they are never cached and never the request's
    /// status, only the final response is.
    pub fn try_send_request(
        &mut self,
        mut request: Request<RequestBody>,
        interim: Option<Interim>,
    ) -> impl Future<Output = SendResult> + use<> {
        if let (Some(interim), Self::Http1(_) | Self::Http2(_)) = (&interim, &*self) {
            relay_interim(&mut request, interim.clone());
        }
        match self {
            Self::Own(slot) => match slot.take() {
                Some(conn) => Either::Left(Either::Left(async move {
                    h1::send(conn, request, interim)
                        .await
                        .map(|response| response.map(UpstreamIncoming::Own))
                        .map_err(|failed| SendFailed {
                            error: SendError::Own(failed.failure),
                            unsent: failed.unsent,
                        })
                })),
                None => Either::Left(Either::Right(std::future::ready(Err(SendFailed {
                    error: SendError::Own(Failure::new(
                        FailureKind::ProxyInternalError,
                        Phase::SendingRequest,
                        "the connection is already carrying a request",
                    )),
                    unsent: Some(Box::new(request)),
                })))),
            },
            Self::Http1(sender) => Either::Right(Either::Left(
                sender.try_send_request(request).map(|result| {
                    result
                        .map(|response| response.map(UpstreamIncoming::Hyper))
                        .map_err(SendFailed::from_hyper)
                }),
            )),
            Self::Http2(stream) => Either::Right(Either::Right(stream.try_send_request(request))),
        }
    }

    /// [`Sender::try_send_request`], and with `keep_head` the request's header fields as they
    /// were sent, in `head`, for a request that may have to be sent again. They are handed back
    /// at once when the connection is done with them before the send starts (gatehouse's own
    /// client encodes the head of a request without a body here, and leaves its fields as they
    /// are), and are copied only for any other request. A request that comes back unsent after
    /// its fields were handed back has none: they are the ones in `head`.
    ///
    /// (`head` is filled in place rather than returned beside the future, which would then be
    /// moved once more before it is pinned.)
    pub fn try_send_request_keeping(
        &mut self,
        mut request: Request<RequestBody>,
        interim: Option<Interim>,
        keep_head: bool,
        head: &mut Option<HeaderMap>,
    ) -> impl Future<Output = SendResult> + use<> {
        if !keep_head {
            return Either::Right(self.try_send_request(request, interim));
        }
        if let Self::Own(slot) = self
            && h1::head::framing_keeps_fields(&request)
            && let Some(mut conn) = slot.take()
        {
            let started = h1::exchange::start(&mut conn, &mut request);
            *head = Some(std::mem::take(request.headers_mut()));
            return Either::Left(async move {
                h1::exchange::send_started(conn, started, request, interim)
                    .await
                    .map(|response| response.map(UpstreamIncoming::Own))
                    .map_err(|failed| SendFailed {
                        error: SendError::Own(failed.failure),
                        unsent: failed.unsent,
                    })
            });
        }
        *head = Some(request.headers().clone());
        Either::Right(self.try_send_request(request, interim))
    }

    /// Sends a request on a connection hyper drives (`gatehouse doctor`); `None` for the own
    /// client's (use [`Sender::try_send_request`]).
    pub fn send_request(
        &mut self,
        request: Request<RequestBody>,
    ) -> Option<impl Future<Output = Result<Response<Incoming>, hyper::Error>> + use<>> {
        match self {
            Self::Own(_) => None,
            Self::Http1(sender) => Some(Either::Left(sender.send_request(request))),
            Self::Http2(stream) => {
                let request = stream.prepare(request);
                Some(Either::Right(stream.sender.send_request(request)))
            }
        }
    }

    pub fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ()>> {
        match self {
            Self::Own(conn) => Poll::Ready(match conn.as_mut() {
                Some(conn) => {
                    if conn.is_idle_usable() {
                        Ok(())
                    } else {
                        Err(())
                    }
                }
                None => Err(()),
            }),
            Self::Http1(sender) => sender.poll_ready(cx).map_err(drop),
            Self::Http2(stream) => stream.sender.poll_ready(cx).map_err(drop),
        }
    }

    pub async fn ready(&mut self) -> Result<(), ()> {
        std::future::poll_fn(|cx| self.poll_ready(cx)).await
    }

    pub fn is_closed(&self) -> bool {
        match self {
            Self::Own(conn) => conn.is_none(),
            Self::Http1(sender) => sender.is_closed(),
            Self::Http2(stream) => stream.sender.is_closed(),
        }
    }
}

/// hyper calls back with each interim response.
fn relay_interim(request: &mut Request<RequestBody>, interim: Interim) {
    let relayed = std::sync::atomic::AtomicU32::new(0);
    hyper::ext::on_informational(request, move |response| {
        let count = relayed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if count >= crate::forward::MAX_INTERIM_RELAYED {
            return;
        }
        let mut headers = response.headers().clone();
        crate::forward::interim_fields(&mut headers);
        interim.send(response.status(), &headers);
    });
}

/// Polls the sender's readiness once without waiting.
pub(super) fn poll_ready_now(sender: &mut Sender) -> Poll<Result<(), ()>> {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    sender.poll_ready(&mut cx)
}
