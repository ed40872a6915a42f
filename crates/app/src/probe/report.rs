//! How probe results read: a detailed block per URL, a one-line row per URL of a list, the
//! summary table, and the exit status.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::SystemTime;

use serde::Serialize;

use super::client::{Hop, Outcome, UrlReport};

/// How many of the slowest URLs the summary names.
const SLOWEST: usize = 3;

/// The detailed block for one URL: every hop with its timing, headers and decoded members.
pub(crate) fn detailed(report: &UrlReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}  {}", report.url, outcome_words(report));
    let numbered = report.hops.len() > 1;
    for (i, hop) in report.hops.iter().enumerate() {
        let prefix = if numbered {
            format!("  [{}] ", i + 1)
        } else {
            "  ".to_owned()
        };
        let status = match (hop.status, hop.reason) {
            (Some(status), Some(reason)) => format!("{status} {reason}"),
            (Some(status), None) => status.to_string(),
            (None, _) => "no response".to_owned(),
        };
        let _ = writeln!(out, "{prefix}{} {} → {status}", hop.method, hop.url);
        if let Some(rejected) = hop.head_rejected {
            let _ = writeln!(
                out,
                "      HEAD was refused with {rejected}; the status above is GET's"
            );
        }
        if let Some(address) = hop.address {
            let resolved = if hop.resolved.len() > 1 {
                let all: Vec<String> = hop.resolved.iter().map(ToString::to_string).collect();
                format!(" (resolved to {})", all.join(", "))
            } else {
                String::new()
            };
            let _ = writeln!(out, "      address   {address}{resolved}");
        }
        let _ = writeln!(out, "      timing    {}", timing(hop));
        let now = SystemTime::now();
        if let Some(tls) = &hop.tls {
            let _ = writeln!(out, "      tls       {}", tls.negotiated());
            if let Some(cert) = tls.certificate() {
                let _ = writeln!(out, "      cert      {cert}");
            }
            if let Some(expiry) = tls.expiry(now) {
                let _ = writeln!(out, "      expires   {expiry}");
            }
        }
        // The certificate of a failed handshake: what it is and when it ends, next to why.
        if let Some(cert) = &hop.certificate {
            let _ = writeln!(out, "      cert      {}", cert.words());
            let _ = writeln!(out, "      expires   {}", cert.expiry(now));
        }
        for (name, value) in &hop.headers {
            let _ = writeln!(out, "      {name}: {value}");
        }
        if let Some(bytes) = hop.body_bytes {
            let _ = writeln!(out, "      body      {bytes} bytes");
        }
        for member in &hop.proxy_status {
            let _ = writeln!(out, "      proxy-status  {}", member.words);
        }
        for member in &hop.cache_status {
            let _ = writeln!(out, "      cache-status  {}", member.words);
        }
        if let Some(failure) = &hop.failure {
            let _ = writeln!(
                out,
                "      failed    {} {}: {}",
                failure.kind, failure.phase, failure.details
            );
            let _ = writeln!(
                out,
                "      hint      {} (a gateway would answer {})",
                failure.hint, failure.gateway_status
            );
        }
        for warning in &hop.warnings {
            let _ = writeln!(out, "      warning   {warning}");
        }
    }
    if let Some(note) = &report.note {
        let _ = writeln!(out, "  note: {note}");
    }
    out
}

/// One line for a URL of a list: status (or failure kind), total time, URL, and why.
pub(crate) fn row(report: &UrlReport) -> String {
    // The whole chain's time, as the summary's "slowest" counts it.
    let total: f64 = report.hops.iter().map(|h| h.timing.total_ms).sum();
    let time = if report.hops.is_empty() {
        "-".to_owned()
    } else {
        format!("{total:.1} ms")
    };
    let mut line = format!("{:<24} {time:>10}  {}", short_outcome(report), report.url);
    if report.hops.len() > 1
        && let Some(last) = report.hops.last()
    {
        let _ = write!(line, " → {}", last.url);
    }
    if let Some(why) = why(report) {
        let _ = write!(line, "  ({why})");
    }
    line
}

