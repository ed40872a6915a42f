//! `gatehouse probe` against the real binary: Proxy-Status decoded from a real gatehouse in front
//! of a failing upstream, the probe's own failures named with the proxy's kinds (refused,
//! timeout, protocol error), the HEAD-to-GET fallback, redirects, extra headers, URL lists from a
//! file or stdin with the summary, Cache-Status, and the exit status (0 for 2xx/3xx, 1 for
//! 4xx/5xx, 2 for no usable response or an invalid URL).
//!
//! Every run is guarded: a probe still running after [`GUARD`] is killed and the test fails, so
//! a wedged command never hangs CI.

use std::io::{BufRead as _, BufReader, Read, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gatehouse_testkit::tls::{TestCa, Validity};
use gatehouse_testkit::tls_origin::TlsOrigin;
use gatehouse_testkit::{Behavior, Config, FullBacklog, Gatehouse, Reply, TempFile, Upstream};
use serde_json::Value;

/// The longest a probe may run before it is killed and the test fails.
const GUARD: Duration = Duration::from_secs(30);

/// What one `gatehouse probe` run produced.
#[derive(Debug)]
struct Run {
    /// The exit code (`None` if killed by a signal).
    code: Option<i32>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

impl Run {
    /// Asserts the exit code, showing the output otherwise.
    fn expect_exit(&self, code: i32) {
        assert_eq!(self.code, Some(code), "unexpected exit status: {self:#?}");
    }

    /// stdout as JSON (for `--json` runs).
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:#?}"))
    }
}

/// `gatehouse probe ARGS...` with stdin closed.
fn probe(args: &[&str]) -> Run {
    run(args, None)
}

/// `gatehouse probe ARGS...` with `input` on stdin.
fn probe_with_stdin(args: &[&str], input: &str) -> Run {
    run(args, Some(input))
}

fn run(args: &[&str], input: Option<&str>) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .arg("probe")
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start gatehouse probe: {e}"));
    let started = Instant::now();
    let stdout = read_all(child.stdout.take());
    let stderr = read_all(child.stderr.take());
    if let (Some(input), Some(mut stdin)) = (input.map(str::to_owned), child.stdin.take()) {
        // On a thread, so that a probe that never reads its input still meets the guard; the
        // pipe closes when the thread ends, and the probe sees the end of its input.
        std::thread::spawn(move || {
            let _ = stdin.write_all(input.as_bytes());
        });
    }
    let status = loop {
        if let Some(status) = child.try_wait().unwrap_or_else(|e| panic!("wait: {e}")) {
            break status;
        }
        if started.elapsed() > GUARD {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "gatehouse probe {args:?} still running after {GUARD:?}; killed\nstdout: {}\nstderr: {}",
                stdout.join().unwrap_or_default(),
                stderr.join().unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Run {
        code: status.code(),
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
        elapsed: started.elapsed(),
    }
}

/// Reads a child's pipe to its end on a thread (so a full pipe never blocks the child).
fn read_all(pipe: Option<impl Read + Send + 'static>) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_string(&mut text);
        }
        text
    })
}

fn start(config: Config) -> Gatehouse {
    Gatehouse::start(Path::new(env!("CARGO_BIN_EXE_gatehouse")), &config.toml())
}

/// A port where connections are refused for the whole test (see the testkit's).
fn closed_port() -> u16 {
    gatehouse_testkit::closed_port()
}

fn url(addr: SocketAddr, path: &str) -> String {
    format!("http://{addr}{path}")
}

/// The only URL's result of a `--json` run.
fn only_result(json: &Value) -> &Value {
    let results = json["results"]
        .as_array()
        .unwrap_or_else(|| panic!("{json:#}"));
    assert_eq!(results.len(), 1, "{json:#}");
    &results[0]
}

/// The hops of a result.
fn hops(result: &Value) -> &Vec<Value> {
    result["hops"]
        .as_array()
        .unwrap_or_else(|| panic!("no hops in {result:#}"))
}

/// The only hop of the only URL of a `--json` run.
fn only_hop(json: &Value) -> &Value {
    let hops = hops(only_result(json));
    assert_eq!(hops.len(), 1, "{json:#}");
    &hops[0]
}

/// The string at `value`, panicking with the whole JSON if it is not one.
fn text<'a>(value: &'a Value, json: &Value) -> &'a str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("expected a string, got {value} in {json:#}"))
}

/// A tiny HTTP/1.1 server whose answer depends on the method and path (one request per
/// connection, `Connection: close`), recording `METHOD PATH` of every request.
#[derive(Debug)]
struct Site {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

/// An answer of [`Site`]: status and body.
type Answer = fn(method: &str, path: &str) -> (u16, &'static str);

impl Site {
    fn start(answer: Answer) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (thread_seen, thread_stop) = (Arc::clone(&seen), Arc::clone(&stop));
        let acceptor = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if thread_stop.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let seen = Arc::clone(&thread_seen);
                std::thread::spawn(move || serve_one(stream, answer, &seen));
            }
        });
        Self {
            addr,
            seen,
            stop,
            acceptor: Some(acceptor),
        }
    }

    /// `METHOD PATH` of every request so far.
    fn seen(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the acceptor so that it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

fn serve_one(stream: TcpStream, answer: Answer, seen: &Mutex<Vec<String>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(&stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    // The rest of the head, up to the empty line.
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) if line == "\r\n" || line == "\n" => break,
            Ok(_) => {}
        }
    }
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    seen.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(format!("{method} {path}"));
    let (status, body) = answer(method, path);
    let mut response = format!(
        "HTTP/1.1 {status} Whatever\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if method != "HEAD" {
        response.push_str(body);
    }
    let mut stream = &stream;
    let _ = stream.write_all(response.as_bytes());
}

