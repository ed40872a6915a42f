//! HTTP/2 towards clients: h2c with prior knowledge on plain listeners, h2 over TLS, the
//! announced limits, load from h2load, failures answered (or streams reset) as on HTTP/1.1,
//! and idle connections.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use gatehouse_testkit::https::{TlsListener, curl_any, tls_listeners};
use gatehouse_testkit::tls::TestCa;
use gatehouse_testkit::{Behavior, Config, Gatehouse, ProxyStatus, Upstream};

fn start(config: &Config) -> Gatehouse {
    Gatehouse::start(Path::new(env!("CARGO_BIN_EXE_gatehouse")), &config.toml())
}

fn url(addr: SocketAddr, path: &str) -> String {
    format!("http://{addr}{path}")
}

/// A port where connections are refused for the whole test (see the testkit's).
fn closed_port() -> u16 {
    gatehouse_testkit::closed_port()
}

// --- h2c ---

#[test]
fn h2c_with_prior_knowledge_is_served_beside_http11() {
    let upstream = Upstream::hello();
    let gh = start(&Config::proxy_to([upstream.addr()]));
    let h2 = curl_any(&["--http2-prior-knowledge", &url(gh.addr(), "/x")]);
    assert_eq!(
        (
            h2.exit_code,
            h2.http_version.as_str(),
            h2.status,
            h2.text().as_str()
        ),
        (Some(0), "2", 200, "hello"),
        "{h2:#?}"
    );
    let h1 = curl_any(&["--http1.1", &url(gh.addr(), "/y")]);
    assert_eq!(
        (h1.http_version.as_str(), h1.status),
        ("1.1", 200),
        "{h1:#?}"
    );
    let forwarded = &upstream.requests_to("/x")[0];
    assert_eq!(
        forwarded.version, 1,
        "HTTP/1.1 upstream whatever the client spoke"
    );
    assert_eq!(forwarded.header("x-forwarded-proto"), Some("http"));
    let authority = gh.addr().to_string();
    assert_eq!(
        forwarded.header("host"),
        Some(authority.as_str()),
        "the :authority becomes Host: {forwarded:#?}"
    );
    assert_eq!(
        forwarded.header("x-forwarded-host"),
        Some(authority.as_str()),
        "X-Forwarded-Host names the :authority, as it names Host on HTTP/1.1: {forwarded:#?}"
    );
}

#[test]
fn with_http2_off_h2c_is_refused_and_http11_still_served() {
    let upstream = Upstream::hello();
    let gh = start(&Config::proxy_to([upstream.addr()]).server("http2", false));
    let h2 = curl_any(&["--http2-prior-knowledge", &url(gh.addr(), "/")]);
    assert_ne!(h2.http_version, "2", "{h2:#?}");
    assert_ne!(h2.status, 200, "{h2:#?}");
    let h1 = curl_any(&["--http1.1", &url(gh.addr(), "/")]);
    assert_eq!((h1.exit_code, h1.status), (Some(0), 200), "{h1:#?}");
}

