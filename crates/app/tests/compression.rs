//! Response compression (`[compress]`, `[route.compress]`) through the real binary: the coding
//! chosen from `Accept-Encoding` (q-values, `*`, `identity`) and the server's order, every
//! response that is never compressed, `Vary` and `ETag`, the cache serving one stored copy in
//! every coding, `decompress`, server-sent events that still stream, a 64 MiB body with the
//! proxy's memory flat, HTTP/2 (h2c and TLS), gatehouse's own error pages, and the metrics.
//!
//! Bodies are decoded here (flate2, brotli, zstd) or by the real `curl --compressed`, and
//! compared byte for byte with what the upstream sent.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use gatehouse_testkit::https::{TlsListener, curl_any, tls_listeners};
use gatehouse_testkit::metrics::{parse_samples, sum};
use gatehouse_testkit::tls::TestCa;
use gatehouse_testkit::{Config, Gatehouse, RawResponse, Reply, Req, Upstream, curl};

fn start(config: &Config) -> Gatehouse {
    Gatehouse::start(Path::new(env!("CARGO_BIN_EXE_gatehouse")), &config.toml())
}

/// One route to `origin` with `[route.compress]` (`min_size` lowered so small bodies count).
fn compressing(origin: &Upstream) -> Config {
    Config::proxy_to([origin.addr()]).route_section("compress", "min_size", "256B")
}

/// A compressible page of `len` bytes, different on every line.
fn page(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 64);
    let mut i = 0u64;
    while out.len() < len {
        out.extend_from_slice(
            format!("<p>line {i}: the quick brown fox {}</p>\n", i % 13).as_bytes(),
        );
        i += 1;
    }
    out.truncate(len);
    out
}

fn html_origin(body: &[u8]) -> Upstream {
    Upstream::serve(
        Reply::ok(body.to_vec())
            .header("Content-Type", "text/html; charset=utf-8")
            .header("ETag", "\"v1\""),
    )
}

fn send(gh: &Gatehouse, req: &Req) -> RawResponse {
    let response = req.send(gh.addr());
    assert!(response.complete, "{req:?}: {response:#?}");
    response
}

fn get_with(gh: &Gatehouse, target: &str, accept_encoding: &str) -> RawResponse {
    send(
        gh,
        &Req::get(target).header("Accept-Encoding", accept_encoding),
    )
}

/// The body decoded from `coding` (as named by `Content-Encoding`).
fn decode(coding: &str, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match coding {
        "gzip" => {
            flate2::read::GzDecoder::new(body)
                .read_to_end(&mut out)
                .expect("gzip decodes");
        }
        "br" => {
            brotli::Decompressor::new(body, 4096)
                .read_to_end(&mut out)
                .expect("br decodes");
        }
        "zstd" => {
            zstd::stream::read::Decoder::new(body)
                .unwrap()
                .read_to_end(&mut out)
                .expect("zstd decodes");
        }
        other => panic!("unexpected coding {other:?}"),
    }
    out
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

fn brotli_encode(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut writer = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
        writer.write_all(data).unwrap();
    }
    out
}

fn zstd_encode(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 3).unwrap()
}

/// Asserts the response is `original` coded with `coding`, with the fields that go with it.
fn assert_coded(response: &RawResponse, coding: &str, original: &[u8]) {
    assert_eq!(response.status, 200, "{response:#?}");
    assert_eq!(
        response.header("content-encoding"),
        Some(coding),
        "{response:#?}"
    );
    assert_eq!(response.header("content-length"), None, "{response:#?}");
    assert_eq!(response.header("vary"), Some("Accept-Encoding"));
    assert_eq!(response.header("etag"), Some("W/\"v1\""));
    assert!(
        response.body.len() < original.len() / 2,
        "{coding}: {} bytes",
        response.body.len()
    );
    let decoded = decode(coding, &response.body);
    assert!(
        decoded == original,
        "{coding}: the decoded body differs from the original"
    );
}

/// Asserts the response is the upstream's, untouched.
fn assert_plain(response: &RawResponse, original: &[u8]) {
    assert_eq!(response.header("content-encoding"), None, "{response:#?}");
    assert!(response.body == original, "the body is not the original");
}

// --- negotiation ---

