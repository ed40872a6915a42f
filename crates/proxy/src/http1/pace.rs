//! Minimum data rates (like Kestrel's `MinRequestBodyDataRate` and `MinResponseDataRate`): a
//! client that sends its request body, or takes its response, at a trickle would otherwise hold
//! its connection, and the upstream connection behind it, for as long as it likes.
//!
//! [`RateGuard`] measures a request body's bytes against the time spent waiting for the
//! client, and only that time: waiting for the upstream, or for a connection, does not count
//! (`client_pace`). [`WriteWait`] bounds each write to the client, for responses written by this
//! engine ([`WritePace`]) and under HTTP/2 connections (`client_io`).

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

use super::io::Shared;

/// A minimum rate: bytes per second averaged over the time waited, once `grace` has passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinRate {
    /// 0 = no minimum.
    pub bytes_per_second: u32,
    pub grace: Duration,
}

impl MinRate {
    pub const OFF: Self = Self {
        bytes_per_second: 0,
        grace: Duration::ZERO,
    };
}

/// A client slower than its [`MinRate`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TooSlow {
    pub bytes: u64,
    pub waited: Duration,
    pub min_rate: u32,
}

impl fmt::Display for TooSlow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seconds = self.waited.as_secs_f64();
        write!(
            f,
            "{} bytes in {seconds:.1}s of waiting ({:.0} B/s)",
            self.bytes,
            self.bytes as f64 / seconds.max(f64::EPSILON)
        )
    }
}

/// Bytes moved against the time spent waiting for the client to move them.
#[derive(Debug, Default)]
pub struct RateGuard {
    counted: u64,
    /// Waiting already over.
    waited: Duration,
    /// The wait in progress, since the last poll that found the client not ready.
    waiting_since: Option<Instant>,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl RateGuard {
    /// `n` bytes arrived, ending the wait in progress. An error when the average has fallen
    /// below the rate.
    pub fn moved(&mut self, n: usize, rate: &MinRate) -> Result<(), TooSlow> {
        if let Some(since) = self.waiting_since.take() {
            self.waited += since.elapsed();
        }
        self.counted += n as u64;
        if rate.bytes_per_second > 0 && self.waited > self.allowed(rate) {
            return Err(self.too_slow(rate));
        }
        Ok(())
    }

    /// The client is not ready: ready with [`TooSlow`] once the wait makes the rate too low.
    pub fn poll_waiting(&mut self, cx: &mut Context<'_>, rate: &MinRate) -> Poll<TooSlow> {
        if rate.bytes_per_second == 0 {
            return Poll::Pending;
        }
        let now = Instant::now();
        let since = *self.waiting_since.get_or_insert(now);
        let left = self.allowed(rate).saturating_sub(self.waited);
        let deadline = since + left;
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if sleep.deadline() != deadline {
            sleep.as_mut().reset(deadline);
        }
        ready!(sleep.as_mut().poll(cx));
        self.waited += now.saturating_duration_since(since).max(left);
        self.waiting_since = None;
        Poll::Ready(self.too_slow(rate))
    }

    /// How long the bytes counted so far may have been waited for.
    fn allowed(&self, rate: &MinRate) -> Duration {
        let earned =
            Duration::from_secs_f64(self.counted as f64 / f64::from(rate.bytes_per_second));
        earned.max(rate.grace)
    }

    fn too_slow(&self, rate: &MinRate) -> TooSlow {
        TooSlow {
            bytes: self.counted,
            waited: self.waited,
            min_rate: rate.bytes_per_second,
        }
    }
}

/// What a write to a client must achieve: a minimum rate (`min_response_rate`, off by
/// default) and, always, some progress within `stall` (`client_write_timeout`, like nginx's
/// `send_timeout`): a client that takes no byte of a response for that long is cut off, and the
/// upstream connection feeding it let go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteLimit {
    pub rate: MinRate,
    /// Zero = none.
    pub stall: Duration,
}

impl WriteLimit {
    pub const OFF: Self = Self {
        rate: MinRate::OFF,
        stall: Duration::ZERO,
    };

    fn is_off(&self) -> bool {
        (self.rate.bytes_per_second == 0 || self.rate.grace.is_zero()) && self.stall.is_zero()
    }
}