/// The exit status of a whole run: 2 if any URL got no usable response, else 1 if any ended
/// in a 4xx or 5xx, else 0.
pub(crate) fn exit_code(reports: &[UrlReport]) -> ExitCode {
    let worst = reports
        .iter()
        .map(|r| match r.outcome {
            Outcome::Ok { .. } => 0u8,
            Outcome::ErrorStatus { .. } => 1,
            Outcome::Failed { .. } | Outcome::Invalid { .. } => 2,
        })
        .max()
        .unwrap_or(0);
    ExitCode::from(worst)
}

/// Counts per status class, the slowest URLs and every failure.
#[derive(Debug, Serialize)]
pub(crate) struct Summary {
    pub(crate) urls: usize,
    pub(crate) status_2xx: usize,
    pub(crate) status_3xx: usize,
    pub(crate) status_4xx: usize,
    pub(crate) status_5xx: usize,
    pub(crate) failed: usize,
    /// (url, total milliseconds), slowest first.
    pub(crate) slowest: Vec<(String, f64)>,
    /// (url, what went wrong) for every URL that did not end in 2xx/3xx.
    pub(crate) failures: Vec<(String, String)>,
}

pub(crate) fn summarize(reports: &[UrlReport]) -> Summary {
    let mut summary = Summary {
        urls: reports.len(),
        status_2xx: 0,
        status_3xx: 0,
        status_4xx: 0,
        status_5xx: 0,
        failed: 0,
        slowest: Vec::new(),
        failures: Vec::new(),
    };
    for report in reports {
        match &report.outcome {
            Outcome::Ok { status } | Outcome::ErrorStatus { status } => match status / 100 {
                2 => summary.status_2xx += 1,
                3 => summary.status_3xx += 1,
                4 => summary.status_4xx += 1,
                _ => summary.status_5xx += 1,
            },
            Outcome::Failed { .. } | Outcome::Invalid { .. } => summary.failed += 1,
        }
        if !matches!(report.outcome, Outcome::Ok { .. }) {
            let what = match why(report) {
                Some(why) => format!("{}: {why}", short_outcome(report)),
                None => short_outcome(report),
            };
            summary.failures.push((report.url.clone(), what));
        }
    }
    let mut timed: Vec<(String, f64)> = reports
        .iter()
        .filter_map(|r| {
            let total: f64 = r.hops.iter().map(|h| h.timing.total_ms).sum();
            (!r.hops.is_empty()).then(|| (r.url.clone(), total))
        })
        .collect();
    timed.sort_by(|a, b| b.1.total_cmp(&a.1));
    timed.truncate(SLOWEST);
    summary.slowest = timed;
    summary
}

pub(crate) fn summary_text(summary: &Summary) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "summary: {} URL(s)", summary.urls);
    let _ = writeln!(out, "  {:<8} {:>6}", "class", "count");
    for (class, count) in [
        ("2xx", summary.status_2xx),
        ("3xx", summary.status_3xx),
        ("4xx", summary.status_4xx),
        ("5xx", summary.status_5xx),
        ("failed", summary.failed),
    ] {
        let _ = writeln!(out, "  {class:<8} {count:>6}");
    }
    if !summary.slowest.is_empty() {
        let _ = writeln!(out, "slowest:");
        for (url, ms) in &summary.slowest {
            let _ = writeln!(out, "  {ms:>10.1} ms  {url}");
        }
    }
    if !summary.failures.is_empty() {
        let _ = writeln!(out, "failures:");
        for (url, what) in &summary.failures {
            let _ = writeln!(out, "  {url}  {what}");
        }
    }
    out
}

fn timing(hop: &Hop) -> String {
    let t = &hop.timing;
    let part = |label: &str, ms: Option<f64>| match ms {
        Some(ms) => format!("{label} {ms:.1} ms"),
        None => format!("{label} -"),
    };
    [
        part("dns", t.dns_ms),
        part("connect", t.connect_ms),
        part("tls", t.tls_ms),
        part("first byte", t.first_byte_ms),
        part("total", Some(t.total_ms)),
    ]
    .join(" · ")
}

