//! TLS and HTTP/2 towards upstreams, through the real binary: certificate verification (CA file,
//! system roots, server name), each TLS failure kind with its Proxy-Status parameters and log
//! line, mutual TLS, a retry past a server with a bad certificate, health checks over TLS, and
//! HTTP/2 (ALPN over TLS, prior knowledge on cleartext) with one shared connection per server.
//!
//! TLS origins are `gatehouse_testkit::tls_origin` (blocking rustls servers). The HTTP/2 origin
//! is a hyper server on its own tokio runtime ([`H2Origin`] below); over TLS, a TLS origin
//! relays the decrypted bytes to it.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gatehouse_testkit::tls::{TestCa, Validity};
use gatehouse_testkit::tls_origin::TlsOrigin;
use gatehouse_testkit::{
    Behavior, Config, Gatehouse, PATIENCE, Param, RawResponse, Req, TempFile, Upstream,
};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, Version};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;

fn start(config: Config) -> Gatehouse {
    Gatehouse::start(Path::new(env!("CARGO_BIN_EXE_gatehouse")), &config.toml())
}

/// One route to the upstream `app` with these servers, Proxy-Status in full (details included).
fn proxy_to(servers: &[String]) -> Config {
    Config::proxy_to(servers).server("proxy_status", "full")
}

/// ... trusting only the CA in `ca_file`.
fn trusting(servers: &[String], ca_file: &TempFile) -> Config {
    proxy_to(servers).upstream_setting("app", "tls_ca_file", path(ca_file))
}

fn path(file: &TempFile) -> String {
    file.path().display().to_string()
}

/// A test CA with a server certificate for 127.0.0.1 (the address the origins listen on).
fn ca_and_cert(validity: Validity) -> (TestCa, gatehouse_testkit::tls::TestCert) {
    let ca = TestCa::new("gatehouse test CA");
    let cert = ca.leaf_with(&["127.0.0.1"], validity);
    (ca, cert)
}

fn details(response: &RawResponse) -> String {
    response
        .proxy_status()
        .last()
        .string("details")
        .unwrap_or_default()
        .to_owned()
}

// --- certificate verification ---

#[test]
fn a_certificate_signed_by_the_configured_ca_is_accepted() {
    let (ca, cert) = ca_and_cert(Validity::Current);
    let origin = TlsOrigin::start(&cert);
    let ca_file = ca.write_pem();
    let gh = start(trusting(&[origin.url()], &ca_file));

    let resp = Req::get("/over/tls?x=1").send(gh.addr());
    assert_eq!(
        (resp.status, resp.text().as_str()),
        (200, "hello tls"),
        "{resp:#?}"
    );
    let seen = origin.wait_for_requests(1, PATIENCE);
    assert_eq!(seen[0].target, "/over/tls?x=1");
    assert_eq!(seen[0].header("host"), Some("app.test"));
    let handshake = &origin.handshakes()[0];
    assert_eq!(handshake.error, None);
    // An IP address is verified as one and sends no SNI (RFC 6066 §3).
    assert_eq!(handshake.sni, None);
    // The access record's connect time covers the TLS handshake.
    let access = gh.access_log(resp.request_id());
    assert!(
        access["connect_ms"].as_f64().is_some_and(|ms| ms > 0.0),
        "{access}"
    );

    // Keep-alive: the next request reuses the TLS connection.
    let again = Req::get("/again").send(gh.addr());
    assert_eq!(again.status, 200);
    assert_eq!(origin.connections(), 1, "{:#?}", origin.handshakes());
}

#[test]
fn an_expired_certificate_is_tls_certificate_error() {
    let (ca, cert) = ca_and_cert(Validity::Expired);
    let origin = TlsOrigin::start(&cert);
    let ca_file = ca.write_pem();
    let gh = start(trusting(&[origin.url()], &ca_file));

    let resp = Req::get("/").send(gh.addr());
    let seen = gh.expect_failure(&resp, 502, "tls_certificate_error");
    let details = details(&resp);
    assert!(details.contains("expired"), "{details}");
    assert!(
        seen.warning["message"]
            .as_str()
            .is_some_and(|m| m.contains("expired")),
        "{}",
        seen.warning
    );
    assert_eq!(seen.warning["request_sent"], false, "{}", seen.warning);
    assert_eq!(
        seen.warning["phase"], "while connecting to upstream",
        "{}",
        seen.warning
    );
    assert!(origin.requests().is_empty());
}

