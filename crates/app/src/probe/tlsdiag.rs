//! TLS in words, shared by `probe` and `doctor`: the negotiated facts with the certificate's
//! expiry as a date and days left, the warning for a certificate that expires soon, and, when a
//! handshake fails on the certificate, a second look at what the server presented and why it
//! did not verify.
//!
//! The second look exists because the proxy's classified [`Failure`] keeps the verifier's
//! reason only as words (with Unix timestamps); to say "expired 3 days ago, on 2025-05-01" or
//! "valid for a.example, not b.example" the structured [`CertificateError`] is needed, and the
//! only place it can be had is a certificate verifier. The verdict itself always comes from the
//! real handshake; the second look only explains it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gatehouse_proxy::client_body::RequestBody;
use gatehouse_proxy::failure::Failure;
use gatehouse_proxy::failure::classify::find_cause;
use gatehouse_proxy::upstream::connect;
use gatehouse_proxy::upstream::tls::{self, TlsFacts};
use http::header;
use http::{Method, Request};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use serde::Serialize;
use tokio::net::TcpStream;

/// A certificate that expires within this many days gets a warning.
pub(crate) const EXPIRY_WARNING_DAYS: i64 = 14;

const DAY: i64 = 24 * 3600;

/// The header limit of the plain-HTTP check: generous, any answer proves the point.
const PLAIN_HEADER_LIMIT: usize = 1024 * 1024;

/// The last second RFC 3339 (and humantime) can write: 9999-12-31T23:59:59Z.
const LAST_WRITABLE_SECOND: i64 = 253_402_300_799;

/// A completed handshake as reported: the proxy's [`TlsFacts`] (JSON fields `protocol`,
/// `cipher`, `alpn`, `subject`, `issuer`, `not_after` in Unix seconds) plus the expiry in
/// human terms (`expires`, `days_left`).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct TlsReport {
    #[serde(flatten)]
    pub(crate) facts: TlsFacts,
    /// The certificate's notAfter, RFC 3339 in UTC, e.g. `2026-05-01T12:00:00Z`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) expires: Option<String>,
    /// Days until notAfter, rounded to the nearest day; negative once it has passed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) days_left: Option<i64>,
}

impl TlsReport {
    pub(crate) fn new(facts: TlsFacts, now: SystemTime) -> Self {
        let now = unix(now);
        Self {
            expires: facts.not_after.and_then(rfc3339),
            days_left: facts.not_after.map(|t| days_left(t, now)),
            facts,
        }
    }

    /// `TLSv1.3 TLS13_AES_256_GCM_SHA384, ALPN http/1.1`.
    pub(crate) fn negotiated(&self) -> String {
        let alpn = self
            .facts
            .alpn
            .as_deref()
            .map(|p| format!(", ALPN {p}"))
            .unwrap_or_default();
        format!("{} {}{alpn}", self.facts.protocol, self.facts.cipher)
    }

    /// `CN=app.internal, issued by CN=Example CA`, when the certificate parsed.
    pub(crate) fn certificate(&self) -> Option<String> {
        let subject = self.facts.subject.as_deref()?;
        Some(subject_words(subject, self.facts.issuer.as_deref()))
    }

    /// `2026-05-01 12:00:00 UTC (in 364 days)`, or `EXPIRED 3 days ago (...)`.
    pub(crate) fn expiry(&self, now: SystemTime) -> Option<String> {
        self.facts.not_after.map(|t| expiry_words(t, unix(now)))
    }

    /// The warning for a certificate that expires within [`EXPIRY_WARNING_DAYS`].
    pub(crate) fn expiry_warning(&self, now: SystemTime) -> Option<String> {
        expiry_warning(self.facts.not_after?, unix(now))
    }
}

/// The certificate a server presented in a handshake that failed on it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct CertificateInfo {
    pub(crate) subject: String,
    pub(crate) issuer: String,
    /// notAfter in Unix seconds.
    pub(crate) not_after: i64,
    /// notAfter, RFC 3339 in UTC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) expires: Option<String>,
    /// Days until notAfter, rounded; negative once it has passed.
    pub(crate) days_left: i64,
}

