//! `gatehouse doctor` against the real binary and real misbehaving upstreams on loopback: one
//! test per root cause (nothing listening, a port one typo off, a name that does not resolve, a
//! full accept queue, headers over the limit, a slow or hung backend, a non-HTTP service, a
//! failing health check), each asserting the verdict in the `--json` report and the exit
//! status; plus the config's smells, an invalid config, and the text report.
//!
//! Every server lives on `127.0.0.1:0` (or another loopback address); timeouts are short so the
//! whole file runs in a few seconds; each run of the command is bounded, so a wedged doctor
//! fails its test instead of hanging.

use std::io::{ErrorKind, Read};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gatehouse_testkit::{
    Behavior, Config, DnsAnswer, FullBacklog, MockDns, PATIENCE, Reply, TempFile, Upstream,
};
use serde_json::{Value, json};

/// The longest one run of `gatehouse doctor` may take before the test kills it and fails.
const RUN_LIMIT: Duration = Duration::from_secs(30);

/// The health path of most tests.
const PING: &str = "/ping";

/// What one run of the command left behind.
#[derive(Debug)]
struct Run {
    /// The exit code (`None`: killed by a signal).
    code: Option<i32>,
    stdout: String,
    stderr: String,
    took: Duration,
}

impl Run {
    /// The `--json` report on stdout.
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

fn read_all(stream: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut stream = stream;
        let mut bytes = Vec::new();
        let _ = stream.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Runs the binary with `args`, killing it (and failing) after [`RUN_LIMIT`].
fn gatehouse(args: &[&str]) -> Run {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start gatehouse: {e}"));
    let stdout = read_all(child.stdout.take().expect("piped stdout"));
    let stderr = read_all(child.stderr.take().expect("piped stderr"));
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() < RUN_LIMIT => {
                std::thread::sleep(Duration::from_millis(10));
            }
            other => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "gatehouse {args:?} did not exit within {RUN_LIMIT:?} ({other:?}); stderr:\n{}",
                    stderr.join().unwrap_or_default()
                );
            }
        }
    };
    Run {
        code: status.code(),
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
        took: started.elapsed(),
    }
}

/// `gatehouse -c FILE doctor EXTRA...` with `config` written to FILE.
fn doctor(config: &Config, extra: &[&str]) -> Run {
    let file = TempFile::with_contents("gatehouse-doctor", ".toml", config.toml().as_bytes());
    doctor_file(file.path(), extra)
}

fn doctor_file(path: &Path, extra: &[&str]) -> Run {
    let path = path.to_str().expect("temp path is UTF-8");
    let mut args = vec!["-c", path, "doctor"];
    args.extend_from_slice(extra);
    gatehouse(&args)
}

/// `doctor --json`; the run and its report.
fn doctor_json(config: &Config, extra: &[&str]) -> (Run, Value) {
    let mut args = vec!["--json"];
    args.extend_from_slice(extra);
    let run = doctor(config, &args);
    let report = run.json();
    (run, report)
}

/// Every server report of every upstream, in order.
fn servers(report: &Value) -> Vec<&Value> {
    report["upstreams"]
        .as_array()
        .unwrap_or_else(|| panic!("no upstreams in {report:#}"))
        .iter()
        .flat_map(|pool| {
            pool["servers"]
                .as_array()
                .unwrap_or_else(|| panic!("no servers in {pool:#}"))
        })
        .collect()
}

/// The report of the only server of the config.
fn only_server(report: &Value) -> &Value {
    match servers(report).as_slice() {
        [one] => one,
        other => panic!(
            "expected one server report, got {}: {report:#}",
            other.len()
        ),
    }
}

fn text<'a>(value: &'a Value, field: &str) -> &'a str {
    value[field]
        .as_str()
        .unwrap_or_else(|| panic!("no string {field:?} in {value:#}"))
}

fn number(value: &Value, field: &str) -> f64 {
    value[field]
        .as_f64()
        .unwrap_or_else(|| panic!("no number {field:?} in {value:#}"))
}

/// Asserts a failing server: not healthy, this kind and status; returns its verdict.
fn assert_failed<'a>(server: &'a Value, kind: &str, status: u16) -> &'a Value {
    let verdict = &server["verdict"];
    assert_eq!(verdict["healthy"], false, "{server:#}");
    assert_eq!(verdict["kind"], kind, "{server:#}");
    assert_eq!(verdict["status"], status, "{server:#}");
    for field in ["summary", "cause", "fix"] {
        assert!(
            !text(verdict, field).is_empty(),
            "empty {field}: {server:#}"
        );
    }
    verdict
}

/// Asserts the exit status (1 = something is failing) and the summary counts.
fn assert_outcome(run: &Run, report: &Value, healthy: u64, kinds: Value) {
    let failing: u64 = kinds
        .as_object()
        .expect("kinds is an object")
        .values()
        .map(|n| n.as_u64().expect("kind count"))
        .sum();
    let summary = &report["summary"];
    assert_eq!(summary["servers"], healthy + failing, "{summary:#}");
    assert_eq!(summary["healthy"], healthy, "{summary:#}");
    assert_eq!(summary["failing"], failing, "{summary:#}");
    assert_eq!(summary["kinds"], kinds, "{summary:#}");
    let expected = if failing == 0 { 0 } else { 1 };
    assert_eq!(
        run.code,
        Some(expected),
        "exit status; stderr:\n{}",
        run.stderr
    );
}

