//! nginx → gatehouse: `server` blocks become listeners and routes (one per server name and
//! `location`), `upstream` blocks and `proxy_pass` URLs become upstreams, and the `proxy_*`
//! settings that apply where a location passes requests (inherited from `http` and `server`, as
//! nginx inherits them) become the upstream's keys.
//!
//! gatehouse has one set of timeouts per upstream where nginx has one per location; when two
//! locations passing to one upstream disagree, the first wins and the report says so.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

mod finish;
mod listen;
mod proxy;
mod server;
mod upstream;

use super::out::Out;
use super::{Imported, Mode, Report, units};
use crate::foreign::nginx::Directive;
use crate::naming::{HeaderFix, Limit, PoolLimits, Setting};
use listen::default_servers;

/// nginx's default for `proxy_connect_timeout`, `proxy_read_timeout`, `proxy_send_timeout`.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// nginx's default `proxy_buffer_size`: one memory page (4k on x86-64 and most arm64).
const DEFAULT_BUFFER: usize = 4096;
/// gatehouse's bounds of `max_response_header_size` and `max_request_header_size`.
const MIN_HEADER: u64 = 8 * 1024;
const MAX_HEADER: u64 = 1024 * 1024;

/// Directives whose value a location inherits from `server` and `http`, and that apply to the
/// upstream a location passes requests to.
const INHERITED: &[&str] = &[
    "proxy_connect_timeout",
    "proxy_read_timeout",
    "proxy_send_timeout",
    "proxy_buffer_size",
    "proxy_next_upstream",
    "proxy_next_upstream_tries",
    "proxy_next_upstream_timeout",
    "proxy_set_header",
    "proxy_cache",
    "proxy_cache_valid",
    "proxy_cache_use_stale",
    "ssl_certificate",
    "ssl_certificate_key",
];

/// What nginx does without gatehouse needing a key.
const BUILT_IN: &[(&str, &str)] = &[
    (
        "proxy_http_version",
        "gatehouse speaks HTTP/1.1 to upstreams (HTTP/2 with upstream.NAME.http2)",
    ),
    (
        "http2",
        "gatehouse offers HTTP/2 on every listener (server.http2)",
    ),
    (
        "keepalive",
        "gatehouse keeps idle upstream connections for reuse without a limit to set",
    ),
    (
        "zone",
        "gatehouse shares an upstream's state between its workers itself",
    ),
    (
        "proxy_buffering",
        "gatehouse streams responses as they arrive (like proxy_buffering off)",
    ),
    (
        "server_tokens",
        "gatehouse names itself only in Via and Proxy-Status",
    ),
];

/// The settings in effect in a context (each directive as written, `None` = not set).
#[derive(Debug, Clone, Default)]
struct Settings<'a> {
    values: HashMap<&'static str, Vec<&'a Directive>>,
}

impl<'a> Settings<'a> {
    /// This context's settings: the parent's, replaced by the directives written here (for
    /// array-like directives such as `proxy_set_header`, all of the parent's are replaced as
    /// soon as one is written here, as in nginx).
    fn within(&self, block: &'a [Directive]) -> Self {
        let mut values = self.values.clone();
        let mut replaced = HashSet::new();
        for d in block {
            if let Some(name) = INHERITED.iter().find(|n| **n == d.name) {
                if replaced.insert(*name) {
                    values.insert(name, Vec::new());
                }
                values.entry(name).or_default().push(d);
            }
        }
        Self { values }
    }

    fn one(&self, name: &str) -> Option<&'a Directive> {
        self.values.get(name).and_then(|v| v.last().copied())
    }

    fn all(&self, name: &str) -> &[&'a Directive] {
        self.values.get(name).map_or(&[], Vec::as_slice)
    }
}

/// One `listen` as gatehouse takes it.
#[derive(Debug, Clone)]
struct Listen {
    addr: String,
    ssl: bool,
    default: bool,
}

struct Cx<'a> {
    report: Report,
    out: Out,
    base: &'a Path,
    mode: Mode,
    /// gatehouse name of each `upstream` block, by nginx name.
    blocks: HashMap<String, String>,
    limits: BTreeMap<String, PoolLimits>,
    /// Upstreams whose settings have been taken from a location: the directives used.
    applied: HashMap<String, Vec<Option<String>>>,
    /// `file:line` of inherited directives that were used.
    used: HashSet<String>,
    /// Addresses by role.
    plain: BTreeSet<String>,
    redirect: BTreeMap<String, String>,
    tls: BTreeMap<String, Vec<(String, String)>>,
    /// The first default server's routes are also routes for any host.
    default_taken: bool,
    /// Some `listen` says `default_server` (else the first server is the default).
    default_servers: HashSet<String>,
}

/// Converts parsed nginx directives (includes already followed).
pub(super) fn convert(top: &[Directive], file: &Path, base: &Path, mode: Mode) -> Imported {
    let mut cx = Cx {
        report: Report::new(file, "nginx"),
        out: Out::default(),
        base,
        mode,
        blocks: HashMap::new(),
        limits: BTreeMap::new(),
        applied: HashMap::new(),
        used: HashSet::new(),
        plain: BTreeSet::new(),
        redirect: BTreeMap::new(),
        tls: BTreeMap::new(),
        default_taken: false,
        default_servers: HashSet::new(),
    };
    let http: Vec<&Directive> = top
        .iter()
        .filter(|d| d.name == "http" && d.block.is_some())
        .collect();
    if http.is_empty() {
        // A site file (conf.d style): its top level is the http context.
        cx.http(top);
    } else {
        for d in top.iter().filter(|d| d.name != "http") {
            cx.report.unmapped(
                &d.origin,
                d.text(),
                "outside the http block: not part of the reverse-proxy config gatehouse imports",
            );
        }
        for block in http {
            cx.http(block.children());
        }
    }
    cx.finish()
}