impl CertificateInfo {
    fn from_der(der: &[u8], now: SystemTime) -> Option<Self> {
        let (subject, issuer, not_after) = tls::certificate_facts(der)?;
        Some(Self {
            subject,
            issuer,
            expires: rfc3339(not_after),
            days_left: days_left(not_after, unix(now)),
            not_after,
        })
    }

    /// `CN=app.internal, issued by CN=Example CA`.
    pub(crate) fn words(&self) -> String {
        subject_words(&self.subject, Some(&self.issuer))
    }

    pub(crate) fn expiry(&self, now: SystemTime) -> String {
        expiry_words(self.not_after, unix(now))
    }

    pub(crate) fn self_signed(&self) -> bool {
        self.subject == self.issuer
    }
}

/// Why a certificate did not verify, in the terms a fix needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CertProblem {
    /// notAfter has passed (Unix seconds, when known).
    Expired {
        not_after: Option<i64>,
    },
    /// notBefore is still to come.
    NotYetValid {
        not_before: Option<i64>,
    },
    /// No trusted CA issued it (or a self-signed certificate).
    UnknownIssuer,
    /// Not valid for the name that was verified; the names it is valid for.
    WrongName {
        expected: String,
        presented: Vec<String>,
    },
    /// Not meant for TLS servers (extended key usage).
    WrongPurpose,
    Revoked,
    /// Anything else, in rustls's words.
    Other(String),
}

impl CertProblem {
    fn from_error(error: &CertificateError) -> Self {
        match error {
            CertificateError::Expired => Self::Expired { not_after: None },
            CertificateError::ExpiredContext { not_after, .. } => Self::Expired {
                not_after: i64::try_from(not_after.as_secs()).ok(),
            },
            CertificateError::NotValidYet => Self::NotYetValid { not_before: None },
            CertificateError::NotValidYetContext { not_before, .. } => Self::NotYetValid {
                not_before: i64::try_from(not_before.as_secs()).ok(),
            },
            CertificateError::UnknownIssuer => Self::UnknownIssuer,
            CertificateError::NotValidForNameContext {
                expected,
                presented,
            } => Self::WrongName {
                expected: expected.to_str().into_owned(),
                presented: names(presented),
            },
            CertificateError::NotValidForName => Self::WrongName {
                expected: String::new(),
                presented: Vec::new(),
            },
            CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
                Self::WrongPurpose
            }
            CertificateError::Revoked => Self::Revoked,
            other => Self::Other(other.to_string()),
        }
    }

    /// The reason in words, naming the certificate when it is known: "the certificate
    /// (CN=x, issued by CN=y) EXPIRED 3 days ago (2025-05-01 12:00:00 UTC)".
    pub(crate) fn words(&self, cert: Option<&CertificateInfo>, now: SystemTime) -> String {
        let which = cert.map_or_else(
            || "the certificate".to_owned(),
            |c| format!("the certificate ({})", c.words()),
        );
        let now = unix(now);
        match self {
            Self::Expired { not_after } => match not_after.or(cert.map(|c| c.not_after)) {
                Some(t) => format!("{which} {}", expiry_words(t, now)),
                None => format!("{which} has expired"),
            },
            Self::NotYetValid { not_before } => match not_before.and_then(rfc3339) {
                Some(date) => format!(
                    "{which} is not valid before {}: this host's clock or the certificate's start date is wrong",
                    text_date(&date)
                ),
                None => format!("{which} is not valid yet"),
            },
            // Named by its subject alone: the issuer is the point of the sentence.
            Self::UnknownIssuer => match cert {
                Some(c) if c.self_signed() => {
                    format!(
                        "the certificate ({}) is self-signed and not trusted",
                        c.subject
                    )
                }
                Some(c) => format!(
                    "the certificate ({}) is issued by {}, a CA that is not trusted",
                    c.subject, c.issuer
                ),
                None => format!("{which} is issued by a CA that is not trusted"),
            },
            Self::WrongName {
                expected,
                presented,
            } => match presented.as_slice() {
                [] => format!("{which} is not valid for the name {expected}"),
                names => format!(
                    "{which} is valid for {}, not for {expected}",
                    names.join(", ")
                ),
            },
            Self::WrongPurpose => {
                format!("{which} is not meant for a TLS server (its extended key usage)")
            }
            Self::Revoked => format!("{which} has been revoked"),
            Self::Other(reason) => format!("{which} does not verify: {reason}"),
        }
    }
}

