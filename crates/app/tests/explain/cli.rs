//! The command line: unreadable lines counted and shown, the JSON shape, `--since`, `-f`
//! following a growing and rotated file, stdin, `--help` and the exit codes.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, SystemTime};

use gatehouse_testkit::TempFile;
use serde_json::Value;

use crate::explain;

/// A gatehouse JSON failure warning and access record for request `id` at `time`.
fn gatehouse_failure(time: &str, id: &str) -> String {
    format!(
        "{{\"timestamp\":\"{time}\",\"level\":\"WARN\",\"message\":\"connection_refused while connecting to upstream: connect to 127.0.0.1:1: Connection refused (os error 111)\",\"kind\":\"connection_refused\",\"pool\":\"app\",\"server\":\"app/127.0.0.1:1\",\"request_id\":\"{id}\",\"target\":\"gatehouse::failure\"}}\n\
         {{\"timestamp\":\"{time}\",\"level\":\"INFO\",\"client\":\"127.0.0.1\",\"method\":\"GET\",\"path\":\"/{id}\",\"status\":502,\"upstream\":\"app/127.0.0.1:1\",\"failure\":\"connection_refused\",\"total_ms\":1.2,\"request_id\":\"{id}\",\"target\":\"gatehouse::access\"}}\n"
    )
}

const NGINX_REFUSED: &str = "2026/12/05 20:57:43 [error] 28089#28089: *1 connect() failed (111: Connection refused) while connecting to upstream, client: 127.0.0.1, server: , request: \"GET /refused HTTP/1.1\", upstream: \"http://127.0.0.1:1/refused\", host: \"127.0.0.1:19100\"\n";
const NGINX_OK: &str =
    "127.0.0.1 - - [05/Dec/2026:20:57:44 +0000] \"GET / HTTP/1.1\" 200 3 \"-\" \"curl/x\"\n";

#[test]
fn unreadable_lines_are_counted_and_shown_with_their_numbers() {
    let mut input = Vec::new();
    input.extend_from_slice(NGINX_OK.as_bytes());
    input.extend_from_slice(b"this is not a log line\n");
    input.extend_from_slice(b"\xff\xfe\x00\x01 binary \x80\x81\n");
    input.extend_from_slice(NGINX_REFUSED.as_bytes());
    input.extend_from_slice(&vec![b'x'; 200_000]);
    input.extend_from_slice(b"\n");
    let file = TempFile::with_contents("explain", ".log", &input);
    let name = file.path().display().to_string();
    let run = explain(&[&name], None);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.stdout.contains("unreadable lines: 3"), "{}", run.stdout);
    assert!(
        run.stdout
            .contains(&format!("{name}:2: this is not a log line")),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(&format!("{name}:3: ")),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(&format!("{name}:5: xxx")),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("1 normal line(s)"), "{}", run.stdout);
    assert!(
        run.stdout
            .contains("connection_refused ×1: nginx upstream 127.0.0.1:1"),
        "{}",
        run.stdout
    );
    let report: Value = serde_json::from_str(&explain(&["--json", &name], None).stdout)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report["counts"]["unreadable"], 3, "{report:#}");
    assert_eq!(report["unreadable"][0]["line"], 2, "{report:#}");
    assert_eq!(report["unreadable"][0]["file"], name, "{report:#}");
}

#[test]
fn json_shape() {
    let file = TempFile::with_contents("explain", ".log", NGINX_REFUSED.as_bytes());
    let run = explain(&["--json", &file.path().display().to_string()], None);
    let report: Value =
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {run:?}"));
    for key in [
        "inputs",
        "since",
        "counts",
        "groups",
        "client_side",
        "unreadable",
    ] {
        assert!(report.get(key).is_some(), "no {key}: {report:#}");
    }
    for key in [
        "lines",
        "failures",
        "normal",
        "client_side",
        "unreadable",
        "blank",
        "before_since",
    ] {
        assert!(
            report["counts"][key].is_u64(),
            "no counts.{key}: {report:#}"
        );
    }
    let g = &report["groups"][0];
    for key in [
        "kind",
        "source",
        "server",
        "count",
        "guessed",
        "first_seen",
        "last_seen",
        "client_statuses",
        "gatehouse_status",
        "summary",
        "cause",
        "fix",
        "directives",
        "examples",
        "timeline",
    ] {
        assert!(g.get(key).is_some(), "no group.{key}: {g:#}");
    }
    assert_eq!(g["kind"], "connection_refused");
    assert_eq!(g["gatehouse_status"], 502);
    assert_eq!(g["cause"], "backend not running, or wrong port");
    assert_eq!(g["first_seen"], "2026-12-05T20:57:43.000Z");
    assert_eq!(g["timeline"]["bucket"], "1m");
    assert_eq!(
        g["timeline"]["counts"][0]["from"],
        "2026-12-05T20:57:00.000Z"
    );
    assert_eq!(g["timeline"]["counts"][0]["count"], 1);
    for key in [
        "file", "line", "time", "request", "client", "status", "message", "guessed",
    ] {
        assert!(
            g["examples"][0].get(key).is_some(),
            "no example.{key}: {g:#}"
        );
    }
}

