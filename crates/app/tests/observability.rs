//! Observability against the real binary and real tools: the alerting rules in `docs/alerts.yml`
//! checked and unit-tested by `promtool`, the admin listener's `/metrics` scraped after real
//! traffic and checked by `promtool check metrics`, and the admin `/status` page rendered by a
//! real headless Chromium (its DOM asserted, a screenshot left in `target/status-page.png`).
//!
//! promtool (Debian package `prometheus`) and chromium (Debian package `chromium`) are required:
//! without them these tests fail and say what to install (`.ci/run` installs both). Every run
//! of a tool is bounded: it is killed, with any process it started, after [`TOOL_LIMIT`].

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write as _};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gatehouse_testkit::metrics::{parse_samples, sum};
use gatehouse_testkit::{Config, Gatehouse, PATIENCE, RawResponse, Reply, Req, Upstream};
use serde_json::Value;

/// The longest one run of promtool or chromium may take before it is killed and the test fails.
const TOOL_LIMIT: Duration = Duration::from_secs(30);

// --- Running tools ---------------------------------------------------------------------------

/// The workspace root, where `docs/` and `target/` are.
fn workspace_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize()
        .unwrap_or_else(|e| panic!("workspace root {}: {e}", root.display()))
}

/// Fails the test unless `tool` can be run, naming the Debian package that provides it.
fn require(tool: &str, package: &str) {
    let found = Command::new(tool)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if let Err(e) = found {
        if e.kind() == ErrorKind::NotFound {
            panic!(
                "`{tool}` is not installed, and this test needs it: install Debian's `{package}` \
                 package (`apt-get install --no-install-recommends {package}`); CI (.ci/run) \
                 installs it"
            );
        }
        panic!("cannot run `{tool} --version`: {e}");
    }
}