#[test]
fn a_preface_arriving_in_pieces_is_still_http2() {
    let upstream = Upstream::hello();
    let gh = start(&Config::proxy_to([upstream.addr()]));
    let mut conn = TcpStream::connect(gh.addr()).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    conn.write_all(b"PRI * HTTP/2.0\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    conn.write_all(b"\r\nSM\r\n\r\n").unwrap();
    conn.write_all(&frame(FRAME_SETTINGS, 0, &[])).unwrap();
    let first = read_frame(&mut conn).expect("a frame from the server");
    assert_eq!(
        first.kind, FRAME_SETTINGS,
        "the server's SETTINGS: {first:?}"
    );
}

// --- the announced limits ---

#[test]
fn settings_announce_the_configured_max_concurrent_streams() {
    let upstream = Upstream::hello();
    let gh = start(&Config::proxy_to([upstream.addr()]).server("http2_max_concurrent_streams", 77));
    let output = Command::new("nghttp")
        .args(["-nv", &url(gh.addr(), "/")])
        .output()
        .expect("nghttp (Debian package nghttp2-client)");
    let text = String::from_utf8_lossy(&output.stdout);
    let received = received_settings(&text);
    assert!(
        received.contains(&"SETTINGS_MAX_CONCURRENT_STREAMS(0x03):77".to_owned()),
        "{received:?}\n{text}"
    );
    assert!(
        received.contains(&"SETTINGS_INITIAL_WINDOW_SIZE(0x04):1048576".to_owned()),
        "the default stream window: {received:?}"
    );
}

/// The parameters of the SETTINGS frames nghttp received (not those it sent).
fn received_settings(verbose: &str) -> Vec<String> {
    let mut params = Vec::new();
    let mut inside = false;
    for line in verbose.lines() {
        if line.contains("recv SETTINGS frame") {
            inside = true;
        } else if line.starts_with('[') {
            inside = false;
        } else if inside && let Some(param) = line.trim().strip_prefix('[') {
            params.push(param.trim_end_matches(']').to_owned());
        }
    }
    params
}

// --- load ---

/// Runs `h2load -n 200 -c 4 -m 10 URL` and returns its "requests:" line.
fn h2load(url: &str) -> String {
    let output = Command::new("h2load")
        .args(["-n", "200", "-c", "4", "-m", "10", url])
        .output()
        .expect("h2load (Debian package nghttp2-client)");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.lines()
        .find(|l| l.starts_with("requests:"))
        .unwrap_or_else(|| panic!("no requests line: {text}"))
        .to_owned()
}

#[test]
fn h2load_requests_all_succeed_over_h2c_and_tls() {
    let upstream = Upstream::hello();
    let ca = TestCa::new("h2load CA");
    let cert = ca.leaf(&["a.test"]);
    let (cert_pem, key_pem) = cert.write_pem();
    let gh = start(&Config::proxy_to([upstream.addr()]).server(
        "tls",
        tls_listeners([
            TlsListener::new(["127.0.0.1:0"]).certificate(cert_pem.path(), key_pem.path()),
        ]),
    ));
    let done =
        "requests: 200 total, 200 started, 200 done, 200 succeeded, 0 failed, 0 errored, 0 timeout";
    assert_eq!(h2load(&url(gh.addr(), "/")), done, "h2c");
    assert_eq!(
        h2load(&format!("https://{}/", gh.https_addr())),
        done,
        "h2 over TLS (ALPN)"
    );
}

// --- failures ---

#[test]
fn a_502_over_http2_has_proxy_status_and_the_negotiated_json_body() {
    let port = closed_port();
    let ca = TestCa::new("h2 failure CA");
    let cert = ca.leaf(&["a.test"]);
    let (cert_pem, key_pem) = cert.write_pem();
    let ca_pem = ca.write_pem();
    let gh = start(&Config::proxy_to([format!("127.0.0.1:{port}")]).server(
        "tls",
        tls_listeners([
            TlsListener::new(["127.0.0.1:0"]).certificate(cert_pem.path(), key_pem.path()),
        ]),
    ));
    let https = gh.https_addr();
    let resolve = format!("a.test:{}:127.0.0.1", https.port());
    let tls_url = format!("https://a.test:{}/", https.port());
    let h2c_url = url(gh.addr(), "/");
    let runs = [
        curl_any(&[
            "--http2-prior-knowledge",
            "-H",
            "Accept: application/json",
            &h2c_url,
        ]),
        curl_any(&[
            "--http2",
            "--cacert",
            ca_pem.path().to_str().unwrap(),
            "--resolve",
            &resolve,
            "-H",
            "Accept: application/json",
            &tls_url,
        ]),
    ];
    for run in runs {
        assert_eq!(
            (run.http_version.as_str(), run.status),
            ("2", 502),
            "{run:#?}"
        );
        let lines = run.headers.get_all("proxy-status");
        let member = ProxyStatus::from_lines(&lines)
            .unwrap_or_else(|e| panic!("Proxy-Status {lines:?}: {e}"))
            .last()
            .clone();
        assert_eq!(
            (member.name.as_str(), member.error()),
            ("gatehouse", Some("connection_refused"))
        );
        assert_eq!(
            run.headers.get("content-type"),
            Some("application/problem+json")
        );
        let body: serde_json::Value = serde_json::from_slice(&run.body).expect("a JSON body");
        assert_eq!(body["error"], "connection_refused", "{body}");
        assert_eq!(body["status"], 502, "{body}");
        assert!(
            run.headers.get("connection").is_none(),
            "no connection-specific header on HTTP/2"
        );
        let request_id = run.headers.get("x-request-id").expect("X-Request-Id");
        let access = gh.access_log(request_id);
        assert_eq!(access["failure"], "connection_refused", "{access}");
    }
}

#[test]
fn a_failure_after_the_headers_resets_the_http2_stream() {
    let upstream = Upstream::start(Behavior::RawThenClose(
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nX-Origin: yes\r\n\r\npartial".to_vec(),
    ));
    let gh = start(&Config::proxy_to([upstream.addr()]));

    let run = curl_any(&["--http2-prior-knowledge", &url(gh.addr(), "/")]);
    assert!(
        run.exit_code == Some(92) && run.stderr.contains("INTERNAL_ERROR"),
        "curl must see a stream reset, not a complete response: {run:#?}"
    );

    // The frames: the stream was reset (no END_STREAM, no trailer that would pass for a
    // complete body). The response head goes out before the reset when it was sent before the
    // upstream's close was read; when the close came with the head, h2 drops the head still
    // queued and the reset is all the client gets. Either way, never a complete response.
    let output = Command::new("nghttp")
        .args(["-nv", &url(gh.addr(), "/")])
        .output()
        .expect("nghttp (Debian package nghttp2-client)");
    let text = String::from_utf8_lossy(&output.stdout);
    let reset = text
        .find("recv RST_STREAM frame")
        .unwrap_or_else(|| panic!("no RST_STREAM: {text}"));
    if let Some(status) = text.find(":status: ") {
        assert!(status < reset, "{text}");
        assert!(text[status..].starts_with(":status: 200"), "{text}");
    }
    assert!(
        text[reset..].contains("error_code=INTERNAL_ERROR(0x02)"),
        "{text}"
    );
    // nghttp prints `recv RST_STREAM frame <length=4, flags=0x00, stream_id=N>`: no frame the
    // client received for that stream carried END_STREAM (flags=0x01).
    let stream_id: String = text[reset..]
        .split("stream_id=")
        .nth(1)
        .unwrap_or_else(|| panic!("no stream id on the RST_STREAM: {text}"))
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    assert!(!stream_id.is_empty(), "{text}");
    let ends_stream = format!("flags=0x01, stream_id={stream_id}>");
    assert!(
        !text
            .lines()
            .any(|line| line.contains("recv ") && line.contains(&ends_stream)),
        "no frame ends stream {stream_id}: {text}"
    );

    let record = gh.wait_for_log(
        |l| l["target"] == "gatehouse::access",
        Duration::from_secs(5),
    );
    assert_eq!(
        (&record["status"], &record["failure"]),
        (&200.into(), &"http_response_incomplete".into()),
        "{record}"
    );
}

// --- idle connections ---

/// Opens an HTTP/2 connection, sends nothing more than SETTINGS (and its ACK, and PING ACKs
/// when `answer_pings`), and returns the frame types received until the server closed, and
/// when it did.
fn idle_h2_connection(addr: SocketAddr, answer_pings: bool) -> (Vec<u8>, Duration) {
    let mut conn = h2_connection(addr);
    let started = Instant::now();
    let mut kinds = Vec::new();
    while let Some(Frame {
        kind,
        flags,
        payload,
        ..
    }) = read_frame(&mut conn)
    {
        let ack = flags & 1 == 1;
        // A write may fail once the server has closed; the read loop then ends.
        if kind == FRAME_SETTINGS && !ack {
            let _ = conn.write_all(&frame(FRAME_SETTINGS, 1, &[]));
        }
        if kind == FRAME_PING && !ack && answer_pings {
            let _ = conn.write_all(&frame(FRAME_PING, 1, &payload));
        }
        kinds.push(kind);
    }
    (kinds, started.elapsed())
}

#[test]
fn an_idle_http2_connection_gets_goaway_and_is_closed() {
    let upstream = Upstream::hello();
    let gh = start(&Config::proxy_to([upstream.addr()]).server("client_header_timeout", "1s"));
    let (kinds, elapsed) = idle_h2_connection(gh.addr(), true);
    assert!(kinds.contains(&FRAME_GOAWAY), "frames received: {kinds:?}");
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(3),
        "closed after {elapsed:?}"
    );
}