impl<'a> Cx<'a> {
    fn http(&mut self, ctx: &'a [Directive]) {
        for d in ctx
            .iter()
            .filter(|d| d.name == "upstream" && d.block.is_some())
        {
            self.upstream_block(d);
        }
        self.default_servers
            .extend(default_servers(ctx.iter().filter(|d| d.name == "server")));
        let settings = Settings::default().within(ctx);
        for d in ctx {
            match d.name.as_str() {
                "upstream" if d.block.is_some() => {}
                "server" if d.block.is_some() => self.server(d, &settings),
                name if INHERITED.contains(&name) => {}
                _ => self.common(d),
            }
        }
        for d in ctx.iter().filter(|d| INHERITED.contains(&d.name.as_str())) {
            if !self.used.contains(&d.origin.to_string()) {
                self.report.unmapped(
                    &d.origin,
                    d.text(),
                    "no location under it passes requests to a proxied server",
                );
            }
        }
    }

    /// Directives valid in http and server context that are not about one upstream.
    fn common(&mut self, d: &Directive) {
        let at = &d.origin;
        match d.name.as_str() {
            "client_header_timeout" => match units::nginx_time(d.arg(0)) {
                Some(t) if !t.is_zero() => {
                    self.out.client_header_timeout = Some(units::duration(t));
                    self.report
                        .map(at, d.text(), "server.client_header_timeout");
                }
                _ => self
                    .report
                    .unmapped(at, d.text(), "not a time gatehouse can use"),
            },
            "large_client_header_buffers" => {
                let total = d
                    .arg(0)
                    .parse::<u64>()
                    .ok()
                    .zip(units::nginx_size(d.arg(1)))
                    .map(|(n, s)| n.saturating_mul(s));
                match total {
                    Some(total) => {
                        let size = total.clamp(MIN_HEADER, MAX_HEADER);
                        self.out.max_request_header_size = Some(units::size(size));
                        self.report.map_note(
                            at,
                            d.text(),
                            "server.max_request_header_size",
                            format!(
                                "nginx limits each request line and header field to one buffer and the whole head to all of them; gatehouse limits the whole head, here to {} (8KiB to 1MiB)",
                                units::size(size)
                            ),
                        );
                    }
                    None => self
                        .report
                        .unmapped(at, d.text(), "not a number and a size"),
                }
            }
            "ssl_protocols" => self.report.map_note(
                at,
                d.text(),
                "server.tls.min_version",
                "gatehouse speaks TLS 1.2 and 1.3 only (min_version \"1.2\", the default, or \"1.3\")",
            ),
            "client_max_body_size" => match units::nginx_size(d.arg(0)) {
                Some(_) if self.out.max_request_body_size.is_some() => self.report.unmapped(
                    at,
                    d.text(),
                    "gatehouse takes one server-wide max_request_body_size (a route may set its own); the first one stands",
                ),
                Some(bytes) => {
                    self.out.max_request_body_size = Some(units::size(bytes));
                    self.report.map_note(
                        at,
                        d.text(),
                        "server.max_request_body_size",
                        "a larger body gets 413, as in nginx; 0 means no limit in both",
                    );
                }
                None => self
                    .report
                    .unmapped(at, d.text(), "not a size gatehouse can use"),
            },
            name => match BUILT_IN.iter().find(|(n, _)| *n == name) {
                Some((_, how)) => self.report.map_note(at, d.text(), "(built in)", *how),
                None => self.report.unmapped(
                    at,
                    d.text(),
                    "not part of the reverse-proxy subset gatehouse imports",
                ),
            },
        }
    }
}

/// nginx's limits where nothing is set.
fn default_limits(from: &str) -> PoolLimits {
    let timeout = |directive: &str| Limit {
        value: DEFAULT_TIMEOUT,
        setting: Setting {
            directive: directive.to_owned(),
            at: None,
            value: "60s".to_owned(),
        },
    };
    PoolLimits {
        connect_timeout: timeout("proxy_connect_timeout"),
        response_timeout: timeout("proxy_read_timeout"),
        read_timeout: timeout("proxy_read_timeout"),
        send_timeout: timeout("proxy_send_timeout"),
        max_response_header_size: Limit {
            value: DEFAULT_BUFFER,
            setting: Setting {
                directive: "proxy_buffer_size".to_owned(),
                at: None,
                value: "4k (one memory page)".to_owned(),
            },
        },
        servers: from.to_owned(),
        header_fix: HeaderFix::Kilobytes,
    }
}

/// `host` or `host:port` → `host:port`.
fn with_port(authority: &str, port: u16) -> String {
    let has_port = if authority.starts_with('[') {
        authority.contains("]:")
    } else {
        authority.contains(':')
    };
    if has_port {
        authority.to_owned()
    } else {
        format!("{authority}:{port}")
    }
}

#[cfg(test)]
mod tests;