#[test]
fn each_coding_decodes_to_the_original_byte_for_byte() {
    let body = page(100_000);
    let origin = html_origin(&body);
    let gh = start(&compressing(&origin));
    for coding in ["gzip", "br", "zstd"] {
        let response = get_with(&gh, "/page", coding);
        assert_coded(&response, coding, &body);
        assert_eq!(response.header("transfer-encoding"), Some("chunked"));
        // The access record is written once the coded body ended; it counts the upstream's bytes.
        let record = gh.access_log(response.request_id());
        assert_eq!(
            (&record["status"], &record["failure"], &record["bytes"]),
            (&200.into(), &"-".into(), &body.len().into()),
            "{record}"
        );
    }
    // The upstream saw the client's Accept-Encoding as it was sent.
    let seen = origin.requests();
    assert_eq!(seen.last().unwrap().header("accept-encoding"), Some("zstd"));

    // The real curl: it asks for every coding it knows and decodes what it gets.
    let url = format!("http://{}/page", gh.addr());
    let run = curl(&["--compressed", &url]);
    assert_eq!(
        (run.exit_code, run.status()),
        (Some(0), 200),
        "{}",
        run.stderr
    );
    assert_eq!(run.headers().get("content-encoding"), Some("zstd"));
    assert!(run.body == body, "curl --compressed decoded something else");
    for coding in ["gzip", "br", "zstd"] {
        let run = curl(&[
            "--compressed",
            "-H",
            &format!("Accept-Encoding: {coding}"),
            &url,
        ]);
        assert_eq!(run.exit_code, Some(0), "{}", run.stderr);
        assert_eq!(run.headers().get("content-encoding"), Some(coding));
        assert!(run.body == body, "curl decoded {coding} to something else");
    }
}

#[test]
fn an_http10_client_gets_the_coded_body_until_the_connection_closes() {
    let body = page(30_000);
    let origin = html_origin(&body);
    let gh = start(&compressing(&origin));
    let response = gatehouse_testkit::send_raw(
        gh.addr(),
        b"GET /old HTTP/1.0\r\nHost: app.test\r\nAccept-Encoding: gzip\r\n\r\n",
    )
    .expect("a response");
    // The raw client calls an until-close body "closed" whatever it holds; the gzip trailer
    // (CRC and length, checked when decoding) is what shows it is whole.
    assert_eq!(response.framing, gatehouse_testkit::Framing::UntilClose);
    assert_eq!(response.header("connection"), Some("close"));
    assert_coded(&response, "gzip", &body);
}

#[test]
fn a_reload_switches_compression_on_and_off() {
    let body = page(10_000);
    let origin = html_origin(&body);
    let plain = Config::proxy_to([origin.addr()]);
    let gh = start(&plain);
    assert_plain(&get_with(&gh, "/", "gzip"), &body);
    gh.rewrite_config(&compressing(&origin).toml());
    gh.reload().expect("the reload is taken");
    assert_coded(&get_with(&gh, "/", "gzip"), "gzip", &body);
    gh.rewrite_config(&plain.toml());
    gh.reload().expect("the reload is taken");
    assert_plain(&get_with(&gh, "/", "gzip"), &body);
}

#[test]
fn q_values_and_the_configured_order_choose_the_coding() {
    let body = page(20_000);
    let origin = html_origin(&body);
    let gh = start(&compressing(&origin));
    for (accept, expected) in [
        ("gzip, br, zstd", Some("zstd")),
        ("gzip, br", Some("br")),
        ("gzip;q=1.0, br;q=0.5, zstd;q=0.2", Some("gzip")),
        ("zstd;q=0, br;q=0.001, gzip;q=0", Some("br")),
        ("*", Some("zstd")),
        ("*, zstd;q=0", Some("br")),
        ("*;q=0.5, gzip", Some("gzip")),
        ("GZIP", Some("gzip")),
        ("x-gzip", Some("gzip")),
        ("deflate", None),
        ("identity", None),
        ("gzip;q=0", None),
        ("gzip;q=0.4, identity;q=0.5", None),
        ("*;q=0", None),
        ("gzip;q=nonsense, br;q=2", None),
        (";;;, ,=,q=1", None),
        ("", None),
    ] {
        let response = get_with(&gh, "/", accept);
        match expected {
            Some(coding) => assert_coded(&response, coding, &body),
            None => {
                assert_plain(&response, &body);
                assert_eq!(
                    response.header("vary"),
                    Some("Accept-Encoding"),
                    "{accept:?}"
                );
                assert_eq!(response.header("etag"), Some("\"v1\""), "{accept:?}");
            }
        }
    }
    // Without Accept-Encoding: as it came (with Vary, since other clients get it coded).
    let plain = send(&gh, &Req::get("/"));
    assert_plain(&plain, &body);
    assert_eq!(plain.header("content-length"), Some("20000"));

    // The server's order decides among codings of equal weight.
    let gh =
        start(&compressing(&origin).route_section("compress", "encodings", vec!["gzip", "br"]));
    assert_coded(&get_with(&gh, "/", "zstd, br, gzip"), "gzip", &body);
    assert_coded(&get_with(&gh, "/", "zstd, br"), "br", &body);
    assert_plain(&get_with(&gh, "/", "zstd"), &body);
}

