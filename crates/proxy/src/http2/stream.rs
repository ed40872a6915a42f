//! One HTTP/2 stream on its own task: wait for the handler's response (a client's RST_STREAM
//! meanwhile cancels it), send the head, then the body as the client's flow-control window
//! allows. A body that fails after the head resets the stream with `INTERNAL_ERROR`, so the
//! client sees the response was cut short (no END_STREAM, no trailers). A client that leaves a
//! stream's window shut for the stream write timeout (while the connection goes on, so the
//! connection's own write timeout never fires) gets the stream reset with `CANCEL`, and the
//! response's body, with the upstream connection feeding it, is let go.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Buf, Bytes};
use h2::SendStream;
use http::Response;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http_body::Body;
use tokio::time::Sleep;

use super::interim::Interim;
use super::server::ClientResets;

/// Fields that are about one HTTP/1.1 connection and have no place in HTTP/2
/// (RFC 9113 §8.2.2); `Connection` and the fields it names go too.
const CONNECTION_SPECIFIC: [HeaderName; 5] = [
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::TE,
];

/// Removes the fields an HTTP/2 response must not carry.
pub(super) fn strip_connection_fields(headers: &mut HeaderMap) {
    // A response rarely carries any of them (the pipeline strips an upstream's), and one look
    // at the few names there are costs less than a hashed removal per name.
    let carries_any = headers
        .keys()
        .any(|name| name == header::CONNECTION || CONNECTION_SPECIFIC.contains(name));
    if !carries_any {
        return;
    }
    for name in &CONNECTION_SPECIFIC {
        headers.remove(name);
    }
    if let Some(connection) = headers.remove(header::CONNECTION)
        && let Ok(names) = connection.to_str()
    {
        for name in names.split(',') {
            headers.remove(name.trim());
        }
    }
}

/// Answers one stream: polls the handler's future for its response, then sends the head and
/// the body. The handler's future (a pipeline's is kilobytes) is boxed where it is made, so
/// that it is copied once, into its box, and this small future is what tokio moves into the
/// task; the box is freed once the head is sent, not held while the body streams.
pub(super) struct Respond<F, B> {
    reply: Interim,
    write_timeout: Option<Duration>,
    state: State<F, B>,
    /// The connection's count of streams the client reset before their response.
    resets: Arc<ClientResets>,
}

enum State<F, B> {
    /// Waiting for the handler; a client's RST_STREAM meanwhile drops its future, which
    /// cancels the request in progress.
    Waiting {
        call: Pin<Box<F>>,
    },
    Sending {
        pipe: Pipe<B>,
    },
}

impl<F, B> Respond<F, B> {
    /// `call` is the handler's future for the stream's request; `reply` holds the stream's
    /// `SendResponse`.
    pub(super) fn new(
        call: Pin<Box<F>>,
        reply: Interim,
        write_timeout: Option<Duration>,
        resets: Arc<ClientResets>,
    ) -> Self {
        Self {
            reply,
            write_timeout,
            state: State::Waiting { call },
            resets,
        }
    }
}

impl<F, B> Future for Respond<F, B>
where
    F: Future<Output = Response<B>>,
    B: Body<Data = Bytes> + Unpin,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        loop {
            match &mut this.state {
                State::Waiting { call } => {
                    let Poll::Ready(response) = call.as_mut().poll(cx) else {
                        if let Poll::Ready(reason) = this.reply.poll_reset(cx) {
                            tracing::debug!(
                                ?reason,
                                "HTTP/2 stream reset by the client before its response"
                            );
                            this.resets.add();
                            // A 1xx that arrives later (a handle outlives this future) has
                            // no stream left to go on.
                            drop(this.reply.take());
                            return Poll::Ready(());
                        }
                        return Poll::Pending;
                    };
                    let Some(pipe) = send_head(&this.reply, response, this.write_timeout) else {
                        return Poll::Ready(());
                    };
                    this.state = State::Sending { pipe };
                }
                State::Sending { pipe } => {
                    if let Err(why) = ready!(pipe.poll(cx)) {
                        tracing::debug!(why, "HTTP/2 response body ended early");
                    }
                    return Poll::Ready(());
                }
            }
        }
    }
}

/// Sends the response head; the body's pipe when a body follows.
fn send_head<B>(
    reply: &Interim,
    response: Response<B>,
    write_timeout: Option<Duration>,
) -> Option<Pipe<B>>
where
    B: Body<Data = Bytes>,
{
    let mut respond = reply.take()?;
    let (mut parts, body) = response.into_parts();
    strip_connection_fields(&mut parts.headers);
    // A 204 never carries Content-Length (RFC 9110 §8.6), whatever the upstream sent.
    if parts.status == http::StatusCode::NO_CONTENT {
        parts.headers.remove(header::CONTENT_LENGTH);
    }
    if !parts.headers.contains_key(header::DATE) {
        parts
            .headers
            .insert(header::DATE, crate::date::header_value());
    }
    let last = body.is_end_stream();
    if !last && let Some(length) = body.size_hint().exact() {
        parts
            .headers
            .entry(header::CONTENT_LENGTH)
            .or_insert_with(|| HeaderValue::from(length));
    }
    match respond.send_response(Response::from_parts(parts, ()), last) {
        Ok(send) if !last => Some(Pipe {
            body,
            send,
            waiting: None,
            write_timeout,
            stalled: None,
        }),
        Ok(_) => None,
        Err(err) => {
            tracing::debug!(error = %err, "HTTP/2 response not sent");
            respond.send_reset(h2::Reason::INTERNAL_ERROR);
            None
        }
    }
}

