//! `[upstream.NAME]` pools read into the model: the defaults of every pool key, every key set,
//! the forms a server may take, and the embedded default's pool. Diagnostics of pools are in
//! `pool_diagnostics`.

use std::net::IpAddr;
use std::time::Duration;

use super::{TAIL, ok};
use crate::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn server(host: &str, port: u16) -> ServerAddress {
    ServerAddress {
        host: host.into(),
        port,
        ip: host.parse().ok(),
    }
}

#[test]
fn pool_defaults() {
    let c = ok(TAIL).config;
    assert!(!c.routes[0].retry_non_idempotent);
    let u = &c.upstreams[0];
    assert_eq!(
        u.servers,
        vec![UpstreamServer {
            address: server("127.0.0.1", 3000),
            weight: 1,
            max_connections: None,
            backup: false,
            tls: false,
        }]
    );
    assert_eq!(u.balance, Balance::RoundRobin);
    assert_eq!(u.max_connections, None);
    assert_eq!(u.queue_size, 100);
    assert_eq!(u.queue_timeout, Duration::from_secs(5));
    assert_eq!(u.resolve_interval, Duration::from_secs(30));
    assert_eq!(u.deny_addresses, vec![]);
    assert_eq!(u.health, None);
    assert_eq!(
        u.passive,
        PassiveHealth {
            consecutive_failures: 5,
            consecutive_timeouts: 1,
            ejection: Duration::from_secs(10),
            max_ejection: Duration::from_secs(300),
            max_ejected_percent: 50,
        }
    );
    assert_eq!(
        u.retry,
        RetryPolicy {
            attempts: 3,
            deadline: Duration::from_secs(60),
            budget: 0.2,
            min_retries_per_second: 10,
        }
    );
}

#[test]
fn health_defaults() {
    // An empty table turns active checks on with every default: a TCP connect every 5s.
    let loaded = ok(&format!("{TAIL}[upstream.api.health]\n"));
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert_eq!(
        loaded.config.upstreams[0].health,
        Some(HealthCheck {
            path: None,
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(2),
            unhealthy_threshold: 2,
            healthy_threshold: 2,
            expect_status: vec![StatusRange {
                low: 200,
                high: 399
            }],
            host: None,
        })
    );
    // Empty passive and retry tables are the same as leaving them out.
    let empty = ok(&format!(
        "{TAIL}[upstream.api.passive]\n[upstream.api.retry]\n"
    ))
    .config;
    assert_eq!(empty.upstreams, ok(TAIL).config.upstreams);
}

#[test]
fn every_pool_key_is_read() {
    let text = r#"
[[route]]
path = "/api"
upstream = "api"
retry_non_idempotent = true

[upstream.api]
servers = ["127.0.0.1:3000", { address = "App.Internal:3000", weight = 3, max_connections = 100, backup = true }]
balance = "hash"
hash_key = "header:X-User"
max_connections = 20
queue_size = 0
queue_timeout = "250ms"
resolve_interval = "1s"
deny_addresses = ["169.254.0.0/16", "fd00::/8", "10.1.2.3", "::1"]

[upstream.api.health]
path = "/ping?deep=1"
interval = "10s"
timeout = "1s"
unhealthy_threshold = 3
healthy_threshold = 1
expect_status = "200,204, 300-399"
host = "api.internal:8080"

[upstream.api.passive]
consecutive_failures = 0
ejection = "30s"
max_ejection = "30s"
max_ejected_percent = 100

[upstream.api.retry]
attempts = 10
deadline = "2m"
budget = 0.5
min_retries_per_second = 0
"#;
    let loaded = ok(text);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let c = loaded.config;
    assert!(c.routes[0].retry_non_idempotent);
    let u = &c.upstreams[0];
    assert_eq!(
        u.servers,
        vec![
            UpstreamServer {
                address: server("127.0.0.1", 3000),
                weight: 1,
                max_connections: None,
                backup: false,
                tls: false,
            },
            UpstreamServer {
                address: server("app.internal", 3000),
                weight: 3,
                max_connections: Some(100),
                backup: true,
                tls: false,
            },
        ]
    );
    assert_eq!(
        u.balance,
        Balance::Hash(HashKey::Header("x-user".into())),
        "header names are lowercased"
    );
    assert_eq!(u.max_connections, Some(20));
    assert_eq!(u.queue_size, 0);
    assert_eq!(u.queue_timeout, Duration::from_millis(250));
    assert_eq!(u.resolve_interval, Duration::from_secs(1));
    assert_eq!(
        u.deny_addresses,
        vec![
            IpNet {
                addr: ip("169.254.0.0"),
                prefix: 16
            },
            IpNet {
                addr: ip("fd00::"),
                prefix: 8
            },
            IpNet {
                addr: ip("10.1.2.3"),
                prefix: 32
            },
            IpNet {
                addr: ip("::1"),
                prefix: 128
            },
        ]
    );
    assert_eq!(
        u.health,
        Some(HealthCheck {
            path: Some("/ping?deep=1".into()),
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(1),
            unhealthy_threshold: 3,
            healthy_threshold: 1,
            expect_status: vec![
                StatusRange {
                    low: 200,
                    high: 200
                },
                StatusRange {
                    low: 204,
                    high: 204
                },
                StatusRange {
                    low: 300,
                    high: 399
                },
            ],
            host: Some("api.internal:8080".into()),
        })
    );
    assert_eq!(
        u.passive,
        PassiveHealth {
            consecutive_failures: 0,
            consecutive_timeouts: 1,
            ejection: Duration::from_secs(30),
            max_ejection: Duration::from_secs(30),
            max_ejected_percent: 100,
        }
    );
    assert_eq!(
        u.retry,
        RetryPolicy {
            attempts: 10,
            deadline: Duration::from_secs(120),
            budget: 0.5,
            min_retries_per_second: 0,
        }
    );
}