// --- what is never compressed ---

#[test]
fn responses_that_are_never_compressed() {
    let body = page(8_000);
    let origin = html_origin(&body);
    let coded_body = gzip(&body);
    origin.set_route(
        "/encoded",
        gatehouse_testkit::Behavior::Serve(
            Reply::ok(coded_body.clone())
                .header("Content-Type", "text/html")
                .header("Content-Encoding", "gzip"),
        ),
    );
    origin.set_route(
        "/partial",
        gatehouse_testkit::Behavior::Serve(
            Reply::new(206, body[..1000].to_vec())
                .header("Content-Type", "text/html")
                .header("Content-Range", "bytes 0-999/8000"),
        ),
    );
    origin.set_route(
        "/no-transform",
        gatehouse_testkit::Behavior::Serve(
            Reply::ok(body.clone())
                .header("Content-Type", "text/html")
                .header("Cache-Control", "max-age=10, no-transform"),
        ),
    );
    origin.set_route(
        "/png",
        gatehouse_testkit::Behavior::Serve(
            Reply::ok(body.clone()).header("Content-Type", "image/png"),
        ),
    );
    origin.set_route(
        "/untyped",
        gatehouse_testkit::Behavior::Serve(Reply::ok(body.clone())),
    );
    origin.set_route(
        "/small",
        gatehouse_testkit::Behavior::Serve(
            Reply::ok(body[..255].to_vec()).header("Content-Type", "text/html"),
        ),
    );
    origin.set_route(
        "/empty",
        gatehouse_testkit::Behavior::Serve(Reply::new(204, Vec::new())),
    );
    origin.set_route(
        "/not-modified",
        gatehouse_testkit::Behavior::Serve(Reply::new(304, Vec::new()).header("ETag", "\"v1\"")),
    );
    let gh = start(&compressing(&origin));
    let all = "gzip, br, zstd";

    let encoded = get_with(&gh, "/encoded", all);
    assert_eq!(encoded.header("content-encoding"), Some("gzip"));
    assert!(
        encoded.body == coded_body,
        "an encoded body was coded again"
    );

    let partial = get_with(&gh, "/partial", all);
    assert_eq!(partial.status, 206);
    assert_plain(&partial, &body[..1000]);
    assert_eq!(partial.header("content-range"), Some("bytes 0-999/8000"));

    let kept = get_with(&gh, "/no-transform", all);
    assert_plain(&kept, &body);
    assert_eq!(kept.header("vary"), None);

    let png = get_with(&gh, "/png", all);
    assert_plain(&png, &body);
    assert_eq!(png.header("vary"), None);
    assert_plain(&get_with(&gh, "/untyped", all), &body);

    let small = get_with(&gh, "/small", all);
    assert_plain(&small, &body[..255]);
    assert_eq!(small.header("content-length"), Some("255"));

    let empty = get_with(&gh, "/empty", all);
    assert_eq!(
        (empty.status, empty.header("content-encoding")),
        (204, None)
    );
    let not_modified = get_with(&gh, "/not-modified", all);
    assert_eq!(
        (not_modified.status, not_modified.header("content-encoding")),
        (304, None)
    );

    // HEAD: the head as a GET without coding would have it.
    let head = send(
        &gh,
        &Req::new("HEAD", "/page").header("Accept-Encoding", all),
    );
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-encoding"), None);
    assert_eq!(head.header("content-length"), Some("8000"));
    assert!(head.body.is_empty());

    // An upgrade answered with 101 is a tunnel, never a coded body.
    let ws = gatehouse_testkit::ws_origin::WsOrigin::start();
    let gh_ws = start(&Config::proxy_to([ws.addr()]).route_section("compress", "min_size", 0));
    let (_client, switched) = gatehouse_testkit::ws_origin::ws_connect(
        gh_ws.addr(),
        "/ws",
        &[("Accept-Encoding", "gzip, br, zstd")],
    )
    .expect("the upgrade goes through");
    assert_eq!(switched.status(), 101);
    assert!(switched.headers().get("content-encoding").is_none());
}

