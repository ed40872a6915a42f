//! How slowly a client may read a response (`min_response_rate` after `min_rate_grace`, like
//! Kestrel's `MinResponseDataRate`): a client that takes the response at a trickle would
//! otherwise hold its connection, and the upstream connection streaming into it, for as long
//! as it likes. Only writes that had to wait for the client count, with the bytes they wrote:
//! a write the socket's buffer takes at once says nothing about the client (a client that
//! reads nothing gets its first megabytes buffered instantly), and waiting for the upstream
//! does not count either.

use std::future::Future;
use std::io;
use std::time::Duration;

use tokio::time::Instant;

use super::io::Shared;

/// Bytes the client took while gatehouse waited, against the time it waited.
#[derive(Debug)]
pub(super) struct WritePace {
    /// Bytes per second; 0 = no minimum.
    min_rate: u32,
    grace: Duration,
    written: u64,
    waited: Duration,
}

/// The error a write ends with when the client reads too slowly.
#[derive(Debug, thiserror::Error)]
#[error(
    "client read the response too slowly: {written} bytes in {waited:.1?} of waiting, below min_response_rate ({min_rate} B/s)"
)]
pub(super) struct TooSlow {
    written: u64,
    waited: Duration,
    min_rate: u32,
}

impl WritePace {
    pub(super) fn new(min_rate: u32, grace: Duration) -> Self {
        Self {
            min_rate,
            grace,
            written: 0,
            waited: Duration::ZERO,
        }
    }

    /// Writes every part, failing with [`TooSlow`] once the client has been waited for longer
    /// than its bytes allow.
    pub(super) async fn write(&mut self, shared: &Shared, parts: &mut [&[u8]]) -> io::Result<()> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if self.min_rate == 0 {
            return shared.write_all(parts).await;
        }
        let started = Instant::now();
        let left = self.allowed().saturating_sub(self.waited);
        let mut had_to_wait = false;
        let mut write = std::pin::pin!(shared.write_all(parts));
        let write = std::future::poll_fn(|cx| {
            let poll = write.as_mut().poll(cx);
            had_to_wait |= poll.is_pending();
            poll
        });
        let written = tokio::time::timeout_at(started + left, write).await;
        if had_to_wait {
            self.waited += started.elapsed();
        }
        match written {
            Ok(result) => {
                if had_to_wait {
                    self.written += len as u64;
                }
                result
            }
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                TooSlow {
                    written: self.written,
                    waited: self.waited,
                    min_rate: self.min_rate,
                },
            )),
        }
    }

    /// How long the bytes written so far may have been waited for.
    fn allowed(&self) -> Duration {
        let earned = Duration::from_secs_f64(self.written as f64 / f64::from(self.min_rate));
        earned.max(self.grace)
    }
}

/// Whether `err` ended a response because the client read too slowly.
pub(super) fn is_too_slow(err: &io::Error) -> bool {
    err.get_ref().is_some_and(|inner| inner.is::<TooSlow>())
}