/// What one bounded run of a tool left behind.
#[derive(Debug)]
struct Ran {
    what: String,
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn assert_success(&self) {
        assert!(
            self.status.success(),
            "{} failed ({}):\nstdout:\n{}\nstderr:\n{}",
            self.what,
            self.status,
            self.stdout,
            self.stderr
        );
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

/// Kills every process of the process group `pgid` (one this test started with
/// `process_group(0)`, so the group is the tool and whatever it forked).
fn kill_group(pgid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pgid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Runs `command` in a process group of its own, with `stdin` on its standard input, and waits
/// for it at most [`TOOL_LIMIT`]: then the group is killed by its id and the test fails. Once
/// the tool has exited, anything it left running in its group is killed too (chromium's helper
/// processes), so no output pipe stays open.
fn run_bounded(mut command: Command, stdin: Option<Vec<u8>>) -> Ran {
    let what = format!("{command:?}");
    command
        .process_group(0)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    let pgid = child.id();
    if let (Some(bytes), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // Closed when the thread ends, so the tool sees the end of its input.
        std::thread::spawn(move || {
            let _ = pipe.write_all(&bytes);
        });
    }
    let stdout = read_all(child.stdout.take().expect("piped stdout"));
    let stderr = read_all(child.stderr.take().expect("piped stderr"));
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() < TOOL_LIMIT => {
                std::thread::sleep(Duration::from_millis(20));
            }
            other => {
                kill_group(pgid);
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{what} did not finish within {TOOL_LIMIT:?} ({other:?}) and was killed; \
                     stderr:\n{}",
                    stderr.join().unwrap_or_default()
                );
            }
        }
    };
    kill_group(pgid);
    Ran {
        what,
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

/// `promtool ARGS...` from the workspace root.
fn promtool(args: &[&str], stdin: Option<Vec<u8>>) -> Ran {
    require("promtool", "prometheus");
    let mut command = Command::new("promtool");
    command.args(args).current_dir(workspace_root());
    run_bounded(command, stdin)
}

/// A temp directory of its own, removed (with its contents) on drop.
#[derive(Debug)]
struct TempDir(PathBuf);

impl TempDir {
    fn new(prefix: &str) -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path =
            std::env::temp_dir().join(format!("{prefix}-{}-{n}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Headless `chromium ARGS... URL` with a throwaway profile.
fn chromium(args: &[&str], url: &str) -> Ran {
    require("chromium", "chromium");
    let profile = TempDir::new("gatehouse-chromium-profile");
    let mut command = Command::new("chromium");
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.0.display()))
        .args(args)
        .arg(url);
    let ran = run_bounded(command, None);
    drop(profile);
    ran
}

/// Takes a screenshot of `url` into `path` (removed first) and returns the PNG's bytes.
fn screenshot(url: &str, path: &Path) -> Vec<u8> {
    let _ = std::fs::remove_file(path);
    let target = format!("--screenshot={}", path.display());
    let ran = chromium(&[&target, "--window-size=1280,1000"], url);
    ran.assert_success();
    let png = std::fs::read(path).unwrap_or_else(|e| {
        panic!(
            "chromium left no screenshot at {} ({e}); stderr:\n{}",
            path.display(),
            ran.stderr
        )
    });
    assert!(
        png.len() > 24 && png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{} is not a PNG",
        path.display()
    );
    png
}

/// Width and height from a PNG's IHDR chunk.
fn png_size(png: &[u8]) -> (u32, u32) {
    let be = |at: usize| u32::from_be_bytes([png[at], png[at + 1], png[at + 2], png[at + 3]]);
    (be(16), be(20))
}

// --- gatehouse -------------------------------------------------------------------------------

fn start(config: &Config) -> Gatehouse {
    Gatehouse::start(Path::new(env!("CARGO_BIN_EXE_gatehouse")), &config.toml())
}

/// A port where connections are refused for the whole test (see the testkit's).
fn closed_port() -> u16 {
    gatehouse_testkit::closed_port()
}

/// `GET path` on the admin listener.
fn admin_get(admin: SocketAddr, path: &str) -> RawResponse {
    let response = Req::get(path).host(&admin.to_string()).send(admin);
    assert!(response.complete, "GET {path}: incomplete: {response:#?}");
    response
}

/// Sends `GET path` through the proxy, expects `status`, and waits for its access record (by
/// then the request is counted).
fn request(gh: &Gatehouse, path: &str, status: u16) -> RawResponse {
    let response = Req::get(path).send(gh.addr());
    assert_eq!(
        response.status,
        status,
        "GET {path}: {response:#?}\nlogs: {:#?}",
        gh.logs()
    );
    gh.access_log(response.request_id());
    response
}

/// Polls `probe` every 50 ms until it returns `Some`, for up to [`PATIENCE`]; then fails with
/// `what` and the last thing `describe` said.
fn eventually<T>(what: &str, mut probe: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match probe() {
            Ok(found) => return found,
            Err(last) if Instant::now() > deadline => {
                panic!("{what}: not within {PATIENCE:?}; last seen:\n{last}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

// --- The text exposition format --------------------------------------------------------------

// --- HTML ------------------------------------------------------------------------------------

/// One element as found in the (serialised) DOM: its start tag's attributes and its inner HTML.
#[derive(Debug, Clone)]
struct Element {
    attrs: BTreeMap<String, String>,
    inner: String,
}

impl Element {
    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.get(name).map(String::as_str)
    }

    fn has_class(&self, class: &str) -> bool {
        self.attr("class")
            .is_some_and(|c| c.split_whitespace().any(|c| c == class))
    }

    /// The text inside, tags removed, entities decoded, whitespace collapsed.
    fn text(&self) -> String {
        text_of(&self.inner)
    }

    /// The first `<td>` inside with this class.
    fn cell(&self, class: &str) -> Option<Element> {
        elements(&self.inner, "td")
            .into_iter()
            .find(|td| td.has_class(class))
    }
}

fn decode_entities(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&nbsp;", " ")
        .replace("&amp;", "&")
}

fn text_of(html: &str) -> String {
    let mut text = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                text.push(' ');
            }
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    decode_entities(&text)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Every `<tag ...>...</tag>` of `html`, not nested in one another (enough for `tr` and `td`).
fn elements(html: &str, tag: &str) -> Vec<Element> {
    let lower = html.to_ascii_lowercase();
    let open = format!("<{tag}");
    let close = format!("</{tag}>");
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(at) = lower[from..].find(&open).map(|i| i + from) {
        let after_name = at + open.len();
        let next = lower[after_name..].chars().next();
        if !next.is_some_and(|c| c == '>' || c == '/' || c.is_whitespace()) {
            from = after_name;
            continue;
        }
        let Some(tag_end) = lower[after_name..].find('>').map(|i| i + after_name) else {
            break;
        };
        let attrs = parse_attrs(&html[after_name..tag_end]);
        let inner_end = lower[tag_end..]
            .find(&close)
            .map_or(html.len(), |i| i + tag_end);
        found.push(Element {
            attrs,
            inner: html[tag_end + 1..inner_end].to_owned(),
        });
        from = inner_end;
    }
    found
}

/// `name="value"` (or single-quoted, or bare) attributes of a start tag.
fn parse_attrs(tag: &str) -> BTreeMap<String, String> {
    let mut attrs = BTreeMap::new();
    let mut rest = tag.trim_start();
    while !rest.is_empty() {
        let name_end = rest
            .find(|c: char| c == '=' || c.is_whitespace() || c == '/')
            .unwrap_or(rest.len());
        let name = rest[..name_end].to_ascii_lowercase();
        rest = rest[name_end..].trim_start();
        let mut value = String::new();
        if let Some(after) = rest.strip_prefix('=') {
            let after = after.trim_start();
            let (v, tail) = match after.chars().next() {
                Some(q @ ('"' | '\'')) => {
                    let body = &after[1..];
                    let end = body.find(q).unwrap_or(body.len());
                    (&body[..end], body.get(end + 1..).unwrap_or(""))
                }
                _ => {
                    let end = after.find(char::is_whitespace).unwrap_or(after.len());
                    (&after[..end], &after[end..])
                }
            };
            value = decode_entities(v);
            rest = tail.trim_start();
        } else if name.is_empty() {
            rest = rest.get(1..).unwrap_or("").trim_start();
            continue;
        }
        if !name.is_empty() {
            attrs.insert(name, value);
        }
    }
    attrs
}

/// The `<tr>` with these attribute values; fails listing every row when there is none.
fn row(html: &str, attrs: &[(&str, &str)]) -> Element {
    let rows = elements(html, "tr");
    rows.iter()
        .find(|tr| attrs.iter().all(|(k, v)| tr.attr(k) == Some(*v)))
        .cloned()
        .unwrap_or_else(|| {
            let seen: Vec<_> = rows.iter().map(|tr| &tr.attrs).collect();
            panic!("no <tr> with {attrs:?}; rows: {seen:#?}\nhtml:\n{html}")
        })
}

/// Asserts the page loads nothing from elsewhere: no script file, no `http(s)` asset.
fn assert_self_contained(html: &str, what: &str) {
    let lower = html.to_ascii_lowercase();
    for needle in [
        "<script src=",
        "href=\"http",
        "href='http",
        "src=\"http",
        "src='http",
        "url(http",
        "url(\"http",
        "url('http",
    ] {
        assert!(
            !lower.contains(needle),
            "{what} has {needle:?}: it must not load anything from elsewhere\n{html}"
        );
    }
    for script in elements(html, "script") {
        assert!(
            script.attr("src").is_none(),
            "{what} loads a script file: {script:?}"
        );
    }
}

// --- JSON ------------------------------------------------------------------------------------

/// `doc[key]`, failing with the document when it is missing.
fn field<'a>(doc: &'a Value, key: &str) -> &'a Value {
    doc.get(key)
        .unwrap_or_else(|| panic!("no {key:?} in {doc:#}"))
}

fn number(doc: &Value, key: &str) -> f64 {
    field(doc, key)
        .as_f64()
        .unwrap_or_else(|| panic!("{key:?} is not a number in {doc:#}"))
}

fn string<'a>(doc: &'a Value, key: &str) -> &'a str {
    field(doc, key)
        .as_str()
        .unwrap_or_else(|| panic!("{key:?} is not a string in {doc:#}"))
}

fn array<'a>(doc: &'a Value, key: &str) -> &'a [Value] {
    field(doc, key)
        .as_array()
        .unwrap_or_else(|| panic!("{key:?} is not an array in {doc:#}"))
}