#[test]
fn gatehouse_error_pages_are_sent_as_they_are() {
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let gh = start(&Config::proxy_to([closed]).route_section("compress", "min_size", 0));
    let response = send(
        &gh,
        &Req::get("/").header("Accept-Encoding", "gzip, br, zstd"),
    );
    assert_eq!(response.status, 502);
    assert_eq!(response.header("content-encoding"), None);
    assert!(response.text().contains("502"), "{}", response.text());
}

#[test]
fn vary_is_merged_and_a_strong_etag_made_weak() {
    let body = page(4_000);
    let origin = Upstream::serve(
        Reply::ok(body.clone())
            .header("Content-Type", "application/json")
            .header("Vary", "Origin")
            .header("ETag", "\"abc\""),
    );
    let gh = start(&compressing(&origin));
    let coded = get_with(&gh, "/", "gzip");
    assert_eq!(coded.header("content-encoding"), Some("gzip"));
    assert_eq!(
        coded.headers.get_all("vary"),
        vec!["Origin, Accept-Encoding"]
    );
    assert_eq!(coded.header("etag"), Some("W/\"abc\""));
    let plain = send(&gh, &Req::get("/"));
    assert_eq!(
        plain.headers.get_all("vary"),
        vec!["Origin, Accept-Encoding"]
    );
    assert_eq!(plain.header("etag"), Some("\"abc\""));

    // A weak ETag stays as it is; a Vary that names Accept-Encoding already is not repeated.
    origin.set_behavior(gatehouse_testkit::Behavior::Serve(
        Reply::ok(body.clone())
            .header("Content-Type", "text/plain")
            .header("Vary", "accept-encoding")
            .header("ETag", "W/\"weak\""),
    ));
    let coded = get_with(&gh, "/", "br");
    assert_eq!(coded.headers.get_all("vary"), vec!["accept-encoding"]);
    assert_eq!(coded.header("etag"), Some("W/\"weak\""));
    assert_eq!(decode("br", &coded.body), body);
}

// --- the cache ---

#[test]
fn one_stored_copy_is_served_in_every_coding_with_one_upstream_request() {
    let body = page(50_000);
    let origin = Upstream::serve(
        Reply::ok(body.clone())
            .header("Content-Type", "text/html")
            .header("Cache-Control", "max-age=60")
            .header("ETag", "\"v1\""),
    );
    let gh = start(&compressing(&origin).route_section("cache", "mode", "full"));
    let first = get_with(&gh, "/cached", "gzip");
    assert_coded(&first, "gzip", &body);
    assert!(first.cache_status().contains("stored"), "{first:#?}");
    let second = get_with(&gh, "/cached", "br");
    assert_coded(&second, "br", &body);
    assert!(second.cache_status().contains("hit"), "{second:#?}");
    let third = send(&gh, &Req::get("/cached"));
    assert_plain(&third, &body);
    assert_eq!(third.header("content-length"), Some("50000"));
    assert_eq!(third.header("etag"), Some("\"v1\""));
    assert!(third.cache_status().contains("hit"), "{third:#?}");
    let fourth = get_with(&gh, "/cached", "zstd");
    assert_coded(&fourth, "zstd", &body);
    assert_eq!(
        origin.requests_to("/cached").len(),
        1,
        "every coding came from the one stored copy"
    );

    // A conditional request with the weak validator of a coded copy is answered from it.
    let revalidated = send(
        &gh,
        &Req::get("/cached")
            .header("Accept-Encoding", "gzip")
            .header("If-None-Match", "W/\"v1\""),
    );
    assert_eq!(revalidated.status, 304, "{revalidated:#?}");
    assert_eq!(revalidated.header("content-encoding"), None);
    assert_eq!(origin.requests_to("/cached").len(), 1);
}