/// A config whose only upstream `app` has these servers and checks `GET /ping`.
fn pinging<S: ToString>(servers: impl IntoIterator<Item = S>) -> Config {
    Config::proxy_to(servers)
        .health("app", "path", PING)
        // Not the default 127.0.0.1:8080: doctor checks that its listen address is free by
        // binding it, and two doctors running at once (parallel tests) would each see the
        // other's check as the port in use.
        .server("listen", vec!["127.0.0.1:0".to_owned()])
}

/// A port where connections are refused for the whole test (see the testkit's).
fn closed_port() -> u16 {
    gatehouse_testkit::closed_port()
}

/// Whether a connect to `127.0.0.1:port` is refused right now.
fn refused(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    matches!(
        TcpStream::connect_timeout(&addr, Duration::from_secs(1)),
        Err(e) if e.kind() == ErrorKind::ConnectionRefused
    )
}

// --- healthy servers ---

#[test]
fn healthy_server_exits_0_with_its_status_and_timings() {
    let upstream = Upstream::serve(Reply::ok("pong"));
    let addr = upstream.addr();
    let (run, report) = doctor_json(&pinging([addr]), &[]);
    assert_outcome(&run, &report, 1, json!({}));

    assert_eq!(report["upstreams"][0]["name"], "app");
    assert_eq!(report["upstreams"][0]["routes"], json!(["*/"]));
    let server = only_server(&report);
    assert_eq!(server["server"], addr.to_string());
    assert_eq!(server["label"], format!("app/{addr}"));
    assert_eq!(server["address"], addr.to_string());
    assert!(
        server.get("dns").is_none(),
        "a literal needs no DNS: {server:#}"
    );
    assert!(number(server, "connect_ms") >= 0.0);
    let verdict = &server["verdict"];
    assert_eq!(verdict["healthy"], true, "{server:#}");
    assert!(verdict.get("kind").is_none(), "{server:#}");
    assert_eq!(verdict["summary"], "GET /ping answered 200 OK");

    let http = &server["http"];
    assert_eq!(http["request"], "GET /ping");
    assert_eq!(http["status"], 200);
    assert_eq!(http["body_bytes"], 4);
    // "HTTP/1.1 200 OK\r\n" + "content-length: 4\r\n" + "\r\n".
    assert_eq!(http["header_bytes"], 17 + 19 + 2);
    assert_eq!(http["header_limit"], 64 * 1024, "the default limit");
    assert_eq!(number(http, "response_timeout_ms"), 30_000.0, "the default");
    assert!(number(http, "first_byte_ms") < 30_000.0);

    // The backend saw one request to the health path, from the doctor.
    let seen = upstream.wait_for_request_to(PING, PATIENCE);
    assert!(
        seen.header("user-agent")
            .is_some_and(|ua| ua.starts_with("gatehouse-doctor/")),
        "{seen:?}"
    );
    assert_eq!(seen.header("host"), Some(addr.to_string().as_str()));
    assert_eq!(upstream.requests().len(), 1);
}

#[test]
fn name_resolving_to_two_healthy_servers_lists_the_addresses() {
    let one = Upstream::serve(Reply::ok("one"));
    let port = one.addr().port();
    let two = Upstream::start_on(
        (Ipv4Addr::new(127, 0, 0, 2), port).into(),
        Behavior::Serve(Reply::ok("two")),
    );
    let dns = MockDns::start(DnsAnswer::v4(
        [Ipv4Addr::LOCALHOST, Ipv4Addr::new(127, 0, 0, 2)],
        30,
    ));
    let entry = format!("backend.test:{port}");
    let config = pinging([entry.as_str()])
        .dns("nameservers", vec![dns.addr().to_string()])
        .dns("timeout", "1s");
    let (run, report) = doctor_json(&config, &[]);
    assert_outcome(&run, &report, 2, json!({}));

    let found = servers(&report);
    let labels: Vec<&str> = found.iter().map(|s| text(s, "label")).collect();
    assert_eq!(
        labels,
        [
            format!("app/{entry} (127.0.0.1)"),
            format!("app/{entry} (127.0.0.2)")
        ]
    );
    for (server, ip) in found.iter().zip(["127.0.0.1", "127.0.0.2"]) {
        assert_eq!(server["server"], entry);
        assert_eq!(server["address"], format!("{ip}:{port}"));
        assert_eq!(
            server["dns"]["addresses"],
            json!(["127.0.0.1", "127.0.0.2"]),
            "{server:#}"
        );
        assert!(number(&server["dns"], "ms") >= 0.0);
        assert_eq!(server["verdict"]["healthy"], true, "{server:#}");
        assert_eq!(server["http"]["status"], 200);
    }
    assert!(dns.queries() > 0);
    // Each address got its own health request, with the name as Host.
    for upstream in [&one, &two] {
        let seen = upstream.wait_for_request_to(PING, PATIENCE);
        assert_eq!(seen.header("host"), Some(entry.as_str()));
    }
}

#[test]
fn healthy_but_slow_server_gets_a_latency_warning() {
    let upstream = Upstream::start(Behavior::Delay(
        Duration::from_millis(600),
        Reply::ok("slow"),
    ));
    let config = pinging([upstream.addr()]).upstream_setting("app", "response_timeout", "1s");
    let (run, report) = doctor_json(&config, &[]);
    assert_outcome(&run, &report, 1, json!({}));
    let server = only_server(&report);
    assert_eq!(server["verdict"]["healthy"], true, "{server:#}");
    assert!(
        number(&server["http"], "first_byte_ms") >= 600.0,
        "{server:#}"
    );
    let warnings = server["warnings"].as_array().expect("warnings");
    assert_eq!(warnings.len(), 1, "{server:#}");
    assert!(
        warnings[0]
            .as_str()
            .is_some_and(|w| w.contains("more than half of response_timeout (1s)")),
        "{server:#}"
    );
    let smells = report["smells"].as_array().expect("smells").len();
    assert_eq!(report["summary"]["warnings"], 1 + smells);
}

