//! HAProxy frontends: `bind` lines (plain and `ssl crt`), the https redirect, and
//! `use_backend` / `default_backend` rules with `hdr(host)` and `path_beg` ACLs as routes.

use std::collections::HashMap;

use super::{BUILT_IN, Cx, find};
use crate::foreign::haproxy::{Line, Section};
use crate::import::out::{RouteOut, TlsOut, upstream_name};
use crate::import::units;

impl<'a> Cx<'a> {
    pub(super) fn frontend(&mut self, section: &Section, defaults: &[&'a Line]) {
        let own: Vec<&Line> = section.lines.iter().collect();
        let mut acls: HashMap<String, Vec<Cond>> = HashMap::new();
        let mut plain = Vec::new();
        let mut redirects = false;
        let mut rules: Vec<&Line> = Vec::new();
        for line in &own {
            let at = &line.origin;
            match line.word(0) {
                "bind" => self.bind(line, &mut plain),
                "acl" => match cond(line.words.get(2..).unwrap_or(&[])) {
                    Some(c) => {
                        acls.entry(line.word(1).to_owned()).or_default().push(c);
                        self.report.map(at, line.text(), "route.host / route.path");
                    }
                    None => self.report.unmapped(
                        at,
                        line.text(),
                        "gatehouse routes on the host (hdr(host)) and a path prefix (path_beg) only",
                    ),
                },
                "use_backend" | "default_backend" => rules.push(line),
                "http-request"
                    if line.word(1) == "redirect"
                        && line.word(2) == "scheme"
                        && line.word(3) == "https" =>
                {
                    redirects = true;
                    self.report.map_note(
                        at,
                        line.text(),
                        "server.redirect_https",
                        "gatehouse redirects every request on the frontend's plain addresses with 308 (method and body kept)",
                    );
                }
                "timeout" if line.word(1) == "http-request" => {}
                _ if section.kind == "listen" => {}
                _ => {
                    let text = line.text();
                    match BUILT_IN.iter().find(|(t, _)| text.starts_with(t)) {
                        Some((_, how)) => self.report.map_note(at, text, "(built in)", *how),
                        None => self.report.unmapped(at, text, "no gatehouse equivalent in a frontend"),
                    }
                }
            }
        }
        if let Some(line) = find(&own, defaults, &["timeout", "http-request"]) {
            let at = &line.origin;
            match units::haproxy_time(line.word(2)).filter(|t| !t.is_zero()) {
                Some(t) => {
                    self.out.client_header_timeout = Some(units::duration(t));
                    self.report
                        .map(at, line.text(), "server.client_header_timeout");
                }
                None => self.report.unmapped(at, line.text(), "not a time"),
            }
        }
        if redirects {
            self.redirect.append(&mut plain);
        }
        self.out.listen.extend(plain);
        if section.kind == "listen" {
            // A listen section is its own backend.
            let upstream = upstream_name(section.name());
            self.push_route(None, "/".to_owned(), &upstream, &section.origin.to_string());
        }
        if rules.iter().filter(|l| l.word(0) == "use_backend").count() > 1 {
            self.report.differ(
                format!("{} {} ({})", section.kind, section.name(), section.origin),
                "HAProxy takes the first rule that matches, in file order; gatehouse the most specific route (exact host, then wildcard, then any host; the longest path): a request two rules match may go elsewhere",
            );
        }
        for line in rules {
            self.rule(line, &acls);
        }
    }

    fn bind(&mut self, line: &Line, plain: &mut Vec<String>) {
        let at = &line.origin;
        let spec = line.word(1);
        let addr = match spec.rsplit_once(':') {
            Some(("" | "*" | "0.0.0.0", port)) => format!("0.0.0.0:{port}"),
            Some(("::" | "[::]", port)) => format!("[::]:{port}"),
            Some((host, port)) => format!("{host}:{port}"),
            None => String::new(),
        };
        if addr.parse::<std::net::SocketAddr>().is_err() {
            self.report.unmapped(
                at,
                line.text(),
                "gatehouse listens on IP:port addresses only",
            );
            return;
        }
        let rest = line.words.get(2..).unwrap_or(&[]);
        if rest.iter().any(|w| w == "ssl") {
            let crt = rest
                .iter()
                .position(|w| w == "crt")
                .and_then(|i| rest.get(i + 1));
            let Some(crt) = crt else {
                self.report.unmapped(at, line.text(), "ssl without crt");
                return;
            };
            let path = self.base.join(crt);
            if path.is_dir() {
                self.report.unmapped(
                    at,
                    line.text(),
                    "a directory of certificates: name each certificate in server.tls certificates",
                );
                return;
            }
            let path = path.display().to_string();
            self.out.tls.push(TlsOut {
                listen: vec![addr],
                certificates: vec![(path.clone(), path)],
            });
            self.report.map_note(
                at,
                line.text(),
                "server.tls (listen, cert, key)",
                "the PEM file holds the certificate and its key: gatehouse reads it as both cert and key",
            );
        } else {
            plain.push(addr);
            self.report.map(at, line.text(), "server.listen");
        }
    }

    fn rule(&mut self, line: &Line, acls: &HashMap<String, Vec<Cond>>) {
        let at = &line.origin;
        let backend = upstream_name(line.word(1));
        if line.word(0) == "default_backend" {
            self.report.map(
                at,
                line.text(),
                format!("route (any host, path \"/\") → upstream.{backend}"),
            );
            self.push_route(None, "/".to_owned(), &backend, &at.to_string());
            return;
        }
        let words = line.words.get(2..).unwrap_or(&[]);
        if words.first().map(String::as_str) != Some("if") {
            self.report.unmapped(
                at,
                line.text(),
                "only `use_backend NAME if ACL...` is carried over",
            );
            return;
        }
        // ACL names ANDed, or one inline `{ ... }`; `||`/`or` makes alternatives.
        let mut alternatives: Vec<Vec<Cond>> = vec![Vec::new()];
        let mut i = 1;
        while i < words.len() {
            let w = words[i].as_str();
            if w == "||" || w == "or" {
                alternatives.push(Vec::new());
            } else if w == "{" {
                let end = words[i..]
                    .iter()
                    .position(|x| x == "}")
                    .map_or(words.len(), |e| i + e);
                match cond(&words[i + 1..end]) {
                    Some(c) => {
                        if let Some(a) = alternatives.last_mut() {
                            a.push(c);
                        }
                    }
                    None => {
                        self.report.unmapped(
                            at,
                            line.text(),
                            "a condition other than hdr(host) or path_beg",
                        );
                        return;
                    }
                }
                i = end;
            } else if let Some(conds) = acls.get(w) {
                // Several lines of one ACL name are ORed: only one is kept.
                if let (Some(c), Some(a)) = (conds.first(), alternatives.last_mut()) {
                    a.push(c.clone());
                }
            } else {
                self.report.unmapped(
                    at,
                    line.text(),
                    format!("the condition {w} is not a hdr(host) or path_beg ACL"),
                );
                return;
            }
            i += 1;
        }
        let mut made = 0;
        for conds in alternatives {
            let hosts: Vec<&Cond> = conds
                .iter()
                .filter(|c| matches!(c, Cond::Host(_)))
                .collect();
            let paths: Vec<&Cond> = conds
                .iter()
                .filter(|c| matches!(c, Cond::Path(_)))
                .collect();
            if hosts.len() > 1 || paths.len() > 1 {
                self.report
                    .unmapped(at, line.text(), "two host or two path conditions ANDed");
                return;
            }
            let host_values: Vec<Option<String>> = match hosts.first() {
                Some(Cond::Host(v)) => v.iter().cloned().map(Some).collect(),
                _ => vec![None],
            };
            let path_values: Vec<String> = match paths.first() {
                Some(Cond::Path(v)) => v.clone(),
                _ => vec!["/".to_owned()],
            };
            for host in &host_values {
                for path in &path_values {
                    self.push_route(host.clone(), path.clone(), &backend, &at.to_string());
                    made += 1;
                }
            }
        }
        if made > 0 {
            self.report.map_note(
                at,
                line.text(),
                format!("route → upstream.{backend}"),
                "HAProxy takes the first rule that matches; gatehouse the most specific route (exact host, then wildcard, then any; longest path)",
            );
        }
    }

    fn push_route(&mut self, host: Option<String>, path: String, upstream: &str, from: &str) {
        if self
            .out
            .routes
            .iter()
            .any(|r| r.host == host && r.path == path)
        {
            return;
        }
        self.out.routes.push(RouteOut {
            host,
            path,
            upstream: upstream.to_owned(),
            from: from.to_owned(),
            ..RouteOut::default()
        });
    }
}

/// A condition gatehouse can route on.
#[derive(Debug, Clone)]
enum Cond {
    /// Host values (ORed).
    Host(Vec<String>),
    /// Path prefixes (ORed).
    Path(Vec<String>),
}

/// `hdr(host) [-i] VALUES...` or `path_beg VALUES...`.
fn cond(words: &[String]) -> Option<Cond> {
    let (fetch, rest) = words.split_first()?;
    let values: Vec<String> = rest
        .iter()
        .filter(|w| !w.starts_with('-'))
        .cloned()
        .collect();
    if values.is_empty() {
        return None;
    }
    match fetch.to_ascii_lowercase().as_str() {
        "hdr(host)" | "req.hdr(host)" => {
            let hosts: Vec<String> = values
                .iter()
                .map(|v| v.to_ascii_lowercase())
                .filter(|v| !v.contains(':'))
                .collect();
            (hosts.len() == values.len()).then_some(Cond::Host(hosts))
        }
        "path_beg" => values
            .iter()
            .all(|v| {
                v.starts_with('/')
                    && v.chars()
                        .all(|c| c.is_ascii_graphic() && c != '?' && c != '#')
            })
            .then_some(Cond::Path(values)),
        _ => None,
    }
}