#[test]
fn an_upstream_that_compresses_itself_keeps_the_cache_variants() {
    let body = page(30_000);
    let coded = gzip(&body);
    let origin = Upstream::serve(
        Reply::ok(coded.clone())
            .header("Content-Type", "text/html")
            .header("Content-Encoding", "gzip")
            .header("Vary", "Accept-Encoding")
            .header("Cache-Control", "max-age=60"),
    );
    let gh = start(&compressing(&origin).route_section("cache", "mode", "full"));
    let first = get_with(&gh, "/v", "gzip");
    assert!(first.body == coded, "the upstream's gzip passes untouched");
    let again = get_with(&gh, "/v", "gzip");
    assert!(again.cache_status().contains("hit"), "{again:#?}");
    assert!(again.body == coded);
    // Another Accept-Encoding is another variant: it goes upstream.
    let other = get_with(&gh, "/v", "br");
    assert!(other.cache_status().contains("fwd="), "{other:#?}");
    assert_eq!(origin.requests_to("/v").len(), 2);
}

// --- decompress ---

#[test]
fn decompress_decodes_for_clients_that_do_not_accept_the_coding_only_when_configured() {
    let body = page(40_000);
    let origin = Upstream::hello();
    for (path, coding, coded) in [
        ("/gzip", "gzip", gzip(&body)),
        ("/br", "br", brotli_encode(&body)),
        ("/zstd", "zstd", zstd_encode(&body)),
    ] {
        origin.set_route(
            path,
            gatehouse_testkit::Behavior::Serve(
                Reply::ok(coded)
                    .header("Content-Type", "text/html")
                    .header("Content-Encoding", coding)
                    .header("ETag", "\"z\""),
            ),
        );
    }
    let off = start(&compressing(&origin));
    let passed = send(&off, &Req::get("/gzip"));
    assert_eq!(passed.header("content-encoding"), Some("gzip"));
    assert_eq!(decode("gzip", &passed.body), body);

    let on = start(&compressing(&origin).route_section("compress", "decompress", true));
    for coding in ["gzip", "br", "zstd"] {
        let path = format!("/{coding}");
        for req in [
            Req::get(&path),
            Req::get(&path).header("Accept-Encoding", "identity"),
        ] {
            let decoded = send(&on, &req);
            assert_plain(&decoded, &body);
            assert_eq!(decoded.header("content-length"), None);
            assert_eq!(decoded.header("etag"), Some("W/\"z\""));
            assert_eq!(decoded.header("vary"), Some("Accept-Encoding"));
        }
        // A client that takes the coding gets the upstream's bytes.
        let kept = get_with(&on, &path, coding);
        assert_eq!(kept.header("content-encoding"), Some(coding));
        assert_eq!(decode(coding, &kept.body), body);
    }
    // A client that accepts another coding only gets the plain body (no re-encoding).
    let other = get_with(&on, "/br", "gzip");
    assert_plain(&other, &body);

    // A corrupt compressed body aborts the response: never a clean, wrong body.
    origin.set_route(
        "/broken",
        gatehouse_testkit::Behavior::Serve(
            Reply::ok(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xffnot deflate at all".to_vec())
                .header("Content-Type", "text/html")
                .header("Content-Encoding", "gzip"),
        ),
    );
    let broken = Req::get("/broken").send(on.addr());
    assert!(!broken.complete, "{broken:#?}");
    on.expect_aborted(&broken, "http_response_content_coding");
}

// --- streaming ---

/// A one-connection origin: a chunked `text/event-stream` that sends one event, waits for
/// `go`, then sends another and ends.
fn event_origin(go: mpsc::Receiver<()>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        read_head(&mut stream);
        let chunk = |s: &str| format!("{:x}\r\n{s}\r\n", s.len());
        let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\
                    Transfer-Encoding: chunked\r\n\r\n";
        let _ = stream.write_all(format!("{head}{}", chunk("data: one\n\n")).as_bytes());
        let _ = go.recv_timeout(Duration::from_secs(20));
        let _ = stream.write_all(format!("{}0\r\n\r\n", chunk("data: two\n\n")).as_bytes());
    });
    addr
}

/// Reads a request head (a GET: nothing follows it); returns its first line.
fn read_head(stream: &mut TcpStream) -> String {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut first = String::new();
    let _ = reader.read_line(&mut first);
    let mut line = String::new();
    while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
        if line == "\r\n" {
            break;
        }
        line.clear();
    }
    first
}

