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

mod proxy;
mod upstream;

use super::out::{Out, RouteOut, TlsOut};
use super::{Imported, Mode, Report, units};
use crate::foreign::nginx::Directive;
use crate::naming::{HeaderFix, Limit, PoolLimits, Setting};

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
        report: Report {
            source: file.display().to_string(),
            proxy: "nginx".to_owned(),
            ..Report::default()
        },
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

    // === server blocks ===

    fn server(&mut self, d: &'a Directive, http: &Settings<'a>) {
        let settings = http.within(d.children());
        let mut listens = Vec::new();
        let mut hosts: Vec<Option<String>> = Vec::new();
        let mut named = false;
        let mut redirect = None;
        let mut locations = Vec::new();
        for c in d.children() {
            let at = &c.origin;
            match c.name.as_str() {
                "listen" => match listen(c) {
                    Some(l) => {
                        self.report.map(
                            at,
                            c.text(),
                            if l.ssl { "server.tls.listen" } else { "server.listen" },
                        );
                        listens.push(l);
                    }
                    None => self.report.unmapped(
                        at,
                        c.text(),
                        "gatehouse listens on IP addresses and ports only (no UNIX sockets, no host names other than localhost)",
                    ),
                },
                "server_name" => {
                    named = true;
                    for name in &c.args {
                        match server_name(name) {
                            Ok(found) => hosts.extend(found),
                            Err(why) => self.report.unmapped(at, format!("server_name {name}"), why),
                        }
                    }
                    self.report.map(at, c.text(), "route.host");
                }
                "location" if c.block.is_some() => locations.push(c),
                "return" => {
                    let code = c.arg(0);
                    if matches!(code, "301" | "302" | "307" | "308")
                        && c.arg(1).starts_with("https://")
                    {
                        redirect = Some(c);
                    } else {
                        self.report.unmapped(
                            at,
                            c.text(),
                            "gatehouse answers only with redirects to https:// (server.redirect_https) or from upstreams",
                        );
                    }
                }
                name if INHERITED.contains(&name) => {}
                _ => self.common(c),
            }
        }
        if !named || hosts.is_empty() {
            hosts.push(None);
        }
        if listens.is_empty() {
            self.report.differ(
                format!("server ({})", d.origin),
                "no listen: nginx listens on *:80 (8000 when not run as root); imported as 0.0.0.0:80",
            );
            listens.push(Listen {
                addr: "0.0.0.0:80".to_owned(),
                ssl: false,
                default: false,
            });
        }
        // The default server also serves hosts no server_name matches.
        let is_default = self.default_servers.contains(&d.origin.to_string());
        let first_route = self.out.routes.len();
        let server_at = d.origin.to_string();
        let mut routed = 0;
        for location in locations {
            routed += self.location(location, &hosts, &settings, &server_at);
        }
        if routed > 0 && is_default && self.default_taken {
            self.report.differ(
                format!("server ({})", d.origin),
                "nginx's default server for its address; gatehouse has one set of routes for any host on every address, taken from the first default server",
            );
        }
        if routed > 0 && is_default && !self.default_taken {
            self.default_taken = true;
            let extra: Vec<RouteOut> = self.out.routes[first_route..]
                .iter()
                .filter(|r| r.host.is_some())
                .map(|r| RouteOut {
                    host: None,
                    path: r.path.clone(),
                    upstream: r.upstream.clone(),
                    retry_non_idempotent: r.retry_non_idempotent,
                    cache: r.cache.clone(),
                    from: format!("{}, for any other host: nginx's default server", r.from),
                })
                .collect();
            for route in extra {
                self.push_route(route);
            }
        }
        self.listeners(&listens, &settings, redirect, routed);
        for c in d
            .children()
            .iter()
            .filter(|c| INHERITED.contains(&c.name.as_str()))
        {
            if !self.used.contains(&c.origin.to_string()) {
                self.report.unmapped(
                    &c.origin,
                    c.text(),
                    "no location of this server passes requests to a proxied server",
                );
            }
        }
    }

    /// Puts the server's listen addresses in their roles.
    fn listeners(
        &mut self,
        listens: &[Listen],
        settings: &Settings<'a>,
        redirect: Option<&Directive>,
        routed: usize,
    ) {
        let certs = settings.all("ssl_certificate");
        let keys = settings.all("ssl_certificate_key");
        let mut pairs = Vec::new();
        for (cert, key) in certs.iter().zip(keys.iter()) {
            if cert.arg(0).contains('$') || key.arg(0).contains('$') {
                self.report.unmapped(
                    &cert.origin,
                    cert.text(),
                    "certificates named by variables are not supported",
                );
                continue;
            }
            let path = |p: &str| self.base.join(p).display().to_string();
            pairs.push((path(cert.arg(0)), path(key.arg(0))));
            self.used.insert(cert.origin.to_string());
            self.used.insert(key.origin.to_string());
            self.report.map(
                &cert.origin,
                cert.text(),
                "server.tls.cert (or certificates)",
            );
            self.report
                .map(&key.origin, key.text(), "server.tls.key (or certificates)");
        }
        for l in listens {
            if l.ssl {
                let entry = self.tls.entry(l.addr.clone()).or_default();
                for pair in &pairs {
                    if !entry.contains(pair) {
                        entry.push(pair.clone());
                    }
                }
            } else if let (Some(r), 0) = (redirect, routed) {
                self.redirect.insert(l.addr.clone(), r.origin.to_string());
                self.report.map_note(
                    &r.origin,
                    r.text(),
                    "server.redirect_https",
                    "gatehouse redirects with 308 (method and body kept) to the same host and path on https://, for every request on the address",
                );
            } else {
                self.plain.insert(l.addr.clone());
            }
        }
        if let (Some(r), 1..) = (redirect, routed) {
            self.report.unmapped(
                &r.origin,
                r.text(),
                "the server also has locations passing requests on; nginx's server-level return wins, gatehouse's routes would serve them",
            );
        }
    }

    /// One location; returns how many routes it made.
    fn location(
        &mut self,
        d: &'a Directive,
        hosts: &[Option<String>],
        server: &Settings<'a>,
        server_at: &str,
    ) -> usize {
        let at = &d.origin;
        let (modifier, path) = match d.args.as_slice() {
            [path] if path.starts_with('@') => ("@", path.as_str()),
            [path] if path.starts_with('=') && path.len() > 1 => ("=", &path[1..]),
            [path] => ("", path.as_str()),
            [m, path] => (m.as_str(), path.as_str()),
            _ => ("?", ""),
        };
        match modifier {
            "" | "^~" | "=" if path.starts_with('/') => {}
            "~" | "~*" => {
                self.report.unmapped(
                    at,
                    d.text(),
                    "regular-expression locations have no gatehouse equivalent (routes match path prefixes)",
                );
                return 0;
            }
            _ => {
                self.report.unmapped(
                    at,
                    d.text(),
                    "named and other locations have no gatehouse equivalent",
                );
                return 0;
            }
        }
        let settings = server.within(d.children());
        let mut routes = 0;
        let mut pass = None;
        for c in d.children() {
            match c.name.as_str() {
                "proxy_pass" => pass = Some(c),
                "location" if c.block.is_some() => {
                    routes += self.location(c, hosts, &settings, server_at);
                }
                name if INHERITED.contains(&name) => {}
                "return" => self.report.unmapped(
                    &c.origin,
                    c.text(),
                    "gatehouse routes pass requests to upstreams; it does not answer them itself",
                ),
                _ => self.common(c),
            }
        }
        let Some(pass) = pass else {
            for c in d
                .children()
                .iter()
                .filter(|c| INHERITED.contains(&c.name.as_str()))
            {
                self.report
                    .unmapped(&c.origin, c.text(), "the location passes no request on");
            }
            if routes == 0 {
                self.report.unmapped(
                    at,
                    d.text(),
                    "no proxy_pass: gatehouse does not serve files or answer by itself",
                );
            }
            return routes;
        };
        let Some(upstream) = self.proxy_pass(pass, path, modifier) else {
            return routes;
        };
        let mut note = Vec::new();
        if modifier == "=" {
            note.push(
                "an exact match in nginx; a gatehouse route is a prefix, so longer paths match too",
            );
        } else if path != "/" && !path.ends_with('/') {
            note.push("nginx matches any path starting with these characters; gatehouse whole path segments");
        }
        if note.is_empty() {
            self.report.map(at, d.text(), "route.path");
        } else {
            self.report
                .map_note(at, d.text(), "route.path", note.join("; "));
        }
        let retry_non_idempotent = settings
            .one("proxy_next_upstream")
            .is_some_and(|n| n.args.iter().any(|a| a == "non_idempotent"));
        let cache = self.cache(&settings);
        self.apply(&upstream, &settings, at);
        for host in hosts {
            self.push_route(RouteOut {
                host: host.clone(),
                path: path.to_owned(),
                upstream: upstream.clone(),
                retry_non_idempotent,
                cache: cache.clone(),
                from: format!("location {path} ({at}) in server ({server_at})"),
            });
            routes += 1;
        }
        routes
    }

    fn push_route(&mut self, route: RouteOut) {
        let clash = self
            .out
            .routes
            .iter()
            .any(|r| r.host == route.host && r.path == route.path);
        if !clash {
            self.out.routes.push(route);
        }
    }

    /// The upstream a `proxy_pass` names (made for a URL), or `None` when it cannot be used.
    fn finish(mut self) -> Imported {
        // An address both redirects and serves: gatehouse's redirect listener cannot.
        let clashing: Vec<String> = self
            .redirect
            .keys()
            .filter(|a| self.plain.contains(*a) || self.tls.contains_key(*a))
            .cloned()
            .collect();
        for addr in clashing {
            if let Some(at) = self.redirect.remove(&addr) {
                self.report.differ(
                    format!("listen {addr}"),
                    format!(
                        "the redirect at {at} shares its address with servers that pass requests on; gatehouse redirects a whole address, so it serves the routes there instead"
                    ),
                );
            }
        }
        for addr in self.tls.keys() {
            self.plain.remove(addr);
        }
        if self.out.max_request_body_size.is_none() && matches!(self.mode, Mode::Import) {
            self.report.differ(
                "client_max_body_size".to_owned(),
                "not set: nginx refuses request bodies over 1m with 413; gatehouse has no limit unless server.max_request_body_size is set".to_owned(),
            );
        }
        match self.mode {
            Mode::Doctor => self.out.listen = vec!["127.0.0.1:0".to_owned()],
            Mode::Import => {
                self.out.listen = self.plain.iter().cloned().collect();
                self.out.redirect_https = self.redirect.keys().cloned().collect();
                for (addr, certificates) in std::mem::take(&mut self.tls) {
                    if certificates.is_empty() {
                        self.report.differ(
                            format!("listen {addr} ssl"),
                            "no ssl_certificate applies to it: left out",
                        );
                        continue;
                    }
                    match self
                        .out
                        .tls
                        .iter_mut()
                        .find(|t| t.certificates == certificates)
                    {
                        Some(group) => group.listen.push(addr),
                        None => self.out.tls.push(TlsOut {
                            listen: vec![addr],
                            certificates,
                        }),
                    }
                }
                if self.out.listen.is_empty()
                    && self.out.tls.is_empty()
                    && self.out.redirect_https.is_empty()
                {
                    self.out.listen = vec!["127.0.0.1:8080".to_owned()];
                    self.report.differ(
                        "listeners",
                        "no listen could be imported: gatehouse listens on 127.0.0.1:8080",
                    );
                }
            }
        }
        let toml = self.out.toml(&self.report.source, "nginx");
        Imported {
            toml,
            report: self.report,
            limits: self.limits,
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

/// The server blocks (by origin) nginx answers with when no `server_name` matches: per
/// address, the one whose `listen` says `default_server`, else the first listening there.
fn default_servers<'d>(servers: impl Iterator<Item = &'d Directive>) -> HashSet<String> {
    let mut by_addr: BTreeMap<String, (String, bool)> = BTreeMap::new();
    for server in servers {
        let origin = server.origin.to_string();
        let mut listens: Vec<Listen> = server
            .children()
            .iter()
            .filter(|c| c.name == "listen")
            .filter_map(listen)
            .collect();
        if listens.is_empty() {
            listens.push(Listen {
                addr: "0.0.0.0:80".to_owned(),
                ssl: false,
                default: false,
            });
        }
        for l in listens {
            let entry = by_addr
                .entry(l.addr)
                .or_insert_with(|| (origin.clone(), l.default));
            if l.default && !entry.1 {
                *entry = (origin.clone(), true);
            }
        }
    }
    by_addr.into_values().map(|(origin, _)| origin).collect()
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

/// A `listen` directive as gatehouse takes it.
fn listen(d: &Directive) -> Option<Listen> {
    let spec = d.arg(0);
    if spec.starts_with("unix:") {
        return None;
    }
    let addr = if spec.chars().all(|c| c.is_ascii_digit()) {
        format!("0.0.0.0:{spec}")
    } else if let Some(port) = spec.strip_prefix("*:") {
        format!("0.0.0.0:{port}")
    } else if let Some(port) = spec.strip_prefix("localhost:") {
        format!("127.0.0.1:{port}")
    } else if spec == "localhost" {
        "127.0.0.1:80".to_owned()
    } else if (spec.starts_with('[') && !spec.contains("]:"))
        || (!spec.starts_with('[') && !spec.contains(':'))
    {
        format!("{spec}:80")
    } else {
        spec.to_owned()
    };
    addr.parse::<std::net::SocketAddr>().ok()?;
    Some(Listen {
        addr,
        ssl: d.args[1..].iter().any(|a| a == "ssl"),
        default: d.args[1..]
            .iter()
            .any(|a| a == "default_server" || a == "default"),
    })
}

/// The route hosts of one `server_name` value (`None` = any host).
fn server_name(name: &str) -> Result<Vec<Option<String>>, &'static str> {
    let lower = name.to_ascii_lowercase();
    if lower.is_empty() || lower == "_" {
        return Ok(vec![None]);
    }
    if lower.starts_with('~') {
        return Err("regular-expression server names have no gatehouse equivalent");
    }
    if let Some(rest) = lower.strip_prefix('.') {
        if !is_host(rest) {
            return Err("not a host name gatehouse can match");
        }
        return Ok(vec![Some(rest.to_owned()), Some(format!("*.{rest}"))]);
    }
    let bare = lower.strip_prefix("*.").unwrap_or(&lower);
    if !is_host(bare) {
        return Err("gatehouse hosts are exact names or start with \"*.\"");
    }
    Ok(vec![Some(lower)])
}

/// A DNS name (or IPv4 address) gatehouse's `route.host` takes.
fn is_host(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

#[cfg(test)]
mod tests;
