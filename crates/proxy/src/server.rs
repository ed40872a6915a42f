//! Lifecycle: bind every listener (or fail startup with one clear error), serve, and on
//! shutdown stop accepting, let open connections finish within `drain_timeout`, and return.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use gatehouse_config::Config;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::acme::AcmeState;
use crate::admin::{self, ReloadRequest};
use crate::cache::robots::RobotsGuard;
use crate::cache::store::Cache;
use crate::listener::{ConnTracker, accept_loop};
use crate::observe::Observer;
use crate::snapshot::listeners::{ListenerError, ListenerKey, ListenerKind, Listeners};
use crate::snapshot::{Current, Lasting, Snapshot};
use crate::workers::Workers;

/// A startup failure, worded for the one line it becomes on stderr.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot listen on {addr}: {source}{hint}", hint = bind_hint(source))]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("{0} (cache.disk_path)")]
    CacheFile(#[from] crate::cache::disk::DiskError),
    #[error("{0}")]
    Listeners(#[from] ListenerError),
}

/// Binds `count` listening sockets to `addr`: one, or with `SO_REUSEPORT` one per worker (all on
/// the port the first was given, for port 0). Before sharing a port, a plain bind checks that
/// no other process listens on it, so a second gatehouse on the same port is refused as it
/// would be without workers rather than silently splitting the connections.
fn bind(addr: SocketAddr, count: usize) -> Result<Vec<std::net::TcpListener>, StartupError> {
    let failed = |source| StartupError::Bind { addr, source };
    if count <= 1 {
        return Ok(vec![listening_socket(addr, false).map_err(failed)?]);
    }
    if addr.port() != 0 {
        drop(listening_socket(addr, false).map_err(failed)?);
    }
    let first = listening_socket(addr, true).map_err(failed)?;
    let actual = first.local_addr().map_err(failed)?;
    let mut sockets = vec![first];
    for _ in 1..count {
        sockets.push(listening_socket(actual, true).map_err(failed)?);
    }
    Ok(sockets)
}

/// A non-blocking listening socket, as tokio's `TcpListener::bind` makes one (`SO_REUSEADDR`,
/// a backlog of 1024), optionally with `SO_REUSEPORT`.
fn listening_socket(addr: SocketAddr, reuse_port: bool) -> io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

fn bind_hint(err: &io::Error) -> &'static str {
    match err.kind() {
        io::ErrorKind::AddrInUse => {
            " (another process is using this port; stop it or change the listen address)"
        }
        io::ErrorKind::PermissionDenied => " (ports below 1024 need privileges; use a higher port)",
        io::ErrorKind::AddrNotAvailable => " (this machine has no such address)",
        _ => "",
    }
}

/// A bound, serving gatehouse.
#[derive(Debug)]
pub struct Running {
    /// The proxy listeners' actual addresses at startup (useful with port 0), in config
    /// order: `listen`, then the TLS listeners, then the redirect listeners.
    pub listen: Vec<SocketAddr>,
    pub admin: Option<SocketAddr>,
    current: Current,
    /// Health, metrics, the cache, ...: what every snapshot shares.
    lasting: Lasting,
    /// The keys the process-wide state was built from, which a reload cannot change.
    started: StartedWith,
    /// The open proxy listeners by their configured address (and occurrence of it).
    listeners: Mutex<HashMap<ListenerKey, OpenListener>>,
    shutdown: watch::Sender<bool>,
    tracker: Arc<ConnTracker>,
    drain_timeout: std::time::Duration,
    /// Reloads asked for on the admin listener, until taken by whoever performs reloads.
    reload_requests: Mutex<Option<mpsc::Receiver<ReloadRequest>>>,
    /// The per-core workers that accept and serve connections; without them, the runtime
    /// that started gatehouse does.
    workers: Option<Workers>,
    /// The `[acme]` in force, watched by the ACME task.
    acme_config: watch::Sender<Option<gatehouse_config::AcmeConfig>>,
}

/// A proxy listener's accept loop and the switch that closes it.
#[derive(Debug)]
struct OpenListener {
    /// The address it is bound to.
    actual: SocketAddr,
    close: watch::Sender<bool>,
    /// One accept loop per socket: one per worker.
    accepting: Vec<tokio::task::JoinHandle<()>>,
}

/// What a reload changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reloaded {
    pub listeners_opened: Vec<SocketAddr>,
    pub listeners_closed: Vec<SocketAddr>,
}

