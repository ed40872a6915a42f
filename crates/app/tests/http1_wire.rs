//! HTTP/1.1 towards clients, on the wire: what a raw TCP client on 127.0.0.1 sees of pipelining,
//! keep-alive, response framing, request bodies, truncated responses, lenient and strict parsing,
//! and the file descriptors a connection costs. Black-box: the real binary in front of an
//! in-process upstream, so that any HTTP/1.1 engine behind the listener can be held to it.
//!
//! Malformed request lines, oversized heads and URIs, Host rules, obs-fold, CL+TE, differing
//! Content-Lengths, invalid chunk sizes, unknown transfer codings, the 408 for a stalled head and
//! idle keep-alive closes are in `client_input.rs`.

use std::io::{Read as _, Write as _};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use gatehouse_testkit::{
    Behavior, Config, Framing, Gatehouse, PATIENCE, RawConn, RawResponse, Reply, Req, Upstream,
};

fn start(config: &Config) -> Gatehouse {
    Gatehouse::start(Path::new(env!("CARGO_BIN_EXE_gatehouse")), &config.toml())
}

/// gatehouse with one route, `/` to this upstream.
fn in_front_of(upstream: SocketAddr) -> Gatehouse {
    start(&Config::proxy_to([upstream]))
}

/// How long to wait for something that should not happen (a response, a close).
const QUIET: Duration = Duration::from_millis(300);

/// Asserts that nothing more arrives on `conn` and that it stays open.
fn assert_open_and_quiet(conn: &mut RawConn) {
    assert!(
        !conn.closes_within(QUIET),
        "gatehouse closed a connection that should stay open"
    );
    assert_no_more_bytes(conn);
}

/// Asserts that gatehouse closes `conn` with no further byte.
fn assert_closed_and_quiet(conn: &mut RawConn) {
    assert!(
        conn.closes_within(Duration::from_secs(2)),
        "gatehouse kept the connection open"
    );
    assert_no_more_bytes(conn);
}

/// Asserts that no byte arrived on `conn` after the responses read so far.
fn assert_no_more_bytes(conn: &mut RawConn) {
    let extra = conn.try_read_response(false, Duration::from_millis(50));
    match extra {
        Err(none) => assert!(
            none.raw.is_empty(),
            "bytes after the last response: {:?}",
            String::from_utf8_lossy(&none.raw)
        ),
        Ok(resp) => panic!("a response arrived after the last one: {resp:#?}"),
    }
}

fn assert_ok(resp: &RawResponse, body: &str) {
    assert_eq!(
        (resp.status, resp.complete, resp.text().as_str()),
        (200, true, body),
        "{resp:#?}"
    );
}

/// The paths the upstream received, in order.
fn paths(upstream: &Upstream) -> Vec<String> {
    upstream
        .requests()
        .iter()
        .map(|r| r.path().to_owned())
        .collect()
}

/// Requests recorded complete by the upstream, after a moment for anything in flight to land.
fn complete_requests(upstream: &Upstream) -> Vec<gatehouse_testkit::RecordedRequest> {
    std::thread::sleep(Duration::from_millis(200));
    upstream
        .requests()
        .into_iter()
        .filter(|r| r.complete)
        .collect()
}

// --- pipelining ---

#[test]
fn two_pipelined_requests_in_one_write_are_answered_in_order() {
    let upstream = Upstream::hello();
    // The first answer is the slow one: responses must still come in request order.
    upstream.set_route(
        "/first",
        Behavior::Delay(Duration::from_millis(200), Reply::ok("first")),
    );
    upstream.set_route("/second", Behavior::Serve(Reply::ok("second")));
    let gh = in_front_of(upstream.addr());
    let mut conn = RawConn::connect(gh.addr());
    conn.send(b"GET /first HTTP/1.1\r\nHost: app.test\r\n\r\nGET /second HTTP/1.1\r\nHost: app.test\r\n\r\n")
        .unwrap();
    assert_ok(&conn.read_response(false), "first");
    assert_ok(&conn.read_response(false), "second");
    assert_eq!(paths(&upstream), ["/first", "/second"]);
    // HTTP/1.1 stays open after them, for the next request.
    assert_open_and_quiet(&mut conn);
    assert_ok(&Req::get("/").send_on(&mut conn), "hello");
}

#[test]
fn three_pipelined_requests_in_one_write_are_answered_in_order() {
    let upstream = Upstream::hello();
    upstream.set_route(
        "/1",
        Behavior::Delay(Duration::from_millis(200), Reply::ok("one")),
    );
    upstream.set_route(
        "/2",
        Behavior::Delay(Duration::from_millis(100), Reply::ok("two")),
    );
    upstream.set_route("/3", Behavior::Serve(Reply::ok("three")));
    let gh = in_front_of(upstream.addr());
    let mut conn = RawConn::connect(gh.addr());
    let mut bytes = Vec::new();
    for path in ["/1", "/2", "/3"] {
        bytes.extend_from_slice(&Req::get(path).to_bytes());
    }
    conn.send(&bytes).unwrap();
    for body in ["one", "two", "three"] {
        assert_ok(&conn.read_response(false), body);
    }
    assert_eq!(paths(&upstream), ["/1", "/2", "/3"]);
    assert_open_and_quiet(&mut conn);
}

