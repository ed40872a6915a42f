//! A server's idle HTTP/1.1 connections: one stack per worker, each connection reusable until
//! the server is expected to close it.
//!
//! A connection's hyper task runs on the worker that opened it, so a request reusing it from
//! another worker would wake that worker twice (request and response). Each worker therefore
//! takes from its own stack first, and only when that is empty from another's (rather than
//! opening yet another connection to the server). Within a stack the most recently used
//! connection is on top, so the ones left idle age out at the bottom.
//!
//! Reusing a connection at the moment the server closes it for idleness loses the request
//! written on it (the keep-alive race). A server that says how long it keeps an idle
//! connection (`Keep-Alive: timeout=N`, which RFC 9112 does not define but Node.js, Apache and
//! others send) gets its connections reused only up to N minus [`HINT_MARGIN`].

use std::time::Duration;

use http::HeaderMap;
use tokio::time::Instant;

/// Idle connections older than this are closed rather than reused: upstreams commonly close
/// keep-alive connections after 60-75 s, and reusing one they are about to close loses a request.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(50);

/// How long before a server's announced keep-alive timeout gatehouse stops reusing its
/// connection: the request must reach the server, across the network, before its timer fires.
pub const HINT_MARGIN: Duration = Duration::from_secs(1);

/// The idle timeout a response announces in `Keep-Alive: timeout=N` (seconds), if any.
pub fn keep_alive_timeout(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get_all(&crate::forward::KEEP_ALIVE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .find_map(|param| {
            let (name, value) = param.split_once('=')?;
            if !name.trim().eq_ignore_ascii_case("timeout") {
                return None;
            }
            let seconds: u64 = value.trim().trim_matches('"').parse().ok()?;
            Some(Duration::from_secs(seconds))
        })
}

/// How long after its response a connection may be reused: `limit`, or less when the server
/// announced a shorter keep-alive timeout (zero: never).
pub fn reuse_window(announced: Option<Duration>, limit: Duration) -> Duration {
    announced.map_or(limit, |timeout| {
        timeout.saturating_sub(HINT_MARGIN).min(limit)
    })
}

#[derive(Debug)]
pub(super) struct Idle<C> {
    pub(super) conn: C,
    pub(super) since: Instant,
    /// Not to be reused from then on.
    until: Instant,
}

#[derive(Debug)]
pub(super) struct IdleStacks<C> {
    stacks: Vec<Vec<Idle<C>>>,
}

impl<C> Default for IdleStacks<C> {
    fn default() -> Self {
        Self { stacks: Vec::new() }
    }
}

impl<C> IdleStacks<C> {
    /// The connection `worker` should try next: the top of its own stack, else the top of the
    /// first other stack that has one. Connections past their reuse window are dropped on
    /// the way.
    pub(super) fn pop(&mut self, worker: usize, now: Instant) -> Option<Idle<C>> {
        while let Some(idle) = self.stacks.get_mut(worker).and_then(Vec::pop) {
            if idle.until > now {
                return Some(idle);
            }
        }
        for stack in &mut self.stacks {
            while let Some(idle) = stack.pop() {
                if idle.until > now {
                    return Some(idle);
                }
            }
        }
        None
    }

    /// Drops every connection idle since before `cutoff`.
    pub(super) fn drop_older_than(&mut self, cutoff: Instant) {
        for stack in &mut self.stacks {
            // Oldest at the bottom: the ones to keep are a suffix.
            let keep_from = stack.partition_point(|idle| idle.since < cutoff);
            stack.drain(..keep_from);
        }
    }

    /// Puts `conn` on top of `worker`'s stack, reusable for `window`; not when the window is
    /// empty or `cap` connections are idle already.
    pub(super) fn push(&mut self, worker: usize, conn: C, window: Duration, cap: usize) {
        if window.is_zero() || self.len() >= cap {
            return;
        }
        if self.stacks.len() <= worker {
            self.stacks.resize_with(worker + 1, Vec::new);
        }
        let since = Instant::now();
        self.stacks[worker].push(Idle {
            conn,
            since,
            until: since + window,
        });
    }

    pub(super) fn len(&self) -> usize {
        self.stacks.iter().map(Vec::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG: Duration = Duration::from_secs(60);

    #[test]
    fn a_worker_takes_its_own_most_recent_connection_first_then_another_workers() {
        let mut idle = IdleStacks::default();
        idle.push(1, "b-old", LONG, 10);
        idle.push(0, "a-old", LONG, 10);
        idle.push(1, "b-new", LONG, 10);
        idle.push(0, "a-new", LONG, 10);
        let now = Instant::now();
        assert_eq!(idle.pop(1, now).map(|i| i.conn), Some("b-new"));
        assert_eq!(idle.pop(1, now).map(|i| i.conn), Some("b-old"));
        // Worker 1's stack is empty: it borrows worker 0's.
        assert_eq!(idle.pop(1, now).map(|i| i.conn), Some("a-new"));
        // A worker that never pushed (index beyond the stacks) borrows too.
        assert_eq!(idle.pop(7, now).map(|i| i.conn), Some("a-old"));
        assert!(idle.pop(0, now).is_none());
    }

    #[test]
    fn the_cap_counts_every_workers_connections() {
        let mut idle = IdleStacks::default();
        idle.push(0, 1, LONG, 2);
        idle.push(1, 2, LONG, 2);
        idle.push(1, 3, LONG, 2);
        assert_eq!(idle.len(), 2);
    }

    #[test]
    fn connections_idle_since_before_the_cutoff_are_dropped_from_every_stack() {
        let mut idle = IdleStacks::default();
        idle.push(0, "a-old", LONG, 10);
        idle.push(1, "b-old", LONG, 10);
        std::thread::sleep(Duration::from_millis(5));
        let cutoff = Instant::now();
        idle.push(0, "a-new", LONG, 10);
        idle.drop_older_than(cutoff);
        assert_eq!(idle.len(), 1);
        assert_eq!(idle.pop(1, Instant::now()).map(|i| i.conn), Some("a-new"));
    }

    #[test]
    fn a_connection_past_its_window_is_never_handed_out() {
        let mut idle = IdleStacks::default();
        idle.push(0, "long", LONG, 10);
        idle.push(0, "short", Duration::from_millis(100), 10);
        let later = Instant::now() + Duration::from_millis(200);
        assert_eq!(idle.pop(0, later).map(|i| i.conn), Some("long"));
        assert_eq!(idle.len(), 0, "the expired one was dropped on the way");
        idle.push(0, "never", Duration::ZERO, 10);
        assert_eq!(idle.len(), 0, "an empty window is not kept at all");
    }

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("keep-alive", value.parse().unwrap());
        headers
    }

    #[test]
    fn the_keep_alive_timeout_a_server_announces_is_read() {
        assert_eq!(
            keep_alive_timeout(&headers("timeout=5")),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            keep_alive_timeout(&headers("max=100, Timeout = 15")),
            Some(Duration::from_secs(15))
        );
        assert_eq!(keep_alive_timeout(&headers("max=100")), None);
        assert_eq!(keep_alive_timeout(&headers("timeout=soon")), None);
        assert_eq!(keep_alive_timeout(&HeaderMap::new()), None);
    }

    #[test]
    fn the_reuse_window_ends_a_margin_before_the_announced_timeout() {
        let limit = Duration::from_secs(50);
        assert_eq!(reuse_window(None, limit), limit);
        assert_eq!(
            reuse_window(Some(Duration::from_secs(5)), limit),
            Duration::from_secs(4)
        );
        assert_eq!(
            reuse_window(Some(Duration::from_secs(1)), limit),
            Duration::ZERO
        );
        assert_eq!(
            reuse_window(Some(Duration::from_secs(0)), limit),
            Duration::ZERO
        );
        assert_eq!(reuse_window(Some(Duration::from_secs(300)), limit), limit);
    }
}