/// An upstream answering `/` with 200 and `path` with `reply`.
fn serving(path: &str, reply: Reply) -> Upstream {
    let upstream = Upstream::hello();
    upstream.set_route(path, Behavior::Serve(reply));
    upstream
}

fn redirect(status: u16, location: &str) -> Reply {
    Reply::new(status, "").header("Location", location)
}

// --- Proxy-Status from a real gatehouse ---

#[test]
fn gateway_502_for_a_refused_upstream_is_explained() {
    let port = closed_port();
    let gh = start(Config::proxy_to([format!("127.0.0.1:{port}")]).server("proxy_status", "full"));
    let target = url(gh.addr(), "/");
    let next_hop = format!("app/127.0.0.1:{port}");
    let sentence = format!("could not connect to `{next_hop}`: connection refused");

    let run = probe(&[&target, "--json", "-t", "5s"]);
    run.expect_exit(1);
    let json = run.json();
    assert_eq!(only_result(&json)["outcome"]["result"], "error_status");
    assert_eq!(only_result(&json)["outcome"]["status"], 502, "{json:#}");
    let hop = only_hop(&json);
    assert_eq!(hop["method"], "HEAD");
    assert_eq!(hop["status"], 502);
    assert_eq!(hop["reason"], "Bad Gateway");
    assert!(hop.get("failure").is_none(), "a 502 is a response: {hop:#}");
    let member = &hop["proxy_status"][0];
    assert_eq!(member["proxy"], "gatehouse", "{hop:#}");
    assert_eq!(member["error"], "connection_refused", "{hop:#}");
    assert_eq!(member["next_hop"], next_hop.as_str(), "{hop:#}");
    assert!(member.get("received_status").is_none(), "{member:#}");
    assert!(member["params"].is_object(), "{member:#}");
    let words = text(&member["words"], &json);
    assert!(
        words.starts_with(&format!("gateway `gatehouse` {sentence}")),
        "{words}"
    );
    assert!(
        words.contains("backend not running, or wrong port"),
        "{words}"
    );
    // The summary tells why the URL failed in the gateway's words.
    let failures = &json["summary"]["failures"];
    assert_eq!(failures[0][0], target.as_str(), "{json:#}");
    assert!(text(&failures[0][1], &json).contains(&sentence), "{json:#}");

    let run = probe(&[&target, "-t", "5s"]);
    run.expect_exit(1);
    assert!(
        run.stdout.contains(&format!("{target}  502 Bad Gateway")),
        "{run:#?}"
    );
    assert!(
        run.stdout
            .contains(&format!("proxy-status  gateway `gatehouse` {sentence}")),
        "{run:#?}"
    );
}

#[test]
fn an_origin_503_passed_on_is_told_from_a_gateway_error() {
    let upstream = Upstream::serve(Reply::new(503, "busy"));
    let gh = start(Config::proxy_to([upstream.addr()]));
    let run = probe(&[&url(gh.addr(), "/"), "--json", "-t", "5s"]);
    run.expect_exit(1);
    let json = run.json();
    assert_eq!(
        only_result(&json)["outcome"],
        serde_json::json!({"result": "error_status", "status": 503})
    );
    let hop = only_hop(&json);
    assert_eq!(hop["status"], 503);
    let members = hop["proxy_status"].as_array().unwrap();
    assert_eq!(members.len(), 1, "{hop:#}");
    let member = &members[0];
    assert_eq!(member["proxy"], "gatehouse");
    assert_eq!(member["received_status"], 503, "{member:#}");
    // minimal mode: no error (the origin's answer), no next hop, no details.
    for absent in ["error", "next_hop", "details"] {
        assert!(member.get(absent).is_none(), "{absent} in {member:#}");
    }
    assert_eq!(
        member["words"],
        "gateway `gatehouse` passed on status 503 from the upstream: the origin's own error, not the gateway's"
    );
    assert_eq!(upstream.requests()[0].method, "HEAD");
}

#[test]
fn gateway_504_for_a_slow_upstream_is_explained() {
    let upstream = Upstream::start(Behavior::Hang);
    let gh = start(
        Config::proxy_to([upstream.addr()])
            .server("proxy_status", "full")
            .upstream_setting("app", "response_timeout", "300ms"),
    );
    let run = probe(&[&url(gh.addr(), "/"), "--json", "-t", "5s"]);
    run.expect_exit(1);
    assert!(run.elapsed < Duration::from_secs(5), "{run:#?}");
    let json = run.json();
    assert_eq!(only_result(&json)["outcome"]["status"], 504, "{json:#}");
    let member = &only_hop(&json)["proxy_status"][0];
    assert_eq!(member["error"], "http_response_timeout", "{json:#}");
    let next_hop = format!("app/{}", upstream.addr());
    assert_eq!(member["next_hop"], next_hop.as_str());
    let words = text(&member["words"], &json);
    assert!(
        words.starts_with(&format!(
            "gateway `gatehouse` got no response headers from `{next_hop}` in time"
        )),
        "{words}"
    );
}

// --- the probe's own failures ---

