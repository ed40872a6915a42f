//! Lifecycle: bind every listener (or fail startup with one clear error), serve, and on
//! shutdown stop accepting, let open connections finish within `drain_timeout`, and return.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use gatehouse_config::Config;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::listener::{ConnTracker, accept_loop};
use crate::observe::admin;
use crate::snapshot::Snapshot;
use crate::upstream::health::StateRegistry;

/// A startup failure, worded for the one line it becomes on stderr.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot listen on {addr}: {source}{hint}", hint = bind_hint(source))]
    Bind { addr: SocketAddr, source: io::Error },
}

fn bind_hint(err: &io::Error) -> &'static str {
    match err.kind() {
        io::ErrorKind::AddrInUse => {
            " (another process is using this port; stop it or change `listen`)"
        }
        io::ErrorKind::PermissionDenied => " (ports below 1024 need privileges; use a higher port)",
        io::ErrorKind::AddrNotAvailable => " (this machine has no such address)",
        _ => "",
    }
}

/// A bound, serving gatehouse.
#[derive(Debug)]
pub struct Running {
    /// The proxy listeners' actual addresses (useful with port 0).
    pub listen: Vec<SocketAddr>,
    pub admin: Option<SocketAddr>,
    shutdown: watch::Sender<bool>,
    tracker: Arc<ConnTracker>,
    drain_timeout: std::time::Duration,
}

impl Running {
    /// Binds every listener of `config` and starts serving.
    pub async fn start(config: Config) -> Result<Self, StartupError> {
        let mut listeners = Vec::new();
        for addr in &config.server.listen {
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|source| StartupError::Bind {
                    addr: *addr,
                    source,
                })?;
            listeners.push(listener);
        }
        let admin_listener = match config.server.admin {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| StartupError::Bind { addr, source })?,
            ),
            None => None,
        };
        let drain_timeout = config.server.drain_timeout;
        let registry = Arc::new(StateRegistry::default());
        let snapshot = Arc::new(Snapshot::build(config, &registry));
        snapshot.start_tasks();
        let (shutdown, watch_rx) = watch::channel(false);
        let tracker = Arc::new(ConnTracker::default());
        let mut listen = Vec::new();
        for listener in listeners {
            let addr = listener.local_addr().map_err(|source| StartupError::Bind {
                addr: ([0, 0, 0, 0], 0).into(),
                source,
            })?;
            tracing::info!(%addr, "listening");
            listen.push(addr);
            tokio::spawn(accept_loop(
                listener,
                Arc::clone(&snapshot),
                Arc::clone(&tracker),
                watch_rx.clone(),
            ));
        }
        let admin = match admin_listener {
            Some(listener) => {
                let addr = listener.local_addr().ok();
                if let Some(addr) = addr {
                    tracing::info!(%addr, "admin listening");
                }
                tokio::spawn(admin::serve(
                    listener,
                    Arc::clone(&snapshot),
                    watch_rx.clone(),
                ));
                addr
            }
            None => None,
        };
        Ok(Self {
            listen,
            admin,
            shutdown,
            tracker,
            drain_timeout,
        })
    }

    /// Serves until `signal` resolves, then drains.
    pub async fn serve_until(self, signal: impl Future<Output = ()>) {
        signal.await;
        self.shutdown().await;
    }

    /// Stops accepting, asks open connections to finish their current request, and waits for
    /// them up to `drain_timeout`.
    pub async fn shutdown(self) {
        let open = self.tracker.open();
        tracing::info!(open_connections = open, drain_timeout = ?self.drain_timeout, "shutting down: no longer accepting");
        let _ = self.shutdown.send(true);
        if tokio::time::timeout(self.drain_timeout, self.tracker.drained())
            .await
            .is_err()
        {
            tracing::warn!(
                open_connections = self.tracker.open(),
                "drain_timeout reached; closing the remaining connections"
            );
        } else {
            tracing::info!("all connections drained");
        }
    }
}
