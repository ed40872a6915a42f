//! Downstream listeners: the accept loop, and the count of open connections that shutdown
//! waits on.
//!
//! An accept loop only owns its socket. On each accept it looks up what its address serves in
//! the snapshot in force ([`Listeners`](crate::snapshot::listeners::Listeners), built with the snapshot, TLS configuration included),
//! so a reload can swap certificates, or turn a plain listener into a TLS one, without touching
//! the socket; a connection keeps what it was accepted as. Serving a connection is `conn`'s
//! job, the HTTPS redirect `redirect`'s, ACME's HTTP-01 answers `challenge`'s.

mod challenge;
mod conn;
mod h2_body;
mod h2_streams;
mod isolate;
mod proxy_header;
mod redirect;
mod settings;
mod sniff;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};

use crate::snapshot::Current;
use crate::snapshot::listeners::ListenerKey;
// `conn`'s tests build an empty table of listeners through this path.
#[cfg(test)]
use crate::snapshot::listeners::Listeners;

// === ConnTracker ===

/// Connections currently open, so shutdown can wait for them to drain.
#[derive(Debug, Default)]
pub struct ConnTracker {
    open: AtomicUsize,
    idle: Notify,
}

impl ConnTracker {
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Resolves once no connection is open.
    pub async fn drained(&self) {
        loop {
            let notified = self.idle.notified();
            if self.open() == 0 {
                return;
            }
            notified.await;
        }
    }
}

struct ConnGuard(Arc<ConnTracker>);

impl ConnGuard {
    fn new(tracker: &Arc<ConnTracker>) -> Self {
        tracker.open.fetch_add(1, Ordering::AcqRel);
        Self(Arc::clone(tracker))
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        if self.0.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

// === accept loop ===

/// Accepts connections on the socket `key` until `shutdown` turns true (gatehouse stops) or
/// `close` does (a reload removed this listener; its open connections carry on).
pub async fn accept_loop(
    listener: TcpListener,
    key: ListenerKey,
    current: Current,
    tracker: Arc<ConnTracker>,
    mut shutdown: watch::Receiver<bool>,
    mut close: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.changed() => return,
            _ = close.changed() => return,
        };
        match accepted {
            Ok((stream, client)) => {
                let snapshot = current.load_full();
                let Some(kind) = snapshot.listeners.kind(key).cloned() else {
                    // The snapshot no longer has this listener: the reload that removed it
                    // closes this loop next.
                    continue;
                };
                snapshot.observer.metrics.connection_accepted();
                let proxy_header = snapshot.listeners.expects_proxy_header(key);
                let guard = ConnGuard::new(&tracker);
                let current = Arc::clone(&current);
                let shutdown = shutdown.clone();
                let accepted = conn::Accepted {
                    stream,
                    peer: client,
                    kind,
                    proxy_header,
                };
                // The connection's future is the task: a wrapping `async` block would hold it
                // twice (as captured and as awaited).
                tokio::spawn(conn::serve(accepted, snapshot, current, shutdown, guard));
            }
            Err(err) => {
                // EMFILE and friends: back off briefly instead of spinning.
                tracing::error!(error = %err, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}
