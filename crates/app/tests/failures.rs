//! One test per failure kind (failures.md): the real binary in front of an upstream that fails
//! in that one way. Each asserts the status, the Proxy-Status member with the kind's
//! parameters, and the kind in the failure warning and the access record.

use std::path::Path;
use std::time::{Duration, Instant};

use gatehouse_testkit::{
    Behavior, Config, DnsAnswer, FullBacklog, Gatehouse, MockDns, RawConn, Reply, Req, Upstream,
    big_header_response, curl,
};

fn start(config: Config) -> Gatehouse {
    Gatehouse::start(Path::new(env!("CARGO_BIN_EXE_gatehouse")), &config.toml())
}

/// Gatehouse with one route to an upstream behaving as `behavior`, with `proxy_status` and
/// these `[upstream.app]` keys.
fn in_front_of(
    behavior: Behavior,
    proxy_status: &str,
    settings: &[(&str, &str)],
) -> (Gatehouse, Upstream) {
    let upstream = Upstream::start(behavior);
    let config = Config::proxy_to([upstream.addr()]).server("proxy_status", proxy_status);
    let config = settings.iter().fold(config, |config, (key, value)| {
        config.upstream_setting("app", key, *value)
    });
    (start(config), upstream)
}

/// Gatehouse whose only server is `app.test:80`, resolved through `dns`.
fn resolving_through(dns: &MockDns, proxy_status: &str) -> Gatehouse {
    start(
        Config::proxy_to(["app.test:80"])
            .server("proxy_status", proxy_status)
            .dns("nameservers", vec![dns.addr().to_string()])
            .dns("timeout", "500ms"),
    )
}

/// A port where connections are refused for the whole test (see the testkit's).
fn closed_port() -> u16 {
    gatehouse_testkit::closed_port()
}

// --- DNS ---

#[test]
fn dns_error_nxdomain() {
    let dns = MockDns::start(DnsAnswer::NxDomain);
    let gh = resolving_through(&dns, "full");
    let resp = Req::get("/")
        .header("Accept", "application/json")
        .send(gh.addr());
    let seen = gh.expect_failure(&resp, 502, "dns_error");
    let member = seen.member.unwrap();
    assert_eq!(member.string("rcode"), Some("NXDOMAIN"));
    assert_eq!(member.string("next-hop"), Some("app/app.test:80"));
    assert_eq!(
        member.string("details"),
        Some("app.test does not exist (NXDOMAIN)")
    );
    assert_eq!(
        resp.header("content-type"),
        Some("application/problem+json")
    );
    assert_eq!(resp.json()["error"], "dns_error");
    assert_eq!(seen.warning["phase"], "while resolving the upstream host");
    assert!(dns.queries() >= 1, "the mock name server was never asked");
}

#[test]
fn dns_error_servfail() {
    let dns = MockDns::start(DnsAnswer::ServFail);
    let gh = resolving_through(&dns, "minimal");
    let resp = Req::get("/").send(gh.addr());
    let member = gh.expect_failure(&resp, 502, "dns_error").member.unwrap();
    assert_eq!(member.string("rcode"), Some("SERVFAIL"));
    assert_eq!(
        member.keys(),
        ["error", "rcode"],
        "minimal mode tells no next-hop or details"
    );
}

#[test]
fn dns_timeout() {
    let dns = MockDns::start(DnsAnswer::Silent);
    let gh = resolving_through(&dns, "minimal");
    let started = Instant::now();
    let resp = Req::get("/").send(gh.addr());
    let member = gh.expect_failure(&resp, 504, "dns_timeout").member.unwrap();
    assert_eq!(member.keys(), ["error"]);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?} for a 500ms DNS timeout",
        started.elapsed()
    );
}

// --- routing and configuration ---

#[test]
fn destination_not_found() {
    let upstream = Upstream::hello();
    let gh = start(Config::new().upstream("app", [upstream.addr()]).route(
        Some("only.test"),
        "/",
        "app",
    ));
    let resp = Req::get("/x")
        .host("other.test")
        .header("Accept", "text/plain")
        .send(gh.addr());
    let seen = gh.expect_failure(&resp, 404, "destination_not_found");
    assert_eq!(seen.member.unwrap().keys(), ["error"]);
    resp.assert_body(
        "text/plain; charset=utf-8",
        &["404 Not Found\n", "error: destination_not_found\n"],
    );
    assert_eq!(upstream.connections(), 0);
}

