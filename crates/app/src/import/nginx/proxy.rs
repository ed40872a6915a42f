//! What a location's `proxy_*` settings make of the upstream it passes requests to: the
//! `proxy_pass` target, timeouts, buffer, retries, caching and the forwarding headers.

use super::{Cx, MAX_HEADER, MIN_HEADER, Settings, default_limits, with_port};
use crate::foreign::nginx::Directive;
use crate::import::out::{ServerOut, UpstreamOut, upstream_name};
use crate::import::units;
use crate::naming::{Limit, Setting};

impl<'a> Cx<'a> {
    pub(super) fn proxy_pass(
        &mut self,
        d: &Directive,
        path: &str,
        modifier: &str,
    ) -> Option<String> {
        let at = &d.origin;
        let target = d.arg(0);
        if target.contains('$') {
            self.report.unmapped(
                at,
                d.text(),
                "a proxy_pass with variables is resolved per request; gatehouse needs a fixed upstream",
            );
            return None;
        }
        let (tls, rest) = if let Some(rest) = target.strip_prefix("http://") {
            (false, rest)
        } else if let Some(rest) = target.strip_prefix("https://") {
            (true, rest)
        } else {
            self.report.unmapped(
                at,
                d.text(),
                "gatehouse passes requests over http:// and https:// only",
            );
            return None;
        };
        let (authority, uri) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.starts_with("unix:") {
            self.report.unmapped(
                at,
                d.text(),
                "gatehouse reaches upstreams over TCP only, not UNIX sockets",
            );
            return None;
        }
        if tls {
            let about = format!("proxy_pass {target} ({at})");
            self.report.differ(
                about,
                "nginx does not verify the upstream's certificate unless proxy_ssl_verify is on; gatehouse always does (set upstream.NAME.tls_ca_file for a private CA)",
            );
        }
        let name = match self.blocks.get(authority) {
            Some(name) => {
                let name = name.clone();
                if tls && let Some(up) = self.out.upstreams.get_mut(&name) {
                    for s in &mut up.servers {
                        if !s.address.starts_with("https://") {
                            s.address = format!("https://{}", s.address);
                        }
                    }
                }
                name
            }
            None => {
                let address = with_port(authority, if tls { 443 } else { 80 });
                let name = upstream_name(&address);
                if !self.out.upstreams.contains_key(&name) {
                    let from = format!("proxy_pass {target} ({at})");
                    self.out.upstreams.insert(
                        name.clone(),
                        UpstreamOut {
                            from: from.clone(),
                            servers: vec![ServerOut {
                                address: if tls {
                                    format!("https://{address}")
                                } else {
                                    address
                                },
                                ..ServerOut::default()
                            }],
                            ..UpstreamOut::default()
                        },
                    );
                    self.limits.insert(name.clone(), default_limits(&from));
                    let host = authority
                        .rsplit_once(':')
                        .map_or(authority, |(host, _)| host)
                        .trim_start_matches('[')
                        .trim_end_matches(']');
                    if host.parse::<std::net::IpAddr>().is_err() {
                        self.report.differ(
                            from,
                            "nginx resolves a host name in proxy_pass once, at start; gatehouse re-resolves it (resolve_interval)",
                        );
                    }
                }
                name
            }
        };
        // `proxy_pass http://app/` under `location /` replaces "/" with "/": no change.
        let same = modifier != "=" && uri == path;
        let rewrites = !uri.is_empty() && !same;
        if rewrites {
            self.report.map_note(
                at,
                d.text(),
                format!("route.upstream = \"{name}\""),
                format!(
                    "nginx replaces the location's {path} with {uri} in the request path; gatehouse passes the path unchanged (not carried over)"
                ),
            );
        } else {
            self.report
                .map(at, d.text(), format!("route.upstream = \"{name}\""));
        }
        Some(name)
    }

    /// `[route.cache]` for a location: `Some(stale_if_error)` when it caches.
    pub(super) fn cache(&mut self, settings: &Settings<'a>) -> Option<Option<String>> {
        let cache = settings.one("proxy_cache")?;
        self.used.insert(cache.origin.to_string());
        if cache.arg(0) == "off" {
            self.report
                .map(&cache.origin, cache.text(), "(no [route.cache])");
            return None;
        }
        self.report.map_note(
            &cache.origin,
            cache.text(),
            "route.cache.mode = \"full\"",
            "gatehouse's cache ([cache]) is shared by every caching route; its size is [cache] memory",
        );
        for valid in settings.all("proxy_cache_valid") {
            self.used.insert(valid.origin.to_string());
            self.report.unmapped(
                &valid.origin,
                valid.text(),
                "gatehouse stores what the response's Cache-Control or Expires allows (RFC 9111), not a time per status",
            );
        }
        match settings.one("proxy_cache_use_stale") {
            Some(stale) if stale.arg(0) != "off" => {
                self.used.insert(stale.origin.to_string());
                self.report.map_note(
                    &stale.origin,
                    stale.text(),
                    "route.cache.stale_if_error",
                    "gatehouse serves a stale copy for any upstream failure or 5xx, up to stale_if_error (default 1d) past its freshness; nginx without a time limit, for the conditions listed",
                );
            }
            _ => self.report.differ(
                format!("proxy_cache ({})", cache.origin),
                "without proxy_cache_use_stale nginx never serves a stale copy; gatehouse's full cache serves one when the upstream fails (up to 1 day)",
            ),
        }
        Some(None)
    }