#[test]
fn server_sent_events_stream_through_every_coding() {
    for coding in ["gzip", "br", "zstd"] {
        let (go, wait) = mpsc::channel();
        let origin = event_origin(wait);
        let gh = start(&Config::proxy_to([origin]).route_section("compress", "min_size", 0));
        let mut child = Command::new("curl")
            .args([
                "-sSN",
                "--max-time",
                "20",
                "--compressed",
                "-D",
                "/dev/stderr",
            ])
            .args(["-H", &format!("Accept-Encoding: {coding}")])
            .arg(format!("http://{}/events", gh.addr()))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let (lines, got) = mpsc::channel();
        thread::spawn(move || {
            let mut line = String::new();
            while out.read_line(&mut line).is_ok_and(|n| n > 0) {
                let _ = lines.send(line.clone());
                line.clear();
            }
        });
        // The first event arrives while the origin still holds the second.
        let first = got.recv_timeout(Duration::from_secs(5));
        assert_eq!(
            first.as_deref().ok(),
            Some("data: one\n"),
            "{coding}: the first event was held back"
        );
        go.send(()).unwrap();
        let rest: Vec<String> = got.iter().collect();
        assert_eq!(rest.concat(), "\ndata: two\n\n", "{coding}");
        let status = child.wait().unwrap();
        let mut head = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut head)
            .unwrap();
        assert!(status.success(), "{coding}: {head}");
        assert!(
            head.to_ascii_lowercase()
                .contains(&format!("content-encoding: {coding}")),
            "{coding}: {head}"
        );
    }
}

/// An origin that streams `total` bytes (1 MiB for `/warm`, a quarter for `/quarter`) of
/// numbered lines, chunked,
/// generated as it goes, one connection at a time.
fn big_origin(total: usize) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for stream in listener.incoming().take(8) {
            let Ok(stream) = stream else { return };
            stream_big(stream, total);
        }
    });
    addr
}

fn stream_big(mut stream: TcpStream, total: usize) {
    {
        let first = read_head(&mut stream);
        let total = if first.starts_with("GET /warm") {
            1024 * 1024
        } else if first.starts_with("GET /quarter") {
            total / 4
        } else {
            total
        };
        let head =
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n";
        if stream.write_all(head.as_bytes()).is_err() {
            return;
        }
        let mut sent = 0;
        while sent < total {
            let piece = big_piece(sent, (total - sent).min(256 * 1024));
            let mut chunk = format!("{:x}\r\n", piece.len()).into_bytes();
            chunk.extend_from_slice(&piece);
            chunk.extend_from_slice(b"\r\n");
            if stream.write_all(&chunk).is_err() {
                return;
            }
            sent += piece.len();
        }
        let _ = stream.write_all(b"0\r\n\r\n");
    }
}

/// Bytes `offset..offset + len` of the big body: numbered lines, so a lost or repeated piece
/// shows.
fn big_piece(offset: usize, len: usize) -> Vec<u8> {
    const LINE: usize = 64;
    let mut out = Vec::with_capacity(len + LINE);
    let mut line = offset / LINE;
    let skip = offset % LINE;
    while out.len() < len + skip {
        // A token that differs on every line keeps the text from compressing to nothing.
        let token = (line as u64)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .rotate_left(17);
        let mut text = format!("{line:>12} {token:016x} of the large streamed body");
        text.push_str(&" ".repeat(LINE - 1 - text.len()));
        text.push('\n');
        out.extend_from_slice(text.as_bytes());
        line += 1;
    }
    out.drain(..skip);
    out.truncate(len);
    out
}

/// `VmHWM` and `VmRSS` of a process, in KiB.
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

