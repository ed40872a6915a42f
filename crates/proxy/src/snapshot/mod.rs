//! The immutable runtime form of one validated config: router, upstream pools, resolver,
//! what each listening address serves (TLS certificates included) and prebuilt header values. A
//! request takes one `Arc<Snapshot>` at its start and uses only that.
//!
//! What must outlive a snapshot (each server's health and ejection state) lives in the
//! [`StateRegistry`] it was built with, keyed by pool and address.

use std::sync::Arc;

use arc_swap::ArcSwap;
use gatehouse_config::Config;
use http::HeaderValue;

use crate::acme::AcmeState;
use crate::cache::robots::RobotsGuard;
use crate::cache::store::Cache;
use crate::failure::proxy_status::ProxyStatusWriter;
use crate::limit::{InForce, Limits};
use crate::maintenance::MaintenanceSwitch;
use crate::observe::Observer;
use crate::router::Router;
use crate::upstream::checker;
use crate::upstream::dns::Dns;
use crate::upstream::health::StateRegistry;
use crate::upstream::pool::{self, Pool};
use listeners::Listeners;

pub mod listeners;
mod sni;
pub mod tls;

/// The snapshot in force, swapped whole by a reload. Connections and requests `load_full` it
/// once and keep what they got, so a request finishes on the config it started with.
pub type Current = Arc<ArcSwap<Snapshot>>;

/// What lives for the whole process and every snapshot shares: server health, the observer,
/// the cache, the robots.txt guard, the maintenance switches and the limits' counters. A
/// reload keeps them.
#[derive(Debug, Clone)]
pub struct Lasting {
    pub registry: Arc<StateRegistry>,
    pub observer: Arc<Observer>,
    pub cache: Arc<Cache>,
    pub robots: Arc<RobotsGuard>,
    pub maintenance: Arc<MaintenanceSwitch>,
    pub limits: Arc<Limits>,
    /// Certificates obtained through ACME and the challenges being answered.
    pub acme: Arc<AcmeState>,
}

impl Lasting {
    /// Everything in memory: a cache of `cache_memory` bytes (responses up to `max_object`),
    /// robots.txt copies lost on exit.
    pub fn in_memory(observer: Arc<Observer>, cache_memory: u64, max_object: u64) -> Self {
        Self {
            registry: Arc::new(StateRegistry::default()),
            observer,
            cache: Arc::new(Cache::in_memory(cache_memory, max_object)),
            robots: Arc::new(RobotsGuard::in_memory()),
            maintenance: Arc::new(MaintenanceSwitch::default()),
            limits: Arc::new(Limits::default()),
            acme: Arc::new(AcmeState::default()),
        }
    }
}

#[derive(Debug)]
pub struct Snapshot {
    pub config: Config,
    pub router: Router,
    pub upstreams: Vec<Arc<Pool>>,
    pub dns: Arc<Dns>,
    /// What each listening address serves: the accept loops look here on every accept.
    pub listeners: Listeners,
    pub proxy_status: ProxyStatusWriter,
    /// The `full` writer, for clients in `proxy_status_full_for`.
    pub proxy_status_full: ProxyStatusWriter,
    /// `[compress]` or some `[route.compress]` is on: requests' `Accept-Encoding` is read.
    pub compresses: bool,
    /// `1.1 <name>`, appended to `Via`.
    pub via: HeaderValue,
    /// Metrics, recent failures and rates; the same for every snapshot of the process.
    pub observer: Arc<Observer>,
    /// The response cache, the robots.txt guard and the maintenance switches (process-wide).
    pub cache: Arc<Cache>,
    pub robots: Arc<RobotsGuard>,
    pub maintenance: Arc<MaintenanceSwitch>,
    /// The targeted cache-control fields the cache obeys, highest precedence first
    /// (RFC 9213): `cache.targeted_field`, then `CDN-Cache-Control`.
    pub cache_targets: Vec<http::HeaderName>,
    /// `cache.targeted_field` when it is not forwarded (`forward_targeted_field = false`): removed
    /// from responses on caching routes.
    pub cache_hidden: Option<http::HeaderName>,
    /// The limits' store and settings (`[limits]`); their counters are process-wide.
    pub limits: InForce,
    /// ACME certificates and open challenges (process-wide).
    pub acme: Arc<AcmeState>,
}

/// The targeted fields of `[cache]`, in order of precedence.
fn cache_targets(cache: &gatehouse_config::CacheConfig) -> Vec<http::HeaderName> {
    let own = cache
        .targeted_field
        .as_deref()
        .and_then(|name| http::HeaderName::from_bytes(name.as_bytes()).ok());
    let cdn = cache
        .cdn_cache_control
        .then(|| http::HeaderName::from_static("cdn-cache-control"));
    own.into_iter().chain(cdn).collect()
}

