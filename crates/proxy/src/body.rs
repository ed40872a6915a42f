//! The body of every response gatehouse sends downstream, streamed without buffering it whole.
//!
//! [`ProxyBody`] is a generated body, or the upstream's body wrapped in [`UpstreamBody`], which
//! enforces `read_timeout`, classifies mid-body failures, returns the connection to the pool
//! after a complete body, and emits the access record when the response ends. A failure after
//! the headers went out is returned to hyper as an error, which aborts the downstream response
//! (no final chunk; the connection closes short of Content-Length), so a truncated body never
//! looks complete.
//!
//! The other direction, the client's body on its way upstream, is
//! [`RequestBody`](crate::client_body::RequestBody), below the upstream layer that sends it.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use crate::cache::capture::Capture;
use crate::client_body::IdleTimer;
use crate::compress::body::CodedBody;
pub use crate::failure::marker::BoxError;
use crate::failure::{Failure, FailureKind, Phase};
use crate::observe::access_log::{AccessRecord, AttemptContext};
use crate::upstream::conn::Conn;
use crate::upstream::incoming::UpstreamIncoming;
use crate::upstream::pool::{Members, Pool};
use crate::upstream::server::Lease;

/// A failure that aborted the downstream response after its headers were sent.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct AbortedResponse(pub Failure);

// === ProxyBody ===

/// The body of every response gatehouse sends downstream.
#[derive(Debug)]
pub enum ProxyBody {
    /// A body gatehouse generated (error pages, admin endpoints); `None` once sent.
    Full(Option<Bytes>),
    Upstream(UpstreamBody),
    /// Either of the others, compressed or decompressed on its way out.
    Coded(Box<CodedBody>),
}

impl ProxyBody {
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        Self::Full((!bytes.is_empty()).then_some(bytes))
    }

    pub fn empty() -> Self {
        Self::Full(None)
    }

    /// The layer that wraps this body (compression) finishes the exchange: an upstream body
    /// that ends waits for [`ProxyBody::release`] before it writes its access record, so that
    /// a failure found above it (a compressed body that does not decode) is recorded as its
    /// own, and the record's times cover the whole response.
    pub fn hold_completion(&mut self) {
        if let Self::Upstream(body) = self {
            body.hold = true;
        }
    }

    /// Finishes a held upstream body (see [`ProxyBody::hold_completion`]): complete, or failed
    /// with `failure` (recorded, its connection closed).
    pub fn release(&mut self, failure: Option<&Failure>) {
        if let Self::Upstream(body) = self {
            body.complete(failure);
        }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            Self::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Self::Upstream(body) => Pin::new(body).poll_frame(cx),
            Self::Coded(body) => Pin::new(&mut **body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Full(bytes) => bytes.is_none(),
            Self::Upstream(body) => body.is_end_stream(),
            Self::Coded(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Self::Upstream(body) => body.size_hint(),
            Self::Coded(body) => body.size_hint(),
        }
    }
}

/// What an upstream body needs to finish its request once the last byte passed (or failed).
#[derive(Debug)]
pub struct Finish {
    pub record: AccessRecord,
    pub conn: Conn,
    /// The server's connection slot, freed when the response ends.
    pub lease: Lease,
    pub pool: Arc<Pool>,
    /// The pool's servers as the request saw them (for the passive-health ejection cap).
    pub members: Arc<Members>,
    /// Whether the response used chunked framing (a body decode error is then a
    /// transfer-coding failure).
    pub chunked: bool,
    /// A copy of the body for the cache or the robots.txt guard, stored once it is complete.
    pub capture: Option<Box<Capture>>,
}

/// What was read of a body before it was handed downstream. Kept small: the body that holds
/// it is part of every response the pipeline moves.
#[derive(Debug)]
pub enum Peeked {
    Data(Bytes),
    /// Any other frame (trailers straight away): rare, so boxed.
    Other(Box<Frame<Bytes>>),
    /// The body had already ended (no bytes).
    End,
}

impl Peeked {
    pub fn frame(frame: Frame<Bytes>) -> Self {
        match frame.into_data() {
            Ok(data) => Self::Data(data),
            Err(frame) => Self::Other(Box::new(frame)),
        }
    }

    /// The frame; `None` for the end of the body.
    fn into_frame(self) -> Option<Frame<Bytes>> {
        match self {
            Self::Data(data) => Some(Frame::data(data)),
            Self::Other(frame) => Some(*frame),
            Self::End => None,
        }
    }
}

/// The upstream's response body on its way downstream.
#[derive(Debug)]
pub struct UpstreamBody {
    inner: UpstreamIncoming,
    /// Read ahead (see [`UpstreamBody::starting_with`]); given out before `inner` is polled.
    first: Option<Peeked>,
    read_timeout: Duration,
    idle: IdleTimer,
    finish: Option<Box<Finish>>,
    /// Completion waits for the wrapping body (see [`ProxyBody::hold_completion`]).
    hold: bool,
    /// The body ended well while `hold`: it gives no more frames, and completes on release.
    ended: bool,
}

