//! HTTPS listeners (`[[server.tls]]`): the certificate chosen by SNI, ALPN h2 and http/1.1,
//! `min_version`, `X-Forwarded-Proto`, certificates and listener kinds changed by reload; and
//! redirect listeners (`redirect_https`).

use std::net::SocketAddr;
use std::path::Path;

use gatehouse_testkit::free_addr;
use gatehouse_testkit::https::{Https, HttpsConn, TlsListener, curl_any, tls_listeners};
use gatehouse_testkit::tls::{TestCa, TestCert};
use gatehouse_testkit::{Behavior, Config, Gatehouse, Req, TempFile, Upstream, send_raw};

fn start(config: &Config) -> Gatehouse {
    Gatehouse::start(Path::new(env!("CARGO_BIN_EXE_gatehouse")), &config.toml())
}

/// A certificate with its PEM files (kept while the test runs).
struct Cert {
    cert: TestCert,
    pem: (TempFile, TempFile),
}

impl Cert {
    fn new(ca: &TestCa, names: &[&str]) -> Self {
        let cert = ca.leaf(names);
        let pem = cert.write_pem();
        Self { cert, pem }
    }

    fn paths(&self) -> (&Path, &Path) {
        (self.pem.0.path(), self.pem.1.path())
    }
}

/// A TLS listener on `listen` presenting `certs` (the first is the default).
fn tls(listen: &str, certs: &[&Cert]) -> TlsListener {
    certs.iter().fold(TlsListener::new([listen]), |l, c| {
        let (cert, key) = c.paths();
        l.certificate(cert, key)
    })
}

fn with_tls(config: Config, listeners: impl IntoIterator<Item = TlsListener>) -> Config {
    config.server("tls", tls_listeners(listeners))
}

/// `--resolve NAME:PORT:127.0.0.1` and the URL `https://NAME:PORT/PATH`.
fn resolve_url(name: &str, addr: SocketAddr, path: &str) -> (String, String) {
    (
        format!("{name}:{}:127.0.0.1", addr.port()),
        format!("https://{name}:{}{path}", addr.port()),
    )
}

// --- the certificate by SNI ---

#[test]
fn sni_picks_the_exact_name_then_the_wildcard_else_the_first_certificate() {
    let upstream = Upstream::hello();
    let ca = TestCa::new("sni test CA");
    let a = Cert::new(&ca, &["a.test"]);
    let b = Cert::new(&ca, &["*.b.test"]);
    let gh = start(&with_tls(
        Config::proxy_to([upstream.addr()]),
        [tls("127.0.0.1:0", &[&a, &b])],
    ));
    let addr = gh.https_addr();
    let ca_der = ca.cert_der();
    let get = Req::get("/");

    let seen = Https::new(&ca_der, "a.test").send(addr, &get);
    assert_eq!(seen.peer_certificate, a.cert.der, "a.test gets A");
    assert_eq!(
        (seen.response.status, seen.response.text()),
        (200, "hello".to_owned())
    );

    let seen = Https::new(&ca_der, "x.b.test").send(addr, &get);
    assert_eq!(seen.peer_certificate, b.cert.der, "x.b.test gets *.b.test");

    let seen = Https::new(&ca_der, "unknown.test")
        .any_certificate()
        .send(addr, &get);
    assert_eq!(
        seen.peer_certificate, a.cert.der,
        "an unknown name gets the first"
    );

    let seen = Https::new(&ca_der, "a.test").without_sni().send(addr, &get);
    assert_eq!(seen.peer_certificate, a.cert.der, "no SNI gets the first");
}

// --- ALPN ---

