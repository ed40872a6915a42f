//! Upstream pools against the real binary: failover when a server dies or hangs, retry safety
//! (a POST that may have reached a server is never replayed), the retry budget, active and
//! passive health, backups, weights, consistent hashing, least requests, connection limits and
//! DNS discovery (issue 3, `failures.md` "Retries").
//!
//! Upstreams answer with their own name as the body, so a response tells which server served
//! it; health checks go to `/health` and are told apart from real requests by path.

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use gatehouse_testkit::{
    Behavior, Config, DnsAnswer, Gatehouse, MockDns, PATIENCE, RawResponse, Reply, Req, Server,
    Upstream,
};
use serde_json::Value;

/// The path of every active health check in these tests.
const HEALTH: &str = "/health";

fn start(config: Config) -> Gatehouse {
    Gatehouse::start(Path::new(env!("CARGO_BIN_EXE_gatehouse")), &config.toml())
}

/// An upstream answering `200 OK` with `name` as the body.
fn named(name: &str) -> Upstream {
    Upstream::serve(Reply::ok(name))
}

/// A port where connections are refused for the whole test (see the testkit's).
fn closed_port() -> u16 {
    gatehouse_testkit::closed_port()
}

fn get(gh: &Gatehouse) -> RawResponse {
    Req::get("/").send(gh.addr())
}

fn post(gh: &Gatehouse, body: &str) -> RawResponse {
    Req::new("POST", "/submit").body(body).send(gh.addr())
}

/// Active checks on `/health` every 100 ms, one result enough either way.
fn fast_health(config: Config) -> Config {
    config
        .health("app", "path", HEALTH)
        .health("app", "interval", "100ms")
        .health("app", "timeout", "1s")
        .health("app", "unhealthy_threshold", 1)
        .health("app", "healthy_threshold", 1)
}

/// Whether `line` is a health transition (`gatehouse::health`) of the server at `addr` to
/// `state` (`down`, `up`, `ejected`, `recovered`).
fn is_transition(line: &Value, addr: SocketAddr, state: &str) -> bool {
    let about_addr = line["server"]
        .as_str()
        .is_some_and(|s| s.contains(&addr.to_string()))
        || line["message"]
            .as_str()
            .is_some_and(|m| m.contains(&addr.to_string()));
    let to_state = line["state"] == state
        || (line["state"].is_null()
            && line["message"]
                .as_str()
                .is_some_and(|m| m.split(|c: char| !c.is_alphanumeric()).any(|w| w == state)));
    line["target"] == "gatehouse::health" && about_addr && to_state
}

fn transitions(gh: &Gatehouse, addr: SocketAddr, state: &str) -> Vec<Value> {
    gh.logs()
        .into_iter()
        .filter(|l| is_transition(l, addr, state))
        .collect()
}

fn wait_transition(gh: &Gatehouse, addr: SocketAddr, state: &str) -> Value {
    gh.wait_for_log(|l| is_transition(l, addr, state), PATIENCE)
}

/// The access record's `attempts`.
fn attempts(gh: &Gatehouse, response: &RawResponse) -> u64 {
    let access = gh.access_log(response.request_id());
    access["attempts"]
        .as_u64()
        .unwrap_or_else(|| panic!("no attempts in {access}"))
}

fn bodies(upstream: &Upstream) -> Vec<String> {
    upstream
        .requests()
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect()
}

// --- failover ---

#[test]
fn one_of_two_servers_killed_mid_run_no_client_sees_a_5xx() {
    let a = named("a");
    let b = named("b");
    let gh = start(Config::proxy_to([a.addr(), b.addr()]));
    let mut failures = Vec::new();
    let mut served_by_a_after_kill = 0;
    for i in 0..1000 {
        if i == 300 {
            assert!(
                !a.requests().is_empty() && !b.requests().is_empty(),
                "both servers should have had traffic before the kill: a {}, b {}",
                a.requests().len(),
                b.requests().len()
            );
            a.kill();
        }
        let resp = get(&gh);
        if resp.status != 200 || !resp.complete {
            failures.push(format!(
                "request {i}: {} ({:?}) id {:?}",
                resp.status,
                resp.incomplete_because,
                resp.header("x-request-id")
            ));
        } else if i >= 300 && resp.text() == "a" {
            served_by_a_after_kill += 1;
        }
    }
    assert!(
        failures.is_empty(),
        "{} of 1000 GETs failed: {failures:#?}\nfailure logs: {:#?}",
        failures.len(),
        gh.logs()
            .into_iter()
            .filter(|l| l["target"] == "gatehouse::failure")
            .take(20)
            .collect::<Vec<_>>()
    );
    assert_eq!(served_by_a_after_kill, 0);
}