#[test]
fn a_64_mib_body_is_compressed_with_flat_memory() {
    const TOTAL: usize = 64 * 1024 * 1024;
    assert_eq!(big_piece(0, 64).len(), 64);
    assert_eq!(big_piece(30, 100), big_piece(0, 130)[30..].to_vec());
    let origin = big_origin(TOTAL);
    let gh = start(&Config::proxy_to([origin]).route_section("compress", "min_size", 0));
    // brotli gets a quarter of the body: in a debug build its generic code runs unoptimised
    // (about 2.5 MB/s here; 50 MB/s in a release build), and 16 MiB is already far more than
    // what could hide in memory.
    let codings = [("zstd", TOTAL), ("gzip", TOTAL), ("br", TOTAL / 4)];
    // Warm up: the runtime, the connections and an encoder of each kind were allocated once.
    for (coding, _) in codings {
        let warm = curl(&[
            "--compressed",
            "-H",
            &format!("Accept-Encoding: {coding}"),
            &format!("http://{}/warm", gh.addr()),
        ]);
        assert_eq!(
            (warm.exit_code, warm.body.len()),
            (Some(0), 1024 * 1024),
            "{}",
            warm.stderr
        );
    }
    let (hwm_before, rss_before) = memory_kib(gh.pid());
    for (coding, total) in codings {
        let path = if total == TOTAL { "/big" } else { "/quarter" };
        let out = gatehouse_testkit::TempFile::new("gatehouse-big", ".txt");
        let started = Instant::now();
        let output = Command::new("curl")
            .args(["-sS", "--max-time", "120", "--compressed", "-o"])
            .arg(out.path())
            .args(["-w", "%{size_download} %{http_code}"])
            .args(["-H", &format!("Accept-Encoding: {coding}")])
            .arg(format!("http://{}{path}", gh.addr()))
            .output()
            .unwrap();
        let (hwm_after, rss_after) = memory_kib(gh.pid());
        let written = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "{coding}: {written} {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let mut fields = written.split_whitespace();
        let downloaded: usize = fields.next().unwrap().parse().unwrap();
        assert_eq!(fields.next(), Some("200"));
        assert!(
            downloaded < total / 2,
            "{coding}: only {downloaded} of {total} saved by compression"
        );
        let received = std::fs::read(out.path()).unwrap();
        assert_eq!(received.len(), total, "{coding}");
        for (i, piece) in received.chunks(4 * 1024 * 1024).enumerate() {
            assert!(
                piece == big_piece(i * 4 * 1024 * 1024, piece.len()).as_slice(),
                "{coding}: piece {i} of the decoded body differs"
            );
        }
        let grew = hwm_after.saturating_sub(hwm_before);
        eprintln!(
            "{coding}: {} MiB in {:?}, {downloaded} bytes on the wire; gatehouse VmHWM {hwm_before} -> {hwm_after} KiB, VmRSS {rss_before} -> {rss_after} KiB",
            total >> 20,
            started.elapsed()
        );
        assert!(
            grew < 8 * 1024,
            "{coding}: peak memory grew by {grew} KiB while compressing {total} bytes"
        );
    }
}

#[test]
fn a_decompressed_bomb_streams_with_flat_memory() {
    // 256 MiB of zeros is a few KiB of zstd: decoded a buffer at a time, never all at once.
    const TOTAL: u64 = 256 * 1024 * 1024;
    let bomb = zstd::stream::encode_all(std::io::repeat(0).take(TOTAL), 3).unwrap();
    assert!(bomb.len() < 64 * 1024, "{}", bomb.len());
    let origin = Upstream::serve(
        Reply::ok(bomb)
            .header("Content-Type", "application/octet-stream")
            .header("Content-Encoding", "zstd"),
    );
    let gh = start(&compressing(&origin).route_section("compress", "decompress", true));
    let url = format!("http://{}/bomb", gh.addr());
    let warm = curl(&["-H", "Accept-Encoding: identity", &url]);
    assert_eq!(warm.exit_code, Some(0), "{}", warm.stderr);
    let (hwm_before, _) = memory_kib(gh.pid());
    let output = Command::new("curl")
        .args(["-sS", "--max-time", "120", "-o", "/dev/null"])
        .args(["-w", "%{size_download} %{http_code}", &url])
        .output()
        .unwrap();
    let (hwm_after, _) = memory_kib(gh.pid());
    let written = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{written}");
    assert_eq!(written, format!("{TOTAL} 200"));
    let grew = hwm_after.saturating_sub(hwm_before);
    eprintln!("256 MiB decoded: gatehouse VmHWM {hwm_before} -> {hwm_after} KiB");
    assert!(
        grew < 8 * 1024,
        "peak memory grew by {grew} KiB decoding 256 MiB"
    );
}

// --- HTTP/2 and TLS ---

