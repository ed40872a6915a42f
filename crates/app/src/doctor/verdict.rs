//! The verdict on one server: healthy or not, the failure kind a request routed to it would
//! meet, the likely root cause in the words of this case's facts, and the fix.
//!
//! The kind and its generic hint come from `gatehouse_proxy::failure`; what this module adds is
//! the specific cause the doctor could establish (a near-miss port, a full accept queue, the
//! measured header size, the real latency) and a fix that names the config key to change.

use std::time::Duration;

use gatehouse_config::HealthCheck;
use gatehouse_proxy::failure::{Failure, FailureKind};
use gatehouse_proxy::upstream::server::ConnSettings;
use http::StatusCode;
use serde::Serialize;

use super::check::{Facts, HttpStep};
use super::ports::PortHint;

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Verdict {
    pub(crate) healthy: bool,
    /// The failure kind a request sent to this server would meet (the Proxy-Status `error`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) kind: Option<&'static str>,
    /// The status gatehouse would answer with that failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) status: Option<u16>,
    /// What was observed, in one line.
    pub(crate) summary: String,
    /// The likely root cause.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) cause: Option<String>,
    /// What to do about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) fix: Option<String>,
}

impl Verdict {
    pub(crate) fn healthy(summary: String) -> Self {
        Self {
            healthy: true,
            kind: None,
            status: None,
            summary,
            cause: None,
            fix: None,
        }
    }

    fn unhealthy(summary: String, cause: String, fix: String) -> Self {
        Self {
            healthy: false,
            kind: None,
            status: None,
            summary,
            cause: Some(cause),
            fix: Some(fix),
        }
    }
}

/// The verdict for a server where a request would fail with `failure`.
pub(crate) fn failed(failure: &Failure, facts: &Facts) -> Verdict {
    let (cause, fix) = explain(failure, facts);
    Verdict {
        healthy: false,
        kind: Some(failure.kind.token()),
        status: Some(failure.status().as_u16()),
        summary: failure.details.clone(),
        cause: Some(cause),
        fix: Some(fix),
    }
}

/// The verdict for a server that answered the health request with `status`.
pub(crate) fn answered(status: StatusCode, health: Option<&HealthCheck>, facts: &Facts) -> Verdict {
    let code = status.as_u16();
    let request = &facts.request;
    match health {
        Some(check) if check.expect_status.iter().any(|r| r.contains(code)) => {
            Verdict::healthy(format!("{request} answered {status}"))
        }
        Some(check) => {
            let expected: Vec<String> = check
                .expect_status
                .iter()
                .map(|r| {
                    if r.low == r.high {
                        r.low.to_string()
                    } else {
                        format!("{}-{}", r.low, r.high)
                    }
                })
                .collect();
            Verdict::unhealthy(
                format!("{request} answered {status}, not {}", expected.join(", ")),
                format!(
                    "the server fails its health check, so gatehouse takes it out of rotation; with every server of upstream {} out, requests get 503 destination_unavailable",
                    facts.pool
                ),
                format!(
                    "make {request} answer {} (see the backend's logs), or correct upstream.{}.health.path / expect_status",
                    expected.join(", "),
                    facts.pool
                ),
            )
        }
        None if status.is_server_error() => Verdict::unhealthy(
            format!("{request} answered {status}"),
            format!(
                "the backend is up but failing; gatehouse passes its {code} on unchanged (Proxy-Status: received-status={code})"
            ),
            format!(
                "see the backend's logs; add [upstream.{}.health] so that a failing server is taken out of rotation",
                facts.pool
            ),
        ),
        None => Verdict::healthy(format!("{request} answered {status}")),
    }
}

/// Warnings for a healthy server that is close to a limit.
pub(crate) fn latency_warnings(step: &HttpStep, settings: &ConnSettings) -> Vec<String> {
    let mut warnings = Vec::new();
    if let Some(ms) = step.first_byte_ms {
        let limit = settings.response_timeout.as_secs_f64() * 1000.0;
        if ms > limit / 2.0 {
            warnings.push(format!(
                "answered in {ms:.1} ms, more than half of response_timeout ({}): a slower moment gives 504 http_response_timeout",
                human(settings.response_timeout)
            ));
        }
    }
    if let Some(bytes) = step.header_bytes
        && bytes * 4 > step.header_limit * 3
    {
        warnings.push(format!(
            "the response headers are {bytes} bytes, over 3/4 of max_response_header_size ({} bytes)",
            step.header_limit
        ));
    }
    warnings
}