impl UpstreamBody {
    /// `finish` comes boxed: the body keeps it so until it ends.
    pub fn new(inner: UpstreamIncoming, read_timeout: Duration, finish: Box<Finish>) -> Self {
        Self {
            inner,
            first: None,
            read_timeout,
            idle: IdleTimer::default(),
            finish: Some(finish),
            hold: false,
            ended: false,
        }
    }

    /// The body ended well: complete now, or once released when held.
    fn ended_well(&mut self) {
        if self.hold {
            self.ended = true;
        } else {
            self.complete(None);
        }
    }

    /// Gives out `first`, read from the body already, before the rest of it.
    #[must_use]
    pub fn starting_with(mut self, first: Option<Peeked>) -> Self {
        self.first = first;
        self
    }

    /// Counts a data frame passing downstream (and copies it for the cache).
    fn passing(&mut self, frame: &Frame<Bytes>) {
        if let (Some(data), Some(finish)) = (frame.data_ref(), self.finish.as_mut()) {
            finish.record.body_bytes += data.len() as u64;
            if let Some(capture) = finish.capture.as_mut() {
                capture.data(data);
            }
        }
    }

    /// The response ended: a complete body returns the connection to the pool; a failure logs
    /// its warning and records its kind. Either way the access record is written once.
    fn complete(&mut self, failure: Option<&Failure>) {
        let Some(finish) = self.finish.take() else {
            return;
        };
        let Finish {
            mut record,
            mut conn,
            lease,
            pool,
            members,
            capture,
            ..
        } = *finish;
        let server = &lease.server;
        match failure {
            None => {
                // gatehouse's own client: the connection comes back from the body.
                if let Some(own) = self.inner.reusable_conn() {
                    conn.restore(own);
                }
                server.checkin(conn);
                if let Some(capture) = capture {
                    capture.complete();
                }
            }
            Some(failure) => {
                record.failure = Some(failure.kind.token());
                record.upstream_aborted = true;
                pool.record_outcome(&members, server, Some(failure.kind));
                pool.observer.failure(
                    failure,
                    &AttemptContext {
                        request_id: &record.request_id,
                        route: record.route.as_deref(),
                        pool: Some(&pool.name),
                        server: Some(&server.label),
                        attempt: record.attempts,
                        request_sent: true,
                    },
                );
                drop(conn);
            }
        }
        pool.observer.finished(record);
    }

    fn fail(&mut self, failure: Failure) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.complete(Some(&failure));
        Poll::Ready(Some(Err(Box::new(AbortedResponse(failure)))))
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if this.finish.is_none() || this.ended {
            return Poll::Ready(None);
        }
        match this.first.take().map(Peeked::into_frame) {
            Some(Some(frame)) => {
                this.passing(&frame);
                if this.inner.is_end_stream() {
                    this.ended_well();
                }
                return Poll::Ready(Some(Ok(frame)));
            }
            Some(None) => {
                this.ended_well();
                return Poll::Ready(None);
            }
            None => {}
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.idle.disarm();
                this.passing(&frame);
                if this.inner.is_end_stream() {
                    this.ended_well();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(None) => {
                this.ended_well();
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(err))) => {
                let chunked = this.finish.as_ref().is_some_and(|f| f.chunked);
                this.fail(err.into_failure(chunked))
            }
            Poll::Pending => {
                let timeout = this.read_timeout;
                ready!(this.idle.poll_expired(cx, timeout));
                this.fail(Failure::new(
                    FailureKind::ConnectionReadTimeout,
                    Phase::ReadingResponseBody,
                    format!("upstream sent no response body bytes for {timeout:?}"),
                ))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.first {
            Some(Peeked::Data(_) | Peeked::Other(_)) => false,
            Some(Peeked::End) => true,
            None => self.finish.is_none() || self.ended || self.inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        let rest = self.inner.size_hint();
        match &self.first {
            Some(first @ (Peeked::Data(_) | Peeked::Other(_))) => {
                let first = match first {
                    Peeked::Data(data) => data.len() as u64,
                    Peeked::Other(_) | Peeked::End => 0,
                };
                let mut hint = SizeHint::new();
                hint.set_lower(rest.lower() + first);
                if let Some(upper) = rest.upper() {
                    hint.set_upper(upper + first);
                }
                hint
            }
            Some(Peeked::End) => SizeHint::with_exact(0),
            None => rest,
        }
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        let Some(finish) = self.finish.as_mut() else {
            return;
        };
        if self.ended {
            // Read whole, but the wrapping body was not finished: the client went away while
            // the rest of the (compressed) response was on its way. The connection is reusable.
            finish.record.client_aborted = true;
            self.complete(None);
            return;
        }
        let ended = match self.first {
            Some(Peeked::End) => true,
            Some(Peeked::Data(_) | Peeked::Other(_)) => false,
            // A chunked `Incoming` never says it ended before it is polled to its end.
            None => self.inner.is_end_stream(),
        };
        if ended {
            // Bodiless responses (HEAD, 204, 304) are never polled; the exchange is complete.
            self.complete(None);
        } else {
            // The client went away mid-response; the connection has unread bytes and is dropped.
            finish.record.client_aborted = true;
            let finish = self.finish.take();
            if let Some(finish) = finish {
                let Finish { record, pool, .. } = *finish;
                pool.observer.finished(record);
            }
        }
    }
}