#[test]
fn h2c_and_tls_responses_are_compressed_too() {
    let body = page(60_000);
    let origin = html_origin(&body);
    let ca = TestCa::new("compression test CA");
    let leaf = ca.leaf(&["c.test"]);
    let (cert, key) = leaf.write_pem();
    let ca_pem = ca.write_pem();
    let gh = start(&compressing(&origin).server(
        "tls",
        tls_listeners([TlsListener::new(["127.0.0.1:0"]).certificate(cert.path(), key.path())]),
    ));
    for coding in ["gzip", "br", "zstd"] {
        let h2 = curl_any(&[
            "--http2-prior-knowledge",
            "--compressed",
            "-H",
            &format!("Accept-Encoding: {coding}"),
            &format!("http://{}/h2", gh.addr()),
        ]);
        assert_eq!(
            (h2.exit_code, h2.http_version.as_str(), h2.status),
            (Some(0), "2", 200),
            "{h2:#?}"
        );
        assert_eq!(h2.headers.get("content-encoding"), Some(coding));
        assert_eq!(h2.headers.get("content-length"), None);
        assert!(h2.body == body, "h2c {coding}: decoded body differs");
    }
    let port = gh.https_addr().port();
    let resolve = format!("c.test:{port}:127.0.0.1");
    let url = format!("https://c.test:{port}/tls");
    for version in ["--http2", "--http1.1"] {
        let run = curl_any(&[
            version,
            "--compressed",
            "--cacert",
            ca_pem.path().to_str().unwrap(),
            "--resolve",
            &resolve,
            &url,
        ]);
        assert_eq!((run.exit_code, run.status), (Some(0), 200), "{run:#?}");
        assert_eq!(
            run.headers.get("content-encoding"),
            Some("zstd"),
            "{version}"
        );
        assert!(run.body == body, "TLS {version}: decoded body differs");
    }
}

// --- configuration and metrics ---

#[test]
fn compress_table_applies_to_every_route_and_a_route_can_opt_out() {
    let body = page(10_000);
    let origin = html_origin(&body);
    let config = Config::proxy_to([origin.addr()])
        .section("compress", "min_size", "1KiB")
        .route(None, "/plain", "app")
        .route_section("compress", "enabled", false);
    let gh = start(&config);
    assert_coded(&get_with(&gh, "/x", "gzip"), "gzip", &body);
    let opted_out = get_with(&gh, "/plain/x", "gzip");
    assert_plain(&opted_out, &body);
    assert_eq!(opted_out.header("vary"), None);

    // Without any compress table nothing is compressed (the default is off).
    let gh = start(&Config::proxy_to([origin.addr()]));
    let plain = get_with(&gh, "/", "gzip, br, zstd");
    assert_plain(&plain, &body);
    assert_eq!(plain.header("vary"), None);
}

#[test]
fn metrics_count_bytes_per_encoding_and_skips_by_reason() {
    let body = page(100_000);
    let origin = html_origin(&body);
    origin.set_route(
        "/png",
        gatehouse_testkit::Behavior::Serve(
            Reply::ok(body.clone()).header("Content-Type", "image/png"),
        ),
    );
    let gh = start(&compressing(&origin).server("admin", "127.0.0.1:0"));
    let mut wire = 0;
    for _ in 0..2 {
        wire += get_with(&gh, "/a", "gzip").body.len();
    }
    let br = get_with(&gh, "/a", "br").body.len();
    let _ = send(&gh, &Req::get("/a"));
    let _ = get_with(&gh, "/png", "gzip");
    let _ = send(
        &gh,
        &Req::new("HEAD", "/a").header("Accept-Encoding", "gzip"),
    );

    let scrape = Req::get("/metrics").send(gh.admin_addr());
    let samples = parse_samples(&scrape.text());
    let route = [("route", "/")];
    let count = |name: &str, labels: &[(&str, &str)]| {
        let mut all = route.to_vec();
        all.extend_from_slice(labels);
        sum(&samples, name, &all).0
    };
    assert_eq!(
        count(
            "gatehouse_compressed_responses_total",
            &[("encoding", "gzip")]
        ),
        2.0
    );
    assert_eq!(
        count(
            "gatehouse_compressed_responses_total",
            &[("encoding", "br")]
        ),
        1.0
    );
    assert_eq!(
        count(
            "gatehouse_compress_bytes_total",
            &[("encoding", "gzip"), ("side", "in")]
        ),
        2.0 * body.len() as f64
    );
    assert_eq!(
        count(
            "gatehouse_compress_bytes_total",
            &[("encoding", "gzip"), ("side", "out")]
        ),
        wire as f64
    );
    assert_eq!(
        count(
            "gatehouse_compress_bytes_total",
            &[("encoding", "br"), ("side", "out")]
        ),
        br as f64
    );
    assert_eq!(
        count(
            "gatehouse_compress_skipped_total",
            &[("reason", "not_accepted")]
        ),
        1.0
    );
    assert_eq!(
        count("gatehouse_compress_skipped_total", &[("reason", "type")]),
        1.0
    );
    assert_eq!(
        count("gatehouse_compress_skipped_total", &[("reason", "head")]),
        1.0
    );
}