#[test]
fn a_server_announcing_a_short_keep_alive_timeout_is_reported_and_warned_about() {
    let upstream = Upstream::serve(Reply::ok("pong").header("Keep-Alive", "timeout=5"));
    let (run, report) = doctor_json(&pinging([upstream.addr()]), &[]);
    assert_outcome(&run, &report, 1, json!({}));
    let server = only_server(&report);
    assert_eq!(server["http"]["keep_alive_timeout_s"], 5, "{server:#}");
    let warnings = server["warnings"].as_array().expect("warnings");
    assert!(
        warnings.iter().any(|w| w.as_str().is_some_and(|w| w
            .contains("closes idle keep-alive connections after 5s (Keep-Alive: timeout=5)")
            && w.contains("at most 4s"))),
        "{server:#}"
    );
    // The text report names it on the server's line.
    let text = doctor(&pinging([upstream.addr()]), &[]);
    assert!(
        text.stdout.contains("keeps idle connections 5 s"),
        "{}",
        text.stdout
    );
    // A server that announces nothing gets no such warning.
    let quiet = Upstream::serve(Reply::ok("pong"));
    let (_, report) = doctor_json(&pinging([quiet.addr()]), &[]);
    let warnings = &only_server(&report)["warnings"];
    assert!(warnings.as_array().is_none_or(Vec::is_empty), "{report:#}");
}

// --- connect failures ---

#[test]
fn nothing_listening_is_connection_refused() {
    let port = closed_port();
    let (run, report) = doctor_json(&pinging([format!("127.0.0.1:{port}")]), &[]);
    assert_outcome(&run, &report, 0, json!({"connection_refused": 1}));
    let server = only_server(&report);
    let verdict = assert_failed(server, "connection_refused", 502);
    let cause = text(verdict, "cause");
    assert!(
        cause.starts_with(&format!("nothing listens on 127.0.0.1:{port}")),
        "{cause}"
    );
    assert!(server.get("connect_ms").is_none(), "{server:#}");
    assert!(server.get("http").is_none(), "{server:#}");
}

#[test]
fn port_one_typo_off_is_named() {
    // An upstream on P, and Q = P + 1 (last digit substituted, no carry) free: no other
    // port can be closer to Q than P, and of the two at distance 1 the doctor lists P first.
    let (upstream, wrong) = (0..50)
        .find_map(|_| {
            let upstream = Upstream::serve(Reply::ok("pong"));
            let port = upstream.addr().port();
            let wrong = port + 1;
            (port % 10 != 9 && refused(wrong)).then_some((upstream, wrong))
        })
        .expect("no upstream port whose successor is free");
    let right = upstream.addr().port();
    let (run, report) = doctor_json(&pinging([format!("127.0.0.1:{wrong}")]), &[]);
    assert_outcome(&run, &report, 0, json!({"connection_refused": 1}));
    let verdict = assert_failed(only_server(&report), "connection_refused", 502);
    assert_eq!(
        verdict["cause"],
        format!(
            "nothing listens on 127.0.0.1:{wrong}, but 127.0.0.1:{right} does: did you mean port {right}?"
        )
    );
    assert_eq!(
        verdict["fix"],
        format!(
            "correct the port in upstream.app.servers to {right}, or start the backend on port {wrong}"
        )
    );
    assert!(upstream.requests().is_empty());
}

#[test]
fn full_accept_queue_is_connection_timeout() {
    let backlog = FullBacklog::start();
    let addr = backlog.addr();
    let config = pinging([addr]).upstream_setting("app", "connect_timeout", "500ms");
    let (run, report) = doctor_json(&config, &[]);
    assert_outcome(&run, &report, 0, json!({"connection_timeout": 1}));
    let verdict = assert_failed(only_server(&report), "connection_timeout", 504);
    let cause = text(verdict, "cause");
    assert!(
        cause.starts_with(&format!("a process listens on {addr} but "))
            && cause.contains("accept queue"),
        "{cause}"
    );
    assert!(
        text(verdict, "fix").contains("hung or overloaded"),
        "{verdict:#}"
    );
    assert!(
        run.took >= Duration::from_millis(500) && run.took < Duration::from_secs(10),
        "took {:?}",
        run.took
    );
}

// --- DNS ---

#[test]
fn name_that_does_not_exist_is_dns_error() {
    let dns = MockDns::start(DnsAnswer::NxDomain);
    let config = pinging(["no-such-backend.test:80"])
        .dns("nameservers", vec![dns.addr().to_string()])
        .dns("timeout", "1s");
    let (run, report) = doctor_json(&config, &[]);
    assert_outcome(&run, &report, 0, json!({"dns_error": 1}));
    let server = only_server(&report);
    assert_eq!(server["server"], "no-such-backend.test:80");
    assert_eq!(server["label"], "app/no-such-backend.test:80");
    assert!(server.get("address").is_none(), "{server:#}");
    let verdict = assert_failed(server, "dns_error", 502);
    assert_eq!(
        verdict["summary"],
        "no-such-backend.test does not exist (NXDOMAIN)"
    );
    assert!(text(verdict, "cause").contains("NXDOMAIN"), "{verdict:#}");
    assert!(
        text(verdict, "fix").contains("upstream.app.servers"),
        "{verdict:#}"
    );
    assert!(
        dns.queries() > 0,
        "the doctor did not use [dns] nameservers"
    );
}

