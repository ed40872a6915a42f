//! Tests of the metrics registry: what requests and failures add to the exposition.

use super::*;

#[test]
fn counts_requests_and_upstream_failures_by_their_labels() {
    let metrics = Metrics::new();
    let outcome = |status, failure| RequestOutcome {
        route: Some("/api"),
        pool: Some("api"),
        status,
        failure,
        total: Duration::from_millis(20),
        connect: Some(Duration::from_millis(1)),
        first_byte: Some(Duration::from_millis(15)),
    };
    metrics.request(&outcome(http::StatusCode::OK, None));
    metrics.request(&outcome(http::StatusCode::OK, None));
    metrics.request(&outcome(
        http::StatusCode::BAD_GATEWAY,
        Some("connection_refused"),
    ));
    metrics.upstream_failure("api", "api/127.0.0.1:1", FailureKind::ConnectionRefused);
    metrics.reload(false);
    let text = metrics.encode();
    for expected in [
        "# TYPE gatehouse_requests_total counter",
        r#"gatehouse_requests_total{failure="",route="/api",status="200"} 2"#,
        r#"gatehouse_requests_total{failure="connection_refused",route="/api",status="502"} 1"#,
        r#"gatehouse_upstream_failures_total{kind="connection_refused",pool="api",server="api/127.0.0.1:1"} 1"#,
        r#"gatehouse_request_duration_seconds_count{route="/api"} 3"#,
        r#"gatehouse_upstream_connect_duration_seconds_bucket{pool="api",le="0.001"} 3"#,
        r#"gatehouse_reloads_total{outcome="refused"} 1"#,
        r#"gatehouse_reloads_total{outcome="ok"} 0"#,
        "gatehouse_config_last_reload_successful 0",
    ] {
        assert!(text.contains(expected), "{expected} missing from:\n{text}");
    }
}

/// The children kept per thread (`last_child`) count for the right labels and the right
/// `Metrics`: routes, statuses and pools that alternate, and two registries on one thread.
#[test]
fn requests_in_any_order_count_for_their_own_labels_and_registry() {
    let first = Metrics::new();
    let second = Metrics::new();
    let outcome = |route, pool, status| RequestOutcome {
        route: Some(route),
        pool: Some(pool),
        status,
        failure: None,
        total: Duration::from_millis(20),
        connect: None,
        first_byte: Some(Duration::from_millis(15)),
    };
    let ok = http::StatusCode::OK;
    let not_found = http::StatusCode::NOT_FOUND;
    for _ in 0..3 {
        first.request(&outcome("/a", "pa", ok));
        first.request(&outcome("/a", "pa", ok));
        second.request(&outcome("/a", "pa", ok));
        first.request(&outcome("/b", "pb", ok));
        first.request(&outcome("/a", "pa", not_found));
        first.request(&outcome("/b", "pa", ok));
    }
    let text = first.encode();
    for expected in [
        r#"gatehouse_requests_total{failure="",route="/a",status="200"} 6"#,
        r#"gatehouse_requests_total{failure="",route="/a",status="404"} 3"#,
        r#"gatehouse_requests_total{failure="",route="/b",status="200"} 6"#,
        r#"gatehouse_request_duration_seconds_count{route="/a"} 9"#,
        r#"gatehouse_request_duration_seconds_count{route="/b"} 6"#,
        r#"gatehouse_upstream_first_byte_duration_seconds_count{pool="pa"} 12"#,
        r#"gatehouse_upstream_first_byte_duration_seconds_count{pool="pb"} 3"#,
    ] {
        assert!(text.contains(expected), "{expected} missing from:\n{text}");
    }
    let text = second.encode();
    for expected in [
        r#"gatehouse_requests_total{failure="",route="/a",status="200"} 3"#,
        r#"gatehouse_request_duration_seconds_count{route="/a"} 3"#,
        r#"gatehouse_upstream_first_byte_duration_seconds_count{pool="pa"} 3"#,
    ] {
        assert!(text.contains(expected), "{expected} missing from:\n{text}");
    }
    // Requests on another thread count in the same registry.
    std::thread::scope(|scope| {
        scope.spawn(|| second.request(&outcome("/a", "pa", ok)));
    });
    assert!(
        second
            .encode()
            .contains(r#"gatehouse_requests_total{failure="",route="/a",status="200"} 4"#)
    );
}
