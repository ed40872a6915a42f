//! GCRA (the generic cell rate algorithm): a rate limit that keeps one number per key, the
//! theoretical arrival time (TAT) of the next request if the client went at exactly the rate.
//!
//! With `interval` = period / requests and `tolerance` = burst × interval, a request at `now`
//! is allowed when `max(tat, now) + interval - now <= tolerance`; the TAT then moves on by one
//! interval. Times are microseconds on one clock (this process's, or the Redis server's); a
//! key whose TAT is in the past is the same as no key, so the store may forget it.
//!
//! The same arithmetic runs in Lua inside Redis (see `redis::SCRIPT`); both are tested against
//! the same cases.

use gatehouse_config::RateLimit;

/// A rate in the units the arithmetic uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gcra {
    /// Microseconds between two requests at exactly the rate (at least 1).
    pub interval: u64,
    /// Microseconds of credit a fresh key has: `burst` intervals.
    pub tolerance: u64,
}

/// What one request is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow {
        /// Requests that could still be made at once after this one.
        remaining: u64,
        /// Microseconds until the key is back to a full burst.
        reset: u64,
    },
    Deny {
        /// Microseconds until one request would be allowed.
        retry_after: u64,
        /// Microseconds until the key is back to a full burst.
        reset: u64,
    },
}

impl Gcra {
    pub fn new(rate: &RateLimit) -> Self {
        let period = u64::try_from(rate.period.as_micros()).unwrap_or(u64::MAX);
        let interval = (period / u64::from(rate.requests.max(1))).max(1);
        Self {
            interval,
            tolerance: interval.saturating_mul(u64::from(rate.burst.max(1))),
        }
    }

    /// The verdict for a request at `now` on a key whose TAT is `tat` (`None`: a fresh key), and
    /// the TAT to store when it is allowed.
    pub fn decide(self, tat: Option<u64>, now: u64) -> (Verdict, Option<u64>) {
        let tat = tat.map_or(now, |tat| tat.max(now));
        let next = tat.saturating_add(self.interval);
        let ahead = next - now;
        if ahead > self.tolerance {
            return (
                Verdict::Deny {
                    retry_after: ahead - self.tolerance,
                    reset: tat - now,
                },
                None,
            );
        }
        (
            Verdict::Allow {
                remaining: (self.tolerance - ahead) / self.interval,
                reset: ahead,
            },
            Some(next),
        )
    }
}

/// Whole seconds for a header (`Retry-After`, `t=`): rounded up, so a client that waits that
/// long is not refused again.
pub fn ceil_secs(micros: u64) -> u64 {
    micros.div_ceil(1_000_000)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const SEC: u64 = 1_000_000;

    fn gcra(requests: u32, period: u64, burst: u32) -> Gcra {
        Gcra::new(&RateLimit {
            requests,
            period: Duration::from_secs(period),
            burst,
        })
    }

    /// Runs `count` requests at `now`, returning how many were allowed and the last TAT.
    fn run(g: Gcra, mut tat: Option<u64>, now: u64, count: u32) -> (u32, Option<u64>) {
        let mut allowed = 0;
        for _ in 0..count {
            if let (Verdict::Allow { .. }, next) = g.decide(tat, now) {
                allowed += 1;
                tat = next;
            }
        }
        (allowed, tat)
    }

    #[test]
    fn a_fresh_key_gets_the_burst_then_is_refused() {
        let g = gcra(10, 60, 5);
        assert_eq!(g.interval, 6 * SEC);
        assert_eq!(g.tolerance, 30 * SEC);
        let now = 1000 * SEC;
        let (v, tat) = g.decide(None, now);
        assert_eq!(
            v,
            Verdict::Allow {
                remaining: 4,
                reset: 6 * SEC
            }
        );
        let (allowed, tat) = run(g, tat, now, 10);
        assert_eq!(allowed, 4, "the burst is 5 in all");
        assert_eq!(tat, Some(now + 30 * SEC));
        let (v, next) = g.decide(tat, now);
        assert_eq!(
            v,
            Verdict::Deny {
                retry_after: 6 * SEC,
                reset: 30 * SEC
            }
        );
        assert_eq!(next, None, "a refusal does not move the TAT");
    }

    #[test]
    fn credit_comes_back_one_interval_at_a_time() {
        let g = gcra(2, 1, 2);
        let now = 50 * SEC;
        let (allowed, tat) = run(g, None, now, 3);
        assert_eq!(allowed, 2);
        // Half a second later exactly one more is allowed.
        let (allowed, tat) = run(g, tat, now + SEC / 2, 3);
        assert_eq!(allowed, 1);
        // After a long pause the key is as good as fresh: a full burst, never more.
        let (allowed, _) = run(g, tat, now + 3600 * SEC, 10);
        assert_eq!(allowed, 2);
    }

    #[test]
    fn a_steady_client_at_the_rate_is_never_refused() {
        let g = gcra(10, 1, 1);
        let mut tat = None;
        for i in 0..100 {
            let (v, next) = g.decide(tat, 7 * SEC + i * g.interval);
            assert!(matches!(v, Verdict::Allow { .. }), "request {i}: {v:?}");
            tat = next;
        }
        // Twice the rate: every other request is refused.
        let (allowed, _) = (0..100).fold((0, tat), |(n, tat), i| {
            match g.decide(tat, 17 * SEC + i * g.interval / 2) {
                (Verdict::Allow { .. }, next) => (n + 1, next),
                (Verdict::Deny { .. }, _) => (n, tat),
            }
        });
        assert!((50..=51).contains(&allowed), "{allowed}");
    }

    #[test]
    fn extremes_do_not_overflow() {
        let g = Gcra::new(&RateLimit {
            requests: 1_000_000_000,
            period: Duration::from_millis(1),
            burst: 1_000_000_000,
        });
        assert_eq!(g.interval, 1, "at least one microsecond");
        let (v, _) = g.decide(Some(u64::MAX), 0);
        assert!(matches!(v, Verdict::Deny { .. }));
        let g = Gcra::new(&RateLimit {
            requests: 1,
            period: Duration::from_secs(u64::MAX / 2),
            burst: 1_000_000_000,
        });
        let (v, _) = g.decide(Some(u64::MAX - 1), u64::MAX);
        assert!(matches!(v, Verdict::Allow { .. } | Verdict::Deny { .. }));
    }

    #[test]
    fn header_seconds_round_up() {
        assert_eq!(ceil_secs(0), 0);
        assert_eq!(ceil_secs(1), 1);
        assert_eq!(ceil_secs(SEC), 1);
        assert_eq!(ceil_secs(SEC + 1), 2);
    }
}
