//! Behind load balancers: the PROXY protocol on listeners (v1 and v2, only from
//! `trusted_proxies`), the real client address from `X-Forwarded-For` behind trusted hops,
//! forwarding fields a client cannot forge, `Forwarded` (RFC 7239), and the full Proxy-Status
//! for the operators' own addresses. With real HAProxy in front and curl as the client.

use std::io::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use gatehouse_testkit::free_port;
use gatehouse_testkit::https::{TlsListener, tls_listeners};
use gatehouse_testkit::metrics::{parse_samples, sum};
use gatehouse_testkit::peers::{Peer, PeerKind};
use gatehouse_testkit::tls::TestCa;
use gatehouse_testkit::{Config, Gatehouse, RawConn, Req, Upstream, connect_from, curl};

fn start(config: &Config) -> Gatehouse {
    Gatehouse::start(Path::new(env!("CARGO_BIN_EXE_gatehouse")), &config.toml())
}

fn trusting(config: Config, trusted: &[&str]) -> Config {
    config.server("trusted_proxies", trusted.to_vec())
}

fn refused(gh: &Gatehouse, reason: &str) -> f64 {
    let scrape = Req::get("/metrics").send(gh.admin_addr()).text();
    sum(
        &parse_samples(&scrape),
        "gatehouse_proxy_protocol_refused_total",
        &[("reason", reason)],
    )
    .0
}