#[test]
fn a_certificate_for_another_name_is_tls_certificate_error() {
    let ca = TestCa::new("gatehouse test CA");
    let origin = TlsOrigin::start(&ca.leaf(&["other.test"]));
    let ca_file = ca.write_pem();
    let gh = start(trusting(&[origin.url()], &ca_file));

    let resp = Req::get("/").send(gh.addr());
    gh.expect_failure(&resp, 502, "tls_certificate_error");
    let details = details(&resp);
    assert!(
        details.contains("not valid for name") && details.contains("127.0.0.1"),
        "{details}"
    );
}

#[test]
fn an_unknown_ca_under_the_system_roots_is_tls_certificate_error() {
    let (_ca, cert) = ca_and_cert(Validity::Current);
    let origin = TlsOrigin::start(&cert);
    // No tls_ca_file: the system's roots, which do not know the test CA.
    let gh = start(proxy_to(&[origin.url()]));

    let resp = Req::get("/").send(gh.addr());
    let seen = gh.expect_failure(&resp, 502, "tls_certificate_error");
    let details = details(&resp);
    assert!(details.contains("UnknownIssuer"), "{details}");
    assert_eq!(
        seen.member.unwrap().string("next-hop").map(str::to_owned),
        Some(format!("app/{}", origin.addr()))
    );
}

#[test]
fn https_to_a_plain_http_port_is_tls_protocol_error() {
    let plain = Upstream::hello();
    let gh = start(proxy_to(&[format!("https://{}", plain.addr())]));

    let resp = Req::get("/").send(gh.addr());
    let seen = gh.expect_failure(&resp, 502, "tls_protocol_error");
    assert!(!details(&resp).is_empty());
    assert_eq!(
        seen.warning["phase"], "while connecting to upstream",
        "{}",
        seen.warning
    );
    // The plain server got the ClientHello, which is not an HTTP request.
    assert!(
        plain.requests().iter().all(|r| !r.complete),
        "{:#?}",
        plain.requests()
    );
}

/// A server that accepts the connection and never answers the ClientHello: the handshake is
/// bounded by `connect_timeout`, like the TCP connect before it.
#[test]
fn a_handshake_the_server_never_answers_ends_at_connect_timeout() {
    let silent = Upstream::start(Behavior::Hang);
    let gh = start(
        proxy_to(&[format!("https://{}", silent.addr())]).upstream_setting(
            "app",
            "connect_timeout",
            "500ms",
        ),
    );

    let started = std::time::Instant::now();
    let resp = Req::get("/").send(gh.addr());
    let took = started.elapsed();
    gh.expect_failure(&resp, 502, "tls_protocol_error");
    assert!(
        details(&resp).contains("did not complete within"),
        "{resp:#?}"
    );
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(5),
        "answered after {took:?}"
    );
}

#[test]
fn a_server_that_requires_a_client_certificate_answers_with_an_alert() {
    let (ca, cert) = ca_and_cert(Validity::Current);
    let clients = TestCa::new("client CA");
    let origin = TlsOrigin::builder(&cert)
        .require_client_cert(clients.cert_der())
        .start();
    let ca_file = ca.write_pem();
    // minimal: only the kind and its own parameters.
    let gh = start(trusting(&[origin.url()], &ca_file).server("proxy_status", "minimal"));

    let resp = Req::get("/").send(gh.addr());
    let seen = gh.expect_failure(&resp, 502, "tls_alert_received");
    let member = seen.member.unwrap();
    // TLS 1.3 (RFC 8446 §6.2): a missing certificate is `certificate_required`, 116.
    assert_eq!(member.integer("alert-id"), Some(116), "{member:?}");
    assert_eq!(
        member.string("alert-message"),
        Some("certificate_required"),
        "{member:?}"
    );
    assert_eq!(member.keys(), ["error", "alert-id", "alert-message"]);
    assert_eq!(seen.warning["request_sent"], false, "{}", seen.warning);
    let handshake = &origin.wait_for_handshakes(1, PATIENCE)[0];
    assert!(handshake.error.is_some(), "{handshake:?}");
    assert!(origin.requests().is_empty());
}