#[test]
fn request_pipelined_behind_a_post_body() {
    let upstream = Upstream::hello();
    upstream.set_route("/post", Behavior::Serve(Reply::ok("posted")));
    upstream.set_route("/chunked", Behavior::Serve(Reply::ok("chunked posted")));
    let gh = in_front_of(upstream.addr());
    let mut conn = RawConn::connect(gh.addr());
    // The body looks like a request: it must be taken as body, by its length.
    let body = b"GET /smuggled HTTP/1.1\r\nHost: app.test\r\n\r\n";
    let mut bytes = Req::new("POST", "/post").body(&body[..]).to_bytes();
    bytes.extend_from_slice(b"GET /after-length HTTP/1.1\r\nHost: app.test\r\n\r\n");
    bytes.extend_from_slice(
        b"POST /chunked HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    );
    bytes.extend_from_slice(b"GET /after-chunked HTTP/1.1\r\nHost: app.test\r\n\r\n");
    conn.send(&bytes).unwrap();
    assert_ok(&conn.read_response(false), "posted");
    assert_ok(&conn.read_response(false), "hello");
    assert_ok(&conn.read_response(false), "chunked posted");
    assert_ok(&conn.read_response(false), "hello");
    assert_open_and_quiet(&mut conn);

    let seen = upstream.wait_for_requests(4, PATIENCE);
    assert_eq!(
        paths(&upstream),
        ["/post", "/after-length", "/chunked", "/after-chunked"]
    );
    assert!(seen.iter().all(|r| r.complete), "{seen:#?}");
    assert_eq!(seen[0].body, body);
    assert_eq!(seen[2].body, b"hello");
    assert!(
        seen[1].body.is_empty() && seen[3].body.is_empty(),
        "{seen:#?}"
    );
}

// --- keep-alive rules ---

#[test]
fn connection_close_gets_the_response_then_eof() {
    let upstream = Upstream::hello();
    let gh = in_front_of(upstream.addr());
    let mut conn = RawConn::connect(gh.addr());
    // A request pipelined behind the `close` one is not processed (RFC 9112 §9.6).
    conn.send(
        b"GET /last HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\nGET /never HTTP/1.1\r\nHost: app.test\r\n\r\n",
    )
    .unwrap();
    let resp = conn.read_response(false);
    assert_ok(&resp, "hello");
    assert_eq!(resp.header("connection"), Some("close"), "{resp:#?}");
    assert_closed_and_quiet(&mut conn);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(paths(&upstream), ["/last"]);
}

#[test]
fn http10_without_keep_alive_is_closed_after_the_response() {
    let upstream = Upstream::hello();
    let gh = in_front_of(upstream.addr());
    let mut conn = RawConn::connect(gh.addr());
    conn.send(b"GET /old HTTP/1.0\r\nHost: app.test\r\n\r\n")
        .unwrap();
    let resp = conn.read_response(false);
    assert_ok(&resp, "hello");
    assert_eq!(resp.framing, Framing::Length(5), "{resp:#?}");
    assert!(
        !resp
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("keep-alive")),
        "{resp:#?}"
    );
    assert_closed_and_quiet(&mut conn);
    // Without Host: an HTTP/1.0 request needs none.
    let mut conn = RawConn::connect(gh.addr());
    conn.send(b"GET /no-host HTTP/1.0\r\n\r\n").unwrap();
    assert_ok(&conn.read_response(false), "hello");
    assert_closed_and_quiet(&mut conn);
    assert_eq!(paths(&upstream), ["/old", "/no-host"]);
}

#[test]
fn http10_keep_alive_stays_open_for_a_second_request() {
    let upstream = Upstream::hello();
    let gh = in_front_of(upstream.addr());
    let mut conn = RawConn::connect(gh.addr());
    for path in ["/a", "/b"] {
        conn.send(
            format!("GET {path} HTTP/1.0\r\nHost: app.test\r\nConnection: keep-alive\r\n\r\n")
                .as_bytes(),
        )
        .unwrap();
        let resp = conn.read_response(false);
        assert_ok(&resp, "hello");
        // An HTTP/1.0 client keeps the connection only when told so.
        assert_eq!(
            resp.header("connection").map(str::to_ascii_lowercase),
            Some("keep-alive".to_owned()),
            "{resp:#?}"
        );
        assert_eq!(resp.framing, Framing::Length(5), "{resp:#?}");
        assert_open_and_quiet(&mut conn);
    }
    // A last one without keep-alive ends it.
    conn.send(b"GET /c HTTP/1.0\r\nHost: app.test\r\n\r\n")
        .unwrap();
    assert_ok(&conn.read_response(false), "hello");
    assert_closed_and_quiet(&mut conn);
    assert_eq!(paths(&upstream), ["/a", "/b", "/c"]);
}

/// A body of `len` bytes that is not all one byte.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| b'a' + (i % 26) as u8).collect()
}

