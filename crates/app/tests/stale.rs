//! Answering without the origin, through the real binary: stale copies served when the origin
//! fails (stale-if-error, RFC 5861) inside their window and not after it, in both cache modes
//! and from the on-disk store after a restart; the robots.txt guard (also across a restart);
//! and maintenance mode, from the config and from the admin switch.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use gatehouse_testkit::metrics::{parse_samples, sum};
use gatehouse_testkit::{Behavior, Config, Gatehouse, RawResponse, Reply, Req, TempFile, Upstream};
use serde_json::{Value, json};

const ROBOTS: &str = "User-agent: *\nDisallow: /private/\n";

fn start(config: &Config) -> Gatehouse {
    Gatehouse::start(Path::new(env!("CARGO_BIN_EXE_gatehouse")), &config.toml())
}

/// One route, `/` to `origin`, with `[route.cache] mode` and passive health off (so a dead
/// origin stays `connection_refused`, never "no healthy server").
fn caching(origin: SocketAddr, mode: &str) -> Config {
    Config::proxy_to([origin])
        .route_section("cache", "mode", mode)
        .passive("app", "consecutive_failures", 0)
}

fn send(gh: &Gatehouse, req: &Req) -> RawResponse {
    let response = req.send(gh.addr());
    assert!(response.complete, "{req:?}: {response:#?}");
    response
}

fn get(gh: &Gatehouse, target: &str) -> RawResponse {
    send(gh, &Req::get(target))
}

/// The error token of the response's last Proxy-Status member.
fn proxy_error(response: &RawResponse) -> String {
    let member = response.proxy_status().last().clone();
    assert_eq!(member.name, "gatehouse", "{member:?}");
    member
        .error()
        .unwrap_or_else(|| panic!("no error in {member:?}"))
        .to_owned()
}

/// Asserts a stale copy with `body` stood in for a failed origin: 200, visibly stale, the
/// Cache-Status `expected`, and the access record.
fn assert_stale(gh: &Gatehouse, response: &RawResponse, body: &str, expected: &str) -> Value {
    assert_eq!(
        (response.status, response.text().as_str()),
        (200, body),
        "expected the stale copy; got {response:#?}\nlogs: {:#?}",
        gh.logs()
    );
    assert_eq!(response.cache_status(), expected, "{response:#?}");
    let record = gh.access_log(response.request_id());
    assert_eq!(record["cache"], "stale", "{record}");
    assert_eq!(record["status"], 200, "{record}");
    record
}

fn sleep_until(when: Instant) {
    std::thread::sleep(when.saturating_duration_since(Instant::now()));
}

fn scrape(gh: &Gatehouse) -> Vec<gatehouse_testkit::metrics::Sample> {
    let response = Req::get("/metrics").send(gh.admin_addr());
    assert_eq!(response.status, 200, "{response:#?}");
    parse_samples(&response.text())
}

fn metric(gh: &Gatehouse, name: &str, labels: &[(&str, &str)]) -> f64 {
    sum(&scrape(gh), name, labels).0
}

fn admin(gh: &Gatehouse, method: &str, target: &str) -> RawResponse {
    let response = Req::new(method, target).send(gh.admin_addr());
    assert!(response.complete, "{method} {target}: {response:#?}");
    response
}

// --- stale-if-error ---

#[test]
fn a_stale_copy_stands_in_for_a_refused_connection_inside_its_window_only() {
    let origin = Upstream::serve(Reply::ok("v1").header("Cache-Control", "max-age=1"));
    let gh = start(&caching(origin.addr(), "full").route_section("cache", "stale_if_error", "1s"));
    let first = get(&gh, "/page");
    let stored_at = Instant::now();
    assert!(first.cache_status().ends_with("stored"), "{first:#?}");
    origin.kill();

    // Stale by ~0.3 s, within the route's 1 s window.
    sleep_until(stored_at + Duration::from_millis(1300));
    let stale = get(&gh, "/page");
    let record = assert_stale(
        &gh,
        &stale,
        "v1",
        "gatehouse; fwd=stale; ttl=-1; detail=\"stale-if-error\"",
    );
    assert!(stale.age() >= 1, "{stale:#?}");
    assert_eq!(proxy_error(&stale), "connection_refused");
    assert_eq!(record["failure"], "connection_refused", "{record}");
    let head = send(&gh, &Req::new("HEAD", "/page"));
    assert_eq!(head.status, 200, "{head:#?}");
    assert!(head.body.is_empty());
    assert!(
        head.cache_status().contains("detail=\"stale-if-error\""),
        "{head:#?}"
    );
    // A request with Authorization never gets a stored copy, not even during an outage.
    let authorized = send(
        &gh,
        &Req::get("/page").header("Authorization", "Bearer t0k3n"),
    );
    gh.expect_failure(&authorized, 502, "connection_refused");

    // Stale by ~1.6 s: past the window, the failure is answered as usual.
    sleep_until(stored_at + Duration::from_millis(2600));
    let failed = get(&gh, "/page");
    gh.expect_failure(&failed, 502, "connection_refused");
}