#[test]
fn alpn_serves_http2_or_http11_as_the_client_asks() {
    let upstream = Upstream::hello();
    let ca = TestCa::new("alpn test CA");
    let a = Cert::new(&ca, &["a.test"]);
    let ca_pem = ca.write_pem();
    let gh = start(&with_tls(
        Config::proxy_to([upstream.addr()]),
        [tls("127.0.0.1:0", &[&a])],
    ));
    let (resolve, url) = resolve_url("a.test", gh.https_addr(), "/");
    let cacert = ca_pem.path().to_str().unwrap();

    let h2 = curl_any(&["--http2", "--cacert", cacert, "--resolve", &resolve, &url]);
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
    let h1 = curl_any(&["--http1.1", "--cacert", cacert, "--resolve", &resolve, &url]);
    assert_eq!(
        (
            h1.exit_code,
            h1.http_version.as_str(),
            h1.status,
            h1.text().as_str()
        ),
        (Some(0), "1.1", 200, "hello"),
        "{h1:#?}"
    );

    let offered = Https::new(&ca.cert_der(), "a.test").alpn(&["h2", "http/1.1"]);
    let conn = offered.connect(gh.https_addr()).unwrap();
    assert_eq!(conn.alpn().as_deref(), Some("h2"), "h2 is preferred");
    let none = Https::new(&ca.cert_der(), "a.test").alpn(&[]);
    let seen = none.send(gh.https_addr(), &Req::get("/"));
    assert_eq!(
        (seen.alpn, seen.response.status),
        (None, 200),
        "a client without ALPN speaks HTTP/1.1"
    );
}

#[test]
fn without_http2_alpn_offers_only_http11() {
    let upstream = Upstream::hello();
    let ca = TestCa::new("alpn test CA");
    let a = Cert::new(&ca, &["a.test"]);
    let ca_pem = ca.write_pem();
    let gh = start(&with_tls(
        Config::proxy_to([upstream.addr()]).server("http2", false),
        [tls("127.0.0.1:0", &[&a])],
    ));
    let (resolve, url) = resolve_url("a.test", gh.https_addr(), "/");
    let run = curl_any(&[
        "--http2",
        "--cacert",
        ca_pem.path().to_str().unwrap(),
        "--resolve",
        &resolve,
        &url,
    ]);
    assert_eq!(
        (run.exit_code, run.http_version.as_str(), run.status),
        (Some(0), "1.1", 200),
        "{run:#?}"
    );
}

// --- versions ---

#[test]
fn min_version_13_refuses_a_tls12_only_client() {
    let upstream = Upstream::hello();
    let ca = TestCa::new("version test CA");
    let a = Cert::new(&ca, &["a.test"]);
    let ca_pem = ca.write_pem();
    let gh = start(&with_tls(
        Config::proxy_to([upstream.addr()]),
        [
            tls("127.0.0.1:0", &[&a]).min_version("1.3"),
            tls("127.0.0.1:0", &[&a]),
        ],
    ));
    let strict = gh.https_addr();
    let second = gh.wait_for_log(
        |l| {
            l["message"] == "listening"
                && l["protocol"] == "https"
                && l["addr"] != strict.to_string().as_str()
        },
        gatehouse_testkit::PATIENCE,
    );
    let lenient: SocketAddr = second["addr"].as_str().unwrap().parse().unwrap();
    let cacert = ca_pem.path().to_str().unwrap();

    let (resolve, url) = resolve_url("a.test", strict, "/");
    let refused = curl_any(&[
        "--tls-max",
        "1.2",
        "--cacert",
        cacert,
        "--resolve",
        &resolve,
        &url,
    ]);
    assert_eq!(
        (refused.exit_code, refused.status),
        (Some(35), 0),
        "curl reports a TLS handshake failure: {refused:#?}"
    );
    let modern = curl_any(&["--cacert", cacert, "--resolve", &resolve, &url]);
    assert_eq!(
        (modern.exit_code, modern.status),
        (Some(0), 200),
        "{modern:#?}"
    );
    let ca_der = ca.cert_der();
    Https::new(&ca_der, "a.test")
        .tls12_only()
        .connect(strict)
        .expect_err("TLS 1.2 is refused");

    // The default (1.2) takes it.
    let seen = Https::new(&ca_der, "a.test")
        .tls12_only()
        .send(lenient, &Req::get("/"));
    assert_eq!(seen.version, Some(rustls::ProtocolVersion::TLSv1_2));
    assert_eq!(seen.response.status, 200);
}

// --- what reaches the upstream ---

