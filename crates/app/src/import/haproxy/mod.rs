//! HAProxy → gatehouse: `frontend` binds become listeners and their `use_backend` /
//! `default_backend` rules routes (`hdr(host)` and `path_beg` ACLs), `backend` sections
//! upstreams with their servers, checks and timeouts; a `listen` section is both. The last
//! `defaults` section before a proxy supplies what the proxy does not set, as in HAProxy.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

mod backend;
mod frontend;

use super::out::Out;
use super::{Imported, Mode, Report, fallback_listener, units};
use crate::foreign::haproxy::{Line, Section};
use crate::naming::PoolLimits;

/// HAProxy's `tune.bufsize` and `tune.maxrewrite` defaults.
const DEFAULT_BUFSIZE: u64 = 16384;
const DEFAULT_MAXREWRITE: u64 = 1024;
/// What the doctor waits for where HAProxy has no timeout (gatehouse's default).
const NO_TIMEOUT: Duration = Duration::from_secs(30);

/// Lines gatehouse does without a key.
const BUILT_IN: &[(&str, &str)] = &[
    (
        "option forwardfor",
        "gatehouse sets X-Forwarded-For: it extends the list of a peer in server.trusted_proxies and replaces the one any other client sent",
    ),
    (
        "option http-server-close",
        "gatehouse keeps client and server connections alive on its own terms",
    ),
    (
        "option http-keep-alive",
        "gatehouse keeps client and server connections alive",
    ),
    ("option redispatch", "gatehouse retries on another server"),
    ("mode http", "gatehouse is an HTTP proxy"),
];

struct Cx<'a> {
    report: Report,
    out: Out,
    base: &'a Path,
    limits: BTreeMap<String, PoolLimits>,
    bufsize: (u64, Option<String>),
    maxrewrite: u64,
    /// Plain addresses that redirect to https.
    redirect: Vec<String>,
}

/// Converts parsed HAProxy sections.
pub(super) fn convert(sections: &[Section], file: &Path, base: &Path, mode: Mode) -> Imported {
    let mut cx = Cx {
        report: Report::new(file, "HAProxy"),
        out: Out::default(),
        base,
        limits: BTreeMap::new(),
        bufsize: (DEFAULT_BUFSIZE, None),
        maxrewrite: DEFAULT_MAXREWRITE,
        redirect: Vec::new(),
    };
    for section in sections.iter().filter(|s| s.kind == "global") {
        cx.global(section);
    }
    let mut defaults: Vec<&Line> = Vec::new();
    let mut frontends = Vec::new();
    for section in sections {
        match section.kind.as_str() {
            "global" => {}
            "defaults" => defaults = section.lines.iter().collect(),
            "frontend" | "backend" | "listen" => {
                let lines: Vec<&Line> = section.lines.iter().collect();
                if !is_http(&lines, &defaults) {
                    cx.report.unmapped(
                        &section.origin,
                        format!("{} {}", section.kind, section.name()),
                        "mode tcp: gatehouse proxies HTTP only",
                    );
                    continue;
                }
                if section.kind != "frontend" {
                    cx.backend(section, &defaults);
                }
                if section.kind != "backend" {
                    frontends.push((section, defaults.clone()));
                }
            }
            other => cx.report.unmapped(
                &section.origin,
                format!("{other} {}", section.args.join(" ")),
                "a section gatehouse has no equivalent of",
            ),
        }
    }
    for (section, defaults) in frontends {
        cx.frontend(section, &defaults);
    }
    for line in sections
        .iter()
        .filter(|s| s.kind == "defaults")
        .flat_map(|s| &s.lines)
    {
        cx.defaults_line(line);
    }
    cx.finish(mode)
}

