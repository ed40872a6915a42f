//! What `soak --mode report` reads: the load's outcomes, gatehouse's JSON access log, the
//! script's chaos log and a `/metrics` scrape, each parsed into plain records.

use std::collections::{BTreeMap, HashMap};
use std::fs;

use gatehouse_bench::fail;

use crate::PROGRAM;
use crate::backend::query_param;

#[derive(Debug)]
pub(crate) struct Access {
    pub(crate) status: u16,
    pub(crate) failure: String,
    pub(crate) attempts: u32,
    pub(crate) upstream: String,
    pub(crate) upstream_aborted: bool,
    pub(crate) client_aborted: bool,
    pub(crate) bytes: u64,
    pub(crate) total_ms: f64,
}

#[derive(Debug)]
pub(crate) struct Outcome {
    pub(crate) kind: String,
    pub(crate) id: String,
    pub(crate) start: u64,
    pub(crate) end: u64,
    pub(crate) status: u16,
    pub(crate) result: String,
    pub(crate) backend: String,
    pub(crate) detail: String,
}

#[derive(Debug, Default)]
pub(crate) struct Chaos {
    pub(crate) load_start: Option<u64>,
    pub(crate) load_end: Option<u64>,
    pub(crate) kills: Vec<(u64, String)>,
    pub(crate) starts: u64,
    pub(crate) reloads_post_ok: u64,
    pub(crate) reloads_post_failed: u64,
    pub(crate) reloads_hup: u64,
}

pub(crate) fn read(path: &str) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| fail(PROGRAM, &format!("cannot read {path}: {e}")))
}

/// The raw value of `"key":` in a flat JSON object: a string without its quotes (our paths and
/// names have no escapes), or a literal.
pub(crate) fn json_field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let pattern = format!("\"{key}\":");
    let at = line.find(&pattern)? + pattern.len();
    let rest = &line[at..];
    if let Some(s) = rest.strip_prefix('"') {
        let mut escaped = false;
        for (i, c) in s.char_indices() {
            match c {
                '\\' if !escaped => escaped = true,
                '"' if !escaped => return Some(&s[..i]),
                _ => escaped = false,
            }
        }
        None
    } else {
        let end = rest.find([',', '}']).unwrap_or(rest.len());
        Some(rest[..end].trim())
    }
}

pub(crate) fn parse_access(text: &str) -> HashMap<String, Access> {
    let mut by_id = HashMap::new();
    for line in text.lines() {
        let Some(path) = json_field(line, "path") else {
            continue;
        };
        let Some(id) = query_param(path, "id") else {
            continue;
        };
        let access = Access {
            status: json_field(line, "status")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            failure: json_field(line, "failure")
                .filter(|v| *v != "null")
                .unwrap_or("-")
                .to_owned(),
            attempts: json_field(line, "attempts")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            upstream: json_field(line, "upstream")
                .filter(|v| *v != "null")
                .map_or("-", |u| u.split_once('/').map_or(u, |(_, addr)| addr))
                .to_owned(),
            upstream_aborted: json_field(line, "upstream_aborted") == Some("true"),
            client_aborted: json_field(line, "client_aborted") == Some("true"),
            bytes: json_field(line, "bytes")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            total_ms: json_field(line, "total_ms")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0),
        };
        by_id.insert(id.to_owned(), access);
    }
    by_id
}

pub(crate) fn parse_outcomes(text: &str) -> Vec<Outcome> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.splitn(8, '\t').collect();
            (f.len() == 8).then(|| Outcome {
                kind: f[0].to_owned(),
                id: f[1].to_owned(),
                start: f[2].parse().unwrap_or(0),
                end: f[3].parse().unwrap_or(0),
                status: f[4].parse().unwrap_or(0),
                result: f[5].to_owned(),
                backend: f[6].to_owned(),
                detail: f[7].to_owned(),
            })
        })
        .collect()
}

pub(crate) fn parse_chaos(text: &str) -> Chaos {
    let mut chaos = Chaos::default();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (Some(ms), Some(event)) = (f.first().and_then(|v| v.parse().ok()), f.get(1)) else {
            continue;
        };
        let arg = f.get(2).copied().unwrap_or_default();
        match *event {
            "load-start" => chaos.load_start = Some(ms),
            "load-end" => chaos.load_end = Some(ms),
            "kill" => chaos.kills.push((ms, arg.to_owned())),
            "start" if chaos.load_start.is_some() => chaos.starts += 1,
            "reload-post" if arg == "200" => chaos.reloads_post_ok += 1,
            "reload-post" => chaos.reloads_post_failed += 1,
            "reload-hup" => chaos.reloads_hup += 1,
            _ => {}
        }
    }
    chaos
}

/// Sums of the metrics the report shows, keyed `name{label="value"}` for the label that
/// matters (or just `name`).
pub(crate) fn metric_sums(text: &str) -> BTreeMap<String, f64> {
    const SHOWN: &[(&str, Option<&str>)] = &[
        ("gatehouse_reloads_total", Some("outcome")),
        ("gatehouse_upstream_retries_total", None),
        ("gatehouse_upstream_retry_budget_exhausted_total", None),
        ("gatehouse_upstream_stale_connection_retries_total", None),
        ("gatehouse_upstream_failures_total", Some("kind")),
        ("gatehouse_upstream_ejections_total", None),
        ("gatehouse_upstream_health_transitions_total", Some("to")),
        ("gatehouse_tunnels_closed_total", Some("end")),
        ("gatehouse_connections_total", None),
        ("gatehouse_requests_total", Some("failure")),
    ];
    let mut sums = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let (name, labels) = series.split_once('{').unwrap_or((series, ""));
        let Some((_, label)) = SHOWN.iter().find(|(n, _)| *n == name) else {
            continue;
        };
        let key = match label {
            Some(label) => {
                let pattern = format!("{label}=\"");
                let v = labels
                    .find(&pattern)
                    .map(|at| &labels[at + pattern.len()..])
                    .and_then(|rest| rest.split('"').next())
                    .unwrap_or_default();
                format!("{name}{{{label}=\"{v}\"}}")
            }
            None => name.to_owned(),
        };
        *sums.entry(key).or_insert(0.0) += value;
    }
    sums
}