/// The names a certificate is valid for, from webpki's debug forms (`DnsName("a.example")`,
/// `IpAddress(10.0.0.1)`): DNS names and addresses, which are what a server name can match.
fn names(presented: &[String]) -> Vec<String> {
    presented
        .iter()
        .filter_map(|name| {
            let dns = name
                .strip_prefix("DnsName(\"")
                .and_then(|rest| rest.strip_suffix("\")"));
            let ip = name
                .strip_prefix("IpAddress(")
                .and_then(|rest| rest.strip_suffix(')'));
            dns.or(ip).map(str::to_owned)
        })
        .collect()
}

/// What a second handshake learned about a certificate that failed verification.
#[derive(Debug, Clone)]
pub(crate) struct Inspection {
    pub(crate) certificate: Option<CertificateInfo>,
    /// `None` when it verified this time (the first failure was something else).
    pub(crate) problem: Option<CertProblem>,
}

/// Connects to `addr` again and repeats the handshake with a verifier that trusts `roots` and
/// records what the server presents and why it fails. `None` when nothing could be learned
/// (no connection, no trust roots to verify with).
pub(crate) async fn inspect(
    addr: SocketAddr,
    server_name: &str,
    roots: Arc<RootCertStore>,
    timeout: Duration,
) -> Option<Inspection> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let inner = WebPkiServerVerifier::builder_with_provider(roots, Arc::clone(&provider))
        .build()
        .ok()?;
    let recorder = Arc::new(Recorder {
        inner,
        seen: Mutex::new(None),
    });
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .ok()?
        .with_root_certificates(RootCertStore::empty())
        .with_no_client_auth();
    config
        .dangerous()
        .set_certificate_verifier(Arc::clone(&recorder) as Arc<dyn ServerCertVerifier>);
    let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
        .await
        .ok()?
        .ok()?;
    // The outcome is in the recorder; the handshake's own result was already reported.
    let _ = tls::handshake(stream, server_name, Arc::new(config), timeout).await;
    let seen = recorder
        .seen
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take()?;
    let now = SystemTime::now();
    Some(Inspection {
        certificate: seen
            .end_entity
            .as_deref()
            .and_then(|der| CertificateInfo::from_der(der, now)),
        problem: seen.error.as_ref().map(CertProblem::from_error),
    })
}

/// What [`Recorder`] saw of the one certificate it verified.
#[derive(Debug)]
struct Seen {
    end_entity: Option<Vec<u8>>,
    error: Option<CertificateError>,
}

/// A verifier that verifies as webpki does and keeps the certificate and the reason.
#[derive(Debug)]
struct Recorder {
    inner: Arc<WebPkiServerVerifier>,
    seen: Mutex<Option<Seen>>,
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let result = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        );
        let error = match &result {
            Err(rustls::Error::InvalidCertificate(error)) => Some(error.clone()),
            _ => None,
        };
        *self.seen.lock().unwrap_or_else(PoisonError::into_inner) = Some(Seen {
            end_entity: Some(end_entity.as_ref().to_vec()),
            error,
        });
        result
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The status `addr` answers a plain HTTP/1.1 `HEAD /` with, if it does: after a handshake
/// failed as `tls_protocol_error`, this tells "the port speaks plain HTTP" apart from other
/// reasons. `host` is the `Host` header (an authority, `host:port`).
pub(crate) async fn plain_http_status(
    addr: SocketAddr,
    host: &str,
    timeout: Duration,
) -> Option<u16> {
    let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
        .await
        .ok()?
        .ok()?;
    let (mut sender, _) = connect::handshake(stream, timeout, PLAIN_HEADER_LIMIT)
        .await
        .ok()?;
    let request = Request::builder()
        .method(Method::HEAD)
        .uri("/")
        .header(header::HOST, host)
        .header(
            header::USER_AGENT,
            concat!("gatehouse/", env!("CARGO_PKG_VERSION")),
        )
        .header(header::CONNECTION, "close")
        .body(RequestBody::empty())
        .ok()?;
    let response = tokio::time::timeout(timeout, sender.send_request(request))
        .await
        .ok()?
        .ok()?;
    Some(response.status().as_u16())
}