#[test]
fn a_hanging_server_delays_at_most_two_requests_before_it_is_out() {
    let response_timeout = Duration::from_millis(300);
    let hanging = Upstream::start(Behavior::Hang);
    let good = named("good");
    let gh = start(
        Config::proxy_to([hanging.addr(), good.addr()])
            .upstream_setting("app", "response_timeout", "300ms")
            .passive("app", "consecutive_failures", 2)
            .passive("app", "ejection", "30s")
            .health("app", "path", HEALTH)
            .health("app", "interval", "100ms")
            .health("app", "timeout", "250ms")
            .health("app", "unhealthy_threshold", 2)
            .health("app", "healthy_threshold", 2),
    );
    let mut slow = Vec::new();
    for i in 0..20 {
        let started = Instant::now();
        let resp = get(&gh);
        let elapsed = started.elapsed();
        assert_eq!(
            (resp.status, resp.text().as_str()),
            (200, "good"),
            "request {i}: {resp:#?}"
        );
        if elapsed >= response_timeout {
            slow.push((i, elapsed));
        }
    }
    let real = hanging.requests_except(HEALTH).len();
    assert!(
        real <= 2,
        "the hanging server got {real} requests (passive threshold 2)"
    );
    assert!(slow.len() <= 2, "slow requests: {slow:?}");
    let out = transitions(&gh, hanging.addr(), "down").len()
        + transitions(&gh, hanging.addr(), "ejected").len();
    assert!(
        out >= 1,
        "no down/ejected transition for {}: {:#?}",
        hanging.addr(),
        gh.logs()
    );
}

// --- retry safety ---

#[test]
fn a_post_that_reached_a_dying_server_is_not_replayed() {
    let dying = Upstream::start(Behavior::CloseAfterRequest);
    let healthy = named("healthy");
    let gh = start(Config::proxy_to([dying.addr(), healthy.addr()]));
    let mut failed = Vec::new();
    let mut ok = 0;
    for i in 0..4 {
        let body = format!("order-{i}");
        let resp = post(&gh, &body);
        if resp.status == 200 {
            assert_eq!(resp.text(), "healthy");
            ok += 1;
        } else {
            let seen = gh.expect_failure(&resp, 502, "connection_terminated");
            assert_eq!(seen.warning["request_sent"], true, "{}", seen.warning);
            assert_eq!(seen.access["attempts"], 1, "{}", seen.access);
            failed.push(body);
        }
    }
    let on_dying = bodies(&dying);
    let replayed: Vec<String> = bodies(&healthy)
        .into_iter()
        .filter(|b| on_dying.contains(b))
        .collect();
    assert!(
        replayed.is_empty(),
        "POSTs that reached the dying server were replayed: {replayed:?}"
    );
    assert_eq!(
        on_dying, failed,
        "each POST the dying server read must be answered 502"
    );
    assert!(
        !failed.is_empty(),
        "no POST went to the dying server first (round robin over 2 servers, 4 POSTs)"
    );
    assert_eq!(healthy.requests().len(), ok);
}