#[test]
fn silent_name_server_is_dns_timeout() {
    let dns = MockDns::start(DnsAnswer::Silent);
    let config = pinging(["app.test:80"])
        .dns("nameservers", vec![dns.addr().to_string()])
        .dns("timeout", "300ms");
    let (run, report) = doctor_json(&config, &[]);
    assert_outcome(&run, &report, 0, json!({"dns_timeout": 1}));
    let verdict = assert_failed(only_server(&report), "dns_timeout", 504);
    assert!(
        text(verdict, "cause").starts_with("the DNS resolver did not answer"),
        "{verdict:#}"
    );
    assert!(text(verdict, "fix").contains("dns.timeout"), "{verdict:#}");
    assert!(dns.queries() > 0);
    assert!(run.took < Duration::from_secs(10), "took {:?}", run.took);
}

// --- HTTP failures ---

#[test]
fn headers_over_the_limit_are_measured() {
    let cookie = format!("session={}", "c".repeat(40_000));
    let upstream = Upstream::serve(Reply::ok("x").header("Set-Cookie", &cookie));
    let config =
        pinging([upstream.addr()]).upstream_setting("app", "max_response_header_size", "16KiB");
    let (run, report) = doctor_json(&config, &[]);
    assert_outcome(
        &run,
        &report,
        0,
        json!({"http_response_header_section_size": 1}),
    );
    let server = only_server(&report);
    let verdict = assert_failed(server, "http_response_header_section_size", 502);

    // "HTTP/1.1 200 OK\r\n", the cookie field, "Content-Length: 1\r\n", "\r\n".
    let size = 17 + ("set-cookie: ".len() + cookie.len() + 2) + 19 + 2;
    let http = &server["http"];
    assert_eq!(http["header_limit"], 16 * 1024);
    assert_eq!(http["header_bytes"], size, "{server:#}");
    assert_eq!(
        verdict["cause"],
        format!(
            "the response headers of GET /ping are {size} bytes, more than max_response_header_size (16384 bytes)"
        )
    );
    let fix = text(verdict, "fix");
    assert!(
        fix.contains(&format!(
            "upstream.app.max_response_header_size to at least {}KiB",
            size.div_ceil(1024) + 1
        )),
        "{fix}"
    );
    // The second request is the one that measured the headers.
    assert_eq!(upstream.requests_to(PING).len(), 2);
}

#[test]
fn header_bytes_are_counted_as_received() {
    // `http.header_bytes` is "the size of the response header section (status line and
    // fields)": a reason phrase other than the canonical one counts as sent.
    let head = "HTTP/1.1 200 Everything Is Fine\r\nContent-Length: 2\r\n\r\n";
    let upstream = Upstream::start(Behavior::RawThenClose(format!("{head}ok").into_bytes()));
    let (run, report) = doctor_json(&pinging([upstream.addr()]), &[]);
    assert_outcome(&run, &report, 1, json!({}));
    let server = only_server(&report);
    assert_eq!(server["http"]["header_bytes"], head.len(), "{server:#}");
}

#[test]
fn backend_slower_than_response_timeout_is_timed() {
    let upstream = Upstream::start(Behavior::Delay(
        Duration::from_millis(1000),
        Reply::ok("late"),
    ));
    let addr = upstream.addr();
    let config = pinging([addr]).upstream_setting("app", "response_timeout", "300ms");
    let (run, report) = doctor_json(&config, &["--wait", "5s"]);
    assert_outcome(&run, &report, 0, json!({"http_response_timeout": 1}));
    let server = only_server(&report);
    let verdict = assert_failed(server, "http_response_timeout", 504);
    let http = &server["http"];
    let late = number(http, "late_first_byte_ms");
    assert!((1000.0..5000.0).contains(&late), "{server:#}");
    assert!(late >= number(http, "response_timeout_ms"));
    assert_eq!(number(http, "response_timeout_ms"), 300.0);
    assert!(http.get("status").is_none(), "{server:#}");
    let cause = text(verdict, "cause");
    assert!(
        cause.starts_with(&format!("{addr} answered GET /ping after "))
            && cause.ends_with("later than response_timeout (300ms)"),
        "{cause}"
    );
    assert!(
        text(verdict, "fix").starts_with("raise upstream.app.response_timeout above "),
        "{verdict:#}"
    );
    assert!(run.took < Duration::from_secs(5), "took {:?}", run.took);
}

#[test]
fn backend_that_never_answers_is_waited_for_then_given_up() {
    let upstream = Upstream::start(Behavior::Hang);
    let addr = upstream.addr();
    let config = pinging([addr]).upstream_setting("app", "response_timeout", "300ms");
    let (run, report) = doctor_json(&config, &["--wait", "1s"]);
    assert_outcome(&run, &report, 0, json!({"http_response_timeout": 1}));
    let server = only_server(&report);
    let verdict = assert_failed(server, "http_response_timeout", 504);
    assert!(
        server["http"].get("late_first_byte_ms").is_none(),
        "{server:#}"
    );
    assert_eq!(
        verdict["cause"],
        format!(
            "{addr} accepted the connection but did not answer GET /ping within 1s (response_timeout is 300ms)"
        )
    );
    assert!(
        run.took >= Duration::from_secs(1) && run.took < Duration::from_secs(5),
        "took {:?}",
        run.took
    );
}