#[test]
fn a_stale_copy_stands_in_for_an_origin_5xx_but_not_a_404() {
    let origin = Upstream::hello();
    for status in ["500", "502", "503", "504", "404"] {
        origin.set_route(
            &format!("/s{status}"),
            Behavior::Serve(
                Reply::ok(format!("copy {status}")).header("Cache-Control", "max-age=1"),
            ),
        );
    }
    let gh = start(&caching(origin.addr(), "full"));
    for status in ["500", "502", "503", "504", "404"] {
        assert!(
            get(&gh, &format!("/s{status}"))
                .cache_status()
                .ends_with("stored")
        );
    }
    let stored_at = Instant::now();
    for status in [500, 502, 503, 504, 404] {
        origin.set_route(
            &format!("/s{status}"),
            Behavior::Serve(Reply::new(status, "origin error")),
        );
    }
    sleep_until(stored_at + Duration::from_millis(1300));

    for status in [500, 502, 503, 504] {
        let stale = get(&gh, &format!("/s{status}"));
        let record = assert_stale(
            &gh,
            &stale,
            &format!("copy {status}"),
            &format!(
                "gatehouse; fwd=stale; fwd-status={status}; ttl=-1; detail=\"stale-if-error\""
            ),
        );
        assert_eq!(record["upstream_status"], status, "{record}");
        assert!(stale.age() >= 1, "{stale:#?}");
        let member = stale.proxy_status().last().clone();
        assert_eq!(
            (member.name.as_str(), member.integer("received-status")),
            ("gatehouse", Some(i64::from(status))),
            "{member:?}"
        );
    }
    let not_found = get(&gh, "/s404");
    assert_eq!(
        (not_found.status, not_found.text().as_str()),
        (404, "origin error"),
        "a 404 is an answer, not an origin failure"
    );
}

#[test]
fn the_responses_own_stale_if_error_overrides_the_route_window() {
    let origin = Upstream::hello();
    origin.set_route(
        "/own",
        Behavior::Serve(
            Reply::ok("own window").header("Cache-Control", "max-age=1, stale-if-error=1"),
        ),
    );
    origin.set_route(
        "/must",
        Behavior::Serve(
            Reply::ok("must revalidate").header("Cache-Control", "max-age=1, must-revalidate"),
        ),
    );
    // The route's window is long: only the response's own directive can close it.
    let gh = start(&caching(origin.addr(), "full").route_section("cache", "stale_if_error", "1d"));
    assert!(get(&gh, "/own").cache_status().ends_with("stored"));
    assert!(get(&gh, "/must").cache_status().ends_with("stored"));
    let stored_at = Instant::now();
    origin.set_behavior(Behavior::Serve(Reply::new(503, "down")));
    origin.clear_route("/own");
    origin.clear_route("/must");

    sleep_until(stored_at + Duration::from_millis(1300));
    let stale = get(&gh, "/own");
    assert_stale(
        &gh,
        &stale,
        "own window",
        "gatehouse; fwd=stale; fwd-status=503; ttl=-1; detail=\"stale-if-error\"",
    );
    // must-revalidate: never served stale without its own stale-if-error (RFC 9111 §4.2.4).
    let must = get(&gh, "/must");
    assert_eq!(
        (must.status, must.text().as_str()),
        (503, "down"),
        "{must:#?}"
    );

    sleep_until(stored_at + Duration::from_millis(2600));
    let forwarded = get(&gh, "/own");
    assert_eq!(
        (forwarded.status, forwarded.text().as_str()),
        (503, "down"),
        "past the response's stale-if-error=1 the origin's 503 is forwarded: {forwarded:#?}"
    );
    assert_eq!(
        forwarded.proxy_status().last().integer("received-status"),
        Some(503)
    );
}

