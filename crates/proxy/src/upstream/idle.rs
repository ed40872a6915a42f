//! A server's idle HTTP/1.1 connections: one stack per worker.
//!
//! A connection's hyper task runs on the worker that opened it, so a request reusing it from
//! another worker would wake that worker twice (request and response). Each worker therefore
//! takes from its own stack first, and only when that is empty from another's (rather than
//! opening yet another connection to the server). Within a stack the most recently used
//! connection is on top, so the ones left idle age out at the bottom.

use tokio::time::Instant;

#[derive(Debug)]
pub(super) struct Idle<C> {
    pub(super) conn: C,
    pub(super) since: Instant,
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
    /// first other stack that has one.
    pub(super) fn pop(&mut self, worker: usize) -> Option<Idle<C>> {
        if let Some(idle) = self.stacks.get_mut(worker).and_then(Vec::pop) {
            return Some(idle);
        }
        self.stacks.iter_mut().find_map(Vec::pop)
    }

    /// Drops every connection idle since before `cutoff`.
    pub(super) fn drop_older_than(&mut self, cutoff: Instant) {
        for stack in &mut self.stacks {
            // Oldest at the bottom: the ones to keep are a suffix.
            let keep_from = stack.partition_point(|idle| idle.since < cutoff);
            stack.drain(..keep_from);
        }
    }

    /// Puts `conn` on top of `worker`'s stack, unless `cap` connections are idle already.
    pub(super) fn push(&mut self, worker: usize, conn: C, cap: usize) {
        if self.len() >= cap {
            return;
        }
        if self.stacks.len() <= worker {
            self.stacks.resize_with(worker + 1, Vec::new);
        }
        self.stacks[worker].push(Idle {
            conn,
            since: Instant::now(),
        });
    }

    pub(super) fn len(&self) -> usize {
        self.stacks.iter().map(Vec::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_takes_its_own_most_recent_connection_first_then_another_workers() {
        let mut idle = IdleStacks::default();
        idle.push(1, "b-old", 10);
        idle.push(0, "a-old", 10);
        idle.push(1, "b-new", 10);
        idle.push(0, "a-new", 10);
        assert_eq!(idle.pop(1).map(|i| i.conn), Some("b-new"));
        assert_eq!(idle.pop(1).map(|i| i.conn), Some("b-old"));
        // Worker 1's stack is empty: it borrows worker 0's.
        assert_eq!(idle.pop(1).map(|i| i.conn), Some("a-new"));
        // A worker that never pushed (index beyond the stacks) borrows too.
        assert_eq!(idle.pop(7).map(|i| i.conn), Some("a-old"));
        assert!(idle.pop(0).is_none());
    }

    #[test]
    fn the_cap_counts_every_workers_connections() {
        let mut idle = IdleStacks::default();
        idle.push(0, 1, 2);
        idle.push(1, 2, 2);
        idle.push(1, 3, 2);
        assert_eq!(idle.len(), 2);
    }

    #[test]
    fn connections_idle_since_before_the_cutoff_are_dropped_from_every_stack() {
        let mut idle = IdleStacks::default();
        idle.push(0, "a-old", 10);
        idle.push(1, "b-old", 10);
        std::thread::sleep(std::time::Duration::from_millis(5));
        let cutoff = Instant::now();
        idle.push(0, "a-new", 10);
        idle.drop_older_than(cutoff);
        assert_eq!(idle.len(), 1);
        assert_eq!(idle.pop(1).map(|i| i.conn), Some("a-new"));
    }
}
