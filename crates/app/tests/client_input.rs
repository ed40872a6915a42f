//! Malformed or oversized client requests: answered with the fitting 4xx, and never passed on
//! to the upstream as a complete request. hyper answers what it cannot parse at all with a bare
//! 4xx (no Proxy-Status); gatehouse answers the rest with its own error response.

use std::path::Path;
use std::time::{Duration, Instant};

use gatehouse_testkit::{Config, Gatehouse, RawConn, RawResponse, Upstream, send_raw};

/// A gatehouse with small request limits in front of a recording upstream.
fn limited() -> (Gatehouse, Upstream) {
    let upstream = Upstream::hello();
    let config = Config::proxy_to([upstream.addr()])
        .server("max_request_header_size", "8KiB")
        .server("max_uri_length", "1KiB")
        .server("client_header_timeout", "500ms");
    let gh = Gatehouse::start(Path::new(env!("CARGO_BIN_EXE_gatehouse")), &config.toml());
    (gh, upstream)
}

/// Who is expected to refuse a request, with which status.
#[derive(Debug, Clone, Copy)]
enum Refusal {
    /// gatehouse's own error response: `http_request_error` with `status-code`, `Connection:
    /// close`, and the warning and access record.
    Gatehouse(u16),
}

/// Sends `request` on a new connection and asserts that it is refused as `refusal` and that no
/// complete request reached the upstream (after a moment for anything in flight to land).
fn refused(request: &[u8], refusal: Refusal) -> (Gatehouse, Upstream, RawResponse) {
    let (gh, upstream) = limited();
    let resp = send_raw(gh.addr(), request).unwrap_or_else(|e| panic!("{e}"));
    match refusal {
        Refusal::Gatehouse(status) => {
            let member = gh
                .expect_failure(&resp, status, "http_request_error")
                .member
                .unwrap();
            assert_eq!(member.keys(), ["error", "status-code"]);
            assert_eq!(member.integer("status-code"), Some(i64::from(status)));
            assert_eq!(resp.header("connection"), Some("close"));
        }
    }
    std::thread::sleep(Duration::from_millis(200));
    let complete: Vec<_> = upstream
        .requests()
        .into_iter()
        .filter(|r| r.complete)
        .collect();
    assert!(
        complete.is_empty(),
        "the upstream received complete request(s): {complete:#?}"
    );
    (gh, upstream, resp)
}

#[test]
fn malformed_request_line_is_400() {
    let (_gh, upstream, _) = refused(
        b"GET / HTTX/1.1\r\nHost: app.test\r\n\r\n",
        Refusal::Gatehouse(400),
    );
    assert_eq!(upstream.connections(), 0);
}

#[test]
fn request_header_section_over_the_limit_is_431() {
    let request = format!(
        "GET / HTTP/1.1\r\nHost: app.test\r\nX-Fill: {}\r\n\r\n",
        "a".repeat(10 * 1024)
    );
    let (_gh, upstream, resp) = refused(request.as_bytes(), Refusal::Gatehouse(431));
    resp.assert_body(
        "text/html; charset=utf-8",
        &["431 Request Header Fields Too Large"],
    );
    assert_eq!(upstream.connections(), 0);
}

#[test]
fn request_header_section_beyond_the_read_limit_is_431() {
    let request = format!(
        "GET / HTTP/1.1\r\nHost: app.test\r\nX-Fill: {}\r\n\r\n",
        "a".repeat(40 * 1024)
    );
    let (_gh, upstream, _) = refused(request.as_bytes(), Refusal::Gatehouse(431));
    assert_eq!(upstream.connections(), 0);
}

#[test]
fn request_target_over_max_uri_length_is_414() {
    let request = format!(
        "GET /{} HTTP/1.1\r\nHost: app.test\r\n\r\n",
        "a".repeat(2000)
    );
    let (gh, upstream, resp) = refused(request.as_bytes(), Refusal::Gatehouse(414));
    assert_eq!(upstream.connections(), 0);
    // The log keeps the target's start and marks the cut: a client sending huge targets
    // cannot fill the log with them. The warning's reason gives the whole length.
    let access = gh.access_log(resp.request_id());
    let path = access["path"].as_str().unwrap();
    assert_eq!(path, format!("/{}…", "a".repeat(255)), "{access}");
    let warning = gh.failure_log(resp.request_id());
    assert!(warning.to_string().contains("2001 bytes"), "{warning}");
}

#[test]
fn http11_request_without_host_is_400() {
    let (_gh, upstream, resp) = refused(
        b"GET / HTTP/1.1\r\nAccept: text/plain\r\n\r\n",
        Refusal::Gatehouse(400),
    );
    resp.assert_body(
        "text/plain; charset=utf-8",
        &["400 Bad Request\n", "error: http_request_error\n"],
    );
    assert_eq!(upstream.connections(), 0);
}

