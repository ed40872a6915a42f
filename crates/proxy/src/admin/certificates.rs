//! The certificates the TLS listeners serve, for the admin endpoints: a row each on the status
//! page (and in `/status.json`), and `gatehouse_certificate_expiry_seconds{name,source}` on
//! `/metrics` (seconds until the certificate ends; negative once it has). Certificates from
//! files come from the snapshot in force, those obtained through ACME from the ACME state,
//! with how their renewal stands.

use std::fmt::Write as _;
use std::time::SystemTime;

use serde::Serialize;

use crate::observe::access_log::rfc3339;
use crate::respond::escape_html;
use crate::snapshot::Snapshot;

pub const EXPIRY_METRIC: &str = "gatehouse_certificate_expiry_seconds";

/// One served certificate.
#[derive(Debug, Clone, Serialize)]
pub struct CertificateStatus {
    /// Its first DNS name (the metric's `name` label).
    pub name: String,
    /// `file` or `acme`.
    pub source: &'static str,
    pub names: Vec<String>,
    /// RFC 3339, UTC.
    pub not_after: String,
    /// Negative once it has expired.
    pub expires_in_seconds: i64,
    /// ACME only: the last failed renewal, until one succeeds.
    pub renewal_error: Option<String>,
    /// ACME only: when the next order or check is due (RFC 3339).
    pub next_attempt: Option<String>,
}

/// Every certificate of the snapshot's TLS listeners (each once), then ACME's.
pub fn collect(snapshot: &Snapshot) -> Vec<CertificateStatus> {
    let now = SystemTime::now();
    let mut out: Vec<CertificateStatus> = Vec::new();
    for listener in &snapshot.config.server.tls {
        for cert in &listener.certificates {
            let name = cert
                .names
                .first()
                .cloned()
                .unwrap_or_else(|| cert.cert_path.display().to_string());
            if out.iter().any(|c| c.name == name && c.source == "file") {
                continue;
            }
            out.push(CertificateStatus {
                name,
                source: "file",
                names: cert.names.clone(),
                not_after: rfc3339(cert.not_after),
                expires_in_seconds: seconds_until(now, cert.not_after),
                renewal_error: None,
                next_attempt: None,
            });
        }
    }
    let progress = snapshot.acme.progress();
    for cert in snapshot.acme.certs().iter() {
        let ours = progress
            .domains
            .first()
            .is_some_and(|d| cert.names.contains(d));
        out.push(CertificateStatus {
            name: cert.names.first().cloned().unwrap_or_default(),
            source: "acme",
            names: cert.names.clone(),
            not_after: rfc3339(cert.not_after),
            expires_in_seconds: seconds_until(now, cert.not_after),
            renewal_error: progress.last_error.clone().filter(|_| ours),
            next_attempt: progress.next_attempt.filter(|_| ours).map(rfc3339),
        });
    }
    out
}

fn seconds_until(now: SystemTime, end: SystemTime) -> i64 {
    match end.duration_since(now) {
        Ok(left) => i64::try_from(left.as_secs()).unwrap_or(i64::MAX),
        Err(past) => -i64::try_from(past.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// The expiry gauge in the Prometheus text format, appended to the registry's output.
pub fn metrics_text(certs: &[CertificateStatus]) -> String {
    let mut text = format!(
        "# HELP {EXPIRY_METRIC} Seconds until a served TLS certificate expires (negative once it has).\n# TYPE {EXPIRY_METRIC} gauge\n"
    );
    for cert in certs {
        let _ = writeln!(
            text,
            "{EXPIRY_METRIC}{{name=\"{}\",source=\"{}\"}} {}",
            label_value(&cert.name),
            cert.source,
            cert.expires_in_seconds
        );
    }
    text
}

/// A label value escaped as the text format wants (backslash, quote, newline).
fn label_value(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The status page's section.
pub fn html(certs: &[CertificateStatus], page: &mut String) {
    page.push_str("<section><h2>Certificates</h2>\n");
    if certs.is_empty() {
        page.push_str("<p>No TLS listener.</p>\n</section>\n");
        return;
    }
    page.push_str(
        "<table id=\"certificates\">\n<thead><tr><th>name</th><th>source</th><th>names</th>\
         <th>expires</th><th class=\"num\">days left</th><th>renewal</th></tr></thead>\n<tbody>\n",
    );
    for cert in certs {
        let days = cert.expires_in_seconds / 86_400;
        let class = if cert.expires_in_seconds < 7 * 86_400 {
            "bad"
        } else if cert.expires_in_seconds < 21 * 86_400 {
            "warn"
        } else {
            "good"
        };
        let renewal = match (&cert.renewal_error, &cert.next_attempt) {
            (Some(error), Some(next)) => format!("failing: {error}; next try {next}"),
            (Some(error), None) => format!("failing: {error}"),
            (None, Some(next)) => format!("next check {next}"),
            (None, None) => String::new(),
        };
        let _ = writeln!(
            page,
            "<tr class=\"certificate\" data-name=\"{name}\" data-source=\"{source}\"><td><code>{name}</code></td>\
             <td>{source}</td><td>{names}</td><td>{not_after}</td>\
             <td class=\"num\"><span class=\"{class}\">{days}</span></td><td>{renewal}</td></tr>",
            name = escape_html(&cert.name),
            source = cert.source,
            names = escape_html(&cert.names.join(", ")),
            not_after = escape_html(&cert.not_after),
            renewal = escape_html(&renewal),
        );
    }
    page.push_str("</tbody>\n</table>\n</section>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gauge_has_one_escaped_sample_per_certificate() {
        let cert = CertificateStatus {
            name: "a\"b.test".to_owned(),
            source: "acme",
            names: vec!["a.test".to_owned()],
            not_after: String::new(),
            expires_in_seconds: -5,
            renewal_error: None,
            next_attempt: None,
        };
        let text = metrics_text(&[cert]);
        assert!(text.contains("# TYPE gatehouse_certificate_expiry_seconds gauge"));
        assert!(text.contains(
            "gatehouse_certificate_expiry_seconds{name=\"a\\\"b.test\",source=\"acme\"} -5\n"
        ));
    }
}
