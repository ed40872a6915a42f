//! The report: text for a person on call (most frequent group first, one block per group) or a
//! stable JSON document; and, when following, one line (or JSON object) per failure as it is
//! read.

use std::fmt::Write as _;
use std::io::Write as _;

use serde::Serialize;

use super::advice::advise;
use super::group::{ClientGroup, Group};
use super::record::{Event, format_utc};
use super::session::{Counts, Outcome, Unreadable};

/// The JSON document. Fields are added, never renamed.
#[derive(Debug, Serialize)]
pub(crate) struct Report<'a> {
    pub(crate) inputs: &'a [String],
    pub(crate) since: Option<String>,
    pub(crate) counts: &'a Counts,
    pub(crate) groups: &'a [Group],
    pub(crate) client_side: &'a [ClientGroup],
    pub(crate) unreadable: &'a [Unreadable],
}

pub(crate) fn json(outcome: &Outcome, inputs: &[String], since: Option<i64>) -> String {
    let report = Report {
        inputs,
        since: since.map(format_utc),
        counts: &outcome.counts,
        groups: &outcome.groups,
        client_side: &outcome.client_side,
        unreadable: &outcome.unreadable,
    };
    serde_json::to_string_pretty(&report)
        .unwrap_or_else(|err| format!("{{\"error\":\"report not serialisable: {err}\"}}"))
}

pub(crate) fn text(outcome: &Outcome, inputs: &[String]) -> String {
    let mut out = String::new();
    let c = &outcome.counts;
    let _ = writeln!(
        out,
        "gatehouse explain: {} line(s) read from {}",
        c.lines,
        inputs.join(", ")
    );
    let _ = writeln!(
        out,
        "  {} upstream failure(s) in {} group(s), {} normal line(s), {} client-side termination(s), {} unreadable line(s){}",
        c.failures,
        outcome.groups.len(),
        c.normal,
        c.client_side,
        c.unreadable,
        if c.before_since > 0 {
            format!(", {} line(s) before --since", c.before_since)
        } else {
            String::new()
        }
    );
    if outcome.groups.is_empty() {
        let _ = writeln!(out, "\nno upstream failure found");
    }
    for (n, g) in outcome.groups.iter().enumerate() {
        group_block(&mut out, n + 1, g);
    }
    if !outcome.client_side.is_empty() {
        let _ = writeln!(out, "\nclient-side terminations (not upstream failures):");
        for g in &outcome.client_side {
            let directive = g
                .directive
                .map_or_else(String::new, |d| format!("; directive: {d}"));
            let _ = writeln!(
                out,
                "  {} ×{} at {} ({}): {}{directive} (e.g. {}:{})",
                g.state,
                g.count,
                g.server,
                g.source.name(),
                g.meaning,
                g.example.file,
                g.example.line
            );
        }
    }
    if c.unreadable > 0 {
        let _ = writeln!(
            out,
            "\nunreadable lines: {} (not in a format explain reads; the first {} shown)",
            c.unreadable,
            outcome.unreadable.len()
        );
        for u in &outcome.unreadable {
            let _ = writeln!(out, "  {}:{}: {}", u.at.file, u.at.line, u.text);
        }
    }
    out
}

fn group_block(out: &mut String, n: usize, g: &Group) {
    let _ = writeln!(
        out,
        "\n[{n}] {} ×{}: {} upstream {}",
        g.kind,
        g.count,
        g.source.name(),
        g.server
    );
    let _ = writeln!(out, "    what:   {}", g.summary);
    if let (Some(first), Some(last)) = (&g.first_seen, &g.last_seen) {
        let _ = writeln!(out, "    when:   {first} .. {last}");
    }
    if let Some(timeline) = g.timeline.as_ref().filter(|t| t.counts.len() > 1) {
        let _ = writeln!(
            out,
            "    per {}: {}",
            match timeline.bucket {
                "1m" => "minute",
                "1h" => "hour",
                _ => "day",
            },
            timeline.recent(12)
        );
    }
    if !g.client_statuses.is_empty() {
        let statuses: Vec<String> = g
            .client_statuses
            .iter()
            .map(|(s, n)| format!("{s} ×{n}"))
            .collect();
        let _ = writeln!(out, "    clients got: {}", statuses.join(", "));
    }
    let _ = writeln!(out, "    cause:  {}", g.cause);
    let _ = writeln!(out, "    fix:    {}", g.fix);
    if !g.directives.is_empty() {
        let what = match g.source {
            super::record::Source::Gatehouse => "config keys",
            super::record::Source::Nginx | super::record::Source::Haproxy => "directives",
        };
        let _ = writeln!(out, "    {what}: {}", g.directives.join(", "));
    }
    if g.guessed > 0 {
        let _ = writeln!(
            out,
            "    note:   {} of {} guessed from the access log's status and timings (no error-log line matched)",
            g.guessed, g.count
        );
    }
    for e in &g.examples {
        let request = e.request.as_deref().unwrap_or("-");
        let status = e.status.map_or_else(String::new, |s| format!(" -> {s}"));
        let _ = writeln!(
            out,
            "    e.g.   {}:{}  {request}{status}: {}",
            e.at.file, e.at.line, e.message
        );
    }
}

/// Output of a followed run: one line per failure, as it is read.
#[derive(Debug)]
pub(crate) struct Live {
    pub(crate) json: bool,
}

#[derive(Serialize)]
struct LiveFailure<'a> {
    r#type: &'static str,
    time: Option<String>,
    kind: &'static str,
    source: &'static str,
    server: &'a str,
    request: Option<&'a str>,
    client: Option<&'a str>,
    status: Option<u16>,
    message: &'a str,
    guessed: bool,
    file: &'a str,
    line: u64,
    fix: String,
    directives: Vec<&'static str>,
}

impl Live {
    pub(crate) fn failure(&mut self, e: &Event) {
        let advice = advise(e.source, e.kind, &e.server);
        let line = if self.json {
            let record = LiveFailure {
                r#type: "failure",
                time: e.at.map(|s| format_utc(s.utc)),
                kind: e.kind.token(),
                source: e.source.name(),
                server: &e.server,
                request: e.request.as_deref(),
                client: e.client.as_deref(),
                status: e.status,
                message: &e.message,
                guessed: e.guessed,
                file: &e.line.file,
                line: e.line.line,
                fix: advice.fix,
                directives: advice.directives,
            };
            serde_json::to_string(&record).unwrap_or_default()
        } else {
            format!(
                "{} {}{} {} upstream {} {}: {} | fix: {} ({}:{})",
                e.at.map_or_else(|| "-".to_owned(), |s| format_utc(s.utc)),
                e.kind.token(),
                if e.guessed { " (guessed)" } else { "" },
                e.source.name(),
                e.server,
                e.request.as_deref().unwrap_or("-"),
                e.message,
                advice.fix,
                e.line.file,
                e.line.line
            )
        };
        emit(&line);
    }

    pub(crate) fn unreadable(&mut self, u: &Unreadable) {
        let line = if self.json {
            serde_json::json!({"type": "unreadable", "file": u.at.file, "line": u.at.line, "text": u.text})
                .to_string()
        } else {
            format!("unreadable {}:{}: {}", u.at.file, u.at.line, u.text)
        };
        emit(&line);
    }
}

/// Writes a line and flushes: a follower reads it at once (stdout is a pipe in scripts).
fn emit(line: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}");
    let _ = stdout.flush();
}
