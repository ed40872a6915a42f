//! Validation: `raw` types → the [`Config`] model, reporting every problem of meaning at once.
//!
//! Owns the defaults, the value checks (durations, sizes, addresses, names) and the cross-field
//! checks (duplicate listeners, admin clashing with a listener, routes naming unknown upstreams,
//! duplicate routes, unused upstreams, duplicate or denied servers, overlapping health checks). A bad value is reported and replaced by its default so the
//! remaining checks still run; the caller refuses the config if anything was an error. Unknown keys
//! and TOML type errors are `schema`'s, not this module's.
//!
//! `[server]` and `[dns]` are here, except where logs go: `logs` (a log file's directory must
//! exist), and TLS: `tls` (`[[server.tls]]`, the `http2*` keys, an upstream's `tls_*` keys; it
//! reads certificates, keys and CA files). All listener addresses (`listen`, TLS, `redirect_https`,
//! `admin`) are checked against each other here. `upstream` checks `[upstream.NAME]` and
//! `health` its three sub-tables; `routes` checks `[[route]]`; `fields` reads single values
//! (durations, sizes, integers, enumerations) with their limits.

use std::net::SocketAddr;
use std::time::Duration;

use toml::Spanned;

use crate::diag::Sink;
use crate::model::{Config, DnsConfig, LogFormat, ProxyStatusMode, ServerConfig, UpstreamConfig};
use crate::raw::{RawConfig, RawDns, RawServer};
use crate::values;

mod acme;
mod caching;
mod compress;
mod edge;
mod fields;
mod health;
mod limits;
mod logs;
mod routes;
mod tls;
mod upstream;

use fields::{choice, parse_at, size, timeout};
use logs::{config_dir, log_targets};
use routes::routes;
use upstream::upstream;

// Defaults. Each is also documented on the model field and in docs/configuration.md.
const DEFAULT_NAME: &str = "gatehouse";
const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// nginx's `send_timeout`.
const DEFAULT_CLIENT_WRITE_TIMEOUT: Duration = Duration::from_secs(60);
const DEFAULT_CLIENT_HEADER_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_MIN_DATA_RATE: u32 = 240;
/// Kestrel's `MinResponseDataRate`.
const DEFAULT_MIN_RESPONSE_RATE: u32 = 240;
const DEFAULT_MIN_RATE_GRACE: Duration = Duration::from_secs(5);
const DEFAULT_MAX_REQUEST_HEADER_SIZE: u64 = 64 * KIB;
const DEFAULT_MAX_URI_LENGTH: u64 = 8 * KIB;
const DEFAULT_LOG_LEVEL: &str = "info";
const DEFAULT_DNS_TIMEOUT: Duration = Duration::from_secs(2);
const DEFAULT_ROUTE_PATH: &str = "/";
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_MAX_RESPONSE_HEADER_SIZE: u64 = 64 * KIB;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
/// hyper refuses (panics on) a header buffer limit below 8 KiB.
const MIN_HEADER_SIZE: u64 = 8 * KIB;
const MAX_HEADER_SIZE: u64 = MIB;

/// Builds the model from `raw`, pushing every problem into `sink`. The returned config is only
/// meaningful if `sink` holds no errors afterwards.
pub(crate) fn validate(mut raw: RawConfig, source: &str, sink: &mut Sink<'_>) -> Config {
    let base = config_dir(source);
    let raw_tls = raw.server.tls.take();
    let server = server(raw.server, raw_tls.as_deref(), base, sink);
    let dns = dns(raw.dns, sink);
    let cache = caching::cache(raw.cache, base, sink);
    let robots = caching::robots(raw.robots, sink);
    let maintenance =
        caching::maintenance(raw.maintenance.as_ref(), "maintenance", None, base, sink);
    let limits = limits::limits(raw.limits, sink);
    let upstreams: Vec<UpstreamConfig> = raw
        .upstream
        .iter()
        .map(|(name, up)| upstream(name, up, base, sink))
        .collect();
    let compress = match &raw.compress {
        Some(table) => compress::compress(table, "compress", &compress::off(), sink),
        None => compress::off(),
    };
    let routes = routes(
        &raw.route,
        &raw.upstream,
        &maintenance,
        &compress,
        base,
        sink,
    );
    let acme = acme::acme(
        raw.acme.as_ref(),
        raw_tls.as_deref(),
        &raw.route,
        &server,
        &routes,
        base,
        sink,
    );
    for (name, up) in &raw.upstream {
        let used = raw.route.iter().any(|r| {
            r.get_ref()
                .upstream
                .as_ref()
                .is_some_and(|u| u.get_ref() == name)
        });
        if !used && !raw.route.is_empty() {
            sink.warning(
                Some(up.span()),
                format!("upstream.{name}"),
                "no route uses this upstream",
                format!("add a [[route]] with upstream = \"{name}\", or remove the upstream"),
            );
        }
    }
    Config {
        source: source.to_owned(),
        server,
        dns,
        cache,
        robots,
        maintenance,
        limits,
        compress,
        acme,
        routes,
        upstreams,
    }
}

