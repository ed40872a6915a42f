//! Tests of the soak report: classification and the growth checks.

use super::*;

fn outcome(kind: &str, start: u64, end: u64, status: u16) -> Outcome {
    Outcome {
        kind: kind.into(),
        id: "x".into(),
        start,
        end,
        status,
        result: "reset".into(),
        backend: "127.0.0.1:1".into(),
        detail: String::new(),
    }
}

fn access(failure: &str, aborted: bool) -> Access {
    Access {
        status: 502,
        failure: failure.into(),
        attempts: 1,
        upstream: "127.0.0.1:1".into(),
        upstream_aborted: aborted,
        client_aborted: false,
        bytes: 0,
        total_ms: 1.0,
    }
}

#[test]
fn the_table_has_a_row_for_every_kind_the_load_makes() {
    for (kind, _) in crate::load::ACTORS {
        assert!(LOAD_KINDS.contains(kind), "{kind}");
    }
    assert_eq!(LOAD_KINDS.len(), crate::load::ACTORS.len());
}

#[test]
fn access_fields() {
    let line = r#"{"time":"2026-01-01T00:00:00.000Z","client":"127.0.0.1","method":"POST","path":"/upload?id=upload-1-7","protocol":"HTTP/1.1","status":502,"bytes":0,"referer":null,"user_agent":null,"route":"*/","upstream":"app/127.0.0.1:1","upstream_status":null,"failure":"connection_terminated","attempts":1,"connect_ms":0.1,"first_byte_ms":null,"total_ms":3.5,"client_aborted":false,"request_id":"r","cache":null,"upstream_aborted":false}"#;
    let by_id = parse_access(line);
    let a = &by_id["upload-1-7"];
    assert_eq!(
        (a.status, a.failure.as_str(), a.attempts),
        (502, "connection_terminated", 1)
    );
    assert_eq!(a.upstream, "127.0.0.1:1");
    assert!(!a.upstream_aborted);
}

#[test]
fn classification() {
    let chaos = parse_chaos("1000 kill 127.0.0.1:1\n");
    let post = outcome("upload", 900, 1100, 502);
    let class = |o: &Outcome, a: &Access| classify(o, Some(a), &chaos).0;
    assert_eq!(
        class(&post, &access("connection_terminated", false)),
        Class::InFlightAtKill
    );
    // Refused means never sent: a retry should have absorbed it.
    assert_eq!(
        class(&post, &access("connection_refused", false)),
        Class::Lost
    );
    // Sent well after the kill: the proxy should have known.
    let late = outcome("upload", 1500, 1600, 502);
    assert_eq!(
        class(&late, &access("connection_terminated", false)),
        Class::Lost
    );
    // An idempotent request is lost unless its response was already under way.
    let get = outcome("ka_get", 900, 1100, 502);
    assert_eq!(
        class(&get, &access("connection_terminated", false)),
        Class::Lost
    );
    assert_eq!(
        class(&get, &access("http_response_incomplete", true)),
        Class::CutByKill
    );
    let ws = outcome("ws", 500, 1200, 101);
    assert_eq!(class(&ws, &access("-", false)), Class::CutByKill);
}

#[test]
fn metrics_are_summed_by_the_label_shown() {
    let sums = metric_sums(
        "# HELP x\ngatehouse_reloads_total{outcome=\"ok\"} 3\ngatehouse_upstream_retries_total{pool=\"a\"} 2\ngatehouse_upstream_retries_total{pool=\"b\"} 5\n",
    );
    assert_eq!(sums["gatehouse_reloads_total{outcome=\"ok\"}"], 3.0);
    assert_eq!(sums["gatehouse_upstream_retries_total"], 7.0);
}
