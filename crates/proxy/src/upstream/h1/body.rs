//! The response body of an [`H1Conn`] exchange, read from the socket by whoever forwards it.
//! It owns the connection until the body ended: then a connection that may carry another
//! request is taken back for the pool ([`ResponseBody::reusable_conn`]). While the body
//! streams, the rest of the request body is still written (a server may answer before it read
//! the whole request, and an echoing one needs the rest to go on).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use super::H1Conn;
use super::head::ResponseFraming;
use crate::failure::Failure;
use crate::failure::classify;
use crate::http1::chunked::{ChunkedDecoder, Step};

/// Where the body stands.
#[derive(Debug)]
enum State {
    /// Bytes still to come of a Content-Length body.
    Length(u64),
    Chunked(ChunkedDecoder),
    UntilClose,
    /// The body ended (or never had bytes).
    Ended,
}

/// A response body streamed from an upstream HTTP/1.1 connection.
#[derive(Debug)]
pub struct ResponseBody {
    conn: Option<Box<H1Conn>>,
    state: State,
    /// Both sides let the connection carry another request (no `Connection: close`, no
    /// HTTP/1.0 without keep-alive, not a read-until-close body).
    keep_alive: bool,
}

impl ResponseBody {
    pub(super) fn new(conn: Box<H1Conn>, framing: ResponseFraming, keep_alive: bool) -> Self {
        let state = match framing {
            ResponseFraming::None | ResponseFraming::Length(0) => State::Ended,
            ResponseFraming::Length(n) => State::Length(n),
            ResponseFraming::Chunked => State::Chunked(ChunkedDecoder::default()),
            ResponseFraming::UntilClose => State::UntilClose,
        };
        Self {
            conn: Some(conn),
            keep_alive: keep_alive && framing != ResponseFraming::UntilClose,
            state,
        }
    }

    /// The connection, once the body ended well and it may carry another request; `None`
    /// otherwise (it closes when the body is dropped).
    pub fn reusable_conn(&mut self) -> Option<Box<H1Conn>> {
        if !matches!(self.state, State::Ended) || !self.keep_alive {
            return None;
        }
        let mut conn = self.conn.take()?;
        if !super::reusable(&conn) {
            return None;
        }
        conn.finished_exchange();
        Some(conn)
    }

    /// The body ended well.
    fn end(&mut self) -> Poll<Option<Result<Frame<Bytes>, Failure>>> {
        self.state = State::Ended;
        Poll::Ready(None)
    }

    /// The body broke off: the connection is done.
    fn fail(&mut self, failure: Failure) -> Poll<Option<Result<Frame<Bytes>, Failure>>> {
        self.state = State::Ended;
        self.keep_alive = false;
        self.conn = None;
        Poll::Ready(Some(Err(failure)))
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = Failure;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Failure>>> {
        let this = &mut *self;
        if matches!(this.state, State::Ended) {
            return Poll::Ready(None);
        }
        let Some(conn) = this.conn.as_mut() else {
            return Poll::Ready(None);
        };
        if conn.is_sending() {
            // A failure here leaves the connection broken (never reused); the response goes on.
            let _ = conn.poll_send(cx);
        }
        loop {
            match &mut this.state {
                State::Ended => return Poll::Ready(None),
                State::Length(left) => {
                    if !conn.buf.is_empty() {
                        let take = usize::try_from(*left)
                            .unwrap_or(usize::MAX)
                            .min(conn.buf.len());
                        let data = conn.buf.split_to(take).freeze();
                        *left -= take as u64;
                        if *left == 0 {
                            this.state = State::Ended;
                        }
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                }
                State::Chunked(decoder) => match decoder.decode(&mut conn.buf) {
                    Ok(Step::Data(data)) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                    Ok(Step::End) => return this.end(),
                    Ok(Step::NeedMore) => {}
                    Err(err) => return this.fail(classify::body_transfer_coding(&err)),
                },
                State::UntilClose => {
                    if !conn.buf.is_empty() {
                        let data = conn.buf.split().freeze();
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                }
            }
            match conn.poll_fill(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(0)) => {
                    return if matches!(this.state, State::UntilClose) {
                        this.keep_alive = false;
                        this.end()
                    } else {
                        this.fail(classify::body_ended_early(None))
                    };
                }
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(err)) => return this.fail(classify::body_ended_early(Some(&err))),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, State::Ended)
    }

    fn size_hint(&self) -> SizeHint {
        match self.state {
            State::Length(left) => SizeHint::with_exact(left),
            State::Ended => SizeHint::with_exact(0),
            State::Chunked(_) | State::UntilClose => SizeHint::default(),
        }
    }
}