#[test]
fn a_post_to_a_refused_server_is_retried_on_another() {
    let refused = format!("127.0.0.1:{}", closed_port());
    let healthy = named("healthy");
    let gh = start(Config::proxy_to([
        refused.clone(),
        healthy.addr().to_string(),
    ]));
    let mut retried = 0;
    for i in 0..4 {
        let resp = post(&gh, &format!("order-{i}"));
        assert_eq!(
            (resp.status, resp.text().as_str()),
            (200, "healthy"),
            "{resp:#?}"
        );
        if attempts(&gh, &resp) == 2 {
            retried += 1;
            let warnings = gh.failure_logs(resp.request_id());
            assert_eq!(warnings.len(), 1, "{warnings:#?}");
            let w = &warnings[0];
            assert_eq!(
                (&w["kind"], &w["attempt"], &w["request_sent"]),
                (&"connection_refused".into(), &1.into(), &false.into()),
                "{w}"
            );
            assert!(
                w["server"].as_str().is_some_and(|s| s.contains(&refused)),
                "{w}"
            );
        }
    }
    assert!(
        retried >= 1,
        "no POST was tried on the refused server first"
    );
    let mut received = bodies(&healthy);
    received.sort();
    assert_eq!(
        received,
        ["order-0", "order-1", "order-2", "order-3"],
        "each POST once"
    );
}

#[test]
fn retry_non_idempotent_route_opt_in_replays_a_post() {
    let dying = Upstream::start(Behavior::CloseAfterRequest);
    let healthy = named("healthy");
    let gh = start(
        Config::proxy_to([dying.addr(), healthy.addr()])
            .route_setting("retry_non_idempotent", true),
    );
    for i in 0..4 {
        let resp = post(&gh, &format!("order-{i}"));
        assert_eq!(
            (resp.status, resp.text().as_str()),
            (200, "healthy"),
            "{resp:#?}"
        );
    }
    let on_dying = bodies(&dying);
    assert!(!on_dying.is_empty(), "no POST went to the dying server");
    let on_healthy = bodies(&healthy);
    for body in &on_dying {
        assert!(
            on_healthy.contains(body),
            "{body} was not replayed with the opt-in"
        );
    }
}

#[test]
fn a_failed_get_is_retried_on_another_server_with_attempts_2() {
    let failing = Upstream::start(Behavior::CloseAfterRequest);
    let good = named("good");
    let gh = start(Config::proxy_to([failing.addr(), good.addr()]));
    let mut retried = 0;
    for _ in 0..4 {
        let resp = get(&gh);
        assert_eq!((resp.status, resp.text().as_str()), (200, "good"));
        let access = gh.access_log(resp.request_id());
        assert_eq!(access["failure"], "-", "{access}");
        assert!(
            access["upstream"]
                .as_str()
                .is_some_and(|u| u.contains(&good.addr().to_string())),
            "{access}"
        );
        let warnings = gh.failure_logs(resp.request_id());
        match access["attempts"].as_u64() {
            Some(1) => assert!(warnings.is_empty(), "{warnings:#?}"),
            Some(2) => {
                retried += 1;
                assert_eq!(warnings.len(), 1, "{warnings:#?}");
                let w = &warnings[0];
                assert_eq!(
                    (&w["kind"], &w["attempt"], &w["request_sent"]),
                    (&"connection_terminated".into(), &1.into(), &true.into()),
                    "{w}"
                );
                assert!(
                    w["server"]
                        .as_str()
                        .is_some_and(|s| s.contains(&failing.addr().to_string())),
                    "{w}"
                );
            }
            _ => panic!("attempts: {access}"),
        }
    }
    assert!(retried >= 1, "no GET went to the failing server first");
    assert_eq!(failing.requests().len(), retried);
}

