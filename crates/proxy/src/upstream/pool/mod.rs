//! An upstream pool: its current servers (host names expanded to their addresses), and choosing
//! one for a request under health, tried-set and connection limits (a wait queue when every
//! server is full). `discovery.rs` keeps the server list current (DNS, [`keep_resolved`]).
//!
//! The server list is an immutable [`Members`] swapped atomically when DNS changes it; a request
//! takes one `Arc<Members>` and keeps it for all its attempts.

use std::net::{IpAddr, SocketAddr};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use gatehouse_config::{UpstreamConfig, UpstreamServer};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::balance::{Balancer, Tier};
use super::budget::RetryBudget;
use super::health::StateRegistry;
use super::server::{ConnSettings, Lease, Server, WaitQueue};
use super::tls::TlsClients;
use crate::failure::{Failure, FailureKind, Phase};
use crate::observe::Observer;

/// One `[upstream.NAME]` at run time.
#[derive(Debug)]
pub struct Pool {
    pub name: Arc<str>,
    pub config: UpstreamConfig,
    /// The pool's settings; each server adds how it is reached (see `tls_target`).
    pub settings: ConnSettings,
    /// The TLS client configurations of the pool's TLS servers, built once per pool (per
    /// snapshot), or why they could not be; `None` when no server uses TLS.
    tls_clients: Option<Result<Arc<TlsClients>, Arc<str>>>,
    pub balancer: Balancer,
    pub budget: RetryBudget,
    members: ArcSwap<Members>,
    /// Signalled whenever `members` is rebuilt (a request may wait for the first resolution).
    changed: Notify,
    /// Requests waiting for a connection slot, woken when a server frees one.
    queue: Arc<WaitQueue>,
    /// Held while deciding and carrying out a passive ejection, so that two servers failing
    /// at once cannot both pass the ejection cap.
    ejecting: Mutex<()>,
    /// What each `servers` entry currently resolves to, in config order.
    entries: Mutex<Vec<Entry>>,
    registry: Arc<StateRegistry>,
    /// Where health changes are logged and counted.
    pub(crate) observer: Arc<Observer>,
    /// Set when a newer snapshot replaced this pool: background tasks stop.
    retired: AtomicBool,
}

/// The servers of a pool at one moment.
#[derive(Debug, Default)]
pub struct Members {
    pub primaries: Tier,
    pub backups: Tier,
    /// Entries without a usable address (`pool/host:port`), with why (`dns_error`,
    /// `destination_ip_prohibited`, ...).
    pub unusable: Vec<(String, Failure)>,
    /// Some host name has not been resolved yet.
    pub pending: bool,
}

/// The resolution state of one `servers` entry.
#[derive(Debug)]
struct Entry {
    server: UpstreamServer,
    /// The last good addresses (kept when a later resolution fails).
    addrs: Vec<IpAddr>,
    /// The latest resolution's failure, if it failed.
    failure: Option<Failure>,
    resolved: bool,
}

/// Why no server could be leased.
#[derive(Debug)]
pub enum NoServer {
    /// Nothing in the pool can take the request: answer with this, naming this next hop
    /// (the entry at fault, when one entry explains it).
    Failure(Failure, Option<String>),
    /// Servers are available, but every one was already tried by this request.
    AllTried,
}

impl Members {
    pub fn all(&self) -> impl Iterator<Item = &Arc<Server>> {
        self.primaries.servers.iter().chain(&self.backups.servers)
    }

    pub fn is_empty(&self) -> bool {
        self.primaries.servers.is_empty() && self.backups.servers.is_empty()
    }

    /// Whether some available server is not in `tried`.
    pub fn has_untried(&self, tried: &[SocketAddr], now: Instant) -> bool {
        self.all()
            .any(|s| !tried.contains(&s.addr) && s.state.is_available(now))
    }

    fn find(&self, addr: SocketAddr) -> Option<&Arc<Server>> {
        self.all().find(|server| server.addr == addr)
    }
}

// === impl Pool ===