/// A TLS alert that arrived after the handshake completed, as the first read of the response
/// met it: in TLS 1.3 a server checks the client's certificate after the client has finished
/// its side of the handshake, so `certificate_required` shows up here rather than in the
/// handshake. Classified as the handshake's own failures are.
pub(crate) fn alert_after_handshake(err: &hyper::Error, server_name: &str) -> Option<Failure> {
    let chain: &(dyn std::error::Error + 'static) = err;
    let io = find_cause::<std::io::Error>(chain)?;
    let is_alert = io
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|e| matches!(e, rustls::Error::AlertReceived(_)));
    is_alert.then(|| tls::classify_handshake_error(server_name, io))
}

/// What a TLS alert from the server usually means, by its RFC 8446 name.
pub(crate) fn alert_meaning(alert: &str) -> Option<&'static str> {
    Some(match alert {
        "certificate_required" => "the server requires a client certificate (mutual TLS)",
        "handshake_failure" => {
            "no TLS version or cipher suite in common, or the server requires a client certificate"
        }
        "protocol_version" => "no TLS version in common (gatehouse speaks TLS 1.2 and 1.3)",
        "unrecognized_name" => "the server has no certificate for the name sent (SNI)",
        "no_application_protocol" => "the server accepts none of the ALPN protocols offered",
        "bad_certificate"
        | "unsupported_certificate"
        | "certificate_unknown"
        | "unknown_ca"
        | "certificate_expired"
        | "certificate_revoked"
        | "access_denied" => "the server rejected the client certificate",
        "insufficient_security" => "the server wants stronger cipher suites than were offered",
        _ => return None,
    })
}

/// `EXPIRED 3 days ago (2025-05-01 12:00:00 UTC)` or `2026-05-01 12:00:00 UTC (in 364 days)`.
pub(crate) fn expiry_words(not_after: i64, now: i64) -> String {
    let date = rfc3339(not_after).map_or_else(|| format!("@{not_after}"), |d| text_date(&d));
    let left = not_after - now;
    if left <= 0 {
        format!("EXPIRED {} ago ({date})", span(-left))
    } else {
        format!("{date} (in {})", span(left))
    }
}

/// The warning for a certificate that is still valid but expires within
/// [`EXPIRY_WARNING_DAYS`].
pub(crate) fn expiry_warning(not_after: i64, now: i64) -> Option<String> {
    let left = not_after - now;
    (left > 0 && left < EXPIRY_WARNING_DAYS * DAY).then(|| {
        format!(
            "the TLS certificate expires in {} ({}): renew it, or every request gets 502 tls_certificate_error from then on",
            span(left),
            rfc3339(not_after).map_or_else(|| format!("@{not_after}"), |d| text_date(&d))
        )
    })
}

/// `5 days`, `1 day`, `7 hours`, `12 minutes`: whole days (rounded) from one day up.
fn span(seconds: i64) -> String {
    let plural = |n: i64, unit: &str| {
        if n == 1 {
            format!("1 {unit}")
        } else {
            format!("{n} {unit}s")
        }
    };
    if seconds >= DAY {
        plural((seconds + DAY / 2) / DAY, "day")
    } else if seconds >= 3600 {
        plural((seconds + 1800) / 3600, "hour")
    } else {
        plural((seconds + 30) / 60, "minute")
    }
}

/// Whole days (rounded to the nearest) from `now` until `not_after`; negative once past.
pub(crate) fn days_left(not_after: i64, now: i64) -> i64 {
    (not_after - now + DAY / 2).div_euclid(DAY)
}

/// `2026-05-01T12:00:00Z`; `None` outside what RFC 3339 can write.
fn rfc3339(unix: i64) -> Option<String> {
    let secs = u64::try_from(unix)
        .ok()
        .filter(|_| unix <= LAST_WRITABLE_SECOND)?;
    Some(humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string())
}