#[test]
fn every_failed_attempt_logs_one_warning_with_its_number() {
    let closing = Upstream::start(Behavior::CloseAfterRequest);
    let resetting = Upstream::start(Behavior::ResetAfterRequest);
    let good = named("good");
    let gh = start(
        Config::proxy_to([closing.addr(), resetting.addr(), good.addr()])
            .passive("app", "consecutive_failures", 0)
            .retry("app", "attempts", 3),
    );
    let mut most = 0;
    for _ in 0..6 {
        let resp = get(&gh);
        assert_eq!((resp.status, resp.text().as_str()), (200, "good"));
        let tries = attempts(&gh, &resp);
        most = most.max(tries);
        let warnings = gh.failure_logs(resp.request_id());
        let numbers: Vec<u64> = warnings
            .iter()
            .map(|w| w["attempt"].as_u64().unwrap_or(0))
            .collect();
        let expected: Vec<u64> = (1..tries).collect();
        assert_eq!(numbers, expected, "{warnings:#?}");
        let servers: HashSet<&str> = warnings
            .iter()
            .map(|w| w["server"].as_str().unwrap_or_default())
            .collect();
        assert_eq!(
            servers.len(),
            warnings.len(),
            "a server was tried twice: {warnings:#?}"
        );
        for w in &warnings {
            assert_eq!(w["kind"], "connection_terminated", "{w}");
            assert!(
                !w["server"]
                    .as_str()
                    .unwrap_or_default()
                    .contains(&good.addr().to_string()),
                "{w}"
            );
        }
    }
    assert_eq!(
        most, 3,
        "round robin over 3 servers starts at a failing one at least once"
    );
}

#[test]
fn the_retry_budget_caps_amplification_when_every_server_fails() {
    const N: usize = 100;
    let servers: Vec<Upstream> = (0..3)
        .map(|_| Upstream::start(Behavior::CloseAfterRequest))
        .collect();
    let gh = start(
        Config::proxy_to(servers.iter().map(Upstream::addr))
            .passive("app", "consecutive_failures", 0)
            .retry("app", "attempts", 3)
            .retry("app", "budget", 0.2)
            .retry("app", "min_retries_per_second", 0),
    );
    let mut logged_attempts = 0;
    for _ in 0..N {
        let resp = get(&gh);
        // Also checks one failure warning per attempt.
        let seen = gh.expect_failure(&resp, 502, "connection_terminated");
        logged_attempts += seen.access["attempts"].as_u64().unwrap_or(0);
    }
    let received: usize = servers.iter().map(|s| s.requests().len()).sum();
    assert_eq!(
        received as u64, logged_attempts,
        "access records vs upstreams"
    );
    // Without a budget: 3 × N. With 20%: at most N + 0.2 × N while the run fits in the
    // budget's 10 s window; the slack of 5 covers a slow run crossing into an 11th second,
    // when the first one-second bucket's retries leave the window before its requests do.
    assert!(
        received > N,
        "no retry at all ({received} upstream requests for {N})"
    );
    assert!(
        received <= N + N / 5 + 5,
        "{received} upstream requests for {N} client requests"
    );
}

// --- health ---

#[test]
fn all_servers_down_by_health_checks_is_503_naming_each_server_then_recovers() {
    let a = named("a");
    let b = named("b");
    for server in [&a, &b] {
        server.set_route(HEALTH, Behavior::Serve(Reply::new(500, "sick")));
    }
    let gh =
        start(fast_health(Config::proxy_to([a.addr(), b.addr()])).server("proxy_status", "full"));
    for server in [&a, &b] {
        wait_transition(&gh, server.addr(), "down");
    }
    let resp = Req::get("/")
        .header("Accept", "application/json")
        .send(gh.addr());
    let seen = gh.expect_failure(&resp, 503, "destination_unavailable");
    assert!(
        resp.header("retry-after")
            .is_some_and(|v| v.trim().parse::<u64>().is_ok()),
        "{resp:#?}"
    );
    let told = format!(
        "{}\n{}",
        resp.text(),
        seen.warning["message"].as_str().unwrap_or_default()
    );
    for server in [&a, &b] {
        assert!(
            told.contains(&server.addr().to_string()),
            "{} not named: {told}",
            server.addr()
        );
    }
    assert!(told.contains("status 500"), "no reason given: {told}");
    assert_eq!(
        a.requests_except(HEALTH).len() + b.requests_except(HEALTH).len(),
        0
    );

    for server in [&a, &b] {
        server.clear_route(HEALTH);
    }
    for server in [&a, &b] {
        wait_transition(&gh, server.addr(), "up");
    }
    let resp = get(&gh);
    assert_eq!(resp.status, 200, "{resp:#?}");
    // A few more probes, then count: one line per transition, not one per probe.
    let probes = a.requests_to(HEALTH).len();
    a.wait_for_requests(a.requests().len() + 3, PATIENCE);
    assert!(a.requests_to(HEALTH).len() >= probes + 3);
    for server in [&a, &b] {
        assert_eq!(
            (
                transitions(&gh, server.addr(), "down").len(),
                transitions(&gh, server.addr(), "up").len()
            ),
            (1, 1),
            "transitions of {}: {:#?}",
            server.addr(),
            gh.logs()
                .into_iter()
                .filter(|l| l["target"] == "gatehouse::health")
                .collect::<Vec<_>>()
        );
    }
}

