//! gatehouse's own logs (text and JSON, and its combined and JSON access lines), written by the
//! real binary meeting a refused and a hung upstream, explained.

use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gatehouse_testkit::free_port;
use gatehouse_testkit::{Behavior, TempFile, Upstream};
use serde_json::Value;

use crate::{assert_group, explain_json, get, group, refused_addr, wait_for};

/// A gatehouse writing its logs into a temp directory; killed (by its PID) when dropped.
struct Logged {
    child: Child,
    dir: TempFile,
    addr: SocketAddr,
}

impl Drop for Logged {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Logged {
    /// `server_keys` go into `[server]`; routes `/slow` to a hung upstream and the rest to
    /// `servers`.
    fn start(server_keys: &str, refused: SocketAddr, hung: SocketAddr) -> Self {
        let dir = TempFile::dir("explain-gatehouse");
        let port = free_port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let config = format!(
            "[server]\nlisten = [\"{addr}\"]\nlog_file = \"{d}/gatehouse.log\"\n{server_keys}\n\
             [[route]]\npath = \"/slow\"\nupstream = \"slow\"\n\
             [[route]]\nupstream = \"app\"\n\
             [upstream.app]\nservers = [\"{refused}\"]\n\
             [upstream.slow]\nservers = [\"{hung}\"]\nresponse_timeout = \"500ms\"\n",
            d = dir.path().display()
        );
        let path = dir.path().join("gatehouse.toml");
        std::fs::write(&path, config).unwrap_or_else(|e| panic!("write config: {e}"));
        let child = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
            .arg("run")
            .arg("-c")
            .arg(&path)
            .env_remove("RUST_LOG")
            .env("STATE_DIRECTORY", dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start gatehouse: {e}"));
        let logged = Self { child, dir, addr };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < deadline,
                "gatehouse not listening on {addr}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        logged
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }
}

/// Makes one refused and one timed-out request through a gatehouse logging as `server_keys`
/// says, and explains `files` of its directory.
fn explain_gatehouse(server_keys: &str, files: &[&str], wait_in: &str) -> Value {
    let refused = refused_addr();
    let hung = Upstream::start(Behavior::Hang);
    let gatehouse = Logged::start(server_keys, refused, hung.addr());
    assert_eq!(get(gatehouse.addr, "/refused?x=1"), 502);
    assert_eq!(get(gatehouse.addr, "/slow"), 504);
    wait_for(wait_in, "/slow", || gatehouse.read(wait_in));
    let paths: Vec<_> = files.iter().map(|f| gatehouse.dir.path().join(f)).collect();
    let paths: Vec<&std::path::Path> = paths.iter().map(|p| p.as_path()).collect();
    let report = explain_json(&paths);
    let g = group(&report, "gatehouse", "connection_refused");
    assert_group(g, &format!("app/{refused}"), "servers");
    assert!(
        g["fix"]
            .as_str()
            .unwrap_or_default()
            .contains("upstream.app.servers"),
        "{g:#}"
    );
    assert_eq!(g["client_statuses"]["502"], 1, "{g:#}");
    let g = group(&report, "gatehouse", "http_response_timeout");
    assert_group(g, &format!("slow/{}", hung.addr()), "response_timeout");
    assert!(
        g["fix"]
            .as_str()
            .unwrap_or_default()
            .contains("upstream.slow.response_timeout"),
        "{g:#}"
    );
    // One failure per request: the access record was matched with its warning.
    assert_eq!(report["counts"]["failures"], 2, "{report:#}");
    report
}

#[test]
fn text_log() {
    explain_gatehouse("log_format = \"text\"", &["gatehouse.log"], "gatehouse.log");
}

#[test]
fn json_log() {
    explain_gatehouse("log_format = \"json\"", &["gatehouse.log"], "gatehouse.log");
}

#[test]
fn combined_access_log_alone() {
    explain_gatehouse_access("combined");
}

#[test]
fn json_access_log_alone() {
    explain_gatehouse_access("json");
}

/// Only the access lines (`access_log_format`): they name the kind themselves.
fn explain_gatehouse_access(format: &str) {
    let refused = refused_addr();
    let hung = Upstream::start(Behavior::Hang);
    let dir = TempFile::dir("explain-access");
    let keys = format!(
        "access_log_format = \"{format}\"\naccess_log_file = \"{}/access.log\"",
        dir.path().display()
    );
    let gatehouse = Logged::start(&keys, refused, hung.addr());
    assert_eq!(get(gatehouse.addr, "/refused"), 502);
    let access = dir.path().join("access.log");
    wait_for("access.log", "/refused", || {
        std::fs::read_to_string(&access).unwrap_or_default()
    });
    let report = explain_json(&[&access]);
    let g = group(&report, "gatehouse", "connection_refused");
    assert_group(g, &format!("app/{refused}"), "servers");
    assert_eq!(g["guessed"], 0, "{g:#}");
}
