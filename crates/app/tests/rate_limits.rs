//! `[route.limit]` against the real binary: a burst then `429` with `Retry-After` and the
//! `RateLimit` / `RateLimit-Policy` fields, a negotiated body, its own log reason and metric;
//! refill after the period; header and cookie keys; `max_concurrent`; a reload keeping the
//! counters of unchanged limits. With a real `redis-server` (Debian's, on a free loopback
//! port): two instances sharing one limit, the store stopped (fail open, fail closed) and
//! restarted without restarting gatehouse.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use gatehouse_testkit::metrics::{parse_samples, sum};
use gatehouse_testkit::{
    Behavior, Config, Gatehouse, Param, RawConn, RawResponse, RedisServer, Reply, Req, Upstream,
};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_gatehouse"))
}

/// `/limited` with `rate`, `period` and `burst`, `/free` without a limit, an admin listener;
/// two workers, so that one limit is seen to hold across them.
fn limited_config(origin: SocketAddr, rate: i64, period: &str, burst: i64) -> Config {
    Config::new()
        .server("admin", "127.0.0.1:0")
        .server("workers", 2)
        .upstream("app", [origin])
        .route(None, "/free", "app")
        .route(None, "/limited", "app")
        .route_section("limit", "rate", rate)
        .route_section("limit", "period", period)
        .route_section("limit", "burst", burst)
}

fn metric(gh: &Gatehouse, name: &str, labels: &[(&str, &str)]) -> f64 {
    let scrape = Req::get("/metrics").send(gh.admin_addr());
    assert_eq!(scrape.status, 200, "{scrape:#?}");
    sum(&parse_samples(&scrape.text()), name, labels).0
}