#[test]
fn a_refused_port_fails_with_connection_refused() {
    let port = closed_port();
    let target = format!("http://127.0.0.1:{port}/");
    let run = probe(&[&target, "--json"]);
    run.expect_exit(2);
    let json = run.json();
    assert_eq!(
        only_result(&json)["outcome"],
        serde_json::json!({"result": "failed", "kind": "connection_refused"})
    );
    let hop = only_hop(&json);
    assert!(hop.get("status").is_none(), "{hop:#}");
    let failure = &hop["failure"];
    assert_eq!(failure["kind"], "connection_refused");
    assert_eq!(failure["gateway_status"], 502);
    assert_eq!(failure["phase"], "while connecting to upstream");
    assert_eq!(failure["hint"], "backend not running, or wrong port");
    assert!(
        text(&failure["details"], &json).contains(&format!("127.0.0.1:{port}")),
        "{failure:#}"
    );
    assert_eq!(json["summary"]["failed"], 1);

    let run = probe(&[&target]);
    run.expect_exit(2);
    assert!(
        run.stdout
            .contains(&format!("{target}  FAILED: connection_refused")),
        "{run:#?}"
    );
    assert!(
        run.stdout
            .contains("hint      backend not running, or wrong port (a gateway would answer 502)"),
        "{run:#?}"
    );
}

#[test]
fn a_server_that_never_answers_times_out() {
    let upstream = Upstream::start(Behavior::Hang);
    let run = probe(&[&url(upstream.addr(), "/"), "--json", "--timeout", "500ms"]);
    run.expect_exit(2);
    assert!(
        run.elapsed >= Duration::from_millis(500) && run.elapsed < Duration::from_secs(5),
        "took {:?} for a 500ms timeout",
        run.elapsed
    );
    let json = run.json();
    assert_eq!(
        only_result(&json)["outcome"]["kind"],
        "http_response_timeout"
    );
    let failure = &only_hop(&json)["failure"];
    assert_eq!(failure["kind"], "http_response_timeout");
    assert_eq!(failure["gateway_status"], 504);
    assert_eq!(
        failure["phase"],
        "while reading response headers from upstream"
    );
    assert!(
        text(&failure["details"], &json).contains("500ms"),
        "{failure:#}"
    );
    assert_eq!(upstream.requests().len(), 1);
}

#[test]
fn a_body_that_stalls_times_out_reading() {
    let upstream = Upstream::start(Behavior::RawThenHang(
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial".to_vec(),
    ));
    let run = probe(&[
        &url(upstream.addr(), "/"),
        "--json",
        "-m",
        "GET",
        "-t",
        "500ms",
    ]);
    run.expect_exit(2);
    assert!(run.elapsed < Duration::from_secs(5), "{run:#?}");
    let json = run.json();
    let hop = only_hop(&json);
    assert_eq!(hop["status"], 200, "the head arrived: {hop:#}");
    assert_eq!(hop["failure"]["kind"], "connection_read_timeout", "{hop:#}");
    assert_eq!(
        only_result(&json)["outcome"]["kind"],
        "connection_read_timeout"
    );
}

#[test]
fn a_full_accept_queue_is_a_connect_timeout() {
    let backlog = FullBacklog::start();
    let run = probe(&[&url(backlog.addr(), "/"), "--json", "-t", "500ms"]);
    run.expect_exit(2);
    assert!(run.elapsed < Duration::from_secs(5), "{run:#?}");
    let json = run.json();
    let failure = &only_hop(&json)["failure"];
    assert_eq!(failure["kind"], "connection_timeout", "{json:#}");
    assert_eq!(failure["phase"], "while connecting to upstream");
    assert_eq!(failure["gateway_status"], 504);
}

#[test]
fn a_connection_closed_without_an_answer_is_terminated() {
    let upstream = Upstream::start(Behavior::CloseAfterRequest);
    let run = probe(&[&url(upstream.addr(), "/"), "--json", "-t", "5s"]);
    run.expect_exit(2);
    let json = run.json();
    assert_eq!(
        only_result(&json)["outcome"],
        serde_json::json!({"result": "failed", "kind": "connection_terminated"})
    );
    assert_eq!(only_hop(&json)["failure"]["gateway_status"], 502);
}

#[test]
fn https_to_a_plain_http_port_is_a_tls_error() {
    let upstream = Upstream::hello();
    let target = format!("https://{}/", upstream.addr());
    let run = probe(&[&target, "--json", "-t", "5s"]);
    run.expect_exit(2);
    let json = run.json();
    let failure = &only_hop(&json)["failure"];
    assert_eq!(failure["kind"], "tls_protocol_error", "{json:#}");
    // The testkit upstream closes on the ClientHello it cannot parse as a request.
    assert_eq!(failure["gateway_status"], 502);
    assert_eq!(failure["phase"], "while connecting to upstream");
    assert!(
        only_hop(&json).get("status").is_none(),
        "no HTTP was spoken: {json:#}"
    );
}

#[test]
fn invalid_http_is_a_protocol_error() {
    let upstream = Upstream::start(Behavior::RawThenHang(
        b"THIS IS NOT HTTP AT ALL\r\n\r\n".to_vec(),
    ));
    let run = probe(&[&url(upstream.addr(), "/"), "--json", "-t", "5s"]);
    run.expect_exit(2);
    let json = run.json();
    assert_eq!(
        only_result(&json)["outcome"],
        serde_json::json!({"result": "failed", "kind": "http_protocol_error"})
    );
    let failure = &only_hop(&json)["failure"];
    assert_eq!(failure["gateway_status"], 502);
    assert_eq!(
        failure["phase"],
        "while reading response headers from upstream"
    );
}

// --- HEAD, redirects, headers ---