/// `2026-05-01T12:00:00Z` as a person reads it: `2026-05-01 12:00:00 UTC`.
pub(crate) fn text_date(rfc3339: &str) -> String {
    rfc3339.replacen('T', " ", 1).replace('Z', " UTC")
}

fn subject_words(subject: &str, issuer: Option<&str>) -> String {
    match issuer {
        Some(issuer) if issuer == subject => format!("{subject}, self-signed"),
        Some(issuer) => format!("{subject}, issued by {issuer}"),
        None => subject.to_owned(),
    }
}

fn unix(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(since) => i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_750_000_000; // 2025-06-15T15:06:40Z

    #[test]
    fn expiry_reads_as_a_date_and_days_left() {
        assert_eq!(
            expiry_words(NOW + 5 * DAY - 10, NOW),
            "2025-06-20 15:06:30 UTC (in 5 days)"
        );
        assert_eq!(
            expiry_words(NOW - DAY - 10, NOW),
            "EXPIRED 1 day ago (2025-06-14 15:06:30 UTC)"
        );
        assert_eq!(
            expiry_words(NOW + 3 * 3600, NOW),
            "2025-06-15 18:06:40 UTC (in 3 hours)"
        );
        assert_eq!(days_left(NOW + 5 * DAY - 10, NOW), 5);
        assert_eq!(days_left(NOW - DAY - 10, NOW), -1);
        assert_eq!(days_left(NOW + 365 * DAY, NOW), 365);
    }

    #[test]
    fn only_a_valid_certificate_close_to_its_end_is_warned_about() {
        let warning = expiry_warning(NOW + 5 * DAY, NOW).unwrap_or_default();
        assert!(warning.contains("expires in 5 days"), "{warning}");
        assert!(warning.contains("2025-06-20"), "{warning}");
        assert!(expiry_warning(NOW + 14 * DAY, NOW).is_none());
        assert!(expiry_warning(NOW + 13 * DAY, NOW).is_some());
        assert!(
            expiry_warning(NOW - DAY, NOW).is_none(),
            "an expired one is a failure, not a warning"
        );
    }

    #[test]
    fn dates_past_year_9999_are_not_written() {
        assert_eq!(
            rfc3339(LAST_WRITABLE_SECOND).as_deref(),
            Some("9999-12-31T23:59:59Z")
        );
        assert_eq!(rfc3339(LAST_WRITABLE_SECOND + 1), None);
        assert_eq!(rfc3339(-1), None);
        assert!(expiry_words(i64::MAX / 2, NOW).starts_with('@'));
    }

    #[test]
    fn problems_name_the_certificate_and_the_reason() {
        let cert = CertificateInfo {
            subject: "CN=app".to_owned(),
            issuer: "CN=Test CA".to_owned(),
            not_after: NOW - 3 * DAY,
            expires: rfc3339(NOW - 3 * DAY),
            days_left: -3,
        };
        let now = UNIX_EPOCH + Duration::from_secs(NOW as u64);
        let expired = CertProblem::Expired { not_after: None }.words(Some(&cert), now);
        assert_eq!(
            expired,
            "the certificate (CN=app, issued by CN=Test CA) EXPIRED 3 days ago (2025-06-12 15:06:40 UTC)"
        );
        let issuer = CertProblem::UnknownIssuer.words(Some(&cert), now);
        assert_eq!(
            issuer,
            "the certificate (CN=app) is issued by CN=Test CA, a CA that is not trusted"
        );
        let name = CertProblem::WrongName {
            expected: "b.example".to_owned(),
            presented: vec!["a.example".to_owned(), "c.example".to_owned()],
        }
        .words(None, now);
        assert_eq!(
            name,
            "the certificate is valid for a.example, c.example, not for b.example"
        );
        assert_eq!(
            names(&[
                "DnsName(\"a.example\")".to_owned(),
                "IpAddress(10.0.0.1)".to_owned(),
                "DirectoryName".to_owned()
            ]),
            ["a.example", "10.0.0.1"]
        );
    }
}
