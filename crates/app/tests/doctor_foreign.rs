//! `gatehouse doctor --nginx FILE` and `--haproxy FILE`: the doctor's checks on the upstreams a
//! foreign config names, with that proxy's limits and defaults, naming its directives (and
//! where they are set, or their default) in the fixes. Each case is also run through the real
//! nginx or HAProxy, to show the proxy itself fails the same request the way the doctor says.
//!
//! Configs are checked by `nginx -t` / `haproxy -c` first; everything is on loopback; each run
//! of the command is bounded.

use std::io::Read as _;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gatehouse_testkit::free_port;
use gatehouse_testkit::peers::{Peer, PeerKind};
use gatehouse_testkit::{Behavior, Reply, Req, Upstream, big_header_response};
use serde_json::Value;

const RUN_LIMIT: Duration = Duration::from_secs(30);

/// `gatehouse doctor --json --FLAG FILE EXTRA...`: the exit code and the report.
fn doctor(flag: &str, file: &Path, extra: &[&str]) -> (Option<i32>, Value, String) {
    let started = Instant::now();
    let file = file.display().to_string();
    let mut args = vec!["doctor", "--json", flag, &file];
    args.extend_from_slice(extra);
    let mut child = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start gatehouse");
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > RUN_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("gatehouse {args:?} did not exit within {RUN_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let stdout = reader.join().expect("stdout reader");
    let stderr = err_reader.join().expect("stderr reader");
    let report = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}\nstderr:\n{stderr}"));
    (status.code(), report, stderr)
}

/// The verdict of the only server.
fn only_verdict(report: &Value) -> &Value {
    let servers: Vec<&Value> = report["upstreams"]
        .as_array()
        .expect("upstreams")
        .iter()
        .flat_map(|u| u["servers"].as_array().expect("servers"))
        .collect();
    assert_eq!(servers.len(), 1, "{report:#}");
    &servers[0]["verdict"]
}

fn assert_verdict(report: &Value, kind: &str, words: &[&str]) {
    let verdict = only_verdict(report);
    assert_eq!(verdict["healthy"], false, "{report:#}");
    assert_eq!(verdict["kind"], kind, "{report:#}");
    let said = format!(
        "{} {} {}",
        verdict["summary"].as_str().unwrap_or(""),
        verdict["cause"].as_str().unwrap_or(""),
        verdict["fix"].as_str().unwrap_or("")
    );
    for w in words {
        assert!(
            said.contains(w),
            "the verdict does not say {w:?}:\n{verdict:#}"
        );
    }
    // gatehouse's own key names stay out of a foreign report.
    assert!(!said.contains("upstream.app."), "{verdict:#}");
}

/// A port where connections are refused for the whole test (see the testkit's).
fn closed_port() -> u16 {
    gatehouse_testkit::closed_port()
}

/// An nginx config passing everything on to `upstream app { server ADDR; }`, with `extra`
/// in the location.
fn nginx_config(listen: u16, upstream: SocketAddr, extra: &str) -> String {
    format!(
        "pid {{dir}}/nginx.pid;\nerror_log {{dir}}/error.log;\nevents {{}}\nhttp {{\n    access_log off;\n    upstream app {{\n        server {upstream};\n    }}\n    server {{\n        listen 127.0.0.1:{listen};\n        location / {{\n            proxy_pass http://app;\n{extra}        }}\n    }}\n}}\n"
    )
}

fn haproxy_config(listen: u16, upstream: SocketAddr, global: &str, timeouts: &str) -> String {
    format!(
        "global\n{global}defaults\n    mode http\n    timeout client 10s\n{timeouts}frontend web\n    bind 127.0.0.1:{listen}\n    default_backend app\nbackend app\n    server a1 {upstream}\n"
    )
}

fn get_status(addr: SocketAddr) -> u16 {
    Req::get("/").host("app.test").send(addr).status
}

// === nginx ===

