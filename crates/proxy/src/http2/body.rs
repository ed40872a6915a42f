//! An HTTP/2 request body: DATA frames as they arrive, then the trailers. The flow-control
//! capacity of each frame is given back as soon as the frame is handed on, so the client's
//! window refills at the pace the request is forwarded (the stream's window is what bounds
//! the bytes held per request). `h2` itself refuses a body longer or shorter than its
//! `Content-Length` (RFC 9113 §8.1.1).

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use super::interim::Interim;

/// The body of one HTTP/2 request.
#[derive(Debug)]
pub struct RequestBody {
    recv: h2::RecvStream,
    /// The request's `Content-Length`, when it gave a valid one.
    content_length: Option<u64>,
    /// The DATA frames have ended; trailers (if any) come next.
    data_done: bool,
    /// The client waits for `100 Continue` before it sends the body.
    expect_continue: bool,
    interim: Interim,
}

impl RequestBody {
    pub(super) fn new(
        recv: h2::RecvStream,
        content_length: Option<u64>,
        expect_continue: bool,
        interim: Interim,
    ) -> Self {
        Self {
            expect_continue: expect_continue && !recv.is_end_stream(),
            recv,
            content_length,
            data_done: false,
            interim,
        }
    }

    /// The handle for relaying interim (1xx) responses to the client of this stream.
    pub fn interim(&self) -> Interim {
        self.interim.clone()
    }
}

/// A stream the client reset with `NO_ERROR` after the response began: it needs no more of
/// the request body (RFC 9113 §8.1), which is then complete as far as it went.
fn is_no_error(err: &h2::Error) -> bool {
    err.reason() == Some(h2::Reason::NO_ERROR)
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = h2::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, h2::Error>>> {
        let this = self.get_mut();
        if this.expect_continue {
            this.expect_continue = false;
            this.interim.send_continue();
        }
        if !this.data_done {
            match ready!(this.recv.poll_data(cx)) {
                Some(Ok(data)) => {
                    // Cannot fail for capacity this stream was given.
                    let _ = this.recv.flow_control().release_capacity(data.len());
                    if let Some(left) = this.content_length.as_mut() {
                        *left = left.saturating_sub(data.len() as u64);
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Some(Err(err)) if is_no_error(&err) => return Poll::Ready(None),
                Some(Err(err)) => return Poll::Ready(Some(Err(err))),
                None => this.data_done = true,
            }
        }
        match ready!(this.recv.poll_trailers(cx)) {
            Ok(Some(trailers)) => Poll::Ready(Some(Ok(Frame::trailers(trailers)))),
            Ok(None) => Poll::Ready(None),
            Err(err) if is_no_error(&err) => Poll::Ready(None),
            Err(err) => Poll::Ready(Some(Err(err))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.recv.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        if self.recv.is_end_stream() {
            return SizeHint::with_exact(0);
        }
        self.content_length
            .map_or_else(SizeHint::default, SizeHint::with_exact)
    }
}
