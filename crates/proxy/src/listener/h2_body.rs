//! The response body of an HTTP/2 stream, which keeps the stream counted as open (for the idle
//! watch, `h2_streams`) until the engine is done with it: sent whole, reset, or let go after
//! the stream's write timeout (`http2::stream`).

use std::pin::Pin;
use std::task::{Context, Poll};

use super::h2_streams::OpenStream;
use crate::body::ProxyBody;

/// A response body that keeps its HTTP/2 stream counted as open.
#[derive(Debug)]
pub(super) struct Counted {
    body: ProxyBody,
    _open: OpenStream,
}

impl Counted {
    pub(super) fn http2(body: ProxyBody, open: OpenStream) -> Self {
        Self { body, _open: open }
    }
}

impl http_body::Body for Counted {
    type Data = bytes::Bytes;
    type Error = crate::body::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        // An error passed up here (a failure after the head went out) is what makes the engine
        // reset the stream with RST_STREAM(INTERNAL_ERROR). No Proxy-Status trailer is sent
        // instead: a trailer section ends the stream (END_STREAM) and would make the truncated
        // body look complete.
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