#[test]
fn since_takes_a_duration_or_a_time() {
    let now = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
    let mut text = gatehouse_failure("2020-01-01T00:00:00.000Z", "old");
    text.push_str(&gatehouse_failure(&now, "new"));
    let file = TempFile::with_contents("explain", ".log", text.as_bytes());
    let name = file.path().display().to_string();
    for since in ["1h", "2021-06-01T00:00:00Z", "2021-06-01T02:00:00+02:00"] {
        let run = explain(&["--json", "--since", since, &name], None);
        let report: Value =
            serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {run:?}"));
        assert_eq!(
            report["counts"]["failures"], 1,
            "--since {since}: {report:#}"
        );
        assert_eq!(
            report["counts"]["before_since"], 2,
            "--since {since}: {report:#}"
        );
        assert_eq!(
            report["groups"][0]["examples"][0]["request"], "GET /new",
            "{report:#}"
        );
    }
    let all = explain(&["--json", &name], None);
    assert!(all.stdout.contains("GET /old"), "{all:?}");
    let bad = explain(&["--since", "last tuesday", &name], None);
    assert_eq!(bad.code, Some(2), "{bad:?}");
    assert!(bad.stderr.contains("RFC 3339"), "{bad:?}");
}

#[test]
fn follow_picks_up_appended_lines_and_survives_rotation() {
    let dir = TempFile::dir("explain-follow");
    let path = dir.path().join("gatehouse.log");
    std::fs::write(&path, NGINX_OK).unwrap_or_else(|e| panic!("{e}"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["explain", "-f", "--json"])
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run explain -f: {e}"));
    let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let next = |what: &str| -> Value {
        let line = rx
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("explain -f printed nothing for {what} within 10 s"));
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
    };
    let append = |text: &str| {
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("{e}"));
        file.write_all(text.as_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
    };
    append(&gatehouse_failure("2026-12-05T20:57:15.000Z", "first"));
    let first = next("the appended failure");
    assert_eq!(first["type"], "failure");
    assert_eq!(first["kind"], "connection_refused");
    assert_eq!(first["server"], "app/127.0.0.1:1");
    assert_eq!(first["line"], 2);
    // Rotation: the file is renamed and a new one takes its path.
    std::fs::rename(&path, dir.path().join("gatehouse.log.1")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&path, NGINX_REFUSED).unwrap_or_else(|e| panic!("{e}"));
    let rotated = next("the line of the new file");
    assert_eq!(rotated["kind"], "connection_refused");
    assert_eq!(rotated["source"], "nginx");
    assert_eq!(rotated["line"], 1);
    append("garbage that no parser reads\n");
    let unreadable = next("an unreadable line");
    assert_eq!(unreadable["type"], "unreadable");
    // Truncation (copytruncate): read again from the start.
    std::fs::write(&path, NGINX_REFUSED).unwrap_or_else(|e| panic!("{e}"));
    let truncated = next("the line of the truncated file");
    assert_eq!(truncated["kind"], "connection_refused");
    assert_eq!(truncated["line"], 1);
    // The access record matched its warning: no second failure for request "first".
    assert!(rx.try_recv().is_err());
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn stdin_and_exit_codes() {
    let failing = explain(&[], Some(NGINX_REFUSED.as_bytes()));
    assert_eq!(failing.code, Some(1), "{failing:?}");
    assert!(failing.stdout.contains("<stdin>"), "{failing:?}");
    let clean = explain(&[], Some(NGINX_OK.as_bytes()));
    assert_eq!(clean.code, Some(0), "{clean:?}");
    assert!(
        clean.stdout.contains("no upstream failure found"),
        "{clean:?}"
    );
    let missing = explain(&["/nonexistent/explain.log"], None);
    assert_eq!(missing.code, Some(2), "{missing:?}");
    assert!(
        missing.stderr.contains("/nonexistent/explain.log"),
        "{missing:?}"
    );
    let help = explain(&["--help"], None);
    assert_eq!(help.code, Some(0), "{help:?}");
    for needle in [
        "--follow",
        "--since",
        "--json",
        "Exit status",
        "2 on a usage",
    ] {
        assert!(
            help.stdout.contains(needle),
            "--help lacks {needle}: {}",
            help.stdout
        );
    }
}
