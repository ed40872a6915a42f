//! A request body read straight from the client's socket, on whichever task polls it.
//!
//! It borrows the connection's read buffer (bytes that arrived with the head come first) and
//! gives it back when it ends, with what arrived after the body still in it; dropped before its
//! end, it reports the connection unframed, and the loop closes it.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

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

#[derive(Debug)]
enum Kind {
    Length(u64),
    Chunked(ChunkedDecoder),
}

/// The body of a request received by the HTTP/1.1 engine.
#[derive(Debug)]
pub struct RequestBody {
    shared: Option<Arc<Shared>>,
    buf: BytesMut,
    kind: Kind,
    /// `100 Continue` is owed before the client sends the body.
    expect_continue: bool,
    /// Where the request's interim responses go (HTTP/1.1 requests).
    interim: Option<Interim>,
}

impl RequestBody {
    /// No body (no Content-Length, or zero, and no Transfer-Encoding).
    pub fn empty() -> Self {
        Self {
            shared: None,
            buf: BytesMut::new(),
            kind: Kind::Length(0),
            expect_continue: false,
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
        Self {
            shared: Some(shared),
            buf,
            kind: Kind::Length(length),
            expect_continue,
            interim: None,
        }
    }

    pub(super) fn chunked(shared: Arc<Shared>, buf: BytesMut, expect_continue: bool) -> Self {
        Self {
            shared: Some(shared),
            buf,
            kind: Kind::Chunked(ChunkedDecoder::default()),
            expect_continue,
            interim: None,
        }
    }

    fn is_complete(&self) -> bool {
        match &self.kind {
            Kind::Length(left) => *left == 0,
            Kind::Chunked(decoder) => decoder.is_done(),
        }
    }

    /// Hands the buffer back to the connection (once).
    fn give_back(&mut self) {
        if let Some(shared) = self.shared.take() {
            let complete = self.is_complete();
            let buf = if complete {
                std::mem::take(&mut self.buf)
            } else {
                BytesMut::new()
            };
            shared.give_back(Returned { buf, complete });
        }
    }

    fn poll_more(&mut self, cx: &mut Context<'_>, want: usize) -> Poll<Result<(), BodyError>> {
        let Some(shared) = &self.shared else {
            return Poll::Ready(Err(BodyError::Closed));
        };
        if self.buf.capacity() - self.buf.len() < want {
            self.buf.reserve(want);
        }
        match shared.poll_read_buf(cx, &mut self.buf) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(0)) => Poll::Ready(Err(BodyError::Closed)),
            Poll::Ready(Ok(_)) => Poll::Ready(Ok(())),
            Poll::Ready(Err(err)) => Poll::Ready(Err(err.into())),
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
        if this.shared.is_none() {
            return Poll::Ready(None);
        }
        if std::mem::take(&mut this.expect_continue)
            && this.buf.is_empty()
            && let Some(shared) = &this.shared
        {
            shared.continue_wanted.raise();
        }
        loop {
            let result = match &mut this.kind {
                Kind::Length(0) => Ok(None),
                Kind::Length(left) if !this.buf.is_empty() => {
                    let take = usize::try_from(*left)
                        .unwrap_or(usize::MAX)
                        .min(this.buf.len());
                    *left -= take as u64;
                    Ok(Some(this.buf.split_to(take).freeze()))
                }
                Kind::Length(left) => {
                    let want = usize::try_from(*left).unwrap_or(READ_CHUNK).min(READ_CHUNK);
                    match this.poll_more(cx, want) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Ok(())) => continue,
                        Poll::Ready(Err(err)) => Err(err),
                    }
                }
                Kind::Chunked(decoder) => match decoder.decode(&mut this.buf) {
                    Ok(Step::Data(data)) => Ok(Some(data)),
                    Ok(Step::End) => Ok(None),
                    Err(err) => Err(err.into()),
                    Ok(Step::NeedMore) => match this.poll_more(cx, READ_CHUNK.min(8192)) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Ok(())) => continue,
                        Poll::Ready(Err(err)) => Err(err),
                    },
                },
            };
            return Poll::Ready(match result {
                Ok(Some(data)) => {
                    if this.is_complete() {
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
            });
        }
    }

    fn is_end_stream(&self) -> bool {
        self.shared.is_none() || self.is_complete()
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Length(left) => SizeHint::with_exact(*left),
            Kind::Chunked(_) => SizeHint::default(),
        }
    }
}

impl Drop for RequestBody {
    fn drop(&mut self) {
        self.give_back();
    }
}
