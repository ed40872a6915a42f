//! Real nginx (1.22 on Debian) made to fail each way; its error.log and access.log explained.

use std::net::SocketAddr;
use std::path::Path;

use gatehouse_testkit::free_port;
use gatehouse_testkit::peers::{Peer, PeerKind};
use gatehouse_testkit::tls::{TestCa, Validity};
use gatehouse_testkit::tls_origin::TlsOrigin;
use gatehouse_testkit::{Behavior, DnsAnswer, FullBacklog, MockDns, Upstream, big_header_response};
use serde_json::Value;

use crate::{assert_group, explain_json, get, group, refused_addr, wait_for};

/// nginx with `body` inside its `server {}` (and `http_extra` in `http {}`), logging the
/// combined format plus upstream fields in `key=value` style.
fn nginx(body: &str, http_extra: &str) -> (Peer, SocketAddr) {
    let port = free_port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let config = format!(
        "pid {{dir}}/nginx.pid;\nerror_log {{dir}}/error.log info;\nevents {{}}\nhttp {{\n\
         log_format upstreams '$remote_addr - $remote_user [$time_local] \"$request\" $status $body_bytes_sent \"$http_referer\" \"$http_user_agent\" us=$upstream_status ua=$upstream_addr urt=$upstream_response_time rt=$request_time';\n\
         access_log {{dir}}/access.log upstreams;\n\
         proxy_connect_timeout 1s; proxy_read_timeout 1s; proxy_send_timeout 1s;\n\
         {http_extra}\n\
         server {{ listen 127.0.0.1:{port};\n{body}\n}}\n}}\n"
    );
    (Peer::start(PeerKind::Nginx, &config, addr), addr)
}

/// Sends `path` through nginx, waits for the error-log line, and explains both logs.
fn provoke(peer: &Peer, addr: SocketAddr, path: &str, times: usize) -> Value {
    for _ in 0..times {
        get(addr, path);
    }
    wait_for("access.log", path, || peer.read("access.log"));
    let error_log = peer.dir().join("error.log");
    let access_log = peer.dir().join("access.log");
    explain_json(&[Path::new(&error_log), Path::new(&access_log)])
}

/// The group is exact (from error.log), not guessed, and the client status is nginx's.
fn assert_exact(group: &Value, status: u16) {
    assert_eq!(group["guessed"], 0, "{group:#}");
    assert_eq!(
        group["client_statuses"][status.to_string()]
            .as_u64()
            .map(|n| n >= 1),
        Some(true),
        "{group:#}"
    );
}

