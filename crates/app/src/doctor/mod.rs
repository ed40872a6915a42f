//! `gatehouse doctor`: walks every upstream of a config the way an operator debugs a 502 (DNS,
//! TCP connect, the TLS handshake for a server reached over TLS, one HTTP request to the health
//! path with the proxy's own limits) and names, per server, the failure kind a request would
//! meet, its likely root cause and the fix; plus the config's own smells (and, with `acme`,
//! the state of the certificate kept in `state_dir`).

mod acme;
mod check;
mod ports;
mod report;
#[cfg(test)]
mod tls_tests;
mod verdict;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use gatehouse_config::{Config, HostMatch, Loaded};
use gatehouse_proxy::upstream::dns::Dns;
use serde::Serialize;

use check::{Context, ServerReport};

#[derive(Debug, clap::Args)]
pub(crate) struct DoctorArgs {
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// How long to keep waiting for a server slower than its `response_timeout`, to tell how
    /// slow it is.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    wait: Duration,
    /// Check the upstreams of this nginx config instead, with nginx's limits and defaults
    /// (proxy_buffer_size, proxy_read_timeout, ...), naming nginx's directives in the fixes.
    #[arg(long, value_name = "FILE", conflicts_with = "haproxy")]
    nginx: Option<PathBuf>,
    /// Check the backends of this HAProxy config instead, with HAProxy's limits (tune.bufsize,
    /// timeout server, ...), naming HAProxy's directives in the fixes.
    #[arg(long, value_name = "FILE")]
    haproxy: Option<PathBuf>,
}

/// The whole report.
#[derive(Debug, Serialize)]
pub(crate) struct DoctorReport {
    pub(crate) config: String,
    /// Whose config and limits: `gatehouse`, `nginx` or `HAProxy`.
    pub(crate) proxy: &'static str,
    /// The names of the limits, for the text report.
    #[serde(skip)]
    pub(crate) naming: Arc<crate::naming::Naming>,
    pub(crate) upstreams: Vec<PoolReport>,
    /// Problems of the config itself, found without sending a request.
    pub(crate) smells: Vec<String>,
    pub(crate) summary: Summary,
}

#[derive(Debug, Serialize)]
pub(crate) struct PoolReport {
    pub(crate) name: String,
    /// The routes that send requests here, e.g. `example.com/api`.
    pub(crate) routes: Vec<String>,
    /// What is wrong with the upstream as a whole (a routed upstream without servers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) problem: Option<String>,
    pub(crate) servers: Vec<ServerReport>,
}

#[derive(Debug, Serialize)]
pub(crate) struct Summary {
    pub(crate) servers: usize,
    pub(crate) healthy: usize,
    pub(crate) failing: usize,
    /// Failing servers per failure kind (or `unhealthy` for a bad status).
    pub(crate) kinds: BTreeMap<String, usize>,
    /// Upstreams that routes send requests to but that have no servers.
    pub(crate) empty_upstreams: usize,
    pub(crate) warnings: usize,
}

/// 0 when every server is healthy, 1 otherwise (or when the config is invalid, or a route
/// sends requests to an upstream without servers).
pub(crate) fn run(path: Option<&Path>, args: &DoctorArgs) -> ExitCode {
    let foreign = match (&args.nginx, &args.haproxy) {
        (Some(file), _) => Some((crate::import::Proxy::Nginx, file)),
        (None, Some(file)) => Some((crate::import::Proxy::Haproxy, file)),
        (None, None) => None,
    };
    let (loaded, naming) = match foreign {
        Some((proxy, file)) => match foreign_config(proxy, file) {
            Some(found) => found,
            None => return ExitCode::FAILURE,
        },
        None => {
            let Some(loaded) = crate::cli::load_or_explain(
                path,
                "gatehouse doctor: the config has errors (above); fix them first, `gatehouse check` lists them too",
            ) else {
                return ExitCode::FAILURE;
            };
            (loaded, crate::naming::Naming::Gatehouse)
        }
    };
    // The socket table is read once, before the runtime starts: it may run `ss`.
    let listeners = ports::listening();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("gatehouse doctor: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let report = runtime.block_on(examine(&loaded, &listeners, args.wait, Arc::new(naming)));
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(json) => println!("{json}"),
            Err(err) => eprintln!("gatehouse doctor: cannot write JSON: {err}"),
        }
    } else {
        print!("{}", report::text(&report));
    }
    if report.summary.failing == 0 && report.summary.empty_upstreams == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// A foreign config as the doctor checks it: imported into a gatehouse config in memory, with