/// Watches how fast a client takes what is written to it, counting only while writes wait for
/// it, as Kestrel's `MinResponseDataRate` does: the time spent waiting may not exceed what the
/// bytes written so far earn at the rate (or `grace`, whichever is longer). A client is only
/// seen to take bytes when a waiting write goes on, and TCP makes that bursty: the kernel
/// reports a socket writable again only once about a third of its send buffer has drained
/// (megabytes, with autotuning), and a receiver reopens its window in steps. A windowed measure
/// ("so many bytes in every five seconds") cuts off clients reading steadily at tens of KB/s
/// between bursts; the average over the whole wait does not, since each burst earns what it
/// took. The bytes the socket buffers took at once count too (they are what lets a proxy be
/// done with a response early), so a client that takes nothing at all is cut off by `stall`
/// (`client_write_timeout`) unless the rate is high.
#[derive(Debug, Default)]
pub struct WriteWait {
    /// Bytes written, whether or not they had to wait.
    written: u64,
    /// Waiting already over.
    waited: Duration,
    /// The wait in progress.
    since: Option<Instant>,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl WriteWait {
    /// `n` bytes were written.
    pub fn progress(&mut self, n: usize) {
        // Any completed write or flush ends the wait in progress, even one that moved no bytes:
        // else the idle time until the next write would count as waiting.
        if let Some(since) = self.since.take() {
            self.waited += since.elapsed();
        }
        self.written += n as u64;
    }

    /// The write cannot go on: ready with the failure once the waiting exceeds what the bytes
    /// written earn at the rate, or once this one wait has lasted `limit.stall`.
    pub fn poll_waiting(&mut self, cx: &mut Context<'_>, limit: &WriteLimit) -> Poll<SlowReader> {
        if limit.is_off() {
            return Poll::Pending;
        }
        let rate = &limit.rate;
        let rated = rate.bytes_per_second != 0 && !rate.grace.is_zero();
        let now = Instant::now();
        let since = *self.since.get_or_insert(now);
        let stall_deadline = (!limit.stall.is_zero()).then(|| since + limit.stall);
        let rate_deadline = rated.then(|| since + self.allowed(rate).saturating_sub(self.waited));
        let deadline = match (rate_deadline, stall_deadline) {
            (Some(a), Some(b)) => a.min(b),
            (Some(at), None) | (None, Some(at)) => at,
            // Not reached: `is_off` said one of them is set.
            (None, None) => return Poll::Pending,
        };
        if now < deadline {
            let sleep = self
                .sleep
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
            if sleep.deadline() != deadline {
                sleep.as_mut().reset(deadline);
            }
            ready!(sleep.as_mut().poll(cx));
        }
        let waited = self.waited + Instant::now().saturating_duration_since(since);
        self.since = None;
        if stall_deadline == Some(deadline) {
            return Poll::Ready(SlowReader::Stalled(limit.stall));
        }
        Poll::Ready(SlowReader::BelowRate {
            written: self.written,
            waited,
            min_rate: rate.bytes_per_second,
        })
    }

    /// How long the bytes written so far may have been waited for.
    fn allowed(&self, rate: &MinRate) -> Duration {
        let earned =
            Duration::from_secs_f64(self.written as f64 / f64::from(rate.bytes_per_second));
        earned.max(rate.grace)
    }
}

/// The error a response ends with when the client reads it too slowly.
#[derive(Debug, thiserror::Error)]
pub enum SlowReader {
    #[error(
        "client read the response too slowly: {written} bytes in {waited:.1?} of waiting, below min_response_rate ({min_rate} B/s)"
    )]
    BelowRate {
        written: u64,
        waited: Duration,
        min_rate: u32,
    },
    #[error("client took no byte of the response for {0:?} (client_write_timeout)")]
    Stalled(Duration),
}

impl SlowReader {
    /// The `reason` of the log line.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::BelowRate { .. } => "slow_reader",
            Self::Stalled(_) => "write_timeout",
        }
    }
}

/// Whether `err` ended a response because the client read too slowly.
pub fn is_slow_reader(err: &io::Error) -> bool {
    err.get_ref().is_some_and(|inner| inner.is::<SlowReader>())
}

/// Writes a response under a [`WriteLimit`].
#[derive(Debug)]
pub(super) struct WritePace {
    limit: WriteLimit,
    wait: WriteWait,
}

