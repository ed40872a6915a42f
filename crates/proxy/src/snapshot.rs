//! The immutable runtime form of one validated config: router, upstream pools, resolver and
//! prebuilt header values. A request takes one `Arc<Snapshot>` at its start and uses only that.
//!
//! What must outlive a snapshot (each server's health and ejection state) lives in the
//! [`StateRegistry`] it was built with, keyed by pool and address.

use std::sync::Arc;

use gatehouse_config::Config;
use http::HeaderValue;

use crate::failure::proxy_status::ProxyStatusWriter;
use crate::router::Router;
use crate::upstream::checker;
use crate::upstream::dns::Dns;
use crate::upstream::health::StateRegistry;
use crate::upstream::pool::{self, Pool};

#[derive(Debug)]
pub struct Snapshot {
    pub config: Config,
    pub router: Router,
    pub upstreams: Vec<Arc<Pool>>,
    pub dns: Arc<Dns>,
    pub proxy_status: ProxyStatusWriter,
    /// `1.1 <name>`, appended to `Via`.
    pub via: HeaderValue,
}

impl Snapshot {
    pub fn build(config: Config, registry: &Arc<StateRegistry>) -> Self {
        let upstreams: Vec<Arc<Pool>> = config
            .upstreams
            .iter()
            .map(|upstream| Arc::new(Pool::new(upstream, Arc::clone(registry))))
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
            proxy_status: ProxyStatusWriter::new(&config.server.name, config.server.proxy_status),
            via,
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
