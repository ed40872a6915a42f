//! Responses that pass through (origin errors, headers both ways, keep-alive, routing, bodies)
//! and the representation of gatehouse's own error responses (Accept, HEAD, Proxy-Status modes).

use std::path::Path;
use std::time::Duration;

use gatehouse_testkit::{
    Behavior, Config, Gatehouse, Param, RawConn, Reply, Req, TempFile, Upstream, curl,
};

fn start(config: Config) -> Gatehouse {
    Gatehouse::start(Path::new(env!("CARGO_BIN_EXE_gatehouse")), &config.toml())
}

/// A gatehouse whose only server refuses connections, so every request fails the same way.
fn refusing(proxy_status: &str) -> Gatehouse {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    start(Config::proxy_to([format!("127.0.0.1:{port}")]).server("proxy_status", proxy_status))
}

fn is_generated_id(id: &str) -> bool {
    id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

// --- the origin's own errors ---

/// An origin 5xx goes through unchanged, with an inner proxy's Proxy-Status kept and ours
/// (`received-status`) appended last.
fn origin_error_passes_through(status: u16) {
    let body = format!("origin says {status}");
    let upstream = Upstream::serve(
        Reply::new(status, body.as_bytes())
            .header("Content-Type", "text/x-origin")
            .header("Retry-After", "7")
            .header("Proxy-Status", "inner; error=connection_timeout"),
    );
    let gh = start(Config::proxy_to([upstream.addr()]));
    let resp = Req::get("/").send(gh.addr());
    assert_eq!((resp.status, resp.text()), (status, body));
    assert_eq!(resp.header("content-type"), Some("text/x-origin"));
    assert_eq!(resp.header("retry-after"), Some("7"));
    assert_eq!(
        resp.header("cache-control"),
        None,
        "an origin response gets no Cache-Control of ours"
    );
    let ps = resp.proxy_status();
    assert_eq!(ps.members.len(), 2, "{ps:?}");
    assert_eq!(ps.members[0].name, "inner");
    assert_eq!(ps.members[0].error(), Some("connection_timeout"));
    let ours = &ps.members[1];
    assert_eq!(ours.name, "gatehouse");
    assert_eq!(
        ours.params,
        [(
            "received-status".to_owned(),
            Param::Integer(i64::from(status))
        )]
    );
    let access = gh.access_log(resp.request_id());
    assert_eq!(
        (
            &access["status"],
            &access["upstream_status"],
            &access["failure"]
        ),
        (&status.into(), &status.into(), &"-".into())
    );
}

#[test]
fn origin_500_passes_through() {
    origin_error_passes_through(500);
}

#[test]
fn origin_502_passes_through() {
    origin_error_passes_through(502);
}

#[test]
fn origin_503_passes_through() {
    origin_error_passes_through(503);
}

#[test]
fn origin_504_passes_through() {
    origin_error_passes_through(504);
}

#[test]
fn origin_error_member_in_full_mode_names_the_next_hop() {
    let upstream = Upstream::serve(Reply::new(503, "busy"));
    let gh = start(Config::proxy_to([upstream.addr()]).server("proxy_status", "full"));
    let resp = Req::get("/").send(gh.addr());
    let member = resp.proxy_status().last().clone();
    assert_eq!(
        member.keys(),
        ["received-status", "next-hop", "next-protocol"]
    );
    assert_eq!(member.integer("received-status"), Some(503));
    assert_eq!(
        member.string("next-hop"),
        Some(format!("app/{}", upstream.addr()).as_str())
    );
    assert_eq!(
        member.param("next-protocol"),
        Some(&Param::Token("http/1.1".to_owned()))
    );
}

#[test]
fn origin_success_gets_no_proxy_status() {
    let upstream = Upstream::hello();
    let gh = start(Config::proxy_to([upstream.addr()]).server("proxy_status", "full"));
    let resp = Req::get("/").send(gh.addr());
    assert_eq!((resp.status, resp.text().as_str()), (200, "hello"));
    assert!(!resp.headers.contains("proxy-status"), "{resp:#?}");
}

// --- gatehouse's own error responses ---

#[test]
fn error_body_follows_accept() {
    let gh = refusing("minimal");

    let html = Req::get("/").send(gh.addr());
    let id = format!("<code>{}</code>", html.request_id());
    html.assert_body(
        "text/html; charset=utf-8",
        &[
            "<title>502 Bad Gateway</title>",
            "<h1>502 Bad Gateway</h1>",
            &id,
        ],
    );

    let json = Req::get("/")
        .header("Accept", "application/json")
        .send(gh.addr());
    assert_eq!(
        json.header("content-type"),
        Some("application/problem+json")
    );
    let problem = json.json();
    assert_eq!(problem["type"], "urn:gatehouse:error:connection_refused");
    assert_eq!(problem["title"], "502 Bad Gateway");
    assert_eq!(problem["status"], 502);
    assert_eq!(
        problem["detail"],
        "The gateway could not connect to the upstream server: the connection was refused, so no server is listening at its address."
    );
    assert_eq!(problem["error"], "connection_refused");
    assert_eq!(problem["request_id"], json.request_id());
    assert_eq!(problem.get("details"), None, "details only in full mode");

    let text = Req::get("/").header("Accept", "text/plain").send(gh.addr());
    assert_eq!(
        text.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(
        text.text(),
        format!(
            "502 Bad Gateway\n{}\nerror: connection_refused\nhint: backend not running, or wrong port\nrequest id: {}\n",
            problem["detail"].as_str().unwrap(),
            text.request_id()
        )
    );
}

#[test]
fn error_responses_have_no_store_and_a_request_id() {
    let gh = refusing("minimal");
    let generated = Req::get("/").send(gh.addr());
    assert_eq!(generated.header("cache-control"), Some("no-store"));
    assert!(
        is_generated_id(generated.request_id()),
        "{}",
        generated.request_id()
    );
    let kept = Req::get("/")
        .header("X-Request-Id", "client-id_1.2:3")
        .send(gh.addr());
    assert_eq!(kept.request_id(), "client-id_1.2:3");
    assert_eq!(
        gh.failure_log("client-id_1.2:3")["kind"],
        "connection_refused"
    );
}

#[test]
fn head_on_an_error_gets_headers_only() {
    let gh = refusing("minimal");
    let mut conn = RawConn::connect(gh.addr());
    let head = Req::new("HEAD", "/").send_on(&mut conn);
    assert_eq!(
        (head.status, head.complete, head.body.len()),
        (502, true, 0)
    );
    assert_eq!(
        head.header("proxy-status"),
        Some("gatehouse;error=connection_refused")
    );
    // The next response on the same connection parses only if the HEAD one carried no body.
    let get = Req::get("/").send_on(&mut conn);
    assert_eq!(get.status, 502);
    assert_eq!(
        head.header("content-length"),
        Some(get.body.len().to_string().as_str())
    );
}

#[test]
fn proxy_status_off_sends_no_member() {
    let gh = refusing("off");
    let resp = Req::get("/").send(gh.addr());
    gh.expect_failure(&resp, 502, "connection_refused");
}

#[test]
fn proxy_status_minimal_has_error_only() {
    let gh = refusing("minimal");
    let resp = Req::get("/").send(gh.addr());
    assert_eq!(
        gh.expect_failure(&resp, 502, "connection_refused")
            .member
            .unwrap()
            .keys(),
        ["error"]
    );
}

#[test]
fn proxy_status_full_adds_next_hop_and_details() {
    let gh = refusing("full");
    let resp = Req::get("/")
        .header("Accept", "application/json")
        .send(gh.addr());
    let member = gh
        .expect_failure(&resp, 502, "connection_refused")
        .member
        .unwrap();
    assert_eq!(member.keys(), ["error", "next-hop", "details"]);
    let details = member.string("details").unwrap();
    assert!(
        details.ends_with("Connection refused (os error 111)"),
        "{details}"
    );
    assert_eq!(resp.json()["details"], details);
}

#[test]
fn member_name_and_via_follow_the_configured_name() {
    let upstream = Upstream::hello();
    let gh = start(Config::proxy_to([upstream.addr()]).server("name", "edge"));
    let resp = Req::get("/").send(gh.addr());
    assert_eq!(resp.status, 200);
    assert_eq!(upstream.requests()[0].header("via"), Some("1.1 edge"));
    let looped = Req::get("/").header("Via", "1.1 edge").send(gh.addr());
    assert_eq!(
        gh.expect_failure(&looped, 502, "proxy_loop_detected")
            .member
            .unwrap()
            .name,
        "edge"
    );
    // Another proxy's name is not a loop.
    assert_eq!(
        Req::get("/")
            .header("Via", "1.1 gatehouse")
            .send(gh.addr())
            .status,
        200
    );
}

// --- what the upstream sees, and what comes back ---

#[test]
fn forwarding_headers_and_hop_by_hop_fields() {
    let upstream = Upstream::serve(
        Reply::ok("hello")
            .header("Connection", "X-Resp-Secret")
            .header("X-Resp-Secret", "1")
            .header("Keep-Alive", "timeout=5")
            .header("Proxy-Connection", "keep-alive")
            .header("X-Resp-Kept", "1"),
    );
    let gh = start(Config::proxy_to([upstream.addr()]));
    let resp = Req::get("/path?q=1")
        .host("app.test:8080")
        .header("X-Forwarded-For", "203.0.113.7")
        .header("X-Request-Id", "req-42")
        .header("Via", "1.0 cdn")
        .header("Connection", "keep-alive, X-Secret")
        .header("X-Secret", "1")
        .header("Keep-Alive", "timeout=5")
        .header("Proxy-Connection", "keep-alive")
        .header("TE", "trailers")
        .header("X-Kept", "1")
        .send(gh.addr());
    assert_eq!((resp.status, resp.text().as_str()), (200, "hello"));

    let seen = &upstream.wait_for_requests(1, Duration::from_secs(5))[0];
    assert_eq!(
        (seen.method.as_str(), seen.target.as_str(), seen.version),
        ("GET", "/path?q=1", 1)
    );
    assert_eq!(seen.header("host"), Some("app.test:8080"));
    assert_eq!(
        seen.headers.get_all("x-forwarded-for"),
        ["127.0.0.1"],
        "a client not in trusted_proxies cannot add hops of its own"
    );
    assert_eq!(seen.header("x-real-ip"), Some("127.0.0.1"));
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));
    assert_eq!(seen.header("x-forwarded-host"), Some("app.test:8080"));
    assert_eq!(seen.headers.get_all("via"), ["1.0 cdn", "1.1 gatehouse"]);
    assert_eq!(seen.header("x-request-id"), Some("req-42"));
    assert_eq!(seen.header("x-kept"), Some("1"));
    for gone in [
        "connection",
        "x-secret",
        "keep-alive",
        "proxy-connection",
        "te",
    ] {
        assert!(
            !seen.headers.contains(gone),
            "{gone} reached the upstream: {:?}",
            seen.headers
        );
    }

    assert_eq!(resp.header("x-resp-kept"), Some("1"));
    assert_eq!(resp.request_id(), "req-42");
    for gone in [
        "connection",
        "x-resp-secret",
        "keep-alive",
        "proxy-connection",
    ] {
        assert!(
            !resp.headers.contains(gone),
            "{gone} reached the client: {:?}",
            resp.headers
        );
    }
}