/// the foreign proxy's limits put in place of gatehouse's (even where gatehouse's own bounds
/// would refuse them, such as nginx's 4k buffer), and the names of the directives that set them.
fn foreign_config(
    proxy: crate::import::Proxy,
    file: &Path,
) -> Option<(Loaded, crate::naming::Naming)> {
    use crate::import::{Mode, convert};
    let who = proxy.name();
    let imported = match convert(proxy, file, None, Mode::Doctor) {
        Ok(imported) => imported,
        Err(err) => {
            eprintln!("gatehouse doctor: the {who} config cannot be read: {err}");
            return None;
        }
    };
    let mut loaded = match gatehouse_config::parse(&file.display().to_string(), &imported.toml) {
        Ok(loaded) => loaded,
        Err(errors) => {
            for diagnostic in &errors.diagnostics {
                eprintln!("{diagnostic}");
            }
            eprintln!(
                "gatehouse doctor: the {who} config does not convert into one gatehouse can check (above; `gatehouse import` shows the conversion)"
            );
            return None;
        }
    };
    for upstream in &mut loaded.config.upstreams {
        if let Some(limits) = imported.limits.get(&upstream.name) {
            upstream.connect_timeout = limits.connect_timeout.value;
            upstream.response_timeout = limits.response_timeout.value;
            upstream.read_timeout = limits.read_timeout.value;
            upstream.send_timeout = limits.send_timeout.value;
            upstream.max_response_header_size = limits.max_response_header_size.value;
        }
    }
    // The import's own words (about listeners, routes) are not the doctor's business.
    loaded.warnings.clear();
    let naming = crate::naming::Naming::Foreign {
        proxy: who,
        pools: imported.limits,
    };
    Some((loaded, naming))
}

async fn examine(
    loaded: &Loaded,
    listeners: &[ports::Listener],
    wait: Duration,
    naming: Arc<crate::naming::Naming>,
) -> DoctorReport {
    let config = &loaded.config;
    let dns = Dns::new(&config.dns);
    let mut smells: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
    if matches!(*naming, crate::naming::Naming::Gatehouse) {
        // A foreign config's listeners belong to the proxy that runs it.
        smells.extend(listener_smells(config));
        smells.extend(acme::acme_smells(config));
    }

    let mut upstreams = Vec::new();
    for upstream in &config.upstreams {
        let routes = routes_to(config, &upstream.name);
        // An upstream no route uses is already a warning of the config's validation.
        let problem = (upstream.servers.is_empty() && !routes.is_empty()).then(|| {
            "no servers: every request routed here gets 500 proxy_configuration_error".to_owned()
        });
        let cx = Context {
            upstream,
            dns: &dns,
            listeners,
            wait,
            naming: Arc::clone(&naming),
        };
        let checks = upstream
            .servers
            .iter()
            .map(|entry| check::check_entry(entry, &cx));
        let servers: Vec<ServerReport> = futures_util::future::join_all(checks)
            .await
            .into_iter()
            .flatten()
            .collect();
        upstreams.push(PoolReport {
            name: upstream.name.clone(),
            routes,
            problem,
            servers,
        });
    }
    let summary = summarize(&upstreams, smells.len());
    DoctorReport {
        config: config.source.clone(),
        proxy: naming.proxy(),
        naming: Arc::clone(&naming),
        upstreams,
        smells,
        summary,
    }
}

fn routes_to(config: &Config, upstream: &str) -> Vec<String> {
    config
        .routes
        .iter()
        .filter(|route| route.upstream == upstream)
        .map(|route| {
            let host = match &route.host {
                None => "*".to_owned(),
                Some(HostMatch::Exact(host)) => host.clone(),
                Some(HostMatch::Suffix(suffix)) => format!("*{suffix}"),
            };
            format!("{host}{}", route.path)
        })
        .collect()
}

/// A listen or admin address that another process already holds makes `gatehouse run` fail.
fn listener_smells(config: &Config) -> Vec<String> {
    let server = &config.server;
    let admin = server.admin.iter().map(|a| ("admin", *a));
    let tls = server
        .tls
        .iter()
        .flat_map(|tls| tls.listen.iter().map(|a| ("tls.listen", *a)));
    let redirect = server.redirect_https.iter().map(|a| ("redirect_https", *a));
    server
        .listen
        .iter()
        .map(|a| ("listen", *a))
        .chain(tls)
        .chain(redirect)
        .chain(admin)
        .filter_map(|(key, addr): (&str, SocketAddr)| {
            let err = std::net::TcpListener::bind(addr).err()?;
            Some(if err.kind() == std::io::ErrorKind::AddrInUse {
                format!(
                    "server.{key} {addr} is already in use by another process (a running gatehouse?): `gatehouse run` with this config would not start; `ss -ltnp` shows who holds it"
                )
            } else {
                format!("server.{key} {addr} cannot be bound: {err}")
            })
        })
        .collect()
}

fn summarize(upstreams: &[PoolReport], smells: usize) -> Summary {
    let mut summary = Summary {
        servers: 0,
        healthy: 0,
        failing: 0,
        kinds: BTreeMap::new(),
        empty_upstreams: upstreams.iter().filter(|u| u.problem.is_some()).count(),
        warnings: smells,
    };
    for server in upstreams.iter().flat_map(|u| &u.servers) {
        summary.servers += 1;
        summary.warnings += server.warnings.len();
        if server.verdict.healthy {
            summary.healthy += 1;
        } else {
            summary.failing += 1;
            let kind = server.verdict.kind.unwrap_or("unhealthy").to_owned();
            *summary.kinds.entry(kind).or_default() += 1;
        }
    }
    summary
}