#[test]
fn body_without_length_is_close_delimited_to_http10_and_chunked_to_http11() {
    let body = pattern(100_000);
    let mut raw = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n".to_vec();
    raw.extend_from_slice(&body);
    // The upstream ends the body by closing.
    let upstream = Upstream::start(Behavior::RawThenClose(raw));
    let gh = in_front_of(upstream.addr());

    // HTTP/1.0 has no chunked coding: the body runs until gatehouse closes.
    for keep_alive in ["", "Connection: keep-alive\r\n"] {
        let mut conn = RawConn::connect(gh.addr());
        conn.send(format!("GET /stream HTTP/1.0\r\nHost: app.test\r\n{keep_alive}\r\n").as_bytes())
            .unwrap();
        let resp = conn.read_response(false);
        // The test client reports a body it read up to the close as ended by "closed"; for a
        // close-delimited body that is its end, and the bytes are compared below.
        assert_eq!(
            (
                resp.status,
                resp.framing,
                resp.incomplete_because.as_deref()
            ),
            (200, Framing::UntilClose, Some("closed")),
            "{keep_alive:?}: {:?}",
            resp.headers
        );
        // A connection that is about to close says `close`, never `keep-alive`.
        assert_eq!(resp.header("connection"), Some("close"), "{keep_alive:?}");
        assert!(!resp.headers.contains("transfer-encoding"), "{resp:#?}");
        assert!(resp.body == body, "body altered: {} bytes", resp.body.len());
    }

    // HTTP/1.1 gets it chunked, and keeps the connection.
    let mut conn = RawConn::connect(gh.addr());
    let resp = Req::get("/stream").send_on(&mut conn);
    assert_eq!(
        (resp.status, resp.framing, resp.complete),
        (200, Framing::Chunked, true),
        "{:?}",
        resp.headers
    );
    assert!(resp.body == body, "body altered: {} bytes", resp.body.len());
    assert!(Req::get("/again").send_on(&mut conn).complete);
}

// --- response framing ---

#[test]
fn upstream_content_length_is_passed_through() {
    let body = pattern(3000);
    let upstream = Upstream::serve(Reply::ok(body.clone()));
    let gh = in_front_of(upstream.addr());
    let mut conn = RawConn::connect(gh.addr());
    for _ in 0..2 {
        let resp = Req::get("/").send_on(&mut conn);
        assert_eq!(
            (resp.status, resp.framing, resp.complete),
            (200, Framing::Length(3000), true),
            "{:?}",
            resp.headers
        );
        assert!(!resp.headers.contains("transfer-encoding"), "{resp:#?}");
        assert!(resp.body == body);
    }
}

#[test]
fn upstream_chunked_response_reaches_the_client_intact() {
    // Several chunks, an extension and a trailer section; the upstream then closes.
    let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5;ext=1\r\nhello\r\n2\r\n, \r\n5\r\nworld\r\n0\r\nX-Trailer: t\r\n\r\n";
    let upstream = Upstream::start(Behavior::RawThenClose(raw.to_vec()));
    let gh = in_front_of(upstream.addr());
    let mut conn = RawConn::connect(gh.addr());
    for _ in 0..2 {
        let resp = Req::get("/").send_on(&mut conn);
        assert!(
            matches!(resp.framing, Framing::Chunked | Framing::Length(12)),
            "{resp:#?}"
        );
        assert_ok(&resp, "hello, world");
    }
    assert_open_and_quiet(&mut conn);
}

#[test]
fn head_gets_headers_and_no_body_and_the_connection_goes_on() {
    let upstream = Upstream::serve(Reply::ok(vec![b'z'; 1234]));
    upstream.set_route(
        "/chunked",
        Behavior::Serve(Reply::ok("streamed").header("Transfer-Encoding", "chunked")),
    );
    let gh = in_front_of(upstream.addr());
    let mut conn = RawConn::connect(gh.addr());
    let mut bytes = Req::new("HEAD", "/doc").to_bytes();
    bytes.extend_from_slice(&Req::get("/doc").to_bytes());
    bytes.extend_from_slice(&Req::new("HEAD", "/chunked").to_bytes());
    bytes.extend_from_slice(&Req::get("/chunked").to_bytes());
    conn.send(&bytes).unwrap();

    // Each response is read as its request says: a stray HEAD body would break the next one.
    let head = conn.read_response(true);
    assert_eq!(
        (head.status, head.complete, head.header("content-length")),
        (200, true, Some("1234")),
        "{head:#?}"
    );
    let get = conn.read_response(false);
    assert_eq!(
        (get.status, get.complete, get.body.len()),
        (200, true, 1234)
    );
    assert!(get.body.iter().all(|&b| b == b'z'));
    let head = conn.read_response(true);
    assert_eq!((head.status, head.complete), (200, true), "{head:#?}");
    assert_ok(&conn.read_response(false), "streamed");
    assert_open_and_quiet(&mut conn);
    let methods: Vec<String> = upstream
        .requests()
        .iter()
        .map(|r| r.method.clone())
        .collect();
    assert_eq!(methods, ["HEAD", "GET", "HEAD", "GET"]);
}

#[test]
fn no_body_for_204_and_304() {
    let upstream = Upstream::hello();
    upstream.set_route(
        "/204",
        Behavior::RawThenClose(
            b"HTTP/1.1 204 No Content\r\nX-Origin: 204\r\nConnection: close\r\n\r\n".to_vec(),
        ),
    );
    upstream.set_route(
        "/304",
        Behavior::RawThenClose(
            b"HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nX-Origin: 304\r\nConnection: close\r\n\r\n".to_vec(),
        ),
    );
    let gh = in_front_of(upstream.addr());
    let mut conn = RawConn::connect(gh.addr());
    let mut bytes = Req::get("/204").to_bytes();
    bytes.extend_from_slice(
        &Req::get("/304")
            .header("If-None-Match", "\"v1\"")
            .to_bytes(),
    );
    bytes.extend_from_slice(&Req::get("/next").to_bytes());
    conn.send(&bytes).unwrap();

    let no_content = conn.read_response(false);
    assert_eq!(
        (no_content.status, no_content.header("x-origin")),
        (204, Some("204"))
    );
    // RFC 9110 §8.6, RFC 9112 §6.1: neither field in a 204.
    for field in ["content-length", "transfer-encoding"] {
        assert!(!no_content.headers.contains(field), "{no_content:#?}");
    }
    let not_modified = conn.read_response(false);
    assert_eq!(
        (
            not_modified.status,
            not_modified.header("etag"),
            not_modified.header("x-origin")
        ),
        (304, Some("\"v1\""), Some("304"))
    );
    // Had either carried a body, this would not parse.
    assert_ok(&conn.read_response(false), "hello");
    assert_open_and_quiet(&mut conn);
}