/// `Connection` on several lines is one list (RFC 9110 §5.3): a field named on a later line is
/// as hop-by-hop as one named on the first, both ways. `Host` stays even when named: every
/// HTTP/1.1 request must carry it (RFC 9112 §3.2).
#[test]
fn fields_named_on_any_connection_line_stay_on_their_hop() {
    let upstream = Upstream::serve(
        Reply::ok("hello")
            .header("Connection", "keep-alive")
            .header("Connection", "X-Resp-Secret")
            .header("X-Resp-Secret", "1")
            .header("X-Resp-Kept", "1"),
    );
    let gh = start(Config::proxy_to([upstream.addr()]));
    let resp = Req::get("/")
        .header("Connection", "keep-alive")
        .header("Connection", "X-Secret, Host")
        .header("X-Secret", "1")
        .header("X-Kept", "1")
        .send(gh.addr());
    assert_eq!((resp.status, resp.text().as_str()), (200, "hello"));
    let seen = &upstream.wait_for_requests(1, Duration::from_secs(5))[0];
    assert_eq!(seen.header("x-kept"), Some("1"));
    assert_eq!(seen.header("host"), Some("app.test"));
    assert!(
        !seen.headers.contains("x-secret"),
        "x-secret reached the upstream: {:?}",
        seen.headers
    );
    assert_eq!(resp.header("x-resp-kept"), Some("1"));
    assert!(
        !resp.headers.contains("x-resp-secret"),
        "x-resp-secret reached the client: {:?}",
        resp.headers
    );
}