#[test]
fn an_idle_http2_client_that_ignores_goaway_is_dropped() {
    let upstream = Upstream::hello();
    let gh = start(&Config::proxy_to([upstream.addr()]).server("client_header_timeout", "1s"));
    let (kinds, elapsed) = idle_h2_connection(gh.addr(), false);
    assert!(kinds.contains(&FRAME_GOAWAY), "frames received: {kinds:?}");
    assert!(
        elapsed >= Duration::from_millis(1900) && elapsed < Duration::from_secs(4),
        "closed after {elapsed:?} (GOAWAY after one idle period, dropped after the next)"
    );
}

#[test]
fn an_http2_connection_with_requests_is_not_idle() {
    let upstream = Upstream::hello();
    let gh = start(&Config::proxy_to([upstream.addr()]).server("client_header_timeout", "1s"));
    let mut conn = h2_connection(gh.addr());
    // Five requests 400 ms apart on one connection, more than two idle periods in all.
    for i in 0..5u32 {
        let stream = 2 * i + 1;
        conn.write_all(&get_request(stream, &gh.addr().to_string()))
            .unwrap();
        loop {
            let frame = read_frame(&mut conn)
                .unwrap_or_else(|| panic!("closed before the response on stream {stream}"));
            assert_ne!(
                frame.kind, FRAME_GOAWAY,
                "GOAWAY on a busy connection: {frame:?}"
            );
            if frame.kind == FRAME_PING && frame.flags & 1 == 0 {
                conn.write_all(&frame_bytes(FRAME_PING, 1, 0, &frame.payload))
                    .unwrap();
            }
            if frame.stream == stream && frame.flags & FLAG_END_STREAM != 0 {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(400));
    }
    assert_eq!(upstream.requests().len(), 5);
}

#[test]
fn a_silent_connection_is_closed_after_client_header_timeout() {
    let upstream = Upstream::hello();
    let gh = start(&Config::proxy_to([upstream.addr()]).server("client_header_timeout", "1s"));
    let mut conn = TcpStream::connect(gh.addr()).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 64];
    let read = conn.read(&mut buf);
    let elapsed = started.elapsed();
    assert!(
        matches!(read, Ok(0)) || read.is_err(),
        "closed without a byte: {read:?}"
    );
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(4),
        "closed after {elapsed:?}"
    );
}