#[test]
fn passive_ejection_takes_a_refusing_server_out_of_a_pool_of_two() {
    let refusing = format!("127.0.0.1:{}", closed_port());
    let good = named("good");
    let gh = start(
        Config::proxy_to([refusing.clone(), good.addr().to_string()])
            .passive("app", "consecutive_failures", 2)
            .passive("app", "ejection", "30s")
            .passive("app", "max_ejected_percent", 50),
    );
    let refusing_addr: SocketAddr = refusing.parse().unwrap();
    // Round robin alternates, so the refusing server is hit by every other request; the
    // second hit (attempts: 2, retried to the good one) ejects it.
    let mut hits = 0;
    for sent in 0.. {
        assert!(
            sent < 10,
            "only {hits} of {sent} requests tried the refusing server"
        );
        let resp = get(&gh);
        assert_eq!((resp.status, resp.text().as_str()), (200, "good"));
        if attempts(&gh, &resp) == 2 {
            hits += 1;
            if hits == 2 {
                break;
            }
        }
    }
    // The log is written off the request path: wait for the line rather than race it.
    wait_transition(&gh, refusing_addr, "ejected");
    for _ in 0..10 {
        let resp = get(&gh);
        assert_eq!((resp.status, resp.text().as_str()), (200, "good"));
        assert_eq!(
            attempts(&gh, &resp),
            1,
            "the ejected server was tried again"
        );
    }
}

#[test]
fn passive_ejection_never_empties_a_pool_of_one() {
    let refusing = format!("127.0.0.1:{}", closed_port());
    let gh = start(
        Config::proxy_to([refusing.clone()])
            .passive("app", "consecutive_failures", 1)
            .passive("app", "ejection", "30s")
            .passive("app", "max_ejected_percent", 50),
    );
    for _ in 0..5 {
        let resp = get(&gh);
        let seen = gh.expect_failure(&resp, 502, "connection_refused");
        assert_eq!(seen.access["attempts"], 1, "{}", seen.access);
    }
    let ejected = transitions(&gh, refusing.parse().unwrap(), "ejected");
    assert!(ejected.is_empty(), "{ejected:#?}");
}

#[test]
fn a_backup_serves_only_while_the_primary_is_down() {
    let primary = named("primary");
    let backup = named("backup");
    let gh = start(
        fast_health(Config::new().upstream_servers(
            "app",
            [
                Server::new(primary.addr()),
                Server::new(backup.addr()).backup(),
            ],
        ))
        .route(None, "/", "app"),
    );
    for _ in 0..10 {
        let resp = get(&gh);
        assert_eq!((resp.status, resp.text().as_str()), (200, "primary"));
    }
    assert!(backup.requests_except(HEALTH).is_empty());

    primary.kill();
    wait_transition(&gh, primary.addr(), "down");
    for _ in 0..10 {
        let resp = get(&gh);
        assert_eq!((resp.status, resp.text().as_str()), (200, "backup"));
        assert_eq!(attempts(&gh, &resp), 1, "the down primary was tried");
    }

    primary.restart();
    wait_transition(&gh, primary.addr(), "up");
    let before = backup.requests_except(HEALTH).len();
    for _ in 0..10 {
        let resp = get(&gh);
        assert_eq!((resp.status, resp.text().as_str()), (200, "primary"));
    }
    assert_eq!(backup.requests_except(HEALTH).len(), before);
}

// --- balancing ---

