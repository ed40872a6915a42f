//! nginx `server` blocks: their `listen`, `server_name`, `return` and `location` directives
//! become routes (one per server name and location) and listen addresses by role (plain,
//! TLS with the certificates in effect, redirect to https).

use super::listen::{listen, server_name};
use super::{Cx, INHERITED, Listen, Settings};
use crate::foreign::nginx::Directive;
use crate::import::out::RouteOut;

impl<'a> Cx<'a> {
    // === server blocks ===

    pub(super) fn server(&mut self, d: &'a Directive, http: &Settings<'a>) {
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
}