// === [server] ===

fn server(
    raw: RawServer,
    raw_tls: Option<&[Spanned<crate::raw::RawTlsListener>]>,
    base: &std::path::Path,
    sink: &mut Sink<'_>,
) -> ServerConfig {
    let http2 = tls::http2(&raw, sink);
    let edge = edge::edge(&raw, raw_tls, sink);
    let name = match raw.name {
        None => DEFAULT_NAME.to_owned(),
        Some(name) if name.get_ref().is_empty() => {
            let fix =
                format!("set a name like \"{DEFAULT_NAME}\", or remove `name` to use that default");
            sink.error(Some(name.span()), "server.name", "name is empty", fix);
            DEFAULT_NAME.to_owned()
        }
        Some(name) if !values::is_sf_token(name.get_ref()) => {
            sink.error(
                Some(name.span()),
                "server.name",
                format!(
                    "{:?} is not a valid Proxy-Status member name (an RFC 8941 token)",
                    name.get_ref()
                ),
                "start with a letter, then use letters, digits and !#$%&'*+-.^_`|~:/ (no spaces)",
            );
            DEFAULT_NAME.to_owned()
        }
        Some(name) => name.into_inner(),
    };
    let mut claimed = Listeners::default();
    // `listen = []` is fine when HTTPS or redirect listeners accept the traffic.
    let has_other_listeners = raw_tls.is_some_and(|t| !t.is_empty())
        || raw
            .redirect_https
            .as_ref()
            .is_some_and(|r| !r.get_ref().is_empty());
    let listen = listen(raw.listen, has_other_listeners, &mut claimed, sink);
    let tls_listeners = tls::listeners(raw_tls, base, sink, &mut claimed);
    let redirect_https = raw
        .redirect_https
        .as_ref()
        .map(|list| {
            list.get_ref()
                .iter()
                .enumerate()
                .filter_map(|(i, item)| {
                    claimed.claim(sink, item, &format!("server.redirect_https[{i}]"))
                })
                .collect()
        })
        .unwrap_or_default();
    let admin = raw.admin.and_then(|a| {
        let addr = parse_at(sink, &a, "server.admin", values::listen_addr)?;
        if let Some(clash) = claimed.clashing(addr) {
            let whose = if clash.key.starts_with("server.listen[") {
                String::new()
            } else {
                format!(" ({})", clash.key)
            };
            sink.error(
                Some(a.span()),
                "server.admin",
                format!(
                    "{addr} clashes with the listen address {}{whose}",
                    clash.addr
                ),
                "give the admin listener its own port, e.g. \"127.0.0.1:9901\"",
            );
        }
        Some(addr)
    });
    let admin_token = admin_token(raw.admin_token, admin, sink);
    let workers = raw
        .workers
        .and_then(|w| match usize::try_from(*w.get_ref()) {
            Ok(n) if n > 0 => Some(n),
            Ok(_) | Err(_) => {
                sink.error(
                    Some(w.span()),
                    "server.workers",
                    format!(
                        "workers = {} would leave no thread to serve requests",
                        w.get_ref()
                    ),
                    "set 1 or more, or remove `workers` to use one per CPU core",
                );
                None
            }
        });
    let proxy_status = choice(
        sink,
        raw.proxy_status,
        "server.proxy_status",
        ProxyStatusMode::Minimal,
        &[
            ("off", ProxyStatusMode::Off),
            ("minimal", ProxyStatusMode::Minimal),
            ("full", ProxyStatusMode::Full),
        ],
    );
    let log_format = choice(
        sink,
        raw.log_format,
        "server.log_format",
        LogFormat::Text,
        &[("text", LogFormat::Text), ("json", LogFormat::Json)],
    );
    let state_dir = caching::state_dir(raw.state_dir, base, sink);
    let logs = log_targets(
        raw.log_file,
        raw.access_log_format,
        raw.access_log_file,
        base,
        sink,
    );
    ServerConfig {
        name,
        listen,
        tls: tls_listeners,
        redirect_https,
        http2,
        admin,
        admin_token,
        proxy_status,
        proxy_status_full_for: edge.proxy_status_full_for,
        trusted_proxies: edge.trusted_proxies,
        proxy_protocol: edge.proxy_protocol,
        forwarded: edge.forwarded,
        drain_timeout: timeout(
            sink,
            raw.drain_timeout,
            "server.drain_timeout",
            DEFAULT_DRAIN_TIMEOUT,
        ),
        workers,
        work_stealing: raw.work_stealing.is_some_and(Spanned::into_inner),
        client_header_timeout: timeout(
            sink,
            raw.client_header_timeout,
            "server.client_header_timeout",
            DEFAULT_CLIENT_HEADER_TIMEOUT,
        ),
        min_request_body_rate: fields::int_in(
            sink,
            raw.min_request_body_rate.as_ref(),
            "server.min_request_body_rate",
            DEFAULT_MIN_DATA_RATE,
            0,
            u32::MAX,
        ),
        min_response_rate: fields::int_in(
            sink,
            raw.min_response_rate.as_ref(),
            "server.min_response_rate",
            DEFAULT_MIN_RESPONSE_RATE,
            0,
            u32::MAX,
        ),
        min_rate_grace: timeout(
            sink,
            raw.min_rate_grace,
            "server.min_rate_grace",
            DEFAULT_MIN_RATE_GRACE,
        ),
        client_write_timeout: timeout(
            sink,
            raw.client_write_timeout,
            "server.client_write_timeout",
            DEFAULT_CLIENT_WRITE_TIMEOUT,
        ),
        max_request_body_size: fields::size_within(
            sink,
            raw.max_request_body_size,
            "server.max_request_body_size",
            0,
            0,
            fields::MAX_BODY_SIZE,
        ),
        max_request_header_size: size(
            sink,
            raw.max_request_header_size,
            "server.max_request_header_size",
            DEFAULT_MAX_REQUEST_HEADER_SIZE,
            MIN_HEADER_SIZE,
        ),
        max_uri_length: size(
            sink,
            raw.max_uri_length,
            "server.max_uri_length",
            DEFAULT_MAX_URI_LENGTH,
            1,
        ),
        log_format,
        log_level: log_level(raw.log_level, sink),
        access_log: raw.access_log.is_none_or(Spanned::into_inner),
        log_file: logs.log_file,
        access_log_format: logs.access_log_format,
        access_log_file: logs.access_log_file,
        state_dir,
    }
}