/// Sends `prefix` then one GET on a new connection; the response.
fn get_after(addr: SocketAddr, prefix: &[u8], path: &str) -> gatehouse_testkit::RawResponse {
    let mut conn = RawConn::connect(addr);
    let mut bytes = prefix.to_vec();
    bytes.extend_from_slice(
        format!("GET {path} HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    conn.send(&bytes).expect("send");
    conn.read_response(false)
}

fn proxy_v2(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> Vec<u8> {
    let mut header = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    header.extend_from_slice(&[0x21, 0x11, 0, 12]);
    header.extend_from_slice(&src);
    header.extend_from_slice(&dst);
    header.extend_from_slice(&sport.to_be_bytes());
    header.extend_from_slice(&dport.to_be_bytes());
    header
}

// --- forwarding fields ---

#[test]
fn an_untrusted_clients_forwarding_fields_never_reach_the_upstream() {
    let upstream = Upstream::hello();
    let gh = start(&Config::proxy_to([upstream.addr()]).server("forwarded", true));
    let resp = Req::get("/spoof")
        .host("app.test")
        .header("Forwarded", "for=6.6.6.6;proto=https")
        .header("X-Forwarded-For", "6.6.6.6")
        .header("X-Real-IP", "6.6.6.6")
        .header("X-Forwarded-Proto", "https")
        .header("X-Forwarded-Host", "admin.internal")
        .header("X-Forwarded-Prefix", "/admin")
        .send(gh.addr());
    assert_eq!(resp.status, 200);
    let seen = &upstream.requests_to("/spoof")[0];
    assert_eq!(seen.headers.get_all("x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(seen.header("x-real-ip"), Some("127.0.0.1"));
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));
    assert_eq!(seen.header("x-forwarded-host"), Some("app.test"));
    assert_eq!(seen.header("x-forwarded-prefix"), None, "{seen:#?}");
    assert_eq!(
        seen.headers.get_all("forwarded"),
        ["for=127.0.0.1;host=\"app.test\";proto=http"],
        "the client's own Forwarded is replaced by gatehouse's: {seen:#?}"
    );
    let access = gh.access_log(resp.request_id());
    assert_eq!(access["client"], "127.0.0.1");
}

#[test]
fn behind_a_trusted_proxy_the_client_is_the_first_untrusted_hop_from_the_right() {
    let upstream = Upstream::hello();
    let gh = start(
        &trusting(Config::proxy_to([upstream.addr()]), &["127.0.0.0/8"]).server("forwarded", true),
    );
    // What a CDN in front sends: a client that forged its own entry, then the real client.
    let resp = Req::get("/real")
        .host("app.test")
        .header("X-Forwarded-For", "6.6.6.6, 198.51.100.7")
        .header("X-Forwarded-Proto", "https")
        .header("Forwarded", "for=198.51.100.7;proto=https")
        .send(gh.addr());
    assert_eq!(resp.status, 200);
    let seen = &upstream.requests_to("/real")[0];
    assert_eq!(seen.header("x-real-ip"), Some("198.51.100.7"));
    assert_eq!(
        seen.headers.get_all("x-forwarded-for"),
        ["6.6.6.6, 198.51.100.7, 127.0.0.1"],
        "a trusted proxy's list is extended, not replaced"
    );
    assert_eq!(
        seen.header("x-forwarded-proto"),
        Some("https"),
        "the trusted proxy terminated TLS: its scheme stands"
    );
    assert_eq!(
        seen.headers.get_all("forwarded"),
        [
            "for=198.51.100.7;proto=https",
            "for=127.0.0.1;host=\"app.test\";proto=http"
        ]
    );
    assert_eq!(gh.access_log(resp.request_id())["client"], "198.51.100.7");
}

#[test]
fn the_full_proxy_status_goes_to_the_operators_addresses_only() {
    let refused_port = gatehouse_testkit::closed_port();
    let gh = start(
        &trusting(
            Config::proxy_to([format!("127.0.0.1:{refused_port}")]),
            &["127.0.0.1/32"],
        )
        .server("proxy_status_full_for", vec!["10.0.0.0/8"]),
    );
    let outsider = Req::get("/")
        .header("X-Forwarded-For", "198.51.100.7")
        .send(gh.addr());
    let operator = Req::get("/")
        .header("X-Forwarded-For", "10.1.2.3")
        .send(gh.addr());
    assert_eq!((outsider.status, operator.status), (502, 502));
    let minimal = outsider.proxy_status();
    let full = operator.proxy_status();
    assert_eq!(minimal.last().error(), Some("connection_refused"));
    assert!(
        minimal.last().param("next-hop").is_none(),
        "minimal for the public: {minimal:?}"
    );
    assert!(
        full.last()
            .string("next-hop")
            .is_some_and(|hop| hop.contains(&refused_port.to_string())),
        "full for the operators' network: {full:?}"
    );
}

// --- PROXY protocol ---

#[test]
fn proxy_protocol_v1_and_v2_name_the_client_on_a_plain_listener() {
    let upstream = Upstream::hello();
    let gh = start(
        &trusting(Config::proxy_to([upstream.addr()]), &["127.0.0.1"])
            .server("proxy_protocol", true),
    );
    let v1 = get_after(
        gh.addr(),
        b"PROXY TCP4 203.0.113.9 127.0.0.1 40000 443\r\n",
        "/v1",
    );
    assert_eq!(v1.status, 200, "{v1:#?}");
    let v2 = get_after(
        gh.addr(),
        &proxy_v2([192, 0, 2, 44], 50000, [127, 0, 0, 1], 443),
        "/v2",
    );
    assert_eq!(v2.status, 200, "{v2:#?}");
    // A LOCAL header (the balancer's own health check): the peer is the client.
    let mut local = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    local.extend_from_slice(&[0x20, 0x00, 0, 0]);
    assert_eq!(get_after(gh.addr(), &local, "/local").status, 200);

    assert_eq!(
        upstream.requests_to("/v1")[0].header("x-real-ip"),
        Some("203.0.113.9")
    );
    assert_eq!(
        upstream.requests_to("/v2")[0]
            .headers
            .get_all("x-forwarded-for"),
        ["192.0.2.44"]
    );
    assert_eq!(
        upstream.requests_to("/local")[0].header("x-real-ip"),
        Some("127.0.0.1")
    );
    assert_eq!(gh.access_log(v1.request_id())["client"], "203.0.113.9");
    assert_eq!(gh.access_log(v2.request_id())["client"], "192.0.2.44");
}

#[test]
fn a_connection_without_a_valid_header_or_from_an_untrusted_peer_is_closed_and_counted() {
    let upstream = Upstream::hello();
    let gh = start(
        &trusting(Config::proxy_to([upstream.addr()]), &["127.0.0.1"])
            .server("proxy_protocol", true)
            .server("client_header_timeout", "1s")
            .server("admin", "127.0.0.1:0"),
    );
    // Plain HTTP where the header should be.
    let mut plain = RawConn::connect(gh.addr());
    plain
        .send(b"GET /plain HTTP/1.1\r\nHost: a\r\n\r\n")
        .expect("send");
    assert!(plain.closes_within(Duration::from_secs(5)));
    // A forged v1 line.
    let mut forged = RawConn::connect(gh.addr());
    forged
        .send(b"PROXY TCP4 999.0.0.1 127.0.0.1 1 2\r\nGET / HTTP/1.1\r\n\r\n")
        .expect("send");
    assert!(forged.closes_within(Duration::from_secs(5)));
    // Half a header, then nothing: closed at client_header_timeout.
    let mut stalled = RawConn::connect(gh.addr());
    stalled.send(b"PROXY TCP4 203.0.").expect("send");
    assert!(stalled.closes_within(Duration::from_secs(5)));
    // A valid header from a peer that is not trusted (127.0.0.2 is not 127.0.0.1).
    let untrusted = {
        let mut stream = connect_from([127, 0, 0, 2].into(), gh.addr());
        let _ = stream.write_all(
            b"PROXY TCP4 203.0.113.9 127.0.0.1 1 2\r\nGET /untrusted HTTP/1.1\r\nHost: a\r\n\r\n",
        );
        stream
    };
    assert!(closes(untrusted));
    assert!(upstream.requests().is_empty(), "nothing was forwarded");
    assert_eq!(refused(&gh, "invalid"), 2.0);
    assert_eq!(refused(&gh, "timeout"), 1.0);
    assert_eq!(refused(&gh, "untrusted"), 1.0);
    // The listener still serves a proper connection.
    let ok = get_after(
        gh.addr(),
        b"PROXY TCP4 203.0.113.9 127.0.0.1 1 2\r\n",
        "/ok",
    );
    assert_eq!(ok.status, 200);
}

fn closes(mut stream: TcpStream) -> bool {
    use std::io::Read as _;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut buf = [0u8; 64];
    matches!(stream.read(&mut buf), Ok(0) | Err(_))
}

#[test]
fn haproxy_in_front_sending_proxy_v2_gives_gatehouse_the_real_client() {
    let upstream = Upstream::hello();
    let gh = start(
        &trusting(Config::proxy_to([upstream.addr()]), &["127.0.0.1"])
            .server("proxy_protocol", true),
    );
    let port = free_port();
    let front: SocketAddr = ([127, 0, 0, 1], port).into();
    let config = format!(
        "defaults\n mode tcp\n timeout client 10s\n timeout server 10s\n timeout connect 2s\n\
         frontend lb\n bind 127.0.0.1:{port}\n default_backend gh\n\
         backend gh\n server gh {} send-proxy-v2\n",
        gh.addr()
    );
    let _haproxy = Peer::start(PeerKind::Haproxy, &config, front);
    // The client comes from 127.0.0.2; HAProxy connects to gatehouse from 127.0.0.1.
    let out = curl(&[
        "--interface",
        "127.0.0.2",
        &format!("http://{front}/through-haproxy"),
    ]);
    assert_eq!(out.status(), 200, "{out:?}");
    let seen = &upstream.requests_to("/through-haproxy")[0];
    assert_eq!(seen.header("x-real-ip"), Some("127.0.0.2"), "{seen:#?}");
    assert_eq!(seen.headers.get_all("x-forwarded-for"), ["127.0.0.2"]);
}

#[test]
fn a_tls_listener_takes_the_header_before_the_handshake() {
    let upstream = Upstream::hello();
    let ca = TestCa::new("proxy protocol CA");
    let cert = ca.leaf(&["a.test"]);
    let (cert_file, key_file) = cert.write_pem();
    let gh = start(
        &trusting(Config::proxy_to([upstream.addr()]), &["127.0.0.1"]).server(
            "tls",
            tls_listeners([TlsListener::new(["127.0.0.1:0"])
                .certificate(cert_file.path(), key_file.path())
                .proxy_protocol()]),
        ),
    );
    let ca_file = ca.write_pem();
    let port = gh.https_addr().port();
    let out = curl(&[
        "--haproxy-protocol",
        "--http1.1",
        "--cacert",
        &ca_file.path().display().to_string(),
        "--resolve",
        &format!("a.test:{port}:127.0.0.1"),
        &format!("https://a.test:{port}/tls"),
    ]);
    assert_eq!(out.status(), 200, "{out:?}");
    let seen = &upstream.requests_to("/tls")[0];
    assert_eq!(seen.header("x-forwarded-proto"), Some("https"));
    assert_eq!(seen.header("x-real-ip"), Some("127.0.0.1"));
    // Without the header, the TLS listener refuses the connection.
    let plain_tls = curl(&[
        "--cacert",
        &ca_file.path().display().to_string(),
        "--resolve",
        &format!("a.test:{port}:127.0.0.1"),
        &format!("https://a.test:{port}/no-header"),
    ]);
    assert_ne!(plain_tls.status(), 200, "{plain_tls:?}");
    assert!(upstream.requests_to("/no-header").is_empty());
}

// --- check ---

#[test]
fn check_refuses_proxy_protocol_without_trusted_proxies_and_bad_blocks() {
    let dir = gatehouse_testkit::TempFile::with_contents(
        "edge-check",
        ".toml",
        b"[server]\nproxy_protocol = true\ntrusted_proxies = [\"10.0.0.0/33\"]\n\n[[route]]\nupstream = \"app\"\n\n[upstream.app]\nservers = [\"127.0.0.1:3000\"]\n",
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .arg("check")
        .arg("-c")
        .arg(dir.path())
        .output()
        .expect("run check");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(":3:") && stderr.contains("prefix longer than 32 bits"),
        "{stderr}"
    );
    assert!(
        stderr.contains(":2:") && stderr.contains("trusted_proxies is empty"),
        "{stderr}"
    );
    // The same for a TLS listener's own proxy_protocol.
    let tls = gatehouse_testkit::TempFile::with_contents(
        "edge-check-tls",
        ".toml",
        b"[[server.tls]]\nlisten = [\"127.0.0.1:0\"]\nproxy_protocol = true\n\n[[route]]\nupstream = \"app\"\n\n[upstream.app]\nservers = [\"127.0.0.1:3000\"]\n",
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .arg("check")
        .arg("-c")
        .arg(tls.path())
        .output()
        .expect("run check");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(":3:") && stderr.contains("server.tls[0].proxy_protocol"),
        "{stderr}"
    );
}

// --- PROXY protocol to upstreams ---

/// nginx listening with `proxy_protocol`, answering with the address the header named.
fn nginx_behind() -> (Peer, SocketAddr) {
    let port = free_port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let config = format!(
        "pid {{dir}}/nginx.pid;\nerror_log {{dir}}/error.log info;\nevents {{}}\nhttp {{\n access_log {{dir}}/access.log;\n server {{\n  listen 127.0.0.1:{port} proxy_protocol;\n  location /health {{ return 200 \"ok\"; }}\n  location / {{ return 200 \"client=$proxy_protocol_addr\"; }}\n }}\n}}\n"
    );
    (Peer::start(PeerKind::Nginx, &config, addr), addr)
}

fn through(gh: &Gatehouse, from: [u8; 4], path: &str) -> String {
    let mut stream = connect_from(from.into(), gh.addr());
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .expect("send");
    let mut out = String::new();
    let _ = std::io::Read::read_to_string(&mut stream, &mut out);
    out
}

#[test]
fn nginx_behind_learns_each_client_from_the_header_gatehouse_sends() {
    let (nginx, addr) = nginx_behind();
    for version in ["v1", "v2"] {
        let gh = start(
            &Config::proxy_to([addr])
                .upstream_setting("app", "send_proxy_protocol", version)
                .health("app", "path", "/health")
                .health("app", "interval", "100ms")
                .server("admin", "127.0.0.1:0"),
        );
        // Two clients, one after the other: each request names its own client, never the
        // previous one's (a connection with a PROXY header is never reused for another).
        let first = through(&gh, [127, 0, 0, 2], "/a");
        let second = through(&gh, [127, 0, 0, 3], "/b");
        assert!(first.ends_with("client=127.0.0.2"), "{version}: {first}");
        assert!(second.ends_with("client=127.0.0.3"), "{version}: {second}");
        // Health checks send a LOCAL / UNKNOWN header, which nginx accepts and answers.
        std::thread::sleep(Duration::from_millis(500));
        let status = Req::get("/status.json").send(gh.admin_addr()).json();
        let server = &status["pools"][0]["servers"][0];
        assert_eq!(server["state"], "healthy", "{version}: {server:#}");
    }
    let access = nginx.read("access.log");
    assert!(
        access.contains("\"GET /health HTTP/1.1\" 200"),
        "health checks reached nginx: {access}"
    );
    assert!(
        !nginx.read("error.log").contains("broken header"),
        "{}",
        nginx.read("error.log")
    );
}
