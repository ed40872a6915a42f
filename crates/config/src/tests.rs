//! Tests of [`crate::parse`] and [`crate::load`]: one per diagnostic condition (asserting line,
//! column and key), several problems in one file, the embedded default, defaults, and loading.
//! Upstream pools have their own files: `pools` (keys read into the model) and `pool_diagnostics`;
//! TLS listeners, HTTP/2 and upstream TLS are in `tls`.
//! Parsers of single values are tested next to them in `values`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use crate::*;

mod acme;
mod admin;
mod cache;
mod compress;
mod diagnostics;
mod limits;
mod logs;
mod pool_diagnostics;
mod pools;
mod routes;
mod tls;

/// Valid upstream + route, appended to texts that test something else.
const TAIL: &str =
    "[[route]]\nupstream = \"api\"\n[upstream.api]\nservers = [\"127.0.0.1:3000\"]\n";

/// All diagnostics of a text that must fail.
fn diags(text: &str) -> Vec<Diagnostic> {
    match parse("t.toml", text) {
        Ok(loaded) => panic!("expected errors, got {loaded:#?}"),
        Err(e) => e.diagnostics,
    }
}

/// The one error of a text that must fail with exactly one error.
fn one_error(text: &str) -> Diagnostic {
    let all = diags(text);
    let errors: Vec<_> = all.iter().filter(|d| d.is_error()).cloned().collect();
    assert_eq!(
        errors.len(),
        1,
        "expected exactly one error, got:\n{}",
        ConfigErrors { diagnostics: all }
    );
    errors.into_iter().next().unwrap_or_else(|| unreachable!())
}

fn ok(text: &str) -> Loaded {
    parse("t.toml", text).unwrap_or_else(|e| panic!("expected valid config, got:\n{e}"))
}

#[track_caller]
fn at(d: &Diagnostic, line: usize, column: usize, key: &str, message_part: &str) {
    assert_eq!(
        (d.line, d.column, d.key.as_str()),
        (line, column, key),
        "{d}"
    );
    assert!(
        d.message.contains(message_part),
        "message {:?} lacks {message_part:?}",
        d.message
    );
    assert!(!d.fix.is_empty(), "no fix in {d}");
}

// === the embedded default, defaults, loading ===

#[test]
fn default_config_parses() {
    let loaded = default_config();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let c = loaded.config;
    assert_eq!(c.source, DEFAULT_SOURCE);
    assert_eq!(c.server.name, "gatehouse");
    assert_eq!(
        c.server.listen,
        vec![SocketAddr::from(([127, 0, 0, 1], 8080))]
    );
    assert_eq!(
        c.server.admin,
        Some(SocketAddr::from(([127, 0, 0, 1], 9901)))
    );
    assert_eq!(
        c.routes,
        vec![RouteConfig {
            host: None,
            path: "/".into(),
            upstream: "app".into(),
            retry_non_idempotent: false,
            max_request_body_size: None,
            cache: None,
            maintenance: None,
            limit: None,
            compress: None,
        }]
    );
    assert_eq!(c.upstreams.len(), 1);
    assert_eq!(c.upstreams[0].name, "app");
    assert_eq!(
        c.upstreams[0].servers,
        vec![UpstreamServer {
            address: ServerAddress {
                host: "127.0.0.1".into(),
                port: 3000,
                ip: Some(IpAddr::V4(Ipv4Addr::LOCALHOST))
            },
            weight: 1,
            max_connections: None,
            backup: false,
            tls: false,
        }]
    );
    assert_eq!(c.upstreams[0].balance, Balance::RoundRobin);
    assert_eq!(c.upstreams[0].health, None);
}

#[test]
fn defaults_apply() {
    let c = ok(TAIL).config;
    let s = &c.server;
    assert_eq!(s.name, "gatehouse");
    assert_eq!(s.listen, vec![SocketAddr::from(([127, 0, 0, 1], 8080))]);
    assert_eq!(s.admin, None);
    assert_eq!(s.proxy_status, ProxyStatusMode::Minimal);
    assert_eq!(s.drain_timeout, Duration::from_secs(30));
    assert_eq!(s.workers, None);
    assert_eq!(s.client_header_timeout, Duration::from_secs(30));
    assert_eq!(s.max_request_header_size, 64 * 1024);
    assert_eq!(s.max_uri_length, 8 * 1024);
    assert_eq!(s.log_format, LogFormat::Text);
    assert_eq!(s.log_level, "info");
    assert!(s.access_log);
    assert_eq!(
        c.dns,
        DnsConfig {
            nameservers: vec![],
            timeout: Duration::from_secs(2)
        }
    );
    assert_eq!(c.routes[0].path, "/");
    let u = &c.upstreams[0];
    assert_eq!(u.connect_timeout, Duration::from_secs(2));
    assert_eq!(u.response_timeout, Duration::from_secs(30));
    assert_eq!(u.read_timeout, Duration::from_secs(30));
    assert_eq!(u.send_timeout, Duration::from_secs(30));
    assert_eq!(u.max_response_header_size, 64 * 1024);
}