// --- raw HTTP/2 frames (RFC 9113 §4.1) ---

const FRAME_HEADERS: u8 = 0x1;
const FRAME_SETTINGS: u8 = 0x4;
const FRAME_PING: u8 = 0x6;
const FRAME_GOAWAY: u8 = 0x7;
const FLAG_END_STREAM: u8 = 0x1;
const FLAG_END_HEADERS: u8 = 0x4;

#[derive(Debug)]
struct Frame {
    kind: u8,
    flags: u8,
    stream: u32,
    payload: Vec<u8>,
}

fn frame_bytes(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
    let mut out = vec![len[1], len[2], len[3], kind, flags];
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

fn frame(kind: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
    frame_bytes(kind, flags, 0, payload)
}

/// The next frame; `None` once the connection ends.
fn read_frame(conn: &mut TcpStream) -> Option<Frame> {
    let mut head = [0u8; 9];
    conn.read_exact(&mut head).ok()?;
    let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
    let mut payload = vec![0u8; len];
    conn.read_exact(&mut payload).ok()?;
    Some(Frame {
        kind: head[3],
        flags: head[4],
        stream: u32::from_be_bytes([head[5] & 0x7f, head[6], head[7], head[8]]),
        payload,
    })
}

/// A connection past the preface and SETTINGS exchange.
fn h2_connection(addr: SocketAddr) -> TcpStream {
    let mut conn = TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    conn.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").unwrap();
    conn.write_all(&frame(FRAME_SETTINGS, 0, &[])).unwrap();
    conn
}

/// `GET /` on `stream`, HPACK-encoded from the static table (RFC 7541 Appendix A) and one
/// literal `:authority`.
fn get_request(stream: u32, authority: &str) -> Vec<u8> {
    // :method GET, :scheme http, :path /
    let mut block = vec![0x82, 0x86, 0x84];
    // :authority (static index 1), literal without indexing
    block.push(0x01);
    block.push(u8::try_from(authority.len()).unwrap());
    block.extend_from_slice(authority.as_bytes());
    frame_bytes(
        FRAME_HEADERS,
        FLAG_END_STREAM | FLAG_END_HEADERS,
        stream,
        &block,
    )
}

/// A header section over `max_request_header_size` gets gatehouse's own 431 over HTTP/2 too
/// (Proxy-Status, the negotiated body, the access record), as on HTTP/1.1: the h2 layer's
/// announced limit is twice gatehouse's, so only far larger sections meet its bare refusal.
#[test]
fn a_header_section_over_the_limit_is_gatehouses_431_over_http2() {
    let upstream = Upstream::hello();
    let gh = start(&Config::proxy_to([upstream.addr()]).server("max_request_header_size", "8KiB"));
    let fill = format!("X-Fill: {}", "a".repeat(10 * 1024));
    let run = curl_any(&[
        "--http2-prior-knowledge",
        "-H",
        &fill,
        "-H",
        "Accept: application/json",
        &url(gh.addr(), "/big"),
    ]);
    assert_eq!(
        (run.http_version.as_str(), run.status),
        ("2", 431),
        "{run:#?}"
    );
    let lines = run.headers.get_all("proxy-status");
    let member = ProxyStatus::from_lines(&lines)
        .unwrap_or_else(|e| panic!("Proxy-Status {lines:?}: {e}"))
        .last()
        .clone();
    assert_eq!(member.error(), Some("http_request_error"), "{run:#?}");
    let body: serde_json::Value = serde_json::from_slice(&run.body).expect("a JSON body");
    assert_eq!(body["status"], 431, "{body}");
    let request_id = run.headers.get("x-request-id").expect("X-Request-Id");
    assert_eq!(gh.access_log(request_id)["status"], 431);
    assert!(upstream.requests_to("/big").is_empty(), "never forwarded");
}

#[test]
fn an_empty_chunked_body_over_h2c_is_complete_not_aborted() {
    // The body's end comes with its head: read ahead, it is complete, and so is the response.
    let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec();
    let upstream = Upstream::start(Behavior::RawThenClose(raw));
    let gh = start(&Config::proxy_to([upstream.addr()]));
    let h2 = curl_any(&[
        "--http2-prior-knowledge",
        "-H",
        "X-Request-Id: empty-h2",
        &url(gh.addr(), "/x"),
    ]);
    assert_eq!(h2.status, 200, "{h2:?}");
    let record = gh.access_log("empty-h2");
    assert_eq!(record["client_aborted"], false, "{record}");
    assert_eq!(record["status"], 200, "{record}");
}

/// A client can stop taking one stream (never a WINDOW_UPDATE for it) while its connection
/// goes on: `client_write_timeout` then applies to the stream, whose upstream connection is let
/// go, and the rest of the connection keeps working.
#[test]
fn a_stream_the_client_stops_taking_lets_go_of_its_upstream_after_client_write_timeout() {
    const FRAME_WINDOW_UPDATE: u8 = 0x8;
    const SETTINGS_INITIAL_WINDOW_SIZE: u16 = 0x4;
    // Far more than the socket buffers and h2's send buffer hold.
    let upstream = Upstream::serve(gatehouse_testkit::Reply::ok(vec![b'y'; 48 << 20]));
    let gh = start(&Config::proxy_to([upstream.addr()]).server("client_write_timeout", "2s"));
    let mut conn = h2_connection(gh.addr());
    conn.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    // Streams get a 1 KiB window; the connection's is opened wide, so only the stream stalls.
    let mut setting = SETTINGS_INITIAL_WINDOW_SIZE.to_be_bytes().to_vec();
    setting.extend_from_slice(&1024u32.to_be_bytes());
    conn.write_all(&frame(FRAME_SETTINGS, 0, &setting)).unwrap();
    conn.write_all(&frame(FRAME_WINDOW_UPDATE, 0, &(1u32 << 30).to_be_bytes()))
        .unwrap();
    conn.write_all(&get_request(1, "stall.test")).unwrap();
    let started = Instant::now();
    let mut data = 0usize;
    let mut held_at_one_second = None;
    let mut pinged = false;
    let mut pong = false;
    let mut reset = None;
    while started.elapsed() < Duration::from_secs(15) && !pong {
        if held_at_one_second.is_none() && started.elapsed() >= Duration::from_secs(1) {
            held_at_one_second = Some(upstream.in_flight());
        }
        let released = gh
            .logs()
            .iter()
            .any(|l| l.to_string().contains("took nothing of a stream"));
        if released && !pinged {
            // The connection itself goes on.
            conn.write_all(&frame(FRAME_PING, 0, b"stalled!")).unwrap();
            pinged = true;
        }
        let mut head = [0u8; 9];
        match conn.read_exact(&mut head) {
            Ok(()) => {}
            Err(err)
                if matches!(
                    err.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(err) => panic!("the connection ended: {err}"),
        }
        let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
        let mut payload = vec![0u8; len];
        conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        conn.read_exact(&mut payload).unwrap();
        conn.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        match head[3] {
            0x0 => data += len,
            FRAME_SETTINGS if head[4] & 0x1 == 0 => {
                conn.write_all(&frame(FRAME_SETTINGS, 0x1, &[])).unwrap();
            }
            FRAME_PING if head[4] & 0x1 == 1 => pong = payload == b"stalled!",
            // RST_STREAM on stream 1, with its error code.
            0x3 if head[5..9] == [0, 0, 0, 1] && payload.len() == 4 => {
                reset = Some(u32::from_be_bytes([
                    payload[0], payload[1], payload[2], payload[3],
                ]));
            }
            _ => {}
        }
    }
    assert_eq!(reset, Some(0x8), "the stalled stream is reset with CANCEL");
    assert_eq!(held_at_one_second, Some(1), "the upstream was sending");
    assert!(
        pong,
        "the stall was never released, or the connection stopped answering"
    );
    assert!(data <= 1024, "{data} bytes of a 1 KiB window");
    let deadline = Instant::now() + Duration::from_secs(5);
    while upstream.in_flight() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        upstream.in_flight(),
        0,
        "the upstream connection is still held"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "released before client_write_timeout"
    );
}

/// An `h2` client connection to `addr` (prior knowledge), driven in the background.
async fn h2_client(addr: SocketAddr) -> h2::client::SendRequest<bytes::Bytes> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (client, conn) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(conn);
    client
}

