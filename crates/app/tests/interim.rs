//! Interim responses (RFC 9110 §15.2): a 1xx from the upstream is relayed to an HTTP/1.1
//! client and to an HTTP/2 client (plain and TLS) before the final response, hop-by-hop fields
//! removed; never to an HTTP/1.0 client, never cached, never the request's status. A 204 goes
//! to an HTTP/2 client without the Content-Length its upstream gave it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use gatehouse_testkit::https::{TlsListener, tls_listeners};
use gatehouse_testkit::tls::TestCa;
use gatehouse_testkit::{Behavior, Config, Gatehouse, Upstream};

/// The 103 also carries a `Content-Length`, which no 1xx may (RFC 9110 §8.6): relayed without it.
const HINTS_THEN_OK: &[u8] = b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload; as=style\r\nConnection: x-hop\r\nX-Hop: secret\r\nContent-Length: 0\r\n\r\nHTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\nCache-Control: max-age=60\r\n\r\nok";

fn start(config: &Config) -> Gatehouse {
    Gatehouse::start(Path::new(env!("CARGO_BIN_EXE_gatehouse")), &config.toml())
}

/// Sends `request` and reads until the server closes.
fn exchange(gh: &Gatehouse, request: &str) -> String {
    let mut stream = TcpStream::connect(gh.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn early_hints_and_processing_reach_an_http11_client_before_the_final_response() {
    let upstream = Upstream::start(Behavior::RawThenClose(HINTS_THEN_OK.to_vec()));
    let gh = start(&Config::proxy_to([upstream.addr()]));
    let response = exchange(
        &gh,
        "GET /page HTTP/1.1\r\nHost: hints.test\r\nX-Request-Id: hints-1\r\nConnection: close\r\n\r\n",
    );
    assert!(
        response.starts_with(
            "HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload; as=style\r\n\r\nHTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 200 OK\r\n"
        ),
        "{response}"
    );
    assert!(
        !response.to_ascii_lowercase().contains("x-hop"),
        "{response}"
    );
    assert!(response.ends_with("\r\n\r\nok"), "{response}");
    let record = gh.access_log("hints-1");
    assert_eq!(record["status"], 200, "{record}");
    assert_eq!(record["upstream_status"], 200, "{record}");
}

#[test]
fn an_http10_client_gets_only_the_final_response() {
    let upstream = Upstream::start(Behavior::RawThenClose(HINTS_THEN_OK.to_vec()));
    let gh = start(&Config::proxy_to([upstream.addr()]));
    let response = exchange(&gh, "GET /page HTTP/1.0\r\nHost: hints.test\r\n\r\n");
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(!response.contains(" 103 "), "{response}");
}

#[test]
fn a_cached_copy_is_the_final_response_alone() {
    let upstream = Upstream::start(Behavior::RawThenClose(HINTS_THEN_OK.to_vec()));
    let gh = start(&Config::proxy_to([upstream.addr()]).route_section("cache", "mode", "full"));
    let first = exchange(
        &gh,
        "GET /page HTTP/1.1\r\nHost: hints.test\r\nConnection: close\r\n\r\n",
    );
    assert!(first.starts_with("HTTP/1.1 103 "), "{first}");
    std::thread::sleep(Duration::from_millis(100));
    let second = exchange(
        &gh,
        "GET /page HTTP/1.1\r\nHost: hints.test\r\nConnection: close\r\n\r\n",
    );
    assert!(second.starts_with("HTTP/1.1 200 OK\r\n"), "{second}");
    assert!(
        second.to_ascii_lowercase().contains("cache-status"),
        "{second}"
    );
    assert!(second.contains("hit"), "{second}");
    assert!(second.ends_with("\r\n\r\nok"), "{second}");
    assert_eq!(upstream.requests().len(), 1);
}

#[test]
fn an_early_hint_reaches_the_client_while_the_upstream_is_still_working() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut buf = [0u8; 4096];
        let _ = conn.read(&mut buf);
        let _ = conn.write_all(b"HTTP/1.1 103 Early Hints\r\nLink: </a.js>; rel=preload\r\n\r\n");
        std::thread::sleep(Duration::from_millis(1500));
        let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        std::thread::sleep(Duration::from_millis(500));
    });
    let gh = start(&Config::proxy_to([addr]));
    let mut stream = TcpStream::connect(gh.addr()).unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: hints.test\r\nConnection: close\r\n\r\n")
        .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(1000)))
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = stream
        .read(&mut buf)
        .expect("the hint arrives before the final response");
    let first = String::from_utf8_lossy(&buf[..n]);
    assert!(first.starts_with("HTTP/1.1 103 Early Hints\r\n"), "{first}");
    assert!(!first.contains("200 OK"), "{first}");
}