impl Snapshot {
    /// Assembles a snapshot. What can fail (TLS configurations) was built beforehand into
    /// `listeners` ([`Listeners::build`]), so that a reload is refused before anything else.
    pub fn build(config: Config, lasting: &Lasting, listeners: Listeners) -> Self {
        let Lasting {
            registry, observer, ..
        } = lasting;
        let upstreams: Vec<Arc<Pool>> = config
            .upstreams
            .iter()
            .map(|upstream| {
                Arc::new(Pool::new(
                    upstream,
                    Arc::clone(registry),
                    Arc::clone(observer),
                ))
            })
            .collect();
        let router = Router::new(&config.routes, |name| {
            upstreams.iter().position(|u| &*u.name == name)
        });
        let via = HeaderValue::from_str(&format!("1.1 {}", config.server.name))
            .unwrap_or_else(|_| HeaderValue::from_static("1.1 gatehouse"));
        Self {
            router,
            upstreams,
            dns: Arc::new(Dns::new(&config.dns)),
            listeners,
            proxy_status: ProxyStatusWriter::new(&config.server.name, config.server.proxy_status),
            proxy_status_full: ProxyStatusWriter::new(
                &config.server.name,
                gatehouse_config::ProxyStatusMode::Full,
            ),
            compresses: config.compress.enabled
                || config
                    .routes
                    .iter()
                    .any(|route| route.compress.as_ref().is_some_and(|c| c.enabled)),
            via,
            observer: Arc::clone(observer),
            cache: Arc::clone(&lasting.cache),
            robots: Arc::clone(&lasting.robots),
            maintenance: Arc::clone(&lasting.maintenance),
            cache_targets: cache_targets(&config.cache),
            cache_hidden: config
                .cache
                .targeted_field
                .as_deref()
                .filter(|_| !config.cache.forward_targeted_field)
                .and_then(|name| http::HeaderName::from_bytes(name.as_bytes()).ok()),
            limits: lasting.limits.in_force(
                &config.limits,
                config
                    .routes
                    .iter()
                    .any(|r| r.limit.as_ref().is_some_and(|l| l.rate.is_some())),
            ),
            acme: Arc::clone(&lasting.acme),
            config,
        }
    }

    /// Starts the pools' background tasks (DNS re-resolution, active health checks). They stop
    /// by themselves once the snapshot is dropped or [`Snapshot::retire`]d.
    pub fn start_tasks(&self) {
        for pool in &self.upstreams {
            if pool.has_names() {
                tokio::spawn(pool::keep_resolved(
                    Arc::downgrade(pool),
                    Arc::clone(&self.dns),
                ));
            }
            if let Some(check) = &pool.config.health {
                tokio::spawn(checker::run_checks(Arc::downgrade(pool), check.clone()));
            }
        }
    }

    /// Stops the background tasks; requests still in flight keep using the snapshot.
    pub fn retire(&self) {
        for pool in &self.upstreams {
            pool.retire();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::health::CheckResult;

    fn config(servers: &str) -> Config {
        let text = format!("[[route]]\nupstream = \"app\"\n[upstream.app]\nservers = {servers}\n");
        gatehouse_config::parse("test.toml", &text)
            .unwrap_or_else(|e| panic!("config: {e:?}"))
            .config
    }

    #[test]
    fn server_state_carries_over_to_the_next_snapshot_by_address() {
        let lasting = Lasting::in_memory(Arc::new(Observer::default()), 1 << 20, 1 << 16);
        let old = Snapshot::build(
            config(r#"["127.0.0.1:1", "127.0.0.1:2"]"#),
            &lasting,
            Listeners::default(),
        );
        let old_members = old.upstreams[0].members();
        old_members.primaries.servers[0].state.observe_check(
            CheckResult::Fail("status 500".into()),
            1,
            1,
        );

        // The new config drops :2, keeps :1 (now weighted) and adds :3.
        let new = Snapshot::build(
            config(r#"[{ address = "127.0.0.1:1", weight = 2 }, "127.0.0.1:3"]"#),
            &lasting,
            Listeners::default(),
        );
        let new_members = new.upstreams[0].members();
        let by_port = |port: u16| {
            new_members
                .all()
                .find(|s| s.addr.port() == port)
                .unwrap_or_else(|| panic!("no server :{port}"))
        };
        assert!(
            by_port(1).state.is_down(),
            "what was learnt about :1 is kept"
        );
        assert!(Arc::ptr_eq(
            &by_port(1).state,
            &old_members.primaries.servers[0].state
        ));
        assert_eq!(by_port(1).weight, 2, "the new config's settings apply");
        assert!(!by_port(3).state.is_down(), "a new server starts up");
    }
}