/// Sends each request (without a body) in turn on `client`; the statuses, in order.
async fn statuses_of(
    client: &h2::client::SendRequest<bytes::Bytes>,
    requests: impl IntoIterator<Item = http::Request<()>>,
) -> Vec<u16> {
    let mut statuses = Vec::new();
    for request in requests {
        let mut client = client.clone().ready().await.unwrap();
        let (response, _) = client.send_request(request, true).unwrap();
        statuses.push(response.await.unwrap().status().as_u16());
    }
    statuses
}

/// A runtime for a test's own `h2` client.
fn client_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A client that resets its stream while the upstream works: the request is cancelled with its
/// upstream attempt, and its access record says the client closed it (status 499,
/// `client_aborted`).
#[test]
fn a_stream_reset_while_the_upstream_works_is_recorded_as_client_closed() {
    let upstream = Upstream::start(Behavior::Hang);
    let gh = start(&Config::proxy_to([upstream.addr()]));
    let runtime = client_runtime();
    runtime.block_on(async {
        let mut client = h2_client(gh.addr()).await;
        let request = http::Request::get(format!("http://{}/hang", gh.addr()))
            .header("x-request-id", "reset-1")
            .body(())
            .unwrap();
        let (_response, mut send) = client.send_request(request, false).unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        send.send_reset(h2::Reason::CANCEL);
        tokio::time::sleep(Duration::from_millis(300)).await;
    });
    let record = gh.access_log("reset-1");
    assert_eq!(record["status"], 499, "{record}");
    assert_eq!(record["client_aborted"], true, "{record}");
}