#[test]
fn mutual_tls_with_the_configured_client_certificate() {
    let (ca, cert) = ca_and_cert(Validity::Current);
    let clients = TestCa::new("client CA");
    let origin = TlsOrigin::builder(&cert)
        .require_client_cert(clients.cert_der())
        .start();
    let ca_file = ca.write_pem();
    let (client_cert, client_key) = clients.leaf(&["gatehouse.client"]).write_pem();
    let gh = start(
        trusting(&[origin.url()], &ca_file)
            .upstream_setting("app", "tls_client_cert", path(&client_cert))
            .upstream_setting("app", "tls_client_key", path(&client_key)),
    );

    let resp = Req::get("/mtls").send(gh.addr());
    assert_eq!(resp.status, 200, "{resp:#?}");
    let handshake = &origin.handshakes()[0];
    assert!(
        handshake.client_cert && handshake.error.is_none(),
        "{handshake:?}"
    );
    assert_eq!(origin.requests()[0].target, "/mtls");
}

#[test]
fn tls_server_name_is_sent_as_sni_and_verified() {
    let ca = TestCa::new("gatehouse test CA");
    let origin = TlsOrigin::start(&ca.leaf(&["app.internal"]));
    let ca_file = ca.write_pem();
    let gh = start(trusting(&[origin.url()], &ca_file).upstream_setting(
        "app",
        "tls_server_name",
        "app.internal",
    ));

    let resp = Req::get("/").send(gh.addr());
    assert_eq!(resp.status, 200, "{resp:#?}");
    assert_eq!(origin.handshakes()[0].sni.as_deref(), Some("app.internal"));

    // The name is what the certificate must match, too.
    let elsewhere = TlsOrigin::start(&ca.leaf(&["127.0.0.1"]));
    let gh = start(trusting(&[elsewhere.url()], &ca_file).upstream_setting(
        "app",
        "tls_server_name",
        "app.internal",
    ));
    let resp = Req::get("/").send(gh.addr());
    gh.expect_failure(&resp, 502, "tls_certificate_error");
    assert!(
        details(&resp).contains("app.internal"),
        "{}",
        details(&resp)
    );
    let handshakes = elsewhere.wait_for_handshakes(1, PATIENCE);
    assert_eq!(handshakes[0].sni.as_deref(), Some("app.internal"));
}

// --- retries and health ---

#[test]
fn a_server_with_a_bad_certificate_is_retried_on_another_even_for_post() {
    let (ca, cert) = ca_and_cert(Validity::Current);
    let good = TlsOrigin::start(&cert);
    // Signed by a CA gatehouse does not trust.
    let bad = TlsOrigin::start(&TestCa::new("someone else").leaf(&["127.0.0.1"]));
    let ca_file = ca.write_pem();
    let gh = start(trusting(&[bad.url(), good.url()], &ca_file));

    // Round robin: of two requests, at least one goes to the bad server first.
    let mut retried = Vec::new();
    for i in 0..2 {
        let resp = Req::new("POST", "/submit")
            .body(format!("order {i}"))
            .send(gh.addr());
        assert_eq!(resp.status, 200, "{resp:#?}");
        let access = gh.access_log(resp.request_id());
        if access["attempts"] == 2 {
            retried.push(resp.request_id().to_owned());
        }
    }
    // Which one depends on the balancer; at least one met the bad server first.
    assert!(!retried.is_empty(), "no request met the bad server first");
    for request_id in &retried {
        let warnings = gh.failure_logs(request_id);
        assert_eq!(warnings.len(), 1, "{warnings:#?}");
        assert_eq!(warnings[0]["kind"], "tls_certificate_error");
        assert_eq!(warnings[0]["request_sent"], false);
    }
    assert!(bad.requests().is_empty());
    let bodies: Vec<Vec<u8>> = good
        .wait_for_requests(2, PATIENCE)
        .into_iter()
        .map(|r| r.body)
        .collect();
    assert_eq!(bodies, [b"order 0".to_vec(), b"order 1".to_vec()]);
}

/// Whether `line` is a health transition of the server at `addr` to `state`.
fn is_transition(line: &Value, addr: SocketAddr, state: &str) -> bool {
    line["target"] == "gatehouse::health"
        && line["server"]
            .as_str()
            .is_some_and(|s| s.contains(&addr.to_string()))
        && line["state"] == state
}