/// `promtool check metrics` (Debian package `prometheus`, installed by `.ci/run`) on a scrape,
/// killed after 30 s.
fn promtool_accepts(scrape: &str) {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("promtool (Debian package prometheus) cannot run: {e}"));
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(scrape.as_bytes())
            .unwrap_or_else(|e| panic!("promtool stdin: {e}"));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().ok().flatten().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("promtool took more than 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("promtool: {e}"));
    assert!(
        output.status.success(),
        "promtool check metrics refused the scrape:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn status_json(gh: &Gatehouse) -> serde_json::Value {
    let status = Req::get("/status.json").send(gh.admin_addr());
    assert_eq!(status.status, 200, "{status:#?}");
    status.json()
}

/// Waits until the status page says the limit store is up (or down).
fn wait_store(gh: &Gatehouse, up: bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = status_json(gh);
        if status["limit_store"]["up"] == up {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the limit store is not up={up} after 10 s: {}",
            status["limit_store"]
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Asserts a 429 of the rate limit: status, `Retry-After`, the RateLimit fields, a
/// client-side Proxy-Status, the connection kept open.
fn assert_rate_limited(response: &RawResponse, retry_after: &str, policy: &str) {
    assert_eq!(
        (response.status, response.complete),
        (429, true),
        "{response:#?}"
    );
    assert_eq!(
        response.header("retry-after"),
        Some(retry_after),
        "{response:#?}"
    );
    assert_eq!(
        response.header("ratelimit-policy"),
        Some(policy),
        "{response:#?}"
    );
    assert_eq!(
        response.header("ratelimit"),
        Some(format!("\"default\";r=0;t={retry_after}").as_str()),
        "{response:#?}"
    );
    assert_eq!(response.header("cache-control"), Some("no-store"));
    let member = response.proxy_status().last().clone();
    assert_eq!(member.error(), Some("http_request_error"), "{member:?}");
    assert_eq!(
        member.param("status-code"),
        Some(&Param::Integer(429)),
        "{member:?}"
    );
    assert!(
        response.header("connection").is_none(),
        "a 429 keeps the connection: {response:#?}"
    );
}

#[test]
fn a_burst_then_429_with_retry_after_ratelimit_fields_and_a_negotiated_body() {
    let origin = Upstream::hello();
    let gh = Gatehouse::start(bin(), &limited_config(origin.addr(), 3, "3s", 3).toml());
    let policy = "\"default\";q=3;w=3";

    // The burst, on one connection; every allowed response says what remains.
    let mut conn = RawConn::connect(gh.addr());
    for remaining in [2, 1, 0] {
        let response = Req::get("/limited").send_on(&mut conn);
        assert_eq!(response.status, 200, "{response:#?}");
        assert_eq!(response.header("ratelimit-policy"), Some(policy));
        let state = response.header("ratelimit").unwrap_or_default();
        assert!(
            state.starts_with(&format!("\"default\";r={remaining};t=")),
            "{state}"
        );
    }
    // Over the limit: HTML by default, on the same connection, which stays open.
    let refused = Req::get("/limited").send_on(&mut conn);
    assert_rate_limited(&refused, "1", policy);
    refused.assert_body("text/html; charset=utf-8", &["429 Too Many Requests"]);
    let access = gh.access_log(refused.request_id());
    assert_eq!(access["failure"], "rate_limited", "{access}");
    assert_eq!(access["status"], 429, "{access}");
    assert!(
        gh.failure_logs(refused.request_id()).is_empty(),
        "a refusal by the limit writes no failure warning"
    );
    // JSON when asked for, still on the same connection.
    let refused = Req::get("/limited")
        .header("Accept", "application/json")
        .send_on(&mut conn);
    assert_rate_limited(&refused, "1", policy);
    let problem = refused.json();
    assert_eq!(problem["status"], 429, "{problem}");
    assert_eq!(problem["error"], "http_request_error", "{problem}");
    assert_eq!(
        origin.requests_to("/limited").len(),
        3,
        "refused requests never reach the upstream"
    );

    // A route without a limit is not affected and carries no RateLimit fields.
    for _ in 0..20 {
        let response = Req::get("/free").send(gh.addr());
        assert_eq!(response.status, 200, "{response:#?}");
        assert!(response.header("ratelimit").is_none(), "{response:#?}");
    }

    // One interval (1 s) later exactly one more request is allowed.
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(Req::get("/limited").send(gh.addr()).status, 200);
    assert_eq!(Req::get("/limited").send(gh.addr()).status, 429);
    // After the whole period the burst is back.
    std::thread::sleep(Duration::from_millis(3100));
    for _ in 0..3 {
        assert_eq!(Req::get("/limited").send(gh.addr()).status, 200);
    }
    assert_eq!(Req::get("/limited").send(gh.addr()).status, 429);

    assert_eq!(
        metric(
            &gh,
            "gatehouse_rate_limited_total",
            &[("route", "/limited"), ("limit", "rate")]
        ),
        4.0
    );
    assert_eq!(
        metric(
            &gh,
            "gatehouse_requests_total",
            &[
                ("route", "/limited"),
                ("status", "429"),
                ("failure", "rate_limited")
            ]
        ),
        4.0
    );
    assert_eq!(
        metric(&gh, "gatehouse_limit_store_up", &[("store", "memory")]),
        1.0
    );
    promtool_accepts(&Req::get("/metrics").send(gh.admin_addr()).text());
}

#[test]
fn header_and_cookie_keys_count_each_client_apart_and_fall_back_to_the_address() {
    let origin = Upstream::hello();
    let config = Config::new()
        .upstream("app", [origin.addr()])
        .route(None, "/api", "app")
        .route_section("limit", "rate", 2)
        .route_section("limit", "period", "1m")
        .route_section("limit", "key", "header:X-Api-Key")
        .route(None, "/web", "app")
        .route_section("limit", "rate", 2)
        .route_section("limit", "period", "1m")
        .route_section("limit", "key", "cookie:session");
    let gh = Gatehouse::start(bin(), &config.toml());
    let allowed = |req: Req| {
        (0..4)
            .filter(|_| {
                let response = req.send(gh.addr());
                assert!(matches!(response.status, 200 | 429), "{response:#?}");
                response.status == 200
            })
            .count()
    };
    assert_eq!(allowed(Req::get("/api").header("X-Api-Key", "alice")), 2);
    assert_eq!(allowed(Req::get("/api").header("X-Api-Key", "bob")), 2);
    assert_eq!(allowed(Req::get("/api").header("X-Api-Key", "alice")), 0);
    // Without the header the client address is the key: a budget of its own.
    assert_eq!(allowed(Req::get("/api")), 2);
    assert_eq!(allowed(Req::get("/api").header("X-Api-Key", "carol")), 2);

    assert_eq!(
        allowed(Req::get("/web").header("Cookie", "theme=dark; session=s1")),
        2
    );
    assert_eq!(allowed(Req::get("/web").header("Cookie", "session=s2")), 2);
    assert_eq!(allowed(Req::get("/web").header("Cookie", "session=s1")), 0);
    assert_eq!(allowed(Req::get("/web").header("Cookie", "theme=dark")), 2);
    assert_eq!(
        allowed(Req::get("/web")),
        0,
        "same address as the line before"
    );
}

#[test]
fn max_concurrent_refuses_a_clients_extra_request_until_one_finishes() {
    let origin = Upstream::start(Behavior::Delay(
        Duration::from_millis(1500),
        Reply::ok("slow"),
    ));
    let config = Config::new()
        .server("admin", "127.0.0.1:0")
        .upstream("app", [origin.addr()])
        .route(None, "/", "app")
        .route_section("limit", "max_concurrent", 2);
    let gh = Gatehouse::start(bin(), &config.toml());
    let addr = gh.addr();
    let slow: Vec<_> = (0..2)
        .map(|_| std::thread::spawn(move || Req::get("/slow").send(addr).status))
        .collect();
    origin.wait_for_requests(2, Duration::from_secs(5));
    let refused = Req::get("/third").send(addr);
    assert_eq!(refused.status, 429, "{refused:#?}");
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert!(
        refused.header("ratelimit").is_none(),
        "no rate on this route"
    );
    let access = gh.access_log(refused.request_id());
    assert_eq!(access["failure"], "concurrency_limited", "{access}");
    for handle in slow {
        assert_eq!(handle.join().unwrap_or(0), 200);
    }
    // Both slots were freed when their responses ended.
    let third = Req::get("/third").send(addr);
    assert_eq!(third.status, 200, "{third:#?}");
    assert_eq!(
        metric(
            &gh,
            "gatehouse_rate_limited_total",
            &[("route", "/"), ("limit", "concurrency")]
        ),
        1.0
    );
}

#[test]
fn a_reload_keeps_the_counters_of_an_unchanged_limit_and_restarts_a_changed_one() {
    let origin = Upstream::hello();
    let config = limited_config(origin.addr(), 2, "1m", 2);
    let gh = Gatehouse::start(bin(), &config.toml());
    for _ in 0..2 {
        assert_eq!(Req::get("/limited").send(gh.addr()).status, 200);
    }
    assert_eq!(Req::get("/limited").send(gh.addr()).status, 429);

    // Another route added; this limit unchanged: still spent.
    gh.rewrite_config(&config.clone().route(None, "/other", "app").toml());
    gh.reload()
        .unwrap_or_else(|e| panic!("reload refused: {e}"));
    assert_eq!(Req::get("/limited").send(gh.addr()).status, 429);

    // The limit changed: it starts afresh.
    gh.rewrite_config(&limited_config(origin.addr(), 3, "1m", 3).toml());
    gh.reload()
        .unwrap_or_else(|e| panic!("reload refused: {e}"));
    for _ in 0..3 {
        assert_eq!(Req::get("/limited").send(gh.addr()).status, 200);
    }
    assert_eq!(Req::get("/limited").send(gh.addr()).status, 429);
}

// === Redis ===

fn redis_config(origin: SocketAddr, redis: &RedisServer, fail: &str) -> Config {
    limited_config(origin, 5, "1m", 5)
        .section("limits", "store", redis.url())
        .section("limits", "fail", fail)
}

#[test]
fn two_instances_share_one_limit_through_redis() {
    let redis = RedisServer::start();
    let origin = Upstream::hello();
    let config = redis_config(origin.addr(), &redis, "open").toml();
    let a = Gatehouse::start(bin(), &config);
    let b = Gatehouse::start(bin(), &config);
    wait_store(&a, true);
    wait_store(&b, true);
    let mut allowed = [0, 0];
    for i in 0..20 {
        let gh = if i % 2 == 0 { &a } else { &b };
        let response = Req::get("/limited").send(gh.addr());
        match response.status {
            200 => allowed[i % 2] += 1,
            429 => assert_rate_limited(&response, "12", "\"default\";q=5;w=60"),
            _ => panic!("{response:#?}"),
        }
    }
    assert_eq!(allowed.iter().sum::<i32>(), 5, "{allowed:?}");
    assert!(allowed[0] > 0 && allowed[1] > 0, "{allowed:?}");
    assert_eq!(
        metric(&a, "gatehouse_limit_store_errors_total", &[]),
        0.0,
        "every decision came from Redis"
    );
    let status = status_json(&a);
    assert_eq!(status["limit_store"]["store"], redis.url(), "{status}");
}

#[test]
fn redis_stopped_fails_open_and_a_restarted_redis_limits_again() {
    let mut redis = RedisServer::start();
    let origin = Upstream::hello();
    let gh = Gatehouse::start(bin(), &redis_config(origin.addr(), &redis, "open").toml());
    wait_store(&gh, true);
    for _ in 0..5 {
        assert_eq!(Req::get("/limited").send(gh.addr()).status, 200);
    }
    assert_eq!(Req::get("/limited").send(gh.addr()).status, 429);

    redis.stop();
    wait_store(&gh, false);
    for _ in 0..10 {
        let response = Req::get("/limited").send(gh.addr());
        assert_eq!(response.status, 200, "fail open: {response:#?}");
        assert!(response.header("ratelimit").is_none(), "{response:#?}");
    }
    assert!(
        metric(
            &gh,
            "gatehouse_limit_store_errors_total",
            &[("reason", "unreachable")]
        ) >= 10.0
    );
    assert_eq!(
        metric(&gh, "gatehouse_limit_store_up", &[("store", &redis.url())]),
        0.0
    );
    promtool_accepts(&Req::get("/metrics").send(gh.admin_addr()).text());
    let page = Req::get("/status").send(gh.admin_addr()).text();
    assert!(
        page.contains("data-state=\"unreachable\""),
        "no store row on the status page:\n{page}"
    );
    let warnings = gh
        .logs()
        .into_iter()
        .filter(|l| l["target"] == "gatehouse::limit" && l["level"] == "WARN")
        .count();
    assert!(
        (1..=3).contains(&warnings),
        "store warnings are not one per request: {warnings}"
    );

    // Back, with no data: enforced again without restarting gatehouse.
    redis.restart();
    wait_store(&gh, true);
    for _ in 0..5 {
        assert_eq!(Req::get("/limited").send(gh.addr()).status, 200);
    }
    assert_eq!(Req::get("/limited").send(gh.addr()).status, 429);
    assert_eq!(
        metric(&gh, "gatehouse_limit_store_up", &[("store", &redis.url())]),
        1.0
    );
}

#[test]
fn with_fail_closed_a_stopped_redis_means_503_with_its_own_reason() {
    let mut redis = RedisServer::start();
    let origin = Upstream::hello();
    let gh = Gatehouse::start(bin(), &redis_config(origin.addr(), &redis, "closed").toml());
    wait_store(&gh, true);
    assert_eq!(Req::get("/limited").send(gh.addr()).status, 200);
    redis.stop();
    wait_store(&gh, false);
    let response = Req::get("/limited")
        .header("Accept", "application/json")
        .send(gh.addr());
    assert_eq!(response.status, 503, "{response:#?}");
    let member = response.proxy_status().last().clone();
    assert_eq!(
        member.error(),
        Some("proxy_internal_response"),
        "{member:?}"
    );
    assert_eq!(response.json()["status"], 503);
    let access = gh.access_log(response.request_id());
    assert_eq!(access["failure"], "limit_store_unavailable", "{access}");
    // Routes without a limit do not depend on the store.
    assert_eq!(Req::get("/free").send(gh.addr()).status, 200);
    redis.restart();
    wait_store(&gh, true);
    assert_eq!(Req::get("/limited").send(gh.addr()).status, 200);
}

#[test]
fn a_frozen_redis_times_out_within_limits_timeout_and_requests_go_on() {
    let redis = RedisServer::start();
    let origin = Upstream::hello();
    let config = redis_config(origin.addr(), &redis, "open").section("limits", "timeout", "100ms");
    let gh = Gatehouse::start(bin(), &config.toml());
    wait_store(&gh, true);
    for _ in 0..2 {
        assert_eq!(Req::get("/limited").send(gh.addr()).status, 200);
    }

    redis.pause();
    for _ in 0..5 {
        let started = Instant::now();
        let response = Req::get("/limited").send(gh.addr());
        assert_eq!(response.status, 200, "fail open: {response:#?}");
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "a frozen store held a request for {:?}",
            started.elapsed()
        );
    }
    assert!(
        metric(
            &gh,
            "gatehouse_limit_store_errors_total",
            &[("reason", "timeout")]
        ) >= 1.0
    );

    redis.resume();
    wait_store(&gh, true);
    // The counters are still there. A decision written before its caller gave up may still
    // have been counted by the server once it went on: 2 or 3 of the 5 are left.
    let allowed = (0..6)
        .filter(|_| Req::get("/limited").send(gh.addr()).status == 200)
        .count();
    assert!((2..=3).contains(&allowed), "{allowed}");
    assert_eq!(Req::get("/limited").send(gh.addr()).status, 429);
}

#[test]
fn a_reload_moves_the_counters_to_redis_and_back() {
    let redis = RedisServer::start();
    let origin = Upstream::hello();
    let memory = limited_config(origin.addr(), 5, "1m", 5);
    let gh = Gatehouse::start(bin(), &memory.toml());
    for _ in 0..5 {
        assert_eq!(Req::get("/limited").send(gh.addr()).status, 200);
    }
    assert_eq!(Req::get("/limited").send(gh.addr()).status, 429);
    assert_eq!(status_json(&gh)["limit_store"]["store"], "memory");

    // To Redis: its counters start empty there, and the keys are written there.
    gh.rewrite_config(&redis_config(origin.addr(), &redis, "open").toml());
    gh.reload()
        .unwrap_or_else(|e| panic!("reload refused: {e}"));
    wait_store(&gh, true);
    for _ in 0..5 {
        assert_eq!(Req::get("/limited").send(gh.addr()).status, 200);
    }
    assert_eq!(Req::get("/limited").send(gh.addr()).status, 429);
    let keys = redis
        .command(&["KEYS", "gatehouse:limit:*"])
        .unwrap_or_default();
    assert!(keys.starts_with("*1\r\n"), "one key in Redis: {keys:?}");

    // Back to memory: what this instance counted there is still there.
    gh.rewrite_config(&memory.toml());
    gh.reload()
        .unwrap_or_else(|e| panic!("reload refused: {e}"));
    assert_eq!(status_json(&gh)["limit_store"]["store"], "memory");
    assert_eq!(Req::get("/limited").send(gh.addr()).status, 429);
    // And gatehouse's connection to Redis is closed: only the one asking is left.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let clients = redis.command(&["CLIENT", "LIST"]).unwrap_or_default();
        if clients.matches(" addr=").count() == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "still connected: {clients}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
