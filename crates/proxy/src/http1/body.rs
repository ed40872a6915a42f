//! A request body read straight from the client's socket, on whichever task polls it.
//!
//! It borrows the connection's read buffer (bytes that arrived with the head come first) and
//! gives it back when it ends, with what arrived after the body still in it; dropped before its
//! end, it reports the connection unframed, and the loop closes it.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use http_body::{Frame, SizeHint};

use super::chunked::{ChunkedDecoder, Step};
use super::interim::Interim;
use super::io::{Returned, Shared};

/// How much is read at once while a body streams.
const READ_CHUNK: usize = 64 * 1024;

/// Why a request body could not be read to its end.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("invalid chunked encoding in the request body: {0}")]
    Chunked(#[from] super::chunked::ChunkError),
    #[error("the client closed the connection before sending the whole request body")]
    Closed,
    #[error("reading the request body failed: {0}")]
    Io(#[from] std::io::Error),
}

impl BodyError {
    /// The client went away (closed or reset its connection) rather than sent a bad body.
    pub fn is_client_gone(&self) -> bool {
        match self {
            Self::Closed => true,
            Self::Io(err) => matches!(
                err.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::UnexpectedEof
            ),
            Self::Chunked(_) => false,
        }
    }
}

#[derive(Debug)]
enum Kind {
    Length(u64),
    Chunked(ChunkedDecoder),
}

/// The body of a request received by the HTTP/1.1 engine. Small (most requests have no body,
/// and the request it is part of is moved through every phase of the pipeline): what a body
/// being read needs is boxed.
#[derive(Debug)]
pub struct RequestBody {
    /// The body still to be read; `None` when there is none, and once it was read whole (or
    /// failed) and the connection's buffer went back.
    reading: Option<Box<Reading>>,
    /// Where the request's interim responses go (HTTP/1.1 requests).
    interim: Option<Interim>,
}

#[derive(Debug)]
struct Reading {
    shared: Arc<Shared>,
    buf: BytesMut,
    kind: Kind,
    /// `100 Continue` is owed before the client sends the body.
    expect_continue: bool,
}

impl RequestBody {
    /// No body (no Content-Length, or zero, and no Transfer-Encoding).
    pub fn empty() -> Self {
        Self {
            reading: None,
            interim: None,
        }
    }

    /// Lets whoever forwards the request relay interim responses to the client.
    #[must_use]
    pub(super) fn with_interim(mut self, interim: Option<Interim>) -> Self {
        self.interim = interim;
        self
    }

    /// The handle for relaying interim (1xx) responses; `None` for an HTTP/1.0 client.
    pub fn interim(&self) -> Option<Interim> {
        self.interim.clone()
    }

    pub(super) fn length(
        shared: Arc<Shared>,
        buf: BytesMut,
        length: u64,
        expect_continue: bool,
    ) -> Self {
        Self::reading(shared, buf, Kind::Length(length), expect_continue)
    }

    pub(super) fn chunked(shared: Arc<Shared>, buf: BytesMut, expect_continue: bool) -> Self {
        let kind = Kind::Chunked(ChunkedDecoder::default());
        Self::reading(shared, buf, kind, expect_continue)
    }

    fn reading(shared: Arc<Shared>, buf: BytesMut, kind: Kind, expect_continue: bool) -> Self {
        let reading = Reading {
            shared,
            buf,
            kind,
            expect_continue,
        };
        Self {
            reading: Some(Box::new(reading)),
            interim: None,
        }
    }

    /// Hands the buffer back to the connection (once).
    fn give_back(&mut self) {
        if let Some(reading) = self.reading.take() {
            let complete = reading.is_complete();
            let Reading { shared, buf, .. } = *reading;
            let buf = if complete { buf } else { BytesMut::new() };
            shared.give_back(Returned { buf, complete });
        }
    }
}

impl Reading {
    fn is_complete(&self) -> bool {
        match &self.kind {
            Kind::Length(left) => *left == 0,
            Kind::Chunked(decoder) => decoder.is_done(),
        }
    }

    fn poll_more(&mut self, cx: &mut Context<'_>, want: usize) -> Poll<Result<(), BodyError>> {
        if self.buf.capacity() - self.buf.len() < want {
            self.buf.reserve(want);
        }
        match self.shared.poll_read_buf(cx, &mut self.buf) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(0)) => Poll::Ready(Err(BodyError::Closed)),
            Poll::Ready(Ok(_)) => Poll::Ready(Ok(())),
            Poll::Ready(Err(err)) => Poll::Ready(Err(err.into())),
        }
    }

    /// The next piece of the body: `Ok(None)` at its end.
    fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, BodyError>> {
        if std::mem::take(&mut self.expect_continue) && self.buf.is_empty() {
            self.shared.continue_wanted.raise();
        }
        loop {
            let result = match &mut self.kind {
                Kind::Length(0) => Ok(None),
                Kind::Length(left) if !self.buf.is_empty() => {
                    let take = usize::try_from(*left)
                        .unwrap_or(usize::MAX)
                        .min(self.buf.len());
                    *left -= take as u64;
                    Ok(Some(self.buf.split_to(take).freeze()))
                }
                Kind::Length(left) => {
                    let want = usize::try_from(*left).unwrap_or(READ_CHUNK).min(READ_CHUNK);
                    match self.poll_more(cx, want) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Ok(())) => continue,
                        Poll::Ready(Err(err)) => Err(err),
                    }
                }
                Kind::Chunked(decoder) => match decoder.decode(&mut self.buf) {
                    Ok(Step::Data(data)) => Ok(Some(data)),
                    Ok(Step::End) => Ok(None),
                    Err(err) => Err(err.into()),
                    Ok(Step::NeedMore) => match self.poll_more(cx, READ_CHUNK.min(8192)) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Ok(())) => continue,
                        Poll::Ready(Err(err)) => Err(err),
                    },
                },
            };
            return Poll::Ready(result);
        }
    }
}

impl http_body::Body for RequestBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        let Some(reading) = this.reading.as_mut() else {
            return Poll::Ready(None);
        };
        let result = ready!(reading.poll_data(cx));
        let complete = reading.is_complete();
        Poll::Ready(match result {
            Ok(Some(data)) => {
                if complete {
                    this.give_back();
                }
                Some(Ok(Frame::data(data)))
            }
            Ok(None) => {
                this.give_back();
                None
            }
            Err(err) => {
                this.give_back();
                Some(Err(err))
            }
        })
    }

    fn is_end_stream(&self) -> bool {
        self.reading
            .as_ref()
            .is_none_or(|reading| reading.is_complete())
    }

    fn size_hint(&self) -> SizeHint {
        match self.reading.as_ref().map(|reading| &reading.kind) {
            None => SizeHint::with_exact(0),
            Some(Kind::Length(left)) => SizeHint::with_exact(*left),
            Some(Kind::Chunked(_)) => SizeHint::default(),
        }
    }
}

impl Drop for RequestBody {
    fn drop(&mut self) {
        self.give_back();
    }
}