impl Running {
    /// Binds every listener of `config` and starts serving; access records are log events.
    pub async fn start(config: Config) -> Result<Self, StartupError> {
        Self::start_with(config, Observer::default()).await
    }

    /// Like [`Running::start`], reporting through `observer`: e.g.
    /// [`Observer::with_access_sink`] to write access records as combined or JSON lines.
    pub async fn start_with(config: Config, observer: Observer) -> Result<Self, StartupError> {
        Self::start_on(config, observer, None).await
    }

    /// Like [`Running::start_with`], with every connection accepted and served by one of
    /// `workers` (each proxy listener gets one `SO_REUSEPORT` socket per worker); the admin
    /// listener, health checks and reloads stay on the calling runtime.
    pub async fn start_with_workers(
        config: Config,
        observer: Observer,
        workers: Workers,
    ) -> Result<Self, StartupError> {
        Self::start_on(config, observer, Some(workers)).await
    }

    async fn start_on(
        config: Config,
        observer: Observer,
        workers: Option<Workers>,
    ) -> Result<Self, StartupError> {
        let per_listener = workers.as_ref().map_or(1, Workers::len);
        let acme = Arc::new(AcmeState::default());
        let mut listeners = Listeners::build(&config.server, &acme)?;
        let mut bound = Vec::new();
        for (key, _) in listeners.iter() {
            bound.push((key, bind(key.addr, per_listener)?));
        }
        let admin_listener = match config.server.admin {
            Some(addr) => Some(admin_socket(addr)?),
            None => None,
        };
        let drain_timeout = config.server.drain_timeout;
        let mut lasting = lasting(&config, observer).await?;
        lasting.acme = acme;
        let started = StartedWith::of(&config);
        let (acme_config, acme_watch) = watch::channel(config.acme.clone());
        let acme_dir = config
            .server
            .state_dir
            .clone()
            .unwrap_or_else(crate::cache::robots::default_state_dir);
        listeners.bound(|key| bound_addr(&bound, key));
        let snapshot = Arc::new(Snapshot::build(config, &lasting, listeners));
        snapshot.start_tasks();
        let current: Current = Arc::new(ArcSwap::new(snapshot));
        let (shutdown, _) = watch::channel(false);
        let (reload_sender, reload_requests) = mpsc::channel(4);
        let running = Self {
            listen: Vec::new(),
            admin: None,
            current,
            lasting,
            started,
            listeners: Mutex::new(HashMap::new()),
            shutdown,
            tracker: Arc::new(ConnTracker::default()),
            drain_timeout,
            reload_requests: Mutex::new(Some(reload_requests)),
            workers,
            acme_config,
        };
        // Started even without `[acme]`: a reload may turn it on.
        tokio::spawn(crate::acme::task::run(
            Arc::clone(&running.lasting.acme),
            acme_watch,
            acme_dir,
            running.shutdown.subscribe(),
        ));
        tokio::spawn(crate::observe::rates::sample_rates(
            Arc::downgrade(&running.lasting.observer),
            running.shutdown.subscribe(),
        ));
        let mut listen = Vec::new();
        for (key, listener) in bound {
            listen.push(running.serve_listener(key, listener)?);
        }
        let admin = match admin_listener {
            Some(listener) => {
                let addr = listener.local_addr().ok();
                if let Some(addr) = addr {
                    tracing::info!(%addr, "admin listening");
                }
                tokio::spawn(admin::serve(
                    listener,
                    admin::Admin {
                        current: Arc::clone(&running.current),
                        connections: Arc::clone(&running.tracker),
                        reloads: reload_sender,
                    },
                    running.shutdown.subscribe(),
                ));
                addr
            }
            None => None,
        };
        Ok(Self {
            listen,
            admin,
            ..running
        })
    }