#[test]
fn weights_1_and_3_share_400_requests_100_and_300() {
    let light = named("light");
    let heavy = named("heavy");
    let gh = start(
        Config::new()
            .upstream_servers(
                "app",
                [
                    Server::new(light.addr()).weight(1),
                    Server::new(heavy.addr()).weight(3),
                ],
            )
            .route(None, "/", "app"),
    );
    for _ in 0..400 {
        assert_eq!(get(&gh).status, 200);
    }
    // Smooth weighted round robin is deterministic: 100 whole cycles of 4 picks.
    let counts = (
        light.requests_except(HEALTH).len(),
        heavy.requests_except(HEALTH).len(),
    );
    assert!(
        counts.0.abs_diff(100) <= 1 && counts.1.abs_diff(300) <= 1,
        "{counts:?}"
    );
}

#[test]
fn hashing_on_a_header_is_sticky_fair_and_moves_only_a_removed_servers_keys() {
    let servers = [named("a"), named("b"), named("c")];
    let config = |servers: &[&Upstream]| {
        Config::proxy_to(servers.iter().map(|s| s.addr()))
            .upstream_setting("app", "balance", "hash")
            .upstream_setting("app", "hash_key", "header:x-user")
    };
    let ask = |gh: &Gatehouse, key: &str| {
        let resp = Req::get("/").header("X-User", key).send(gh.addr());
        assert_eq!(resp.status, 200, "{resp:#?}");
        resp.text()
    };
    let keys: Vec<String> = (0..300).map(|k| format!("user-{k}")).collect();

    let gh = start(config(&[&servers[0], &servers[1], &servers[2]]));
    let first: HashMap<&str, String> = keys.iter().map(|k| (k.as_str(), ask(&gh, k))).collect();
    for key in &keys[..50] {
        assert_eq!(ask(&gh, key), first[key.as_str()], "{key} moved");
    }
    let mut share: HashMap<&str, usize> = HashMap::new();
    for server in first.values() {
        *share.entry(server.as_str()).or_default() += 1;
    }
    // Binomial(300, 1/3): mean 100, sd 8.2; 60..=140 is ±4.9 sd.
    for name in ["a", "b", "c"] {
        let n = share.get(name).copied().unwrap_or(0);
        assert!((60..=140).contains(&n), "{share:?}");
    }
    drop(gh);

    let gh = start(config(&[&servers[0], &servers[1]]));
    let mut moved = 0;
    for key in &keys {
        let before = first[key.as_str()].as_str();
        let after = ask(&gh, key);
        if before == "c" {
            assert!(after == "a" || after == "b", "{after}");
            moved += 1;
        } else {
            assert_eq!(after, before, "{key} moved though its server stayed");
        }
    }
    assert_eq!(moved, share["c"]);
}

#[test]
fn least_requests_sends_most_concurrent_requests_to_the_fast_server() {
    let slow = Upstream::start(Behavior::Delay(
        Duration::from_millis(300),
        Reply::ok("slow"),
    ));
    let fast = named("fast");
    let gh = start(
        Config::proxy_to([slow.addr(), fast.addr()]).upstream_setting(
            "app",
            "balance",
            "least_requests",
        ),
    );
    let addr = gh.addr();
    let clients: Vec<_> = (0..8)
        .map(|_| {
            std::thread::spawn(move || {
                (0..10)
                    .map(|_| Req::get("/").send(addr))
                    .filter(|r| r.status != 200)
                    .count()
            })
        })
        .collect();
    let failed: usize = clients.into_iter().map(|c| c.join().unwrap()).sum();
    assert_eq!(failed, 0);
    let (on_slow, on_fast) = (
        slow.requests_except(HEALTH).len(),
        fast.requests_except(HEALTH).len(),
    );
    assert_eq!(on_slow + on_fast, 80);
    // Round robin would give the slow server 40.
    assert!(on_slow <= 20, "slow {on_slow}, fast {on_fast}");
}

// --- connection limits ---

/// Sends a GET from a thread; the handle returns the response and how long it took.
fn in_background(gh: &Gatehouse, req: Req) -> std::thread::JoinHandle<(RawResponse, Duration)> {
    let addr = gh.addr();
    std::thread::spawn(move || {
        let started = Instant::now();
        let resp = req.send(addr);
        (resp, started.elapsed())
    })
}

