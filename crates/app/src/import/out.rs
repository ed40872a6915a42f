//! The gatehouse config an import writes: the few tables and keys the importers fill in, and
//! their TOML, with a comment naming the foreign directive each value came from.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// A whole gatehouse config, as far as an import fills it in.
#[derive(Debug, Default)]
pub(crate) struct Out {
    pub(crate) listen: Vec<String>,
    pub(crate) tls: Vec<TlsOut>,
    pub(crate) redirect_https: Vec<String>,
    pub(crate) client_header_timeout: Option<String>,
    pub(crate) max_request_header_size: Option<String>,
    pub(crate) max_request_body_size: Option<String>,
    pub(crate) routes: Vec<RouteOut>,
    pub(crate) upstreams: BTreeMap<String, UpstreamOut>,
}

/// One `[[server.tls]]`.
#[derive(Debug, Default)]
pub(crate) struct TlsOut {
    pub(crate) listen: Vec<String>,
    /// (cert, key) paths; the first is the listener's `cert`/`key`.
    pub(crate) certificates: Vec<(String, String)>,
}

/// One `[[route]]`.
#[derive(Debug, Default)]
pub(crate) struct RouteOut {
    pub(crate) host: Option<String>,
    pub(crate) path: String,
    pub(crate) upstream: String,
    pub(crate) retry_non_idempotent: bool,
    /// `[route.cache]`: `stale_if_error`, if set.
    pub(crate) cache: Option<Option<String>>,
    /// Where it came from (`site.conf:12`).
    pub(crate) from: String,
}

/// One `[upstream.NAME]`.
#[derive(Debug, Default)]
pub(crate) struct UpstreamOut {
    pub(crate) from: String,
    pub(crate) servers: Vec<ServerOut>,
    pub(crate) balance: Option<&'static str>,
    pub(crate) hash_key: Option<String>,
    pub(crate) connect_timeout: Option<String>,
    pub(crate) response_timeout: Option<String>,
    pub(crate) read_timeout: Option<String>,
    pub(crate) send_timeout: Option<String>,
    pub(crate) max_response_header_size: Option<String>,
    pub(crate) health: Option<HealthOut>,
    pub(crate) consecutive_failures: Option<u32>,
    pub(crate) ejection: Option<String>,
    pub(crate) retry_attempts: Option<u32>,
    pub(crate) retry_deadline: Option<String>,
}

/// One entry of `servers`.
#[derive(Debug, Default)]
pub(crate) struct ServerOut {
    /// `host:port`, or `https://host:port`.
    pub(crate) address: String,
    pub(crate) weight: Option<u32>,
    pub(crate) max_connections: Option<u32>,
    pub(crate) backup: bool,
}

/// `[upstream.NAME.health]`
#[derive(Debug, Default)]
pub(crate) struct HealthOut {
    pub(crate) path: Option<String>,
    pub(crate) host: Option<String>,
    pub(crate) interval: Option<String>,
    pub(crate) timeout: Option<String>,
    pub(crate) unhealthy_threshold: Option<u32>,
    pub(crate) healthy_threshold: Option<u32>,
    pub(crate) expect_status: Option<String>,
}

/// A TOML string literal.
fn q(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

fn list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| q(s)).collect();
    format!("[{}]", quoted.join(", "))
}