    /// Takes the location's proxy settings for the upstream (the first location passing to it
    /// decides; a later one that differs is reported).
    pub(super) fn apply(
        &mut self,
        pool: &str,
        settings: &Settings<'a>,
        at: &crate::foreign::Origin,
    ) {
        const KEYS: [&str; 7] = [
            "proxy_connect_timeout",
            "proxy_read_timeout",
            "proxy_send_timeout",
            "proxy_buffer_size",
            "proxy_next_upstream",
            "proxy_next_upstream_tries",
            "proxy_next_upstream_timeout",
        ];
        let used: Vec<Option<String>> = KEYS
            .iter()
            .map(|k| settings.one(k).map(|d| d.origin.to_string()))
            .collect();
        if let Some(first) = self.applied.get(pool).cloned() {
            if first != used {
                self.report.differ(
                    format!("upstream {pool}"),
                    format!(
                        "the location at {at} uses other proxy_* timeouts or limits than the first location passing to it; gatehouse has one set per upstream, the first location's"
                    ),
                );
            }
            // Directives the first location did not use carry no value of their own.
            for d in KEYS.iter().filter_map(|k| settings.one(k)) {
                let origin = d.origin.to_string();
                if !first.contains(&Some(origin.clone())) && self.used.insert(origin) {
                    self.report.unmapped(
                        &d.origin,
                        d.text(),
                        format!(
                            "gatehouse has one value per upstream: the first location passing to {pool} decides"
                        ),
                    );
                }
            }
            self.headers(pool, settings);
            return;
        }
        self.applied.insert(pool.to_owned(), used);
        let Some(up) = self.out.upstreams.get_mut(pool) else {
            return;
        };
        let from = up.from.clone();
        let mut limits = default_limits(&from);
        let mut report = std::mem::take(&mut self.report);
        let mut used_now = Vec::new();
        // Timeouts.
        for (name, default_note) in [
            (
                "proxy_connect_timeout",
                "nginx waits 60s for a connection; gatehouse 2s (connect_timeout)",
            ),
            (
                "proxy_read_timeout",
                "nginx waits 60s for the response head and between reads; gatehouse 30s (response_timeout, read_timeout)",
            ),
            (
                "proxy_send_timeout",
                "nginx waits 60s between two writes of the request; gatehouse 30s (send_timeout)",
            ),
        ] {
            let Some(d) = settings.one(name) else {
                report.differ(format!("{from}: {name} not set"), default_note);
                continue;
            };
            used_now.push(d.origin.to_string());
            let Some(t) = units::nginx_time(d.arg(0)).filter(|t| !t.is_zero()) else {
                report.unmapped(&d.origin, d.text(), "not a time gatehouse can use");
                continue;
            };
            let value = units::duration(t);
            let setting = Setting {
                directive: name.to_owned(),
                at: Some(d.origin.to_string()),
                value: d.arg(0).to_owned(),
            };
            let limit = Limit { value: t, setting };
            match name {
                "proxy_connect_timeout" => {
                    up.connect_timeout = Some(value);
                    limits.connect_timeout = limit;
                    report.map(
                        &d.origin,
                        d.text(),
                        format!("upstream.{pool}.connect_timeout"),
                    );
                }
                "proxy_read_timeout" => {
                    up.response_timeout = Some(value.clone());
                    up.read_timeout = Some(value);
                    limits.response_timeout = limit.clone();
                    limits.read_timeout = limit;
                    report.map_note(
                        &d.origin,
                        d.text(),
                        format!("upstream.{pool}.response_timeout, upstream.{pool}.read_timeout"),
                        "nginx's one timeout covers both the wait for the response head and each pause in the body",
                    );
                }
                _ => {
                    up.send_timeout = Some(value);
                    limits.send_timeout = limit;
                    report.map(&d.origin, d.text(), format!("upstream.{pool}.send_timeout"));
                }
            }
        }
        match settings.one("proxy_buffer_size") {
            Some(d) => {
                used_now.push(d.origin.to_string());
                match units::nginx_size(d.arg(0)) {
                    Some(size) => {
                        let taken = size.clamp(MIN_HEADER, MAX_HEADER);
                        up.max_response_header_size = Some(units::size(taken));
                        limits.max_response_header_size = Limit {
                            value: usize::try_from(size).unwrap_or(usize::MAX),
                            setting: Setting {
                                directive: "proxy_buffer_size".to_owned(),
                                at: Some(d.origin.to_string()),
                                value: d.arg(0).to_owned(),
                            },
                        };
                        let key = format!("upstream.{pool}.max_response_header_size");
                        if taken == size {
                            report.map(&d.origin, d.text(), key);
                        } else {
                            report.map_note(
                                &d.origin,
                                d.text(),
                                key,
                                format!("gatehouse takes 8KiB to 1MiB: imported as {}", units::size(taken)),
                            );
                        }
                    }
                    None => report.unmapped(&d.origin, d.text(), "not a size"),
                }
            }
            None => report.differ(
                format!("{from}: proxy_buffer_size not set"),
                "nginx refuses (502) response heads larger than one memory page (4k); gatehouse takes up to 64KiB (max_response_header_size)",
            ),
        }
        if let Some(d) = settings.one("proxy_next_upstream") {
            used_now.push(d.origin.to_string());
            if d.arg(0) == "off" {
                up.retry_attempts = Some(1);
                report.map(
                    &d.origin,
                    d.text(),
                    format!("upstream.{pool}.retry.attempts = 1"),
                );
            } else {
                let statuses: Vec<&str> = d
                    .args
                    .iter()
                    .map(String::as_str)
                    .filter(|a| a.starts_with("http_") || *a == "denied")
                    .collect();
                let note = if statuses.is_empty() {
                    "gatehouse retries connection failures and timeouts on another server; non_idempotent sets route.retry_non_idempotent".to_owned()
                } else {
                    format!(
                        "gatehouse retries connection failures and timeouts, not responses: {} not carried over (it passes a 5xx on with Proxy-Status received-status)",
                        statuses.join(" ")
                    )
                };
                report.map_note(&d.origin, d.text(), format!("upstream.{pool}.retry"), note);
            }
        }
        if let Some(d) = settings.one("proxy_next_upstream_tries") {
            used_now.push(d.origin.to_string());
            match d.arg(0).parse::<u32>() {
                Ok(n) if n > 0 => {
                    up.retry_attempts = Some(n.min(10));
                    report.map(&d.origin, d.text(), format!("upstream.{pool}.retry.attempts"));
                }
                _ => report.unmapped(
                    &d.origin,
                    d.text(),
                    "unlimited tries: gatehouse allows at most 10 (retry.attempts) within a retry budget",
                ),
            }
        }
        if let Some(d) = settings.one("proxy_next_upstream_timeout") {
            used_now.push(d.origin.to_string());
            match units::nginx_time(d.arg(0)).filter(|t| !t.is_zero()) {
                Some(t) => {
                    up.retry_deadline = Some(units::duration(t));
                    report.map(
                        &d.origin,
                        d.text(),
                        format!("upstream.{pool}.retry.deadline"),
                    );
                }
                None => report.map(&d.origin, d.text(), "(built in: no deadline set)"),
            }
        }
        self.report = report;
        self.used.extend(used_now);
        self.limits.insert(pool.to_owned(), limits);
        self.headers(pool, settings);
    }

