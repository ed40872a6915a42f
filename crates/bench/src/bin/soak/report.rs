//! `soak --mode report`: what the run came to. Reads the load's outcomes, gatehouse's JSON
//! access log, the script's chaos log (kills, restarts, reloads) and its RSS / fd samples,
//! classifies every failed request, compares memory and descriptors at the end with the
//! start, prints the figures and exits 1 when a request was lost or RSS or fds grew.
//!
//! A failed request is **lost** (a healthy server could have answered it) unless:
//! - **in flight at a kill**: a non-idempotent request (POST, or a WebSocket handshake, which
//!   is never retried once sent) that had reached its server when that server was SIGKILLed,
//!   and whose access record names a failure after the connection was made (not
//!   `connection_refused` and the like, which a retry on another server must absorb);
//! - **cut by a kill**: a response (or a WebSocket session) already under way, its head sent
//!   to the client, when its server was SIGKILLed: no proxy can retry a response it has
//!   started to forward.

use std::collections::BTreeMap;

use gatehouse_bench::fail;

use crate::PROGRAM;
use crate::report_input::{
    Access, Chaos, Outcome, metric_sums, parse_access, parse_chaos, parse_outcomes, read,
};

/// A kill counts for a request that started at most this long after the `kill` command was
/// issued (the script takes the time just before it; the process needs a moment to die).
const KILL_SLACK_MS: u64 = 20;

/// Failure kinds that say the request never reached a server: a retry must absorb them.
const NEVER_REACHED: &[&str] = &[
    "connection_refused",
    "connection_timeout",
    "destination_unavailable",
    "destination_ip_unroutable",
    "connection_limit_reached",
    "dns_error",
    "dns_timeout",
];

/// The kinds of request the load makes, in the order of the report's table.
const LOAD_KINDS: &[&str] = &[
    "ka_get",
    "new_get",
    "upload",
    "slow_upload",
    "slow_read",
    "big_read",
    "ws",
];

pub(crate) struct Inputs {
    pub(crate) outcomes: String,
    pub(crate) access_log: String,
    pub(crate) chaos: String,
    pub(crate) samples: String,
    pub(crate) metrics: Option<String>,
    pub(crate) rss_tolerance: f64,
    pub(crate) fd_tolerance: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Lost,
    InFlightAtKill,
    CutByKill,
}

/// The kill of `backend` that a request running from `start` to `end` was in flight at: its
/// time and how long after it the request started (negative: before).
fn kill_during(chaos: &Chaos, backend: &str, start: u64, end: u64) -> Option<(u64, i64)> {
    chaos
        .kills
        .iter()
        .find(|(at, addr)| addr == backend && *at <= end && at + KILL_SLACK_MS >= start)
        .map(|(at, _)| (*at, start as i64 - *at as i64))
}

fn is_idempotent(kind: &str) -> bool {
    matches!(kind, "ka_get" | "new_get" | "slow_read" | "big_read")
}

fn classify(o: &Outcome, access: Option<&Access>, chaos: &Chaos) -> (Class, String) {
    let upstream = access.map_or(o.backend.as_str(), |a| a.upstream.as_str());
    let kill = kill_during(chaos, upstream, o.start, o.end)
        .or_else(|| kill_during(chaos, &o.backend, o.start, o.end));
    let when = |(at, offset): (u64, i64)| {
        format!("its server {upstream} was killed at {at} ({offset:+} ms from the request's start)")
    };
    let Some(a) = access else {
        return (Class::Lost, "no access record".into());
    };
    if is_idempotent(&o.kind) {
        return match kill {
            Some(k) if a.upstream_aborted => (
                Class::CutByKill,
                format!("response already under way when {}", when(k)),
            ),
            _ if a.client_aborted && o.status == 200 => (
                Class::Lost,
                format!(
                    "gatehouse closed the connection after {} of the response's bytes while the \
                     client was still reading (the access record says client_aborted)",
                    a.bytes
                ),
            ),
            _ => (Class::Lost, "idempotent".into()),
        };
    }
    if NEVER_REACHED.contains(&a.failure.as_str()) {
        return (
            Class::Lost,
            format!("{}: never reached a server", a.failure),
        );
    }
    if o.kind == "ws" && o.status == 101 {
        return match kill {
            Some(k) => (Class::CutByKill, format!("session open when {}", when(k))),
            None => (Class::Lost, "session broken, no kill of its server".into()),
        };
    }
    match kill {
        Some(k) => (
            Class::InFlightAtKill,
            format!("in flight on its server when {}", when(k)),
        ),
        None => (Class::Lost, "no kill of its server while in flight".into()),
    }
}

fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    Some(if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    })
}