/// Rapid reset paced so that every stream is accepted before it is reset (CVE-2023-44487):
/// each would start a request, and an upstream connection, for nothing. Once the client has
/// reset more than a hundred streams, most of its streams, the connection is closed with
/// GOAWAY ENHANCE_YOUR_CALM; a client that resets a few of its streams is not.
#[test]
fn a_client_that_resets_most_of_its_streams_is_sent_away() {
    let upstream = Upstream::start(Behavior::Hang);
    let gh = start(&Config::proxy_to([upstream.addr()]));
    let runtime = client_runtime();
    let outcome = runtime.block_on(async {
        let tcp = tokio::net::TcpStream::connect(gh.addr()).await.unwrap();
        let (mut client, conn) = h2::client::handshake(tcp).await.unwrap();
        let driver = tokio::spawn(conn);
        for _ in 0..400 {
            let request = http::Request::get(format!("http://{}/hang", gh.addr()))
                .body(())
                .unwrap();
            let Ok(ready) = client.clone().ready().await else {
                break;
            };
            client = ready;
            let Ok((_response, mut send)) = client.send_request(request, true) else {
                break;
            };
            // Long enough for gatehouse to accept the stream and start on it.
            tokio::time::sleep(Duration::from_millis(2)).await;
            send.send_reset(h2::Reason::CANCEL);
        }
        tokio::time::timeout(Duration::from_secs(10), driver)
            .await
            .expect("the connection was never closed")
            .unwrap()
    });
    let err = outcome.expect_err("the connection ended without an error");
    assert_eq!(err.reason(), Some(h2::Reason::ENHANCE_YOUR_CALM), "{err:?}");
    assert!(
        upstream.connections() < 200,
        "{} upstream connections for 400 reset streams",
        upstream.connections()
    );
}