    /// Starts the accept loop of one bound proxy listener; returns its actual address. What it
    /// serves comes from the snapshot in force, which already has it.
    fn serve_listener(
        &self,
        key: ListenerKey,
        sockets: Vec<std::net::TcpListener>,
    ) -> Result<SocketAddr, StartupError> {
        let addr = sockets
            .first()
            .map_or_else(
                || Err(io::Error::other("no socket was bound")),
                std::net::TcpListener::local_addr,
            )
            .map_err(|source| StartupError::Bind {
                addr: key.addr,
                source,
            })?;
        let protocol = self
            .current
            .load()
            .listeners
            .kind(key)
            .map_or("http", ListenerKind::protocol);
        tracing::info!(%addr, protocol, sockets = sockets.len(), "listening");
        let (close, close_rx) = watch::channel(false);
        let mut accepting = Vec::with_capacity(sockets.len());
        for (index, socket) in sockets.into_iter().enumerate() {
            let current = Arc::clone(&self.current);
            let tracker = Arc::clone(&self.tracker);
            let shutdown = self.shutdown.subscribe();
            let close = close_rx.clone();
            // Registered with the reactor of the runtime it runs on, so it is made there.
            let task = async move {
                match TcpListener::from_std(socket) {
                    Ok(listener) => {
                        accept_loop(listener, key, current, tracker, shutdown, close).await;
                    }
                    Err(err) => {
                        tracing::error!(%addr, error = %err, "cannot accept on a listening socket")
                    }
                }
            };
            accepting.push(match &self.workers {
                Some(workers) => workers.handle(index).spawn(task),
                None => tokio::spawn(task),
            });
        }
        self.lock_listeners().insert(
            key,
            OpenListener {
                actual: addr,
                close,
                accepting,
            },
        );
        Ok(addr)
    }

    fn lock_listeners(&self) -> std::sync::MutexGuard<'_, HashMap<ListenerKey, OpenListener>> {
        self.listeners
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Swaps in a new, already validated config: the TLS configurations are built and the
    /// listeners it adds are opened first (a failure of either refuses the whole reload and
    /// changes nothing), then the new snapshot replaces the old one, whose background tasks
    /// stop, and listeners it drops stop accepting. A listener it keeps keeps its socket and
    /// serves what the new config says from the next accepted connection on (new certificates,
    /// or another kind); connections already open keep their TLS session and settings.
    /// Requests in flight finish on the snapshot they started with; server health and
    /// ejection state carry over by address. `drain_timeout`, `workers` and `admin` take
    /// effect at the next start.
    pub async fn reload(&self, config: Config) -> Result<Reloaded, StartupError> {
        let mut listeners = Listeners::build(&config.server, &self.lasting.acme)?;
        let wanted: Vec<ListenerKey> = listeners.iter().map(|(key, _)| key).collect();
        let open: HashMap<ListenerKey, SocketAddr> = self
            .lock_listeners()
            .iter()
            .map(|(key, listener)| (*key, listener.actual))
            .collect();
        let mut bound = Vec::new();
        let per_listener = self.workers.as_ref().map_or(1, Workers::len);
        for key in wanted.iter().filter(|key| !open.contains_key(key)) {
            bound.push((*key, bind(key.addr, per_listener)?));
        }
        listeners.bound(|key| open.get(&key).copied().or_else(|| bound_addr(&bound, key)));
        self.acme_config.send_if_modified(|acme| {
            let changed = *acme != config.acme;
            acme.clone_from(&config.acme);
            changed
        });
        let snapshot = Arc::new(Snapshot::build(config, &self.lasting, listeners));
        snapshot.start_tasks();
        let old = self.current.swap(Arc::clone(&snapshot));
        old.retire();
        for (key, kind) in snapshot.listeners.iter() {
            if let (Some(addr), Some(was)) = (open.get(&key), old.listeners.kind(key))
                && was.protocol() != kind.protocol()
            {
                tracing::info!(%addr, protocol = kind.protocol(), was = was.protocol(), "listener protocol changed by reload");
            }
        }
        let mut reloaded = Reloaded::default();
        for (key, listener) in bound {
            reloaded
                .listeners_opened
                .push(self.serve_listener(key, listener)?);
        }
        let closing: Vec<(ListenerKey, OpenListener)> = {
            let mut listeners = self.lock_listeners();
            let gone: Vec<ListenerKey> = listeners
                .keys()
                .filter(|key| !wanted.contains(key))
                .copied()
                .collect();
            gone.into_iter()
                .filter_map(|key| listeners.remove(&key).map(|l| (key, l)))
                .collect()
        };
        for (key, listener) in closing {
            let _ = listener.close.send(true);
            // A socket is closed once its accept loop has returned; the reload is reported
            // done only then. Connections they accepted carry on.
            for accepting in listener.accepting {
                let _ = accepting.await;
            }
            tracing::info!(addr = %key, "listener closed by reload");
            reloaded.listeners_closed.push(key.addr);
        }
        Ok(reloaded)
    }

