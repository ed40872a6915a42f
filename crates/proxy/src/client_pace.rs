//! How slowly a client may send its request body: the longest pause (`client_header_timeout`)
//! and the lowest average rate (`min_request_body_rate` after `min_rate_grace`, like Kestrel's
//! `MinRequestBodyDataRate`), so that a body trickled at a byte a second cannot hold a
//! connection, and an upstream connection behind it, for as long as it trickles.
//!
//! Only the time gatehouse spends waiting for the client counts: while the upstream is slow to
//! take the body (backpressure) or the request waits for a connection, the client is not
//! asked for bytes and the clock stands still.

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use http::StatusCode;
use tokio::time::{Instant, Sleep};

use crate::failure::Failure;

/// The pace a client must keep while sending a request body.
#[derive(Debug, Clone, Copy)]
pub struct ClientPace {
    /// The longest pause between two reads that bring bytes.
    pub idle_timeout: Duration,
    /// Bytes per second, averaged over the time waited; 0 = no minimum.
    pub min_rate: u32,
    /// How long the body may be waited for before the minimum rate applies.
    pub grace: Duration,
}

impl ClientPace {
    /// Only the pause limit (no minimum rate).
    pub fn idle_only(idle_timeout: Duration) -> Self {
        Self {
            idle_timeout,
            min_rate: 0,
            grace: Duration::ZERO,
        }
    }
}

/// Tracks bytes received against the time spent waiting for them.
#[derive(Debug, Default)]
pub(crate) struct RateGuard {
    received: u64,
    /// Waiting already over (each wait ended by bytes arriving).
    waited: Duration,
    /// The wait in progress, if the last poll found nothing.
    waiting_since: Option<Instant>,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl RateGuard {
    /// Bytes arrived: ends the wait in progress; an error when the average rate is too low.
    pub(crate) fn received(&mut self, n: usize, pace: &ClientPace) -> Result<(), Failure> {
        if let Some(since) = self.waiting_since.take() {
            self.waited += since.elapsed();
        }
        self.received += n as u64;
        if pace.min_rate > 0 && self.waited > self.allowed(pace) {
            return Err(self.too_slow(pace));
        }
        Ok(())
    }

    /// Nothing arrived: ready with the failure once the wait has made the rate too low.
    pub(crate) fn poll_waiting(
        &mut self,
        cx: &mut Context<'_>,
        pace: &ClientPace,
    ) -> Poll<Failure> {
        if pace.min_rate == 0 {
            return Poll::Pending;
        }
        let now = Instant::now();
        let since = *self.waiting_since.get_or_insert(now);
        let left = self.allowed(pace).saturating_sub(self.waited);
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
        Poll::Ready(self.too_slow(pace))
    }

    /// How long the bytes received so far may have been waited for.
    fn allowed(&self, pace: &ClientPace) -> Duration {
        let earned = Duration::from_secs_f64(self.received as f64 / f64::from(pace.min_rate));
        earned.max(pace.grace)
    }

    fn too_slow(&self, pace: &ClientPace) -> Failure {
        let seconds = self.waited.as_secs_f64().max(f64::EPSILON);
        Failure::client(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "client sent its request body too slowly: {} bytes in {:.1}s of waiting ({:.0} B/s), below min_request_body_rate ({} B/s)",
                self.received,
                self.waited.as_secs_f64(),
                self.received as f64 / seconds,
                pace.min_rate
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pace(min_rate: u32, grace_ms: u64) -> ClientPace {
        ClientPace {
            idle_timeout: Duration::from_secs(30),
            min_rate,
            grace: Duration::from_millis(grace_ms),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickle_below_the_rate_fails_after_the_grace() {
        let pace = pace(100, 2000);
        let mut guard = RateGuard::default();
        let mut failed = None;
        // One byte a second: the grace covers 2 s, then 1 byte has earned 10 ms.
        for second in 0..10 {
            let waited = std::future::poll_fn(|cx| guard.poll_waiting(cx, &pace));
            match tokio::time::timeout(Duration::from_secs(1), waited).await {
                Ok(failure) => {
                    failed = Some((second, failure));
                    break;
                }
                Err(_) => {
                    if let Err(failure) = guard.received(1, &pace) {
                        failed = Some((second, failure));
                        break;
                    }
                }
            }
        }
        let (second, failure) = failed.expect("the trickle was stopped");
        assert_eq!(failure.status(), StatusCode::REQUEST_TIMEOUT);
        assert!(second <= 2, "stopped soon after the grace: at {second}");
        assert!(failure.details.contains("min_request_body_rate (100 B/s)"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_above_the_rate_is_never_stopped() {
        let pace = pace(100, 1000);
        let mut guard = RateGuard::default();
        // 50 bytes every 200 ms: 250 B/s.
        for _ in 0..50 {
            let waited = std::future::poll_fn(|cx| guard.poll_waiting(cx, &pace));
            assert!(
                tokio::time::timeout(Duration::from_millis(200), waited)
                    .await
                    .is_err()
            );
            assert!(guard.received(50, &pace).is_ok());
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_client_fails_when_its_bytes_no_longer_cover_the_wait() {
        let pace = pace(100, 1000);
        let mut guard = RateGuard::default();
        // 500 bytes at once earn 5 s of waiting.
        assert!(guard.received(500, &pace).is_ok());
        let started = Instant::now();
        let failure = std::future::poll_fn(|cx| guard.poll_waiting(cx, &pace)).await;
        assert_eq!(started.elapsed(), Duration::from_secs(5));
        assert_eq!(failure.status(), StatusCode::REQUEST_TIMEOUT);
    }

    #[tokio::test(start_paused = true)]
    async fn no_minimum_never_fails() {
        let pace = ClientPace::idle_only(Duration::from_secs(30));
        let mut guard = RateGuard::default();
        let waited = std::future::poll_fn(|cx| guard.poll_waiting(cx, &pace));
        assert!(
            tokio::time::timeout(Duration::from_secs(3600), waited)
                .await
                .is_err()
        );
    }
}
