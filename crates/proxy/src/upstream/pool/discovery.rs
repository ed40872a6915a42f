//! The pool's server list kept current: host names resolved again as their TTL runs out (a
//! failed lookup keeps the last good addresses), and [`Members`] rebuilt from the entries'
//! addresses, keeping the `Server` (its state and idle connections) of every address that
//! stays.

use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use gatehouse_config::UpstreamServer;

use super::{Members, Pool};
use crate::failure::{Failure, FailureKind, Phase};
use crate::upstream::balance::Tier;
use crate::upstream::dns::Dns;
use crate::upstream::server::{Server, ServerSpec, TlsTarget};

/// How long a failed name is trusted before it is asked again.
const FAILED_NAME_RETRY: Duration = Duration::from_secs(5);
/// Shortest time between two resolutions of the same names, whatever the TTL says.
const MIN_RESOLVE_INTERVAL: Duration = Duration::from_secs(1);

impl Pool {
    /// How a server entry is reached over TLS, if it is.
    fn tls_target(&self, server: &UpstreamServer) -> Option<TlsTarget> {
        if !server.tls {
            return None;
        }
        let clients = match &self.tls_clients {
            Some(clients) => clients.clone(),
            None => Err(Arc::from("no TLS client configuration was built")),
        };
        Some(TlsTarget::new(
            &self.config.tls,
            &server.address.host,
            clients,
        ))
    }

    /// Rebuilds `members` from the entries' current addresses, keeping the `Server` (and its
    /// idle connections) of every address that stays.
    pub(super) fn rebuild(&self) {
        let current = self.members();
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let mut primaries = Vec::new();
        let mut backups = Vec::new();
        let mut unusable = Vec::new();
        let mut pending = false;
        let mut seen: Vec<SocketAddr> = Vec::new();
        for entry in entries.iter() {
            let address = &entry.server.address;
            let label = format!("{}/{}", self.name, address.authority());
            if !entry.resolved {
                match &entry.failure {
                    Some(failure) => unusable.push((label, failure.clone())),
                    None => pending = true,
                }
                continue;
            }
            let mut denied = Vec::new();
            let mut usable = 0;
            for &ip in &entry.addrs {
                let addr = SocketAddr::new(ip, address.port);
                if let Some(net) = self.config.deny_addresses.iter().find(|n| n.contains(ip)) {
                    denied.push(format!("{ip} (in {net})"));
                    continue;
                }
                usable += 1;
                if seen.contains(&addr) {
                    continue;
                }
                seen.push(addr);
                let server = match current.find(addr) {
                    Some(server) if server.backup == entry.server.backup => Arc::clone(server),
                    _ => Arc::new(
                        Server::new(
                            &self.name,
                            ServerSpec {
                                addr,
                                host: address.host.as_str().into(),
                                named: address.ip.is_none(),
                                weight: entry.server.weight,
                                max_connections: entry
                                    .server
                                    .max_connections
                                    .or(self.config.max_connections),
                                backup: entry.server.backup,
                            },
                            self.registry.state(&self.name, addr),
                            Arc::clone(&self.queue),
                            self.settings.clone(),
                        )
                        .with_protocols(self.config.http2, self.tls_target(&entry.server)),
                    ),
                };
                if entry.server.backup {
                    backups.push(server);
                } else {
                    primaries.push(server);
                }
            }
            if usable == 0 {
                let failure = match (&entry.failure, denied.is_empty()) {
                    (Some(failure), _) => failure.clone(),
                    (None, false) => Failure::new(
                        FailureKind::DestinationIpProhibited,
                        Phase::Resolving,
                        format!(
                            "{label} has only denied addresses: {} (deny_addresses)",
                            denied.join(", ")
                        ),
                    ),
                    (None, true) => continue,
                };
                unusable.push((label, failure));
            }
        }
        self.members.store(Arc::new(Members {
            primaries: Tier::new(primaries),
            backups: Tier::new(backups),
            unusable,
            pending,
        }));
        self.changed.notify_waiters();
    }
}

// === background tasks ===

/// Keeps the pool's host names resolved: each name is asked again when its TTL runs out
/// (bounded by `resolve_interval`), so servers follow DNS without a reload. A failed lookup
/// keeps the last good addresses. Stops when the pool is dropped or retired.
pub async fn keep_resolved(pool: Weak<Pool>, dns: Arc<Dns>) {
    loop {
        let Some(pool) = pool.upgrade() else { return };
        if pool.is_retired() {
            return;
        }
        let names: Vec<(usize, String)> = {
            let entries = pool.entries.lock().unwrap_or_else(|e| e.into_inner());
            entries
                .iter()
                .enumerate()
                .filter(|(_, e)| e.server.address.ip.is_none())
                .map(|(i, e)| (i, e.server.address.host.clone()))
                .collect()
        };
        let lookups = names.iter().map(|(_, host)| dns.resolve(host));
        let results = futures_util::future::join_all(lookups).await;
        let mut next = pool.config.resolve_interval;
        let mut changed = false;
        {
            let mut entries = pool.entries.lock().unwrap_or_else(|e| e.into_inner());
            for ((index, host), result) in names.iter().zip(results) {
                let Some(entry) = entries.get_mut(*index) else {
                    continue;
                };
                match result {
                    Ok(resolved) => {
                        next = next.min(resolved.ttl);
                        let mut addrs = resolved.addrs;
                        addrs.sort();
                        addrs.dedup();
                        if addrs != entry.addrs || !entry.resolved || entry.failure.is_some() {
                            tracing::info!(
                                target: "gatehouse::dns",
                                pool = %pool.name,
                                host = %host,
                                addresses = ?addrs,
                                "server name resolved"
                            );
                            changed = true;
                        }
                        entry.addrs = addrs;
                        entry.failure = None;
                        entry.resolved = true;
                    }
                    Err(failure) => {
                        next = next.min(FAILED_NAME_RETRY);
                        let first = entry
                            .failure
                            .as_ref()
                            .is_none_or(|f| f.kind != failure.kind);
                        if first {
                            tracing::warn!(
                                target: "gatehouse::dns",
                                pool = %pool.name,
                                host = %host,
                                kind = failure.kind.token(),
                                kept = ?entry.addrs,
                                "{}", failure.details
                            );
                        }
                        changed |= first || !entry.resolved;
                        // A name that never resolved is unusable; one that did keeps its addresses.
                        entry.resolved = true;
                        entry.failure = Some(failure);
                    }
                }
            }
        }
        if changed || pool.members().pending {
            pool.rebuild();
        }
        drop(pool);
        tokio::time::sleep(next.max(MIN_RESOLVE_INTERVAL)).await;
    }
}