/// RFC 9113 §8.2.3: an HTTP/2 client may send each cookie as a field of its own; the HTTP/1.1
/// request gets them joined into one `Cookie` field with "; ".
#[test]
fn http2_cookie_fields_reach_the_upstream_as_one() {
    let upstream = Upstream::hello();
    let gh = start(&Config::proxy_to([upstream.addr()]));
    let runtime = client_runtime();
    let status = runtime.block_on(async {
        let mut client = h2_client(gh.addr()).await;
        let request = http::Request::get(format!("http://{}/c", gh.addr()))
            .header("cookie", "a=1")
            .header("cookie", "b=2")
            .body(())
            .unwrap();
        let (response, _) = client.send_request(request, true).unwrap();
        response.await.unwrap().status()
    });
    assert_eq!(status, 200);
    let seen = &upstream.requests()[0];
    let cookies: Vec<_> = seen
        .headers
        .0
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case("cookie"))
        .map(|(_, value)| value.as_str())
        .collect();
    assert_eq!(cookies, ["a=1; b=2"], "{seen:#?}");
}

/// RFC 9113 §8.2.1 and §8.3.1 over HTTP/2: a field value padded with whitespace is malformed
/// and never forwarded (400), while a Host that names the `:authority` with the scheme's
/// default port is the same host (forwarded, not refused).
#[test]
fn http2_field_values_and_host_are_checked_as_rfc_9113_says() {
    let upstream = Upstream::hello();
    let gh = start(&Config::proxy_to([upstream.addr()]));
    let runtime = client_runtime();
    let cases = [
        ("/padded", "x-note", " a"),
        ("/padded-tab", "x-note", "a\t"),
        ("/default-port", "host", "app.test:80"),
        ("/other-port", "host", "app.test:8080"),
    ];
    let requests = cases.map(|(path, name, value)| {
        http::Request::get(format!("http://app.test{path}"))
            .header(name, http::HeaderValue::from_static(value))
            .body(())
            .unwrap()
    });
    let statuses =
        runtime.block_on(async { statuses_of(&h2_client(gh.addr()).await, requests).await });
    let paths = cases.map(|(path, _, _)| path);
    assert_eq!(
        paths.into_iter().zip(statuses).collect::<Vec<_>>(),
        [
            ("/padded", 400),
            ("/padded-tab", 400),
            ("/default-port", 200),
            ("/other-port", 400)
        ]
    );
    let forwarded: Vec<_> = upstream
        .requests()
        .iter()
        .map(|r| r.target.clone())
        .collect();
    assert_eq!(forwarded, ["/default-port"]);
}