#[test]
fn hung_backend_cause_says_how_long_it_was_really_waited_for() {
    // --wait shorter than response_timeout: the doctor still waits the whole
    // response_timeout (the proxy would), so the cause must not claim it gave up sooner.
    let upstream = Upstream::start(Behavior::Hang);
    let config = pinging([upstream.addr()]).upstream_setting("app", "response_timeout", "600ms");
    let (run, report) = doctor_json(&config, &["--wait", "200ms"]);
    assert_outcome(&run, &report, 0, json!({"http_response_timeout": 1}));
    let verdict = assert_failed(only_server(&report), "http_response_timeout", 504);
    assert!(
        run.took >= Duration::from_millis(600),
        "took {:?}",
        run.took
    );
    let cause = text(verdict, "cause");
    assert!(
        cause.contains("did not answer GET /ping within 600ms"),
        "the doctor waited {:?}, but the cause says: {cause}",
        run.took
    );
}

#[test]
fn body_cut_short_is_response_incomplete() {
    let upstream = Upstream::start(Behavior::RawThenClose(
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc".to_vec(),
    ));
    let (run, report) = doctor_json(&pinging([upstream.addr()]), &[]);
    assert_outcome(&run, &report, 0, json!({"http_response_incomplete": 1}));
    let server = only_server(&report);
    assert_failed(server, "http_response_incomplete", 502);
    assert_eq!(server["http"]["status"], 200, "{server:#}");
    assert!(server["http"].get("body_bytes").is_none(), "{server:#}");
}

#[test]
fn body_that_stalls_is_read_timeout() {
    let upstream = Upstream::start(Behavior::RawThenHang(
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc".to_vec(),
    ));
    let config = pinging([upstream.addr()]).upstream_setting("app", "read_timeout", "300ms");
    let (run, report) = doctor_json(&config, &[]);
    assert_outcome(&run, &report, 0, json!({"connection_read_timeout": 1}));
    let verdict = assert_failed(only_server(&report), "connection_read_timeout", 504);
    assert!(
        text(verdict, "cause").contains("after 3 bytes"),
        "{verdict:#}"
    );
    assert!(
        text(verdict, "fix").contains("upstream.app.read_timeout"),
        "{verdict:#}"
    );
    assert!(run.took < Duration::from_secs(5), "took {:?}", run.took);
}

#[test]
fn non_http_service_is_protocol_error() {
    let upstream = Upstream::start(Behavior::RawThenClose(b"SSH-2.0-OpenSSH_9.2\r\n".to_vec()));
    let addr = upstream.addr();
    let (run, report) = doctor_json(&pinging([addr]), &[]);
    assert_outcome(&run, &report, 0, json!({"http_protocol_error": 1}));
    let server = only_server(&report);
    let verdict = assert_failed(server, "http_protocol_error", 502);
    assert!(
        text(verdict, "cause").starts_with(&format!("{addr} does not answer in HTTP/1.x")),
        "{verdict:#}"
    );
    assert!(text(verdict, "fix").contains("upstream.app.servers"));
    assert!(number(server, "connect_ms") >= 0.0);
}

#[test]
fn connection_closed_without_an_answer_is_connection_terminated() {
    let upstream = Upstream::start(Behavior::CloseAfterRequest);
    let addr = upstream.addr();
    let (run, report) = doctor_json(&pinging([addr]), &[]);
    assert_outcome(&run, &report, 0, json!({"connection_terminated": 1}));
    let verdict = assert_failed(only_server(&report), "connection_terminated", 502);
    assert_eq!(
        verdict["cause"],
        format!("{addr} accepted the connection but closed it without answering GET /ping")
    );
}

#[test]
fn denied_address_is_not_contacted() {
    let upstream = Upstream::serve(Reply::ok("pong"));
    let config = pinging([upstream.addr()]).upstream_setting(
        "app",
        "deny_addresses",
        vec!["127.0.0.0/8".to_owned()],
    );
    let (run, report) = doctor_json(&config, &[]);
    assert_outcome(&run, &report, 0, json!({"destination_ip_prohibited": 1}));
    let verdict = assert_failed(only_server(&report), "destination_ip_prohibited", 502);
    assert!(
        text(verdict, "cause").contains("deny_addresses"),
        "{verdict:#}"
    );
    assert_eq!(upstream.connections(), 0);
}

// --- health check ---

#[test]
fn health_path_answering_500_is_unhealthy_without_a_kind() {
    let upstream = Upstream::serve(Reply::ok("fine"));
    upstream.set_route(PING, Behavior::Serve(Reply::new(500, "down")));
    let (run, report) = doctor_json(&pinging([upstream.addr()]), &[]);
    assert_outcome(&run, &report, 0, json!({"unhealthy": 1}));
    let server = only_server(&report);
    let verdict = &server["verdict"];
    assert_eq!(verdict["healthy"], false, "{server:#}");
    assert!(verdict.get("kind").is_none(), "{server:#}");
    assert!(verdict.get("status").is_none(), "{server:#}");
    assert_eq!(server["http"]["status"], 500);
    assert_eq!(
        verdict["summary"],
        "GET /ping answered 500 Internal Server Error, not 200-399"
    );
    assert!(text(verdict, "cause").contains("fails its health check"));
    assert!(text(verdict, "fix").contains("upstream.app.health.path"));
}