impl<B> Pipe<B> {
    /// While a frame waits for the client's window: `Pending`, or, once the wait outlasted the
    /// write timeout, the stream reset and the pipe ended.
    fn poll_stalled(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), &'static str>> {
        let Some(timeout) = self.write_timeout else {
            return Poll::Pending;
        };
        let stalled = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        ready!(stalled.as_mut().poll(cx));
        self.send.send_reset(h2::Reason::CANCEL);
        tracing::info!(
            reason = "write_timeout",
            ?timeout,
            "HTTP/2 client took nothing of a stream for client_write_timeout (flow control): its upstream connection was let go"
        );
        Poll::Ready(Err("the client's window stayed shut"))
    }
}

/// A response body on its way into a stream.
struct Pipe<B> {
    body: B,
    send: SendStream<Bytes>,
    /// A DATA frame taken from the body, waiting for flow-control capacity, and whether it is
    /// the last.
    waiting: Option<(Bytes, bool)>,
    write_timeout: Option<Duration>,
    /// Armed while a frame waits for capacity: when the wait began plus `write_timeout`.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<B> Pipe<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    /// Ready once the body was sent whole (`Ok`), or it ended otherwise: the client reset the
    /// stream, the connection went, or the body failed (the stream is then reset).
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), &'static str>> {
        loop {
            // Watched while waiting for the body or for capacity: a client reset ends the
            // wait, and dropping the body lets go of what feeds it.
            if let Poll::Ready(reset) = self.send.poll_reset(cx) {
                tracing::debug!(reason = ?reset.ok(), "HTTP/2 stream reset by the client");
                return Poll::Ready(Err("reset by the client"));
            }
            if let Some((data, last)) = self.waiting.take() {
                if self.send.capacity() == 0 {
                    loop {
                        match self.send.poll_capacity(cx) {
                            Poll::Ready(Some(Ok(0))) => {}
                            Poll::Ready(Some(Ok(_))) => break,
                            Poll::Ready(Some(Err(_)) | None) => {
                                return Poll::Ready(Err(
                                    "stream closed while waiting for capacity",
                                ));
                            }
                            Poll::Pending => {
                                self.waiting = Some((data, last));
                                return self.poll_stalled(cx);
                            }
                        }
                    }
                }
                self.stalled = None;
                // h2 splits what exceeds the capacity and sends the rest as it comes.
                if self.send.send_data(data, last).is_err() {
                    return Poll::Ready(Err("stream closed"));
                }
                if last {
                    return Poll::Ready(Ok(()));
                }
                continue;
            }
            // The next frame is read from the body only when the last was handed to h2: the
            // body is not drained faster than the client takes it.
            match ready!(Pin::new(&mut self.body).poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => {
                        let last = self.body.is_end_stream();
                        if !data.has_remaining() {
                            if self.send.send_data(data, last).is_err() {
                                return Poll::Ready(Err("stream closed"));
                            }
                            if last {
                                return Poll::Ready(Ok(()));
                            }
                            continue;
                        }
                        // A small claim on the connection window, not the whole frame: h2
                        // raises it to what is buffered when the data is sent, and a claim
                        // for the whole frame would pin window other streams could use.
                        self.send.reserve_capacity(1);
                        self.waiting = Some((data, last));
                    }
                    Err(frame) => {
                        if let Ok(trailers) = frame.into_trailers() {
                            self.send.reserve_capacity(0);
                            return Poll::Ready(
                                self.send
                                    .send_trailers(trailers)
                                    .map_err(|_| "stream closed"),
                            );
                        }
                    }
                },
                Some(Err(_)) => {
                    self.send.send_reset(h2::Reason::INTERNAL_ERROR);
                    return Poll::Ready(Err("the response body failed"));
                }
                None => {
                    return Poll::Ready(
                        self.send
                            .send_data(Bytes::new(), true)
                            .map_err(|_| "stream closed"),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_specific_fields_and_those_connection_names_are_stripped() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("connection", "x-hop, Keep-Alive"),
            ("keep-alive", "timeout=5"),
            ("x-hop", "secret"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("te", "trailers"),
            ("proxy-connection", "keep-alive"),
            ("link", "</a.css>; rel=preload"),
        ] {
            headers.append(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        strip_connection_fields(&mut headers);
        let left: Vec<_> = headers.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, ["link"]);
    }

    /// Each connection-specific field goes even without a `Connection` field beside it, and
    /// a response with none of them keeps what it has.
    #[test]
    fn each_connection_specific_field_alone_is_stripped() {
        for name in &CONNECTION_SPECIFIC {
            let mut headers = HeaderMap::new();
            headers.append(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            headers.append(name.clone(), HeaderValue::from_static("x"));
            strip_connection_fields(&mut headers);
            let left: Vec<_> = headers.keys().map(HeaderName::as_str).collect();
            assert_eq!(left, ["content-type"], "{name}");
        }
        let mut headers = HeaderMap::new();
        headers.append(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        headers.append(header::CONTENT_LENGTH, HeaderValue::from_static("3"));
        strip_connection_fields(&mut headers);
        assert_eq!(headers.len(), 2);
    }
}
