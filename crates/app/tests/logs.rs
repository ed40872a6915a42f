//! Log files and access log formats, on the real binary: `combined` and `json` access lines
//! (in a file and on stdout), a 502 explained in them, rotation with SIGUSR1 of the access log
//! and of the main log (logrotate's `create` mode: rename, signal, new file at the path), a
//! reopen that fails, `gatehouse check` on bad log settings, and a reload that changes them.

use std::io::Read as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gatehouse_testkit::{Config, Gatehouse, PATIENCE, Req, Upstream};
use serde_json::Value;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_gatehouse"))
}

fn start(config: &Config) -> Gatehouse {
    Gatehouse::start(bin(), &config.toml())
}

/// A fresh directory under the temp directory, removed (with its contents) on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!(
            "gatehouse-logs-{name}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        Self(path)
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    fn path_str(&self, name: &str) -> String {
        self.join(name).display().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The lines of a file so far (none if it does not exist).
fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Waits until `path` has a line satisfying `pred`; returns it. Panics with the file after
/// `PATIENCE`.
fn wait_for_line(path: &Path, pred: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(line) = lines(path).into_iter().find(|l| pred(l)) {
            return line;
        }
        assert!(
            Instant::now() < deadline,
            "no matching line in {} within {PATIENCE:?}; it has:\n{}",
            path.display(),
            lines(path).join("\n")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The line of a request (by its id) in an access log file.
fn access_line(path: &Path, request_id: &str) -> String {
    let needle = format!("request_id={request_id}");
    wait_for_line(path, |l| l.ends_with(&needle))
}

fn get(gh_addr: SocketAddr, target: &str, request_id: &str) -> u16 {
    Req::get(target)
        .header("X-Request-Id", request_id)
        .send(gh_addr)
        .status
}

fn kill(signal: &str, pid: u32) {
    let pid = pid.to_string();
    let sent = Command::new("kill").args([signal, &pid]).status();
    assert!(
        sent.is_ok_and(|s| s.success()),
        "kill {signal} {pid} failed"
    );
}

/// A port where connections are refused for the whole test (see the testkit's).
fn closed_port() -> u16 {
    gatehouse_testkit::closed_port()
}

/// Checks the shape of `[21/Nov/2026:01:55:18 +0000]` without a regex.
fn assert_time_local(stamp: &str) {
    let b = stamp.as_bytes();
    assert_eq!(b.len(), 26, "{stamp:?}");
    let digits = |range: std::ops::Range<usize>| b[range].iter().all(u8::is_ascii_digit);
    assert!(
        digits(0..2)
            && b[2] == b'/'
            && b[3..6].iter().all(u8::is_ascii_alphabetic)
            && b[6] == b'/'
            && digits(7..11)
            && b[11] == b':'
            && digits(12..14)
            && b[14] == b':'
            && digits(15..17)
            && b[17] == b':'
            && digits(18..20)
            && &b[20..] == b" +0000",
        "{stamp:?} is not like 21/Nov/2026:01:55:18 +0000"
    );
}

// --- formats ---

#[test]
fn combined_lines_in_a_file_with_referer_user_agent_and_escaping() {
    let dir = TempDir::new("combined");
    let upstream = Upstream::hello();
    let gh = start(
        &Config::proxy_to([upstream.addr()])
            .server("access_log_format", "combined")
            .server("access_log_file", dir.path_str("access.log")),
    );
    let resp = Req::get("/hello?x=1")
        .header("X-Request-Id", "combined-1")
        .header("Referer", "https://example.com/page")
        .header("User-Agent", r#"agent "quoted" \ back"#)
        .send(gh.addr());
    assert_eq!(resp.status, 200);
    let line = access_line(&dir.join("access.log"), "combined-1");

    let (before, after) = line
        .split_once(" - - [")
        .unwrap_or_else(|| panic!("no ` - - [` in {line}"));
    assert_eq!(before, "127.0.0.1", "{line}");
    let (stamp, rest) = after
        .split_once("] ")
        .unwrap_or_else(|| panic!("no `] ` in {line}"));
    assert_time_local(stamp);
    let (fields, extras) = rest
        .split_once(" rt=")
        .unwrap_or_else(|| panic!("no rt= in {line}"));
    assert_eq!(
        fields,
        r#""GET /hello?x=1 HTTP/1.1" 200 5 "https://example.com/page" "agent \x22quoted\x22 \x5C back""#
    );
    let (rt, extras) = extras
        .split_once(' ')
        .unwrap_or_else(|| panic!("nothing after rt= in {line}"));
    let seconds: f64 = rt
        .parse()
        .unwrap_or_else(|e| panic!("rt={rt} is not a number ({e})"));
    assert!((0.0..5.0).contains(&seconds), "{line}");
    assert_eq!(rt.split_once('.').map(|(_, f)| f.len()), Some(3), "{line}");
    assert_eq!(
        extras,
        format!(
            "upstream=\"app/{}\" upstream_status=200 failure=- request_id=combined-1",
            upstream.addr()
        )
    );
    // Absent values are `-`; the record is not also a log event on stdout.
    assert_eq!(get(gh.addr(), "/", "combined-2"), 200);
    let line = access_line(&dir.join("access.log"), "combined-2");
    assert!(
        line.contains(r#""GET / HTTP/1.1" 200 5 "-" "-" rt="#),
        "{line}"
    );
    assert!(
        !gh.logs().iter().any(|l| l["target"] == "gatehouse::access"),
        "access records also went to the log: {:#?}",
        gh.logs()
    );
}

#[test]
fn json_lines_on_stdout_carry_every_field() {
    let upstream = Upstream::hello();
    let gh = start(&Config::proxy_to([upstream.addr()]).server("access_log_format", "json"));
    let resp = Req::get("/j?q=1")
        .header("X-Request-Id", "json-1")
        .header("Referer", "https://r.example/")
        .header("User-Agent", "ua \"with\" quotes")
        .send(gh.addr());
    assert_eq!(resp.status, 200);
    let line = gh.wait_for_log(
        |l| l["request_id"] == "json-1" && l["time"].is_string(),
        PATIENCE,
    );
    let object = line
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {line}"));
    let keys: Vec<&str> = object.keys().map(String::as_str).collect();
    let mut expected = [
        "time",
        "client",
        "method",
        "path",
        "protocol",
        "status",
        "bytes",
        "referer",
        "user_agent",
        "route",
        "upstream",
        "upstream_status",
        "failure",
        "attempts",
        "connect_ms",
        "first_byte_ms",
        "total_ms",
        "client_aborted",
        "request_id",
        "cache",
        "upstream_aborted",
    ];
    let mut sorted = keys.clone();
    sorted.sort_unstable();
    expected.sort_unstable();
    assert_eq!(sorted, expected, "{line}");
    assert_eq!(line["client"], "127.0.0.1");
    assert_eq!(line["method"], "GET");
    assert_eq!(line["path"], "/j?q=1");
    assert_eq!(line["protocol"], "HTTP/1.1");
    assert_eq!(line["status"], 200);
    assert_eq!(line["bytes"], 5);
    assert_eq!(line["referer"], "https://r.example/");
    assert_eq!(line["user_agent"], "ua \"with\" quotes");
    assert_eq!(line["upstream"], format!("app/{}", upstream.addr()));
    assert_eq!(line["upstream_status"], 200);
    assert_eq!(line["failure"], Value::Null);
    assert_eq!(line["attempts"], 1);
    assert_eq!(line["client_aborted"], false);
    for key in ["connect_ms", "first_byte_ms", "total_ms"] {
        assert!(
            line[key].as_f64().is_some_and(|ms| ms >= 0.0),
            "{key}: {line}"
        );
    }
    let time = line["time"].as_str().unwrap_or_default();
    assert!(
        time.len() == 24 && time.ends_with('Z') && time.as_bytes()[10] == b'T',
        "time {time:?} is not RFC 3339 UTC with milliseconds"
    );
    // The main log is still on stdout, in its own format.
    assert!(gh.logs().iter().any(|l| l["message"] == "listening"));
}

#[test]
fn a_dead_upstream_shows_502_and_the_failure_kind() {
    let dir = TempDir::new("dead");
    let port = closed_port();
    let config = |format: &str, file: &str| {
        Config::proxy_to([format!("127.0.0.1:{port}")])
            .server("access_log_format", format)
            .server("access_log_file", dir.path_str(file))
    };
    let gh = start(&config("combined", "combined.log"));
    assert_eq!(get(gh.addr(), "/x", "dead-1"), 502);
    let line = access_line(&dir.join("combined.log"), "dead-1");
    assert!(line.contains(r#""GET /x HTTP/1.1" 502 "#), "{line}");
    assert!(
        line.contains(&format!(
            "upstream=\"app/127.0.0.1:{port}\" upstream_status=- failure=connection_refused request_id=dead-1"
        )),
        "{line}"
    );
    drop(gh);

    let gh = start(&config("json", "json.log"));
    assert_eq!(get(gh.addr(), "/x", "dead-2"), 502);
    let line = wait_for_line(&dir.join("json.log"), |l| l.contains("\"dead-2\""));
    let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(v["status"], 502, "{v}");
    assert_eq!(v["failure"], "connection_refused", "{v}");
    assert_eq!(v["upstream_status"], Value::Null, "{v}");
    assert!(v["attempts"].as_u64().is_some_and(|n| n >= 1), "{v}");
}

// --- rotation ---

#[test]
fn sigusr1_reopens_the_access_log_after_a_rename() {
    let dir = TempDir::new("rotate-access");
    let upstream = Upstream::hello();
    let gh = start(
        &Config::proxy_to([upstream.addr()])
            .server("access_log_format", "combined")
            .server("access_log_file", dir.path_str("access.log")),
    );
    let path = dir.join("access.log");
    for id in ["before-1", "before-2", "before-3"] {
        assert_eq!(get(gh.addr(), "/", id), 200);
    }
    for id in ["before-1", "before-2", "before-3"] {
        access_line(&path, id);
    }
    let rotated = dir.join("access.log.1");
    std::fs::rename(&path, &rotated).unwrap_or_else(|e| panic!("rename: {e}"));
    // Written after the rename, before the signal: still the old file (same inode).
    assert_eq!(get(gh.addr(), "/", "between"), 200);
    access_line(&rotated, "between");

    kill("-USR1", gh.pid());
    gh.wait_for_log(|l| l["message"] == "log files reopened", PATIENCE);
    for id in ["after-1", "after-2"] {
        assert_eq!(get(gh.addr(), "/", id), 200);
    }
    for id in ["after-1", "after-2"] {
        access_line(&path, id);
    }
    let ids = |p: &Path| -> Vec<String> {
        lines(p)
            .iter()
            .filter_map(|l| l.rsplit_once("request_id=").map(|(_, id)| id.to_owned()))
            .collect()
    };
    assert_eq!(
        ids(&rotated),
        ["before-1", "before-2", "before-3", "between"]
    );
    assert_eq!(ids(&path), ["after-1", "after-2"]);
    // gatehouse is fine and still serving.
    assert_eq!(gh.stop().code(), Some(0));
}

/// A gatehouse started by hand: its main log goes to a file, so the harness (which reads
/// stdout) cannot be used.
struct FileLogged {
    child: Child,
    log: PathBuf,
    addr: SocketAddr,
}

impl FileLogged {
    fn start(dir: &TempDir, config: &Config) -> Self {
        let config_path = dir.join("gatehouse.toml");
        let text = config
            .clone()
            .server("listen", vec!["127.0.0.1:0"])
            .server("log_format", "json")
            .toml();
        std::fs::write(&config_path, text).unwrap_or_else(|e| panic!("write config: {e}"));
        let child = Command::new(bin())
            .args(["run", "-c"])
            .arg(&config_path)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin().display()));
        let log = dir.join("gatehouse.log");
        let mut started = Self {
            child,
            log,
            addr: ([0, 0, 0, 0], 0).into(),
        };
        let listening = started.wait_for(|l| l["message"] == "listening");
        started.addr = listening["addr"]
            .as_str()
            .unwrap_or_default()
            .parse()
            .unwrap_or_else(|e| panic!("listening line without an address ({e}): {listening}"));
        started
    }

    /// The first JSON line of `path` matching `pred`.
    fn wait_in(path: &Path, pred: impl Fn(&Value) -> bool) -> Value {
        let line = wait_for_line(path, |l| {
            serde_json::from_str::<Value>(l).is_ok_and(|v| pred(&v))
        });
        serde_json::from_str(&line).unwrap_or_default()
    }

    fn wait_for(&mut self, pred: impl Fn(&Value) -> bool) -> Value {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("gatehouse exited ({status}): {}", self.stderr());
        }
        Self::wait_in(&self.log, pred)
    }

    fn stderr(&mut self) -> String {
        let mut text = String::new();
        if let Some(mut err) = self.child.stderr.take() {
            let _ = err.read_to_string(&mut text);
        }
        text
    }

    /// SIGTERM, then the exit code and everything written to stdout.
    fn stop(mut self) -> (Option<i32>, String) {
        kill("-TERM", self.child.id());
        let deadline = Instant::now() + PATIENCE;
        let status = loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("gatehouse did not stop within {PATIENCE:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stdout = String::new();
        if let Some(mut out) = self.child.stdout.take() {
            let _ = out.read_to_string(&mut stdout);
        }
        (status.code(), stdout)
    }
}

impl Drop for FileLogged {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[test]
fn sigusr1_reopens_the_main_log_after_a_rename() {
    let dir = TempDir::new("rotate-main");
    let upstream = Upstream::hello();
    let mut gh = FileLogged::start(
        &dir,
        &Config::proxy_to([upstream.addr()]).server("log_file", dir.path_str("gatehouse.log")),
    );
    assert_eq!(get(gh.addr, "/", "main-before"), 200);
    gh.wait_for(|l| l["target"] == "gatehouse::access" && l["request_id"] == "main-before");

    let rotated = dir.join("gatehouse.log.1");
    std::fs::rename(&gh.log, &rotated).unwrap_or_else(|e| panic!("rename: {e}"));
    kill("-USR1", gh.child.id());
    let reopened = gh.wait_for(|l| l["message"] == "log files reopened");
    assert_eq!(reopened["level"], "INFO", "{reopened}");
    assert_eq!(get(gh.addr, "/", "main-after"), 200);
    gh.wait_for(|l| l["target"] == "gatehouse::access" && l["request_id"] == "main-after");

    let old = lines(&rotated).join("\n");
    let new = lines(&gh.log).join("\n");
    assert!(
        old.contains("\"listening\"") && old.contains("main-before"),
        "{old}"
    );
    assert!(
        !old.contains("main-after") && !old.contains("log files reopened"),
        "{old}"
    );
    assert!(
        !new.contains("main-before") && !new.contains("\"listening\""),
        "{new}"
    );
    let (code, stdout) = gh.stop();
    assert_eq!(code, Some(0));
    assert_eq!(stdout, "", "nothing goes to stdout with a log_file");
    // The shutdown lines went to the new file.
    assert!(
        lines(&dir.join("gatehouse.log"))
            .iter()
            .any(|l| l.contains("all connections drained")),
        "{}",
        lines(&dir.join("gatehouse.log")).join("\n")
    );
}

#[test]
fn a_failed_reopen_keeps_writing_to_the_old_file() {
    let dir = TempDir::new("reopen-fails");
    let sub = dir.join("sub");
    std::fs::create_dir(&sub).unwrap_or_else(|e| panic!("mkdir: {e}"));
    let upstream = Upstream::hello();
    let configured = sub.join("access.log");
    let gh = start(
        &Config::proxy_to([upstream.addr()])
            .server("access_log_format", "json")
            .server("access_log_file", configured.display().to_string()),
    );
    assert_eq!(get(gh.addr(), "/", "kept-1"), 200);
    wait_for_line(&configured, |l| l.contains("\"kept-1\""));
    // The directory goes away: reopening at the configured path cannot work.
    let moved = dir.join("access.log.moved");
    std::fs::rename(&configured, &moved).unwrap_or_else(|e| panic!("rename: {e}"));
    std::fs::remove_dir(&sub).unwrap_or_else(|e| panic!("rmdir: {e}"));

    kill("-USR1", gh.pid());
    let error = gh.wait_for_log(
        |l| {
            l["level"] == "ERROR"
                && l["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("cannot reopen access_log_file"))
        },
        PATIENCE,
    );
    assert_eq!(error["path"], configured.display().to_string(), "{error}");
    assert!(
        !gh.logs()
            .iter()
            .any(|l| l["message"] == "log files reopened"),
        "nothing was reopened"
    );
    assert_eq!(get(gh.addr(), "/", "kept-2"), 200);
    wait_for_line(&moved, |l| l.contains("\"kept-2\""));
    assert_eq!(gh.stop().code(), Some(0));
}

// --- check, start, reload ---

fn check(dir: &TempDir, text: &str) -> (Option<i32>, String) {
    let path = dir.join("check.toml");
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("write: {e}"));
    let out = Command::new(bin())
        .args(["check", "-c"])
        .arg(&path)
        .output()
        .unwrap_or_else(|e| panic!("gatehouse check: {e}"));
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_names_a_bad_format_and_a_missing_directory() {
    let dir = TempDir::new("check");
    let file = dir.path_str("check.toml");
    let missing = dir.join("no-such-dir");
    let text = format!(
        "[server]\nlog_file = '{}/g.log'\naccess_log_format = \"apache\"\n\n[[route]]\nupstream = \"app\"\n\n[upstream.app]\nservers = [\"127.0.0.1:3000\"]\n",
        missing.display()
    );
    let (code, stderr) = check(&dir, &text);
    assert_eq!(code, Some(1), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines,
        [
            format!(
                "{file}:2:12: error: server.log_file: cannot write {m}/g.log: the directory {m} does not exist — create the directory (mkdir -p {m}) for the user gatehouse runs as, or choose another path",
                m = missing.display()
            ),
            format!(
                "{file}:3:21: error: server.access_log_format: \"apache\" is not one of \"log\", \"combined\", \"json\" — use one of \"log\", \"combined\", \"json\""
            ),
            format!("{file}: 2 error(s); the config was not accepted"),
        ]
    );

    let text = format!(
        "[server]\naccess_log_file = '{}'\n\n[[route]]\nupstream = \"app\"\n\n[upstream.app]\nservers = [\"127.0.0.1:3000\"]\n",
        dir.path_str("access.log")
    );
    let (code, stderr) = check(&dir, &text);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "{file}:2:19: error: server.access_log_file: access_log_file needs access_log_format = \"combined\" or \"json\""
        )),
        "{stderr}"
    );
    assert!(stderr.contains("remove access_log_file"), "{stderr}");
}

#[test]
fn a_log_file_that_cannot_be_opened_stops_the_start_with_one_line() {
    let dir = TempDir::new("unopenable");
    // A dangling symlink: its directory exists (check passes), opening it cannot create the
    // file behind it.
    let link = dir.join("gatehouse.log");
    std::os::unix::fs::symlink(dir.join("gone/gatehouse.log"), &link)
        .unwrap_or_else(|e| panic!("symlink: {e}"));
    let config_path = dir.join("gatehouse.toml");
    let text = Config::proxy_to(["127.0.0.1:3000"])
        .server("listen", vec!["127.0.0.1:0"])
        .server("log_file", link.display().to_string())
        .toml();
    std::fs::write(&config_path, text).unwrap_or_else(|e| panic!("write config: {e}"));
    let out = Command::new(bin())
        .args(["run", "-c"])
        .arg(&config_path)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("gatehouse run: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "gatehouse: not starting: cannot open log_file {}: No such file or directory",
            link.display()
        )),
        "{stderr}"
    );
}

#[test]
fn a_reload_that_changes_where_logs_go_warns_and_keeps_them() {
    let dir = TempDir::new("reload");
    let upstream = Upstream::hello();
    let config = Config::proxy_to([upstream.addr()]);
    let gh = start(&config);
    gh.rewrite_config(
        &config
            .server("access_log_format", "json")
            .server("access_log_file", dir.path_str("access.log"))
            .toml(),
    );
    assert!(gh.reload().is_ok(), "the reload was refused");
    let warnings: Vec<String> = gh
        .logs()
        .iter()
        .filter(|l| l["level"] == "WARN")
        .filter_map(|l| l["message"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        warnings,
        [
            "server.access_log_format changed from log to json: it takes effect at the next start; until then gatehouse keeps log".to_owned(),
            format!(
                "server.access_log_file changed from stdout to {}: it takes effect at the next start; until then gatehouse keeps stdout",
                dir.path_str("access.log")
            ),
        ]
    );
    // Still access records in the log, as at start; no file.
    assert_eq!(get(gh.addr(), "/", "reloaded-1"), 200);
    gh.access_log("reloaded-1");
    assert!(!dir.join("access.log").exists());
}