fn fast_health(config: Config, path: Option<&str>) -> Config {
    let config = match path {
        Some(path) => config.health("app", "path", path),
        None => config,
    };
    config
        .health("app", "interval", "100ms")
        .health("app", "timeout", "1s")
        .health("app", "unhealthy_threshold", 1)
        .health("app", "healthy_threshold", 1)
}

#[test]
fn health_checks_speak_tls_and_fail_with_the_tls_kind() {
    let (ca, cert) = ca_and_cert(Validity::Current);
    let good = TlsOrigin::start(&cert);
    let bad = TlsOrigin::start(&TestCa::new("someone else").leaf(&["127.0.0.1"]));
    let ca_file = ca.write_pem();
    let config = |tls_server_name: Option<&str>| {
        let config = fast_health(
            trusting(&[good.url(), bad.url()], &ca_file),
            Some("/health"),
        );
        match tls_server_name {
            Some(name) => config.upstream_setting("app", "tls_server_name", name),
            None => config,
        }
    };
    // First every check fails verification: a name neither certificate has.
    let gh = start(config(Some("wrong.test")));
    for origin in [&good, &bad] {
        let down = gh.wait_for_log(|l| is_transition(l, origin.addr(), "down"), PATIENCE);
        assert_eq!(down["reason"], "tls_certificate_error", "{down}");
    }
    // Then with the right name the good one verifies and comes up; the other stays down.
    gh.rewrite_config(&config(None).toml());
    gh.reload()
        .unwrap_or_else(|refused| panic!("reload refused: {refused}"));
    gh.wait_for_log(|l| is_transition(l, good.addr(), "up"), PATIENCE);
    let checks = good.wait_for_requests(1, PATIENCE);
    assert_eq!(checks[0].target, "/health");
    assert_eq!(
        checks[0].header("user-agent"),
        Some("gatehouse-health-check")
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !gh.logs().iter().any(|l| is_transition(l, bad.addr(), "up")),
        "the untrusted server came up"
    );
    assert!(bad.requests().is_empty());
    let resp = Req::get("/").send(gh.addr());
    assert_eq!(resp.status, 200, "{resp:#?}");
}

#[test]
fn a_tcp_health_check_of_a_tls_server_includes_the_handshake() {
    let (ca, _) = ca_and_cert(Validity::Current);
    let expired = TlsOrigin::start(&ca.leaf_with(&["127.0.0.1"], Validity::Expired));
    let ca_file = ca.write_pem();
    let gh = start(fast_health(trusting(&[expired.url()], &ca_file), None));
    let down = gh.wait_for_log(|l| is_transition(l, expired.addr(), "down"), PATIENCE);
    assert_eq!(down["reason"], "tls_certificate_error", "{down}");
}

// --- HTTP/2 ---

/// What the HTTP/2 origin saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    conn: usize,
    version: Version,
    path: String,
    authority: Option<String>,
}

#[derive(Debug, Default)]
struct H2State {
    connections: AtomicUsize,
    in_flight: AtomicUsize,
    peak_in_flight: AtomicUsize,
    requests: Mutex<Vec<Seen>>,
}

/// An HTTP/2-only origin (prior knowledge): hyper's server on its own runtime. `/slow` answers
/// after 300 ms, `/hang` never; everything else at once with `hello h2`.
#[derive(Debug)]
struct H2Origin {
    addr: SocketAddr,
    state: Arc<H2State>,
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
}

