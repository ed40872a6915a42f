//! The doctor's report as text: per upstream, one verdict line per server with the steps that
//! led to it, the cause and the fix; then the config's smells and a summary.

use std::fmt::Write as _;
use std::time::SystemTime;

use super::DoctorReport;
use super::check::{ServerReport, TlsStep};
use crate::naming::Key;

/// What the limits are called in this report (gatehouse's keys, or a foreign proxy's).
struct Names {
    response_timeout: String,
    header_limit: String,
}

pub(crate) fn text(report: &DoctorReport) -> String {
    let mut out = String::new();
    let limits = match report.proxy {
        "gatehouse" => String::new(),
        proxy => format!(", with {proxy}'s limits and defaults"),
    };
    let _ = writeln!(
        out,
        "gatehouse doctor: {}{limits} ({} upstream(s), {} server(s))",
        report.config,
        report.upstreams.len(),
        report.summary.servers
    );
    for pool in &report.upstreams {
        let routes = if pool.routes.is_empty() {
            "no route".to_owned()
        } else {
            pool.routes.join(", ")
        };
        let _ = writeln!(out, "\nupstream {} (routes: {routes})", pool.name);
        if let Some(problem) = &pool.problem {
            let _ = writeln!(out, "  FAIL  {problem}");
        }
        let names = Names {
            response_timeout: report.naming.short(&pool.name, Key::ResponseTimeout),
            header_limit: report.naming.short(&pool.name, Key::MaxResponseHeaderSize),
        };
        for server in &pool.servers {
            server_block(&mut out, server, &names);
        }
    }
    if !report.smells.is_empty() {
        let _ = writeln!(out, "\nconfig");
        for smell in &report.smells {
            let _ = writeln!(out, "  warning: {smell}");
        }
    }
    let summary = &report.summary;
    let kinds: Vec<String> = summary
        .kinds
        .iter()
        .map(|(kind, n)| format!("{kind} {n}"))
        .collect();
    let failing = if kinds.is_empty() {
        format!("{} failing", summary.failing)
    } else {
        format!("{} failing ({})", summary.failing, kinds.join(", "))
    };
    let empty = match summary.empty_upstreams {
        0 => String::new(),
        n => format!("; {n} routed upstream(s) without servers"),
    };
    let _ = writeln!(
        out,
        "\nsummary: {} server(s): {} healthy, {failing}{empty}; {} warning(s)",
        summary.servers, summary.healthy, summary.warnings
    );
    out
}

/// The handshake: what it negotiated, with which name, and the certificate with its expiry
/// (the one presented, also when it failed verification).
fn tls_lines(out: &mut String, tls: &TlsStep) {
    let now = SystemTime::now();
    let name = format!("name {}", tls.server_name);
    match (&tls.negotiated, tls.handshake_ms) {
        (Some(negotiated), ms) => {
            let took = ms.map(|ms| format!(" in {ms:.1} ms")).unwrap_or_default();
            let _ = writeln!(
                out,
                "      tls      {}{took} ({name})",
                negotiated.negotiated()
            );
            if let Some(cert) = negotiated.certificate() {
                let _ = writeln!(out, "      cert     {cert}");
            }
            if let Some(expiry) = negotiated.expiry(now) {
                let _ = writeln!(out, "      expires  {expiry}");
            }
        }
        (None, _) => {
            let _ = writeln!(
                out,
                "      tls      handshake failed ({name}, ALPN {})",
                tls.alpn_offered.join(", ")
            );
        }
    }
    if let Some(cert) = &tls.certificate {
        let _ = writeln!(out, "      cert     {}", cert.words());
        let _ = writeln!(out, "      expires  {}", cert.expiry(now));
    }
}

fn server_block(out: &mut String, server: &ServerReport, names: &Names) {
    let verdict = &server.verdict;
    let headline = match (verdict.healthy, verdict.kind, verdict.status) {
        (true, _, _) => format!("ok    {}", verdict.summary),
        (false, Some(kind), Some(status)) => {
            format!("FAIL  {kind}: a request routed here gets {status}")
        }
        (false, _, _) => format!("FAIL  {}", verdict.summary),
    };
    let _ = writeln!(out, "  {:<44} {headline}", server.label);
    if let Some(dns) = &server.dns {
        let addrs: Vec<String> = dns.addresses.iter().map(ToString::to_string).collect();
        let _ = writeln!(
            out,
            "      dns      {} → {} in {:.1} ms",
            server.server.rsplit_once(':').map_or("?", |(h, _)| h),
            addrs.join(", "),
            dns.ms
        );
    }
    if let Some(ms) = server.connect_ms {
        let _ = writeln!(out, "      connect  {ms:.1} ms");
    }
    if let Some(tls) = &server.tls {
        tls_lines(out, tls);
    }
    if let Some(http) = &server.http {
        let mut line = format!("      http     {}", http.request);
        // HTTP/1.1 is the usual case; HTTP/2 is worth saying.
        if let Some(protocol) = http.protocol.filter(|p| *p != "http/1.1") {
            let _ = write!(line, " over {protocol}");
        }
        if let Some(status) = http.status {
            let _ = write!(line, " → {status}");
        }
        if let Some(ms) = http.first_byte_ms {
            let _ = write!(
                line,
                " in {ms:.1} ms ({} {:.0} ms)",
                names.response_timeout, http.response_timeout_ms
            );
        }
        if let Some(ms) = http.late_first_byte_ms {
            let _ = write!(
                line,
                " answered after {ms:.1} ms ({} {:.0} ms)",
                names.response_timeout, http.response_timeout_ms
            );
        }
        if let Some(bytes) = http.header_bytes {
            let _ = write!(
                line,
                ", headers {bytes} B ({} {} B)",
                names.header_limit, http.header_limit
            );
        }
        if let Some(seconds) = http.keep_alive_timeout_s {
            let _ = write!(line, ", keeps idle connections {seconds} s");
        }
        let _ = writeln!(out, "{line}");
    }
    if !verdict.healthy && verdict.kind.is_some() {
        let _ = writeln!(out, "      what     {}", verdict.summary);
    }
    if let Some(cause) = &verdict.cause {
        let _ = writeln!(out, "      cause    {cause}");
    }
    if let Some(fix) = &verdict.fix {
        let _ = writeln!(out, "      fix      {fix}");
    }
    for warning in &server.warnings {
        let _ = writeln!(out, "      warning  {warning}");
    }
}
