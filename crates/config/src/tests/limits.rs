//! `[limits]` and `[route.limit]`: keys read into the model, defaults, and each error at its line.

use super::*;

const ROUTE: &str = "[[route]]\nupstream = \"api\"\n";
const UPSTREAM: &str = "[upstream.api]\nservers = [\"127.0.0.1:3000\"]\n";

#[test]
fn defaults_limit_nothing_and_keep_counters_in_memory() {
    let c = ok(TAIL).config;
    assert_eq!(c.limits.store, LimitStore::Memory);
    assert_eq!(c.limits.timeout, Duration::from_millis(50));
    assert_eq!(c.limits.fail, LimitFail::Open);
    assert_eq!(c.limits.max_keys, 100_000);
    assert_eq!(c.routes[0].limit, None);
}

#[test]
fn every_limit_key_is_read() {
    let c = ok(&format!(
        "[limits]\nstore = \"redis://:pw@127.0.0.1:6380/3\"\ntimeout = \"20ms\"\nfail = \"closed\"\nmax_keys = 5000\n\
         {ROUTE}[route.limit]\nrate = 100\nperiod = \"1m\"\nburst = 20\nkey = \"header:X-Api-Key\"\nmax_concurrent = 4\n{UPSTREAM}"
    ))
    .config;
    let LimitStore::Redis(redis) = &c.limits.store else {
        panic!("{:?}", c.limits.store)
    };
    assert_eq!((redis.port, redis.db), (6380, 3));
    assert_eq!(redis.password.as_deref(), Some("pw"));
    assert_eq!(c.limits.timeout, Duration::from_millis(20));
    assert_eq!(c.limits.fail, LimitFail::Closed);
    assert_eq!(c.limits.max_keys, 5000);
    assert_eq!(
        c.routes[0].limit,
        Some(RouteLimit {
            rate: Some(RateLimit {
                requests: 100,
                period: Duration::from_secs(60),
                burst: 20,
            }),
            key: LimitKey::Header("x-api-key".into()),
            max_concurrent: Some(4),
        })
    );
}

#[test]
fn burst_defaults_to_the_rate_and_period_to_a_second() {
    let c = ok(&format!("{ROUTE}[route.limit]\nrate = 7\n{UPSTREAM}")).config;
    let limit = c.routes[0]
        .limit
        .clone()
        .unwrap_or_else(|| panic!("no limit"));
    assert_eq!(
        limit.rate,
        Some(RateLimit {
            requests: 7,
            period: Duration::from_secs(1),
            burst: 7
        })
    );
    assert_eq!(limit.key, LimitKey::Client);
    assert_eq!(limit.max_concurrent, None);
}

#[test]
fn bad_limit_values_are_errors_at_their_line() {
    let d = one_error(&format!("{ROUTE}[route.limit]\nrate = 0\n{UPSTREAM}"));
    at(
        &d,
        4,
        8,
        "route[0].limit.rate",
        "0 would refuse every request",
    );
    let d = one_error(&format!(
        "{ROUTE}[route.limit]\nrate = 5\nburst = 0\n{UPSTREAM}"
    ));
    at(
        &d,
        5,
        9,
        "route[0].limit.burst",
        "0 would refuse every request",
    );
    let d = one_error(&format!(
        "{ROUTE}[route.limit]\nrate = 5\nkey = \"query:k\"\n{UPSTREAM}"
    ));
    at(&d, 5, 7, "route[0].limit.key", "is not a key source");
    let d = one_error(&format!(
        "{ROUTE}[route.limit]\nrate = 5\nperiod = \"0s\"\n{UPSTREAM}"
    ));
    at(&d, 5, 10, "route[0].limit.period", "is zero");
    let d = one_error(&format!(
        "{ROUTE}[route.limit]\nkey = \"client\"\n{UPSTREAM}"
    ));
    at(
        &d,
        3,
        1,
        "route[0].limit",
        "neither rate nor max_concurrent",
    );
    let d = one_error(&format!("[limits]\nstore = \"redis://cache:port\"\n{TAIL}"));
    at(&d, 2, 9, "limits.store", "is not a port number");
    let d = one_error(&format!("[limits]\nstore = \"mysql://db\"\n{TAIL}"));
    at(
        &d,
        2,
        9,
        "limits.store",
        "neither \"memory\" nor a redis:// URL",
    );
    let d = one_error(&format!("[limits]\nfail = \"maybe\"\n{TAIL}"));
    at(
        &d,
        2,
        8,
        "limits.fail",
        "is not one of \"open\", \"closed\"",
    );
    let d = one_error(&format!(
        "{ROUTE}[route.limit]\nrate = 5\nwindow = 3\n{UPSTREAM}"
    ));
    at(&d, 5, 1, "route[0].limit.window", "unknown key");
}

#[test]
fn client_data_rates_are_on_by_default() {
    // Kestrel's defaults: 240 B/s both ways after a 5 s grace; nginx's send_timeout.
    let server = ok(TAIL).config.server;
    assert_eq!(server.min_request_body_rate, 240);
    assert_eq!(server.min_response_rate, 240);
    assert_eq!(server.min_rate_grace, Duration::from_secs(5));
    assert_eq!(server.client_write_timeout, Duration::from_secs(60));
    let off = ok(&format!("[server]\nmin_response_rate = 0\n{TAIL}"))
        .config
        .server;
    assert_eq!(off.min_response_rate, 0);
}