/// `server.admin_token`: a bearer token (RFC 6750 token68 characters). An admin listener off
/// loopback without one is allowed but warned about: `/status` names every server and
/// `POST /reload` is open to anyone who can reach it.
fn admin_token(
    raw: Option<Spanned<String>>,
    admin: Option<SocketAddr>,
    sink: &mut Sink<'_>,
) -> Option<String> {
    let Some(raw) = raw else {
        if let Some(addr) = admin.filter(|addr| !addr.ip().is_loopback()) {
            sink.warning(
                None,
                "server.admin",
                format!("the admin listener {addr} is reachable off this machine without a token"),
                "set server.admin_token, or bind the admin listener to 127.0.0.1",
            );
        }
        return None;
    };
    let token68 = |b: u8| b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b);
    if raw.get_ref().is_empty() || !raw.get_ref().bytes().all(token68) {
        sink.error(
            Some(raw.span()),
            "server.admin_token",
            "admin_token must be a non-empty bearer token",
            "use letters, digits and -._~+/= only (e.g. the output of `openssl rand -hex 32`)",
        );
        return None;
    }
    Some(raw.into_inner())
}

/// `server.listen`. Empty is an error only when no other listener (`[[server.tls]]`,
/// `redirect_https`) would accept anything.
fn listen(
    raw: Option<Spanned<Vec<Spanned<String>>>>,
    has_other_listeners: bool,
    claimed: &mut Listeners,
    sink: &mut Sink<'_>,
) -> Vec<SocketAddr> {
    let Some(raw) = raw else {
        let default: Vec<SocketAddr> = DEFAULT_LISTEN.parse().into_iter().collect();
        for addr in &default {
            claimed.claimed.push(Claimed {
                addr: *addr,
                key: "the default server.listen".to_owned(),
            });
        }
        return default;
    };
    if raw.get_ref().is_empty() && !has_other_listeners {
        let fix = format!(
            "add one, e.g. listen = [\"{DEFAULT_LISTEN}\"], or remove `listen` to use that default"
        );
        sink.error(Some(raw.span()), "server.listen", "no listen address", fix);
    }
    raw.get_ref()
        .iter()
        .enumerate()
        .filter_map(|(i, item)| claimed.claim(sink, item, &format!("server.listen[{i}]")))
        .collect()
}