impl Pool {
    pub fn new(
        config: &UpstreamConfig,
        registry: Arc<StateRegistry>,
        observer: Arc<Observer>,
    ) -> Self {
        let entries = config
            .servers
            .iter()
            .map(|server| Entry {
                addrs: server.address.ip.into_iter().collect(),
                resolved: server.address.ip.is_some(),
                failure: None,
                server: server.clone(),
            })
            .collect();
        let tls_clients = config.servers.iter().any(|s| s.tls).then(|| {
            TlsClients::new(&config.tls, config.http2)
                .map(Arc::new)
                .map_err(|why| {
                    // The config check loads the same files; this is a file changed since.
                    tracing::error!(
                        pool = %config.name,
                        "the TLS settings of this upstream cannot be used; its TLS servers will fail with proxy_configuration_error: {why}"
                    );
                    Arc::from(why)
                })
        });
        let pool = Self {
            name: config.name.as_str().into(),
            settings: ConnSettings::from(config),
            tls_clients,
            balancer: Balancer::new(config.balance.clone()),
            budget: RetryBudget::new(config.retry.budget, config.retry.min_retries_per_second),
            members: ArcSwap::from_pointee(Members::default()),
            changed: Notify::new(),
            queue: Arc::new(WaitQueue::default()),
            ejecting: Mutex::new(()),
            entries: Mutex::new(entries),
            registry,
            observer,
            retired: AtomicBool::new(false),
            config: config.clone(),
        };
        pool.rebuild();
        pool
    }

    pub fn members(&self) -> Arc<Members> {
        self.members.load_full()
    }

    /// Whether some server entry is a host name (and needs the resolver task).
    pub fn has_names(&self) -> bool {
        self.config.servers.iter().any(|s| s.address.ip.is_none())
    }

    /// Stops the background tasks (a newer snapshot took over).
    pub fn retire(&self) {
        self.retired.store(true, Ordering::Relaxed);
    }

    pub fn is_retired(&self) -> bool {
        self.retired.load(Ordering::Relaxed)
    }

    /// The members, once every host name was resolved at least once (waiting at most `wait`).
    pub async fn ready_members(&self, wait: Duration) -> Arc<Members> {
        let members = self.members();
        if !members.pending {
            return members;
        }
        let deadline = Instant::now() + wait;
        loop {
            let mut notified = pin!(self.changed.notified());
            notified.as_mut().enable();
            let members = self.members();
            if !members.pending {
                return members;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.members();
            }
        }
    }

    /// Leases a connection slot on a server chosen by the pool's balancing, among servers that
    /// are available and not in `tried`; backups only when no primary is available. When every
    /// candidate is at its connection limit the request waits in the pool's bounded queue.
    pub async fn acquire(
        &self,
        members: &Members,
        key: Option<u64>,
        tried: &[SocketAddr],
    ) -> Result<Lease, NoServer> {
        let mut now = Instant::now();
        let queue_deadline = now + self.config.queue_timeout;
        let mut queued: Option<QueueSlot<'_>> = None;
        loop {
            let usable = |s: &Server| s.state.is_available(now) && !tried.contains(&s.addr);
            let tier = if members.primaries.servers.iter().any(|s| usable(s)) {
                &members.primaries
            } else if members.backups.servers.iter().any(|s| usable(s)) {
                &members.backups
            } else if tried.is_empty() {
                let (failure, next_hop) = self.unavailable(members, now);
                return Err(NoServer::Failure(failure, next_hop));
            } else {
                return Err(NoServer::AllTried);
            };
            let retry = !tried.is_empty();
            if let Some(lease) = self.lease_in(tier, key, retry, &usable) {
                return Ok(lease);
            }
            // Every usable server is at its connection limit: wait in the queue.
            if queued.is_none() {
                queued = QueueSlot::take(&self.queue.waiting, self.config.queue_size);
                if queued.is_none() {
                    let failure = self.limit_reached("the wait queue is full");
                    return Err(NoServer::Failure(failure, None));
                }
            }
            // Registered before looking again, so a slot freed in between is not missed.
            let mut freed = pin!(self.queue.slot_freed.notified());
            freed.as_mut().enable();
            if let Some(lease) = self.lease_in(tier, key, retry, &usable) {
                return Ok(lease);
            }
            if tokio::time::timeout_at(queue_deadline, freed)
                .await
                .is_err()
            {
                let failure =
                    self.limit_reached("no connection slot was freed within queue_timeout");
                return Err(NoServer::Failure(failure, None));
            }
            now = Instant::now();
        }
    }

    /// A slot on the server the balancer picks among the usable ones of `tier`, moving on to
    /// the next pick while the picked one is at its connection limit.
    fn lease_in(
        &self,
        tier: &Tier,
        key: Option<u64>,
        retry: bool,
        usable: &impl Fn(&Server) -> bool,
    ) -> Option<Lease> {
        let mut full: Vec<SocketAddr> = Vec::new();
        while let Some(index) = self
            .balancer
            .pick(tier, key, retry, |s| usable(s) && !full.contains(&s.addr))
        {
            let server = &tier.servers[index];
            match server.try_lease() {
                Some(lease) => return Some(lease),
                None => full.push(server.addr),
            }
        }
        None
    }