fn outcome_words(report: &UrlReport) -> String {
    match &report.outcome {
        Outcome::Ok { status } | Outcome::ErrorStatus { status } => {
            let reason = report
                .hops
                .last()
                .and_then(|h| h.reason)
                .unwrap_or_default();
            let redirects = report.hops.len().saturating_sub(1);
            let via = match redirects {
                0 => String::new(),
                1 => " after 1 redirect".to_owned(),
                n => format!(" after {n} redirects"),
            };
            format!("{status} {reason}{via}").trim_end().to_owned()
        }
        Outcome::Failed { kind } => format!("FAILED: {kind}"),
        Outcome::Invalid { reason } => format!("INVALID: {reason}"),
    }
}

fn short_outcome(report: &UrlReport) -> String {
    match &report.outcome {
        Outcome::Ok { status } | Outcome::ErrorStatus { status } => status.to_string(),
        Outcome::Failed { kind } => (*kind).to_owned(),
        Outcome::Invalid { .. } => "invalid".to_owned(),
    }
}

/// Why a URL did not simply succeed: the probe's own failure, a gateway's Proxy-Status words,
/// or the note on the chain.
fn why(report: &UrlReport) -> Option<String> {
    if let Outcome::Invalid { reason } = &report.outcome {
        return Some(reason.clone());
    }
    let last = report.hops.last()?;
    if let Some(failure) = &last.failure {
        return Some(format!("{}: {}", failure.details, failure.hint));
    }
    if let Some(member) = last.proxy_status.last() {
        return Some(member.words.clone());
    }
    report.note.clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::client::{Hop, Timing};

    fn report(url: &str, outcome: Outcome, total_ms: f64) -> UrlReport {
        UrlReport {
            url: url.to_owned(),
            outcome,
            hops: vec![Hop {
                url: url.to_owned(),
                timing: Timing {
                    total_ms,
                    ..Timing::default()
                },
                ..Hop::default()
            }],
            note: None,
        }
    }

    #[test]
    fn exit_status_is_the_worst_outcome() {
        let ok = || report("a", Outcome::Ok { status: 200 }, 1.0);
        let not_found = || report("b", Outcome::ErrorStatus { status: 404 }, 1.0);
        let refused = || {
            report(
                "c",
                Outcome::Failed {
                    kind: "connection_refused",
                },
                1.0,
            )
        };
        assert_eq!(exit_code(&[ok()]), ExitCode::from(0));
        assert_eq!(exit_code(&[ok(), not_found()]), ExitCode::from(1));
        assert_eq!(
            exit_code(&[refused(), not_found(), ok()]),
            ExitCode::from(2)
        );
    }

    #[test]
    fn summary_counts_classes_and_lists_failures_and_the_slowest() {
        let reports = [
            report("fast", Outcome::Ok { status: 200 }, 1.0),
            report("moved", Outcome::Ok { status: 301 }, 9.0),
            report("gone", Outcome::ErrorStatus { status: 410 }, 5.0),
            report("down", Outcome::ErrorStatus { status: 503 }, 3.0),
            report(
                "refused",
                Outcome::Failed {
                    kind: "connection_refused",
                },
                2.0,
            ),
        ];
        let summary = summarize(&reports);
        assert_eq!(
            (
                summary.status_2xx,
                summary.status_3xx,
                summary.status_4xx,
                summary.status_5xx,
                summary.failed
            ),
            (1, 1, 1, 1, 1)
        );
        let slowest: Vec<&str> = summary.slowest.iter().map(|(u, _)| u.as_str()).collect();
        assert_eq!(slowest, ["moved", "gone", "down"]);
        let failed: Vec<&str> = summary.failures.iter().map(|(u, _)| u.as_str()).collect();
        assert_eq!(failed, ["gone", "down", "refused"]);
        let text = summary_text(&summary);
        assert!(text.contains("refused  connection_refused"), "{text}");
    }
}
