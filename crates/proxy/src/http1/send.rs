//! Writing a response: its head and body framed for this hop, at the pace the client takes it;
//! and the lingering close after a refusal.

use std::io;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::Response;
use http_body::Body;

use super::io::Shared;
use super::pace::WritePace;
use super::write::{self, BodyFraming, RequestFacts};

/// How long unread request bytes are drained after a refusal, so that closing with them
/// unread does not reset the connection before the client has read the answer.
const LINGER: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 1024 * 1024;

/// Writes a response; `Ok(true)` when the connection is still framed for another request.
pub(super) async fn write_response<B>(
    shared: &Shared,
    response: Response<B>,
    request: RequestFacts<'_>,
    keep_alive: bool,
    pace: &mut WritePace,
) -> io::Result<bool>
where
    B: Body<Data = Bytes> + Unpin,
{
    let (parts, mut body) = response.into_parts();
    let exact = if body.is_end_stream() {
        Some(0)
    } else {
        body.size_hint().exact()
    };
    let framing = write::framing(request, parts.status, &parts.headers, exact);
    let keep_alive = keep_alive && framing != BodyFraming::UntilClose;
    let mut head = Vec::with_capacity(256 + parts.headers.len() * 32);
    write::encode_head(
        &mut head,
        parts.status,
        &parts.headers,
        framing,
        keep_alive,
        request.version,
    );
    drop(parts);
    if framing == BodyFraming::None {
        pace.write(shared, &mut [&head]).await?;
        return Ok(keep_alive);
    }
    let mut head = Some(head);
    let mut sent: u64 = 0;
    loop {
        // The head goes out with the first body bytes when they are at hand, else on its own.
        let polled =
            std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut body).poll_frame(cx))).await;
        let frame = match polled {
            Poll::Ready(frame) => frame,
            Poll::Pending => {
                if let Some(head) = head.take() {
                    pace.write(shared, &mut [&head]).await?;
                }
                std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
            }
        };
        let pending_head = head.take().unwrap_or_default();
        let data = match frame {
            None => {
                let tail: &[u8] = if framing == BodyFraming::Chunked {
                    b"0\r\n\r\n"
                } else {
                    b""
                };
                pace.write(shared, &mut [&pending_head, tail]).await?;
                if let BodyFraming::Length(length) = framing
                    && sent < length
                {
                    return Err(io::Error::other(format!(
                        "response body ended after {sent} of {length} bytes"
                    )));
                }
                return Ok(keep_alive);
            }
            Some(Err(_)) => {
                // hyper's behaviour: the head (if not yet out) goes, then the connection closes
                // short of the promised length or the last chunk, so the client sees the cut.
                pace.write(shared, &mut [&pending_head]).await?;
                return Err(io::Error::other("response body failed"));
            }
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => data,
                Err(_trailers) => {
                    pace.write(shared, &mut [&pending_head]).await?;
                    continue;
                }
            },
        };
        let end = body.is_end_stream();
        match framing {
            BodyFraming::Chunked => {
                let (line, n) = write::chunk_line(data.len());
                let line: &[u8] = if data.is_empty() { b"" } else { &line[..n] };
                let after: &[u8] = match (data.is_empty(), end) {
                    (true, true) => b"0\r\n\r\n",
                    (true, false) => b"",
                    (false, true) => b"\r\n0\r\n\r\n",
                    (false, false) => b"\r\n",
                };
                pace.write(shared, &mut [&pending_head, line, &data, after])
                    .await?;
            }
            BodyFraming::Length(length) => {
                let room = usize::try_from(length - sent).unwrap_or(usize::MAX);
                if data.len() > room {
                    pace.write(shared, &mut [&pending_head, &data[..room]])
                        .await?;
                    return Err(io::Error::other("response body longer than its length"));
                }
                pace.write(shared, &mut [&pending_head, &data]).await?;
            }
            BodyFraming::UntilClose | BodyFraming::None => {
                pace.write(shared, &mut [&pending_head, &data]).await?;
            }
        }
        sent += data.len() as u64;
        if end {
            if let BodyFraming::Length(length) = framing
                && sent < length
            {
                return Err(io::Error::other("response body ended early"));
            }
            return Ok(keep_alive);
        }
    }
}

/// Half-closes, then reads and drops what the client still sends, for a bounded time, so that
/// the answer is not destroyed by a reset from unread bytes (nginx's lingering close).
pub(super) async fn linger(shared: &Shared) {
    shared.socket.shutdown_write();
    let mut scratch = BytesMut::with_capacity(16 * 1024);
    let mut drained = 0;
    let _ = tokio::time::timeout(LINGER, async {
        while drained < LINGER_BYTES {
            scratch.clear();
            match std::future::poll_fn(|cx| shared.poll_read_buf(cx, &mut scratch)).await {
                Ok(0) | Err(_) => return,
                Ok(n) => drained += n,
            }
        }
    })
    .await;
}
