//! The Redis store against a real `redis-server`: the script's arithmetic, AUTH and SELECT,
//! the EVAL fallback after the server lost its scripts, and a wrong password; plus the
//! reading of the script's replies.

use std::time::Duration;

use super::*;
use gatehouse_config::RedisAddress;
use gatehouse_testkit::RedisServer;

#[test]
fn script_replies_become_verdicts_and_anything_else_is_an_error() {
    let array = |items: Vec<Reply>| Reply::Array(Some(items));
    assert_eq!(
        verdict(&array(vec![Reply::Int(1), Reply::Int(4), Reply::Int(6)])),
        Some(Verdict::Allow {
            remaining: 4,
            reset: 6
        })
    );
    assert_eq!(
        verdict(&array(vec![Reply::Int(0), Reply::Int(2), Reply::Int(9)])),
        Some(Verdict::Deny {
            retry_after: 2,
            reset: 9
        })
    );
    for bad in [
        Reply::Error("ERR".into()),
        array(vec![Reply::Int(1), Reply::Int(4)]),
        array(vec![Reply::Int(2), Reply::Int(4), Reply::Int(6)]),
        array(vec![Reply::Int(1), Reply::Int(-4), Reply::Int(6)]),
        array(vec![Reply::Int(1), Reply::Bulk(None), Reply::Int(6)]),
        Reply::Array(None),
    ] {
        assert_eq!(verdict(&bad), None, "{bad:?}");
    }
}

fn address(redis: &RedisServer, db: u32, password: Option<&str>) -> RedisAddress {
    RedisAddress {
        host: "127.0.0.1".to_owned(),
        port: redis.addr().port(),
        db,
        username: None,
        password: password.map(str::to_owned),
    }
}

/// A store, once connected (within 5 s).
async fn connected(address: RedisAddress) -> RedisStore {
    let store = RedisStore::start(address, Duration::from_secs(1));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !store.health.is_up() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not connected: {:?}",
            store.health.last_error()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    store
}

fn gcra(requests: u32, period: Duration, burst: u32) -> Gcra {
    Gcra::new(&gatehouse_config::RateLimit {
        requests,
        period,
        burst,
    })
}

const TIMEOUT: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_limit_store_script_decides_as_gcra_does_with_auth_and_select() {
    let redis = RedisServer::start_with(Some("s3cret"));
    let store = connected(address(&redis, 3, Some("s3cret"))).await;
    let g = gcra(5, Duration::from_secs(60), 3);
    let mut remaining = Vec::new();
    for _ in 0..3 {
        match store.decide(b"k".to_vec(), g, TIMEOUT).await {
            Ok(Verdict::Allow {
                remaining: r,
                reset,
            }) => {
                assert!(reset <= 3 * g.interval && reset > 0, "{reset}");
                remaining.push(r);
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(remaining, [2, 1, 0]);
    match store.decide(b"k".to_vec(), g, TIMEOUT).await {
        Ok(Verdict::Deny { retry_after, reset }) => {
            // One interval (12 s), less the little time the test took.
            assert!(retry_after <= g.interval && retry_after > g.interval - 2_000_000);
            assert!(reset <= 3 * g.interval && reset > 2 * g.interval);
        }
        other => panic!("{other:?}"),
    }
    // The key lives in db 3 and expires by itself.
    let pttl = |db: &str| {
        let reply = redis
            .command(&[
                "EVAL",
                "redis.call('SELECT', ARGV[1]) return redis.call('PTTL', KEYS[1])",
                "1",
                "k",
                db,
            ])
            .unwrap_or_default();
        reply
            .lines()
            .find_map(|l| l.strip_prefix(':'))
            .and_then(|n| n.parse::<i64>().ok())
            .unwrap_or(-10)
    };
    let ms = pttl("3");
    assert!(ms > 0 && ms <= 36_000, "{ms}");
    assert_eq!(pttl("0"), -2, "no such key in db 0");
    // Another db is another set of counters.
    let other_db = connected(address(&redis, 4, Some("s3cret"))).await;
    assert!(matches!(
        other_db.decide(b"k".to_vec(), g, TIMEOUT).await,
        Ok(Verdict::Allow { remaining: 2, .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_limit_store_runs_the_script_again_after_the_server_lost_it() {
    let redis = RedisServer::start();
    let store = connected(address(&redis, 0, None)).await;
    let g = gcra(1, Duration::from_secs(60), 2);
    assert!(matches!(
        store.decide(b"k".to_vec(), g, TIMEOUT).await,
        Ok(Verdict::Allow { remaining: 1, .. })
    ));
    let flushed = redis.command(&["SCRIPT", "FLUSH"]).unwrap_or_default();
    assert!(flushed.contains("+OK"), "{flushed}");
    // NOSCRIPT, then EVAL: the same counters go on.
    assert!(matches!(
        store.decide(b"k".to_vec(), g, TIMEOUT).await,
        Ok(Verdict::Allow { remaining: 0, .. })
    ));
    assert!(matches!(
        store.decide(b"k".to_vec(), g, TIMEOUT).await,
        Ok(Verdict::Deny { .. })
    ));
    let pttl = redis.command(&["PTTL", "k"]).unwrap_or_default();
    let ms: i64 = pttl.trim().trim_start_matches(':').parse().unwrap_or(-10);
    assert!(ms > 0 && ms <= 120_000, "the key expires by itself: {pttl}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_limit_store_password_is_an_error_not_a_hang() {
    let redis = RedisServer::start_with(Some("right"));
    let store = RedisStore::start(address(&redis, 0, Some("wrong")), Duration::from_secs(1));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while store.health.last_error().is_none() {
        assert!(tokio::time::Instant::now() < deadline, "no error recorded");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (_, error) = store.health.last_error().unwrap_or_else(|| unreachable!());
    assert!(error.contains("AUTH"), "{error}");
    assert!(!store.health.is_up());
    assert_eq!(
        store
            .decide(b"k".to_vec(), gcra(1, Duration::from_secs(1), 1), TIMEOUT)
            .await,
        Err(StoreError::Unreachable)
    );
}