impl WritePace {
    pub(super) fn new(limit: WriteLimit) -> Self {
        Self {
            limit,
            wait: WriteWait::default(),
        }
    }

    /// Writes every part, failing with [`SlowReader`] when the client takes too long.
    pub(super) async fn write(&mut self, shared: &Shared, parts: &mut [&[u8]]) -> io::Result<()> {
        if self.limit.is_off() {
            return shared.write_all(parts).await;
        }
        let Self { limit, wait } = self;
        let mut write = std::pin::pin!(shared.write_all(parts));
        std::future::poll_fn(|cx| {
            let before = shared.written();
            let polled = write.as_mut().poll(cx);
            let moved = usize::try_from(shared.written() - before).unwrap_or(usize::MAX);
            // A poll that moved nothing and is still waiting is not progress: the wait (and
            // the stall timeout) goes on.
            if moved > 0 || polled.is_ready() {
                wait.progress(moved);
            }
            match polled {
                Poll::Ready(result) => Poll::Ready(result),
                Poll::Pending => wait
                    .poll_waiting(cx, limit)
                    .map(|slow| Err(io::Error::new(io::ErrorKind::TimedOut, slow))),
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(rate: MinRate) -> WriteLimit {
        WriteLimit {
            rate,
            stall: Duration::ZERO,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_that_waits_the_whole_stall_timeout_is_cut_off_even_with_no_rate() {
        let limit = WriteLimit {
            rate: MinRate::OFF,
            stall: Duration::from_secs(60),
        };
        let mut wait = WriteWait::default();
        // Progress now and then keeps it going, however slow.
        for _ in 0..5 {
            let waiting = std::future::poll_fn(|cx| wait.poll_waiting(cx, &limit));
            assert!(
                tokio::time::timeout(Duration::from_secs(59), waiting)
                    .await
                    .is_err()
            );
            wait.progress(1);
        }
        let started = Instant::now();
        let cut = std::future::poll_fn(|cx| wait.poll_waiting(cx, &limit)).await;
        assert_eq!(started.elapsed(), Duration::from_secs(60));
        assert!(matches!(cut, SlowReader::Stalled(_)), "{cut:?}");
        // Without a stall timeout or a rate nothing is ever cut off.
        let mut idle = WriteWait::default();
        let never = std::future::poll_fn(|cx| idle.poll_waiting(cx, &WriteLimit::OFF));
        assert!(
            tokio::time::timeout(Duration::from_secs(3600), never)
                .await
                .is_err()
        );
    }

    fn rate(bytes_per_second: u32, grace_ms: u64) -> MinRate {
        MinRate {
            bytes_per_second,
            grace: Duration::from_millis(grace_ms),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickle_below_the_rate_fails_after_the_grace() {
        let rate = rate(100, 2000);
        let mut guard = RateGuard::default();
        let mut failed = None;
        // One byte a second: the grace covers 2 s, then 1 byte has earned 10 ms.
        for second in 0..10 {
            let waited = std::future::poll_fn(|cx| guard.poll_waiting(cx, &rate));
            match tokio::time::timeout(Duration::from_secs(1), waited).await {
                Ok(slow) => {
                    failed = Some((second, slow));
                    break;
                }
                Err(_) => {
                    if let Err(slow) = guard.moved(1, &rate) {
                        failed = Some((second, slow));
                        break;
                    }
                }
            }
        }
        let (second, slow) = failed.expect("the trickle was stopped");
        assert!(second <= 2, "stopped soon after the grace: at {second}");
        assert_eq!(slow.min_rate, 100);
    }

    #[tokio::test(start_paused = true)]
    async fn bytes_above_the_rate_are_never_stopped() {
        let rate = rate(100, 1000);
        let mut guard = RateGuard::default();
        // 50 bytes every 200 ms: 250 B/s.
        for _ in 0..50 {
            let waited = std::future::poll_fn(|cx| guard.poll_waiting(cx, &rate));
            assert!(
                tokio::time::timeout(Duration::from_millis(200), waited)
                    .await
                    .is_err()
            );
            assert!(guard.moved(50, &rate).is_ok());
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_client_fails_when_its_bytes_no_longer_cover_the_wait() {
        let rate = rate(100, 1000);
        let mut guard = RateGuard::default();
        // 500 bytes at once earn 5 s of waiting.
        assert!(guard.moved(500, &rate).is_ok());
        let started = Instant::now();
        let slow = std::future::poll_fn(|cx| guard.poll_waiting(cx, &rate)).await;
        assert_eq!(started.elapsed(), Duration::from_secs(5));
        assert_eq!(slow.bytes, 500);
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_takes_nothing_is_cut_off_once_its_bytes_no_longer_cover_the_wait() {
        let rate = rate(100, 1000);
        let mut wait = WriteWait::default();
        // 500 bytes went into the socket buffers at once: they earn 5 s of waiting.
        wait.progress(500);
        let started = Instant::now();
        let slow = std::future::poll_fn(|cx| wait.poll_waiting(cx, &limit(rate))).await;
        assert_eq!(started.elapsed(), Duration::from_secs(5));
        assert!(
            matches!(slow, SlowReader::BelowRate { written: 500, .. }),
            "{slow:?}"
        );
        // Nothing written at all: the grace.
        let mut wait = WriteWait::default();
        let started = Instant::now();
        let slow = std::future::poll_fn(|cx| wait.poll_waiting(cx, &limit(rate))).await;
        assert_eq!(started.elapsed(), Duration::from_secs(1));
        assert!(matches!(slow, SlowReader::BelowRate { written: 0, .. }));
    }

    #[tokio::test(start_paused = true)]
    async fn a_bursty_client_above_the_rate_is_never_cut_off() {
        // TCP shows a slow reader's progress in bursts: here 64 KiB after 8 s of waiting
        // (8 KiB/s), far above the rate, with waits longer than the grace.
        let rate = rate(240, 5000);
        let mut wait = WriteWait::default();
        wait.progress(128 << 10);
        for _ in 0..20 {
            let waiting = std::future::poll_fn(|cx| wait.poll_waiting(cx, &limit(rate)));
            let cut = tokio::time::timeout(Duration::from_secs(8), waiting).await;
            assert!(cut.is_err(), "cut off: {cut:?}");
            wait.progress(64 << 10);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_slower_than_the_rate_is_cut_off_when_its_average_falls_below() {
        let rate = rate(100, 1000);
        let mut wait = WriteWait::default();
        // 20 bytes every 500 ms of waiting: 40 B/s, after 1,000 bytes that earned 10 s.
        wait.progress(1000);
        let started = Instant::now();
        let mut cut = None;
        for _ in 0..100 {
            let waiting = std::future::poll_fn(|cx| wait.poll_waiting(cx, &limit(rate)));
            match tokio::time::timeout(Duration::from_millis(500), waiting).await {
                Ok(slow) => {
                    cut = Some(slow);
                    break;
                }
                Err(_) => wait.progress(20),
            }
        }
        let slow = cut.expect("cut off");
        // (1000 + 40 t) / 100 = t: about 16.7 s.
        let at = started.elapsed();
        assert!(
            at > Duration::from_secs(16) && at < Duration::from_secs(18),
            "{at:?}"
        );
        assert!(
            matches!(slow, SlowReader::BelowRate { written, .. } if written < 1700),
            "{slow:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_ended_by_a_flush_does_not_count_the_idle_time_after_it() {
        let rate = rate(240, 5000);
        let mut wait = WriteWait::default();
        // A flush waits briefly (TLS), then completes: the socket wrapper reports progress(0).
        let waiting = std::future::poll_fn(|cx| wait.poll_waiting(cx, &limit(rate)));
        assert!(
            tokio::time::timeout(Duration::from_millis(100), waiting)
                .await
                .is_err()
        );
        wait.progress(0);
        // The keep-alive connection then sits idle for a minute.
        tokio::time::sleep(Duration::from_secs(60)).await;
        // The next response: a small write goes at once, then a write waits briefly.
        wait.progress(300);
        let waiting = std::future::poll_fn(|cx| wait.poll_waiting(cx, &limit(rate)));
        let cut = tokio::time::timeout(Duration::from_millis(50), waiting).await;
        assert!(
            cut.is_err(),
            "a healthy client was cut off at once: {cut:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn no_minimum_never_fails() {
        let mut guard = RateGuard::default();
        let waited = std::future::poll_fn(|cx| guard.poll_waiting(cx, &MinRate::OFF));
        assert!(
            tokio::time::timeout(Duration::from_secs(3600), waited)
                .await
                .is_err()
        );
    }
}