#[test]
fn a_stale_copy_stands_in_for_timeouts_and_protocol_errors() {
    let origin = Upstream::hello();
    let paths = ["/slow", "/garbage", "/framing"];
    for path in paths {
        origin.set_route(
            path,
            Behavior::Serve(
                Reply::ok(format!("copy of {path}")).header("Cache-Control", "max-age=0"),
            ),
        );
    }
    let gh =
        start(&caching(origin.addr(), "full").upstream_setting("app", "response_timeout", "300ms"));
    for path in paths {
        assert!(get(&gh, path).cache_status().ends_with("stored"));
    }
    origin.set_route("/slow", Behavior::Hang);
    origin.set_route(
        "/garbage",
        Behavior::RawThenClose(b"\x00\x01\x02\xff\xfe garbage\r\n\r\n".to_vec()),
    );
    origin.set_route(
        "/framing",
        Behavior::RawThenClose(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!".to_vec(),
        ),
    );
    for (path, kind) in [
        ("/slow", "http_response_timeout"),
        ("/garbage", "http_protocol_error"),
        ("/framing", "http_protocol_error"),
    ] {
        let stale = get(&gh, path);
        let record = assert_stale(
            &gh,
            &stale,
            &format!("copy of {path}"),
            "gatehouse; fwd=stale; ttl=-1; detail=\"stale-if-error\"",
        );
        assert_eq!(proxy_error(&stale), kind, "{path}");
        assert_eq!(record["failure"], kind, "{path}: {record}");
    }
}

#[test]
fn stale_copies_are_counted_and_logged() {
    let origin = Upstream::serve(Reply::ok("counted").header("Cache-Control", "max-age=0"));
    // The guard keeps robots.txt whatever its cache headers say; the route cache does not.
    origin.set_route(
        "/robots.txt",
        Behavior::Serve(Reply::ok(ROBOTS).header("Cache-Control", "no-store")),
    );
    let gh = start(&caching(origin.addr(), "full").server("admin", "127.0.0.1:0"));
    assert!(get(&gh, "/c").cache_status().ends_with("stored"));
    assert_eq!(get(&gh, "/robots.txt").text(), ROBOTS);
    origin.kill();

    // Default route window (1 day) for a response without a stale-if-error of its own.
    let stale = get(&gh, "/c");
    assert_stale(
        &gh,
        &stale,
        "counted",
        "gatehouse; fwd=stale; ttl=-1; detail=\"stale-if-error\"",
    );
    let id = stale.request_id().to_owned();
    let line = gh.wait_for_log(
        |l| l["target"] == "gatehouse::cache" && l["request_id"] == id.as_str(),
        Duration::from_secs(5),
    );
    assert_eq!(line["level"], "WARN", "{line}");
    assert!(
        line["message"]
            .as_str()
            .is_some_and(|m| m.contains("served a stale copy")),
        "{line}"
    );
    assert_eq!(
        (&line["route"], &line["source"], &line["reason"]),
        (&json!("/"), &json!("cache"), &json!("connection_refused")),
        "{line}"
    );
    // The outage is not hidden from the failure log either.
    let failure = gh.failure_log(&id);
    assert_eq!(failure["kind"], "connection_refused", "{failure}");

    let robots = get(&gh, "/robots.txt");
    assert_eq!(robots.text(), ROBOTS);
    assert_eq!(
        robots.cache_status(),
        "gatehouse; fwd=stale; detail=\"robots-guard\""
    );
    let robots_id = robots.request_id().to_owned();
    let line = gh.wait_for_log(
        |l| l["target"] == "gatehouse::cache" && l["request_id"] == robots_id.as_str(),
        Duration::from_secs(5),
    );
    assert_eq!(line["source"], "robots_guard", "{line}");

    let samples = scrape(&gh);
    let stale_served = |source: &str| {
        sum(
            &samples,
            "gatehouse_stale_served_total",
            &[
                ("route", "/"),
                ("source", source),
                ("reason", "connection_refused"),
            ],
        )
        .0
    };
    assert_eq!(stale_served("cache"), 1.0);
    assert_eq!(stale_served("robots_guard"), 1.0);
    let result = |result: &str| {
        sum(
            &samples,
            "gatehouse_cache_requests_total",
            &[("route", "/"), ("result", result)],
        )
        .0
    };
    // /c miss, robots.txt uncacheable (no-store), then two stale answers.
    assert_eq!(
        (
            result("miss"),
            result("uncacheable"),
            result("stale"),
            result("hit")
        ),
        (1.0, 1.0, 2.0, 0.0)
    );
}