/// A listener address and the key it was written at.
struct Claimed {
    addr: SocketAddr,
    key: String,
}

/// Every address gatehouse listens on (`listen`, each `[[server.tls]]`'s `listen`,
/// `redirect_https`), so that two that cannot both be bound are reported, whichever keys they
/// are written at.
#[derive(Default)]
struct Listeners {
    claimed: Vec<Claimed>,
}

impl Listeners {
    /// Parses one address and takes it, unless it clashes with one taken before (reported).
    fn claim(
        &mut self,
        sink: &mut Sink<'_>,
        item: &Spanned<String>,
        key: &str,
    ) -> Option<SocketAddr> {
        let addr = parse_at(sink, item, key, values::listen_addr)?;
        if let Some(earlier) = self.clashing(addr) {
            let message = if earlier.addr == addr {
                format!("{addr} is listed twice (also {})", earlier.key)
            } else {
                format!(
                    "{addr} overlaps {} ({}): both cannot be bound",
                    earlier.key, earlier.addr
                )
            };
            sink.error(
                Some(item.span()),
                key,
                message,
                "remove one of them or change its port",
            );
            return None;
        }
        self.claimed.push(Claimed {
            addr,
            key: key.to_owned(),
        });
        Some(addr)
    }

    fn clashing(&self, addr: SocketAddr) -> Option<&Claimed> {
        self.claimed
            .iter()
            .find(|c| values::addrs_clash(c.addr, addr))
    }
}

fn log_level(raw: Option<Spanned<String>>, sink: &mut Sink<'_>) -> String {
    const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];
    let Some(raw) = raw else {
        return DEFAULT_LOG_LEVEL.to_owned();
    };
    let level = raw.get_ref().trim();
    // Anything with `=`, `,`, `[` or `:` is an EnvFilter directive, checked when logging starts.
    let is_directive = level.contains(['=', ',', '[', ':']);
    if !is_directive && !LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
        let fix = match values::closest(level, LEVELS) {
            Some(similar) => format!("did you mean \"{similar}\"?"),
            None => "use error, warn, info, debug or trace, or a directive like \"info,gatehouse=debug\"".to_owned(),
        };
        sink.error(
            Some(raw.span()),
            "server.log_level",
            format!("{level:?} is not a log level"),
            fix,
        );
        return DEFAULT_LOG_LEVEL.to_owned();
    }
    level.to_owned()
}

// === [dns] ===

fn dns(raw: RawDns, sink: &mut Sink<'_>) -> DnsConfig {
    let nameservers = raw
        .nameservers
        .unwrap_or_default()
        .iter()
        .enumerate()
        .filter_map(|(i, ns)| {
            parse_at(
                sink,
                ns,
                &format!("dns.nameservers[{i}]"),
                values::nameserver,
            )
        })
        .collect();
    DnsConfig {
        nameservers,
        timeout: timeout(sink, raw.timeout, "dns.timeout", DEFAULT_DNS_TIMEOUT),
    }
}

/// Reads a file the config names, at most `limit + 1` bytes: one that is not a regular file
/// (`/dev/zero`, a device) has no length in its metadata, so only the read can tell that it is
/// too large, and an unbounded read would never end.
pub(super) fn read_bounded(path: &std::path::Path, limit: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}
