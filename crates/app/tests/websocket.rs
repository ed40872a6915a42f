//! WebSocket (HTTP/1.1 Upgrade) through the real binary: a real client and an echo origin, an
//! origin that refuses the upgrade, one that answers a broken 101, the tunnel's idle timeout,
//! config reloads under an open tunnel, and closes in both directions.

use std::path::Path;
use std::time::{Duration, Instant};

use gatehouse_testkit::ws_origin::tungstenite::{self, Message};
use gatehouse_testkit::ws_origin::{SessionEnd, WsClient, WsOrigin, ws_connect};
use gatehouse_testkit::{Behavior, Config, Gatehouse, PATIENCE, RawConn, Reply, Req, Upstream};
use serde_json::Value;

/// Tunnel end lines are at debug; the tests read them.
const LOG_LEVEL: &str = "info,gatehouse::tunnel=debug";

fn start(config: Config) -> Gatehouse {
    Gatehouse::start(
        Path::new(env!("CARGO_BIN_EXE_gatehouse")),
        &config.server("log_level", LOG_LEVEL).toml(),
    )
}

/// A WebSocket handshake request written byte for byte (for origins that are not WebSocket
/// servers).
fn upgrade_request(target: &str) -> Req {
    Req::get(target)
        .header("Connection", "Upgrade")
        .header("Upgrade", "websocket")
        .header("Sec-WebSocket-Version", "13")
        .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
}

/// Sends `message` and expects it back.
fn echo(ws: &mut WsClient, message: Message) {
    ws.send(message.clone())
        .unwrap_or_else(|e| panic!("send {message:?}: {e}"));
    loop {
        match ws.read() {
            Ok(Message::Ping(_) | Message::Pong(_)) => {}
            Ok(answer) => {
                assert_eq!(answer, message);
                return;
            }
            Err(err) => panic!("no echo of {message:?}: {err}"),
        }
    }
}

/// The tunnel's end line (debug, `gatehouse::tunnel`) for the request with this id.
fn tunnel_end(gh: &Gatehouse, request_id: &str) -> Value {
    gh.wait_for_log(
        |l| l["target"] == "gatehouse::tunnel" && l["request_id"] == request_id,
        PATIENCE,
    )
}

/// Reads until the connection ends; returns whether it ended within `timeout` (a read timing
/// out is "still open").
fn closes_within(ws: &mut WsClient, timeout: Duration) -> bool {
    let _ = ws.get_ref().set_read_timeout(Some(timeout));
    loop {
        match ws.read() {
            Ok(_) => {}
            Err(tungstenite::Error::Io(err))
                if matches!(
                    err.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false;
            }
            Err(_) => return true,
        }
    }
}

#[test]
fn websocket_echoes_text_and_binary_messages() {
    let origin = WsOrigin::start();
    let gh = start(Config::proxy_to([origin.addr()]));
    let (mut ws, response) = ws_connect(gh.addr(), "/chat", &[("X-Request-Id", "ws-echo-1")])
        .unwrap_or_else(|e| panic!("handshake through gatehouse: {e}"));
    // tungstenite checked Sec-WebSocket-Accept, Upgrade and Connection already.
    assert_eq!(response.status(), 101);
    assert_eq!(response.headers()["x-request-id"], "ws-echo-1");
    assert_eq!(response.headers()["upgrade"], "websocket");

    let big = "x".repeat(200_000);
    let messages = [
        Message::text("hello"),
        Message::binary(vec![0u8, 1, 2, 255]),
        Message::text("second text, ünïcödé"),
        Message::binary(vec![7u8; 70_000]),
        Message::text(big),
    ];
    for message in messages.iter().cycle().take(12) {
        echo(&mut ws, message.clone());
    }
    ws.close(None).unwrap();
    assert!(closes_within(&mut ws, PATIENCE));
    drop(ws);

    let end = tunnel_end(&gh, "ws-echo-1");
    assert_eq!(end["end"], "closed", "{end}");
    let sent: u64 = messages
        .iter()
        .cycle()
        .take(12)
        .map(|m| m.len() as u64)
        .sum();
    for direction in ["client_to_upstream_bytes", "upstream_to_client_bytes"] {
        let bytes = end[direction].as_u64().unwrap_or(0);
        assert!(bytes >= sent, "{direction} {bytes} < payload {sent}: {end}");
    }
    assert!(end["duration_ms"].as_f64().is_some(), "{end}");
}