#[test]
fn interim_responses_do_not_keep_a_request_whose_client_went_away() {
    // An upstream that sends a 103 every 300 ms and answers only after 4 s; it notes when the
    // proxy let go of its connection.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (closed_tx, closed_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut buf = [0u8; 4096];
        let _ = conn.read(&mut buf);
        conn.set_nonblocking(true).unwrap();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(4) {
            let hint =
                conn.write_all(b"HTTP/1.1 103 Early Hints\r\nLink: </a.js>; rel=preload\r\n\r\n");
            let gone = match conn.read(&mut buf) {
                Ok(0) => true,
                Ok(_) => false,
                Err(err) => err.kind() != std::io::ErrorKind::WouldBlock,
            };
            if hint.is_err() || gone {
                let _ = closed_tx.send(Instant::now());
                return;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        std::thread::sleep(Duration::from_secs(3));
    });
    let gh = start(&Config::proxy_to([addr]));
    let mut stream = TcpStream::connect(gh.addr()).unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: hints.test\r\n\r\n")
        .unwrap();
    // The client sends nothing more and closes its side: the request in progress gets its
    // grace (a second), counted once, however many 1xx are relayed meanwhile.
    std::thread::sleep(Duration::from_millis(200));
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let closed_at = Instant::now();
    let let_go = closed_rx
        .recv_timeout(Duration::from_millis(3500))
        .expect("the upstream request was kept while 1xx responses kept coming");
    let after = let_go.duration_since(closed_at);
    assert!(
        after >= Duration::from_millis(800),
        "let go after {after:?}"
    );
    stream
        .set_read_timeout(Some(Duration::from_secs(6)))
        .unwrap();
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    let out = String::from_utf8_lossy(&out);
    assert!(out.starts_with("HTTP/1.1 103 Early Hints\r\n"), "{out}");
    assert!(!out.contains("200 OK"), "{out}");
}

/// The response heads curl received, as it prints them (`-D -`), for `args`.
fn curl_heads(args: &[&str]) -> String {
    let output = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "10", "-D", "-", "-o", "/dev/null"])
        .args(args)
        .output()
        .expect("run curl");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn early_hints_and_processing_reach_an_http2_client_before_the_final_response() {
    let upstream = Upstream::start(Behavior::RawThenClose(HINTS_THEN_OK.to_vec()));
    let gh = start(&Config::proxy_to([upstream.addr()]));
    let heads = curl_heads(&[
        "--http2-prior-knowledge",
        "-H",
        "X-Request-Id: hints-h2c",
        &format!("http://{}/page", gh.addr()),
    ]);
    assert!(
        heads.starts_with(
            "HTTP/2 103 \r\nlink: </style.css>; rel=preload; as=style\r\n\r\nHTTP/2 102 \r\n\r\nHTTP/2 200 \r\n"
        ),
        "{heads}"
    );
    assert!(!heads.to_ascii_lowercase().contains("x-hop"), "{heads}");
    let record = gh.access_log("hints-h2c");
    assert_eq!(record["status"], 200, "{record}");
}

/// The response heads curl receives over TLS (`protocol`: `--http2` or `--http1.1`) from
/// gatehouse in front of an upstream that sends 103 and 102 before its 200.
fn hints_over_tls(protocol: &str) -> String {
    let upstream = Upstream::start(Behavior::RawThenClose(HINTS_THEN_OK.to_vec()));
    let ca = TestCa::new("hints CA");
    let cert = ca.leaf(&["hints.test"]);
    let (cert_pem, key_pem) = cert.write_pem();
    let ca_pem = ca.write_pem();
    let gh = start(&Config::proxy_to([upstream.addr()]).server(
        "tls",
        tls_listeners([
            TlsListener::new(["127.0.0.1:0"]).certificate(cert_pem.path(), key_pem.path()),
        ]),
    ));
    let port = gh.https_addr().port();
    curl_heads(&[
        protocol,
        "--cacert",
        &ca_pem.path().display().to_string(),
        "--resolve",
        &format!("hints.test:{port}:127.0.0.1"),
        &format!("https://hints.test:{port}/page"),
    ])
}