/// The line of `own` (else of `defaults`) whose first words are `words`.
fn find<'a>(own: &[&'a Line], defaults: &[&'a Line], words: &[&str]) -> Option<&'a Line> {
    let matches = |l: &&&'a Line| words.iter().enumerate().all(|(i, w)| l.word(i) == *w);
    own.iter()
        .rev()
        .find(matches)
        .or_else(|| defaults.iter().rev().find(matches))
        .copied()
}

fn is_http(own: &[&Line], defaults: &[&Line]) -> bool {
    find(own, defaults, &["mode"]).is_some_and(|l| l.word(1) == "http")
}

impl<'a> Cx<'a> {
    fn global(&mut self, section: &Section) {
        for line in &section.lines {
            match line.word(0) {
                "tune.bufsize" => match units::haproxy_size(line.word(1)) {
                    Some(size) => {
                        self.bufsize = (size, Some(line.origin.to_string()));
                        self.report.map_note(
                            &line.origin,
                            line.text(),
                            "upstream.NAME.max_response_header_size (every upstream)",
                            "HAProxy's buffer, minus tune.maxrewrite, bounds the response head",
                        );
                    }
                    None => self.report.unmapped(&line.origin, line.text(), "not a size"),
                },
                "tune.maxrewrite" => match units::haproxy_size(line.word(1)) {
                    Some(size) => {
                        self.maxrewrite = size;
                        self.report.map(
                            &line.origin,
                            line.text(),
                            "upstream.NAME.max_response_header_size (every upstream)",
                        );
                    }
                    None => self.report.unmapped(&line.origin, line.text(), "not a size"),
                },
                _ => self.report.unmapped(
                    &line.origin,
                    line.text(),
                    "a process setting of HAProxy's global section: not part of the reverse-proxy config gatehouse imports",
                ),
            }
        }
    }

    /// `defaults` lines are reported once, after the proxies that use them.
    fn defaults_line(&mut self, line: &Line) {
        let text = line.text();
        let used = self
            .report
            .mapped
            .iter()
            .any(|m| m.at == line.origin.to_string())
            || self
                .report
                .unmapped
                .iter()
                .any(|u| u.at == line.origin.to_string());
        if used {
            return;
        }
        match line.word(0) {
            "timeout" | "retries" | "balance" | "default-server" | "option" | "http-check" => {
                if let Some((_, how)) = BUILT_IN.iter().find(|(t, _)| text.starts_with(t)) {
                    self.report.map_note(&line.origin, text, "(built in)", *how);
                } else {
                    self.report.unmapped(
                        &line.origin,
                        text,
                        "no gatehouse equivalent (or no proxy uses it)",
                    );
                }
            }
            _ => match BUILT_IN.iter().find(|(t, _)| text.starts_with(t)) {
                Some((_, how)) => self.report.map_note(&line.origin, text, "(built in)", *how),
                None => self
                    .report
                    .unmapped(&line.origin, text, "no gatehouse equivalent"),
            },
        }
    }

    fn finish(mut self, mode: Mode) -> Imported {
        match mode {
            Mode::Doctor => {
                self.out.listen = vec!["127.0.0.1:0".to_owned()];
                self.out.tls.clear();
                self.out.redirect_https.clear();
            }
            Mode::Import => {
                self.out.redirect_https = std::mem::take(&mut self.redirect);
                fallback_listener(&mut self.out, &mut self.report, "bind");
            }
        }
        // Routes to backends that were not imported (mode tcp) would not validate.
        let known: Vec<String> = self.out.upstreams.keys().cloned().collect();
        let mut report = std::mem::take(&mut self.report);
        self.out.routes.retain(|r| {
            let keep = known.contains(&r.upstream);
            if !keep {
                report.differ(
                    r.from.clone(),
                    format!("routes to {}, which was not imported: left out", r.upstream),
                );
            }
            keep
        });
        self.report = report;
        let toml = self.out.toml(&self.report.source, "HAProxy");
        Imported {
            toml,
            report: self.report,
            limits: self.limits,
        }
    }
}

#[cfg(test)]
mod tests;