#[test]
fn tcp_only_health_check_does_not_judge_the_status() {
    // `[upstream.app.health]` without `path`: the proxy's check is a TCP connect, so a
    // backend answering 404 on `/` stays in rotation and its 404s reach the client as they
    // are. The doctor must not call it a failed health check.
    let upstream = Upstream::serve(Reply::new(404, "no such page"));
    let config = Config::proxy_to([upstream.addr()])
        .health("app", "interval", "5s")
        .server("listen", vec!["127.0.0.1:0".to_owned()]);
    let (run, report) = doctor_json(&config, &[]);
    let server = only_server(&report);
    assert_eq!(server["http"]["status"], 404, "{server:#}");
    assert_eq!(server["verdict"]["healthy"], true, "{server:#}");
    assert_outcome(&run, &report, 1, json!({}));
}

// --- the config ---

#[test]
fn config_smells_are_warnings_only() {
    let upstream = Upstream::serve(Reply::ok("pong"));
    let held = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let listen = held.local_addr().expect("local addr");
    let config = pinging([upstream.addr()])
        .server("listen", vec![listen.to_string()])
        .health("app", "interval", "1s")
        .health("app", "timeout", "2s")
        .upstream("spare", [upstream.addr()]);
    let (run, report) = doctor_json(&config, &[]);
    assert_outcome(&run, &report, 2, json!({}));

    let smells: Vec<&str> = report["smells"]
        .as_array()
        .expect("smells")
        .iter()
        .map(|s| s.as_str().expect("smell is a string"))
        .collect();
    let with = |needle: &str| smells.iter().filter(|s| s.contains(needle)).count();
    assert_eq!(
        with(&format!("server.listen {listen} is already in use")),
        1,
        "{smells:#?}"
    );
    assert_eq!(with("not shorter than the interval"), 1, "{smells:#?}");
    assert_eq!(
        with("upstream.spare: no route uses this upstream"),
        1,
        "{smells:#?}"
    );
    assert_eq!(report["summary"]["warnings"], smells.len());
    assert_eq!(report["upstreams"][1]["name"], "spare");
    assert_eq!(report["upstreams"][1]["routes"], json!([]));
}

#[test]
fn unused_upstream_is_reported_once() {
    // The loader's warning ("no route uses this upstream") and the doctor's own smell ("is
    // not used by any route") are the same problem; it should be one warning, not two.
    let upstream = Upstream::serve(Reply::ok("pong"));
    let config = pinging([upstream.addr()]).upstream("spare", [upstream.addr()]);
    let (run, report) = doctor_json(&config, &[]);
    assert_outcome(&run, &report, 2, json!({}));
    let about_spare: Vec<&Value> = report["smells"]
        .as_array()
        .expect("smells")
        .iter()
        .filter(|s| s.as_str().is_some_and(|s| s.contains("spare")))
        .collect();
    assert_eq!(about_spare.len(), 1, "{about_spare:#?}");
}

#[test]
fn invalid_config_exits_1_with_diagnostics_on_stderr() {
    let upstream = Upstream::serve(Reply::ok("pong"));
    let config = pinging([upstream.addr()]).upstream_setting("app", "respose_timeout", "1s");
    let file = TempFile::with_contents("gatehouse-doctor", ".toml", config.toml().as_bytes());
    let path = file.path().display().to_string();
    for extra in [&[][..], &["--json"][..]] {
        let run = doctor_file(file.path(), extra);
        assert_eq!(run.code, Some(1), "{run:#?}");
        assert_eq!(run.stdout, "", "{run:#?}");
        assert!(
            run.stderr.lines().any(|l| l.starts_with(&path)
                && l.contains("error")
                && l.contains("respose_timeout")),
            "{run:#?}"
        );
    }
    assert!(
        upstream.requests().is_empty(),
        "an invalid config was acted on"
    );
}

// --- the text report ---

#[test]
fn text_report_shows_each_verdict_and_the_summary() {
    let upstream = Upstream::serve(Reply::ok("pong"));
    let ok = upstream.addr();
    let port = closed_port();
    let config = pinging([ok.to_string(), format!("127.0.0.1:{port}")]);
    let file = TempFile::with_contents("gatehouse-doctor", ".toml", config.toml().as_bytes());
    // `-c` after the subcommand works too: it is a global option.
    let run = gatehouse(&["doctor", "-c", file.path().to_str().expect("UTF-8 path")]);
    assert_eq!(run.code, Some(1), "{run:#?}");
    let out = &run.stdout;
    let lines: Vec<&str> = out.lines().collect();

    assert!(
        lines[0].starts_with(&format!(
            "gatehouse doctor: {} (1 upstream(s), 2 server(s))",
            file.path().display()
        )),
        "{out}"
    );
    assert!(lines.contains(&"upstream app (routes: */)"), "{out}");
    let line_of = |label: &str| {
        lines
            .iter()
            .position(|l| l.starts_with(&format!("  {label} ")))
            .unwrap_or_else(|| panic!("no line for {label}:\n{out}"))
    };
    let good = line_of(&format!("app/{ok}"));
    assert!(
        lines[good].ends_with("ok    GET /ping answered 200 OK"),
        "{out}"
    );
    let bad = line_of(&format!("app/127.0.0.1:{port}"));
    assert!(
        lines[bad].ends_with("FAIL  connection_refused: a request routed here gets 502"),
        "{out}"
    );
    let details: Vec<&str> = lines[bad + 1..].iter().map(|l| l.trim_start()).collect();
    assert!(details[0].starts_with("what "), "{out}");
    assert!(
        details[1].starts_with(&format!("cause    nothing listens on 127.0.0.1:{port}")),
        "{out}"
    );
    assert!(details[2].starts_with("fix      "), "{out}");
    let summary = lines
        .iter()
        .find(|l| l.starts_with("summary: "))
        .unwrap_or_else(|| panic!("no summary line:\n{out}"));
    assert!(
        summary.starts_with("summary: 2 server(s): 1 healthy, 1 failing (connection_refused 1);"),
        "{summary}"
    );
}