pub(crate) fn run(inputs: &Inputs) {
    let outcomes = parse_outcomes(&read(&inputs.outcomes));
    let access = parse_access(&read(&inputs.access_log));
    let chaos = parse_chaos(&read(&inputs.chaos));
    let mut problems = Vec::new();

    // --- requests by kind and outcome -------------------------------------------------------
    // The load's kinds in its order, then any other kind the outcomes name.
    let mut kinds: Vec<&str> = LOAD_KINDS.to_vec();
    for o in &outcomes {
        if !kinds.contains(&o.kind.as_str()) {
            kinds.push(&o.kind);
        }
    }
    #[derive(Default, Clone, Copy)]
    struct Row {
        total: u64,
        ok: u64,
        lost: u64,
        in_flight: u64,
        cut: u64,
        retried_ok: u64,
    }
    let mut rows: BTreeMap<&str, Row> = kinds.iter().map(|k| (*k, Row::default())).collect();
    let mut failures = Vec::new();
    let mut without_record = 0u64;
    for o in &outcomes {
        let row = rows.get_mut(o.kind.as_str()).expect("a row per kind");
        let a = access.get(&o.id);
        if a.is_none() {
            without_record += 1;
        }
        row.total += 1;
        if o.result == "ok" {
            row.ok += 1;
            if a.is_some_and(|a| a.attempts > 1) {
                row.retried_ok += 1;
            }
            continue;
        }
        let (class, why) = classify(o, a, &chaos);
        match class {
            Class::Lost => row.lost += 1,
            Class::InFlightAtKill => row.in_flight += 1,
            Class::CutByKill => row.cut += 1,
        }
        failures.push((class, why, o, a));
    }
    let total: Row = rows.values().fold(Row::default(), |t, r| Row {
        total: t.total + r.total,
        ok: t.ok + r.ok,
        lost: t.lost + r.lost,
        in_flight: t.in_flight + r.in_flight,
        cut: t.cut + r.cut,
        retried_ok: t.retried_ok + r.retried_ok,
    });
    let span_s = match (chaos.load_start, chaos.load_end) {
        (Some(a), Some(b)) if b > a => (b - a) as f64 / 1000.0,
        _ => 0.0,
    };
    println!("## Requests\n");
    println!(
        "{} requests in {:.0} s ({:.0}/s); the access log has {} records of them{}.\n",
        total.total,
        span_s,
        total.total as f64 / span_s.max(1.0),
        access.len(),
        if without_record > 0 {
            format!(" ({without_record} requests have none)")
        } else {
            String::new()
        }
    );
    println!(
        "| kind | requests | ok | ok after a retry by gatehouse | failed: lost | failed: in flight at a kill | failed: cut by a kill |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (kind, r) in kinds
        .iter()
        .map(|k| (*k, &rows[k]))
        .chain([("total", &total)])
    {
        println!(
            "| {kind} | {} | {} | {} | {} | {} | {} |",
            r.total, r.ok, r.retried_ok, r.lost, r.in_flight, r.cut
        );
    }
    for kind in &kinds {
        if rows[kind].total == 0 {
            problems.push(format!("no {kind} requests were made"));
        }
    }
    if total.lost > 0 {
        problems.push(format!(
            "{} requests lost that a healthy server could have answered",
            total.lost
        ));
    }

    for (title, class) in [
        ("Lost requests", Class::Lost),
        ("Failed while in flight at a kill", Class::InFlightAtKill),
        ("Cut by a kill", Class::CutByKill),
    ] {
        let list: Vec<_> = failures.iter().filter(|f| f.0 == class).collect();
        if list.is_empty() {
            continue;
        }
        println!("\n### {title} ({})\n", list.len());
        for (_, why, o, a) in list.iter().take(40) {
            let access = a.map_or_else(
                || "no access record".to_owned(),
                |a| {
                    format!(
                        "access: status {} failure {} attempts {} upstream {}{}{} total {:.0} ms",
                        a.status,
                        a.failure,
                        a.attempts,
                        a.upstream,
                        if a.upstream_aborted {
                            " upstream_aborted"
                        } else {
                            ""
                        },
                        if a.client_aborted {
                            " client_aborted"
                        } else {
                            ""
                        },
                        a.total_ms
                    )
                },
            );
            println!(
                "- {} {} [{}..{}] client: {} {} ({}); {access}; {why}",
                o.kind, o.id, o.start, o.end, o.status, o.result, o.detail
            );
        }
        if list.len() > 40 {
            println!("- ... and {} more", list.len() - 40);
        }
    }

    // --- chaos ------------------------------------------------------------------------------
    println!("\n## Chaos\n");
    println!(
        "- backends killed (SIGKILL): {}, started again: {}",
        chaos.kills.len(),
        chaos.starts
    );
    println!(
        "- config reloads: {} by POST /reload (200), {} refused or failed, {} by SIGHUP",
        chaos.reloads_post_ok, chaos.reloads_post_failed, chaos.reloads_hup
    );
    if chaos.reloads_post_failed > 0 {
        problems.push(format!(
            "{} reloads by POST /reload did not answer 200",
            chaos.reloads_post_failed
        ));
    }
    if let Some(path) = &inputs.metrics {
        let sums = metric_sums(&read(path));
        println!("- gatehouse's metrics at the end:");
        for (k, v) in &sums {
            println!("  - `{k}` {v}");
        }
        let ok = sums
            .get("gatehouse_reloads_total{outcome=\"ok\"}")
            .copied()
            .unwrap_or(0.0);
        let wanted = (chaos.reloads_post_ok + chaos.reloads_hup) as f64;
        if ok < wanted {
            problems.push(format!(
                "gatehouse counted {ok} reloads, the script asked for {wanted}"
            ));
        }
    }

    // --- RSS and fds ------------------------------------------------------------------------
    let samples: Vec<(u64, f64, f64)> = read(&inputs.samples)
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some((
                f.first()?.parse().ok()?,
                f.get(1)?.parse().ok()?,
                f.get(2)?.parse().ok()?,
            ))
        })
        .collect();
    let (Some(start), Some(end)) = (chaos.load_start, chaos.load_end) else {
        fail(PROGRAM, "the chaos log has no load-start / load-end");
    };
    let minutes = (end - start) as f64 / 60_000.0;
    let base = (2.0f64.min(minutes / 6.0), 7.0f64.min(minutes / 2.0));
    let last = 5.0f64.min(minutes / 3.0);
    let at = |t: u64| (t as f64 - start as f64) / 60_000.0;
    let window = |lo: f64, hi: f64, col: usize| {
        let mut v: Vec<f64> = samples
            .iter()
            .filter(|s| (lo..=hi).contains(&at(s.0)))
            .map(|s| if col == 1 { s.1 } else { s.2 })
            .collect();
        (median(&mut v), v.len())
    };
    println!("\n## Memory and file descriptors\n");
    println!(
        "{} samples of gatehouse's VmRSS and open fds, every 10 s.\n",
        samples.len()
    );
    let ((rss_a, n_a), (rss_b, n_b)) = (
        window(base.0, base.1, 1),
        window(minutes - last, minutes, 1),
    );
    let ((fd_a, _), (fd_b, _)) = (
        window(base.0, base.1, 2),
        window(minutes - last, minutes, 2),
    );
    let (Some(rss_a), Some(rss_b), Some(fd_a), Some(fd_b)) = (rss_a, rss_b, fd_a, fd_b) else {
        fail(
            PROGRAM,
            "not enough samples to compare the start and the end",
        );
    };
    let rss_change = rss_b / rss_a - 1.0;
    let fd_change = fd_b - fd_a;
    println!(
        "| | minutes {:.1}–{:.1} ({n_a} samples) | last {:.1} minutes ({n_b} samples) | change | flat when |",
        base.0, base.1, last
    );
    println!("|---|---:|---:|---:|---|");
    println!(
        "| RSS (median) | {:.1} MiB | {:.1} MiB | {:+.1} % | within ±{:.0} % |",
        rss_a / 1024.0,
        rss_b / 1024.0,
        rss_change * 100.0,
        inputs.rss_tolerance * 100.0
    );
    println!(
        "| open fds (median) | {fd_a:.0} | {fd_b:.0} | {fd_change:+.0} | within ±{:.0} |",
        inputs.fd_tolerance
    );
    let per_minute = |col: usize, scale: f64| {
        (0..minutes.ceil() as u64)
            .filter_map(|m| window(m as f64, (m as f64 + 1.0).min(minutes), col).0)
            .map(|v| {
                format!("{:.1}", v / scale)
                    .trim_end_matches(".0")
                    .to_owned()
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let max = |col: usize| {
        samples
            .iter()
            .map(|s| if col == 1 { s.1 } else { s.2 })
            .fold(0.0, f64::max)
    };
    println!(
        "\nPer-minute medians, RSS (MiB): {}\n\nPer-minute medians, open fds: {}\n\nPeak: {:.1} MiB RSS, {:.0} fds.",
        per_minute(1, 1024.0),
        per_minute(2, 1.0),
        max(1) / 1024.0,
        max(2)
    );
    if rss_change.abs() > inputs.rss_tolerance {
        problems.push(format!("RSS changed by {:+.1} %", rss_change * 100.0));
    }
    if fd_change.abs() > inputs.fd_tolerance {
        problems.push(format!("open fds changed by {fd_change:+.0}"));
    }

    // --- verdict ----------------------------------------------------------------------------
    println!("\n## Verdict\n");
    if problems.is_empty() {
        println!(
            "PASS: no request lost that a healthy server could have answered ({} failed while in flight on a killed server, {} cut by a kill); RSS and open fds flat.",
            total.in_flight, total.cut
        );
    } else {
        for p in &problems {
            println!("FAIL: {p}");
        }
        std::process::exit(1);
    }
}

#[cfg(test)]
#[path = "report_tests.rs"]
mod tests;