    /// Records the outcome of an attempt on `server` for passive health: a response, or a
    /// failure that says something about the server.
    pub fn record_outcome(&self, members: &Members, server: &Server, failure: Option<FailureKind>) {
        let transition = match failure {
            None => server.state.record_success(),
            Some(kind) if kind.is_server_fault() => {
                let now = Instant::now();
                server
                    .state
                    .record_failure(kind, &self.config.passive, now, || {
                        // Held through the ejection itself: the cap is checked and applied
                        // as one step. Never held together with a server's lock.
                        let guard = self.ejecting.lock().unwrap_or_else(|e| e.into_inner());
                        let allowed = self.may_eject_another(members, now);
                        allowed.then_some(guard)
                    })
            }
            Some(_) => None,
        };
        if let Some(transition) = transition {
            self.observer
                .transition(&self.name, &server.label, &transition);
        }
    }

    /// Wakes every request waiting for a connection slot, to look again (a server came back).
    pub fn wake_queued(&self) {
        self.queue.slot_freed.notify_waiters();
    }

    /// The ejection cap: at most `max_ejected_percent` of the pool's servers ejected at once,
    /// and never the last available one (servers down by active checks count as out), so
    /// passive health alone can never empty a pool.
    fn may_eject_another(&self, members: &Members, now: Instant) -> bool {
        let total = members.all().count();
        let ejected = members.all().filter(|s| s.state.is_ejected(now)).count();
        let available = members.all().filter(|s| s.state.is_available(now)).count();
        let allowed = total * usize::from(self.config.passive.max_ejected_percent) / 100;
        ejected < allowed && available > 1
    }

    /// The failure for "nothing in this pool can take a request".
    fn unavailable(&self, members: &Members, now: Instant) -> (Failure, Option<String>) {
        if members.is_empty() {
            if let Some((label, failure)) = members.unusable.first() {
                return (failure.clone(), Some(label.clone()));
            }
            if members.pending {
                let failure = Failure::new(
                    FailureKind::DnsTimeout,
                    Phase::Resolving,
                    format!(
                        "the server names of pool {} are not resolved yet",
                        self.name
                    ),
                );
                return (failure, None);
            }
            let failure = Failure::new(
                FailureKind::ProxyConfigurationError,
                Phase::Selecting,
                format!("upstream {} has no servers", self.name),
            );
            return (failure, None);
        }
        let mut down = 0;
        let mut ejected = 0;
        let mut reasons: Vec<String> = Vec::new();
        let mut out: Vec<String> = Vec::new();
        for server in members.all() {
            let why = server
                .state
                .why_out(now)
                .unwrap_or_else(|| "out".to_owned());
            if server.state.is_down() {
                down += 1;
            } else {
                ejected += 1;
            }
            if let Some(reason) = server.state.reason(now)
                && !reasons.contains(&reason)
            {
                reasons.push(reason);
            }
            out.push(format!("{} {why}", server.label));
        }
        for (label, failure) in &members.unusable {
            out.push(format!("{label} {}", failure.details));
        }
        let total = members.all().count();
        let mut note = format!("All {total} servers of this site's backend are out of service");
        let mut parts = Vec::new();
        if down > 0 {
            parts.push(format!("{down} failing health checks"));
        }
        if ejected > 0 {
            parts.push(format!("{ejected} taken out after repeated errors"));
        }
        if !parts.is_empty() {
            note.push_str(": ");
            note.push_str(&parts.join(", "));
        }
        if !reasons.is_empty() {
            note.push_str(&format!(" ({})", reasons.join(", ")));
        }
        note.push('.');
        let mut failure = Failure::new(
            FailureKind::DestinationUnavailable,
            Phase::Selecting,
            format!(
                "no server of pool {} is available: {}",
                self.name,
                out.join("; ")
            ),
        );
        failure.note = Some(note.into());
        (failure, None)
    }

    fn limit_reached(&self, why: &str) -> Failure {
        Failure::new(
            FailureKind::ConnectionLimitReached,
            Phase::Selecting,
            format!(
                "every available server of pool {} is at max_connections and {why} (queue_size {}, queue_timeout {:?})",
                self.name, self.config.queue_size, self.config.queue_timeout
            ),
        )
    }
}

/// A place in the wait queue of a pool, freed on drop.
#[derive(Debug)]
struct QueueSlot<'a> {
    queued: &'a AtomicU32,
}

impl<'a> QueueSlot<'a> {
    fn take(queued: &'a AtomicU32, size: u32) -> Option<Self> {
        queued
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| {
                (n < size).then_some(n + 1)
            })
            .ok()
            .map(|_| Self { queued })
    }
}

impl Drop for QueueSlot<'_> {
    fn drop(&mut self) {
        self.queued.fetch_sub(1, Ordering::AcqRel);
    }
}

mod discovery;

pub use discovery::keep_resolved;

#[cfg(test)]
mod tests;