    /// One warning per start-only cache key that `new` changes (the cache and the robots.txt
    /// guard are built once, at start).
    pub fn start_only_changes(&self, new: &Config) -> Vec<String> {
        let now = StartedWith::of(new);
        let mut changes = Vec::new();
        let mut changed = |key: &str, from: String, to: String| {
            if from != to {
                changes.push(format!(
                    "{key} changed from {from} to {to}: it takes effect at the next start; until then gatehouse keeps {from}"
                ));
            }
        };
        let path = |p: &Option<std::path::PathBuf>| {
            p.as_ref()
                .map_or_else(|| "(default)".to_owned(), |p| p.display().to_string())
        };
        let was = &self.started;
        changed(
            "cache.memory",
            was.memory.to_string(),
            now.memory.to_string(),
        );
        changed(
            "cache.disk_path",
            path(&was.disk_path),
            path(&now.disk_path),
        );
        changed(
            "cache.disk_size",
            was.disk_size.to_string(),
            now.disk_size.to_string(),
        );
        changed(
            "server.state_dir",
            path(&was.state_dir),
            path(&now.state_dir),
        );
        if !was.robots_guard && now.robots_guard {
            changes.push(
                "robots.guard turned on: copies are kept in memory only until the next start"
                    .to_owned(),
            );
        }
        changes
    }

    /// The reloads asked for with `POST /reload` on the admin listener; `None` after the
    /// first call. The caller loads the config, calls [`Running::reload`] and answers.
    pub fn take_reload_requests(&self) -> Option<mpsc::Receiver<ReloadRequest>> {
        self.reload_requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }

    /// Counts a reload's outcome (`gatehouse_reloads_total`, the last-reload gauges).
    pub fn count_reload(&self, taken: bool) {
        self.lasting.observer.metrics.reload(taken);
    }

    /// The snapshot in force.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
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

/// The address the socket of `key` was bound to, among those just bound.
fn bound_addr(
    bound: &[(ListenerKey, Vec<std::net::TcpListener>)],
    key: ListenerKey,
) -> Option<SocketAddr> {
    bound
        .iter()
        .find(|(k, _)| *k == key)
        .and_then(|(_, sockets)| sockets.first())
        .and_then(|socket| socket.local_addr().ok())
}

/// The admin listener's socket, on the calling runtime.
fn admin_socket(addr: SocketAddr) -> Result<TcpListener, StartupError> {
    let failed = |source| StartupError::Bind { addr, source };
    let socket = listening_socket(addr, false).map_err(failed)?;
    TcpListener::from_std(socket).map_err(failed)
}

/// The process-wide state for `config`: the cache (with its file, when configured) and the
/// robots.txt guard (its copies in `server.state_dir`, unless the guard is off). Opening the
/// files reads them (redb checks every page), so it runs on the blocking pool.
async fn lasting(config: &Config, observer: Observer) -> Result<Lasting, StartupError> {
    let cache_config = config.cache.clone();
    let robots_dir = config.robots.guard.then(|| {
        config
            .server
            .state_dir
            .clone()
            .unwrap_or_else(crate::cache::robots::default_state_dir)
    });
    let opened = tokio::task::spawn_blocking(move || {
        let mut lasting = Lasting::in_memory(
            Arc::new(observer),
            cache_config.memory,
            cache_config.max_object_size,
        );
        if let Some(path) = &cache_config.disk_path {
            lasting.cache = Arc::new(Cache::with_disk(
                cache_config.memory,
                cache_config.max_object_size,
                path,
                cache_config.disk_size,
            )?);
        }
        if let Some(dir) = robots_dir {
            lasting.robots = Arc::new(RobotsGuard::open(&dir));
        }
        Ok(lasting)
    })
    .await;
    // A panic while opening (the task is never cancelled) is passed on as it was.
    opened.unwrap_or_else(|err| std::panic::resume_unwind(err.into_panic()))
}

/// What the process-wide state was built from.
#[derive(Debug, Clone, PartialEq)]
struct StartedWith {
    memory: u64,
    disk_path: Option<std::path::PathBuf>,
    disk_size: u64,
    state_dir: Option<std::path::PathBuf>,
    robots_guard: bool,
}

impl StartedWith {
    fn of(config: &Config) -> Self {
        Self {
            memory: config.cache.memory,
            disk_path: config.cache.disk_path.clone(),
            disk_size: config.cache.disk_size,
            state_dir: config.server.state_dir.clone(),
            robots_guard: config.robots.guard,
        }
    }
}