#[test]
fn origin_sees_upgrade_and_forwarding_headers() {
    let origin = WsOrigin::start();
    let gh = start(Config::proxy_to([origin.addr()]));
    let (mut ws, response) = ws_connect(
        gh.addr(),
        "/socket?room=1",
        &[
            ("Connection", "Upgrade, X-Secret"),
            ("X-Secret", "hop-by-hop"),
            ("Sec-WebSocket-Protocol", "chat, superchat"),
        ],
    )
    .unwrap_or_else(|e| panic!("handshake through gatehouse: {e}"));
    // The origin's choice reaches the client with the rest of its 101.
    assert_eq!(response.headers()["sec-websocket-protocol"], "chat");
    echo(&mut ws, Message::text("ping"));
    let seen = origin.wait_for_handshakes(1).remove(0);
    let h = &seen.headers;
    assert_eq!(seen.target, "/socket?room=1");
    assert_eq!(h.get("upgrade"), Some("websocket"), "{h:#?}");
    assert_eq!(h.get("connection"), Some("upgrade"), "{h:#?}");
    assert_eq!(h.get("x-forwarded-for"), Some("127.0.0.1"), "{h:#?}");
    assert_eq!(h.get("via"), Some("1.1 gatehouse"), "{h:#?}");
    assert_eq!(h.get("host"), Some("app.test"), "{h:#?}");
    assert_eq!(h.get("sec-websocket-version"), Some("13"), "{h:#?}");
    assert_eq!(
        h.get("sec-websocket-protocol"),
        Some("chat, superchat"),
        "{h:#?}"
    );
    assert!(h.contains("sec-websocket-key"), "{h:#?}");
    assert!(h.contains("x-request-id"), "{h:#?}");
    // Named in the client's Connection: a hop-by-hop field, still stripped.
    assert!(!h.contains("x-secret"), "{h:#?}");
}

#[test]
fn upgrade_is_logged_with_status_101() {
    let origin = WsOrigin::start();
    let gh = start(Config::proxy_to([origin.addr()]));
    let (mut ws, _) = ws_connect(gh.addr(), "/live", &[("X-Request-Id", "ws-log-1")])
        .unwrap_or_else(|e| panic!("handshake through gatehouse: {e}"));
    // Written when the 101 went out, while the tunnel is still open.
    let access = gh.access_log("ws-log-1");
    assert_eq!(access["status"], 101, "{access}");
    assert_eq!(access["upstream_status"], 101, "{access}");
    assert_eq!(access["method"], "GET", "{access}");
    assert_eq!(access["path"], "/live", "{access}");
    assert_eq!(access["failure"], "-", "{access}");
    echo(&mut ws, Message::text("still open after the access record"));
    let records = gh
        .logs()
        .into_iter()
        .filter(|l| l["target"] == "gatehouse::access" && l["request_id"] == "ws-log-1")
        .count();
    assert_eq!(records, 1, "one access record per upgrade");
}

#[test]
fn refused_upgrade_is_forwarded_as_the_origin_answered_it() {
    let origin = Upstream::serve(
        Reply::new(403, "no websockets for you").header("Content-Type", "text/plain"),
    );
    let gh = start(Config::proxy_to([origin.addr()]));
    let mut conn = RawConn::connect(gh.addr());
    let resp = upgrade_request("/chat").send_on(&mut conn);
    assert_eq!((resp.status, resp.complete), (403, true), "{resp:#?}");
    assert_eq!(resp.text(), "no websockets for you");
    assert_eq!(resp.header("content-type"), Some("text/plain"));
    assert!(!resp.headers.contains("proxy-status"), "{resp:#?}");
    let access = gh.access_log(resp.request_id());
    assert_eq!(
        (access["status"].as_u64(), access["failure"].as_str()),
        (Some(403), Some("-"))
    );
    // The client's connection stays HTTP: another request on it is answered.
    let again = Req::get("/plain").send_on(&mut conn);
    assert_eq!(again.status, 403, "{again:#?}");
    let upgrade = origin.requests().remove(0);
    assert_eq!(upgrade.header("upgrade"), Some("websocket"));
    assert_eq!(upgrade.header("connection"), Some("upgrade"));

    // A real client sees the refusal as an HTTP error with the origin's status.
    match ws_connect(gh.addr(), "/chat", &[]) {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 403),
        other => panic!("expected the origin's 403, got {other:?}"),
    }
}