/// A time: a non-empty string or a number.
fn assert_time(doc: &Value, key: &str) {
    let value = field(doc, key);
    assert!(
        value.as_str().is_some_and(|s| !s.is_empty()) || value.is_number(),
        "{key:?} is not a time in {doc:#}"
    );
}

/// The element of `items` whose `key` is `value`.
fn find<'a>(items: &'a [Value], key: &str, value: &str) -> &'a Value {
    items
        .iter()
        .find(|item| item[key] == value)
        .unwrap_or_else(|| panic!("no entry with {key} = {value:?} in {items:#?}"))
}

/// `/status.json`, parsed; `Err` with what came back when it is not (yet) a JSON document.
fn status_json(admin: SocketAddr) -> Result<Value, String> {
    let response = admin_get(admin, "/status.json");
    if response.status != 200 {
        return Err(format!("{} {}", response.status, response.text()));
    }
    serde_json::from_slice(&response.body)
        .map_err(|e| format!("not JSON ({e}): {}", response.text()))
}

// --- The tests -------------------------------------------------------------------------------

/// Every `- alert: NAME` of a rules file.
fn alert_names(rules: &str) -> Vec<String> {
    rules
        .lines()
        .filter_map(|line| line.trim().strip_prefix("- alert:"))
        .map(|name| name.trim().to_owned())
        .collect()
}

