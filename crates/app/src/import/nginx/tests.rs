use std::path::Path;

use super::*;
use crate::foreign::nginx::parse_str;

fn import(text: &str) -> Imported {
    let directives = parse_str(text, Path::new("site.conf")).expect("parses");
    convert(
        &directives,
        Path::new("site.conf"),
        Path::new("/etc/nginx"),
        Mode::Import,
    )
}

fn unmapped<'r>(imported: &'r Imported, directive: &str) -> &'r super::super::Unmapped {
    imported
        .report
        .unmapped
        .iter()
        .find(|u| u.directive.starts_with(directive))
        .unwrap_or_else(|| {
            panic!(
                "{directive} not reported unmapped:\n{}",
                imported.report.text()
            )
        })
}

#[test]
fn classic_site_becomes_a_route_and_an_upstream() {
    let imported = import(
        "server {\n listen 80;\n server_name example.com;\n location / {\n  proxy_pass http://127.0.0.1:3000;\n  proxy_set_header Host $host;\n  proxy_read_timeout 5s;\n }\n}\n",
    );
    let toml = &imported.toml;
    assert!(toml.contains("listen = [\"0.0.0.0:80\"]"), "{toml}");
    assert!(toml.contains("host = \"example.com\""), "{toml}");
    assert!(toml.contains("[upstream.127_0_0_1_3000]"), "{toml}");
    assert!(toml.contains("response_timeout = \"5s\""), "{toml}");
    let loaded = gatehouse_config::parse("out.toml", toml).expect("validates");
    assert_eq!(
        loaded.config.routes.len(),
        2,
        "the default server also serves other hosts"
    );
    let timeout = imported
        .report
        .mapped
        .iter()
        .find(|m| m.directive.starts_with("proxy_read_timeout"))
        .expect("mapped");
    assert_eq!(timeout.at, "site.conf:7");
    let limits = &imported.limits["127_0_0_1_3000"];
    assert_eq!(
        limits.response_timeout.setting.at.as_deref(),
        Some("site.conf:7")
    );
    assert_eq!(limits.max_response_header_size.value, 4096);
}

#[test]
fn upstream_block_with_health_parameters() {
    let imported = import(
        "upstream app {\n least_conn;\n server 10.0.0.1:8080 weight=3 max_fails=2 fail_timeout=30s;\n server 10.0.0.2:8080 backup;\n server 10.0.0.3:8080 down;\n keepalive 16;\n}\nserver {\n listen 8080;\n location /api/ { proxy_pass http://app; }\n location ~ \\.php$ { proxy_pass http://app; }\n}\n",
    );
    let toml = &imported.toml;
    assert!(toml.contains("balance = \"least_requests\""), "{toml}");
    assert!(
        toml.contains("{ address = \"10.0.0.1:8080\", weight = 3 }"),
        "{toml}"
    );
    assert!(toml.contains("backup = true"), "{toml}");
    assert!(!toml.contains("10.0.0.3"), "{toml}");
    assert!(toml.contains("consecutive_failures = 2"), "{toml}");
    assert!(toml.contains("ejection = \"30s\""), "{toml}");
    gatehouse_config::parse("out.toml", toml).expect("validates");
    assert_eq!(unmapped(&imported, "location ~").at, "site.conf:11");
    assert_eq!(unmapped(&imported, "server 10.0.0.3").at, "site.conf:5");
}

#[test]
fn names_hosts_and_path_rewrites() {
    let imported = import(
        "server {\n listen 80 default_server;\n server_name .example.com www.example.org ~^(.+)$ _;\n location = /exact { proxy_pass http://a:1; }\n location /v1/ { proxy_pass http://a:1/v2/; }\n location / { root /srv; }\n}\n",
    );
    let config = gatehouse_config::parse("out.toml", &imported.toml)
        .expect("validates")
        .config;
    let hosts: Vec<String> = config
        .routes
        .iter()
        .map(|r| format!("{:?} {}", r.host, r.path))
        .collect();
    assert!(
        hosts
            .iter()
            .any(|h| h.contains("Exact(\"example.com\")) /exact")),
        "{hosts:?}"
    );
    assert!(
        hosts
            .iter()
            .any(|h| h.contains("Suffix(\".example.com\")) /v1/")),
        "{hosts:?}"
    );
    assert!(
        hosts.iter().any(|h| h.starts_with("None /v1/")),
        "{hosts:?}"
    );
    assert!(
        unmapped(&imported, "server_name ~")
            .why
            .contains("regular-expression")
    );
    assert!(
        unmapped(&imported, "location /")
            .why
            .contains("no proxy_pass")
    );
    let rewrite = imported
        .report
        .mapped
        .iter()
        .find(|m| m.directive == "proxy_pass http://a:1/v2/")
        .expect("mapped");
    assert!(rewrite.note.as_deref().unwrap_or("").contains("/v2/"));
}