/// The root cause and the fix for a failure, as specific as the facts allow.
fn explain(failure: &Failure, facts: &Facts) -> (String, String) {
    let pool = &facts.pool;
    let servers_key = format!("upstream.{pool}.servers");
    let at = facts
        .address
        .map_or_else(|| facts.server.clone(), |a| a.to_string());
    let setting = |pick: fn(&ConnSettings) -> Duration| {
        facts
            .settings
            .as_ref()
            .map_or_else(|| "?".to_owned(), |s| human(pick(s)))
    };
    match failure.kind {
        FailureKind::DnsError => (
            failure.details.clone(),
            format!("correct the host name in {servers_key}, or add it to DNS or /etc/hosts"),
        ),
        FailureKind::DnsTimeout => (
            format!("the DNS resolver did not answer: {}", failure.details),
            "check [dns] nameservers (or /etc/resolv.conf) and raise dns.timeout if the resolver is merely slow".to_owned(),
        ),
        FailureKind::DestinationIpProhibited => (
            failure.details.clone(),
            format!(
                "fix the server's address (or its DNS record); if it is meant, remove the range from upstream.{pool}.deny_addresses"
            ),
        ),
        FailureKind::DestinationIpUnroutable => (
            format!("there is no network route to {at}: {}", failure.details),
            format!("check the address in {servers_key} and this host's network and routes"),
        ),
        FailureKind::ConnectionRefused => refused(facts, &at, &servers_key),
        FailureKind::ConnectionTimeout => {
            if let Some(hint @ PortHint::QueueFull(_)) = facts.port_hints.first() {
                (
                    hint.to_string(),
                    "the backend stopped accepting connections: see whether it is hung or overloaded (its logs, its worker pool) and restart it".to_owned(),
                )
            } else {
                (
                    format!(
                        "connect to {at} did not complete within connect_timeout ({}): a firewall drops the packets, or the host is down",
                        setting(|s| s.connect_timeout)
                    ),
                    format!(
                        "check that the host is up and that no firewall drops traffic to it; raise upstream.{pool}.connect_timeout only if the network is merely slow"
                    ),
                )
            }
        }
        FailureKind::ConnectionTerminated => (
            format!(
                "{at} accepted the connection but closed it without answering {}",
                facts.request
            ),
            "see the backend's logs: it may be crashing on the request, or expect another protocol (TLS?) on this port".to_owned(),
        ),
        FailureKind::HttpProtocolError => (
            format!("{at} does not answer in HTTP/1.x: {}", failure.details),
            format!(
                "check that the port in {servers_key} is the backend's HTTP port, not a database, TLS or other service"
            ),
        ),
        FailureKind::HttpResponseHeaderSectionSize => {
            let limit = facts
                .settings
                .as_ref()
                .map_or(0, |s| s.max_response_header_size);
            match facts.header_bytes {
                Some(size) => (
                    format!(
                        "the response headers of {} are {size} bytes, more than max_response_header_size ({limit} bytes)",
                        facts.request
                    ),
                    format!(
                        "raise upstream.{pool}.max_response_header_size to at least {}KiB, or make the app send smaller headers (often a large Set-Cookie)",
                        size.div_ceil(1024) + 1
                    ),
                ),
                None => (
                    format!(
                        "the response headers of {} are larger than max_response_header_size ({limit} bytes)",
                        facts.request
                    ),
                    format!(
                        "raise upstream.{pool}.max_response_header_size, or make the app send smaller headers (often a large Set-Cookie)"
                    ),
                ),
            }
        }
        FailureKind::HttpResponseTimeout => {
            let timeout = setting(|s| s.response_timeout);
            match facts.late_first_byte {
                Some(took) => (
                    format!(
                        "{at} answered {} after {}, later than response_timeout ({timeout})",
                        facts.request,
                        human_ms(took)
                    ),
                    format!(
                        "raise upstream.{pool}.response_timeout above {} or speed up the handler",
                        human_ms(took)
                    ),
                ),
                None => (
                    format!(
                        "{at} accepted the connection but did not answer {} within {} (response_timeout is {timeout})",
                        facts.request,
                        human(facts.waited)
                    ),
                    "the backend is hung or overloaded: see its logs, its worker pool, its own upstreams (database?)".to_owned(),
                ),
            }
        }
        FailureKind::ConnectionReadTimeout => (
            failure.details.clone(),
            format!(
                "raise upstream.{pool}.read_timeout, or find why the backend stalls mid-response"
            ),
        ),
        FailureKind::DestinationNotFound
        | FailureKind::DestinationUnavailable
        | FailureKind::ConnectionWriteTimeout
        | FailureKind::ConnectionLimitReached
        | FailureKind::TlsProtocolError
        | FailureKind::TlsCertificateError
        | FailureKind::TlsAlertReceived
        | FailureKind::HttpRequestError
        | FailureKind::HttpRequestDenied
        | FailureKind::HttpResponseIncomplete
        | FailureKind::HttpResponseHeaderSize
        | FailureKind::HttpResponseBodySize
        | FailureKind::HttpResponseTransferCoding
        | FailureKind::HttpResponseContentCoding
        | FailureKind::HttpUpgradeFailed
        | FailureKind::ProxyInternalResponse
        | FailureKind::ProxyInternalError
        | FailureKind::ProxyConfigurationError
        | FailureKind::ProxyLoopDetected => {
            (failure.details.clone(), failure.kind.hint().to_owned())
        }
    }
}

/// Connection refused: the socket table of a local host can say which mistake it is.
fn refused(facts: &Facts, at: &str, servers_key: &str) -> (String, String) {
    match facts.port_hints.first() {
        Some(hint @ PortHint::NearbyPort { wanted, found }) => (
            hint.to_string(),
            format!(
                "correct the port in {servers_key} to {}, or start the backend on port {}",
                found.port(),
                wanted.port()
            ),
        ),
        Some(hint @ PortHint::OtherAddress { wanted, found }) => (
            hint.to_string(),
            format!(
                "make the backend listen on {} (or on all addresses), or point {servers_key} at {found}",
                wanted.ip()
            ),
        ),
        Some(hint @ (PortHint::Listening(_) | PortHint::QueueFull(_))) => (
            hint.to_string(),
            "check this host's firewall rules (a REJECT rule answers like a closed port)"
                .to_owned(),
        ),
        None => {
            let local = facts
                .address
                .is_some_and(|a| super::ports::is_local(a.ip()));
            let cause = if local {
                format!("nothing listens on {at}: the backend is not running, or the port is wrong")
            } else {
                format!(
                    "{at} refused the connection: the backend is not running there, or the port is wrong (or a firewall rejects it)"
                )
            };
            (
                cause,
                format!("start the backend, or correct the address in {servers_key}"),
            )
        }
    }
}

fn human(duration: Duration) -> String {
    humantime::format_duration(duration).to_string()
}

fn human_ms(duration: Duration) -> String {
    format!("{:.0} ms", duration.as_secs_f64() * 1000.0)
}