#[test]
fn a_full_server_with_no_queue_answers_503_connection_limit_reached() {
    let slow = Upstream::start(Behavior::Delay(
        Duration::from_millis(1500),
        Reply::ok("slow"),
    ));
    let gh = start(
        Config::proxy_to([slow.addr()])
            .upstream_setting("app", "max_connections", 1)
            .upstream_setting("app", "queue_size", 0),
    );
    let first = in_background(&gh, Req::get("/first"));
    slow.wait_for_requests(1, PATIENCE);
    let second = Req::get("/second").send(gh.addr());
    gh.expect_failure(&second, 503, "connection_limit_reached");
    assert!(
        second
            .header("retry-after")
            .is_some_and(|v| v.trim().parse::<u64>().is_ok()),
        "{second:#?}"
    );
    let (first, _) = first.join().unwrap();
    assert_eq!((first.status, first.text().as_str()), (200, "slow"));
    assert_eq!(slow.requests().len(), 1);
    assert_eq!(slow.peak_in_flight(), 1);
}

#[test]
fn a_queued_request_waits_for_the_free_slot() {
    let delay = Duration::from_millis(1000);
    let slow = Upstream::start(Behavior::Delay(delay, Reply::ok("slow")));
    let gh = start(
        Config::proxy_to([slow.addr()])
            .upstream_setting("app", "max_connections", 1)
            .upstream_setting("app", "queue_size", 1)
            .upstream_setting("app", "queue_timeout", "10s"),
    );
    let first = in_background(&gh, Req::get("/first"));
    slow.wait_for_requests(1, PATIENCE);
    let second = in_background(&gh, Req::get("/second"));
    for handle in [first, second] {
        let (resp, _) = handle.join().unwrap();
        assert_eq!(
            (resp.status, resp.text().as_str()),
            (200, "slow"),
            "{resp:#?}"
        );
    }
    assert_eq!(slow.requests().len(), 2);
    assert_eq!(slow.peak_in_flight(), 1, "the limit of 1 was exceeded");
}

#[test]
fn a_full_server_sends_the_next_request_to_one_with_room() {
    let delay = Duration::from_millis(1500);
    let a = Upstream::start(Behavior::Delay(delay, Reply::ok("a")));
    let b = Upstream::start(Behavior::Delay(delay, Reply::ok("b")));
    // Both requests carry the same hash key, so both prefer the same server: the second can
    // only go to the other one because the first is at its limit.
    let gh = start(
        Config::new()
            .upstream_servers(
                "app",
                [
                    Server::new(a.addr()).max_connections(1),
                    Server::new(b.addr()).max_connections(1),
                ],
            )
            .route(None, "/", "app")
            .upstream_setting("app", "balance", "hash")
            .upstream_setting("app", "hash_key", "header:x-user")
            .upstream_setting("app", "queue_size", 0),
    );
    let req = Req::get("/").header("X-User", "same");
    let first = in_background(&gh, req.clone());
    let deadline = Instant::now() + PATIENCE;
    while a.requests().len() + b.requests().len() == 0 {
        assert!(Instant::now() < deadline, "the first request never arrived");
        std::thread::sleep(Duration::from_millis(10));
    }
    let second = in_background(&gh, req);
    let (first, _) = first.join().unwrap();
    let (second, _) = second.join().unwrap();
    assert_eq!((first.status, second.status), (200, 200), "{second:#?}");
    assert_ne!(first.text(), second.text(), "both went to one server");
    assert_eq!((a.requests().len(), b.requests().len()), (1, 1));
    assert_eq!((a.peak_in_flight(), b.peak_in_flight()), (1, 1));
}

// --- DNS ---

fn via_dns(dns: &MockDns, server: &str) -> Config {
    Config::proxy_to([server])
        .dns("nameservers", vec![dns.addr().to_string()])
        .dns("timeout", "1s")
}