    /// `proxy_set_header`: the forwarding headers gatehouse adds itself.
    fn headers(&mut self, pool: &str, settings: &Settings<'a>) {
        let headers = settings.all("proxy_set_header");
        let mut host_set = false;
        for d in headers {
            self.used.insert(d.origin.to_string());
            let name = d.arg(0).to_ascii_lowercase();
            let value = d.arg(1);
            let built_in = match (name.as_str(), value) {
                ("host", "$host" | "$http_host") => {
                    host_set = true;
                    Some("gatehouse passes the client's Host on")
                }
                ("x-real-ip", "$remote_addr") => Some("gatehouse sets X-Real-IP"),
                ("x-forwarded-for", "$proxy_add_x_forwarded_for" | "$remote_addr") => Some(
                    "gatehouse sets X-Forwarded-For: it extends the list of a peer in server.trusted_proxies and replaces the one any other client sent",
                ),
                ("x-forwarded-proto", "$scheme") => Some("gatehouse sets X-Forwarded-Proto"),
                ("x-forwarded-host", "$host" | "$http_host") => {
                    Some("gatehouse sets X-Forwarded-Host")
                }
                ("upgrade", "$http_upgrade") | ("connection", _) => {
                    Some("gatehouse passes WebSocket and other upgrades on by itself")
                }
                _ => None,
            };
            match built_in {
                Some(how) => {
                    if !self
                        .report
                        .mapped
                        .iter()
                        .any(|m| m.at == d.origin.to_string())
                    {
                        self.report.map_note(&d.origin, d.text(), "(built in)", how);
                    }
                }
                None => {
                    if name == "host" {
                        host_set = true;
                    }
                    self.report.unmapped(
                        &d.origin,
                        d.text(),
                        "gatehouse sets the forwarding headers itself and passes the client's Host; it sets no other request headers",
                    );
                }
            }
        }
        if !host_set {
            let about = format!("upstream {pool}: proxy_set_header Host not set");
            if !self.report.differences.iter().any(|d| d.about == about) {
                self.report.differ(
                    about,
                    "nginx sends the proxy_pass host ($proxy_host) as Host; gatehouse passes the client's Host on",
                );
            }
        }
    }
}
