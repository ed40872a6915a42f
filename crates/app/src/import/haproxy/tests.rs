//! Tests of the HAProxy importer on odd and defaulted configs.

use super::*;
use crate::foreign::haproxy::parse_str;

#[test]
fn lines_without_arguments_never_panic() {
    let words = [
        "bind",
        "acl",
        "use_backend",
        "default_backend",
        "server",
        "balance",
        "timeout",
        "retries",
        "option",
        "http-check",
        "default-server",
        "http-request",
        "tune.bufsize",
        "tune.maxrewrite",
    ];
    let lines: String = words.iter().map(|w| format!("    {w}\n")).collect();
    let text = format!(
        "global\n{lines}defaults\n{lines}    mode http\nfrontend f\n{lines}backend b\n{lines}listen l\n{lines}"
    );
    let sections = parse_str(&text, Path::new("odd.cfg")).expect("parses");
    for mode in [Mode::Import, Mode::Doctor] {
        let imported = convert(&sections, Path::new("odd.cfg"), Path::new("/"), mode);
        assert!(!imported.report.unmapped.is_empty());
        // The proxies were read, not skipped as mode tcp.
        assert!(imported.toml.contains("[upstream.b]"), "{}", imported.toml);
    }
}

#[test]
fn defaults_reach_frontends_and_backends() {
    let text = "defaults\n    mode http\n    timeout http-request 5s\n    timeout connect 3s\n    timeout server 20s\nfrontend f\n    bind 127.0.0.1:8080\n    default_backend b\nbackend b\n    server s1 127.0.0.1:3000 check port 3001 agent-check\n";
    let sections = parse_str(text, Path::new("h.cfg")).expect("parses");
    let imported = convert(&sections, Path::new("h.cfg"), Path::new("/"), Mode::Import);
    let toml = &imported.toml;
    assert!(toml.contains("client_header_timeout = \"5s\""), "{toml}");
    assert!(toml.contains("connect_timeout = \"3s\""), "{toml}");
    assert!(toml.contains("response_timeout = \"20s\""), "{toml}");
    let server = imported
        .report
        .mapped
        .iter()
        .find(|m| m.at == "h.cfg:10")
        .expect("server mapped");
    assert!(
        server
            .note
            .as_deref()
            .unwrap_or("")
            .contains("port 3001 agent-check"),
        "{server:?}"
    );
    assert_eq!(
        imported.limits["b"].response_timeout.setting.at.as_deref(),
        Some("h.cfg:5")
    );
    gatehouse_config::parse("out.toml", toml).expect("validates");
}