// --- request bodies ---

#[test]
fn content_length_request_body_arrives_complete() {
    let upstream = Upstream::hello();
    let gh = in_front_of(upstream.addr());
    let body: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
    let resp = Req::new("POST", "/upload")
        .body(body.clone())
        .send(gh.addr());
    assert_ok(&resp, "hello");
    let seen = &upstream.wait_for_requests(1, PATIENCE)[0];
    assert!(seen.complete, "{seen:#?}");
    assert_eq!(seen.framing, Framing::Length(5000));
    assert!(seen.body == body, "body altered: {} bytes", seen.body.len());
}

#[test]
fn chunked_request_body_with_extensions_and_trailers_arrives_complete() {
    let upstream = Upstream::hello();
    let gh = in_front_of(upstream.addr());
    let mut conn = RawConn::connect(gh.addr());
    conn.send(
        b"POST /upload HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n\
          5;name=value\r\nhello\r\n\
          6;a;b=\"quoted ;\"\r\n world\r\n\
          0\r\nX-Checksum: abc\r\nX-Other: 1\r\n\r\n\
          GET /after HTTP/1.1\r\nHost: app.test\r\n\r\n",
    )
    .unwrap();
    assert_ok(&conn.read_response(false), "hello");
    assert_ok(&conn.read_response(false), "hello");
    let seen = upstream.wait_for_requests(2, PATIENCE);
    assert_eq!(paths(&upstream), ["/upload", "/after"]);
    assert!(seen[0].complete, "{:#?}", seen[0]);
    assert_eq!(String::from_utf8_lossy(&seen[0].body), "hello world");
    assert!(
        seen[1].complete && seen[1].body.is_empty(),
        "{:#?}",
        seen[1]
    );
}

#[test]
fn one_mib_request_body_streams_through() {
    const LEN: u64 = 1024 * 1024;
    let upstream = Upstream::hello();
    let gh = in_front_of(upstream.addr());
    let mut conn = RawConn::connect(gh.addr());
    conn.send(
        format!("POST /big HTTP/1.1\r\nHost: app.test\r\nContent-Length: {LEN}\r\n\r\n").as_bytes(),
    )
    .unwrap();
    let sent = conn.send_in_background(LEN);
    let resp = conn.read_response(false);
    assert_eq!(sent.join().unwrap(), LEN);
    assert_ok(&resp, "hello");
    let seen = &upstream.wait_for_requests(1, PATIENCE)[0];
    assert!(seen.complete, "incomplete: {} bytes", seen.body.len());
    assert_eq!(seen.body.len() as u64, LEN);
    assert!(seen.body.iter().all(|&b| b == b'x'));
    // The connection is still good.
    assert_ok(&Req::get("/").send_on(&mut conn), "hello");
}

