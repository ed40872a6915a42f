//! The immutable runtime form of one validated config: router, upstream pools, resolver and
//! prebuilt header values. A request takes one `Arc<Snapshot>` at its start and uses only that.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use gatehouse_config::Config;
use http::HeaderValue;

use crate::failure::proxy_status::ProxyStatusWriter;
use crate::router::Router;
use crate::upstream::dns::Dns;
use crate::upstream::pool::{ConnSettings, Server};

#[derive(Debug)]
pub struct Snapshot {
    pub config: Config,
    pub router: Router,
    pub upstreams: Vec<Upstream>,
    pub dns: Dns,
    pub proxy_status: ProxyStatusWriter,
    /// `1.1 <name>`, appended to `Via`.
    pub via: HeaderValue,
}

/// One upstream pool.
#[derive(Debug)]
pub struct Upstream {
    pub name: Arc<str>,
    pub servers: Vec<Arc<Server>>,
    pub settings: ConnSettings,
    next: AtomicUsize,
}

impl Upstream {
    /// The next server in round-robin order; `None` for an empty pool.
    pub fn pick(&self) -> Option<&Arc<Server>> {
        if self.servers.is_empty() {
            return None;
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        self.servers.get(n % self.servers.len())
    }
}

impl Snapshot {
    pub fn build(config: Config) -> Self {
        let upstreams: Vec<Upstream> = config
            .upstreams
            .iter()
            .map(|upstream| {
                let settings = ConnSettings::from(upstream);
                Upstream {
                    name: upstream.name.as_str().into(),
                    servers: upstream
                        .servers
                        .iter()
                        .map(|address| {
                            Arc::new(Server::new(
                                &upstream.name,
                                address.clone(),
                                settings.clone(),
                            ))
                        })
                        .collect(),
                    settings,
                    next: AtomicUsize::new(0),
                }
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
            dns: Dns::new(&config.dns),
            proxy_status: ProxyStatusWriter::new(&config.server.name, config.server.proxy_status),
            via,
            config,
        }
    }
}
