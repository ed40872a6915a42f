//! The retry budget of a pool: retries may add at most `budget` × the requests of the last
//! ten seconds, plus `min_retries_per_second`, so that a failing pool is not hammered by a retry
//! storm (every client request turning into `attempts` upstream requests).
//!
//! The request path only increments a counter; the window is kept up to date on the (rare)
//! retry path, under a mutex.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// Buckets of one second each.
const WINDOW: usize = 10;
const BUCKET: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub struct RetryBudget {
    ratio: f64,
    min_per_second: u32,
    /// Client requests ever seen by this pool.
    requests: AtomicU64,
    window: Mutex<Window>,
}

#[derive(Debug)]
struct Window {
    /// Start of the newest bucket.
    newest_start: Instant,
    /// Per bucket (newest at `newest`): the request counter when it began, retries in it.
    buckets: [(u64, u32); WINDOW],
    newest: usize,
}

impl RetryBudget {
    pub fn new(ratio: f64, min_per_second: u32) -> Self {
        Self {
            ratio,
            min_per_second,
            requests: AtomicU64::new(0),
            window: Mutex::new(Window {
                newest_start: Instant::now(),
                buckets: [(0, 0); WINDOW],
                newest: 0,
            }),
        }
    }

    /// Counts a client request routed to the pool.
    pub fn record_request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Takes one retry from the budget; `false` when it is spent.
    pub fn try_withdraw(&self) -> bool {
        let now = Instant::now();
        let requests = self.requests.load(Ordering::Relaxed);
        let mut window = self.window.lock().unwrap_or_else(|e| e.into_inner());
        window.advance(now, requests);
        let oldest = (window.newest + 1) % WINDOW;
        let requests_in_window = requests.saturating_sub(window.buckets[oldest].0);
        let retries_in_window: u64 = window.buckets.iter().map(|b| u64::from(b.1)).sum();
        let allowed =
            self.ratio * requests_in_window as f64 + f64::from(self.min_per_second) * WINDOW as f64;
        if (retries_in_window as f64) + 1.0 > allowed {
            return false;
        }
        let newest = window.newest;
        window.buckets[newest].1 += 1;
        true
    }
}

impl Window {
    /// Rotates buckets so that the newest one contains `now`.
    fn advance(&mut self, now: Instant, requests: u64) {
        let mut steps = 0;
        while now.duration_since(self.newest_start) >= BUCKET {
            self.newest_start += BUCKET;
            self.newest = (self.newest + 1) % WINDOW;
            // A fresh bucket: counts from the current request total, no retries yet.
            self.buckets[self.newest] = (requests, 0);
            steps += 1;
            if steps >= WINDOW {
                // Idle longer than the window: everything restarts from now.
                self.newest_start = now;
                self.buckets = [(requests, 0); WINDOW];
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spend(budget: &RetryBudget) -> usize {
        (0..10_000).take_while(|_| budget.try_withdraw()).count()
    }

    #[tokio::test(start_paused = true)]
    async fn retries_are_a_fraction_of_requests() {
        let budget = RetryBudget::new(0.2, 0);
        for _ in 0..100 {
            budget.record_request();
        }
        assert_eq!(spend(&budget), 20);
        for _ in 0..50 {
            budget.record_request();
        }
        assert_eq!(spend(&budget), 10, "30 of 150 in the window");
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_pool_still_gets_its_minimum() {
        let budget = RetryBudget::new(0.2, 2);
        assert_eq!(spend(&budget), 20, "2 per second over a 10 s window");
    }

    #[tokio::test(start_paused = true)]
    async fn the_window_forgets_old_requests_and_retries() {
        let budget = RetryBudget::new(0.5, 0);
        for _ in 0..10 {
            budget.record_request();
        }
        assert_eq!(spend(&budget), 5);
        tokio::time::advance(Duration::from_secs(11)).await;
        assert_eq!(spend(&budget), 0, "the old requests left the window");
        for _ in 0..4 {
            budget.record_request();
        }
        assert_eq!(spend(&budget), 2);
    }
}
