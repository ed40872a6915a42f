//! Real HAProxy (2.6 on Debian) made to end sessions with each termination state; its httplog
//! lines, received over syslog UDP by the test, explained.

use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gatehouse_testkit::free_port;
use gatehouse_testkit::peers::{Peer, PeerKind};
use gatehouse_testkit::{Behavior, FullBacklog, Reply, TempFile, Upstream, big_header_response};
use serde_json::Value;

use crate::{assert_group, explain, explain_json, get, group, refused_addr, wait_for};

/// A syslog receiver on a loopback UDP port: every datagram, one line each.
struct Syslog {
    port: u16,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Syslog {
    fn start() -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind udp: {e}"));
        let port = socket
            .local_addr()
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("{e}"));
        let _ = socket.set_read_timeout(Some(Duration::from_millis(200)));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65_536];
            // Ends when the test's receiver is dropped (its Arc is the only other owner).
            while Arc::strong_count(&sink) > 1 {
                if let Ok(n) = socket.recv(&mut buf) {
                    let text = String::from_utf8_lossy(buf.get(..n).unwrap_or_default());
                    if let Ok(mut lines) = sink.lock() {
                        lines.push(text.trim_end().to_owned());
                    }
                }
            }
        });
        Self { port, lines }
    }

    fn text(&self) -> String {
        self.lines.lock().map(|l| l.join("\n")).unwrap_or_default()
    }
}

/// HAProxy logging `option httplog` to the receiver, with `backend app` serving from `server`.
fn haproxy(syslog: &Syslog, server: SocketAddr, extra: &str) -> (Peer, SocketAddr) {
    let port = free_port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let config = format!(
        "global\n log 127.0.0.1:{} local0\ndefaults\n mode http\n log global\n option httplog\n \
         timeout client 1s\n timeout server 1s\n timeout connect 500ms\n retries 1\n{extra}\n\
         frontend web\n bind 127.0.0.1:{port}\n default_backend app\n\
         backend app\n server s1 {server}\n",
        syslog.port
    );
    (Peer::start(PeerKind::Haproxy, &config, addr), addr)
}

/// Sends `path`, waits for its log line and explains the received lines.
fn provoke(syslog: &Syslog, addr: SocketAddr, path: &str) -> (Value, TempFile) {
    get(addr, path);
    let text = wait_for("syslog", path, || syslog.text());
    let file = TempFile::with_contents("haproxy", ".log", text.as_bytes());
    (explain_json(&[file.path()]), file)
}

#[test]
fn sc_refused_with_retries() {
    let syslog = Syslog::start();
    let dead = refused_addr();
    let (_peer, addr) = haproxy(&syslog, dead, "");
    let (report, _file) = provoke(&syslog, addr, "/refused");
    let g = group(&report, "haproxy", "connection_refused");
    assert_group(g, "app/s1", "check");
    let example = &g["examples"][0];
    assert!(
        example["message"]
            .as_str()
            .unwrap_or_default()
            .contains("SC--"),
        "{g:#}"
    );
    assert!(
        example["message"]
            .as_str()
            .unwrap_or_default()
            .contains("1 retries"),
        "{g:#}"
    );
    assert_eq!(example["status"], 503, "{g:#}");
}

#[test]
fn sc_connect_timeout() {
    let syslog = Syslog::start();
    let backlog = FullBacklog::start();
    let (_peer, addr) = haproxy(&syslog, backlog.addr(), "");
    let (report, _file) = provoke(&syslog, addr, "/slow-connect");
    assert_group(
        group(&report, "haproxy", "connection_timeout"),
        "app/s1",
        "timeout connect",
    );
}