#[test]
fn redirect_server_and_tls() {
    let imported = import(
        "http {\n server {\n  listen 80;\n  server_name a.test;\n  return 301 https://$host$request_uri;\n }\n server {\n  listen 443 ssl http2;\n  server_name a.test;\n  ssl_certificate certs/a.pem;\n  ssl_certificate_key certs/a.key;\n  location / { proxy_pass http://127.0.0.1:9; }\n }\n}\n",
    );
    let toml = &imported.toml;
    assert!(toml.contains("redirect_https = [\"0.0.0.0:80\"]"), "{toml}");
    assert!(
        toml.contains("[[server.tls]]\nlisten = [\"0.0.0.0:443\"]"),
        "{toml}"
    );
    assert!(toml.contains("cert = \"/etc/nginx/certs/a.pem\""), "{toml}");
    assert!(toml.contains("listen = []"), "{toml}");
}

#[test]
fn directives_without_arguments_never_panic() {
    let names = [
        "listen",
        "server_name",
        "location",
        "proxy_pass",
        "return",
        "server",
        "upstream",
        "hash",
        "proxy_read_timeout",
        "proxy_buffer_size",
        "proxy_set_header",
        "proxy_cache",
        "proxy_next_upstream",
        "ssl_certificate",
        "client_header_timeout",
        "large_client_header_buffers",
        "proxy_cache_use_stale",
    ];
    let mut text = String::new();
    for name in names {
        text.push_str(&format!("{name};\n{name} {{ {name}; }}\n"));
    }
    for wrapped in [
        text.clone(),
        format!(
            "http {{ {text} server {{ {text} location / {{ {text} }} }} upstream u {{ {text} }} }}"
        ),
    ] {
        let directives = parse_str(&wrapped, Path::new("odd.conf")).expect("parses");
        for mode in [Mode::Import, Mode::Doctor] {
            let imported = convert(&directives, Path::new("odd.conf"), Path::new("/"), mode);
            assert!(!imported.report.unmapped.is_empty());
        }
    }
}

#[test]
fn every_proxy_setting_is_reported_once_used_or_not() {
    let imported = import(
        "server {\n listen 80;\n proxy_send_timeout 9s;\n location /a/ { proxy_pass http://b:1; proxy_read_timeout 5s; }\n location /b/ { proxy_pass http://b:1; proxy_read_timeout 7s; }\n}\nserver {\n listen 81;\n proxy_connect_timeout 1s;\n location / { root /srv; }\n}\n",
    );
    let report = &imported.report;
    let at = |line: usize| format!("site.conf:{line}");
    for (line, what) in [(3, "proxy_send_timeout"), (4, "proxy_read_timeout 5s")] {
        assert!(
            report
                .mapped
                .iter()
                .any(|m| m.at == at(line) && m.directive.starts_with(what)),
            "{what}:\n{}",
            report.text()
        );
    }
    // The second location's timeout loses to the first's; the unused server setting is said.
    assert_eq!(unmapped(&imported, "proxy_read_timeout 7s").at, at(5));
    assert_eq!(unmapped(&imported, "proxy_connect_timeout 1s").at, at(9));
    assert!(
        imported.toml.contains("response_timeout = \"5s\""),
        "{}",
        imported.toml
    );
}

#[test]
fn https_upstreams_are_verified_by_gatehouse_and_said_so() {
    let imported = import(
        "upstream api { server 10.0.0.1:8443; }\nserver {\n listen 80;\n location / { proxy_pass https://api; }\n location /x/ { proxy_pass https://10.0.0.2; }\n}\n",
    );
    let toml = &imported.toml;
    assert!(toml.contains("\"https://10.0.0.1:8443\""), "{toml}");
    assert!(toml.contains("\"https://10.0.0.2:443\""), "{toml}");
    assert!(
        imported
            .report
            .differences
            .iter()
            .any(|d| d.note.contains("proxy_ssl_verify")),
        "{}",
        imported.report.text()
    );
    gatehouse_config::parse("out.toml", toml).expect("validates");
}

#[test]
fn the_default_server_is_chosen_per_address() {
    // The redirect is the default on :80; the site is the only (so default) server on :443.
    let imported = import(
        "server {\n listen 80 default_server;\n server_name _;\n return 301 https://$host$request_uri;\n}\nserver {\n listen 443;\n server_name site.test;\n location / { proxy_pass http://a:1; }\n}\nserver {\n listen 443;\n server_name other.test;\n location / { proxy_pass http://b:1; }\n}\n",
    );
    let config = gatehouse_config::parse("out.toml", &imported.toml)
        .expect("validates")
        .config;
    let any_host: Vec<&str> = config
        .routes
        .iter()
        .filter(|r| r.host.is_none())
        .map(|r| r.upstream.as_str())
        .collect();
    assert_eq!(any_host, ["a_1"], "{}", imported.toml);
}