/// A client that resets its stream halfway through the request body has gone: its access
/// record says so (499, `client_aborted`), not that it sent a bad request.
#[test]
fn a_stream_reset_mid_body_is_recorded_as_client_closed() {
    let upstream = Upstream::hello();
    let gh = start(&Config::proxy_to([upstream.addr()]));
    let runtime = client_runtime();
    runtime.block_on(async {
        let mut client = h2_client(gh.addr()).await;
        let request = http::Request::post(format!("http://{}/upload", gh.addr()))
            .header("x-request-id", "reset-mid-body")
            .header("content-length", "1000")
            .body(())
            .unwrap();
        let (_response, mut send) = client.send_request(request, false).unwrap();
        send.send_data(b"0123456789"[..].into(), false).unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        send.send_reset(h2::Reason::CANCEL);
        tokio::time::sleep(Duration::from_millis(300)).await;
    });
    let record = gh.access_log("reset-mid-body");
    assert_eq!(
        (&record["status"], &record["client_aborted"]),
        (&499.into(), &true.into()),
        "{record}"
    );
}

/// Over HTTP/2 as over HTTP/1.1: CONNECT gets 501 (no tunnels to hosts a client names), and a
/// request is routed by its path's normal form (`/%61dmin` takes `/admin`'s route), with a dot
/// segment refused.
#[test]
fn http2_requests_get_the_same_connect_and_path_checks() {
    let public = Upstream::hello();
    let admin = Upstream::hello();
    let gh = start(
        &Config::new()
            .upstream("public", [public.addr()])
            .upstream("admin", [admin.addr()])
            .route(None, "/", "public")
            .route(None, "/admin", "admin"),
    );
    let runtime = client_runtime();
    let targets = [
        ("CONNECT", "a.example:443"),
        ("GET", "http://a.example/%61dmin/x"),
        ("GET", "http://a.example/admin/../x"),
    ];
    let requests = targets.map(|(method, target)| {
        http::Request::builder()
            .method(method)
            .uri(target)
            .body(())
            .unwrap()
    });
    let statuses =
        runtime.block_on(async { statuses_of(&h2_client(gh.addr()).await, requests).await });
    assert_eq!(
        targets
            .map(|(_, target)| target)
            .into_iter()
            .zip(statuses)
            .collect::<Vec<_>>(),
        [
            ("a.example:443", 501),
            ("http://a.example/%61dmin/x", 200),
            ("http://a.example/admin/../x", 400)
        ]
    );
    let seen: Vec<_> = admin.requests().into_iter().map(|r| r.target).collect();
    assert_eq!(seen, ["/%61dmin/x"]);
    assert!(public.requests().is_empty(), "{:#?}", public.requests());
}