#[test]
fn early_hints_reach_an_http2_client_over_tls() {
    let heads = hints_over_tls("--http2");
    assert!(
        heads.starts_with("HTTP/2 103 \r\nlink: </style.css>; rel=preload; as=style\r\n\r\n"),
        "{heads}"
    );
    assert!(heads.contains("\r\n\r\nHTTP/2 200 \r\n"), "{heads}");
}

#[test]
fn early_hints_reach_an_http11_client_over_tls() {
    let heads = hints_over_tls("--http1.1");
    assert!(
        heads.starts_with(
            "HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload; as=style\r\n\r\nHTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 200 OK\r\n"
        ),
        "{heads}"
    );
}

/// An HTTP/2 client (the `h2` crate) sees the 103 while the upstream still works on the final
/// response: the hint is relayed as it arrives, not held back until the final response.
#[test]
fn an_early_hint_reaches_an_http2_client_while_the_upstream_is_still_working() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut buf = [0u8; 4096];
        let _ = conn.read(&mut buf);
        let _ = conn.write_all(b"HTTP/1.1 103 Early Hints\r\nLink: </a.js>; rel=preload\r\n\r\n");
        std::thread::sleep(Duration::from_millis(1500));
        let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        std::thread::sleep(Duration::from_millis(500));
    });
    let gh = start(&Config::proxy_to([addr]));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let tcp = tokio::net::TcpStream::connect(gh.addr()).await.unwrap();
        let (mut client, conn) = h2::client::handshake(tcp).await.unwrap();
        tokio::spawn(conn);
        let request = http::Request::get(format!("http://{}/", gh.addr()))
            .body(())
            .unwrap();
        let (mut response, _) = client.send_request(request, true).unwrap();
        let hint = tokio::time::timeout(
            Duration::from_millis(1000),
            std::future::poll_fn(|cx| response.poll_informational(cx)),
        )
        .await
        .expect("the hint arrives before the final response")
        .expect("an informational response")
        .unwrap();
        assert_eq!(hint.status(), 103);
        assert_eq!(hint.headers()["link"], "</a.js>; rel=preload");
        let response = tokio::time::timeout(Duration::from_secs(5), response)
            .await
            .expect("the final response")
            .unwrap();
        assert_eq!(response.status(), 200);
    });
}

#[test]
fn a_204_reaches_an_http2_client_without_content_length() {
    let upstream = Upstream::start(Behavior::RawThenClose(
        b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nX-App: 1\r\n\r\n".to_vec(),
    ));
    let gh = start(&Config::proxy_to([upstream.addr()]));
    let heads = curl_heads(&[
        "--http2-prior-knowledge",
        &format!("http://{}/empty", gh.addr()),
    ]);
    assert!(heads.starts_with("HTTP/2 204 \r\n"), "{heads}");
    assert!(heads.contains("x-app: 1\r\n"), "{heads}");
    assert!(!heads.contains("content-length"), "{heads}");
}

#[test]
fn a_flood_of_interim_responses_is_relayed_only_in_part() {
    // 40 hints before the final response: the first 16 are relayed, the rest read and dropped
    // (a client that does not read would otherwise have them all buffered for it).
    let mut raw = Vec::new();
    for n in 0..40 {
        raw.extend_from_slice(
            format!("HTTP/1.1 103 Early Hints\r\nLink: </{n}.js>\r\n\r\n").as_bytes(),
        );
    }
    raw.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    let upstream = Upstream::start(Behavior::RawThenClose(raw));
    let gh = start(&Config::proxy_to([upstream.addr()]));
    let out = exchange(
        &gh,
        "GET /flood HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(out.matches("HTTP/1.1 103 ").count(), 16, "{out}");
    assert!(
        out.contains("</15.js>") && !out.contains("</16.js>"),
        "{out}"
    );
    assert!(
        out.contains("HTTP/1.1 200 OK") && out.ends_with("ok"),
        "{out}"
    );
}
