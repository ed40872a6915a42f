//! nginx `upstream` blocks: their servers (weight, max_fails, fail_timeout, backup, down,
//! max_conns) and balancing methods (least_conn, ip_hash, hash).

use super::{BUILT_IN, Cx, default_limits, with_port};
use crate::foreign::nginx::Directive;
use crate::import::out::{ServerOut, UpstreamOut, upstream_name};
use crate::import::units;

impl<'a> Cx<'a> {
    pub(super) fn upstream_block(&mut self, d: &'a Directive) {
        let nginx_name = d.arg(0).to_owned();
        let name = upstream_name(&nginx_name);
        if name != nginx_name {
            self.report.map_note(
                &d.origin,
                d.text(),
                format!("upstream.{name}"),
                "renamed: gatehouse names take letters, digits, '-' and '_'",
            );
        } else {
            self.report
                .map(&d.origin, d.text(), format!("upstream.{name}"));
        }
        self.blocks.insert(nginx_name.clone(), name.clone());
        let mut up = UpstreamOut {
            from: format!("upstream {nginx_name} ({})", d.origin),
            ..UpstreamOut::default()
        };
        let mut passive_set = false;
        for c in d.children() {
            let at = &c.origin;
            match c.name.as_str() {
                "server" => {
                    if let Some(server) = self.upstream_server(c, &name, &mut up, &mut passive_set)
                    {
                        up.servers.push(server);
                    }
                }
                "least_conn" => {
                    up.balance = Some("least_requests");
                    self.report.map_note(
                        at,
                        c.text(),
                        format!("upstream.{name}.balance = \"least_requests\""),
                        "gatehouse picks the less busy of two random servers (power of two choices), not the least busy of all",
                    );
                }
                "ip_hash" => {
                    up.balance = Some("hash");
                    up.hash_key = Some("client_ip".to_owned());
                    self.report.map_note(
                        at,
                        c.text(),
                        format!("upstream.{name}.balance = \"hash\", hash_key = \"client_ip\""),
                        "nginx hashes the first three octets of an IPv4 address, gatehouse the whole address: clients of one /24 may go to different servers",
                    );
                }
                "hash" => {
                    let key = match c.arg(0) {
                        "$remote_addr" | "$binary_remote_addr" => Some("client_ip".to_owned()),
                        k if k.starts_with("$http_") => {
                            Some(format!("header:{}", k["$http_".len()..].replace('_', "-")))
                        }
                        k if k.starts_with("$cookie_") => {
                            Some(format!("cookie:{}", &k["$cookie_".len()..]))
                        }
                        _ => None,
                    };
                    match key {
                        Some(key) => {
                            up.balance = Some("hash");
                            up.hash_key = Some(key.clone());
                            self.report.map_note(
                                at,
                                c.text(),
                                format!("upstream.{name}.balance = \"hash\", hash_key = \"{key}\""),
                                "gatehouse hashes consistently (rendezvous), with or without `consistent`",
                            );
                        }
                        None => self.report.unmapped(
                            at,
                            c.text(),
                            "gatehouse hashes on the client address, one header or one cookie only",
                        ),
                    }
                }
                name => match BUILT_IN.iter().find(|(n, _)| *n == name) {
                    Some((_, how)) => self.report.map_note(at, c.text(), "(built in)", *how),
                    None => {
                        self.report
                            .unmapped(at, c.text(), "no gatehouse equivalent in an upstream")
                    }
                },
            }
        }
        if !passive_set {
            self.report.differ(
                up.from.clone(),
                "nginx takes a server out after one failure (max_fails=1) for fail_timeout=10s; gatehouse after 5 failures in a row, or one timeout (upstream.NAME.passive)",
            );
        }
        self.limits.insert(name.clone(), default_limits(&up.from));
        self.out.upstreams.insert(name, up);
    }

    /// One `server` of an upstream block; `None` when it is left out.
    fn upstream_server(
        &mut self,
        d: &Directive,
        pool: &str,
        up: &mut UpstreamOut,
        passive_set: &mut bool,
    ) -> Option<ServerOut> {
        let at = &d.origin;
        let address = d.arg(0);
        if address.is_empty() {
            self.report
                .unmapped(at, d.text(), "a server without an address");
            return None;
        }
        if address.starts_with("unix:") {
            self.report.unmapped(
                at,
                d.text(),
                "gatehouse reaches upstreams over TCP only, not UNIX sockets",
            );
            return None;
        }
        let mut server = ServerOut {
            address: with_port(address, 80),
            ..ServerOut::default()
        };
        let mut ignored = Vec::new();
        for param in d.args.iter().skip(1) {
            let (key, value) = param.split_once('=').unwrap_or((param.as_str(), ""));
            match key {
                "weight" => {
                    server.weight = value.parse::<u32>().ok().map(|w| w.clamp(1, 1000));
                }
                "max_conns" => {
                    server.max_connections = value.parse::<u32>().ok().filter(|n| *n > 0);
                }
                "backup" => server.backup = true,
                "down" => {
                    self.report.unmapped(
                        at,
                        d.text(),
                        "marked down: left out of the upstream's servers",
                    );
                    return None;
                }
                "max_fails" => {
                    if up.consecutive_failures.is_none() {
                        up.consecutive_failures = value.parse().ok();
                    }
                    *passive_set = true;
                }
                "fail_timeout" => {
                    if up.ejection.is_none() {
                        up.ejection = units::nginx_time(value)
                            .filter(|t| !t.is_zero())
                            .map(units::duration);
                    }
                    *passive_set = true;
                }
                "resolve" => {}
                _ => ignored.push(param.clone()),
            }
        }
        let mut note = String::new();
        if d.args
            .iter()
            .any(|a| a.starts_with("max_fails") || a.starts_with("fail_timeout"))
        {
            note.push_str("max_fails counts failures within fail_timeout and fail_timeout is also how long the server stays out; gatehouse counts failures in a row (passive.consecutive_failures) and ejects for passive.ejection, doubling; one value per upstream (the first server's)");
        }
        if !ignored.is_empty() {
            if !note.is_empty() {
                note.push_str("; ");
            }
            note.push_str(&format!("not carried over: {}", ignored.join(" ")));
        }
        let key = format!("upstream.{pool}.servers");
        if note.is_empty() {
            self.report.map(at, d.text(), key);
        } else {
            self.report.map_note(at, d.text(), key, note);
        }
        Some(server)
    }
}