#[test]
fn proxy_configuration_error() {
    let gh = start(Config::proxy_to(Vec::<String>::new()));
    let resp = Req::get("/").send(gh.addr());
    let seen = gh.expect_failure(&resp, 500, "proxy_configuration_error");
    assert_eq!(seen.access["route"], "/");
}

#[test]
fn proxy_loop_detected() {
    let (gh, upstream) = in_front_of(Behavior::Serve(Reply::ok("hello")), "minimal", &[]);
    let resp = Req::get("/")
        .header("Via", "1.0 cdn, 1.1 gatehouse")
        .send(gh.addr());
    gh.expect_failure(&resp, 502, "proxy_loop_detected");
    assert_eq!(upstream.connections(), 0);
}

// --- connecting ---

#[test]
fn destination_ip_unroutable() {
    // Multicast and broadcast destinations: Linux connect(2) answers ENETUNREACH.
    let gh = start(Config::proxy_to(["224.0.0.1:80"]).server("proxy_status", "full"));
    let resp = Req::get("/").send(gh.addr());
    let seen = gh.expect_failure(&resp, 502, "destination_ip_unroutable");
    assert_eq!(
        seen.member.unwrap().string("next-hop"),
        Some("app/224.0.0.1:80")
    );
    assert_eq!(
        seen.warning["os_error"], 101,
        "ENETUNREACH: {}",
        seen.warning
    );
    assert_eq!(seen.warning["phase"], "while connecting to upstream");
}

#[test]
fn connection_refused() {
    let port = closed_port();
    let gh = start(Config::proxy_to([format!("127.0.0.1:{port}")]).server("proxy_status", "full"));
    let resp = Req::get("/").send(gh.addr());
    let seen = gh.expect_failure(&resp, 502, "connection_refused");
    let member = seen.member.unwrap();
    let next_hop = format!("app/127.0.0.1:{port}");
    assert_eq!(member.string("next-hop"), Some(next_hop.as_str()));
    assert_eq!(
        member.string("details"),
        Some(format!("connect to 127.0.0.1:{port}: Connection refused (os error 111)").as_str())
    );
    let w = &seen.warning;
    assert_eq!(
        (
            &w["os_error"],
            &w["request_sent"],
            &w["attempt"],
            &w["pool"],
            &w["server"]
        ),
        (
            &111.into(),
            &false.into(),
            &1.into(),
            &"app".into(),
            &next_hop.clone().into()
        ),
        "{w}"
    );
    assert_eq!(w["hint"], "backend not running, or wrong port");
    assert_eq!(seen.access["upstream"], next_hop);
    // Default Accept: the HTML page, with the operator's hint.
    resp.assert_body(
        "text/html; charset=utf-8",
        &[
            "<title>502 Bad Gateway</title>",
            "backend not running, or wrong port",
        ],
    );
}

#[test]
fn connection_timeout() {
    let backlog = FullBacklog::start();
    let gh = start(
        Config::proxy_to([backlog.addr()])
            .server("proxy_status", "minimal")
            .upstream_setting("app", "connect_timeout", "300ms"),
    );
    let started = Instant::now();
    let resp = Req::get("/").send(gh.addr());
    let elapsed = started.elapsed();
    let seen = gh.expect_failure(&resp, 504, "connection_timeout");
    assert_eq!(seen.member.unwrap().keys(), ["error"]);
    assert!(
        elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(3),
        "took {elapsed:?}"
    );
    assert_eq!(seen.warning["request_sent"], false);
}

// --- the upstream connection breaks ---

fn connection_terminated(behavior: Behavior) {
    let (gh, _upstream) = in_front_of(behavior, "minimal", &[]);
    let resp = Req::get("/").send(gh.addr());
    let seen = gh.expect_failure(&resp, 502, "connection_terminated");
    assert_eq!(seen.member.unwrap().keys(), ["error"]);
    assert_eq!(seen.warning["pool"], "app");
}

#[test]
fn connection_terminated_by_close_after_request() {
    connection_terminated(Behavior::CloseAfterRequest);
}