#[test]
fn nginx_response_head_over_one_page_names_proxy_buffer_size() {
    let upstream = Upstream::start(Behavior::RawThenClose(big_header_response(6000)));
    let listen = free_port();
    let config = nginx_config(listen, upstream.addr(), "");
    // nginx itself refuses the response: its default buffer is one page.
    let nginx = Peer::start(PeerKind::Nginx, &config, ([127, 0, 0, 1], listen).into());
    assert_eq!(get_status(([127, 0, 0, 1], listen).into()), 502);
    assert!(
        nginx
            .read("error.log")
            .contains("upstream sent too big header")
    );
    let (code, report, _) = doctor("--nginx", nginx.config_path(), &[]);
    assert_eq!(code, Some(1));
    assert_eq!(report["proxy"], "nginx");
    assert_verdict(
        &report,
        "http_response_header_section_size",
        &["proxy_buffer_size (not set: default 4k", "to at least 7k"],
    );
}

#[test]
fn nginx_raised_proxy_buffer_size_is_healthy() {
    let upstream = Upstream::start(Behavior::RawThenClose(big_header_response(6000)));
    let listen = free_port();
    let config = nginx_config(
        listen,
        upstream.addr(),
        "            proxy_buffer_size 8k;\n",
    );
    let nginx = Peer::start(PeerKind::Nginx, &config, ([127, 0, 0, 1], listen).into());
    assert_eq!(get_status(([127, 0, 0, 1], listen).into()), 200);
    let (code, report, _) = doctor("--nginx", nginx.config_path(), &[]);
    assert_eq!(code, Some(0), "{report:#}");
    assert_eq!(only_verdict(&report)["healthy"], true);
}

#[test]
fn nginx_slow_upstream_names_proxy_read_timeout_where_it_is_set() {
    let upstream = Upstream::start(Behavior::Delay(Duration::from_secs(2), Reply::ok("late")));
    let listen = free_port();
    let config = nginx_config(
        listen,
        upstream.addr(),
        "            proxy_read_timeout 1s;\n",
    );
    let nginx = Peer::start(PeerKind::Nginx, &config, ([127, 0, 0, 1], listen).into());
    assert_eq!(get_status(([127, 0, 0, 1], listen).into()), 504);
    let (code, report, _) = doctor("--nginx", nginx.config_path(), &["--wait", "4s"]);
    assert_eq!(code, Some(1));
    let at = format!("{}:13", nginx.config_path().display());
    assert_verdict(
        &report,
        "http_response_timeout",
        &[
            &format!("proxy_read_timeout (set to 1s at {at})"),
            "later than proxy_read_timeout",
        ],
    );
}

#[test]
fn nginx_refused_port_is_connection_refused_in_the_upstream_block() {
    let port = closed_port();
    let listen = free_port();
    let config = nginx_config(listen, ([127, 0, 0, 1], port).into(), "");
    let (dir, path) = Peer::checked_config(PeerKind::Nginx, &config);
    let (code, report, _) = doctor("--nginx", &path, &[]);
    assert_eq!(code, Some(1));
    assert_verdict(
        &report,
        "connection_refused",
        &["upstream app (", "peer.conf:6"],
    );
    drop(dir);
}

#[test]
fn nginx_proxy_pass_to_a_url_is_checked_too() {
    let upstream = Upstream::start(Behavior::Serve(Reply::ok("fine")));
    let listen = free_port();
    let config = format!(
        "pid {{dir}}/nginx.pid;\nerror_log {{dir}}/error.log;\nevents {{}}\nhttp {{\n    server {{\n        listen 127.0.0.1:{listen};\n        location / {{ proxy_pass http://{}; }}\n    }}\n}}\n",
        upstream.addr()
    );
    let (dir, path) = Peer::checked_config(PeerKind::Nginx, &config);
    let (code, report, _) = doctor("--nginx", &path, &[]);
    assert_eq!(code, Some(0), "{report:#}");
    assert_eq!(only_verdict(&report)["healthy"], true);
    assert_eq!(upstream.requests().len(), 1);
    drop(dir);
}

// === HAProxy ===

