//! The response bodies of an HTTP/2 connection, and the stall watch over its streams:
//! `client_write_timeout` for a stream the client stops taking through flow control while the
//! connection goes on.

use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

use super::h2_streams::{OpenStream, Streams};
use crate::body::ProxyBody;

/// A response body that keeps its HTTP/2 stream counted as open, shared with the connection's
/// [`StallWatch`], which may take it away.
#[derive(Debug)]
pub(super) struct Counted {
    sending: Arc<Mutex<Sending>>,
    _open: OpenStream,
}

/// An HTTP/2 response body and when its last frame went to the HTTP/2 engine.
#[derive(Debug)]
pub(super) struct Sending {
    /// `None` once the stall watch let go of it.
    body: Option<ProxyBody>,
    /// A frame was handed to the engine at this time and it has not asked for the next one: it
    /// asks only once the client's flow-control window has room again.
    handed: Option<Instant>,
}

impl Counted {
    /// An HTTP/2 stream's response body, counted open in `streams` and watched for stalls.
    pub(super) fn http2(body: ProxyBody, open: OpenStream) -> Self {
        let sending = Arc::new(Mutex::new(Sending {
            body: Some(body),
            handed: None,
        }));
        let streams = &open.0;
        let mut watched = streams.sending.lock().unwrap_or_else(|e| e.into_inner());
        // Bodies already sent are forgotten on the way (the list stays as long as the streams
        // open at once).
        watched.retain(|weak| weak.strong_count() > 0);
        let first = watched.is_empty();
        watched.push(Arc::downgrade(&sending));
        drop(watched);
        if first {
            streams.first_sending.notify_one();
        }
        Self {
            sending,
            _open: open,
        }
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
        let mut sending = self.sending.lock().unwrap_or_else(|e| e.into_inner());
        sending.handed = None;
        let Some(body) = sending.body.as_mut() else {
            return Poll::Ready(Some(Err(StreamStalled.into())));
        };
        let polled = Pin::new(body).poll_frame(cx);
        if let Poll::Ready(Some(Ok(_))) = &polled {
            sending.handed = Some(Instant::now());
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.sending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .body
            .as_ref()
            .is_some_and(http_body::Body::is_end_stream)
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.sending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .body
            .as_ref()
            .map(http_body::Body::size_hint)
            .unwrap_or_default()
    }
}

/// Why a stream's response ended: the stall watch let go of it.
#[derive(Debug, thiserror::Error)]
#[error("the client took nothing of this HTTP/2 stream for client_write_timeout")]
struct StreamStalled;

/// `client_write_timeout` for one HTTP/2 stream. A client can stop taking one stream by never
/// sending it a `WINDOW_UPDATE` while the connection goes on (so the connection's own write
/// timeout never fires); the stream's upstream connection would be held for as long as the
/// client likes. Once a second the watch looks at the streams being sent: one whose last frame
/// waited for the client's window longer than the timeout loses its body, which lets go of the
/// upstream connection (the access record says `client_aborted`); the client gets RST_STREAM
/// if it ever asks for more.
pub(super) struct StallWatch<'a> {
    streams: &'a Streams,
    timeout: Duration,
    period: Duration,
}

impl<'a> StallWatch<'a> {
    /// `None` when `timeout` is zero (no write timeout).
    pub(super) fn new(streams: &'a Streams, timeout: Duration) -> Option<Self> {
        if timeout.is_zero() {
            return None;
        }
        Some(Self {
            streams,
            timeout,
            period: timeout.min(Duration::from_secs(1)),
        })
    }

    /// Sweeps the stalled streams once a period while responses are being sent, and sleeps
    /// while none is (an idle connection costs no wake-ups); never resolves.
    pub(super) async fn run(watch: &mut Option<StallWatch<'_>>) {
        let Some(watch) = watch else {
            return std::future::pending().await;
        };
        loop {
            if watch.sweep() == 0 {
                watch.streams.first_sending.notified().await;
            }
            tokio::time::sleep(watch.period).await;
        }
    }

    /// Lets go of the stalled streams; how many responses are still being sent.
    fn sweep(&self) -> usize {
        let watched: Vec<Arc<Mutex<Sending>>> = {
            let mut sending = self
                .streams
                .sending
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            sending.retain(|weak| weak.strong_count() > 0);
            sending.iter().filter_map(Weak::upgrade).collect()
        };
        let now = Instant::now();
        let watched_count = watched.len();
        for sending in watched {
            let released = {
                let mut sending = sending.lock().unwrap_or_else(|e| e.into_inner());
                match sending.handed {
                    Some(at) if now.saturating_duration_since(at) >= self.timeout => {
                        sending.handed = None;
                        sending.body.take()
                    }
                    _ => None,
                }
            };
            if let Some(body) = released {
                // Dropped outside the lock: dropping closes the upstream side and logs.
                drop(body);
                tracing::info!(
                    reason = "write_timeout",
                    timeout = ?self.timeout,
                    "HTTP/2 client took nothing of a stream for client_write_timeout (flow control): its upstream connection was let go"
                );
            }
        }
        watched_count
    }
}