#[test]
fn expect_100_continue_comes_before_the_body() {
    let upstream = Upstream::hello();
    let gh = in_front_of(upstream.addr());
    let mut conn = RawConn::connect(gh.addr());
    conn.send(
        b"POST /upload HTTP/1.1\r\nHost: app.test\r\nContent-Length: 11\r\nExpect: 100-continue\r\n\r\n",
    )
    .unwrap();
    // The client holds its body until the interim response.
    let interim = conn
        .read_interim(Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(interim, 100);
    conn.send(b"hello world").unwrap();
    let resp = conn.read_response(false);
    assert_ok(&resp, "hello");
    assert!(
        resp.interim.is_empty(),
        "a second interim response: {resp:#?}"
    );
    let seen = &upstream.wait_for_requests(1, PATIENCE)[0];
    assert!(seen.complete, "{seen:#?}");
    assert_eq!(seen.body, b"hello world");
    assert_eq!(seen.header("expect"), None);
    assert_open_and_quiet(&mut conn);
}

/// An upstream that answers `POST /early` as soon as the request head is in, without reading
/// the body, and then closes (lingering: it drains what arrives for a moment first, so its close
/// is a FIN, not a reset). Other requests are read whole (Content-Length bodies) and answered
/// `200` with their request line as the body, on a kept-alive connection. Records every request
/// line it parsed.
struct EarlyUpstream {
    addr: SocketAddr,
    lines: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl EarlyUpstream {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (record, stopped) = (Arc::clone(&lines), Arc::clone(&stop));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopped.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let record = Arc::clone(&record);
                std::thread::spawn(move || early_connection(stream, &record));
            }
        });
        Self { addr, lines, stop }
    }

    fn lines(&self) -> Vec<String> {
        self.lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for EarlyUpstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

fn early_connection(mut stream: TcpStream, record: &Mutex<Vec<String>>) {
    let _ = stream.set_read_timeout(Some(PATIENCE));
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let head_end = loop {
            if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break pos + 4;
            }
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        buf.drain(..head_end);
        let line = head.lines().next().unwrap_or_default().to_owned();
        record
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(line.clone());
        if line.starts_with("POST /early ") {
            let _ = stream.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nearly",
            );
            let _ = stream.shutdown(Shutdown::Write);
            let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
            while matches!(stream.read(&mut chunk), Ok(1..)) {}
            return;
        }
        let len: usize = head
            .lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
            .and_then(|(_, value)| value.trim().parse().ok())
            .unwrap_or(0);
        while buf.len() < len {
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        buf.drain(..len);
        let reply = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{line}",
            line.len()
        );
        if stream.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

/// A request that would be served if bytes of an unread body were taken for a request head.
const SMUGGLED: &[u8] = b"GET /smuggled HTTP/1.1\r\nHost: app.test\r\n\r\n";

#[test]
fn small_body_the_upstream_did_not_read_does_not_corrupt_the_next_request() {
    let upstream = EarlyUpstream::start();
    let gh = in_front_of(upstream.addr);
    let mut conn = RawConn::connect(gh.addr());
    let mut bytes = Req::new("POST", "/early").body(SMUGGLED).to_bytes();
    bytes.extend_from_slice(b"GET /after HTTP/1.1\r\nHost: app.test\r\n\r\n");
    conn.send(&bytes).unwrap();
    assert_ok(&conn.read_response(false), "early");
    // Today the body was already in gatehouse's hands: the connection goes on with the request
    // behind it, which is answered as itself.
    assert_ok(&conn.read_response(false), "GET /after HTTP/1.1");
    assert_open_and_quiet(&mut conn);
    assert_eq!(
        upstream.lines(),
        ["POST /early HTTP/1.1", "GET /after HTTP/1.1"]
    );
}

#[test]
fn large_body_the_upstream_did_not_read_ends_the_connection() {
    const LEN: usize = 1024 * 1024;
    let upstream = EarlyUpstream::start();
    let gh = in_front_of(upstream.addr);
    let mut conn = RawConn::connect(gh.addr());
    conn.send(
        format!("POST /early HTTP/1.1\r\nHost: app.test\r\nContent-Length: {LEN}\r\n\r\n")
            .as_bytes(),
    )
    .unwrap();
    let first = vec![b'x'; 64 * 1024];
    conn.send(&first).unwrap();
    // The answer comes while most of the body is still with the client.
    let resp = conn.read_response(false);
    assert_ok(&resp, "early");
    // gatehouse does not read the rest: it closes the connection, says so in the response,
    // and nothing the client sends after (the rest of the body, made of request heads, then a
    // request) is served.
    assert_eq!(resp.header("connection"), Some("close"), "{resp:#?}");
    let mut rest = SMUGGLED.repeat((LEN - first.len()) / SMUGGLED.len());
    rest.resize(LEN - first.len(), b'x');
    rest.extend_from_slice(b"GET /after HTTP/1.1\r\nHost: app.test\r\n\r\n");
    let _ = conn.send(&rest); // may fail: gatehouse closes
    assert_closed_and_quiet(&mut conn);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(upstream.lines(), ["POST /early HTTP/1.1"]);
}

// --- responses cut short by the upstream ---

#[test]
fn content_length_response_cut_short_reaches_the_client_short() {
    let upstream = Upstream::start(Behavior::RawThenClose(
        b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789".to_vec(),
    ));
    let gh = in_front_of(upstream.addr());
    let mut conn = RawConn::connect(gh.addr());
    let resp = Req::get("/").send_on(&mut conn);
    assert_eq!(
        (
            resp.status,
            resp.header("content-length"),
            resp.complete,
            resp.incomplete_because.as_deref()
        ),
        (200, Some("1000"), false, Some("closed")),
        "{resp:#?}"
    );
    assert_eq!(resp.text(), "0123456789");
}

#[test]
fn chunked_response_cut_mid_body_gets_no_last_chunk() {
    let upstream = Upstream::start(Behavior::RawThenClose(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\na\r\n0123456789\r\n".to_vec(),
    ));
    let gh = in_front_of(upstream.addr());
    let mut conn = RawConn::connect(gh.addr());
    let resp = Req::get("/").send_on(&mut conn);
    // Incomplete: no `0\r\n\r\n` arrived before the close.
    assert_eq!(
        (
            resp.status,
            resp.framing,
            resp.complete,
            resp.incomplete_because.as_deref()
        ),
        (200, Framing::Chunked, false, Some("closed")),
        "{resp:#?}"
    );
    assert_eq!(resp.text(), "0123456789");
}

// --- lenient and strict parsing ---

#[test]
fn bare_lf_line_endings_in_the_request_head_are_accepted() {
    // RFC 9112 §2.2 lets a recipient take a lone LF as a line terminator; gatehouse does.
    let upstream = Upstream::hello();
    let gh = in_front_of(upstream.addr());
    let mut conn = RawConn::connect(gh.addr());
    conn.send(b"GET /lf HTTP/1.1\nHost: app.test\nX-Bare: lf\n\n")
        .unwrap();
    assert_ok(&conn.read_response(false), "hello");
    let seen = &upstream.wait_for_requests(1, PATIENCE)[0];
    assert_eq!(
        (
            seen.path(),
            seen.header("host"),
            seen.header("x-bare"),
            seen.complete
        ),
        ("/lf", Some("app.test"), Some("lf"), true)
    );
    assert_ok(&Req::get("/next").send_on(&mut conn), "hello");
}

#[test]
fn empty_lines_before_a_request_line_are_ignored() {
    // RFC 9112 §2.2: a server SHOULD ignore at least one empty line before a request-line (some
    // clients send a CRLF after a POST body).
    let upstream = Upstream::hello();
    let gh = in_front_of(upstream.addr());
    let mut conn = RawConn::connect(gh.addr());
    conn.send(
        b"\r\nGET /first HTTP/1.1\r\nHost: app.test\r\n\r\n\r\nGET /second HTTP/1.1\r\nHost: app.test\r\n\r\n",
    )
    .unwrap();
    assert_ok(&conn.read_response(false), "hello");
    assert_ok(&conn.read_response(false), "hello");
    assert_open_and_quiet(&mut conn);
    assert_eq!(paths(&upstream), ["/first", "/second"]);
}

#[test]
fn absolute_form_target_is_proxied_in_origin_form() {
    let upstream = Upstream::hello();
    let gh = in_front_of(upstream.addr());
    let mut conn = RawConn::connect(gh.addr());
    conn.send(b"GET http://app.test/x?y=1 HTTP/1.1\r\nHost: app.test\r\n\r\n")
        .unwrap();
    assert_ok(&conn.read_response(false), "hello");
    let seen = &upstream.wait_for_requests(1, PATIENCE)[0];
    assert_eq!(
        (seen.target.as_str(), seen.header("host")),
        ("/x?y=1", Some("app.test"))
    );
    assert_open_and_quiet(&mut conn);
}

#[test]
fn options_asterisk_is_answered_and_the_connection_goes_on() {
    let upstream = Upstream::hello();
    let gh = in_front_of(upstream.addr());
    let mut conn = RawConn::connect(gh.addr());
    conn.send(b"OPTIONS * HTTP/1.1\r\nHost: app.test\r\n\r\n")
        .unwrap();
    // `*` asks about the server as a whole: routed as the root is, and sent on as `*`.
    assert_ok(&conn.read_response(false), "hello");
    assert_ok(&Req::get("/next").send_on(&mut conn), "hello");
    assert_eq!(paths(&upstream), ["*", "/next"]);
    // Any other method with `*` is a bad request (RFC 9112 §3.2.4), never forwarded.
    let upstream = rejected_with_400(b"GET * HTTP/1.1\r\nHost: app.test\r\n\r\n");
    assert!(upstream.requests().is_empty());
}

#[test]
fn targets_of_the_wrong_form_or_hosts_that_are_not_valid_are_refused() {
    // RFC 9112 §3.2: a target that is not a path from `/` (nor absolute-form), authority-form
    // on anything but CONNECT, and a Host value outside `host[:port]` all get a 400; none
    // reaches the upstream, or picks the route, by a host it does not name.
    for request in [
        &b"GET ok HTTP/1.1\r\nHost: app.test\r\n\r\n"[..],
        b"GET other.example:80 HTTP/1.1\r\nHost: app.test\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x/y\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x@evil.example\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x, y\r\n\r\n",
    ] {
        let upstream = rejected_with_400(request);
        assert!(
            upstream.requests().is_empty(),
            "{:?} reached the upstream",
            String::from_utf8_lossy(request)
        );
    }
}

#[test]
fn connect_is_not_implemented() {
    // A reverse proxy opens no tunnels to hosts a client names: 501 (RFC 9110 §9.1), never a
    // route's 404, and nothing reaches the upstream.
    let upstream = Upstream::hello();
    let gh = in_front_of(upstream.addr());
    let mut conn = RawConn::connect(gh.addr());
    conn.send(b"CONNECT app.test:443 HTTP/1.1\r\nHost: app.test:443\r\n\r\n")
        .unwrap();
    let resp = conn.read_response(false);
    assert_eq!((resp.status, resp.complete), (501, true), "{resp:#?}");
    assert_eq!(
        resp.header("proxy-status"),
        Some("gatehouse;error=http_request_error;status-code=501"),
        "{resp:#?}"
    );
    assert_eq!(upstream.connections(), 0);
}

#[test]
fn a_client_closing_mid_body_is_logged_as_gone_not_as_a_bad_request() {
    // Half the announced body, then the connection closes: no answer can reach the client, so
    // its access record says it left (499, client_aborted), and the warning says why.
    let upstream = Upstream::hello();
    let gh = in_front_of(upstream.addr());
    let mut client = TcpStream::connect(gh.addr()).unwrap();
    client
        .write_all(
            b"POST /upload HTTP/1.1\r\nHost: app.test\r\nX-Request-Id: gone-mid-body\r\n\
              Content-Length: 1000\r\n\r\n0123456789",
        )
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    drop(client);
    let record = gh.access_log("gone-mid-body");
    assert_eq!(
        (
            &record["status"],
            &record["client_aborted"],
            &record["failure"]
        ),
        (&499.into(), &true.into(), &"http_request_error".into()),
        "{record}"
    );
    let warning = gh.failure_log("gone-mid-body");
    assert!(
        warning
            .to_string()
            .contains("closed the connection before sending the whole request body"),
        "{warning}"
    );
    // The upstream got the request's start, and never a complete request.
    let seen = upstream.wait_for_requests(1, PATIENCE);
    assert!(seen.iter().all(|r| !r.complete), "{seen:#?}");
}

#[test]
fn a_client_that_shuts_its_sending_side_mid_body_still_reads_the_400() {
    // Its request never arrived whole: recorded as gone (499), but the socket still reads.
    let upstream = Upstream::hello();
    let gh = in_front_of(upstream.addr());
    let mut client = TcpStream::connect(gh.addr()).unwrap();
    client
        .write_all(
            b"POST /upload HTTP/1.1\r\nHost: app.test\r\nX-Request-Id: half-mid-body\r\n\
              Content-Length: 1000\r\n\r\n0123456789",
        )
        .unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut received = Vec::new();
    let _ = client.read_to_end(&mut received);
    let text = String::from_utf8_lossy(&received);
    assert!(text.starts_with("HTTP/1.1 400 "), "{text}");
    let record = gh.access_log("half-mid-body");
    assert_eq!(record["status"], 499, "{record}");
}

#[test]
fn bytes_that_are_not_http_1_are_closed_on_unanswered_and_logged() {
    // An HTTP/2 client whose preface went wrong (or another protocol) on the port that serves
    // HTTP/1.1 and h2c: an HTTP/1.1 400 would be garbage to it, so the connection just closes.
    let upstream = Upstream::hello();
    let gh = in_front_of(upstream.addr());
    let mut client = TcpStream::connect(gh.addr()).unwrap();
    client
        .write_all(b"INVALID CONNECTION PREFACE\r\n\r\n")
        .unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut received = Vec::new();
    let end = client.read_to_end(&mut received);
    assert!(
        end.is_ok() && received.is_empty(),
        "{end:?}: {:?}",
        String::from_utf8_lossy(&received)
    );
    let warning = gh.wait_for_log(
        |l| {
            l["target"] == "gatehouse::failure" && l.to_string().contains("not an HTTP/1.x request")
        },
        PATIENCE,
    );
    assert_eq!(warning["kind"], "http_request_error", "{warning}");
    // HTTP/1.x text naming HTTP/2 is answered: 505 (RFC 9110 §15.6.6).
    let mut conn = RawConn::connect(gh.addr());
    conn.send(b"GET / HTTP/2.0\r\nHost: app.test\r\n\r\n")
        .unwrap();
    let resp = conn.read_response(false);
    assert_eq!((resp.status, resp.complete), (505, true), "{resp:#?}");
    assert_eq!(upstream.connections(), 0);
}

#[test]
fn a_get_with_a_chunked_body_goes_upstream_with_it() {
    // A body on a GET has no defined meaning, but it was sent: dropping it would change the
    // request (and leave the client's connection to be closed).
    let upstream = Upstream::hello();
    let gh = in_front_of(upstream.addr());
    let mut conn = RawConn::connect(gh.addr());
    conn.send(b"GET /q HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
        .unwrap();
    assert_ok(&conn.read_response(false), "hello");
    let seen = &upstream.wait_for_requests(1, PATIENCE)[0];
    assert_eq!(
        (seen.method.as_str(), seen.body.as_slice(), seen.complete),
        ("GET", &b"hello"[..], true),
        "{seen:#?}"
    );
    assert_open_and_quiet(&mut conn);
}

#[test]
fn an_http_1_0_request_without_host_goes_upstream_with_one() {
    // The request sent upstream is HTTP/1.1, which must carry Host (RFC 9112 §3.2): the
    // address the client reached gatehouse on (RFC 9112 §3.3).
    let upstream = Upstream::hello();
    let gh = in_front_of(upstream.addr());
    let mut conn = RawConn::connect(gh.addr());
    conn.send(b"GET /old HTTP/1.0\r\n\r\n").unwrap();
    assert_ok(&conn.read_response(false), "hello");
    let seen = &upstream.wait_for_requests(1, PATIENCE)[0];
    let expected = gh.addr().to_string();
    assert_eq!(
        (seen.version, seen.header("host")),
        (1, Some(expected.as_str())),
        "{seen:#?}"
    );
}

/// Sends `request` on a new connection to a gatehouse in front of a recording upstream, and
/// asserts a complete 400 (gatehouse's own response or a bare one; if it has a Proxy-Status,
/// the failure is `http_request_error`), then the close, and no complete request upstream.
fn rejected_with_400(request: &[u8]) -> Upstream {
    let upstream = Upstream::hello();
    let gh = in_front_of(upstream.addr());
    let mut conn = RawConn::connect(gh.addr());
    let _ = conn.send(request); // gatehouse may answer and close before taking it all
    let resp = conn.read_response(false);
    assert_eq!((resp.status, resp.complete), (400, true), "{resp:#?}");
    if let Some(status) = resp.header("proxy-status") {
        assert_eq!(
            status, "gatehouse;error=http_request_error;status-code=400",
            "{resp:#?}"
        );
    }
    assert_closed_and_quiet(&mut conn);
    let complete = complete_requests(&upstream);
    assert!(
        complete.is_empty(),
        "the upstream received complete request(s): {complete:#?}"
    );
    upstream
}

#[test]
fn space_before_the_colon_is_400() {
    let upstream = rejected_with_400(b"GET / HTTP/1.1\r\nHost: app.test\r\nX-Spaced : 1\r\n\r\n");
    assert_eq!(upstream.connections(), 0);
}

#[test]
fn nul_in_a_header_value_is_400() {
    let upstream = rejected_with_400(b"GET / HTTP/1.1\r\nHost: app.test\r\nX-Nul: a\0b\r\n\r\n");
    assert_eq!(upstream.connections(), 0);
}

#[test]
fn bare_cr_in_a_header_value_is_400() {
    let upstream = rejected_with_400(b"GET / HTTP/1.1\r\nHost: app.test\r\nX-Cr: a\rb\r\n\r\n");
    assert_eq!(upstream.connections(), 0);
}

#[test]
fn whitespace_before_the_first_header_line_is_400() {
    // RFC 9112 §2.2: rejected, or the line is ignored, which leaves no Host: 400 either way.
    let upstream = rejected_with_400(b"GET / HTTP/1.1\r\n Host: app.test\r\n\r\n");
    assert_eq!(upstream.connections(), 0);
}

#[test]
fn transfer_encoding_in_http10_is_400_then_closed() {
    // RFC 9112 §6.1: the framing of an HTTP/1.0 message with Transfer-Encoding is faulty.
    let upstream = rejected_with_400(
        b"POST / HTTP/1.0\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    );
    assert_eq!(upstream.connections(), 0);
}

#[test]
fn chunk_size_beyond_64_bits_is_400() {
    rejected_with_400(
        b"POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000005\r\nhello\r\n0\r\n\r\n",
    );
}

#[test]
fn chunk_size_line_with_a_100_kib_extension_is_400() {
    let mut request =
        b"POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=".to_vec();
    request.extend_from_slice(&vec![b'a'; 100 * 1024]);
    request.extend_from_slice(b"\r\nhello\r\n0\r\n\r\n");
    rejected_with_400(&request);
}

// --- file descriptors ---

/// Open file descriptors of a process, from /proc.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/fd: {e}"))
        .count()
}

/// The fd count once it has not changed for 100 ms (closes land a moment after the client
/// saw them).
fn settled_fds(pid: u32) -> usize {
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut last = open_fds(pid);
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let now = open_fds(pid);
        if now == last || Instant::now() > deadline {
            return now;
        }
        last = now;
    }
}

#[test]
fn idle_keep_alive_connections_hold_about_one_fd_each() {
    const CONNS: usize = 50;
    let upstream = Upstream::hello();
    let gh = in_front_of(upstream.addr());
    let pid = gh.pid();
    // A first request opens what is opened lazily (the upstream connection among it), on a
    // connection that is then closed.
    let mut warm = RawConn::connect(gh.addr());
    assert_ok(
        &Req::get("/")
            .header("Connection", "close")
            .send_on(&mut warm),
        "hello",
    );
    assert!(warm.closes_within(Duration::from_secs(2)));
    drop(warm);
    let before = settled_fds(pid);
    let upstream_before = upstream.connections();

    let mut conns = Vec::new();
    for _ in 0..CONNS {
        let mut conn = RawConn::connect(gh.addr());
        assert_ok(&Req::get("/").send_on(&mut conn), "hello");
        conns.push(conn);
    }
    let after = settled_fds(pid);
    // New upstream connections would hold fds of their own; they are not the client's.
    let upstream_new = upstream.connections() - upstream_before;
    let fds_per_conn = (after as f64 - before as f64 - upstream_new as f64) / CONNS as f64;
    println!(
        "fds: {before} before, {after} with {CONNS} idle keep-alive connections \
         ({upstream_new} new upstream connections): {fds_per_conn:.2} per client connection"
    );
    // One fd per connection: the 408 is written on the connection's own socket, no spare.
    // (0.2 of slack for an fd the process opens meanwhile, a log file reopened, say.)
    assert!(
        fds_per_conn <= 1.2,
        "{fds_per_conn:.2} fds per idle keep-alive connection"
    );
    // They are all still open and usable.
    for conn in &mut conns {
        assert_ok(&Req::get("/").send_on(conn), "hello");
    }
}

/// A client that closes its sending side once its request is out (as `nc` does at the end of
/// its input) still gets the answer of an upstream that takes a while: a half-close is not
/// taken for the client going away until a second later.
#[test]
fn a_client_that_half_closes_after_its_request_gets_the_answer() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut buf = [0u8; 4096];
        let _ = conn.read(&mut buf);
        std::thread::sleep(Duration::from_millis(400));
        let _ = conn
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nlater");
    });
    let gh = start(&Config::proxy_to([addr]));
    let mut client = TcpStream::connect(gh.addr()).unwrap();
    client
        .write_all(b"GET /slow HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n")
        .unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut response = Vec::new();
    let _ = client.read_to_end(&mut response);
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("later"), "{response}");
}