#[test]
fn request_id_is_generated_unless_a_valid_one_came() {
    let upstream = Upstream::hello();
    let gh = start(Config::proxy_to([upstream.addr()]));
    let none = Req::get("/").send(gh.addr());
    let invalid = Req::get("/")
        .header("X-Request-Id", "not a valid id")
        .send(gh.addr());
    let seen = upstream.wait_for_requests(2, Duration::from_secs(5));
    for (resp, request) in [(&none, &seen[0]), (&invalid, &seen[1])] {
        assert!(is_generated_id(resp.request_id()), "{}", resp.request_id());
        assert_eq!(request.header("x-request-id"), Some(resp.request_id()));
    }
    assert_ne!(none.request_id(), invalid.request_id());
}

#[test]
fn expect_100_continue_with_curl() {
    let upstream = Upstream::hello();
    let gh = start(Config::proxy_to([upstream.addr()]));
    let body: Vec<u8> = (0..100_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let file = TempFile::with_contents("gatehouse-expect", ".bin", &body);
    let data = format!("@{}", file.path().display());
    let result = curl(&[
        "-H",
        "Expect: 100-continue",
        "--data-binary",
        &data,
        &format!("http://{}/upload", gh.addr()),
    ]);
    assert_eq!(
        (result.interim(), result.status(), result.exit_code),
        (vec![100], 200, Some(0)),
        "{result:#?}"
    );
    assert_eq!(result.body, b"hello");
    let seen = &upstream.wait_for_requests(1, Duration::from_secs(5))[0];
    assert!(
        seen.complete && seen.body == body,
        "body arrived altered: {} bytes",
        seen.body.len()
    );
    assert_eq!(seen.header("expect"), None);
}

#[test]
fn chunked_request_body_is_streamed_intact() {
    let upstream = Upstream::hello();
    let gh = start(Config::proxy_to([upstream.addr()]));
    let mut conn = RawConn::connect(gh.addr());
    conn.send(b"POST /stream HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n")
        .unwrap();
    let mut expected = Vec::new();
    for part in ["first ", "second ", "third"] {
        conn.send(format!("{:x}\r\n{part}\r\n", part.len()).as_bytes())
            .unwrap();
        expected.extend_from_slice(part.as_bytes());
        std::thread::sleep(Duration::from_millis(50));
    }
    conn.send(b"0\r\n\r\n").unwrap();
    let resp = conn.read_response(false);
    assert_eq!(resp.status, 200);
    let seen = &upstream.wait_for_requests(1, Duration::from_secs(5))[0];
    assert!(seen.complete, "{seen:#?}");
    assert_eq!(
        String::from_utf8_lossy(&seen.body),
        String::from_utf8_lossy(&expected)
    );
}

#[test]
fn head_is_proxied() {
    let upstream = Upstream::hello();
    let gh = start(Config::proxy_to([upstream.addr()]));
    let mut conn = RawConn::connect(gh.addr());
    let head = Req::new("HEAD", "/thing").send_on(&mut conn);
    assert_eq!(
        (head.status, head.header("content-length"), head.body.len()),
        (200, Some("5"), 0)
    );
    let get = Req::get("/thing").send_on(&mut conn);
    assert_eq!(get.text(), "hello");
    let seen = upstream.wait_for_requests(2, Duration::from_secs(5));
    assert_eq!(
        (seen[0].method.as_str(), seen[1].method.as_str()),
        ("HEAD", "GET")
    );
}

#[test]
fn keep_alive_downstream() {
    let upstream = Upstream::hello();
    let gh = start(Config::proxy_to([upstream.addr()]));
    let mut conn = RawConn::connect(gh.addr());
    for _ in 0..3 {
        let resp = Req::get("/").send_on(&mut conn);
        assert_eq!(
            (resp.status, resp.text().as_str(), resp.header("connection")),
            (200, "hello", None)
        );
    }
    assert!(
        !conn.closes_within(Duration::from_millis(200)),
        "gatehouse closed a keep-alive connection"
    );
    // SIGTERM with an idle keep-alive connection open: it is closed and gatehouse exits 0.
    let started = std::time::Instant::now();
    assert!(gh.stop().success());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "drain took {:?}",
        started.elapsed()
    );
    assert!(conn.closes_within(Duration::from_secs(1)));
}