#[test]
fn switching_protocols_without_the_asked_upgrade_is_http_upgrade_failed() {
    for (case, head) in [
        (
            "no Upgrade header",
            "HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\n\r\n",
        ),
        (
            "another protocol",
            "HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\n",
        ),
    ] {
        let origin = Upstream::start(Behavior::RawThenHang(head.as_bytes().to_vec()));
        let gh = start(Config::proxy_to([origin.addr()]).server("proxy_status", "full"));
        let resp = upgrade_request("/chat")
            .header("Accept", "application/json")
            .send(gh.addr());
        let seen = gh.expect_failure(&resp, 502, "http_upgrade_failed");
        let member = seen.member.unwrap();
        let details = member.string("details").unwrap_or_default().to_owned();
        assert!(details.contains("101"), "{case}: {details}");
        assert_eq!(resp.json()["error"], "http_upgrade_failed", "{case}");
        assert_eq!(
            seen.warning["phase"], "while reading response headers from upstream",
            "{case}: {}",
            seen.warning
        );
        assert_eq!(seen.access["upstream_status"], 101, "{case}");
        assert_eq!(origin.requests().len(), 1, "{case}: not retried");
    }
}

#[test]
fn upgrade_is_not_retried_once_sent_but_is_after_a_refused_connect() {
    // Sent, then the connection closed: an idempotent GET would be retried; an upgrade is not.
    let first = Upstream::start(Behavior::CloseAfterRequest);
    let second = Upstream::start(Behavior::CloseAfterRequest);
    let gh = start(Config::proxy_to([first.addr(), second.addr()]));
    let resp = upgrade_request("/chat").send(gh.addr());
    let seen = gh.expect_failure(&resp, 502, "connection_terminated");
    assert_eq!(seen.access["attempts"], 1, "{}", seen.access);
    assert_eq!(first.requests().len() + second.requests().len(), 1);
    drop(gh);

    // Nothing sent (connection refused): the next server gets it.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_addr = closed.local_addr().unwrap();
    drop(closed);
    let origin = WsOrigin::start();
    let gh = start(Config::proxy_to([closed_addr, origin.addr()]));
    for i in 0..3 {
        let (mut ws, _) = ws_connect(gh.addr(), "/chat", &[])
            .unwrap_or_else(|e| panic!("handshake {i} through gatehouse: {e}"));
        echo(&mut ws, Message::text(format!("try {i}")));
    }
    assert_eq!(origin.handshakes().len(), 3);
}

#[test]
fn tunnel_closes_after_the_idle_timeout() {
    let origin = WsOrigin::start();
    let gh = start(Config::proxy_to([origin.addr()]).upstream_setting(
        "app",
        "tunnel_idle_timeout",
        "1s",
    ));
    let (mut ws, _) = ws_connect(gh.addr(), "/chat", &[("X-Request-Id", "ws-idle-1")])
        .unwrap_or_else(|e| panic!("handshake through gatehouse: {e}"));
    // Traffic keeps it open well past the timeout...
    for i in 0..5 {
        std::thread::sleep(Duration::from_millis(500));
        echo(&mut ws, Message::text(format!("keepalive {i}")));
    }
    // ...and silence closes it, both sides.
    let quiet = Instant::now();
    assert!(
        closes_within(&mut ws, Duration::from_secs(5)),
        "the tunnel stayed open"
    );
    let waited = quiet.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(4),
        "closed after {waited:?} of silence, with tunnel_idle_timeout = 1s"
    );
    let ends = origin
        .wait_for_ends(1, PATIENCE)
        .expect("the origin's side was not closed");
    assert!(matches!(ends[0], SessionEnd::Dropped(_)), "{ends:?}");
    let end = tunnel_end(&gh, "ws-idle-1");
    assert_eq!(end["end"], "idle_timeout", "{end}");
}

#[test]
fn websocket_survives_a_config_reload() {
    let origin = WsOrigin::start();
    let config = Config::proxy_to([origin.addr()]);
    let gh = start(config.clone());
    let (mut ws, _) = ws_connect(gh.addr(), "/chat", &[])
        .unwrap_or_else(|e| panic!("handshake through gatehouse: {e}"));
    echo(&mut ws, Message::text("before"));

    // A changed config: another upstream setting, and the route now points at a new pool.
    let other = WsOrigin::start();
    let changed = Config::new()
        .upstream("moved", [other.addr()])
        .route(None, "/", "moved")
        .server("log_level", LOG_LEVEL);
    gh.rewrite_config(&changed.toml());
    gh.reload()
        .unwrap_or_else(|line| panic!("reload refused: {line}"));
    for i in 0..3 {
        echo(&mut ws, Message::text(format!("after reload {i}")));
        echo(&mut ws, Message::binary(vec![i; 1000]));
    }
    // New WebSockets follow the new config; the old one still goes to the old origin.
    let (mut fresh, _) = ws_connect(gh.addr(), "/chat", &[])
        .unwrap_or_else(|e| panic!("handshake after reload: {e}"));
    echo(&mut fresh, Message::text("new"));
    assert_eq!(other.handshakes().len(), 1);
    assert_eq!(origin.handshakes().len(), 1);
    assert_eq!(origin.open_sessions(), 1);
    echo(&mut ws, Message::text("still the old tunnel"));
}

