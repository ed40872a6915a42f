//! `/metrics` counts what happened: requests driven through healthy and broken upstreams (each
//! broken in its own way) are scraped back from the admin listener, and every counter equals
//! what was sent, by route, status and failure kind, and by pool and server for the upstream
//! failures and retries.

use std::net::SocketAddr;
use std::path::Path;

use gatehouse_testkit::metrics::{Sample, parse_samples, sum};
use gatehouse_testkit::{Behavior, Config, Gatehouse, Reply, Req, Upstream};

/// A port where connections are refused for the whole test (see the testkit's).
fn closed_port() -> SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], gatehouse_testkit::closed_port()))
}

/// The sum of the series `name` with these labels; 0 when absent (never incremented).
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    sum(samples, name, labels).0
}

fn send(gh: &Gatehouse, path: &str, times: usize, status: u16) {
    for _ in 0..times {
        let response = Req::get(path).send(gh.addr());
        assert_eq!(
            (response.status, response.complete),
            (status, true),
            "GET {path}: {response:#?}"
        );
    }
}

#[test]
fn scraped_counters_equal_the_requests_sent_by_route_status_and_kind() {
    let ok = Upstream::serve(Reply::ok("ok"));
    let hang = Upstream::start(Behavior::Hang);
    let garbage = Upstream::start(Behavior::RawThenClose(b"SSH-2.0-OpenSSH_9.2\r\n".to_vec()));
    let origin_503 = Upstream::serve(Reply::new(503, "down for maintenance"));
    let refused = closed_port();
    let mixed_dead = closed_port();
    let mixed_live = Upstream::serve(Reply::ok("live"));

    let config = Config::new()
        .server("admin", "127.0.0.1:0")
        .server("access_log", false)
        .upstream("ok", [ok.addr()])
        .route(None, "/ok", "ok")
        .upstream("refused", [refused])
        .route(None, "/refused", "refused")
        .upstream("slow", [hang.addr()])
        .upstream_setting("slow", "response_timeout", "300ms")
        .route(None, "/slow", "slow")
        .upstream("garbage", [garbage.addr()])
        .route(None, "/garbage", "garbage")
        .upstream("origin", [origin_503.addr()])
        .route(None, "/origin", "origin")
        .upstream("mixed", [mixed_dead, mixed_live.addr()])
        .passive("mixed", "consecutive_failures", 0)
        .retry("mixed", "attempts", 2)
        .route(None, "/mixed", "mixed");
    let gh = Gatehouse::start(Path::new(env!("CARGO_BIN_EXE_gatehouse")), &config.toml());
    let admin = gh.admin_addr();

    send(&gh, "/ok", 5, 200);
    send(&gh, "/refused", 3, 502);
    send(&gh, "/slow", 2, 504);
    send(&gh, "/garbage", 2, 502);
    send(&gh, "/origin", 2, 503);
    send(&gh, "/mixed", 6, 200);
    send(&gh, "/nowhere", 1, 404);

    let scrape = Req::get("/metrics").send(admin);
    assert_eq!(scrape.status, 200, "{scrape:#?}");
    let text = scrape.text();
    let scrape = parse_samples(&text);
    let requests = |route: &str, status: &str, failure: &str| {
        value(
            &scrape,
            "gatehouse_requests_total",
            &[("failure", failure), ("route", route), ("status", status)],
        )
    };
    assert_eq!(requests("/ok", "200", ""), 5.0, "{text}");
    assert_eq!(
        requests("/refused", "502", "connection_refused"),
        3.0,
        "{text}"
    );
    assert_eq!(
        requests("/slow", "504", "http_response_timeout"),
        2.0,
        "{text}"
    );
    assert_eq!(
        requests("/garbage", "502", "http_protocol_error"),
        2.0,
        "{text}"
    );
    // An origin's own 503 is passed through: counted under its status, with no failure kind.
    assert_eq!(requests("/origin", "503", ""), 2.0, "{text}");
    assert_eq!(requests("/mixed", "200", ""), 6.0, "{text}");
    assert_eq!(requests("-", "404", "destination_not_found"), 1.0, "{text}");
    let all_requests = value(&scrape, "gatehouse_requests_total", &[]);
    assert_eq!(all_requests, 21.0, "nothing else was counted: {text}");

    let failures = |pool: &str, server: SocketAddr, kind: &str| {
        value(
            &scrape,
            "gatehouse_upstream_failures_total",
            &[
                ("kind", kind),
                ("pool", pool),
                ("server", &format!("{pool}/{server}")),
            ],
        )
    };
    assert_eq!(
        failures("refused", refused, "connection_refused"),
        3.0,
        "{text}"
    );
    assert_eq!(
        failures("slow", hang.addr(), "http_response_timeout"),
        2.0,
        "{text}"
    );
    assert_eq!(
        failures("garbage", garbage.addr(), "http_protocol_error"),
        2.0,
        "{text}"
    );
    // Every /mixed request that went to the dead server first was retried on the live one.
    let dead_first = failures("mixed", mixed_dead, "connection_refused");
    let retries = value(
        &scrape,
        "gatehouse_upstream_retries_total",
        &[("pool", "mixed")],
    );
    assert!(
        dead_first >= 1.0,
        "round robin sends some to :dead first: {text}"
    );
    assert_eq!(
        retries, dead_first,
        "one retry per failed first attempt: {text}"
    );
    assert_eq!(
        mixed_live.requests().len() as f64,
        6.0,
        "the live server answered all six"
    );
    let all_failures = value(&scrape, "gatehouse_upstream_failures_total", &[]);
    assert_eq!(all_failures, 7.0 + dead_first, "{text}");

    // Histograms saw every request of their route, and the health gauges the pools.
    assert_eq!(
        value(
            &scrape,
            "gatehouse_request_duration_seconds_count",
            &[("route", "/ok")]
        ),
        5.0,
        "{text}"
    );
    assert_eq!(
        value(
            &scrape,
            "gatehouse_upstream_first_byte_duration_seconds_count",
            &[("pool", "ok")]
        ),
        5.0,
        "{text}"
    );
    assert_eq!(
        value(&scrape, "gatehouse_upstream_servers", &[("pool", "mixed")]),
        2.0,
        "{text}"
    );
    assert!(
        value(&scrape, "gatehouse_connections_total", &[]) >= 21.0,
        "{text}"
    );
}
