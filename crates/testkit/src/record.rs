//! A list that one thread appends to and another waits on.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub(crate) struct Recorder<T> {
    items: Mutex<Vec<T>>,
    changed: Condvar,
}

impl<T> Default for Recorder<T> {
    fn default() -> Self {
        Self {
            items: Mutex::new(Vec::new()),
            changed: Condvar::new(),
        }
    }
}

impl<T: Clone> Recorder<T> {
    fn lock(&self) -> MutexGuard<'_, Vec<T>> {
        self.items.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn push(&self, item: T) {
        self.lock().push(item);
        self.changed.notify_all();
    }

    pub(crate) fn snapshot(&self) -> Vec<T> {
        self.lock().clone()
    }

    /// Waits up to `timeout` for `check` to find something in the items; `None` if it never does.
    pub(crate) fn wait_until<R>(
        &self,
        timeout: Duration,
        check: impl Fn(&[T]) -> Option<R>,
    ) -> Option<R> {
        let deadline = Instant::now() + timeout;
        let mut items = self.lock();
        loop {
            if let Some(found) = check(&items) {
                return Some(found);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            items = self
                .changed
                .wait_timeout(items, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}