#[test]
fn several_host_headers_are_400() {
    let (_gh, upstream, _) = refused(
        b"GET / HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n",
        Refusal::Gatehouse(400),
    );
    assert_eq!(upstream.connections(), 0);
}

#[test]
fn obs_fold_header_line_is_400() {
    let (_gh, upstream, _) = refused(
        b"GET / HTTP/1.1\r\nHost: app.test\r\nX-Folded: a\r\n  b\r\n\r\n",
        Refusal::Gatehouse(400),
    );
    assert_eq!(upstream.connections(), 0);
}

#[test]
fn content_length_with_transfer_encoding_is_400() {
    refused(
        b"POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        Refusal::Gatehouse(400),
    );
}

#[test]
fn differing_content_lengths_are_400() {
    refused(
        b"POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        Refusal::Gatehouse(400),
    );
}

#[test]
fn invalid_chunk_size_in_the_request_body_is_400() {
    refused(
        b"POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\nmore\r\n0\r\n\r\n",
        Refusal::Gatehouse(400),
    );
}

#[test]
fn unknown_transfer_coding_in_the_request_is_refused() {
    // hyper decodes the final `chunked` and hands over a body that is still gzip-coded; with the
    // hop-by-hop Transfer-Encoding removed, the upstream cannot know. RFC 9112 §6.1 says 501;
    // failures.md lists 4xx for http_request_error. Either refusal is fine; forwarding is not.
    let (gh, upstream) = limited();
    let resp = send_raw(
        gh.addr(),
        b"POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        matches!(resp.status, 400 | 501),
        "got {resp:#?}\nupstream saw: {:#?}",
        upstream.requests()
    );
}

#[test]
fn stalled_request_head_is_408_then_closed() {
    let (gh, upstream) = limited();
    let mut conn = RawConn::connect(gh.addr());
    let started = Instant::now();
    conn.send(b"GET / HTTP/1.1\r\nHost: app.te").unwrap();
    let resp = conn.read_response(false);
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(500) && elapsed < Duration::from_secs(3),
        "took {elapsed:?}"
    );
    // Written by the connection, not the pipeline: no access record, so no expect_failure.
    assert_eq!(
        (resp.status, resp.complete, resp.header("connection")),
        (408, true, Some("close")),
        "{resp:#?}"
    );
    assert_eq!(
        resp.header("proxy-status"),
        Some("gatehouse;error=http_request_error;status-code=408")
    );
    assert_eq!(
        gh.failure_log(resp.request_id())["kind"],
        "http_request_error"
    );
    assert!(
        conn.closes_within(Duration::from_secs(2)),
        "the connection stayed open after the 408"
    );
    assert_eq!(upstream.connections(), 0);
}

/// The header timeout counts from the end of the last response, for every request on a
/// kept-alive connection: not from the connection's start, and not only for its first request.
#[test]
fn each_request_on_a_kept_alive_connection_gets_the_whole_header_timeout() {
    let (gh, _upstream) = limited();
    let mut conn = RawConn::connect(gh.addr());
    for _ in 0..3 {
        // Most of a header timeout between requests: each one's wait starts anew.
        std::thread::sleep(Duration::from_millis(350));
        conn.send(b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n")
            .unwrap();
        let resp = conn.read_response(false);
        assert_eq!((resp.status, resp.complete), (200, true), "{resp:#?}");
    }
    // The next head stalls: a 408 after the timeout, counted from the last response.
    let answered = Instant::now();
    conn.send(b"GET / HTTP/1.1\r\nHost: app.te").unwrap();
    let resp = conn.read_response(false);
    let elapsed = answered.elapsed();
    assert!(
        elapsed >= Duration::from_millis(450) && elapsed < Duration::from_secs(3),
        "took {elapsed:?}"
    );
    assert_eq!((resp.status, resp.complete), (408, true), "{resp:#?}");
    // And one that says nothing after its answer is closed after the timeout, quietly.
    let mut conn = RawConn::connect(gh.addr());
    conn.send(b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n")
        .unwrap();
    assert_eq!(conn.read_response(false).status, 200);
    let answered = Instant::now();
    assert!(
        conn.closes_within(Duration::from_secs(3)),
        "the idle connection stayed open"
    );
    assert!(
        answered.elapsed() >= Duration::from_millis(450),
        "{:?}",
        answered.elapsed()
    );
}

#[test]
fn idle_keep_alive_connection_is_closed_without_a_response() {
    let (gh, _upstream) = limited();
    let mut conn = RawConn::connect(gh.addr());
    assert!(
        conn.closes_within(Duration::from_secs(3)),
        "an idle connection outlived client_header_timeout"
    );
    let leftover = conn.try_read_response(false, Duration::from_millis(100));
    assert!(
        leftover.is_err(),
        "an idle connection got a response: {leftover:#?}"
    );
}
