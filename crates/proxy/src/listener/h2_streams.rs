//! Counting a connection's open HTTP/2 streams, and the idle watch that sends GOAWAY to a
//! connection that had none open for a whole period. (The streams' response bodies, which keep
//! them counted, are in `h2_body.rs`.)

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::{Instant, Interval, MissedTickBehavior};

/// The streams (requests) of one connection: how many are open now, how many were opened.
#[derive(Debug, Default)]
pub(super) struct Streams {
    open: AtomicUsize,
    opened: AtomicU64,
}

/// One open stream's place in [`Streams`], held by its request and then by its response
/// body until the engine is done with it (sent completely, or reset).
#[derive(Debug)]
pub(super) struct OpenStream(pub(super) Arc<Streams>);

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