#[test]
fn stale_if_error_mode_always_asks_the_origin_and_keeps_copies_for_failures() {
    let origin = Upstream::serve(
        Reply::ok("kept for bad days")
            .header("Cache-Control", "max-age=60")
            .header("ETag", "\"e1\""),
    );
    let gh = start(&caching(origin.addr(), "stale_if_error"));
    for _ in 0..3 {
        let response = get(&gh, "/p");
        assert_eq!(response.text(), "kept for bad days");
        let status = response.cache_status();
        assert!(
            !status.contains("hit") && status.ends_with("stored"),
            "{status}"
        );
        assert_eq!(gh.access_log(response.request_id())["cache"], "miss");
    }
    let requests = origin.requests_to("/p");
    assert_eq!(requests.len(), 3, "stale_if_error mode served a hit");
    assert!(
        requests.iter().all(|r| r.header("if-none-match").is_none()),
        "stale_if_error mode revalidated: {requests:#?}"
    );

    origin.kill();
    let stale = get(&gh, "/p");
    let record = assert_stale(
        &gh,
        &stale,
        "kept for bad days",
        &format!(
            "gatehouse; fwd=stale; ttl={}; detail=\"stale-if-error\"",
            stale.cache_status_param("ttl")
        ),
    );
    assert!(
        stale.cache_status_param("ttl") > 50,
        "a fresh copy stands in: {stale:#?}"
    );
    assert_eq!(proxy_error(&stale), "connection_refused");
    assert_eq!(record["failure"], "connection_refused");
}

