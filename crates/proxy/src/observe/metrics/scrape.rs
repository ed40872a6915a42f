//! The scrape: the state gauges refilled from what the admin listener reads off the snapshot in
//! force ([`ScrapeState`]), then every family encoded in the text format.

use std::sync::Arc;

use prometheus::{Encoder as _, TextEncoder};

use super::Metrics;

impl Metrics {
    /// One scrape: the state gauges refilled from `state`, then everything encoded.
    pub fn render(&self, state: &ScrapeState) -> String {
        let _one_at_a_time = self
            .scraping
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.open_connections
            .set(i64::try_from(state.open_connections).unwrap_or(i64::MAX));
        self.server_healthy.reset();
        self.server_in_flight.reset();
        self.healthy_servers.reset();
        self.servers.reset();
        for pool in &state.pools {
            let mut total = 0;
            let mut healthy = 0;
            for server in &pool.servers {
                total += 1;
                healthy += i64::from(server.available);
                self.server_healthy
                    .with_label_values(&[&*pool.name, &server.label])
                    .set(i64::from(server.available));
                self.server_in_flight
                    .with_label_values(&[&*pool.name, &server.label])
                    .set(i64::from(server.in_flight));
            }
            self.healthy_servers
                .with_label_values(&[&*pool.name])
                .set(healthy);
            self.servers.with_label_values(&[&*pool.name]).set(total);
        }
        self.limit_store_up.reset();
        if let Some((store, up)) = &state.limit_store {
            self.limit_store_up
                .with_label_values(&[store.as_str()])
                .set(i64::from(*up));
        }
        let usage = &state.cache;
        let as_gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        self.cache_bytes
            .with_label_values(&["memory"])
            .set(as_gauge(usage.memory_bytes));
        self.cache_bytes
            .with_label_values(&["disk"])
            .set(as_gauge(usage.disk_bytes));
        self.cache_entries
            .with_label_values(&["memory"])
            .set(as_gauge(usage.memory_entries));
        self.cache_entries
            .with_label_values(&["disk"])
            .set(as_gauge(usage.disk_entries));
        self.encode()
    }

    /// Everything, in the text format (state gauges as last filled).
    pub fn encode(&self) -> String {
        let mut out = Vec::new();
        if let Err(err) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %err, "metrics could not be encoded");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

/// What the state gauges show at one scrape, read from the snapshot in force by whoever serves
/// `/metrics` (the admin listener), so that metrics know nothing of pools or the cache.
#[derive(Debug, Default)]
pub struct ScrapeState {
    pub open_connections: usize,
    pub pools: Vec<PoolGauges>,
    pub cache: CacheGauges,
    /// The limits' store (`memory` or its redis:// address) and whether it answers; `None`
    /// when no route has a rate limit.
    pub limit_store: Option<(String, bool)>,
}

/// One pool's servers, as the gauges show them.
#[derive(Debug)]
pub struct PoolGauges {
    pub name: Arc<str>,
    pub servers: Vec<ServerGauges>,
}

/// One server: whether it may take requests now, and its requests in flight.
#[derive(Debug)]
pub struct ServerGauges {
    pub label: String,
    pub available: bool,
    pub in_flight: u32,
}

/// How full the cache is (entries and bytes, in memory and on disk).
#[derive(Debug, Default, Clone, Copy)]
pub struct CacheGauges {
    pub memory_entries: u64,
    pub memory_bytes: u64,
    pub disk_entries: u64,
    pub disk_bytes: u64,
}
