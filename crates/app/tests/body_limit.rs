//! `max_request_body_size` (nginx's `client_max_body_size`): a body announced larger than the
//! limit gets 413 before a byte of it is read or forwarded (and without `100 Continue`); a
//! chunked body that grows past it gets 413 and never reaches the upstream whole; a route's own
//! limit overrides the server's.

use std::path::Path;
use std::time::Duration;

use gatehouse_testkit::{Config, Gatehouse, RawConn, Req, Upstream};

fn start(config: &Config) -> Gatehouse {
    Gatehouse::start(Path::new(env!("CARGO_BIN_EXE_gatehouse")), &config.toml())
}

fn limited(upstream: &Upstream) -> Config {
    Config::new()
        .upstream("app", [upstream.addr()])
        .route(None, "/", "app")
        .route(None, "/upload", "app")
        .route_setting("max_request_body_size", "1MiB")
        .server("max_request_body_size", "1KiB")
}

#[test]
fn a_body_announced_too_large_gets_413_before_anything_is_forwarded() {
    let upstream = Upstream::hello();
    let gh = start(&limited(&upstream));
    let resp = Req::new("POST", "/form")
        .header("X-Request-Id", "too-large")
        .body(vec![b'x'; 2048])
        .send(gh.addr());
    assert_eq!(resp.status, 413, "{resp:#?}");
    assert!(
        resp.text().contains("max_request_body_size")
            || resp.proxy_status().last().error() == Some("http_request_error"),
        "{resp:#?}"
    );
    assert!(upstream.requests().is_empty(), "nothing was forwarded");
    let record = gh.access_log("too-large");
    assert_eq!(record["status"], 413, "{record}");

    // Within the limit, and on the route with its own larger limit: forwarded.
    let small = Req::new("POST", "/form")
        .body(vec![b'x'; 1000])
        .send(gh.addr());
    assert_eq!(small.status, 200);
    let upload = Req::new("POST", "/upload/file")
        .body(vec![b'x'; 512 * 1024])
        .send(gh.addr());
    assert_eq!(upload.status, 200);
    let got = upstream.requests();
    assert_eq!(got.len(), 2, "{got:#?}");
    assert_eq!(got[1].body.len(), 512 * 1024);
}

#[test]
fn expect_100_continue_with_a_body_too_large_gets_413_and_no_100() {
    let upstream = Upstream::hello();
    let gh = start(&limited(&upstream));
    let mut conn = RawConn::connect(gh.addr());
    conn.send(
        b"PUT /form HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n",
    )
    .expect("send");
    let resp = conn.read_response(false);
    assert_eq!(
        resp.status, 413,
        "the final answer, not 100 Continue: {resp:#?}"
    );
    assert!(upstream.requests().is_empty());
}

#[test]
fn a_chunked_body_growing_past_the_limit_gets_413() {
    let upstream = Upstream::hello();
    let gh = start(&limited(&upstream));
    let mut conn = RawConn::connect(gh.addr());
    let mut bytes =
        b"POST /form HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nX-Request-Id: grown\r\n\r\n"
            .to_vec();
    for _ in 0..4 {
        bytes.extend_from_slice(b"200\r\n");
        bytes.extend_from_slice(&[b'y'; 0x200]);
        bytes.extend_from_slice(b"\r\n");
    }
    bytes.extend_from_slice(b"0\r\n\r\n");
    let _ = conn.send(&bytes);
    let resp = conn.read_response(false);
    assert_eq!(resp.status, 413, "{resp:#?}");
    let record = gh.wait_for_log(
        |l| l["fields"]["request_id"] == "grown" || l["request_id"] == "grown",
        Duration::from_secs(5),
    );
    assert!(
        record.to_string().contains("max_request_body_size"),
        "{record}"
    );
    let complete = upstream
        .requests()
        .iter()
        .any(|r| r.body.len() == 4 * 0x200);
    assert!(!complete, "the whole body never reached the upstream");
}