#[test]
fn head_refused_with_405_falls_back_to_get() {
    let site = Site::start(|method, _| match method {
        "HEAD" => (405, ""),
        _ => (200, "hello"),
    });
    let target = url(site.addr, "/page");
    let run = probe(&[&target, "--json", "-t", "5s"]);
    run.expect_exit(0);
    let json = run.json();
    assert_eq!(
        only_result(&json)["outcome"],
        serde_json::json!({"result": "ok", "status": 200})
    );
    let hop = only_hop(&json);
    assert_eq!(hop["method"], "GET");
    assert_eq!(hop["status"], 200);
    assert_eq!(hop["head_rejected"], 405);
    assert_eq!(hop["body_bytes"], 5, "GET reads the body: {hop:#}");
    assert_eq!(site.seen(), ["HEAD /page", "GET /page"]);

    let run = probe(&[&target, "-t", "5s"]);
    run.expect_exit(0);
    assert!(
        run.stdout
            .contains("HEAD was refused with 405; the status above is GET's"),
        "{run:#?}"
    );
}

#[test]
fn head_refused_with_501_falls_back_to_get_but_method_get_sends_no_head() {
    let site = Site::start(|method, _| match method {
        "HEAD" => (501, ""),
        _ => (404, "gone"),
    });
    let run = probe(&[&url(site.addr, "/x"), "--json", "-t", "5s"]);
    run.expect_exit(1);
    let hop = only_hop(&run.json()).clone();
    assert_eq!(
        (&hop["method"], &hop["status"]),
        (&"GET".into(), &404.into())
    );
    assert_eq!(hop["head_rejected"], 501);

    // -m GET never sends HEAD.
    let run = probe(&[&url(site.addr, "/y"), "--json", "-m", "GET", "-t", "5s"]);
    run.expect_exit(1);
    assert!(only_hop(&run.json()).get("head_rejected").is_none());
    assert_eq!(site.seen(), ["HEAD /x", "GET /x", "GET /y"]);
}

