//! HAProxy backends (and the backend half of `listen` sections): timeouts, retries, balance,
//! `server` lines and their `check` parameters become a gatehouse upstream, and HAProxy's
//! limits for the doctor.

use std::time::Duration;

use super::{BUILT_IN, Cx, NO_TIMEOUT, find};
use crate::foreign::haproxy::{Line, Section};
use crate::import::out::{HealthOut, ServerOut, UpstreamOut, upstream_name};
use crate::import::units;
use crate::naming::{HeaderFix, Limit, PoolLimits, Setting};

impl<'a> Cx<'a> {
    // === backends ===

    pub(super) fn backend(&mut self, section: &Section, defaults: &[&'a Line]) {
        let name = upstream_name(section.name());
        let own: Vec<&Line> = section.lines.iter().collect();
        let from = format!("backend {} ({})", section.name(), section.origin);
        let mut up = UpstreamOut {
            from: from.clone(),
            ..UpstreamOut::default()
        };
        let pool = name.clone();
        let key = |k: &str| format!("upstream.{pool}.{k}");
        let mut limits = self.default_limits(&from);
        // Timeouts.
        for words in [["timeout", "connect"], ["timeout", "server"]] {
            let Some(line) = find(&own, defaults, &words) else {
                self.report.differ(
                    format!("{from}: {} not set", words.join(" ")),
                    "HAProxy waits without limit (and warns); gatehouse uses its default (connect_timeout 2s, response_timeout and read_timeout 30s)",
                );
                continue;
            };
            let Some(t) = units::haproxy_time(line.word(2)).filter(|t| !t.is_zero()) else {
                self.report
                    .unmapped(&line.origin, line.text(), "not a time");
                continue;
            };
            let limit = Limit {
                value: t,
                setting: Setting {
                    directive: words.join(" "),
                    at: Some(line.origin.to_string()),
                    value: line.word(2).to_owned(),
                },
            };
            let value = units::duration(t);
            if words[1] == "connect" {
                up.connect_timeout = Some(value);
                limits.connect_timeout = limit;
                self.report
                    .map(&line.origin, line.text(), key("connect_timeout"));
            } else {
                up.response_timeout = Some(value.clone());
                up.read_timeout = Some(value);
                limits.response_timeout = limit.clone();
                limits.read_timeout = limit;
                self.report.map_note(
                    &line.origin,
                    line.text(),
                    format!("{}, {}", key("response_timeout"), key("read_timeout")),
                    "HAProxy's one inactivity timeout covers the wait for the response head and each pause in the body",
                );
            }
        }
        let header = self.bufsize.0.saturating_sub(self.maxrewrite);
        if self.bufsize.1.is_some() {
            up.max_response_header_size = Some(units::size(header.clamp(8 * 1024, 1024 * 1024)));
        }
        limits.max_response_header_size.value = usize::try_from(header).unwrap_or(usize::MAX);
        if let Some(line) = find(&own, defaults, &["retries"])
            && let Ok(n) = line.word(1).parse::<u32>()
        {
            up.retry_attempts = Some((n + 1).clamp(1, 10));
            self.report.map_note(
                    &line.origin,
                    line.text(),
                    key("retry.attempts"),
                    "HAProxy retries the connection to the same server (another one with option redispatch); gatehouse tries another server, within a retry budget",
                );
        }
        if let Some(line) = find(&own, defaults, &["balance"]) {
            let (balance, hash_key) = match line.word(1) {
                "roundrobin" | "static-rr" => (Some("round_robin"), None),
                "leastconn" => (Some("least_requests"), None),
                "source" => (Some("hash"), Some("client_ip".to_owned())),
                w if w.starts_with("hdr(") && w.ends_with(')') => {
                    (Some("hash"), Some(format!("header:{}", &w[4..w.len() - 1])))
                }
                _ => (None, None),
            };
            match balance {
                Some(b) => {
                    up.balance = Some(b);
                    up.hash_key = hash_key;
                    self.report.map(&line.origin, line.text(), format!("{} = \"{b}\"", key("balance")));
                }
                None => self.report.unmapped(
                    &line.origin,
                    line.text(),
                    "gatehouse balances round robin, by least requests, or by a hash of the client address, a header or a cookie",
                ),
            }
        }
        let httpchk = find(&own, defaults, &["option", "httpchk"]);
        let default_server = find(&own, defaults, &["default-server"]);
        let mut checked = false;
        let mut check_params: Option<(Vec<String>, String)> = None;
        for line in &own {
            let at = &line.origin;
            match line.word(0) {
                "server" => {
                    let mut params: Vec<String> = default_server
                        .map(|d| d.words[1..].to_vec())
                        .unwrap_or_default();
                    params.extend(line.words.get(3..).unwrap_or(&[]).iter().cloned());
                    if let Some(server) = self.server(line, &params, &pool) {
                        if params.iter().any(|p| p == "check") {
                            checked = true;
                            check_params.get_or_insert((params.clone(), at.to_string()));
                        }
                        up.servers.push(server);
                    }
                }
                "timeout" | "retries" | "balance" | "default-server" => {}
                "bind" | "acl" | "use_backend" | "default_backend" | "http-request"
                    if section.kind == "listen" => {}
                "option" if line.word(1) == "httpchk" => {}
                "http-check" if line.word(1) == "expect" => {}
                _ => {
                    let text = line.text();
                    match BUILT_IN.iter().find(|(t, _)| text.starts_with(t)) {
                        Some((_, how)) => self.report.map_note(at, text, "(built in)", *how),
                        None => {
                            self.report
                                .unmapped(at, text, "no gatehouse equivalent in an upstream")
                        }
                    }
                }
            }
        }
        if checked {
            let (params, at) = check_params.unwrap_or_default();
            let mut health = HealthOut::default();
            let param = |name: &str| {
                params
                    .iter()
                    .position(|p| p == name)
                    .and_then(|i| params.get(i + 1))
            };
            let inter = param("inter")
                .and_then(|v| units::haproxy_time(v))
                .unwrap_or(Duration::from_secs(2));
            health.interval = Some(units::duration(inter));
            health.unhealthy_threshold =
                Some(param("fall").and_then(|v| v.parse().ok()).unwrap_or(3));
            health.healthy_threshold =
                Some(param("rise").and_then(|v| v.parse().ok()).unwrap_or(2));
            let timeout = find(&own, defaults, &["timeout", "check"])
                .and_then(|l| units::haproxy_time(l.word(2)))
                .unwrap_or(inter);
            health.timeout = Some(units::duration(
                timeout.min(inter / 2).max(Duration::from_millis(1)),
            ));
            self.report.map_note(
                at,
                "check inter/rise/fall".to_owned(),
                format!("[upstream.{pool}.health] interval, healthy_threshold, unhealthy_threshold"),
                "one health check setting per upstream in gatehouse (the first checked server's), and every server of the upstream is checked",
            );
            if let Some(chk) = httpchk {
                let words = &chk.words[2..];
                let (method, uri) = match words {
                    [] => ("OPTIONS", "/"),
                    [uri] => ("OPTIONS", uri.as_str()),
                    [method, uri, ..] => (method.as_str(), uri.as_str()),
                };
                health.path = Some(uri.to_owned());
                let note = if method == "GET" {
                    None
                } else {
                    Some(format!("gatehouse checks with GET, not {method}"))
                };
                let key = format!("upstream.{pool}.health.path");
                match note {
                    Some(n) => self.report.map_note(&chk.origin, chk.text(), key, n),
                    None => self.report.map(&chk.origin, chk.text(), key),
                }
            }
            if let Some(expect) = find(&own, defaults, &["http-check", "expect", "status"]) {
                health.expect_status = Some(expect.word(3).to_owned());
                self.report.map(
                    &expect.origin,
                    expect.text(),
                    format!("upstream.{pool}.health.expect_status"),
                );
            }
            up.health = Some(health);
        } else if let Some(chk) = httpchk {
            self.report
                .unmapped(&chk.origin, chk.text(), "no server has `check`");
        }
        self.limits.insert(name.clone(), limits);
        self.out.upstreams.insert(name, up);
    }

    /// One `server NAME ADDR params`; `None` when it is left out.
    fn server(&mut self, line: &Line, params: &[String], pool: &str) -> Option<ServerOut> {
        let at = &line.origin;
        let address = line.word(2);
        let has_port = if address.starts_with('[') {
            address.contains("]:")
        } else {
            address.contains(':')
        };
        if !has_port || address.contains('@') || address.starts_with('/') {
            self.report.unmapped(
                at,
                line.text(),
                "gatehouse needs host:port (HAProxy takes a server without port on the client's port)",
            );
            return None;
        }
        let param = |name: &str| {
            params
                .iter()
                .position(|p| p == name)
                .and_then(|i| params.get(i + 1))
        };
        if params.iter().any(|p| p == "disabled") {
            self.report.unmapped(
                at,
                line.text(),
                "disabled: left out of the upstream's servers",
            );
            return None;
        }
        let weight = param("weight").and_then(|w| w.parse::<u32>().ok());
        if weight == Some(0) {
            self.report
                .unmapped(at, line.text(), "weight 0 takes no traffic: left out");
            return None;
        }
        let tls = params.iter().any(|p| p == "ssl");
        let mut notes = Vec::new();
        if tls && param("verify").is_some_and(|v| v == "none") {
            notes.push("verify none: gatehouse always verifies the server's certificate (set upstream.NAME.tls_ca_file for a private CA)");
        }
        // Keywords of `server` that take a value (configuration.txt, 5.2).
        const WITH_VALUE: &[&str] = &[
            "addr",
            "agent-inter",
            "agent-port",
            "agent-send",
            "alpn",
            "ca-file",
            "check-alpn",
            "check-proto",
            "check-sni",
            "ciphers",
            "cookie",
            "crl-file",
            "crt",
            "downinter",
            "error-limit",
            "fastinter",
            "id",
            "init-addr",
            "maxqueue",
            "minconn",
            "observe",
            "on-error",
            "on-marked-down",
            "on-marked-up",
            "pool-max-conn",
            "pool-purge-delay",
            "port",
            "proto",
            "redir",
            "resolve-prefer",
            "resolvers",
            "slowstart",
            "sni",
            "source",
            "track",
            "ws",
        ];
        let mut ignored: Vec<String> = Vec::new();
        let mut i = 0;
        while i < params.len() {
            let p = params[i].as_str();
            match p {
                "check" | "backup" | "ssl" | "disabled" => {}
                "inter" | "rise" | "fall" | "weight" | "maxconn" | "verify" => i += 1,
                other if WITH_VALUE.contains(&other) => {
                    let value = params.get(i + 1).map_or("", String::as_str);
                    ignored.push(format!("{other} {value}"));
                    i += 1;
                }
                other => ignored.push(other.to_owned()),
            }
            i += 1;
        }
        let ignored_text =
            (!ignored.is_empty()).then(|| format!("not carried over: {}", ignored.join(" ")));
        let mut note: Vec<String> = notes.iter().map(|n| (*n).to_owned()).collect();
        note.extend(ignored_text);
        let key = format!("upstream.{pool}.servers");
        if note.is_empty() {
            self.report.map(at, line.text(), key);
        } else {
            self.report.map_note(at, line.text(), key, note.join("; "));
        }
        Some(ServerOut {
            address: if tls {
                format!("https://{address}")
            } else {
                address.to_owned()
            },
            weight: weight.map(|w| w.clamp(1, 1000)),
            max_connections: param("maxconn")
                .and_then(|m| m.parse().ok())
                .filter(|m| *m > 0),
            backup: params.iter().any(|p| p == "backup"),
        })
    }

    fn default_limits(&self, from: &str) -> PoolLimits {
        let timeout = |directive: &str| Limit {
            value: NO_TIMEOUT,
            setting: Setting {
                directive: directive.to_owned(),
                at: None,
                value: "none: HAProxy waits without limit; the doctor waits 30s".to_owned(),
            },
        };
        let header = self.bufsize.0.saturating_sub(self.maxrewrite);
        PoolLimits {
            connect_timeout: timeout("timeout connect"),
            response_timeout: timeout("timeout server"),
            read_timeout: timeout("timeout server"),
            send_timeout: timeout("timeout server"),
            max_response_header_size: Limit {
                value: usize::try_from(header).unwrap_or(usize::MAX),
                setting: Setting {
                    directive: "tune.bufsize".to_owned(),
                    at: self.bufsize.1.clone(),
                    value: format!(
                        "{}, minus tune.maxrewrite {}",
                        self.bufsize.0, self.maxrewrite
                    ),
                },
            },
            servers: from.to_owned(),
            header_fix: HeaderFix::BufsizePlus(usize::try_from(self.maxrewrite).unwrap_or(0)),
        }
    }
}