impl H2Origin {
    fn start(max_concurrent_streams: Option<u32>) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(H2State::default());
        let accept_state = Arc::clone(&state);
        runtime.spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let conn = accept_state.connections.fetch_add(1, Ordering::SeqCst);
                let state = Arc::clone(&accept_state);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let state = Arc::clone(&state);
                        async move { Ok::<_, Infallible>(answer(&state, conn, req).await) }
                    });
                    let mut builder =
                        hyper::server::conn::http2::Builder::new(TokioExecutor::new());
                    builder.max_concurrent_streams(max_concurrent_streams);
                    let _ = builder
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            addr,
            state,
            runtime: Mutex::new(Some(runtime)),
        }
    }

    fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    fn requests(&self) -> Vec<Seen> {
        self.state.requests.lock().unwrap().clone()
    }

    fn wait_in_flight(&self, n: usize) {
        let deadline = Instant::now() + PATIENCE;
        while self.state.in_flight.load(Ordering::SeqCst) < n {
            assert!(
                Instant::now() < deadline,
                "{n} requests never reached the origin"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops like a crashed process: every task and socket of its runtime goes.
    fn kill(&self) {
        if let Some(runtime) = self.runtime.lock().unwrap().take() {
            runtime.shutdown_background();
        }
    }
}

impl Drop for H2Origin {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn answer(
    state: &H2State,
    conn: usize,
    req: Request<Incoming>,
) -> Response<Full<&'static [u8]>> {
    state.requests.lock().unwrap().push(Seen {
        conn,
        version: req.version(),
        path: req.uri().path().to_owned(),
        authority: req.uri().authority().map(ToString::to_string),
    });
    let now = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    state.peak_in_flight.fetch_max(now, Ordering::SeqCst);
    match req.uri().path() {
        "/slow" => tokio::time::sleep(Duration::from_millis(300)).await,
        "/hang" => tokio::time::sleep(Duration::from_secs(60)).await,
        _ => {}
    }
    state.in_flight.fetch_sub(1, Ordering::SeqCst);
    if req.uri().path() == "/status-600" {
        let mut response = Response::new(Full::new(&b"beyond 599"[..]));
        *response.status_mut() = hyper::StatusCode::from_u16(600).unwrap();
        return response;
    }
    if req.uri().path() == "/unavailable" {
        let mut response = Response::new(Full::new(&b"down for now"[..]));
        *response.status_mut() = hyper::StatusCode::SERVICE_UNAVAILABLE;
        return response;
    }
    Response::new(Full::new(&b"hello h2"[..]))
}

/// Sends `n` GETs to `path` at once, each on its own client connection.
fn concurrently(gh: &Gatehouse, path: &str, n: usize) -> Vec<RawResponse> {
    let addr = gh.addr();
    let threads: Vec<_> = (0..n)
        .map(|_| {
            let path = path.to_owned();
            std::thread::spawn(move || Req::get(&path).send(addr))
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

#[test]
fn http2_over_tls_is_chosen_by_alpn_and_shares_one_connection() {
    let (ca, cert) = ca_and_cert(Validity::Current);
    let h2 = H2Origin::start(None);
    let origin = TlsOrigin::builder(&cert)
        .alpn(&[b"h2", b"http/1.1"])
        .relay_to(h2.addr)
        .start();
    let ca_file = ca.write_pem();
    let gh = start(trusting(&[origin.url()], &ca_file).upstream_setting("app", "http2", true));

    for i in 0..3 {
        let resp = Req::get(&format!("/seq/{i}")).send(gh.addr());
        assert_eq!(
            (resp.status, resp.text().as_str()),
            (200, "hello h2"),
            "{resp:#?}"
        );
    }
    for resp in concurrently(&gh, "/slow", 4) {
        assert_eq!(resp.status, 200, "{resp:#?}");
    }
    let seen = h2.requests();
    assert_eq!(seen.len(), 7, "{seen:#?}");
    assert!(
        seen.iter().all(|s| s.version == Version::HTTP_2),
        "{seen:#?}"
    );
    assert_eq!(seen[0].path, "/seq/0");
    // :authority carries the client's Host.
    assert_eq!(seen[0].authority.as_deref(), Some("app.test"));
    assert_eq!(origin.connections(), 1, "{:#?}", origin.handshakes());
    assert_eq!(h2.connections(), 1);
    assert!(
        h2.state.peak_in_flight.load(Ordering::SeqCst) > 1,
        "the slow requests were not multiplexed"
    );
    assert_eq!(origin.handshakes()[0].alpn.as_deref(), Some("h2"));
}

#[test]
fn http2_falls_back_to_http11_when_the_server_does_not_choose_h2() {
    let (ca, cert) = ca_and_cert(Validity::Current);
    let origin = TlsOrigin::builder(&cert).alpn(&[b"http/1.1"]).start();
    let ca_file = ca.write_pem();
    let gh = start(trusting(&[origin.url()], &ca_file).upstream_setting("app", "http2", true));

    for _ in 0..2 {
        let resp = Req::get("/").send(gh.addr());
        assert_eq!(
            (resp.status, resp.text().as_str()),
            (200, "hello tls"),
            "{resp:#?}"
        );
    }
    assert_eq!(origin.handshakes()[0].alpn.as_deref(), Some("http/1.1"));
    let seen = origin.requests();
    assert!(seen.iter().all(|r| r.version == 1), "{seen:#?}");
    assert_eq!(origin.connections(), 1, "HTTP/1.1 keep-alive");
}

/// RFC 9110 §15: a status code is 100 to 599. An HTTP/2 upstream's `:status` of 600 is a
/// protocol error (502), as it is from an HTTP/1.1 upstream, never passed on.
#[test]
fn an_http2_upstream_status_beyond_599_is_a_protocol_error() {
    let h2 = H2Origin::start(None);
    let gh = start(proxy_to(&[h2.addr.to_string()]).upstream_setting("app", "http2", true));
    let resp = Req::get("/status-600").send(gh.addr());
    gh.expect_failure(&resp, 502, "http_protocol_error");
    let warning = gh.failure_log(resp.request_id());
    assert!(warning.to_string().contains("outside 100-599"), "{warning}");
}

#[test]
fn h2c_with_prior_knowledge_shares_one_connection() {
    let h2 = H2Origin::start(None);
    let gh = start(proxy_to(&[h2.addr.to_string()]).upstream_setting("app", "http2", true));

    for resp in concurrently(&gh, "/slow", 5) {
        assert_eq!(
            (resp.status, resp.text().as_str()),
            (200, "hello h2"),
            "{resp:#?}"
        );
    }
    for _ in 0..3 {
        assert_eq!(Req::get("/").send(gh.addr()).status, 200);
    }
    let seen = h2.requests();
    assert_eq!(seen.len(), 8, "{seen:#?}");
    assert!(
        seen.iter()
            .all(|s| s.version == Version::HTTP_2 && s.conn == 0),
        "{seen:#?}"
    );
    assert_eq!(h2.connections(), 1);
    assert!(h2.state.peak_in_flight.load(Ordering::SeqCst) > 1);
}

/// The member gatehouse adds to an origin's own 5xx names the protocol it was spoken over.
#[test]
fn an_origin_5xx_over_h2c_says_next_protocol_h2c() {
    let h2 = H2Origin::start(None);
    let gh = start(
        proxy_to(&[h2.addr.to_string()])
            .upstream_setting("app", "http2", true)
            .server("proxy_status", "full"),
    );
    let resp = Req::get("/unavailable").send(gh.addr());
    assert_eq!(
        (resp.status, resp.text().as_str()),
        (503, "down for now"),
        "{resp:#?}"
    );
    let member = resp.proxy_status().last().clone();
    assert_eq!(member.integer("received-status"), Some(503), "{resp:#?}");
    assert!(
        matches!(member.param("next-protocol"), Some(Param::Token(t)) if t == "h2c"),
        "{resp:#?}"
    );
}

#[test]
fn h2_opens_another_connection_when_the_server_allows_one_stream() {
    let h2 = H2Origin::start(Some(1));
    let gh = start(proxy_to(&[h2.addr.to_string()]).upstream_setting("app", "http2", true));
    // The first exchange brings the server's SETTINGS (one stream at a time).
    assert_eq!(Req::get("/").send(gh.addr()).status, 200);
    for resp in concurrently(&gh, "/slow", 3) {
        assert_eq!(resp.status, 200, "{resp:#?}");
    }
    assert!(
        h2.connections() >= 2,
        "one connection for three streams with a limit of one"
    );
    assert!(h2.requests().iter().all(|s| s.version == Version::HTTP_2));
}

#[test]
fn an_h2_origin_that_dies_mid_request_is_a_502() {
    let h2 = H2Origin::start(None);
    let gh = start(proxy_to(&[h2.addr.to_string()]).upstream_setting("app", "http2", true));
    assert_eq!(Req::get("/").send(gh.addr()).status, 200);

    let addr = gh.addr();
    let pending = std::thread::spawn(move || Req::get("/hang").send(addr));
    h2.wait_in_flight(1);
    h2.kill();
    let resp = pending.join().unwrap();
    let seen = gh.expect_failure(&resp, 502, "connection_terminated");
    assert_eq!(seen.warning["request_sent"], true, "{}", seen.warning);

    // Nothing listens any more: a new connection is refused.
    let resp = Req::get("/").send(gh.addr());
    gh.expect_failure(&resp, 502, "connection_refused");
}