#[test]
fn connection_terminated_by_reset_after_request() {
    connection_terminated(Behavior::ResetAfterRequest);
}

#[test]
fn connection_terminated_by_close_on_accept() {
    connection_terminated(Behavior::CloseOnAccept);
}

#[test]
fn connection_write_timeout() {
    let (gh, _upstream) = in_front_of(Behavior::NeverRead, "minimal", &[("send_timeout", "500ms")]);
    let len: u64 = 64 * 1024 * 1024;
    let mut conn = RawConn::connect(gh.addr());
    conn.send(
        format!("POST /upload HTTP/1.1\r\nHost: app.test\r\nContent-Length: {len}\r\n\r\n")
            .as_bytes(),
    )
    .unwrap();
    let writer = conn.send_in_background(len);
    let resp = conn.read_response(false);
    let seen = gh.expect_failure(&resp, 504, "connection_write_timeout");
    assert_eq!(seen.warning["request_sent"], true);
    assert!(
        writer.join().unwrap() < len,
        "the whole body went through an upstream that never reads"
    );
}

#[test]
fn connection_read_timeout_aborts_the_response() {
    let (gh, _upstream) = in_front_of(
        Behavior::RawThenHang(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial".to_vec()),
        "minimal",
        &[("read_timeout", "500ms")],
    );
    let started = Instant::now();
    let resp = Req::get("/").send(gh.addr());
    assert_eq!((resp.status, resp.text().as_str()), (200, "partial"));
    assert_eq!(
        resp.incomplete_because.as_deref(),
        Some("closed"),
        "{resp:#?}"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "aborted after {:?}",
        started.elapsed()
    );
    let seen = gh.expect_aborted(&resp, "connection_read_timeout");
    assert_eq!(
        seen.warning["phase"],
        "while reading the response body from upstream"
    );
    assert_eq!(seen.access["bytes"], 7);
}

#[test]
fn connection_read_timeout_seen_by_curl() {
    let head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n7\r\npartial\r\n";
    let (gh, _upstream) = in_front_of(
        Behavior::RawThenHang(head.to_vec()),
        "minimal",
        &[("read_timeout", "500ms")],
    );
    let result = curl(&[&format!("http://{}/", gh.addr())]);
    // 18: "transfer closed with outstanding read data remaining"; never 0 (a complete body).
    assert_eq!(
        (result.status(), result.exit_code),
        (200, Some(18)),
        "{result:#?}"
    );
    assert_eq!(result.body, b"partial");
    gh.wait_for_log(
        |l| l["kind"] == "connection_read_timeout",
        Duration::from_secs(5),
    );
}

#[test]
fn http_response_timeout() {
    let (gh, upstream) = in_front_of(
        Behavior::RawThenHang(Vec::new()),
        "full",
        &[("response_timeout", "500ms")],
    );
    let started = Instant::now();
    let resp = Req::get("/").send(gh.addr());
    let elapsed = started.elapsed();
    let seen = gh.expect_failure(&resp, 504, "http_response_timeout");
    assert!(
        elapsed >= Duration::from_millis(500) && elapsed < Duration::from_secs(3),
        "took {elapsed:?}"
    );
    assert_eq!(
        seen.warning["phase"],
        "while reading response headers from upstream"
    );
    assert_eq!(seen.warning["request_sent"], true);
    assert_eq!(upstream.requests().len(), 1);
}

/// The response timeout holds for every request on a reused upstream connection: each one gets
/// the whole timeout (fast ones spread over more than one timeout all pass), and a slow one on
/// the same connection is cut off at it.
#[test]
fn http_response_timeout_on_a_reused_connection() {
    let upstream = Upstream::start(Behavior::Serve(Reply::ok("fast")));
    // One worker, so that every request is sure to take the one pooled connection.
    let gh = start(
        Config::proxy_to([upstream.addr()])
            .server("workers", 1)
            .upstream_setting("app", "response_timeout", "500ms"),
    );
    upstream.set_route(
        "/slow",
        Behavior::Delay(Duration::from_secs(5), Reply::ok("late")),
    );
    for _ in 0..4 {
        std::thread::sleep(Duration::from_millis(200));
        let resp = Req::get("/").send(gh.addr());
        let body = String::from_utf8_lossy(&resp.body);
        assert_eq!((resp.status, &*body), (200, "fast"));
    }
    assert_eq!(
        upstream.connections(),
        1,
        "the upstream connection was not reused"
    );
    let started = Instant::now();
    let resp = Req::get("/slow").send(gh.addr());
    let elapsed = started.elapsed();
    gh.expect_failure(&resp, 504, "http_response_timeout");
    assert!(
        elapsed >= Duration::from_millis(500) && elapsed < Duration::from_secs(3),
        "took {elapsed:?}"
    );
    assert_eq!(upstream.connections(), 1);
}

// --- broken responses ---

#[test]
fn http_response_incomplete_head() {
    let (gh, _upstream) = in_front_of(
        Behavior::RawThenClose(b"HTTP/1.1 200 OK\r\nContent-Le".to_vec()),
        "minimal",
        &[],
    );
    let resp = Req::get("/").send(gh.addr());
    let seen = gh.expect_failure(&resp, 502, "http_response_incomplete");
    assert_eq!(seen.member.unwrap().keys(), ["error"]);
}

#[test]
fn http_response_incomplete_body_shorter_than_content_length() {
    let (gh, _upstream) = in_front_of(
        Behavior::RawThenClose(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part".to_vec()),
        "minimal",
        &[],
    );
    let resp = Req::get("/").send(gh.addr());
    assert_eq!(
        (resp.status, resp.header("content-length")),
        (200, Some("100"))
    );
    assert_eq!(resp.text(), "only part");
    gh.expect_aborted(&resp, "http_response_incomplete");
}

#[test]
fn http_response_incomplete_chunked_cut_mid_chunk() {
    let raw =
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n10\r\nabc".to_vec();
    let (gh, _upstream) = in_front_of(Behavior::RawThenClose(raw), "minimal", &[]);
    let resp = Req::get("/").send(gh.addr());
    assert_eq!(resp.status, 200);
    assert!(resp.text().starts_with("hello"), "{resp:#?}");
    gh.expect_aborted(&resp, "http_response_incomplete");
    // curl agrees that the transfer did not complete.
    let result = curl(&[&format!("http://{}/", gh.addr())]);
    assert_eq!(
        (result.status(), result.exit_code),
        (200, Some(18)),
        "{result:#?}"
    );
}

#[test]
fn http_response_header_section_size() {
    let (gh, _upstream) = in_front_of(
        Behavior::RawThenClose(big_header_response(32 * 1024)),
        "minimal",
        &[("max_response_header_size", "16KiB")],
    );
    let resp = Req::get("/").send(gh.addr());
    let member = gh
        .expect_failure(&resp, 502, "http_response_header_section_size")
        .member
        .unwrap();
    assert_eq!(member.keys(), ["error", "header-section-size"]);
    let size = member.integer("header-section-size").unwrap();
    assert!(
        (16 * 1024..=33 * 1024).contains(&size),
        "header-section-size={size}"
    );
}

#[test]
fn http_response_header_section_size_holds_for_a_head_that_arrives_whole() {
    // Just over the limit, in one write: the head may be parsed complete in one read, and is
    // held to the limit all the same (the default 64 KiB, and a configured 16 KiB).
    for (limit, size) in [(None, 66 * 1024), (Some("16KiB"), 17 * 1024)] {
        let settings: Vec<(&str, &str)> = limit
            .map(|limit| ("max_response_header_size", limit))
            .into_iter()
            .collect();
        let (gh, _upstream) = in_front_of(
            Behavior::RawThenClose(big_header_response(size)),
            "minimal",
            &settings,
        );
        let resp = Req::get("/").send(gh.addr());
        gh.expect_failure(&resp, 502, "http_response_header_section_size");
    }
}

#[test]
fn http_response_with_too_many_fields_says_it_is_their_count() {
    // 150 short fields: far under max_response_header_size, over the 100 fields kept. The
    // warning must not send the operator to raise a size limit that changes nothing.
    let mut raw = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n".to_vec();
    for n in 0..150 {
        raw.extend_from_slice(format!("X-F{n}: v\r\n").as_bytes());
    }
    raw.extend_from_slice(b"\r\nok");
    let (gh, _upstream) = in_front_of(Behavior::RawThenClose(raw), "minimal", &[]);
    let resp = Req::get("/").send(gh.addr());
    let seen = gh.expect_failure(&resp, 502, "http_response_header_section_size");
    let message = seen.warning["message"].as_str().unwrap();
    assert!(message.contains("more than 100 header fields"), "{message}");
}

#[test]
fn http_response_transfer_coding_invalid_chunk_size() {
    let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\nmore\r\n0\r\n\r\n".to_vec();
    let (gh, _upstream) = in_front_of(Behavior::RawThenHang(raw), "minimal", &[]);
    let resp = Req::get("/").send(gh.addr());
    assert_eq!(resp.status, 200);
    let seen = gh.expect_aborted(&resp, "http_response_transfer_coding");
    let message = seen.warning["message"].as_str().unwrap();
    assert!(message.contains("invalid chunked encoding"), "{message}");
}

#[test]
fn http_response_transfer_coding_gzip() {
    let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n\x1f\x8b\x08\x00garbage".to_vec();
    let (gh, _upstream) = in_front_of(Behavior::RawThenClose(raw), "minimal", &[]);
    let resp = Req::get("/").send(gh.addr());
    let member = gh
        .expect_failure(&resp, 502, "http_response_transfer_coding")
        .member
        .unwrap();
    assert_eq!(member.string("coding"), Some("gzip"));
    assert_eq!(gh.access_log(resp.request_id())["upstream_status"], 200);
}

/// The upstream answers `raw`; gatehouse must answer 502 `http_protocol_error`.
fn protocol_error(raw: &[u8]) {
    let (gh, upstream) = in_front_of(Behavior::RawThenClose(raw.to_vec()), "full", &[]);
    let resp = Req::get("/").send(gh.addr());
    let member = gh
        .expect_failure(&resp, 502, "http_protocol_error")
        .member
        .unwrap();
    assert_eq!(
        member.string("next-hop"),
        Some(format!("app/{}", upstream.addr()).as_str())
    );
}

#[test]
fn http_protocol_error_binary_garbage() {
    protocol_error(b"\x00\x01\x02\xff\xfe garbage\r\n\r\n");
}

#[test]
fn http_protocol_error_invalid_status_code() {
    protocol_error(b"HTTP/1.1 99999 X\r\nContent-Length: 0\r\n\r\n");
}

#[test]
fn http_protocol_error_header_line_without_colon() {
    protocol_error(b"HTTP/1.1 200 OK\r\nX-Broken header line\r\nContent-Length: 0\r\n\r\n");
}

#[test]
fn http_protocol_error_nul_in_header_value() {
    protocol_error(b"HTTP/1.1 200 OK\r\nX-Nul: a\x00b\r\nContent-Length: 0\r\n\r\n");
}

#[test]
fn http_protocol_error_conflicting_content_lengths() {
    protocol_error(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!");
}

#[test]
fn http_protocol_error_chunked_with_content_length() {
    protocol_error(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
}

#[test]
fn a_body_that_breaks_before_its_first_byte_is_a_real_502() {
    // The first chunk-size line is invalid: nothing of the body can be relayed, and the head
    // has not gone out, so the client is told 502, not given an empty or cut reply.
    let raw =
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n".to_vec();
    let (gh, _upstream) = in_front_of(Behavior::RawThenHang(raw), "minimal", &[]);
    let resp = Req::get("/").send(gh.addr());
    let seen = gh.expect_failure(&resp, 502, "http_response_transfer_coding");
    assert_eq!(seen.access["status"], 502, "{}", seen.access);
    assert_eq!(seen.access["upstream_status"], 200, "{}", seen.access);
    assert_eq!(seen.access["upstream_aborted"], false, "{}", seen.access);
}

#[test]
fn a_body_cut_after_the_head_went_out_is_marked_aborted() {
    let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\nmore\r\n0\r\n\r\n".to_vec();
    let (gh, _upstream) = in_front_of(Behavior::RawThenHang(raw), "minimal", &[]);
    let resp = Req::get("/").send(gh.addr());
    let seen = gh.expect_aborted(&resp, "http_response_transfer_coding");
    assert_eq!(seen.access["upstream_aborted"], true, "{}", seen.access);
}