#[test]
fn closing_from_the_client_closes_the_origin_side() {
    let origin = WsOrigin::start();
    let gh = start(Config::proxy_to([origin.addr()]));

    // A clean close: the close frame goes through, the origin answers and closes.
    let (mut ws, _) = ws_connect(gh.addr(), "/chat", &[])
        .unwrap_or_else(|e| panic!("handshake through gatehouse: {e}"));
    echo(&mut ws, Message::text("bye soon"));
    ws.close(None).unwrap();
    let ends = origin
        .wait_for_ends(1, PATIENCE)
        .expect("the origin saw no end");
    assert_eq!(ends, [SessionEnd::CloseFrame]);
    assert!(closes_within(&mut ws, PATIENCE), "client side left open");

    // The client vanishes (TCP closed, no close frame): the origin's connection ends too.
    let (mut ws, _) = ws_connect(gh.addr(), "/chat", &[])
        .unwrap_or_else(|e| panic!("handshake through gatehouse: {e}"));
    echo(&mut ws, Message::text("about to vanish"));
    ws.get_ref().shutdown(std::net::Shutdown::Both).unwrap();
    drop(ws);
    let ends = origin
        .wait_for_ends(2, PATIENCE)
        .expect("the origin's side stayed open after the client left");
    assert!(matches!(ends[1], SessionEnd::Dropped(_)), "{ends:?}");
    assert_eq!(origin.open_sessions(), 0);
}

#[test]
fn h2c_upgrade_is_not_forwarded() {
    let origin = Upstream::hello();
    let gh = start(Config::proxy_to([origin.addr()]));
    let resp = Req::get("/")
        .header("Connection", "Upgrade, HTTP2-Settings")
        .header("Upgrade", "h2c")
        .header("HTTP2-Settings", "AAMAAABkAAQCAAAAAAIAAAAA")
        .send(gh.addr());
    assert_eq!(
        (resp.status, resp.text().as_str()),
        (200, "hello"),
        "{resp:#?}"
    );
    let seen = origin.requests().remove(0);
    for name in ["upgrade", "connection", "http2-settings"] {
        assert!(!seen.headers.contains(name), "{name} forwarded: {seen:#?}");
    }
}

/// `/metrics` counts open tunnels per pool and how they ended.
#[test]
fn tunnels_are_counted_while_open_and_by_how_they_ended() {
    use gatehouse_testkit::metrics::{parse_samples, sum};

    let origin = WsOrigin::start();
    let gh = start(
        Config::proxy_to([origin.addr()])
            .server("admin", "127.0.0.1:0")
            .upstream_setting("app", "tunnel_idle_timeout", "1s"),
    );
    let admin = gh.admin_addr();
    let metric = |name: &str, labels: &[(&str, &str)]| {
        let scrape = Req::get("/metrics").send(admin);
        sum(&parse_samples(&scrape.text()), name, labels).0
    };
    let open = || metric("gatehouse_tunnels_open", &[("pool", "app")]);
    let ended = |end: &str| {
        metric(
            "gatehouse_tunnels_closed_total",
            &[("pool", "app"), ("end", end)],
        )
    };

    let (mut ws, _) = ws_connect(gh.addr(), "/chat", &[])
        .unwrap_or_else(|e| panic!("handshake through gatehouse: {e}"));
    echo(&mut ws, Message::text("counted"));
    assert_eq!(open(), 1.0);
    ws.close(None).unwrap();
    assert!(closes_within(&mut ws, PATIENCE), "client side left open");
    // Both sides closed: the client's TCP connection goes too.
    drop(ws);
    let deadline = std::time::Instant::now() + PATIENCE;
    while ended("closed") < 1.0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!((open(), ended("closed")), (0.0, 1.0));

    // Silence past tunnel_idle_timeout ends the next one as idle_timeout.
    let (mut ws, _) = ws_connect(gh.addr(), "/chat", &[])
        .unwrap_or_else(|e| panic!("handshake through gatehouse: {e}"));
    echo(&mut ws, Message::text("then silence"));
    assert!(closes_within(&mut ws, PATIENCE), "idle tunnel left open");
    let deadline = std::time::Instant::now() + PATIENCE;
    while ended("idle_timeout") < 1.0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!((open(), ended("idle_timeout")), (0.0, 1.0));
}

