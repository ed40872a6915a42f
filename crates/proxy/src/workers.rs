//! Per-core workers: N threads, each running a single-threaded runtime of its own.
//!
//! Each worker accepts on its own `SO_REUSEPORT` socket of every listener, so the kernel spreads
//! new connections over the workers by a hash of their addresses, and a connection stays on the
//! worker that accepted it: its requests, and the upstream connections they open, never wake
//! another thread. Measured on 2 cores (docs/benchmarks.md), this serves more requests per CPU
//! second than one work-stealing runtime of the same number of threads, as nginx's and sozu's
//! worker processes and Pingora's non-work-stealing runtimes do.
//!
//! Which worker a thread is, is kept in a thread-local, so the upstream pool can keep each
//! worker's idle connections apart (see `upstream::server`).

use std::cell::Cell;
use std::io;

use tokio::runtime::Handle;
use tokio::sync::oneshot;

thread_local! {
    static WORKER: Cell<usize> = const { Cell::new(0) };
}

/// The worker the calling thread is: 0..N on a worker thread, 0 anywhere else.
pub fn current() -> usize {
    WORKER.with(Cell::get)
}

/// Running worker threads; dropping this stops them (their tasks are cancelled) and waits until
/// they have, so that what their connections log on the way out is logged before the process
/// flushes its logs and exits.
#[derive(Debug)]
pub struct Workers {
    handles: Vec<Handle>,
    stops: Vec<oneshot::Sender<()>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Workers {
    /// Starts `count` (at least 1) worker threads, each with a current-thread runtime.
    pub fn start(count: usize) -> io::Result<Self> {
        let mut handles = Vec::with_capacity(count);
        let mut stops = Vec::with_capacity(count);
        let mut threads = Vec::with_capacity(count);
        for index in 0..count.max(1) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            handles.push(runtime.handle().clone());
            let (stop, stopped) = oneshot::channel::<()>();
            stops.push(stop);
            let thread = std::thread::Builder::new()
                .name(format!("gatehouse-worker-{index}"))
                .spawn(move || {
                    WORKER.with(|worker| worker.set(index));
                    // Returns when the stop is sent or its sender dropped; the runtime, and
                    // every task still on it, is dropped here.
                    let _ = runtime.block_on(stopped);
                })?;
            threads.push(thread);
        }
        Ok(Self {
            handles,
            stops,
            threads,
        })
    }

    pub fn len(&self) -> usize {
        self.handles.len()
    }

    pub fn is_empty(&self) -> bool {
        self.handles.is_empty()
    }

    /// The runtime of worker `index` (modulo the number of workers).
    pub fn handle(&self, index: usize) -> &Handle {
        &self.handles[index % self.handles.len()]
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for stop in self.stops.drain(..) {
            let _ = stop.send(());
        }
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_worker_runs_its_tasks_on_its_own_thread_and_knows_its_index() {
        let workers = Workers::start(2).expect("workers start");
        assert_eq!(workers.len(), 2);
        let mut seen = Vec::new();
        for index in 0..2 {
            let (tx, rx) = std::sync::mpsc::channel();
            workers.handle(index).spawn(async move {
                let name = std::thread::current().name().map(str::to_owned);
                let _ = tx.send((current(), name));
            });
            seen.push(rx.recv().expect("the task ran"));
        }
        assert_eq!(
            seen,
            vec![
                (0, Some("gatehouse-worker-0".to_owned())),
                (1, Some("gatehouse-worker-1".to_owned()))
            ]
        );
        assert_eq!(current(), 0, "a thread that is no worker counts as 0");
    }

    #[test]
    fn dropping_the_workers_stops_their_tasks() {
        let workers = Workers::start(1).expect("workers start");
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        workers.handle(0).spawn(async move {
            let _tx = tx;
            std::future::pending::<()>().await;
        });
        drop(workers);
        // The task is cancelled when its runtime is dropped, which drops its sender.
        assert_eq!(
            rx.recv_timeout(std::time::Duration::from_secs(5)),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected),
            "the pending task was dropped"
        );
    }
}