#[test]
fn the_disk_cache_survives_a_restart() {
    let origin = Upstream::hello();
    origin.set_route(
        "/stale",
        Behavior::Serve(Reply::ok("kept on disk").header("Cache-Control", "max-age=1")),
    );
    origin.set_route(
        "/fresh",
        Behavior::Serve(Reply::ok("still fresh").header("Cache-Control", "max-age=600")),
    );
    let dir = TempFile::dir("gatehouse-cache-disk");
    let file = dir.path().join("cache.redb");
    let config = caching(origin.addr(), "full")
        .server("admin", "127.0.0.1:0")
        .section("cache", "disk_path", file.to_string_lossy().into_owned());

    let gh = start(&config);
    for path in ["/stale", "/fresh"] {
        assert!(get(&gh, path).cache_status().ends_with("stored"));
    }
    let stored_at = Instant::now();
    // Disk writes are asynchronous: wait until both keys are on disk.
    let deadline = Instant::now() + Duration::from_secs(5);
    while metric(&gh, "gatehouse_cache_entries", &[("tier", "disk")]) < 2.0 {
        assert!(
            Instant::now() < deadline,
            "the entries never reached the disk"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(gh.stop().success());
    origin.kill();

    let gh = start(&config);
    sleep_until(stored_at + Duration::from_millis(1300));
    let fresh = get(&gh, "/fresh");
    assert_eq!((fresh.status, fresh.text().as_str()), (200, "still fresh"));
    assert!(
        fresh.cache_status().starts_with("gatehouse; hit; ttl="),
        "{fresh:#?}"
    );
    let stale = get(&gh, "/stale");
    assert_stale(
        &gh,
        &stale,
        "kept on disk",
        &format!(
            "gatehouse; fwd=stale; ttl={}; detail=\"stale-if-error\"",
            stale.cache_status_param("ttl")
        ),
    );
    assert!(stale.cache_status_param("ttl") < 0, "{stale:#?}");
    assert_eq!(proxy_error(&stale), "connection_refused");
    gh.expect_failure(&get(&gh, "/never-stored"), 502, "connection_refused");
}

// --- robots.txt guard ---

#[test]
fn the_robots_txt_copy_survives_a_restart_and_is_served_while_the_origin_is_down() {
    let origin = Upstream::hello();
    origin.set_route(
        "/robots.txt",
        Behavior::Serve(Reply::ok(ROBOTS).header("Content-Type", "text/plain")),
    );
    let state = TempFile::dir("gatehouse-robots-state");
    // No [route.cache]: the guard covers every route.
    let config = Config::proxy_to([origin.addr()])
        .server("state_dir", state.path().to_string_lossy().into_owned())
        .passive("app", "consecutive_failures", 0);

    let gh = start(&config);
    let learned = get(&gh, "/robots.txt");
    assert_eq!((learned.status, learned.text().as_str()), (200, ROBOTS));
    // The disk write is asynchronous.
    std::thread::sleep(Duration::from_millis(500));
    assert!(gh.stop().success());
    assert!(state.path().join("robots.redb").is_file());
    origin.kill();

    let gh = start(&config);
    let ready = gh.wait_for_log(
        |l| l["message"] == "robots.txt guard ready",
        Duration::from_secs(5),
    );
    assert_eq!(ready["hosts"], 1, "{ready}");
    let robots = get(&gh, "/robots.txt");
    assert_eq!(
        (robots.status, robots.text().as_str()),
        (200, ROBOTS),
        "{robots:#?}\nlogs: {:#?}",
        gh.logs()
    );
    assert_eq!(robots.header("content-type"), Some("text/plain"));
    assert_eq!(
        robots.cache_status(),
        "gatehouse; fwd=stale; detail=\"robots-guard\""
    );
    assert!(robots.header("age").is_some(), "{robots:#?}");
    assert_eq!(proxy_error(&robots), "connection_refused");
    let record = gh.access_log(robots.request_id());
    assert_eq!(
        (&record["status"], &record["cache"], &record["failure"]),
        (&json!(200), &json!("stale"), &json!("connection_refused")),
        "{record}"
    );
    let head = send(&gh, &Req::new("HEAD", "/robots.txt"));
    assert_eq!(head.status, 200, "{head:#?}");
    assert!(head.body.is_empty());

    // Only robots.txt, and only for the host it came from.
    gh.expect_failure(&get(&gh, "/index.html"), 502, "connection_refused");
    let other_host = send(&gh, &Req::get("/robots.txt").host("other.test"));
    gh.expect_failure(&other_host, 502, "connection_refused");
}

#[test]
fn the_robots_txt_copy_answers_an_origin_503_for_its_host_only() {
    let origin = Upstream::hello();
    origin.set_route("/robots.txt", Behavior::Serve(Reply::ok(ROBOTS)));
    let gh = start(&Config::proxy_to([origin.addr()]));
    assert_eq!(get(&gh, "/robots.txt").text(), ROBOTS);
    origin.set_route("/robots.txt", Behavior::Serve(Reply::new(503, "down")));

    let robots = get(&gh, "/robots.txt");
    assert_eq!((robots.status, robots.text().as_str()), (200, ROBOTS));
    assert_eq!(
        robots.cache_status(),
        "gatehouse; fwd=stale; fwd-status=503; detail=\"robots-guard\""
    );
    assert_eq!(
        robots.proxy_status().last().integer("received-status"),
        Some(503)
    );
    let other_host = send(&gh, &Req::get("/robots.txt").host("other.test"));
    assert_eq!(
        (other_host.status, other_host.text().as_str()),
        (503, "down")
    );
}

#[test]
fn the_robots_txt_guard_is_bounded_by_max_age_and_can_be_turned_off() {
    let origin = Upstream::hello();
    origin.set_route("/robots.txt", Behavior::Serve(Reply::ok(ROBOTS)));
    let off = start(&Config::proxy_to([origin.addr()]).section("robots", "guard", false));
    let short = start(&Config::proxy_to([origin.addr()]).section("robots", "max_age", "1s"));
    assert_eq!(get(&off, "/robots.txt").text(), ROBOTS);
    assert_eq!(get(&short, "/robots.txt").text(), ROBOTS);
    let learned_at = Instant::now();
    origin.set_route("/robots.txt", Behavior::Serve(Reply::new(503, "down")));

    let response = get(&off, "/robots.txt");
    assert_eq!(
        (response.status, response.text().as_str()),
        (503, "down"),
        "guard = false"
    );
    assert_eq!(get(&short, "/robots.txt").status, 200, "within max_age");
    sleep_until(learned_at + Duration::from_millis(1300));
    let response = get(&short, "/robots.txt");
    assert_eq!(
        (response.status, response.text().as_str()),
        (503, "down"),
        "past robots.max_age"
    );
}

// --- maintenance mode ---

#[test]
fn maintenance_mode_answers_503_with_retry_after_and_its_page_but_serves_robots_txt() {
    const PAGE: &str = "<h1>Back soon</h1>\n";
    let origin = Upstream::hello();
    origin.set_route("/robots.txt", Behavior::Serve(Reply::ok(ROBOTS)));
    let page = TempFile::with_contents("gatehouse-maintenance", ".html", PAGE.as_bytes());
    let config = Config::proxy_to([origin.addr()]).server("admin", "127.0.0.1:0");
    let gh = start(&config);
    // Learn robots.txt while the site is up.
    assert_eq!(get(&gh, "/robots.txt").text(), ROBOTS);

    gh.rewrite_config(
        &config
            .clone()
            .section("maintenance", "enabled", true)
            .section("maintenance", "retry_after", "2m")
            .section(
                "maintenance",
                "page",
                page.path().to_string_lossy().into_owned(),
            )
            .toml(),
    );
    gh.reload()
        .unwrap_or_else(|line| panic!("reload refused: {line}"));
    let before = origin.requests().len();

    let response = get(&gh, "/anything");
    assert_eq!(response.status, 503, "{response:#?}");
    assert_eq!(response.headers.get_all("retry-after"), ["120"]);
    assert_eq!(proxy_error(&response), "proxy_internal_response");
    response.assert_body("text/html; charset=utf-8", &[PAGE]);
    assert_eq!(response.text(), PAGE);
    let record = gh.access_log(response.request_id());
    assert_eq!(
        (&record["status"], &record["cache"], &record["failure"]),
        (
            &json!(503),
            &json!("maintenance"),
            &json!("proxy_internal_response")
        ),
        "{record}"
    );
    let head = send(&gh, &Req::new("HEAD", "/"));
    assert_eq!(
        (head.status, head.header("retry-after")),
        (503, Some("120"))
    );
    assert!(head.body.is_empty());

    let robots = get(&gh, "/robots.txt");
    assert_eq!(
        (robots.status, robots.text().as_str()),
        (200, ROBOTS),
        "{robots:#?}"
    );
    assert_eq!(
        origin.requests().len(),
        before,
        "maintenance reached the origin"
    );

    let report = admin(&gh, "GET", "/maintenance").json();
    assert_eq!(
        report["global"],
        json!({"config": true, "override": null, "effective": true}),
        "{report:#}"
    );
    // The switch beats the config.
    assert_eq!(admin(&gh, "POST", "/maintenance/off").status, 200);
    assert_eq!(get(&gh, "/anything").text(), "hello");
}

#[test]
fn a_routes_maintenance_table_inherits_the_global_keys() {
    const PAGE: &str = "down for maintenance\n";
    let origin = Upstream::hello();
    let page = TempFile::with_contents("gatehouse-maintenance", ".txt", PAGE.as_bytes());
    let config = Config::new()
        .upstream("app", [origin.addr()])
        .section("maintenance", "retry_after", "7m")
        .section(
            "maintenance",
            "page",
            page.path().to_string_lossy().into_owned(),
        )
        .route(None, "/api", "app")
        .route_section("maintenance", "enabled", true)
        .route(None, "/docs", "app")
        .route_section("maintenance", "enabled", true)
        .route_section("maintenance", "retry_after", "30s")
        .route(None, "/", "app");
    let gh = start(&config);

    let api = get(&gh, "/api/users");
    assert_eq!(
        (api.status, api.header("retry-after")),
        (503, Some("420")),
        "{api:#?}"
    );
    api.assert_body("text/plain; charset=utf-8", &[PAGE]);
    let docs = get(&gh, "/docs/");
    assert_eq!((docs.status, docs.header("retry-after")), (503, Some("30")));
    assert_eq!(docs.text(), PAGE);
    let site = get(&gh, "/");
    assert_eq!((site.status, site.text().as_str()), (200, "hello"));
    let paths: Vec<String> = origin.requests().iter().map(|r| r.target.clone()).collect();
    assert_eq!(paths, ["/"]);
}

#[test]
fn the_admin_switch_turns_maintenance_on_and_off_per_route_and_survives_a_reload() {
    let origin = Upstream::hello();
    let config = Config::new()
        .server("admin", "127.0.0.1:0")
        .upstream("app", [origin.addr()])
        .route(Some("example.com"), "/api", "app")
        .route(None, "/api", "app")
        .route(None, "/", "app");
    let gh = start(&config);
    let status_of = |target: &str| get(&gh, target).status;
    let scope = |config: bool, switch: Value, effective: bool| json!({"config": config, "override": switch, "effective": effective});

    let report = admin(&gh, "GET", "/maintenance").json();
    assert_eq!(
        report,
        json!({
            "global": scope(false, Value::Null, false),
            "routes": [
                {"route": "example.com/api", "maintenance": scope(false, Value::Null, false)},
                {"route": "/api", "maintenance": scope(false, Value::Null, false)},
                {"route": "/", "maintenance": scope(false, Value::Null, false)},
            ],
        })
    );

    // One route.
    let on = admin(&gh, "POST", "/maintenance/on?route=/api");
    assert_eq!(on.status, 200, "{on:#?}");
    assert_eq!(
        on.json()["routes"][1],
        json!({"route": "/api", "maintenance": scope(false, json!(true), true)})
    );
    let api = get(&gh, "/api/x");
    assert_eq!((api.status, api.header("retry-after")), (503, Some("300")));
    assert_eq!(status_of("/"), 200);
    let on_host = |host: &str| send(&gh, &Req::get("/api/x").host(host)).status;
    assert_eq!(on_host("example.com"), 200, "another route's switch");
    // A route with a host is named host + path.
    let on = admin(&gh, "POST", "/maintenance/on?route=example.com/api");
    assert_eq!(on.status, 200, "{on:#?}");
    assert_eq!(on_host("example.com"), 503);
    assert_eq!(
        admin(&gh, "POST", "/maintenance/config?route=example.com/api").status,
        200
    );
    assert_eq!(on_host("example.com"), 200);

    // Unknown routes and wrong methods.
    assert_eq!(
        admin(&gh, "POST", "/maintenance/on?route=/nope").status,
        404
    );
    assert_eq!(admin(&gh, "GET", "/maintenance/on").status, 405);

    // Globally; the switches outlive a reload.
    assert_eq!(admin(&gh, "POST", "/maintenance/on").status, 200);
    assert_eq!(status_of("/"), 503);
    gh.rewrite_config(&config.toml());
    gh.reload()
        .unwrap_or_else(|line| panic!("reload refused: {line}"));
    assert_eq!(
        (status_of("/"), status_of("/api/x")),
        (503, 503),
        "a reload ended maintenance"
    );

    // A route's switch beats the global one.
    assert_eq!(admin(&gh, "POST", "/maintenance/off").status, 200);
    assert_eq!((status_of("/"), status_of("/api/x")), (200, 503));
    assert_eq!(
        admin(&gh, "POST", "/maintenance/config?route=/api").status,
        200
    );
    assert_eq!(
        status_of("/api/x"),
        200,
        "the route follows the global switch again"
    );

    let cleared = admin(&gh, "POST", "/maintenance/config").json();
    assert_eq!(
        cleared,
        json!({
            "global": scope(false, Value::Null, false),
            "routes": [
                {"route": "example.com/api", "maintenance": scope(false, Value::Null, false)},
                {"route": "/api", "maintenance": scope(false, Value::Null, false)},
                {"route": "/", "maintenance": scope(false, Value::Null, false)},
            ],
        })
    );
    assert_eq!((status_of("/"), status_of("/api/x")), (200, 200));
}

#[test]
fn a_response_without_freshness_is_kept_for_failures() {
    let origin = Upstream::serve(Reply::ok("no cache headers at all"));
    let gh = start(&caching(origin.addr(), "full"));
    assert!(get(&gh, "/bare").cache_status().ends_with("stored"));
    assert_eq!(get(&gh, "/bare").text(), "no cache headers at all");
    assert_eq!(
        origin.requests_to("/bare").len(),
        2,
        "a copy without freshness was a hit"
    );
    origin.kill();
    let stale = get(&gh, "/bare");
    assert_stale(
        &gh,
        &stale,
        "no cache headers at all",
        "gatehouse; fwd=stale; ttl=-1; detail=\"stale-if-error\"",
    );
    assert_eq!(proxy_error(&stale), "connection_refused");
}

#[test]
fn an_invalidated_key_does_not_come_back_from_the_disk() {
    let origin = Upstream::hello();
    let dir = TempFile::dir("gatehouse-cache-disk");
    let file = dir.path().join("cache.redb");
    let config = caching(origin.addr(), "full")
        .server("admin", "127.0.0.1:0")
        .section("cache", "disk_path", file.to_string_lossy().into_owned());
    let gh = start(&config);
    for round in 0..10 {
        let path = format!("/i{round}");
        origin.set_route(
            &path,
            Behavior::Serve(Reply::ok("before").header("Cache-Control", "max-age=600")),
        );
        assert!(get(&gh, &path).cache_status().ends_with("stored"));
        // The disk write is in the background; a busy machine may take a while to sync it.
        let deadline = Instant::now() + Duration::from_secs(30);
        while metric(&gh, "gatehouse_cache_entries", &[("tier", "disk")]) < f64::from(round + 1) {
            assert!(
                Instant::now() < deadline,
                "the entry never reached the disk"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        origin.set_route(
            &path,
            Behavior::Serve(Reply::ok("after").header("Cache-Control", "max-age=600")),
        );
        let post = send(&gh, &Req::new("POST", &path).body("x"));
        assert_eq!(post.status, 200);
        let after = get(&gh, &path);
        assert_eq!(
            after.text(),
            "after",
            "round {round}: the invalidated copy came back: {after:#?}"
        );
    }
}

#[test]
fn a_head_of_robots_txt_does_not_replace_the_guards_copy() {
    let origin = Upstream::serve(Reply::ok("User-agent: *\nDisallow: /private\n"));
    let gh = Gatehouse::start(
        Path::new(env!("CARGO_BIN_EXE_gatehouse")),
        &Config::proxy_to([origin.addr()]).toml(),
    );
    let learned = Req::get("/robots.txt").send(gh.addr());
    assert_eq!(learned.status, 200);
    let head = Req::new("HEAD", "/robots.txt").send(gh.addr());
    assert_eq!(head.status, 200);
    // A query string is another resource: never learned either.
    origin.set_behavior(Behavior::Serve(Reply::ok("User-agent: *\nAllow: /\n")));
    assert_eq!(Req::get("/robots.txt?x=1").send(gh.addr()).status, 200);
    std::thread::sleep(Duration::from_millis(300));

    origin.set_behavior(Behavior::Serve(Reply::new(503, "down")));
    let copy = Req::get("/robots.txt").send(gh.addr());
    assert_eq!(copy.status, 200, "{copy:#?}");
    assert_eq!(copy.text(), "User-agent: *\nDisallow: /private\n");
    assert_eq!(
        copy.header("cache-status"),
        Some("gatehouse; fwd=stale; fwd-status=503; detail=\"robots-guard\"")
    );
}

#[test]
fn a_cache_file_in_use_by_another_gatehouse_stops_the_start_with_one_line() {
    let origin = Upstream::hello();
    let dir = TempFile::dir("gatehouse-cache-shared");
    let file = dir.path().join("cache.redb");
    let config = caching(origin.addr(), "full")
        .server("listen", vec!["127.0.0.1:0"])
        .section("cache", "disk_path", file.to_string_lossy().into_owned());
    let _first = start(&config);

    let config_file =
        TempFile::with_contents("gatehouse-second", ".toml", config.toml().as_bytes());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["run", "-c"])
        .arg(config_file.path())
        .env("STATE_DIRECTORY", dir.path())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("gatehouse run: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "gatehouse: cache file {} is in use by another process",
            file.display()
        )),
        "{stderr}"
    );
    assert!(stderr.trim_end().ends_with("(cache.disk_path)"), "{stderr}");
}