#[test]
fn a_name_with_two_records_is_two_servers_and_a_redeploy_is_followed_without_reload() {
    let two = Upstream::start_on(
        (Ipv4Addr::new(127, 0, 0, 2), 0).into(),
        Behavior::Serve(Reply::ok("two")),
    );
    let port = two.addr().port();
    let three = Upstream::start_on(
        (Ipv4Addr::new(127, 0, 0, 3), port).into(),
        Behavior::Serve(Reply::ok("three")),
    );
    let dns = MockDns::start(DnsAnswer::v4(
        [Ipv4Addr::new(127, 0, 0, 2), Ipv4Addr::new(127, 0, 0, 3)],
        1,
    ));
    let gh = start(
        via_dns(&dns, &format!("backend.test:{port}")).upstream_setting(
            "app",
            "resolve_interval",
            "1s",
        ),
    );
    for _ in 0..20 {
        assert_eq!(get(&gh).status, 200);
    }
    assert!(
        !two.requests().is_empty() && !three.requests().is_empty(),
        "two {}, three {}",
        two.requests().len(),
        three.requests().len()
    );

    dns.set_answer(DnsAnswer::v4([Ipv4Addr::new(127, 0, 0, 3)], 1));
    let switched = Instant::now();
    let mut in_a_row = 0;
    while in_a_row < 10 {
        assert!(
            switched.elapsed() < Duration::from_secs(10),
            "still sending to 127.0.0.2 after 10 s; dns queries: {}",
            dns.queries()
        );
        let resp = get(&gh);
        assert_eq!(resp.status, 200, "{resp:#?}");
        in_a_row = if resp.text() == "three" {
            in_a_row + 1
        } else {
            0
        };
        std::thread::sleep(Duration::from_millis(50));
    }
    let on_two = two.requests().len();
    for _ in 0..20 {
        let resp = get(&gh);
        assert_eq!((resp.status, resp.text().as_str()), (200, "three"));
    }
    assert_eq!(two.requests().len(), on_two);
}

#[test]
fn a_name_resolving_to_a_denied_address_is_destination_ip_prohibited() {
    let upstream = Upstream::start_on(
        (Ipv4Addr::new(127, 0, 0, 2), 0).into(),
        Behavior::Serve(Reply::ok("never")),
    );
    let dns = MockDns::start(DnsAnswer::v4([Ipv4Addr::new(127, 0, 0, 2)], 30));
    let gh = start(
        via_dns(&dns, &format!("backend.test:{}", upstream.addr().port())).upstream_setting(
            "app",
            "deny_addresses",
            vec!["127.0.0.2/32"],
        ),
    );
    let resp = get(&gh);
    gh.expect_failure(&resp, 502, "destination_ip_prohibited");
    assert_eq!(upstream.connections(), 0);
}

#[test]
fn a_denied_literal_address_is_destination_ip_prohibited() {
    let upstream = Upstream::start_on(
        (Ipv4Addr::new(127, 0, 0, 2), 0).into(),
        Behavior::Serve(Reply::ok("never")),
    );
    let gh = start(Config::proxy_to([upstream.addr()]).upstream_setting(
        "app",
        "deny_addresses",
        vec!["127.0.0.2/32"],
    ));
    let resp = get(&gh);
    gh.expect_failure(&resp, 502, "destination_ip_prohibited");
    assert_eq!(upstream.connections(), 0);
}

#[test]
fn a_server_that_accepts_but_never_answers_costs_one_request_not_five() {
    let hanging = Upstream::start(Behavior::Hang);
    let healthy = named("healthy");
    // Default passive health; round robin sends every other request to the hanging server
    // until it is ejected (with `consecutive_timeouts = 0`, 4 of these 8 reach it).
    let gh = start(
        Config::proxy_to([hanging.addr(), healthy.addr()]).upstream_setting(
            "app",
            "response_timeout",
            "300ms",
        ),
    );
    for _ in 0..8 {
        let resp = get(&gh);
        // A GET that timed out without a response byte goes to the other server.
        assert_eq!(resp.status, 200, "{resp:#?}");
    }
    assert_eq!(
        hanging.requests().len(),
        1,
        "one timeout ejected the hanging server"
    );
}