#[test]
fn alerting_rules_are_valid_and_pass_their_unit_tests() {
    promtool(&["check", "rules", "docs/alerts.yml"], None).assert_success();
    promtool(&["test", "rules", "docs/alerts.test.yml"], None).assert_success();

    // Every alert is tested, firing and silent.
    let root = workspace_root();
    let read = |file: &str| {
        std::fs::read_to_string(root.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
    };
    let rules = read("docs/alerts.yml");
    let tests = read("docs/alerts.test.yml");
    let names = alert_names(&rules);
    assert!(names.len() >= 3, "alerts in docs/alerts.yml: {names:?}");
    for name in &names {
        let evals: Vec<&str> = tests
            .split("- eval_time:")
            .skip(1)
            .filter(|eval| eval.contains(&format!("alertname: {name}\n")))
            .collect();
        assert!(
            evals.iter().any(|e| e.contains("exp_labels:")),
            "docs/alerts.test.yml never shows {name} firing"
        );
        assert!(
            evals.iter().any(|e| e.contains("exp_alerts: []")),
            "docs/alerts.test.yml never shows {name} silent"
        );
    }
}

#[test]
fn metrics_after_real_traffic_pass_promtool_check_metrics() {
    require("promtool", "prometheus");
    let app = Upstream::serve(Reply::ok("ok"));
    let dead = closed_port();
    let config = Config::new()
        .upstream("app", [app.addr()])
        .upstream("broken", [format!("127.0.0.1:{dead}")])
        .route(None, "/", "app")
        .route(None, "/broken", "broken")
        .server("admin", "127.0.0.1:0");
    let gh = start(&config);
    let admin = gh.admin_addr();

    for _ in 0..3 {
        request(&gh, "/", 200);
    }
    for _ in 0..2 {
        let response = request(&gh, "/broken", 502);
        gh.expect_failure(&response, 502, "connection_refused");
    }
    // One reload taken, then one refused: the running config stays, the metrics say so.
    let before_reloads = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64();
    gh.reload()
        .unwrap_or_else(|line| panic!("reload refused: {line}"));
    gh.rewrite_config_raw("[server]\nbogus = 1\n");
    let refused = gh.reload();
    assert!(
        refused.is_err(),
        "a config with errors was taken: {refused:?}"
    );

    let app_server = format!("app/{}", app.addr());
    let dead_server = format!("broken/127.0.0.1:{dead}");
    let (scrape, samples) = eventually("/metrics counting the requests", || {
        let scrape = admin_get(admin, "/metrics");
        let samples = parse_samples(&scrape.text());
        let ok = sum(
            &samples,
            "gatehouse_requests_total",
            &[("route", "/"), ("status", "200"), ("failure", "")],
        );
        let refused = sum(
            &samples,
            "gatehouse_requests_total",
            &[
                ("route", "/broken"),
                ("status", "502"),
                ("failure", "connection_refused"),
            ],
        );
        if scrape.status == 200 && ok.0 == 3.0 && refused.0 == 2.0 {
            Ok((scrape, samples))
        } else {
            Err(format!(
                "{} {}\n{}",
                scrape.status,
                scrape.reason,
                scrape.text()
            ))
        }
    });
    let text = scrape.text();
    let content_type = scrape.header("content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "/metrics Content-Type: {content_type:?}"
    );

    // promtool parses and lints the whole scrape (HELP, TYPE, names, units, histograms).
    promtool(&["check", "metrics"], Some(scrape.body.clone())).assert_success();

    let has_type = |name: &str, kind: &str| {
        assert!(
            text.lines().any(|l| l == format!("# TYPE {name} {kind}")),
            "no `# TYPE {name} {kind}` in the scrape:\n{text}"
        );
    };
    for (name, kind) in [
        ("gatehouse_requests_total", "counter"),
        ("gatehouse_request_duration_seconds", "histogram"),
        ("gatehouse_upstream_failures_total", "counter"),
        ("gatehouse_upstream_connect_duration_seconds", "histogram"),
        (
            "gatehouse_upstream_first_byte_duration_seconds",
            "histogram",
        ),
        ("gatehouse_upstream_server_healthy", "gauge"),
        ("gatehouse_upstream_healthy_servers", "gauge"),
        ("gatehouse_upstream_servers", "gauge"),
        ("gatehouse_open_connections", "gauge"),
        ("gatehouse_connections_total", "counter"),
        ("gatehouse_reloads_total", "counter"),
        ("gatehouse_config_last_reload_successful", "gauge"),
        (
            "gatehouse_config_last_reload_success_timestamp_seconds",
            "gauge",
        ),
    ] {
        has_type(name, kind);
    }

    let value = |name: &str, labels: &[(&str, &str)]| {
        let (value, count) = sum(&samples, name, labels);
        assert!(count > 0, "no {name} {labels:?} in the scrape:\n{text}");
        value
    };
    let expect = |name: &str, labels: &[(&str, &str)], expected: f64| {
        assert_eq!(
            value(name, labels),
            expected,
            "{name} {labels:?} in the scrape:\n{text}"
        );
    };
    expect(
        "gatehouse_upstream_failures_total",
        &[
            ("pool", "broken"),
            ("server", &dead_server),
            ("kind", "connection_refused"),
        ],
        2.0,
    );
    expect(
        "gatehouse_request_duration_seconds_count",
        &[("route", "/")],
        3.0,
    );
    expect(
        "gatehouse_request_duration_seconds_bucket",
        &[("route", "/"), ("le", "+Inf")],
        3.0,
    );
    expect(
        "gatehouse_upstream_first_byte_duration_seconds_count",
        &[("pool", "app")],
        3.0,
    );
    assert!(
        value(
            "gatehouse_upstream_connect_duration_seconds_count",
            &[("pool", "app")]
        ) >= 1.0,
        "no connect to app timed:\n{text}"
    );
    expect("gatehouse_upstream_servers", &[("pool", "app")], 1.0);
    expect(
        "gatehouse_upstream_healthy_servers",
        &[("pool", "app")],
        1.0,
    );
    expect(
        "gatehouse_upstream_server_healthy",
        &[("pool", "app"), ("server", &app_server)],
        1.0,
    );
    expect("gatehouse_upstream_servers", &[("pool", "broken")], 1.0);
    assert!(
        value("gatehouse_connections_total", &[]) >= 5.0,
        "five client connections, yet:\n{text}"
    );
    assert!(value("gatehouse_open_connections", &[]) >= 0.0);
    expect("gatehouse_reloads_total", &[("outcome", "ok")], 1.0);
    expect("gatehouse_reloads_total", &[("outcome", "refused")], 1.0);
    expect("gatehouse_config_last_reload_successful", &[], 0.0);
    let taken_at = value(
        "gatehouse_config_last_reload_success_timestamp_seconds",
        &[],
    );
    assert!(
        taken_at >= before_reloads.floor() && taken_at < before_reloads + 600.0,
        "the last successful load should be the reload at {before_reloads}, got {taken_at}:\n{text}"
    );
}

#[test]
fn status_page_in_headless_chromium_shows_each_server_and_the_recent_failures() {
    require("chromium", "chromium");
    let live = Upstream::serve(Reply::ok("ok"));
    let dead = closed_port();
    let config = Config::new()
        .upstream(
            "app",
            [live.addr().to_string(), format!("127.0.0.1:{dead}")],
        )
        .health("app", "path", "/")
        .health("app", "interval", "200ms")
        .health("app", "timeout", "1s")
        .health("app", "unhealthy_threshold", 1)
        .health("app", "healthy_threshold", 1)
        .upstream("broken", [format!("127.0.0.1:{dead}")])
        .route(None, "/", "app")
        .route(None, "/broken", "broken")
        .server("admin", "127.0.0.1:0");
    let gh = start(&config);
    let admin = gh.admin_addr();
    let live_label = format!("app/{}", live.addr());
    let dead_label = format!("app/127.0.0.1:{dead}");
    let broken_label = format!("broken/127.0.0.1:{dead}");

    // The active checks find the dead server.
    eventually("/status.json showing the dead server down", || {
        let doc = status_json(admin)?;
        let down = doc["pools"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|pool| pool["name"] == "app")
            .flat_map(|pool| pool["servers"].as_array().into_iter().flatten())
            .any(|server| server["server"] == dead_label.as_str() && server["state"] == "down");
        if down {
            Ok(())
        } else {
            Err(format!("{doc:#}"))
        }
    });

    // One request served, one 502 through the broken pool.
    request(&gh, "/", 200);
    let failed = request(&gh, "/broken", 502);
    gh.expect_failure(&failed, 502, "connection_refused");
    let request_id = failed.request_id().to_owned();

    // /status.json: the whole contract.
    let doc = eventually("/status.json listing the 502", || {
        let doc = status_json(admin)?;
        let listed = doc["recent_failures"]
            .as_array()
            .is_some_and(|f| f.iter().any(|f| f["request_id"] == request_id.as_str()));
        if listed {
            Ok(doc)
        } else {
            Err(format!("{doc:#}"))
        }
    });
    assert_eq!(string(&doc, "name"), "gatehouse", "{doc:#}");
    assert!(!string(&doc, "version").is_empty(), "{doc:#}");
    assert!(
        string(&doc, "config").ends_with(".toml"),
        "config should be the file's path: {doc:#}"
    );
    assert!(number(&doc, "uptime_seconds") >= 0.0, "{doc:#}");

    let routes = array(&doc, "routes");
    let root_route = find(routes, "route", "/");
    let broken_route = find(routes, "route", "/broken");
    assert_eq!(string(root_route, "upstream"), "app", "{root_route:#}");
    assert_eq!(
        string(broken_route, "upstream"),
        "broken",
        "{broken_route:#}"
    );
    for route in [root_route, broken_route] {
        assert!(number(route, "requests_per_second") >= 0.0, "{route:#}");
        assert!(number(route, "errors_per_second") >= 0.0, "{route:#}");
    }
    assert_eq!(number(root_route, "requests_total"), 1.0, "{root_route:#}");
    assert_eq!(number(root_route, "errors_total"), 0.0, "{root_route:#}");
    assert_eq!(
        number(broken_route, "requests_total"),
        1.0,
        "{broken_route:#}"
    );
    assert_eq!(
        number(broken_route, "errors_total"),
        1.0,
        "{broken_route:#}"
    );

    let pools = array(&doc, "pools");
    let app_pool = find(pools, "name", "app");
    assert_eq!(number(app_pool, "healthy_servers"), 1.0, "{app_pool:#}");
    let servers = array(app_pool, "servers");
    assert_eq!(servers.len(), 2, "{app_pool:#}");
    let live_server = find(servers, "server", &live_label);
    assert_eq!(string(live_server, "state"), "healthy", "{live_server:#}");
    let dead_server = find(servers, "server", &dead_label);
    assert_eq!(string(dead_server, "state"), "down", "{dead_server:#}");
    assert_eq!(
        string(dead_server, "reason"),
        "connection_refused",
        "{dead_server:#}"
    );
    assert_time(dead_server, "since");
    for server in servers {
        assert!(field(server, "reason").is_string() || server["reason"].is_null());
        assert!(number(server, "in_flight") >= 0.0, "{server:#}");
    }
    let broken_pool = find(pools, "name", "broken");
    find(array(broken_pool, "servers"), "server", &broken_label);

    let failures = array(&doc, "recent_failures");
    let failure = find(failures, "request_id", &request_id);
    assert_eq!(string(failure, "kind"), "connection_refused", "{failure:#}");
    assert_eq!(number(failure, "status"), 502.0, "{failure:#}");
    assert_eq!(string(failure, "route"), "/broken", "{failure:#}");
    assert_eq!(string(failure, "pool"), "broken", "{failure:#}");
    assert_eq!(string(failure, "server"), broken_label, "{failure:#}");
    assert!(!string(failure, "hint").is_empty(), "{failure:#}");
    assert_time(failure, "time");

    // /status as served: HTML that refreshes itself and loads nothing from elsewhere.
    let page = admin_get(admin, "/status");
    assert_eq!(page.status, 200, "{page:#?}");
    let content_type = page.header("content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("text/html"),
        "/status Content-Type: {content_type:?}"
    );
    let html = page.text();
    assert!(
        html.contains(r#"<meta http-equiv="refresh" content="5">"#),
        "no 5-second refresh in /status:\n{html}"
    );
    assert_self_contained(&html, "/status");

    // The page as Chromium builds it.
    let url = format!("http://{admin}/status");
    let ran = chromium(&["--dump-dom"], &url);
    ran.assert_success();
    let dom = ran.stdout;
    assert!(
        dom.contains("</tr>"),
        "chromium dumped no table; stderr:\n{}\ndom:\n{dom}",
        ran.stderr
    );
    assert!(
        dom.contains(r#"<meta http-equiv="refresh" content="5">"#),
        "no refresh in the DOM:\n{dom}"
    );
    assert_self_contained(&dom, "the DOM of /status");

    for (label, state, reason) in [
        (live_label.as_str(), "healthy", None),
        (dead_label.as_str(), "down", Some("connection_refused")),
    ] {
        let tr = row(
            &dom,
            &[
                ("class", "server"),
                ("data-pool", "app"),
                ("data-server", label),
            ],
        );
        assert_eq!(tr.attr("data-state"), Some(state), "{tr:#?}");
        let cell = |class: &str| {
            tr.cell(class)
                .unwrap_or_else(|| panic!("no <td class=\"{class}\"> in {tr:#?}"))
                .text()
        };
        assert_eq!(cell("state"), state, "{tr:#?}");
        if let Some(reason) = reason {
            assert_eq!(cell("reason"), reason, "{tr:#?}");
            assert!(
                cell("since").chars().any(|c| c.is_ascii_digit()),
                "no time in the since cell: {tr:#?}"
            );
        }
    }
    let failure_row = row(
        &dom,
        &[("class", "failure"), ("data-kind", "connection_refused")],
    );
    assert!(
        failure_row.text().contains(&request_id),
        "the failure row lacks the request id {request_id}: {failure_row:#?}"
    );

    // A screenshot for people, well above a blank page's size.
    let shots = TempDir::new("gatehouse-screenshots");
    let blank = screenshot(
        "data:text/html,<title>blank</title>",
        &shots.0.join("blank.png"),
    );
    let target = workspace_root().join("target");
    std::fs::create_dir_all(&target)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", target.display()));
    let path = target.join("status-page.png");
    let png = screenshot(&url, &path);
    assert_eq!(png_size(&png), (1280, 1000), "{}", path.display());
    assert!(
        png.len() > 2 * blank.len(),
        "{} is {} bytes, hardly more than a blank page's {}: is the page empty?",
        path.display(),
        png.len(),
        blank.len()
    );
}