/// An upgrade is never answered from the cache, even on a caching route and when the origin's
/// refusal is marked fresh: each one reaches the origin.
#[test]
fn upgrade_requests_are_never_answered_from_the_cache() {
    let origin = Upstream::serve(
        Reply::new(403, "no websockets here").header("Cache-Control", "public, max-age=60"),
    );
    let gh = start(Config::proxy_to([origin.addr()]).route_section("cache", "mode", "full"));
    for _ in 0..2 {
        let resp = upgrade_request("/chat").send(gh.addr());
        assert_eq!(
            (resp.status, resp.text().as_str()),
            (403, "no websockets here")
        );
        assert!(!resp.headers.contains("cache-status"), "{resp:#?}");
    }
    assert_eq!(origin.requests_to("/chat").len(), 2);
    // The same response to a plain GET is stored: the second GET is a hit.
    for _ in 0..2 {
        assert_eq!(Req::get("/page").send(gh.addr()).status, 403);
    }
    assert_eq!(origin.requests_to("/page").len(), 1);
}

/// An open tunnel keeps its server's connection slot: with `max_connections = 1` and no queue,
/// a request while the WebSocket is open is refused, and one after it closed goes through.
#[test]
fn an_open_tunnel_holds_its_servers_connection_slot() {
    let origin = WsOrigin::start();
    let gh = start(
        Config::proxy_to([origin.addr()])
            .upstream_setting("app", "max_connections", 1)
            .upstream_setting("app", "queue_size", 0),
    );
    let (mut ws, _) = ws_connect(gh.addr(), "/chat", &[])
        .unwrap_or_else(|e| panic!("handshake through gatehouse: {e}"));
    echo(&mut ws, Message::text("holding the slot"));

    let refused = Req::get("/other").send(gh.addr());
    gh.expect_failure(&refused, 503, "connection_limit_reached");

    ws.close(None).unwrap();
    assert!(closes_within(&mut ws, PATIENCE), "client side left open");
    drop(ws);
    let deadline = Instant::now() + PATIENCE;
    let mut answer = Req::get("/other").send(gh.addr());
    while answer.status == 503 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        answer = Req::get("/other").send(gh.addr());
    }
    assert_ne!(answer.status, 503, "the slot was not freed: {answer:#?}");
}

/// WebSocket over TLS (`wss://`): the HTTP/1.1 engine hands the TLS session to the tunnel after
/// the 101, and messages both ways cross it whole.
#[test]
fn websocket_over_tls_echoes_messages() {
    use gatehouse_testkit::https::{Https, TlsListener, tls_listeners};
    use gatehouse_testkit::tls::TestCa;

    let origin = WsOrigin::start();
    let ca = TestCa::new("wss CA");
    let cert = ca.leaf(&["app.test"]);
    let (cert_pem, key_pem) = cert.write_pem();
    let gh = start(Config::proxy_to([origin.addr()]).server(
        "tls",
        tls_listeners([
            TlsListener::new(["127.0.0.1:0"]).certificate(cert_pem.path(), key_pem.path()),
        ]),
    ));
    let stream = Https::new(&ca.cert_der(), "app.test")
        .alpn(&["http/1.1"])
        .connect(gh.https_addr())
        .unwrap()
        .into_stream();
    let (mut ws, response) = tungstenite::client::client("wss://app.test/chat", stream)
        .unwrap_or_else(|e| panic!("handshake through gatehouse over TLS: {e}"));
    assert_eq!(response.status(), 101);
    for message in [
        Message::text("hello over tls"),
        Message::binary(vec![9u8; 70_000]),
        Message::text("y".repeat(200_000)),
    ] {
        ws.send(message.clone()).unwrap();
        loop {
            match ws.read() {
                Ok(Message::Ping(_) | Message::Pong(_)) => {}
                Ok(answer) => {
                    assert_eq!(answer, message);
                    break;
                }
                Err(err) => panic!("no echo of {message:?}: {err}"),
            }
        }
    }
    ws.close(None).unwrap();
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        match ws.read() {
            Ok(_) => {}
            Err(_) => break,
        }
    }
}