#[test]
fn keep_alive_upstream() {
    let upstream = Upstream::hello();
    let gh = start(Config::proxy_to([upstream.addr()]));
    for _ in 0..5 {
        assert_eq!(Req::get("/").send(gh.addr()).status, 200);
    }
    let seen = upstream.wait_for_requests(5, Duration::from_secs(5));
    assert_eq!(seen.iter().map(|r| r.conn).collect::<Vec<_>>(), [0; 5]);
    assert_eq!(upstream.connections(), 1);
}

#[test]
fn routing_by_exact_host_wildcard_and_longest_prefix() {
    let names = ["exact", "exact-static", "wildcard", "any", "any-api"];
    let upstreams: Vec<Upstream> = names
        .iter()
        .map(|n| Upstream::serve(Reply::ok(*n)))
        .collect();
    let config = names
        .iter()
        .zip(&upstreams)
        .fold(Config::new(), |config, (name, upstream)| {
            config.upstream(name, [upstream.addr()])
        })
        .route(Some("www.example.test"), "/", "exact")
        .route(Some("www.example.test"), "/static", "exact-static")
        .route(Some("*.example.test"), "/", "wildcard")
        .route(None, "/", "any")
        .route(None, "/api", "any-api");
    let gh = start(config);
    let cases = [
        ("www.example.test", "/", "exact"),
        ("WWW.Example.Test:8080", "/static/app.css", "exact-static"),
        ("www.example.test", "/staticky", "exact"),
        ("shop.example.test", "/api/x", "wildcard"),
        ("example.test", "/", "any"),
        ("example.test", "/api/users", "any-api"),
        ("example.test", "/apiary", "any"),
    ];
    for (host, path, expected) in cases {
        let resp = Req::get(path).host(host).send(gh.addr());
        assert_eq!(
            (resp.status, resp.text()),
            (200, expected.to_owned()),
            "{host}{path}"
        );
    }
    // Each request reached only its own upstream.
    let counts: Vec<usize> = upstreams.iter().map(|u| u.requests().len()).collect();
    assert_eq!(counts, [2, 1, 1, 2, 1]);
    let access = gh.wait_for_log(
        |l| l["target"] == "gatehouse::access" && l["path"] == "/api/users",
        Duration::from_secs(5),
    );
    assert_eq!(access["route"], "/api");
}

#[test]
fn upstream_that_answers_chunked_is_rechunked_intact() {
    let upstream = Upstream::start(Behavior::Serve(
        Reply::ok("streamed body").header("Transfer-Encoding", "chunked"),
    ));
    let gh = start(Config::proxy_to([upstream.addr()]));
    let resp = Req::get("/").send(gh.addr());
    assert!(resp.complete, "{resp:#?}");
    assert_eq!(resp.text(), "streamed body");
}

#[test]
fn keep_alive_connection_closed_by_the_upstream_is_not_reused() {
    // A complete response without `Connection: close`, then the upstream closes: the pooled
    // connection is dead and must be replaced, not used for the next request.
    let reply = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello".to_vec();
    let upstream = Upstream::start(Behavior::RawThenClose(reply));
    let gh = start(Config::proxy_to([upstream.addr()]));
    for _ in 0..3 {
        let resp = Req::get("/").send(gh.addr());
        assert_eq!((resp.status, resp.text().as_str()), (200, "hello"));
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(upstream.connections(), 3);
}