#[test]
fn follow_redirects_and_show_the_chain() {
    let upstream = serving("/a", redirect(301, "/b"));
    upstream.set_route("/b", Behavior::Serve(Reply::ok("here")));
    let start_url = url(upstream.addr(), "/a");

    let run = probe(&[&start_url, "--json", "--follow", "-t", "5s"]);
    run.expect_exit(0);
    let json = run.json();
    let result = only_result(&json);
    assert_eq!(
        result["outcome"],
        serde_json::json!({"result": "ok", "status": 200})
    );
    let chain = hops(result);
    assert_eq!(chain.len(), 2, "{json:#}");
    assert_eq!(chain[0]["url"], start_url.as_str());
    assert_eq!(chain[0]["status"], 301);
    assert_eq!(
        chain[0]["headers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h[0] == "location"),
        Some(&serde_json::json!(["location", "/b"])),
        "{json:#}"
    );
    assert_eq!(chain[1]["url"], url(upstream.addr(), "/b").as_str());
    assert_eq!(chain[1]["status"], 200);
    assert!(result.get("note").is_none(), "{json:#}");

    let run = probe(&[&start_url, "-L", "-t", "5s"]);
    run.expect_exit(0);
    assert!(
        run.stdout
            .contains(&format!("{start_url}  200 OK after 1 redirect")),
        "{run:#?}"
    );

    // Without --follow: the redirect is the answer.
    let run = probe(&[&start_url, "--json", "-t", "5s"]);
    run.expect_exit(0);
    let json = run.json();
    assert_eq!(
        only_result(&json)["outcome"],
        serde_json::json!({"result": "ok", "status": 301})
    );
    assert_eq!(only_hop(&json)["status"], 301);
    assert_eq!(
        upstream.requests_to("/b").len(),
        2,
        "only the two --follow runs ask for /b"
    );
}

#[test]
fn a_redirect_loop_is_noted_and_max_redirects_stops_a_chain() {
    let upstream = serving("/x", redirect(302, "/y"));
    upstream.set_route("/y", Behavior::Serve(redirect(302, "/x")));
    let run = probe(&[&url(upstream.addr(), "/x"), "--json", "-L", "-t", "5s"]);
    // The chain ended with a 3xx.
    run.expect_exit(0);
    let json = run.json();
    let result = only_result(&json);
    let chain = hops(result);
    assert_eq!(chain.len(), 2, "{json:#}");
    assert_eq!(chain[1]["url"], url(upstream.addr(), "/y").as_str());
    let note = text(&result["note"], &json);
    assert!(note.contains("loop"), "{note}");
    assert!(note.contains(&url(upstream.addr(), "/x")), "{note}");
    assert_eq!(
        upstream.requests_to("/x").len(),
        1,
        "the loop is not walked twice"
    );

    // /r1 → /r2 → /r3 → /: --max-redirects 1 follows one of them.
    upstream.set_route("/r1", Behavior::Serve(redirect(307, "/r2")));
    upstream.set_route("/r2", Behavior::Serve(redirect(307, "/r3")));
    upstream.set_route("/r3", Behavior::Serve(redirect(307, "/")));
    let run = probe(&[
        &url(upstream.addr(), "/r1"),
        "--json",
        "-L",
        "--max-redirects",
        "1",
        "-t",
        "5s",
    ]);
    run.expect_exit(0);
    let json = run.json();
    let result = only_result(&json);
    assert_eq!(hops(result).len(), 2, "{json:#}");
    assert_eq!(result["outcome"]["status"], 307);
    assert_eq!(
        result["note"],
        "stopped after 1 redirects (--max-redirects)"
    );
    assert!(upstream.requests_to("/r3").is_empty());
}

#[test]
fn extra_headers_reach_the_server() {
    let upstream = Upstream::hello();
    let run = probe(&[
        &url(upstream.addr(), "/hdr?q=1"),
        "-H",
        "X-Probe-Test: yes",
        "--header",
        "X-Other:  spaced ",
        "-t",
        "5s",
    ]);
    run.expect_exit(0);
    let request = upstream.wait_for_request_to("/hdr", Duration::from_secs(5));
    assert_eq!(request.method, "HEAD");
    assert_eq!(request.target, "/hdr?q=1");
    assert_eq!(request.header("x-probe-test"), Some("yes"));
    assert_eq!(request.header("x-other"), Some("spaced"));
    let host = upstream.addr().to_string();
    assert_eq!(request.header("host"), Some(host.as_str()));
    assert!(
        request
            .header("user-agent")
            .is_some_and(|ua| ua.starts_with("gatehouse-probe/")),
        "{request:#?}"
    );

    // A malformed header is refused before any request.
    let run = probe(&[&url(upstream.addr(), "/bad"), "-H", "no colon here"]);
    run.expect_exit(2);
    assert!(run.stderr.contains("expected `Name: value`"), "{run:#?}");
    assert!(upstream.requests_to("/bad").is_empty());
}

// --- lists and the summary ---

/// The lines of a list for [`lists_from_a_file_and_stdin_keep_order_and_sum_up`].
fn mixed_list(upstream: &Upstream, refused: &str) -> (String, [String; 3]) {
    let urls = [
        url(upstream.addr(), "/"),
        url(upstream.addr(), "/missing"),
        refused.to_owned(),
    ];
    let list = format!(
        "# a comment\n\n{}\n   \n{}\n# another\n{}\n",
        urls[0], urls[1], urls[2]
    );
    (list, urls)
}

#[test]
fn lists_from_a_file_and_stdin_keep_order_and_sum_up() {
    let upstream = serving("/missing", Reply::new(404, "no"));
    let refused = format!("http://127.0.0.1:{}/", closed_port());
    let (list, urls) = mixed_list(&upstream, &refused);
    let file = TempFile::with_contents("probe-list", ".txt", list.as_bytes());
    let path = file.path().to_str().unwrap();

    let run = probe(&["-i", path, "--json", "-t", "5s"]);
    run.expect_exit(2);
    let json = run.json();
    let results = json["results"].as_array().unwrap();
    let got: Vec<(&Value, &Value)> = results.iter().map(|r| (&r["url"], &r["outcome"])).collect();
    assert_eq!(
        got,
        [
            (
                &Value::from(urls[0].as_str()),
                &serde_json::json!({"result": "ok", "status": 200})
            ),
            (
                &Value::from(urls[1].as_str()),
                &serde_json::json!({"result": "error_status", "status": 404})
            ),
            (
                &Value::from(urls[2].as_str()),
                &serde_json::json!({"result": "failed", "kind": "connection_refused"})
            ),
        ]
    );
    let summary = &json["summary"];
    for (key, count) in [
        ("urls", 3),
        ("status_2xx", 1),
        ("status_3xx", 0),
        ("status_4xx", 1),
        ("status_5xx", 0),
        ("failed", 1),
    ] {
        assert_eq!(summary[key], count, "{key} in {summary:#}");
    }
    let failures = summary["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 2, "{summary:#}");
    assert_eq!(failures[0][0], urls[1].as_str());
    assert_eq!(failures[0][1], "404");
    assert_eq!(failures[1][0], urls[2].as_str());
    assert!(
        text(&failures[1][1], &json).starts_with("connection_refused: "),
        "{summary:#}"
    );
    let slowest = summary["slowest"].as_array().unwrap();
    assert_eq!(slowest.len(), 3, "{summary:#}");
    assert!(
        slowest
            .windows(2)
            .all(|w| w[0][1].as_f64() >= w[1][1].as_f64()),
        "slowest first: {summary:#}"
    );

    // The same list on stdin, as rows.
    let run = probe_with_stdin(&["-i", "-", "-t", "5s"], &list);
    run.expect_exit(2);
    let lines: Vec<&str> = run.stdout.lines().collect();
    let rows: Vec<&str> = lines
        .iter()
        .copied()
        .take_while(|l| !l.is_empty())
        .collect();
    assert_eq!(rows.len(), 3, "one row per URL: {run:#?}");
    for ((row, url), first) in rows
        .iter()
        .zip(&urls)
        .zip(["200", "404", "connection_refused"])
    {
        assert!(
            row.starts_with(&format!("{first} ")) && row.contains(&format!("  {url}")),
            "row {row:?} for {url}: {run:#?}"
        );
    }
    assert!(
        rows[2].contains("backend not running, or wrong port"),
        "{run:#?}"
    );
    let summary = &lines[rows.len()..];
    assert_eq!(summary.first(), Some(&""), "{run:#?}");
    assert_eq!(summary.get(1), Some(&"summary: 3 URL(s)"), "{run:#?}");
    for (class, count) in [
        ("2xx", 1),
        ("3xx", 0),
        ("4xx", 1),
        ("5xx", 0),
        ("failed", 1),
    ] {
        assert!(
            summary.contains(&format!("  {class:<8} {count:>6}").as_str()),
            "{class} {count}: {run:#?}"
        );
    }
    assert!(summary.contains(&"failures:"), "{run:#?}");
}

#[test]
fn urls_are_probed_concurrently_and_reported_in_input_order() {
    let upstream = Upstream::start(Behavior::Delay(
        Duration::from_millis(300),
        Reply::ok("slow"),
    ));
    // The first URL is the slowest, so it ends last.
    upstream.set_route(
        "/1",
        Behavior::Delay(Duration::from_millis(700), Reply::ok("slowest")),
    );
    let urls: Vec<String> = (1..=4)
        .map(|n| url(upstream.addr(), &format!("/{n}")))
        .collect();
    let mut args: Vec<&str> = urls.iter().map(String::as_str).collect();
    args.extend(["--json", "-j", "4", "-t", "5s"]);
    let run = probe(&args);
    run.expect_exit(0);
    let json = run.json();
    let order: Vec<&str> = json["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| text(&r["url"], &json))
        .collect();
    assert_eq!(order, urls, "results in input order");
    assert_eq!(upstream.peak_in_flight(), 4, "-j 4 sends all four at once");
    assert_eq!(json["summary"]["slowest"][0][0], urls[0].as_str());

    let one_at_a_time = Upstream::start(Behavior::Delay(
        Duration::from_millis(200),
        Reply::ok("slow"),
    ));
    let a = url(one_at_a_time.addr(), "/a");
    let b = url(one_at_a_time.addr(), "/b");
    let started = Instant::now();
    let run = probe(&[&a, &b, "-j", "1", "-t", "5s"]);
    let took = started.elapsed();
    run.expect_exit(0);
    // One after the other: two 200 ms answers take 400 ms at least. (The upstream's in-flight
    // count cannot say it: it ends each request only after its write returned, by which time
    // the client may have sent the next.)
    assert!(took >= Duration::from_millis(400), "-j 1 took {took:?}");
    assert_eq!(one_at_a_time.requests().len(), 2);
}

#[test]
fn several_urls_on_the_command_line_get_blocks_and_a_summary() {
    let upstream = Upstream::hello();
    let run = probe(&[
        &url(upstream.addr(), "/one"),
        &url(upstream.addr(), "/two"),
        "-t",
        "5s",
    ]);
    run.expect_exit(0);
    assert!(
        run.stdout
            .contains(&format!("{}  200 OK\n", url(upstream.addr(), "/one"))),
        "{run:#?}"
    );
    assert!(
        run.stdout
            .contains(&format!("{}  200 OK\n", url(upstream.addr(), "/two"))),
        "{run:#?}"
    );
    assert!(run.stdout.contains("\nsummary: 2 URL(s)\n"), "{run:#?}");
    assert!(!run.stdout.contains("failures:"), "{run:#?}");
}

// --- Cache-Status and bodies ---

#[test]
fn cache_status_is_decoded_and_get_reads_the_body() {
    let body = "cached body, 28 bytes long!!";
    let upstream = Upstream::serve(
        Reply::ok(body)
            .header("Cache-Status", "edge; hit; ttl=-120")
            .header("Cache-Status", "origin; fwd=miss; stored"),
    );
    let run = probe(&[
        &url(upstream.addr(), "/"),
        "--json",
        "-m",
        "GET",
        "-t",
        "5s",
    ]);
    run.expect_exit(0);
    let json = run.json();
    let hop = only_hop(&json);
    assert_eq!(hop["method"], "GET");
    assert_eq!(hop["body_bytes"], body.len());
    let edge = &hop["cache_status"][0];
    assert_eq!(edge["cache"], "edge");
    assert_eq!(edge["hit"], true);
    assert_eq!(edge["ttl"], -120);
    assert_eq!(edge["stored"], false);
    assert!(
        edge.get("params").is_none(),
        "no extension params: {edge:#}"
    );
    let words = text(&edge["words"], &json);
    assert!(words.contains("stale"), "{words}");
    assert_eq!(
        words,
        "cache `edge`: hit, served stale (120 s past its freshness)"
    );
    let origin = &hop["cache_status"][1];
    assert_eq!(origin["fwd"], "miss");
    assert_eq!(origin["words"], "cache `origin`: miss, stored");
    assert!(hop.get("proxy_status").is_none(), "{hop:#}");

    // HEAD (the default) reads no body.
    let run = probe(&[&url(upstream.addr(), "/"), "-t", "5s"]);
    run.expect_exit(0);
    assert!(
        run.stdout
            .contains("cache-status  cache `edge`: hit, served stale (120 s past its freshness)"),
        "{run:#?}"
    );
    assert!(!run.stdout.contains("body "), "{run:#?}");
    assert_eq!(upstream.requests()[1].method, "HEAD");
}

#[test]
fn an_unparsable_proxy_status_is_a_warning() {
    let upstream = Upstream::serve(Reply::new(502, "").header("Proxy-Status", "(inner list)"));
    let run = probe(&[&url(upstream.addr(), "/"), "--json", "-t", "5s"]);
    run.expect_exit(1);
    let json = run.json();
    let hop = only_hop(&json);
    assert!(hop.get("proxy_status").is_none(), "{hop:#}");
    let warning = text(&hop["warnings"][0], &json);
    assert!(
        warning.starts_with("Proxy-Status is not a valid structured field"),
        "{warning}"
    );
}

// --- exit status ---

#[test]
fn exit_status_follows_the_status_class() {
    let upstream = serving("/missing", Reply::new(404, "no"));
    let run = probe(&[&url(upstream.addr(), "/"), "--json", "-t", "5s"]);
    run.expect_exit(0);
    assert!(run.stderr.is_empty(), "{run:#?}");
    let json = run.json();
    let hop = only_hop(&json);
    assert_eq!(hop["address"], upstream.addr().to_string().as_str());
    // An IP literal needs no DNS; plain http no TLS.
    let timing = &hop["timing"];
    assert!(
        timing.get("dns_ms").is_none() && timing.get("tls_ms").is_none(),
        "{timing}"
    );
    assert!(hop.get("resolved").is_none(), "{hop:#}");
    let (connect, first_byte, total) = (
        timing["connect_ms"].as_f64().unwrap(),
        timing["first_byte_ms"].as_f64().unwrap(),
        timing["total_ms"].as_f64().unwrap(),
    );
    assert!(connect <= first_byte && first_byte <= total, "{timing}");

    let run = probe(&[&url(upstream.addr(), "/missing"), "--json", "-t", "5s"]);
    run.expect_exit(1);
    assert_eq!(
        only_result(&run.json())["outcome"],
        serde_json::json!({"result": "error_status", "status": 404})
    );

    // A URL without a scheme is http://.
    let bare = format!("{}/", upstream.addr());
    let run = probe(&[&bare, "--json", "-t", "5s"]);
    run.expect_exit(0);
    let json = run.json();
    assert_eq!(only_result(&json)["url"], bare.as_str());
    assert_eq!(only_hop(&json)["url"], url(upstream.addr(), "/").as_str());

    let run = probe(&["ftp://x", "--json"]);
    run.expect_exit(2);
    let json = run.json();
    let result = only_result(&json);
    assert_eq!(result["outcome"]["result"], "invalid");
    assert!(
        text(&result["outcome"]["reason"], &json).contains("unsupported scheme \"ftp\""),
        "{json:#}"
    );
    assert_eq!(result["hops"], serde_json::json!([]));
    assert_eq!(json["summary"]["failed"], 1);

    // The worst URL decides: a 404 and an invalid URL exit 2.
    let run = probe(&[&url(upstream.addr(), "/missing"), "ftp://x", "-t", "5s"]);
    run.expect_exit(2);
}

#[test]
fn a_host_name_is_resolved_and_timed() {
    let upstream = Upstream::hello();
    let target = format!("http://localhost:{}/", upstream.addr().port());
    let run = probe(&[&target, "--json", "-t", "5s"]);
    run.expect_exit(0);
    let json = run.json();
    let hop = only_hop(&json);
    assert_eq!(
        hop["address"],
        upstream.addr().to_string().as_str(),
        "{hop:#}"
    );
    let resolved = hop["resolved"]
        .as_array()
        .unwrap_or_else(|| panic!("{hop:#}"));
    assert!(resolved.contains(&Value::from("127.0.0.1")), "{hop:#}");
    assert!(hop["timing"]["dns_ms"].is_f64(), "{hop:#}");
}

#[test]
fn no_urls_is_a_usage_error() {
    let run = probe(&[]);
    run.expect_exit(2);
    assert!(run.stdout.is_empty(), "{run:#?}");
    assert!(
        run.stderr
            .contains("gatehouse probe: no URLs given (pass URLs, or -i FILE)"),
        "{run:#?}"
    );

    // A list of comments only is no URLs too.
    let run = probe_with_stdin(&["-i", "-"], "# nothing\n\n");
    run.expect_exit(2);
    assert!(run.stderr.contains("no URLs given"), "{run:#?}");

    let missing = TempFile::new("probe-missing", ".txt");
    let run = probe(&["-i", missing.path().to_str().unwrap()]);
    run.expect_exit(2);
    assert!(
        run.stderr.contains("gatehouse probe: cannot read "),
        "{run:#?}"
    );
}

// --- bugs ---

/// Input URLs must be http or https (`ftp://x` is invalid), but a redirect to `ftp://` is
/// followed and spoken to in plain HTTP on port 21 or the given port, and reported as a success.
#[test]
fn a_redirect_to_a_non_http_scheme_is_not_fetched_as_http() {
    let upstream = Upstream::hello();
    let ftp = format!("ftp://{}/file", upstream.addr());
    upstream.set_route("/old", Behavior::Serve(redirect(302, &ftp)));
    let run = probe(&[&url(upstream.addr(), "/old"), "--json", "-L", "-t", "5s"]);
    let json = run.json();
    let fetched: Vec<&Value> = hops(only_result(&json))
        .iter()
        .filter(|h| h["url"].as_str().is_some_and(|u| u.starts_with("ftp://")))
        .filter(|h| h.get("status").is_some())
        .collect();
    assert!(
        fetched.is_empty() && upstream.requests_to("/file").is_empty(),
        "the ftp:// redirect target was requested over HTTP: {json:#}"
    );
}

/// "`http://` is assumed when no scheme is given", but the check for a scheme is whether
/// `://` occurs anywhere in the text, so a scheme-less URL whose query carries a URL is
/// rejected as invalid ("relative URL without a base") instead of being probed.
#[test]
fn a_url_without_a_scheme_may_carry_a_url_in_its_query() {
    let upstream = Upstream::hello();
    let bare = format!("{}/login?next=http://example.com/", upstream.addr());
    let run = probe(&[&bare, "--json", "-t", "5s"]);
    let json = run.json();
    assert_eq!(
        only_result(&json)["outcome"],
        serde_json::json!({"result": "ok", "status": 200}),
        "{json:#}"
    );
    assert_eq!(
        only_hop(&json)["url"],
        format!("http://{bare}").as_str(),
        "{json:#}"
    );
    run.expect_exit(0);
    let request = upstream.wait_for_request_to("/login", Duration::from_secs(5));
    assert_eq!(request.target, "/login?next=http://example.com/");
}

// --- HTTPS: the certificate, its expiry, and TLS failures in words ---

/// Probes an HTTPS site (the test kit's TLS origin, offering `http/1.1`) whose certificate for
/// 127.0.0.1, valid as `validity` says, is issued by the test CA `Probe Test CA`: once with
/// `--json`, once for the text report, each with `--cacert` for that CA when `trust_ca` says so
/// and expected to exit `code`. Returns the JSON report and the text run.
fn probe_https(validity: Validity, trust_ca: bool, code: i32) -> (Value, Run) {
    let ca = TestCa::new("Probe Test CA");
    let site = TlsOrigin::http1(&ca.leaf_with(&["127.0.0.1"], validity));
    let url = format!("{}/", site.url());
    let ca_file = trust_ca.then(|| ca.write_pem());
    let mut args = vec![url.as_str()];
    if let Some(ca_file) = &ca_file {
        args.extend(["--cacert", ca_file.path().to_str().unwrap()]);
    }
    let json_run = probe(&[&args[..], &["--json", "-t", "5s"]].concat());
    json_run.expect_exit(code);
    let text_run = probe(&[&args[..], &["-t", "5s"]].concat());
    text_run.expect_exit(code);
    (json_run.json(), text_run)
}

/// probe trusts the system's roots: a private CA's certificate is an unknown issuer, and the
/// report names the issuer and how to trust it.
#[test]
fn https_with_a_private_ca_is_a_certificate_error_naming_the_issuer() {
    let (json, run) = probe_https(Validity::Current, false, 2);
    assert_eq!(
        only_result(&json)["outcome"],
        serde_json::json!({"result": "failed", "kind": "tls_certificate_error"})
    );
    let hop = only_hop(&json);
    assert_eq!(hop["failure"]["gateway_status"], 502, "{json:#}");
    let hint = text(&hop["failure"]["hint"], &json);
    assert!(
        hint.contains("issued by CN=Probe Test CA, a CA that is not trusted"),
        "{hint}"
    );
    assert!(hint.contains("--cacert"), "{hint}");
    // The certificate it presented, although it did not verify.
    assert_eq!(hop["certificate"]["subject"], "CN=127.0.0.1", "{json:#}");
    assert_eq!(hop["certificate"]["issuer"], "CN=Probe Test CA", "{json:#}");
    assert!(hop.get("tls").is_none(), "no handshake completed: {json:#}");

    assert!(
        run.stdout.contains("FAILED: tls_certificate_error"),
        "{run:#?}"
    );
    assert!(
        run.stdout
            .contains("      cert      CN=127.0.0.1, issued by CN=Probe Test CA"),
        "{run:#?}"
    );
}

/// With `--cacert` the same site verifies, and the report shows the negotiated TLS and the
/// certificate: subject, issuer, expiry date and days left.
#[test]
fn cacert_trusts_a_private_ca_and_the_report_shows_the_certificate() {
    let (json, run) = probe_https(Validity::Current, true, 0);
    let hop = only_hop(&json);
    assert_eq!(hop["status"], 200, "{json:#}");
    let tls = &hop["tls"];
    assert_eq!(tls["protocol"], "TLSv1.3", "{json:#}");
    assert_eq!(tls["alpn"], "http/1.1", "{json:#}");
    assert!(
        text(&tls["cipher"], &json).starts_with("TLS13_"),
        "{json:#}"
    );
    assert_eq!(tls["subject"], "CN=127.0.0.1", "{json:#}");
    assert_eq!(tls["issuer"], "CN=Probe Test CA", "{json:#}");
    assert!(tls["not_after"].as_i64().is_some(), "{json:#}");
    assert!(text(&tls["expires"], &json).ends_with('Z'), "{json:#}");
    let days = tls["days_left"].as_i64().unwrap_or_default();
    assert!((364..=366).contains(&days), "{json:#}");
    assert!(hop.get("warnings").is_none(), "{json:#}");

    assert!(
        run.stdout.contains("      tls       TLSv1.3 TLS13_"),
        "{run:#?}"
    );
    assert!(
        run.stdout
            .contains("      cert      CN=127.0.0.1, issued by CN=Probe Test CA"),
        "{run:#?}"
    );
    assert!(
        run.stdout.contains(&format!("(in {days} days)")),
        "{run:#?}"
    );
}

/// A certificate that ends in 5 days: the request succeeds (exit 0) with a warning.
#[test]
fn certificate_expiring_within_14_days_is_a_warning() {
    let (json, run) = probe_https(Validity::EndsIn(5), true, 0);
    let hop = only_hop(&json);
    assert_eq!(hop["tls"]["days_left"], 5, "{json:#}");
    let warning = text(&hop["warnings"][0], &json);
    assert!(warning.contains("expires in 5 days"), "{warning}");

    assert!(
        run.stdout
            .contains("      warning   the TLS certificate expires in 5 days"),
        "{run:#?}"
    );
}

/// An expired certificate: tls_certificate_error, and the hint says when it expired.
#[test]
fn expired_certificate_hint_names_the_expiry() {
    let (json, run) = probe_https(Validity::Expired, true, 2);
    let failure = &only_hop(&json)["failure"];
    assert_eq!(failure["kind"], "tls_certificate_error", "{json:#}");
    let hint = text(&failure["hint"], &json);
    assert!(hint.contains("EXPIRED 1 day ago"), "{hint}");
    assert!(hint.ends_with("the server must renew it"), "{hint}");
    assert_eq!(only_hop(&json)["certificate"]["days_left"], -1, "{json:#}");

    assert!(
        run.stdout.contains("      expires   EXPIRED 1 day ago"),
        "{run:#?}"
    );
}

/// `https://` to a port that speaks plain HTTP: tls_protocol_error, and the hint says so,
/// proven by a plain request the port answered.
#[test]
fn https_to_a_plain_http_port_says_it_speaks_plain_http() {
    let upstream = Upstream::hello();
    let target = format!("https://{}/", upstream.addr());
    let run = probe(&[&target, "--json", "-t", "5s"]);
    run.expect_exit(2);
    let json = run.json();
    let failure = &only_hop(&json)["failure"];
    assert_eq!(failure["kind"], "tls_protocol_error", "{json:#}");
    let hint = text(&failure["hint"], &json);
    assert!(
        hint.starts_with(
            "the port speaks plain HTTP, not TLS (it answered a plain HTTP request with 200)"
        ),
        "{hint}"
    );
    assert!(
        hint.contains(&format!("use http://{}/", upstream.addr())),
        "{hint}"
    );
}