#[test]
fn routed_upstream_without_servers_fails_the_check() {
    // `servers = []` is only a warning of the config, but every request routed there gets 500
    // proxy_configuration_error: the doctor must not call that healthy.
    let upstream = Upstream::serve(Reply::ok("pong"));
    let config = pinging([upstream.addr()])
        .upstream("empty", Vec::<String>::new())
        .route(None, "/empty", "empty");
    let run = doctor(&config, &["--json"]);
    let report = run.json();
    assert_eq!(run.code, Some(1), "stderr:\n{}", run.stderr);
    assert_eq!(report["summary"]["failing"], 0);
    assert_eq!(report["summary"]["empty_upstreams"], 1);
    let empty = &report["upstreams"][1];
    assert_eq!(empty["name"], "empty");
    assert!(
        text(empty, "problem").contains("500 proxy_configuration_error"),
        "{empty:#}"
    );
    let text_run = doctor(&config, &[]);
    assert!(
        text_run
            .stdout
            .contains("1 routed upstream(s) without servers"),
        "{}",
        text_run.stdout
    );
}

// --- servers reached over TLS (`https://host:port`) ---

use gatehouse_testkit::tls::{TestCa, Validity};
use gatehouse_testkit::tls_origin::TlsOrigin;

/// A test CA, an HTTPS backend (the test kit's TLS origin, offering `http/1.1`) with its
/// certificate for 127.0.0.1 (valid as `validity` says), and the CA's PEM file for
/// `tls_ca_file`.
fn https_backend(validity: Validity) -> (TlsOrigin, TempFile) {
    let ca = TestCa::new("Doctor Test CA");
    let backend = TlsOrigin::http1(&ca.leaf_with(&["127.0.0.1"], validity));
    (backend, ca.write_pem())
}

/// `GET /ping` to `https://ADDR`, trusting the CA in `ca_file`.
fn pinging_over_tls(addr: SocketAddr, ca_file: &TempFile) -> Config {
    pinging([format!("https://{addr}")]).upstream_setting(
        "app",
        "tls_ca_file",
        ca_file.path().to_str().expect("UTF-8 path"),
    )
}

#[test]
fn tls_server_report_shows_the_protocol_and_the_certificate() {
    let (backend, ca_file) = https_backend(Validity::Current);
    let config = pinging_over_tls(backend.addr(), &ca_file);
    let (run, report) = doctor_json(&config, &[]);
    assert_outcome(&run, &report, 1, json!({}));
    let server = only_server(&report);
    assert_eq!(server["verdict"]["summary"], "GET /ping answered 200 OK");
    let tls = &server["tls"];
    assert_eq!(tls["server_name"], "127.0.0.1", "{server:#}");
    assert_eq!(tls["alpn_offered"], json!(["http/1.1"]), "{server:#}");
    assert_eq!(tls["protocol"], "TLSv1.3", "{server:#}");
    assert_eq!(tls["alpn"], "http/1.1", "{server:#}");
    assert!(text(tls, "cipher").starts_with("TLS13_"), "{server:#}");
    assert_eq!(tls["subject"], "CN=127.0.0.1", "{server:#}");
    assert_eq!(tls["issuer"], "CN=Doctor Test CA", "{server:#}");
    assert!(text(tls, "expires").ends_with('Z'), "{server:#}");
    let days = tls["days_left"].as_i64().expect("days_left");
    assert!((364..=366).contains(&days), "{server:#}");
    assert!(number(tls, "handshake_ms") >= 0.0);
    assert_eq!(server["http"]["status"], 200);
    assert!(server.get("warnings").is_none(), "{server:#}");

    let run = doctor(&config, &[]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    let out = &run.stdout;
    assert!(out.contains("      tls      TLSv1.3 TLS13_"), "{out}");
    assert!(out.contains("(name 127.0.0.1)"), "{out}");
    assert!(
        out.contains("      cert     CN=127.0.0.1, issued by CN=Doctor Test CA"),
        "{out}"
    );
    assert!(
        out.contains("      expires  ") && out.contains(&format!("(in {days} days)")),
        "{out}"
    );
}

#[test]
fn expired_tls_certificate_is_a_certificate_error_naming_the_expiry() {
    let (backend, ca_file) = https_backend(Validity::Expired);
    let (run, report) = doctor_json(&pinging_over_tls(backend.addr(), &ca_file), &[]);
    assert_outcome(&run, &report, 0, json!({"tls_certificate_error": 1}));
    let server = only_server(&report);
    let verdict = assert_failed(server, "tls_certificate_error", 502);
    let cause = text(verdict, "cause");
    assert!(cause.contains("CN=127.0.0.1"), "{cause}");
    assert!(cause.contains("EXPIRED 1 day ago"), "{cause}");
    assert!(
        text(verdict, "fix").starts_with("renew the certificate on the server"),
        "{verdict:#}"
    );
    // The certificate that failed, with its expiry.
    assert_eq!(server["tls"]["certificate"]["days_left"], -1, "{server:#}");
    assert!(server["tls"].get("protocol").is_none(), "{server:#}");
    assert!(
        number(server, "connect_ms") >= 0.0,
        "the TCP connect worked"
    );
}

#[test]
fn plain_http_behind_https_is_a_tls_protocol_error() {
    let upstream = Upstream::serve(Reply::ok("pong"));
    let (_unused, ca_file) = https_backend(Validity::Current);
    let (run, report) = doctor_json(&pinging_over_tls(upstream.addr(), &ca_file), &[]);
    assert_outcome(&run, &report, 0, json!({"tls_protocol_error": 1}));
    let verdict = assert_failed(only_server(&report), "tls_protocol_error", 502);
    assert!(
        text(verdict, "cause").contains("speaks plain HTTP, not TLS"),
        "{verdict:#}"
    );
    assert!(
        text(verdict, "fix").starts_with(
            "the port speaks plain HTTP: write the server as host:port without https://"
        ),
        "{verdict:#}"
    );
}

#[test]
fn tls_certificate_expiring_in_5_days_is_a_warning() {
    let (backend, ca_file) = https_backend(Validity::EndsIn(5));
    let config = pinging_over_tls(backend.addr(), &ca_file);
    let (run, report) = doctor_json(&config, &[]);
    assert_outcome(&run, &report, 1, json!({}));
    assert_eq!(report["summary"]["warnings"], 1, "{report:#}");
    let server = only_server(&report);
    assert_eq!(server["tls"]["days_left"], 5, "{server:#}");
    let warning = server["warnings"][0].as_str().unwrap_or_default();
    assert!(warning.contains("expires in 5 days"), "{server:#}");

    let run = doctor(&config, &[]);
    assert!(
        run.stdout
            .contains("      warning  the TLS certificate expires in 5 days"),
        "{}",
        run.stdout
    );
}

// --- HTTP/2 on cleartext (prior knowledge) ---

/// A cleartext HTTP/2-only origin (prior knowledge): hyper's server on its own tokio runtime,
/// answering every request with 200 `hello h2` and noting the HTTP version it came over.
struct H2cOrigin {
    addr: SocketAddr,
    versions: std::sync::Arc<std::sync::Mutex<Vec<http::Version>>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl H2cOrigin {
    fn start() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let versions: std::sync::Arc<std::sync::Mutex<Vec<http::Version>>> =
            std::sync::Arc::default();
        let seen = std::sync::Arc::clone(&versions);
        runtime.spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let seen = std::sync::Arc::clone(&seen);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |req: hyper::Request<hyper::body::Incoming>| {
                            seen.lock().expect("versions").push(req.version());
                            async {
                                Ok::<_, std::convert::Infallible>(hyper::Response::new(
                                    http_body_util::Full::new(&b"hello h2"[..]),
                                ))
                            }
                        },
                    );
                    let builder = hyper::server::conn::http2::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    );
                    let _ = builder
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            addr,
            versions,
            runtime: Some(runtime),
        }
    }
}