impl Out {
    /// The config as TOML; `source` (the foreign file) goes in the header comment.
    pub(crate) fn toml(&self, source: &str, proxy: &str) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# Imported from {proxy} config {source} by `gatehouse import`.\n# Check it with `gatehouse check -c FILE`; the import report lists what was not carried over.\n"
        );
        out.push_str("[server]\n");
        let _ = writeln!(out, "listen = {}", list(&self.listen));
        if !self.redirect_https.is_empty() {
            let _ = writeln!(out, "redirect_https = {}", list(&self.redirect_https));
        }
        if let Some(t) = &self.client_header_timeout {
            let _ = writeln!(out, "client_header_timeout = {}", q(t));
        }
        if let Some(s) = &self.max_request_header_size {
            let _ = writeln!(out, "max_request_header_size = {}", q(s));
        }
        if let Some(s) = &self.max_request_body_size {
            let _ = writeln!(out, "max_request_body_size = {}", q(s));
        }
        for tls in &self.tls {
            out.push_str("\n[[server.tls]]\n");
            let _ = writeln!(out, "listen = {}", list(&tls.listen));
            if let Some((cert, key)) = tls.certificates.first() {
                let _ = writeln!(out, "cert = {}\nkey = {}", q(cert), q(key));
            }
            if tls.certificates.len() > 1 {
                let rest: Vec<String> = tls.certificates[1..]
                    .iter()
                    .map(|(c, k)| format!("{{ cert = {}, key = {} }}", q(c), q(k)))
                    .collect();
                let _ = writeln!(out, "certificates = [{}]", rest.join(", "));
            }
        }
        for route in &self.routes {
            let _ = writeln!(out, "\n# {}\n[[route]]", route.from);
            if let Some(host) = &route.host {
                let _ = writeln!(out, "host = {}", q(host));
            }
            let _ = writeln!(
                out,
                "path = {}\nupstream = {}",
                q(&route.path),
                q(&route.upstream)
            );
            if route.retry_non_idempotent {
                out.push_str("retry_non_idempotent = true\n");
            }
            if let Some(stale) = &route.cache {
                out.push_str("[route.cache]\nmode = \"full\"\n");
                if let Some(stale) = stale {
                    let _ = writeln!(out, "stale_if_error = {}", q(stale));
                }
            }
        }
        for (name, up) in &self.upstreams {
            upstream(&mut out, name, up);
        }
        out
    }
}

fn upstream(out: &mut String, name: &str, up: &UpstreamOut) {
    let _ = writeln!(out, "\n# {}\n[upstream.{name}]", up.from);
    let servers: Vec<String> = up
        .servers
        .iter()
        .map(|s| {
            let mut fields = Vec::new();
            if let Some(w) = s.weight {
                fields.push(format!("weight = {w}"));
            }
            if let Some(m) = s.max_connections {
                fields.push(format!("max_connections = {m}"));
            }
            if s.backup {
                fields.push("backup = true".to_owned());
            }
            if fields.is_empty() {
                q(&s.address)
            } else {
                format!("{{ address = {}, {} }}", q(&s.address), fields.join(", "))
            }
        })
        .collect();
    let _ = writeln!(out, "servers = [{}]", servers.join(", "));
    let strings = [
        ("balance", up.balance.map(str::to_owned)),
        ("hash_key", up.hash_key.clone()),
        ("connect_timeout", up.connect_timeout.clone()),
        ("response_timeout", up.response_timeout.clone()),
        ("read_timeout", up.read_timeout.clone()),
        ("send_timeout", up.send_timeout.clone()),
        (
            "max_response_header_size",
            up.max_response_header_size.clone(),
        ),
    ];
    for (key, value) in strings {
        if let Some(value) = value {
            let _ = writeln!(out, "{key} = {}", q(&value));
        }
    }
    if let Some(health) = &up.health {
        let _ = writeln!(out, "[upstream.{name}.health]");
        for (key, value) in [
            ("path", &health.path),
            ("host", &health.host),
            ("interval", &health.interval),
            ("timeout", &health.timeout),
            ("expect_status", &health.expect_status),
        ] {
            if let Some(value) = value {
                let _ = writeln!(out, "{key} = {}", q(value));
            }
        }
        for (key, value) in [
            ("unhealthy_threshold", health.unhealthy_threshold),
            ("healthy_threshold", health.healthy_threshold),
        ] {
            if let Some(value) = value {
                let _ = writeln!(out, "{key} = {value}");
            }
        }
    }
    if up.consecutive_failures.is_some() || up.ejection.is_some() {
        let _ = writeln!(out, "[upstream.{name}.passive]");
        if let Some(n) = up.consecutive_failures {
            let _ = writeln!(out, "consecutive_failures = {n}");
        }
        if let Some(e) = &up.ejection {
            let _ = writeln!(out, "ejection = {}", q(e));
        }
    }
    if up.retry_attempts.is_some() || up.retry_deadline.is_some() {
        let _ = writeln!(out, "[upstream.{name}.retry]");
        if let Some(n) = up.retry_attempts {
            let _ = writeln!(out, "attempts = {n}");
        }
        if let Some(d) = &up.retry_deadline {
            let _ = writeln!(out, "deadline = {}", q(d));
        }
    }
}

/// A name gatehouse takes for an upstream: letters, digits, `-` and `_`; anything else
/// becomes `_`.
pub(crate) fn upstream_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if cleaned.is_empty() {
        "upstream".to_owned()
    } else {
        cleaned
    }
}
