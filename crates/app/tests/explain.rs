//! `gatehouse explain` against logs written by real nginx and HAProxy (started by the test,
//! made to fail by misbehaving upstreams on loopback) and by gatehouse itself; plus the
//! command line: unreadable lines, `--json`, `--since`, `-f`, stdin and exit codes.
//!
//! Each test makes the failure happen, then runs the real binary on the log and checks the
//! kind, the upstream server and the directive it names.

#[path = "explain/cli.rs"]
mod cli;
#[path = "explain/gatehouse_logs.rs"]
mod gatehouse_logs;
#[path = "explain/haproxy.rs"]
mod haproxy;
#[path = "explain/nginx.rs"]
mod nginx;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// What one run of `gatehouse explain` printed.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) code: Option<i32>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

/// Runs `gatehouse explain ARGS` (stdin: `input`), killed after 30 s.
pub(crate) fn explain(args: &[&str], input: Option<&[u8]>) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .arg("explain")
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run gatehouse explain: {e}"));
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin
            .write_all(input)
            .unwrap_or_else(|e| panic!("write stdin: {e}"));
    }
    let mut stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
    let mut stderr = child.stderr.take().unwrap_or_else(|| panic!("no stderr"));
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("gatehouse explain {args:?} did not finish within 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Run {
        code: status.code(),
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// `gatehouse explain --json FILES`, parsed; exit status 1 (failures found) expected.
pub(crate) fn explain_json(files: &[&Path]) -> Value {
    let mut args = vec!["--json".to_owned()];
    args.extend(files.iter().map(|f| f.display().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = explain(&args, None);
    let report: Value =
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {run:?}"));
    assert_eq!(run.code, Some(1), "failures found must exit 1: {run:?}");
    report
}

/// The group of `kind` (from `source`) in a JSON report; panics with the report when missing.
pub(crate) fn group<'a>(report: &'a Value, source: &str, kind: &str) -> &'a Value {
    report["groups"]
        .as_array()
        .and_then(|groups| {
            groups
                .iter()
                .find(|g| g["kind"] == kind && g["source"] == source)
        })
        .unwrap_or_else(|| {
            panic!(
                "no {source} group {kind} in:\n{}",
                serde_json::to_string_pretty(report).unwrap_or_default()
            )
        })
}

/// Asserts a group names `server` and `directive` (in its directives and its fix).
pub(crate) fn assert_group(group: &Value, server: &str, directive: &str) {
    assert_eq!(group["server"], server, "{group:#}");
    let directives: Vec<&str> = group["directives"]
        .as_array()
        .map(|d| d.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert!(
        directives.contains(&directive),
        "{directive} not in {group:#}"
    );
    let fix = group["fix"].as_str().unwrap_or_default();
    assert!(
        fix.contains(directive),
        "the fix does not name {directive}: {fix}"
    );
    assert!(group["count"].as_u64() >= Some(1), "{group:#}");
    assert!(
        group["examples"][0]["line"].as_u64() >= Some(1),
        "{group:#}"
    );
}

/// A loopback address where connections are refused for the whole test.
pub(crate) fn refused_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], gatehouse_testkit::closed_port()))
}

/// Sends `GET path` on a new connection and returns the status (0 when none came).
pub(crate) fn get(addr: SocketAddr, path: &str) -> u16 {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(5)) else {
        return 0;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: test\r\nUser-Agent: explain-test\r\nConnection: close\r\n\r\n"
    );
    if stream.write_all(request.as_bytes()).is_err() {
        return 0;
    }
    let mut head = [0u8; 12];
    let mut got = 0;
    while got < head.len() {
        match stream.read(&mut head[got..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
    std::str::from_utf8(&head[9.min(got)..12.min(got)])
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Waits until `read()` holds `needle` (logs are written as the request ends).
pub(crate) fn wait_for(what: &str, needle: &str, read: impl Fn() -> String) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = read();
        if text.contains(needle) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{what} has no {needle:?} after 10 s:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