impl Drop for H2cOrigin {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

#[test]
fn http2_upstream_whose_server_speaks_only_http11_fails_as_through_the_proxy() {
    use gatehouse_testkit::{Gatehouse, Req};

    // `http2 = true` on cleartext: the proxy speaks HTTP/2 with prior knowledge, which an
    // HTTP/1.1-only server cannot answer. The doctor must meet what a request meets.
    let upstream = Upstream::serve(Reply::ok("pong"));
    let config = pinging([upstream.addr()])
        .upstream_setting("app", "http2", true)
        .server("proxy_status", "full");

    let proxy = Gatehouse::start(Path::new(env!("CARGO_BIN_EXE_gatehouse")), &config.toml());
    let through_proxy = Req::get(PING).send(proxy.addr());
    let status = through_proxy.status;
    let kind = through_proxy
        .proxy_status()
        .last()
        .error()
        .unwrap_or_else(|| panic!("no error in Proxy-Status: {through_proxy:#?}"))
        .to_owned();
    assert!(status >= 500, "{through_proxy:#?}");
    drop(proxy);

    let (run, report) = doctor_json(&config, &[]);
    let server = only_server(&report);
    let verdict = assert_failed(server, &kind, status);
    assert!(
        text(verdict, "fix").starts_with("set upstream.app.http2 = false"),
        "{verdict:#}"
    );
    assert_eq!(server["http"]["protocol"], "h2c", "{server:#}");
    assert_outcome(&run, &report, 0, json!({ kind.as_str(): 1 }));
    assert!(
        number(server, "connect_ms") >= 0.0,
        "the TCP connect worked: {server:#}"
    );
}

#[test]
fn http2_upstream_on_cleartext_is_checked_over_h2c() {
    let origin = H2cOrigin::start();
    let config = pinging([origin.addr]).upstream_setting("app", "http2", true);
    let (run, report) = doctor_json(&config, &[]);
    assert_outcome(&run, &report, 1, json!({}));
    let server = only_server(&report);
    assert_eq!(server["verdict"]["healthy"], true, "{server:#}");
    let http = &server["http"];
    assert_eq!(http["status"], 200, "{server:#}");
    assert_eq!(http["protocol"], "h2c", "{server:#}");
    assert_eq!(http["body_bytes"], 8, "{server:#}");
    assert_eq!(
        *origin.versions.lock().expect("versions"),
        [http::Version::HTTP_2],
        "one HTTP/2 request from the doctor"
    );
    let run = doctor(&config, &[]);
    assert!(
        run.stdout
            .contains("      http     GET /ping over h2c → 200"),
        "{}",
        run.stdout
    );
}
