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