#[test]
fn sh_server_timeout() {
    let syslog = Syslog::start();
    let up = Upstream::start(Behavior::Hang);
    let (_peer, addr) = haproxy(&syslog, up.addr(), "");
    let (report, _file) = provoke(&syslog, addr, "/hang");
    let g = group(&report, "haproxy", "http_response_timeout");
    assert_group(g, "app/s1", "timeout server");
    assert!(
        g["examples"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("sH--")
    );
    assert_eq!(g["client_statuses"]["504"], 1, "{g:#}");
}

#[test]
fn sh_server_aborted() {
    let syslog = Syslog::start();
    let up = Upstream::start(Behavior::CloseAfterRequest);
    let (_peer, addr) = haproxy(&syslog, up.addr(), "");
    let (report, _file) = provoke(&syslog, addr, "/close");
    let g = group(&report, "haproxy", "connection_terminated");
    assert_group(g, "app/s1", "http-reuse");
    assert!(
        g["fix"]
            .as_str()
            .unwrap_or_default()
            .contains("option http-server-close")
    );
}

#[test]
fn ph_header_too_big() {
    let syslog = Syslog::start();
    let up = Upstream::start(Behavior::RawThenClose(big_header_response(20_000)));
    let (_peer, addr) = haproxy(&syslog, up.addr(), "");
    let (report, _file) = provoke(&syslog, addr, "/big");
    let g = group(&report, "haproxy", "http_protocol_error");
    assert_group(g, "app/s1", "tune.bufsize");
    assert!(
        g["examples"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("PH--")
    );
}

#[test]
fn sd_server_died_in_the_body() {
    let syslog = Syslog::start();
    let up = Upstream::start(Behavior::RawThenClose(
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc".to_vec(),
    ));
    let (_peer, addr) = haproxy(&syslog, up.addr(), "");
    let (report, _file) = provoke(&syslog, addr, "/half");
    let g = group(&report, "haproxy", "http_response_incomplete");
    assert_group(g, "app/s1", "http-reuse");
    assert_eq!(g["client_statuses"]["200"], 1, "{g:#}");
}

#[test]
fn cd_client_timeout_is_not_an_upstream_failure() {
    let syslog = Syslog::start();
    let up = Upstream::serve(Reply::ok(vec![b'x'; 64 * 1024 * 1024]));
    let (_peer, addr) = haproxy(&syslog, up.addr(), "");
    // A client that sends its request and never reads the 64 MiB answer.
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect: {e}"));
    std::io::Write::write_all(&mut stream, b"GET /stalled HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap_or_else(|e| panic!("write: {e}"));
    let text = wait_for("syslog", "/stalled", || syslog.text());
    drop(stream);
    let file = TempFile::with_contents("haproxy", ".log", text.as_bytes());
    let run = explain(&["--json", &file.path().display().to_string()], None);
    assert_eq!(
        run.code,
        Some(0),
        "a client timeout alone is no upstream failure: {run:?}"
    );
    let report: Value =
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {run:?}"));
    // The peer's own readiness probe connects and closes: a `CR` line, also client-side.
    let client = report["client_side"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["state"] == "cD"))
        .unwrap_or_else(|| panic!("no cD: {report:#}"));
    assert_eq!(client["state"], "cD", "{report:#}");
    assert_eq!(client["server"], "app/s1", "{report:#}");
    assert_eq!(client["directive"], "timeout client", "{report:#}");
    assert_eq!(report["counts"]["failures"], 0, "{report:#}");
}

#[test]
fn sq_queue_timeout() {
    let syslog = Syslog::start();
    let up = Upstream::start(Behavior::Hang);
    let port = free_port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    // One connection per server; the second request waits in the queue past `timeout queue`.
    let config = format!(
        "global\n log 127.0.0.1:{} local0\ndefaults\n mode http\n log global\n option httplog\n \
         timeout client 5s\n timeout server 3s\n timeout connect 500ms\n timeout queue 500ms\n\
         frontend web\n bind 127.0.0.1:{port}\n default_backend app\n\
         backend app\n server s1 {} maxconn 1\n",
        syslog.port,
        up.addr()
    );
    let _peer = Peer::start(PeerKind::Haproxy, &config, addr);
    let first = std::thread::spawn(move || get(addr, "/holds-the-slot"));
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(get(addr, "/queued"), 503);
    let text = wait_for("syslog", "/queued", || syslog.text());
    let file = TempFile::with_contents("haproxy", ".log", text.as_bytes());
    let report = explain_json(&[file.path()]);
    let g = group(&report, "haproxy", "connection_limit_reached");
    // Queued in the backend, never given a server: HAProxy logs <NOSRV>.
    assert_group(g, "app/<NOSRV>", "timeout queue");
    assert!(
        g["examples"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("sQ--"),
        "{g:#}"
    );
    let _ = first.join();
}

#[test]
fn raw_lines_without_a_syslog_header() {
    let syslog = Syslog::start();
    let dead = refused_addr();
    let port = free_port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let config = format!(
        "global\n log 127.0.0.1:{} format raw local0\ndefaults\n mode http\n log global\n option httplog\n \
         timeout client 1s\n timeout server 1s\n timeout connect 500ms\n retries 0\n\
         frontend web\n bind 127.0.0.1:{port}\n default_backend app\n\
         backend app\n server s1 {dead}\n",
        syslog.port
    );
    let _peer = Peer::start(PeerKind::Haproxy, &config, addr);
    get(addr, "/raw");
    let text = wait_for("syslog", "/raw", || syslog.text());
    assert!(!text.contains("haproxy["), "not raw: {text}");
    let file = TempFile::with_contents("haproxy", ".log", text.as_bytes());
    let report = explain_json(&[file.path()]);
    assert_group(
        group(&report, "haproxy", "connection_refused"),
        "app/s1",
        "check",
    );
    assert_eq!(report["counts"]["unreadable"], 0, "{report:#}");
}
