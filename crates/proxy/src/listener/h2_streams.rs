//! Counting a connection's open HTTP/2 streams, the idle watch that sends GOAWAY to a
//! connection that had none open for a whole period, and the stall watch that lets go of a
//! stream's upstream when the client stops taking that stream alone.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Interval, MissedTickBehavior};

use crate::body::ProxyBody;

/// The streams (requests) of one connection: how many are open now, how many were opened.
#[derive(Debug, Default)]
pub(super) struct Streams {
    open: AtomicUsize,
    opened: AtomicU64,
    /// The response bodies being sent, for the stall watch.
    sending: Mutex<Vec<Weak<Mutex<Sending>>>>,
    /// A body was added to an empty `sending`: the stall watch, asleep while there is none,
    /// starts looking again.
    first_sending: tokio::sync::Notify,
}

/// One open stream's place in [`Streams`], held by its request and then by its response
/// body until hyper is done with it (sent completely, or reset).
#[derive(Debug)]
pub(super) struct OpenStream(Arc<Streams>);

impl OpenStream {
    pub(super) fn new(streams: &Arc<Streams>) -> Self {
        streams.open.fetch_add(1, Ordering::Relaxed);
        streams.opened.fetch_add(1, Ordering::Relaxed);
        Self(Arc::clone(streams))
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A response body that keeps its HTTP/2 stream counted as open (HTTP/1.1: no count). Over
/// HTTP/2 the body is shared with the connection's [`StallWatch`], which may take it away.
#[derive(Debug)]
pub(super) struct Counted {
    body: Held,
    _open: Option<OpenStream>,
}

#[derive(Debug)]
enum Held {
    Own(ProxyBody),
    Watched(Arc<Mutex<Sending>>),
}

/// An HTTP/2 response body and when its last frame went to hyper.
#[derive(Debug)]
pub(super) struct Sending {
    /// `None` once the stall watch let go of it.
    body: Option<ProxyBody>,
    /// A frame was handed to hyper at this time and hyper has not asked for the next one:
    /// hyper asks only once the client's flow-control window has room again.
    handed: Option<Instant>,
}

impl Counted {
    /// An HTTP/1.1 response body.
    pub(super) fn http1(body: ProxyBody) -> Self {
        Self {
            body: Held::Own(body),
            _open: None,
        }
    }

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
            body: Held::Watched(sending),
            _open: Some(open),
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
        // An error passed up here (a failure after the head went out) is what makes hyper
        // reset an HTTP/2 stream with RST_STREAM(INTERNAL_ERROR), or cut an HTTP/1.1 response
        // short. No Proxy-Status trailer is sent instead: a trailer section ends the stream
        // (END_STREAM) and would make the truncated body look complete.
        match &mut self.get_mut().body {
            Held::Own(body) => Pin::new(body).poll_frame(cx),
            Held::Watched(sending) => {
                let mut sending = sending.lock().unwrap_or_else(|e| e.into_inner());
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
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.body {
            Held::Own(body) => body.is_end_stream(),
            Held::Watched(sending) => sending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .body
                .as_ref()
                .is_some_and(http_body::Body::is_end_stream),
        }
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match &self.body {
            Held::Own(body) => body.size_hint(),
            Held::Watched(sending) => sending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .body
                .as_ref()
                .map(http_body::Body::size_hint)
                .unwrap_or_default(),
        }
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

/// HTTP/1.1's idle keep-alive limit (`client_header_timeout`) for HTTP/2, where hyper has
/// none: a connection that had no stream open and opened none for a whole period gets GOAWAY,
/// as nginx and Envoy close idle HTTP/2 connections. Client frames such as PINGs do not count
/// as activity.
pub(super) struct IdleWatch<'a> {
    streams: &'a Streams,
    interval: Interval,
    last_opened: u64,
}

impl<'a> IdleWatch<'a> {
    pub(super) fn new(streams: &'a Streams, period: Duration) -> Self {
        let mut interval = tokio::time::interval_at(Instant::now() + period, period);
        // After a stall, a whole period still passes between GOAWAY and dropping the
        // connection (no burst of catch-up ticks).
        interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Self {
            streams,
            interval,
            last_opened: streams.opened.load(Ordering::Relaxed),
        }
    }

    /// Resolves at the end of an idle period; never without a watch.
    pub(super) async fn idle(watch: &mut Option<IdleWatch<'_>>) {
        let Some(watch) = watch else {
            return std::future::pending().await;
        };
        loop {
            watch.interval.tick().await;
            let opened = watch.streams.opened.load(Ordering::Relaxed);
            let idle =
                opened == watch.last_opened && watch.streams.open.load(Ordering::Relaxed) == 0;
            watch.last_opened = opened;
            if idle {
                return;
            }
        }
    }
}