#[test]
fn x_forwarded_proto_says_https_on_tls_listeners_and_http_on_plain_ones() {
    let upstream = Upstream::hello();
    let ca = TestCa::new("proto test CA");
    let a = Cert::new(&ca, &["a.test"]);
    let gh = start(&with_tls(
        Config::proxy_to([upstream.addr()]),
        [tls("127.0.0.1:0", &[&a])],
    ));
    let seen = Https::new(&ca.cert_der(), "a.test").send(
        gh.https_addr(),
        &Req::get("/over-tls").header("X-Forwarded-Proto", "http"),
    );
    assert_eq!(seen.response.status, 200);
    let plain = Req::get("/plain").send(gh.addr());
    assert_eq!(plain.status, 200);

    let tls = &upstream.requests_to("/over-tls")[0];
    assert_eq!(
        tls.header("x-forwarded-proto"),
        Some("https"),
        "the connection decides, not what the client claims: {tls:#?}"
    );
    let plain = &upstream.requests_to("/plain")[0];
    assert_eq!(
        plain.header("x-forwarded-proto"),
        Some("http"),
        "{plain:#?}"
    );
}

// --- reload ---

#[test]
fn reload_serves_a_new_certificate_to_new_connections_only() {
    let upstream = Upstream::hello();
    let ca = TestCa::new("reload test CA");
    let old = Cert::new(&ca, &["a.test"]);
    let new = Cert::new(&ca, &["a.test"]);
    let base = Config::proxy_to([upstream.addr()]);
    let gh = start(&with_tls(base.clone(), [tls("127.0.0.1:0", &[&old])]));
    let addr = gh.https_addr();
    let client = Https::new(&ca.cert_der(), "a.test");
    let mut kept = client.connect(addr).unwrap();
    assert_eq!(kept.send(&Req::get("/")).status, 200);
    assert_eq!(kept.peer_certificate(), old.cert.der);

    gh.rewrite_config(&with_tls(base, [tls("127.0.0.1:0", &[&new])]).toml());
    gh.reload().expect("a new certificate is taken");

    let seen = client.send(addr, &Req::get("/"));
    assert_eq!(
        seen.peer_certificate, new.cert.der,
        "the same socket presents the new certificate"
    );
    assert_eq!(seen.response.status, 200);
    let again = kept.send(&Req::get("/"));
    assert_eq!(
        (again.status, again.complete),
        (200, true),
        "an open connection keeps its session: {again:#?}"
    );
}