#[test]
fn refused_connect() {
    let dead = refused_addr();
    let (peer, addr) = nginx(&format!("location / {{ proxy_pass http://{dead}; }}"), "");
    let report = provoke(&peer, addr, "/refused", 1);
    let g = group(&report, "nginx", "connection_refused");
    assert_group(g, &dead.to_string(), "max_fails");
    assert_exact(g, 502);
    assert!(
        g["examples"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("111: Connection refused")
    );
    // One request, one failure: the access line was matched, not counted again.
    assert_eq!(report["counts"]["failures"], 1, "{report:#}");
}

#[test]
fn premature_close_before_the_header() {
    let up = Upstream::start(Behavior::CloseAfterRequest);
    let (peer, addr) = nginx(
        &format!("location / {{ proxy_pass http://{}; }}", up.addr()),
        "",
    );
    let report = provoke(&peer, addr, "/close", 1);
    let g = group(&report, "nginx", "connection_terminated");
    assert_group(g, &up.addr().to_string(), "keepalive_timeout");
    assert_exact(g, 502);
}

#[test]
fn premature_close_in_the_body() {
    let up = Upstream::start(Behavior::RawThenClose(
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc".to_vec(),
    ));
    let (peer, addr) = nginx(
        &format!("location / {{ proxy_pass http://{}; }}", up.addr()),
        "",
    );
    let report = provoke(&peer, addr, "/half", 1);
    let g = group(&report, "nginx", "http_response_incomplete");
    assert_eq!(g["server"], up.addr().to_string());
    assert_exact(g, 200);
}

#[test]
fn read_timeout_waiting_for_the_header() {
    let up = Upstream::start(Behavior::Hang);
    let (peer, addr) = nginx(
        &format!("location / {{ proxy_pass http://{}; }}", up.addr()),
        "",
    );
    let report = provoke(&peer, addr, "/hang", 1);
    let g = group(&report, "nginx", "http_response_timeout");
    assert_group(g, &up.addr().to_string(), "proxy_read_timeout");
    assert_exact(g, 504);
}

#[test]
fn connect_timeout() {
    let backlog = FullBacklog::start();
    let (peer, addr) = nginx(
        &format!("location / {{ proxy_pass http://{}; }}", backlog.addr()),
        "",
    );
    let report = provoke(&peer, addr, "/slow-connect", 1);
    let g = group(&report, "nginx", "connection_timeout");
    assert_group(g, &backlog.addr().to_string(), "proxy_connect_timeout");
    assert_exact(g, 504);
}

#[test]
fn too_big_header() {
    let up = Upstream::start(Behavior::RawThenClose(big_header_response(20_000)));
    let (peer, addr) = nginx(
        &format!("location / {{ proxy_pass http://{}; }}", up.addr()),
        "",
    );
    let report = provoke(&peer, addr, "/big", 1);
    let g = group(&report, "nginx", "http_response_header_section_size");
    assert_group(g, &up.addr().to_string(), "proxy_buffer_size");
    assert!(
        g["fix"]
            .as_str()
            .unwrap_or_default()
            .contains("proxy_buffers")
    );
    assert_exact(g, 502);
}

#[test]
fn invalid_header_and_no_valid_http() {
    let bad_header = Upstream::start(Behavior::RawThenClose(
        b"HTTP/1.1 200 OK\r\nBad Header\x01: x\r\nContent-Length: 0\r\n\r\n".to_vec(),
    ));
    let not_http = Upstream::start(Behavior::RawThenClose(
        b"SSH-2.0-OpenSSH_9.2\r\n\r\n".to_vec(),
    ));
    let (peer, addr) = nginx(
        &format!(
            "location /invalid {{ proxy_pass http://{}; }}\nlocation /ssh {{ proxy_pass http://{}; }}",
            bad_header.addr(),
            not_http.addr()
        ),
        "",
    );
    get(addr, "/invalid");
    let report = provoke(&peer, addr, "/ssh", 1);
    let errors = peer.read("error.log");
    assert!(errors.contains("upstream sent invalid header"), "{errors}");
    assert!(
        errors.contains("upstream sent no valid HTTP/1.0 header"),
        "{errors}"
    );
    let groups: Vec<&Value> = report["groups"]
        .as_array()
        .map(|g| {
            g.iter()
                .filter(|g| g["kind"] == "http_protocol_error")
                .collect()
        })
        .unwrap_or_default();
    let servers: Vec<&str> = groups.iter().filter_map(|g| g["server"].as_str()).collect();
    assert!(
        servers.contains(&bad_header.addr().to_string().as_str()),
        "{report:#}"
    );
    assert!(
        servers.contains(&not_http.addr().to_string().as_str()),
        "{report:#}"
    );
    for g in groups {
        assert_group(g, g["server"].as_str().unwrap_or_default(), "proxy_pass");
    }
}

#[test]
fn no_live_upstreams() {
    let (a, b) = (refused_addr(), refused_addr());
    let (peer, addr) = nginx(
        "location / { proxy_pass http://pool; }",
        &format!(
            "upstream pool {{ server {a} max_fails=1 fail_timeout=30s; server {b} max_fails=1 fail_timeout=30s; }}"
        ),
    );
    let report = provoke(&peer, addr, "/pool", 3);
    let g = group(&report, "nginx", "destination_unavailable");
    assert_group(g, "pool", "fail_timeout");
    assert_exact(g, 502);
    // The first request met both servers refusing: one failure per attempt.
    let refused = report["groups"].as_array().map_or(0, |g| {
        g.iter()
            .filter(|g| g["kind"] == "connection_refused")
            .map(|g| g["count"].as_u64().unwrap_or(0))
            .sum::<u64>()
    });
    assert_eq!(refused, 2, "{report:#}");
    assert_eq!(
        report["counts"]["failures"],
        2 + g["count"].as_u64().unwrap_or(0),
        "{report:#}"
    );
}

#[test]
fn host_not_resolved() {
    let dns = MockDns::start(DnsAnswer::NxDomain);
    let (peer, addr) = nginx(
        &format!(
            "location / {{ resolver {} valid=1s; resolver_timeout 2s; set $backend app.invalid; proxy_pass http://$backend; }}",
            dns.addr()
        ),
        "",
    );
    let report = provoke(&peer, addr, "/dns", 1);
    let g = group(&report, "nginx", "dns_error");
    assert_group(g, "app.invalid", "resolver");
    assert_exact(g, 502);
}

#[test]
fn resolver_silent() {
    let dns = MockDns::start(DnsAnswer::Silent);
    let (peer, addr) = nginx(
        &format!(
            "location / {{ resolver {} valid=1s; resolver_timeout 1s; set $backend app.invalid; proxy_pass http://$backend; }}",
            dns.addr()
        ),
        "",
    );
    let report = provoke(&peer, addr, "/dns-timeout", 1);
    let g = group(&report, "nginx", "dns_timeout");
    assert_group(g, "app.invalid", "resolver_timeout");
}

#[test]
fn tls_to_a_plain_port() {
    let up = Upstream::hello();
    let (peer, addr) = nginx(
        &format!("location / {{ proxy_pass https://{}; }}", up.addr()),
        "",
    );
    let report = provoke(&peer, addr, "/tls", 1);
    let g = group(&report, "nginx", "tls_protocol_error");
    assert_group(g, &up.addr().to_string(), "proxy_ssl_protocols");
}

#[test]
fn tls_certificate_not_trusted() {
    let ca = TestCa::new("explain test CA");
    let other_ca = TestCa::new("another CA");
    let cert = ca.leaf_with(&["localhost"], Validity::Current);
    let origin = TlsOrigin::start(&cert);
    let trusted = other_ca.write_pem();
    let (peer, addr) = nginx(
        &format!(
            "location / {{ proxy_pass https://{}; proxy_ssl_verify on; proxy_ssl_name localhost; proxy_ssl_trusted_certificate {}; }}",
            origin.addr(),
            trusted.path().display()
        ),
        "",
    );
    let report = provoke(&peer, addr, "/cert", 1);
    let g = group(&report, "nginx", "tls_certificate_error");
    assert_group(
        g,
        &origin.addr().to_string(),
        "proxy_ssl_trusted_certificate",
    );
}

#[test]
fn access_log_alone_is_guessed() {
    let up = Upstream::start(Behavior::Hang);
    let (peer, addr) = nginx(
        &format!("location / {{ proxy_pass http://{}; }}", up.addr()),
        "",
    );
    get(addr, "/only-access");
    wait_for("access.log", "/only-access", || peer.read("access.log"));
    let report = explain_json(&[&peer.dir().join("access.log")]);
    let g = group(&report, "nginx", "http_response_timeout");
    assert_eq!(g["guessed"], 1, "{g:#}");
    assert_group(g, &up.addr().to_string(), "proxy_read_timeout");
    let text = crate::explain(
        &[&peer.dir().join("access.log").display().to_string()],
        None,
    )
    .stdout;
    assert!(text.contains("guessed from the access log"), "{text}");
}

#[test]
fn tls_alert_from_a_server_requiring_a_client_certificate() {
    let ca = TestCa::new("explain test CA");
    let cert = ca.leaf(&["localhost"]);
    let origin = TlsOrigin::builder(&cert)
        .require_client_cert(ca.cert_der())
        .start();
    let (peer, addr) = nginx(
        &format!("location / {{ proxy_pass https://{}; }}", origin.addr()),
        "",
    );
    let report = provoke(&peer, addr, "/client-cert", 1);
    let errors = peer.read("error.log");
    assert!(errors.contains("alert"), "{errors}");
    let g = group(&report, "nginx", "tls_alert_received");
    assert_group(g, &origin.addr().to_string(), "proxy_ssl_certificate");
}