#[test]
fn haproxy_response_head_over_the_buffer_names_tune_bufsize() {
    let upstream = Upstream::start(Behavior::RawThenClose(big_header_response(20_000)));
    let listen = free_port();
    let config = haproxy_config(
        listen,
        upstream.addr(),
        "",
        "    timeout connect 2s\n    timeout server 5s\n",
    );
    let haproxy = Peer::start(PeerKind::Haproxy, &config, ([127, 0, 0, 1], listen).into());
    assert_eq!(get_status(([127, 0, 0, 1], listen).into()), 502);
    let (code, report, _) = doctor("--haproxy", haproxy.config_path(), &[]);
    assert_eq!(code, Some(1));
    assert_eq!(report["proxy"], "HAProxy");
    assert_verdict(
        &report,
        "http_response_header_section_size",
        &["tune.bufsize (not set: default 16384, minus tune.maxrewrite 1024)"],
    );
}

#[test]
fn haproxy_slow_server_names_timeout_server() {
    let upstream = Upstream::start(Behavior::Delay(Duration::from_secs(2), Reply::ok("late")));
    let listen = free_port();
    let config = haproxy_config(
        listen,
        upstream.addr(),
        "",
        "    timeout connect 2s\n    timeout server 1s\n",
    );
    let haproxy = Peer::start(PeerKind::Haproxy, &config, ([127, 0, 0, 1], listen).into());
    assert_eq!(get_status(([127, 0, 0, 1], listen).into()), 504);
    let (code, report, _) = doctor("--haproxy", haproxy.config_path(), &["--wait", "4s"]);
    assert_eq!(code, Some(1));
    let at = format!("{}:6", haproxy.config_path().display());
    assert_verdict(
        &report,
        "http_response_timeout",
        &[&format!("timeout server (set to 1s at {at})")],
    );
}

#[test]
fn haproxy_refused_port_is_connection_refused_on_the_server_line() {
    let port = closed_port();
    let listen = free_port();
    let config = haproxy_config(
        listen,
        ([127, 0, 0, 1], port).into(),
        "",
        "    timeout connect 2s\n    timeout server 5s\n",
    );
    let (dir, path) = Peer::checked_config(PeerKind::Haproxy, &config);
    let (code, report, _) = doctor("--haproxy", &path, &[]);
    assert_eq!(code, Some(1));
    assert_verdict(&report, "connection_refused", &["backend app ("]);
    drop(dir);
}

#[test]
fn unreadable_foreign_config_exits_1() {
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["doctor", "--nginx", "/nonexistent/nginx.conf"])
        .output()
        .expect("run");
    assert!(started.elapsed() < RUN_LIMIT);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot read"), "{stderr}");
}

#[test]
fn text_report_speaks_nginx() {
    let upstream = Upstream::start(Behavior::Serve(Reply::ok("fine")));
    let listen = free_port();
    let config = nginx_config(
        listen,
        upstream.addr(),
        "            proxy_read_timeout 7s;\n",
    );
    let (dir, path) = Peer::checked_config(PeerKind::Nginx, &config);
    let output = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .arg("doctor")
        .arg("--nginx")
        .arg(&path)
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(text.contains("with nginx's limits and defaults"), "{text}");
    assert!(text.contains("(proxy_read_timeout 7000 ms)"), "{text}");
    assert!(text.contains("(proxy_buffer_size 4096 B)"), "{text}");
    drop(dir);
}

#[test]
fn haproxy_failing_health_check_names_option_httpchk() {
    let upstream = Upstream::start(Behavior::Serve(Reply::ok("fine")));
    upstream.set_route("/health", Behavior::Serve(Reply::new(503, "down")));
    let listen = free_port();
    let config = format!(
        "defaults\n    mode http\n    timeout client 10s\n    timeout connect 2s\n    timeout server 5s\nfrontend web\n    bind 127.0.0.1:{listen}\n    default_backend app\nbackend app\n    option httpchk GET /health\n    server a1 {} check\n",
        upstream.addr()
    );
    let (dir, path) = Peer::checked_config(PeerKind::Haproxy, &config);
    let (code, report, _) = doctor("--haproxy", &path, &[]);
    assert_eq!(code, Some(1));
    let verdict = only_verdict(&report);
    assert_eq!(verdict["healthy"], false, "{report:#}");
    let fix = verdict["fix"].as_str().unwrap_or("");
    assert!(fix.contains("GET /health"), "{fix}");
    assert!(fix.contains("option httpchk"), "{fix}");
    assert!(fix.contains("backend app ("), "{fix}");
    assert_eq!(upstream.requests_to("/health").len(), 1);
    drop(dir);
}