#[test]
fn reload_with_a_key_that_is_not_the_certificates_is_refused() {
    let upstream = Upstream::hello();
    let ca = TestCa::new("reload test CA");
    let good = Cert::new(&ca, &["a.test"]);
    let other = Cert::new(&ca, &["a.test"]);
    let base = Config::proxy_to([upstream.addr()]);
    let gh = start(&with_tls(base.clone(), [tls("127.0.0.1:0", &[&good])]));
    let addr = gh.https_addr();

    // The new certificate with the old key.
    let broken = TlsListener::new(["127.0.0.1:0"]).certificate(other.paths().0, good.paths().1);
    gh.rewrite_config(&with_tls(base, [broken]).toml());
    let refused = gh
        .reload()
        .expect_err("a key that is not the certificate's is refused");
    assert!(
        refused["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("reload refused")),
        "{refused}"
    );

    let seen = Https::new(&ca.cert_der(), "a.test").send(addr, &Req::get("/"));
    assert_eq!(
        (seen.peer_certificate, seen.response.status),
        (good.cert.der.clone(), 200),
        "the running certificate keeps serving"
    );
}

#[test]
fn reload_turns_a_plain_listener_into_a_tls_one_on_the_same_socket() {
    let upstream = Upstream::hello();
    let ca = TestCa::new("reload test CA");
    let a = Cert::new(&ca, &["a.test"]);
    let gh = start(&Config::proxy_to([upstream.addr()]));
    let switched = free_addr();
    let base = Config::proxy_to([upstream.addr()]).server("log_format", "json");

    gh.rewrite_config_raw(
        &base
            .clone()
            .server(
                "listen",
                vec!["127.0.0.1:0".to_owned(), switched.to_string()],
            )
            .toml(),
    );
    gh.reload().expect("a plain listener is added");
    assert_eq!(Req::get("/").send(switched).status, 200, "plain HTTP first");

    gh.rewrite_config_raw(
        &with_tls(
            base.server("listen", vec!["127.0.0.1:0"]),
            [tls(&switched.to_string(), &[&a])],
        )
        .toml(),
    );
    let reloaded = gh.reload().expect("the address becomes a TLS listener");
    assert_eq!(
        reloaded["listeners_opened"].as_str(),
        Some("[]"),
        "the socket is kept: {reloaded}"
    );
    let seen = Https::new(&ca.cert_der(), "a.test").send(switched, &Req::get("/"));
    assert_eq!(
        (seen.response.status, seen.peer_certificate),
        (200, a.cert.der.clone())
    );
    assert!(
        send_raw(switched, &Req::get("/").to_bytes()).is_err(),
        "plain HTTP gets no answer from a TLS listener"
    );
    assert_eq!(
        Req::get("/").send(gh.addr()).status,
        200,
        "the main listener is untouched"
    );
}

// --- redirect listeners ---

#[test]
fn a_redirect_listener_answers_308_to_the_same_url_on_the_https_port() {
    let upstream = Upstream::hello();
    let ca = TestCa::new("redirect test CA");
    let a = Cert::new(&ca, &["a.test"]);
    let gh = start(&with_tls(
        Config::proxy_to([upstream.addr()]).server("redirect_https", vec!["127.0.0.1:0"]),
        [tls("127.0.0.1:0", &[&a])],
    ));
    let https_port = gh.https_addr().port();
    let resp = Req::get("/a/b?x=1&y=%20z")
        .host("Example.TEST:8080")
        .send(gh.redirect_addr());
    assert_eq!(resp.status, 308, "{resp:#?}");
    assert_eq!(
        resp.header("location"),
        Some(format!("https://example.test:{https_port}/a/b?x=1&y=%20z").as_str()),
        "the host without its port, the TLS listener's port, path and query kept"
    );
    assert!(resp.complete, "{resp:#?}");
    assert_eq!(
        resp.header("content-length"),
        Some(resp.body.len().to_string().as_str())
    );
    assert!(!resp.body.is_empty(), "a small text body");
    assert!(
        resp.header("proxy-status").is_none(),
        "a redirect is not an error: {resp:#?}"
    );
    let access = gh.access_log(resp.request_id());
    assert_eq!(
        (&access["status"], &access["failure"]),
        (&308.into(), &"-".into()),
        "{access}"
    );
    assert!(upstream.requests().is_empty(), "nothing goes upstream");
}

#[test]
fn without_a_tls_listener_a_redirect_leaves_the_port_out() {
    let upstream = Upstream::hello();
    let gh =
        start(&Config::proxy_to([upstream.addr()]).server("redirect_https", vec!["127.0.0.1:0"]));
    let resp = Req::get("/p?q").host("h.test").send(gh.redirect_addr());
    assert_eq!(
        (resp.status, resp.header("location")),
        (308, Some("https://h.test/p?q")),
        "{resp:#?}"
    );
}

#[test]
fn a_redirect_without_a_host_is_a_400() {
    let upstream = Upstream::hello();
    let gh =
        start(&Config::proxy_to([upstream.addr()]).server("redirect_https", vec!["127.0.0.1:0"]));
    let resp = Req::get("/").without("host").send(gh.redirect_addr());
    gh.expect_failure(&resp, 400, "http_request_error");
    assert!(resp.header("location").is_none());
}

// --- handshake limits ---

/// A client that connects to a TLS listener and never sends a ClientHello is closed after
/// `client_header_timeout`, and counted as a timed-out handshake; one that sends garbage is
/// counted as a failed one. Neither holds a connection open.
#[test]
fn stalled_and_broken_handshakes_are_closed_and_counted() {
    use gatehouse_testkit::RawConn;
    use gatehouse_testkit::metrics::{parse_samples, sum};
    use std::time::Duration;

    let upstream = Upstream::hello();
    let ca = TestCa::new("handshake limits CA");
    let a = Cert::new(&ca, &["a.test"]);
    let gh = start(&with_tls(
        Config::proxy_to([upstream.addr()])
            .server("admin", "127.0.0.1:0")
            .server("client_header_timeout", "1s"),
        [tls("127.0.0.1:0", &[&a])],
    ));
    let https = gh.https_addr();

    let mut silent = RawConn::connect(https);
    assert!(
        !silent.closes_within(Duration::from_millis(500)),
        "closed before client_header_timeout"
    );
    assert!(
        silent.closes_within(Duration::from_secs(3)),
        "a client that sends no ClientHello is closed after client_header_timeout (1s)"
    );

    let mut garbage = RawConn::connect(https);
    garbage
        .send(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
        .expect("send");
    assert!(
        garbage.closes_within(Duration::from_secs(3)),
        "plain HTTP on a TLS port is refused"
    );

    let counted = |reason: &str| {
        let scrape = Req::get("/metrics").send(gh.admin_addr());
        let samples = parse_samples(&scrape.text());
        sum(
            &samples,
            "gatehouse_tls_handshake_failures_total",
            &[("reason", reason)],
        )
        .0
    };
    assert_eq!(counted("timeout"), 1.0);
    assert_eq!(counted("error"), 1.0);
}

// --- HTTP/1.1 over TLS: gatehouse's own engine ---

/// gatehouse with `config` and a TLS listener for `name`, and an HTTP/1.1 (ALPN) session with it.
fn http11_over_tls(config: Config, name: &str) -> (Gatehouse, HttpsConn) {
    let ca = TestCa::new("HTTP/1.1 over TLS CA");
    let cert = Cert::new(&ca, &[name]);
    let gh = start(&with_tls(config, [tls("127.0.0.1:0", &[&cert])]));
    let conn = Https::new(&ca.cert_der(), name)
        .alpn(&["http/1.1"])
        .connect(gh.https_addr())
        .unwrap();
    (gh, conn)
}

/// A TLS client that stops part-way through its request head gets a 408 on the TLS session,
/// as a plain one does (nginx closes without an answer).
#[test]
fn a_request_head_stalled_over_tls_gets_a_408() {
    let upstream = Upstream::hello();
    let (_gh, mut conn) = http11_over_tls(
        Config::proxy_to([upstream.addr()]).server("client_header_timeout", "1s"),
        "stall.test",
    );
    let started = std::time::Instant::now();
    conn.write_raw(b"GET / HTTP/1.1\r\nHost: stall.test\r\nX-Sl")
        .unwrap();
    let answer = conn.read_to_close(std::time::Duration::from_secs(10));
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408 "), "{text}");
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    assert!(upstream.requests().is_empty());
}

/// The request-smuggling shapes are refused over TLS as on plain listeners: a head with both
/// Transfer-Encoding and Content-Length is a 400 and never reaches the upstream.
#[test]
fn transfer_encoding_with_content_length_over_tls_is_a_400() {
    let upstream = Upstream::hello();
    let (_gh, mut conn) = http11_over_tls(Config::proxy_to([upstream.addr()]), "smuggle.test");
    conn.write_raw(
        b"POST / HTTP/1.1\r\nHost: smuggle.test\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: smuggle.test\r\n\r\n",
    )
    .unwrap();
    let answer = conn.read_to_close(std::time::Duration::from_secs(5));
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 400 "), "{text}");
    assert_eq!(text.matches("HTTP/1.1 ").count(), 1, "{text}");
    assert!(upstream.requests().is_empty());
}

/// A response framed by the end of the connection (an HTTP/1.0 client, a body of unknown
/// length) over TLS ends with `close_notify`: without it the client could not tell the end of
/// the body from a truncation.
#[test]
fn a_tls_session_ends_with_close_notify() {
    let upstream = Upstream::start(Behavior::RawThenClose(
        b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nbody until close".to_vec(),
    ));
    let (_gh, mut conn) = http11_over_tls(Config::proxy_to([upstream.addr()]), "close.test");
    conn.write_raw(b"GET / HTTP/1.0\r\nHost: close.test\r\n\r\n")
        .unwrap();
    let answer = conn
        .read_to_close_notify(std::time::Duration::from_secs(10))
        .expect("the session ends with close_notify");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.ends_with("\r\n\r\nbody until close"), "{text}");
}