#[test]
fn balance_policies() {
    let balance = |extra: &str| {
        ok(&format!("{TAIL}{extra}\n")).config.upstreams[0]
            .balance
            .clone()
    };
    assert_eq!(
        balance("balance = \"least_requests\""),
        Balance::LeastRequests
    );
    assert_eq!(balance("balance = \"round_robin\""), Balance::RoundRobin);
    assert_eq!(
        balance("balance = \"hash\""),
        Balance::Hash(HashKey::ClientIp)
    );
    assert_eq!(
        balance("balance = \"hash\"\nhash_key = \"client_ip\""),
        Balance::Hash(HashKey::ClientIp)
    );
    assert_eq!(
        balance("balance = \"hash\"\nhash_key = \"cookie:Session\""),
        Balance::Hash(HashKey::Cookie("Session".into()))
    );
}

#[test]
fn servers_as_an_array_of_tables() {
    let text = "[[route]]\nupstream = \"api\"\n\
                [[upstream.api.servers]]\naddress = \"10.0.0.1:80\"\nweight = 1000\n\
                [[upstream.api.servers]]\naddress = \"[::1]:80\"\nbackup = false\n";
    let u = &ok(text).config.upstreams[0];
    assert_eq!(u.servers.len(), 2);
    assert_eq!(u.servers[0].weight, 1000);
    assert_eq!(u.servers[1].address.authority(), "[::1]:80");
    assert!(!u.servers[1].backup);
}

#[test]
fn zero_means_unlimited_for_the_upstream() {
    let u = &ok(&format!("{TAIL}max_connections = 0\n")).config.upstreams[0];
    assert_eq!(u.max_connections, None);
}

#[test]
fn budget_accepts_the_integers_zero_and_one() {
    for (written, budget) in [("0", 0.0), ("1", 1.0), ("0.0", 0.0), ("1.0", 1.0)] {
        let text = format!("{TAIL}[upstream.api.retry]\nbudget = {written}\n");
        assert_eq!(
            ok(&text).config.upstreams[0].retry.budget,
            budget,
            "{written}"
        );
    }
}

#[test]
fn long_ejection_raises_the_default_cap() {
    // With max_ejection left out, the cap is 5m or `ejection`, whichever is longer: no error.
    let text = format!("{TAIL}[upstream.api.passive]\nejection = \"10m\"\n");
    let loaded = ok(&text);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let p = &loaded.config.upstreams[0].passive;
    assert_eq!(p.ejection, Duration::from_secs(600));
    assert_eq!(p.max_ejection, Duration::from_secs(600));
}

#[test]
fn host_bits_are_masked_off() {
    let loaded = ok(&format!(
        "{TAIL}deny_addresses = [\"10.1.2.3/8\", \"fd12::1/8\"]\n"
    ));
    let nets: Vec<String> = loaded.config.upstreams[0]
        .deny_addresses
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(nets, ["10.0.0.0/8", "fd00::/8"]);
    assert_eq!(loaded.warnings.len(), 2, "{:#?}", loaded.warnings);
}

#[test]
fn a_denied_name_is_not_checked_until_resolved() {
    // Only literal IPs can be checked at load time; a DNS name is checked by the proxy.
    let loaded = ok(
        "[[route]]\nupstream = \"api\"\n[upstream.api]\nservers = [\"app.internal:3000\"]\ndeny_addresses = [\"0.0.0.0/0\"]\n",
    );
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}

#[test]
fn documented_example_parses_without_warnings() {
    // docs/configuration.md's complete example must stay valid as the code changes.
    const DOC: &str = include_str!("../../../../docs/configuration.md");
    let example = DOC
        .split("## Complete example")
        .nth(1)
        .and_then(|rest| rest.split("```toml\n").nth(1))
        .and_then(|block| block.split("```").next());
    let Some(example) = example else {
        panic!("docs/configuration.md has no \"## Complete example\" with a toml block")
    };
    let loaded = ok(example);
    assert!(loaded.warnings.is_empty(), "{:#?}", loaded.warnings);
    let c = loaded.config;
    let names: Vec<_> = c.upstreams.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(names, ["api", "web"]);
    assert_eq!(c.upstreams[0].servers.len(), 3);
    assert!(c.upstreams[0].health.is_some());
    assert_eq!(
        c.upstreams[1].balance,
        Balance::Hash(HashKey::Cookie("session".into()))
    );
}
