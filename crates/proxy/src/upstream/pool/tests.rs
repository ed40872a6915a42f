//! The pool's choices: balancing, ejection, the wait queue and the failure when no server
//! is usable.

use std::time::Duration;

use super::*;

fn pool(upstream_toml: &str) -> Pool {
    let text = format!("[[route]]\nupstream = \"app\"\n[upstream.app]\n{upstream_toml}\n");
    let loaded =
        gatehouse_config::parse("test.toml", &text).unwrap_or_else(|e| panic!("config: {e:?}"));
    let config = loaded
        .config
        .upstreams
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no upstream"));
    Pool::new(
        &config,
        Arc::new(StateRegistry::default()),
        Arc::new(Observer::default()),
    )
}

fn port(lease: &Lease) -> u16 {
    lease.server.addr.port()
}

#[tokio::test]
async fn backups_serve_only_when_no_primary_is_available() {
    let pool = pool(r#"servers = ["127.0.0.1:1", { address = "127.0.0.1:2", backup = true }]"#);
    let members = pool.members();
    for _ in 0..5 {
        let lease = pool.acquire(&members, None, &[]).await;
        assert_eq!(lease.as_ref().map(port).ok(), Some(1));
    }
    members.primaries.servers[0].state.observe_check(
        super::super::health::CheckResult::Fail("status 500".into()),
        1,
        1,
    );
    let lease = pool.acquire(&members, None, &[]).await;
    assert_eq!(lease.as_ref().map(port).ok(), Some(2));
}

#[tokio::test]
async fn a_queued_request_takes_a_server_that_health_checks_put_back() {
    use super::super::health::CheckResult;
    let pool = Arc::new(pool(
        r#"servers = [{ address = "127.0.0.1:1", max_connections = 1 }, { address = "127.0.0.1:2", max_connections = 1 }]
queue_size = 4
queue_timeout = "10s""#,
    ));
    let members = pool.members();
    let second = Arc::clone(&members.primaries.servers[1]);
    second
        .state
        .observe_check(CheckResult::Fail("connection_refused".into()), 1, 1);
    let busy = pool.acquire(&members, None, &[]).await;
    assert_eq!(busy.as_ref().map(port).ok(), Some(1));
    let waiting = tokio::spawn({
        let (pool, members) = (Arc::clone(&pool), Arc::clone(&members));
        async move { pool.acquire(&members, None, &[]).await.map(|l| port(&l)) }
    });
    while pool.queue.waiting() == 0 {
        tokio::task::yield_now().await;
    }
    // :2 comes back while :1 stays busy; the queued request must not wait for :1.
    second.state.observe_check(CheckResult::Pass, 1, 1);
    pool.wake_queued();
    let got = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .unwrap_or_else(|_| panic!("the queued request was not woken"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got.ok(), Some(2));
    drop(busy);
}

#[tokio::test]
async fn a_retry_never_gets_a_server_it_tried() {
    let pool = pool(r#"servers = ["127.0.0.1:1", "127.0.0.1:2"]"#);
    let members = pool.members();
    let tried = [SocketAddr::from(([127, 0, 0, 1], 1))];
    for _ in 0..5 {
        let lease = pool.acquire(&members, None, &tried).await;
        assert_eq!(lease.as_ref().map(port).ok(), Some(2));
    }
    let both = [tried[0], SocketAddr::from(([127, 0, 0, 1], 2))];
    assert!(matches!(
        pool.acquire(&members, None, &both).await,
        Err(NoServer::AllTried)
    ));
}

#[tokio::test]
async fn every_server_out_is_destination_unavailable_with_reasons() {
    let pool = pool(r#"servers = ["127.0.0.1:1", "127.0.0.1:2"]"#);
    let members = pool.members();
    for server in members.all() {
        server.state.observe_check(
            super::super::health::CheckResult::Fail("status 500".into()),
            1,
            1,
        );
    }
    let Err(NoServer::Failure(failure, _)) = pool.acquire(&members, None, &[]).await else {
        panic!("expected a failure");
    };
    assert_eq!(failure.kind, FailureKind::DestinationUnavailable);
    assert!(
        failure
            .details
            .contains("app/127.0.0.1:1 failing health checks (status 500)"),
        "{}",
        failure.details
    );
    assert!(
        failure.details.contains("app/127.0.0.1:2"),
        "{}",
        failure.details
    );
    let note = failure.note.as_deref().unwrap_or_default();
    assert!(
        note.contains("All 2 servers") && note.contains("status 500"),
        "{note}"
    );
    assert!(
        !note.contains("127.0.0.1"),
        "the public note names no address: {note}"
    );
}

#[tokio::test]
async fn a_denied_literal_is_unusable_with_destination_ip_prohibited() {
    let pool = pool(
        r#"servers = ["169.254.169.254:80"]
deny_addresses = ["169.254.0.0/16"]"#,
    );
    let members = pool.members();
    assert!(members.is_empty());
    let Err(NoServer::Failure(failure, next_hop)) = pool.acquire(&members, None, &[]).await else {
        panic!("expected a failure");
    };
    assert_eq!(failure.kind, FailureKind::DestinationIpProhibited);
    assert_eq!(next_hop.as_deref(), Some("app/169.254.169.254:80"));
}

/// Two servers, either ejected by its first failure, up to all of them.
const EJECT_ANY_AT_FIRST_FAILURE: &str = r#"servers = ["127.0.0.1:1", "127.0.0.1:2"]
[upstream.app.passive]
consecutive_failures = 1
max_ejected_percent = 100"#;

#[tokio::test]
async fn passive_ejection_never_takes_the_last_servers() {
    let pool = pool(EJECT_ANY_AT_FIRST_FAILURE);
    let members = pool.members();
    let [first, second] = [&members.primaries.servers[0], &members.primaries.servers[1]];
    pool.record_outcome(&members, first, Some(FailureKind::ConnectionRefused));
    assert!(!first.state.is_available(Instant::now()));
    for _ in 0..3 {
        pool.record_outcome(&members, second, Some(FailureKind::ConnectionRefused));
    }
    assert!(
        second.state.is_available(Instant::now()),
        "even at 100% one server always stays in"
    );
    // A server down by active checks counts as out: its partner is the last one left.
    let pool = self::pool(EJECT_ANY_AT_FIRST_FAILURE);
    let members = pool.members();
    let [first, second] = [&members.primaries.servers[0], &members.primaries.servers[1]];
    first.state.observe_check(
        super::super::health::CheckResult::Fail("status 500".into()),
        1,
        1,
    );
    pool.record_outcome(&members, second, Some(FailureKind::ConnectionRefused));
    assert!(second.state.is_available(Instant::now()));
    // Failures that are not the server's fault never count.
    let pool = self::pool(
        r#"servers = ["127.0.0.1:1", "127.0.0.1:2"]
[upstream.app.passive]
consecutive_failures = 1"#,
    );
    let members = pool.members();
    let first = &members.primaries.servers[0];
    pool.record_outcome(
        &members,
        first,
        Some(FailureKind::HttpResponseHeaderSectionSize),
    );
    assert!(first.state.is_available(Instant::now()));
}

#[tokio::test(start_paused = true)]
async fn a_full_server_queues_then_gives_connection_limit_reached() {
    let pool = pool(
        r#"servers = ["127.0.0.1:1"]
max_connections = 1
queue_size = 1
queue_timeout = "1s""#,
    );
    let pool = Arc::new(pool);
    let members = pool.members();
    let held = pool
        .acquire(&members, None, &[])
        .await
        .unwrap_or_else(|_| panic!("first"));
    // A second request waits in the queue and gets the slot when it is freed.
    let waiter = {
        let (pool, members) = (Arc::clone(&pool), Arc::clone(&members));
        tokio::spawn(async move { pool.acquire(&members, None, &[]).await.is_ok() })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The queue (size 1) is taken: a third is refused at once.
    let Err(NoServer::Failure(failure, _)) = pool.acquire(&members, None, &[]).await else {
        panic!("expected connection_limit_reached");
    };
    assert_eq!(failure.kind, FailureKind::ConnectionLimitReached);
    assert!(
        failure.details.contains("wait queue is full"),
        "{}",
        failure.details
    );
    drop(held);
    assert!(
        waiter.await.unwrap_or(false),
        "the queued request got the freed slot"
    );
    // Nobody frees the slot now: the queued request times out.
    let _held = pool
        .acquire(&members, None, &[])
        .await
        .unwrap_or_else(|_| panic!("again"));
    let started = Instant::now();
    let Err(NoServer::Failure(failure, _)) = pool.acquire(&members, None, &[]).await else {
        panic!("expected a timeout");
    };
    assert_eq!(failure.kind, FailureKind::ConnectionLimitReached);
    assert_eq!(started.elapsed(), Duration::from_secs(1));
}

#[tokio::test]
async fn a_full_server_sends_the_request_to_one_with_room() {
    let pool = pool(
        r#"servers = ["127.0.0.1:1", "127.0.0.1:2"]
max_connections = 1
queue_size = 0"#,
    );
    let members = pool.members();
    let a = pool
        .acquire(&members, None, &[])
        .await
        .unwrap_or_else(|_| panic!("a"));
    let b = pool
        .acquire(&members, None, &[])
        .await
        .unwrap_or_else(|_| panic!("b"));
    assert_ne!(port(&a), port(&b));
    assert!(matches!(
        pool.acquire(&members, None, &[]).await,
        Err(NoServer::Failure(ref f, _)) if f.kind == FailureKind::ConnectionLimitReached
    ));
}