/// A client that goes away while gatehouse waits for the upstream's answer: the upstream
/// request is dropped at once (its connection closed), not held until the upstream answers or
/// `response_timeout` passes (nginx gives up on it too, and logs 499).
#[test]
fn a_client_that_closes_while_the_upstream_works_lets_go_of_the_upstream() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (closed_tx, closed_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut buf = [0u8; 4096];
        let _ = conn.read(&mut buf);
        // Never answers; reports when gatehouse closes the connection.
        conn.set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let started = Instant::now();
        let closed = matches!(conn.read(&mut buf), Ok(0) | Err(_))
            && started.elapsed() < Duration::from_secs(19);
        let _ = closed_tx.send((closed, started.elapsed()));
    });
    let gh = start(&Config::proxy_to([addr]).upstream_setting("app", "response_timeout", "30s"));
    let mut client = TcpStream::connect(gh.addr()).unwrap();
    client
        .write_all(b"GET /slow HTTP/1.1\r\nHost: app.test\r\nX-Request-Id: gone-1\r\n\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    drop(client);
    let (closed, after) = closed_rx
        .recv_timeout(Duration::from_secs(25))
        .expect("the upstream thread reports");
    assert!(closed, "the upstream connection was held for {after:?}");
    assert!(after < Duration::from_secs(5), "released after {after:?}");
    // The request still has its access record: the client closed it (nginx's 499).
    let record = gh.access_log("gone-1");
    assert_eq!(record["status"], 499, "{record}");
    assert_eq!(record["client_aborted"], true, "{record}");
    assert_eq!(record["path"], "/slow", "{record}");
}