#[test]
fn every_key_is_read() {
    let text = r#"
[server]
name = "edge-1"
listen = ["0.0.0.0:80", "[::1]:8080"]
admin = "127.0.0.1:9000"
proxy_status = "full"
drain_timeout = "1m"
workers = 4
client_header_timeout = "10s"
max_request_header_size = 16384
max_uri_length = "4KB"
log_format = "json"
log_level = "info,gatehouse=debug"
access_log = false

[dns]
nameservers = ["10.0.0.2", "[2606:4700::1111]:5353"]
timeout = "500ms"

[[route]]
host = "*.Example.COM"
path = "/api"
upstream = "web"

[[route]]
host = "example.com"
upstream = "api"

[upstream.web]
servers = ["App.Internal:3000"]
max_response_header_size = "1MiB"
[upstream.api]
servers = ["[::1]:3000"]
connect_timeout = "1h30m"
"#;
    let c = ok(text).config;
    assert_eq!(c.server.name, "edge-1");
    assert_eq!(c.server.listen.len(), 2);
    assert_eq!(c.server.proxy_status, ProxyStatusMode::Full);
    assert_eq!(c.server.drain_timeout, Duration::from_secs(60));
    assert_eq!(c.server.workers, Some(4));
    assert_eq!(c.server.max_request_header_size, 16384);
    assert_eq!(c.server.max_uri_length, 4000);
    assert_eq!(c.server.log_format, LogFormat::Json);
    assert_eq!(c.server.log_level, "info,gatehouse=debug");
    assert!(!c.server.access_log);
    assert_eq!(c.dns.nameservers[0], SocketAddr::from(([10, 0, 0, 2], 53)));
    assert_eq!(c.dns.nameservers[1].port(), 5353);
    assert_eq!(c.dns.timeout, Duration::from_millis(500));
    assert_eq!(
        c.routes[0].host,
        Some(HostMatch::Suffix(".example.com".into()))
    );
    assert_eq!(
        c.routes[1].host,
        Some(HostMatch::Exact("example.com".into()))
    );
    // Sorted by name, not file order.
    let names: Vec<_> = c.upstreams.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(names, ["api", "web"]);
    assert_eq!(
        c.upstreams[0].servers[0].address.ip,
        Some("::1".parse().unwrap_or_else(|_| unreachable!()))
    );
    assert_eq!(c.upstreams[0].connect_timeout, Duration::from_secs(5400));
    assert_eq!(c.upstreams[1].servers[0].address.host, "app.internal");
    assert_eq!(c.upstreams[1].servers[0].address.ip, None);
    assert_eq!(c.upstreams[1].max_response_header_size, 1 << 20);
}

#[test]
fn load_missing_file() {
    let err = match load(Path::new("/nonexistent/gatehouse.toml")) {
        Ok(l) => panic!("loaded {l:?}"),
        Err(e) => e,
    };
    assert_eq!(err.diagnostics.len(), 1);
    let d = &err.diagnostics[0];
    assert_eq!(
        (d.line, d.column, d.file.as_str()),
        (0, 0, "/nonexistent/gatehouse.toml")
    );
    assert!(d.message.contains("No such file"), "{d}");
    assert!(
        err.to_string()
            .starts_with("/nonexistent/gatehouse.toml: error: cannot read"),
        "{err}"
    );
}

#[test]
fn load_reads_a_file() {
    let path =
        std::env::temp_dir().join(format!("gatehouse-config-test-{}.toml", std::process::id()));
    std::fs::write(&path, TAIL).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    let loaded = load(&path);
    let _ = std::fs::remove_file(&path);
    match loaded {
        Ok(l) => assert_eq!(l.config.source, path.display().to_string()),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn display_format() {
    let text = format!("[upstream.x]\nservers = []\n{TAIL}[server]\nworkers = 0\n");
    let err = match parse("gatehouse.toml", &text) {
        Ok(l) => panic!("{l:?}"),
        Err(e) => e,
    };
    let lines: Vec<String> = err.to_string().lines().map(str::to_owned).collect();
    assert_eq!(
        lines,
        [
            "gatehouse.toml:1:1: warning: upstream.x: no route uses this upstream — add a [[route]] with upstream = \"x\", or remove the upstream",
            "gatehouse.toml:2:11: warning: upstream.x.servers: servers is empty: requests routed here will get 500 proxy_configuration_error — add at least one \"host:port\"",
            "gatehouse.toml:8:11: error: server.workers: workers = 0 would leave no thread to serve requests — set 1 or more, or remove `workers` to use one per CPU core",
        ]
    );
}

#[test]
fn columns_count_characters() {
    // The `é` is two bytes; the column counts it as one character.
    let d = one_error(&format!(
        "server = {{ log_level = \"info,é=debug\", workers = 0 }}\n{TAIL}"
    ));
    at(&d, 1, 50, "server.workers", "workers = 0");
}
