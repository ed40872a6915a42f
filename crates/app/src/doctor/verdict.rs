//! The verdict on one server: healthy or not, the failure kind a request routed to it would
//! meet, the likely root cause in the words of this case's facts, and the fix.
//!
//! The kind and its generic hint come from `gatehouse_proxy::failure`; what this module adds is
//! the specific cause the doctor could establish (a near-miss port, a full accept queue, the
//! measured header size, the real latency, the certificate that expired and when, a port that
//! speaks plain HTTP behind `https://`) and a fix that names the config key to change.

use std::time::Duration;

use gatehouse_config::HealthCheck;
use gatehouse_proxy::failure::{Failure, FailureKind};
use gatehouse_proxy::upstream::conn::Protocol;
use gatehouse_proxy::upstream::server::ConnSettings;
use http::StatusCode;
use serde::Serialize;

use super::check::{Facts, HttpStep};
use super::ports::PortHint;
use crate::advice;
use crate::naming::Key;

mod tls;

use tls::{tls_config_explain, tls_explain};

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
            let naming = &facts.naming;
            Verdict::unhealthy(
                format!("{request} answered {status}, not {}", expected.join(", ")),
                format!(
                    "the server fails its health check, so {} takes it out of rotation; with every server of {} out, requests get 503{}",
                    naming.proxy(),
                    naming.pool_name(&facts.pool),
                    if naming.proxy() == "gatehouse" {
                        " destination_unavailable"
                    } else {
                        ""
                    }
                ),
                format!(
                    "make {request} answer {} (see the backend's logs), or correct {}",
                    expected.join(", "),
                    naming.health_keys(&facts.pool)
                ),
            )
        }
        None if status.is_server_error() => match facts.naming.proxy() {
            "gatehouse" => Verdict::unhealthy(
                format!("{request} answered {status}"),
                format!(
                    "the backend is up but failing; gatehouse passes its {code} on unchanged (Proxy-Status: received-status={code})"
                ),
                format!(
                    "see the backend's logs; add [upstream.{}.health] so that a failing server is taken out of rotation",
                    facts.pool
                ),
            ),
            proxy => Verdict::unhealthy(
                format!("{request} answered {status}"),
                format!("the backend is up but failing; {proxy} passes its {code} on unchanged"),
                "see the backend's logs".to_owned(),
            ),
        },
        None => Verdict::healthy(format!("{request} answered {status}")),
    }
}

/// Warnings for a healthy server that is close to a limit.
pub(crate) fn latency_warnings(
    step: &HttpStep,
    settings: &ConnSettings,
    facts: &Facts,
) -> Vec<String> {
    let mut warnings = Vec::new();
    let name = |key| facts.naming.short(&facts.pool, key);
    if let Some(ms) = step.first_byte_ms {
        let limit = settings.response_timeout.as_secs_f64() * 1000.0;
        if ms > limit / 2.0 {
            warnings.push(format!(
                "answered in {ms:.1} ms, more than half of {} ({}): a slower moment gives 504 http_response_timeout",
                name(Key::ResponseTimeout),
                human(settings.response_timeout)
            ));
        }
    }
    // How gatehouse's pool reuses connections; other proxies have their own rules.
    if let Some(seconds) = step.keep_alive_timeout_s
        && facts.naming.proxy() == "gatehouse"
    {
        warnings.extend(keep_alive_warning(Duration::from_secs(seconds)));
    }
    if let Some(bytes) = step.header_bytes
        && bytes * 4 > step.header_limit * 3
    {
        warnings.push(format!(
            "the response headers are {bytes} bytes, over 3/4 of {} ({} bytes)",
            name(Key::MaxResponseHeaderSize),
            step.header_limit
        ));
    }
    warnings
}

/// A server that closes idle keep-alive connections sooner than gatehouse's pool keeps them
/// (the keep-alive race: a connection reused just as the server closes it loses the request).
/// gatehouse stops reusing the server's connections a margin before the timeout it announces,
/// but the usual fix, as for any proxy, is a server timeout longer than the proxy's.
fn keep_alive_warning(announced: Duration) -> Option<String> {
    use gatehouse_proxy::upstream::idle::{POOL_IDLE_TIMEOUT, reuse_window};
    if announced > POOL_IDLE_TIMEOUT {
        return None;
    }
    let window = reuse_window(Some(announced), POOL_IDLE_TIMEOUT);
    let reuse = if window.is_zero() {
        "so gatehouse never reuses its connections and opens one per request".to_owned()
    } else {
        format!(
            "so gatehouse reuses its connections for at most {} after a response, where it would keep them {}",
            human(window),
            human(POOL_IDLE_TIMEOUT)
        )
    };
    Some(format!(
        "the server closes idle keep-alive connections after {} (Keep-Alive: timeout={}), {reuse}; a server timeout above {} (Node.js server.keepAliveTimeout, gunicorn --keep-alive, Apache KeepAliveTimeout) avoids reconnects and the keep-alive race",
        human(announced),
        announced.as_secs(),
        human(POOL_IDLE_TIMEOUT)
    ))
}

/// The root cause and the fix for a failure, as specific as the facts allow.
fn explain(failure: &Failure, facts: &Facts) -> (String, String) {
    let pool = &facts.pool;
    let naming = &facts.naming;
    let servers_key = naming.servers(pool);
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
            advice::fix(failure.kind, pool, naming),
        ),
        FailureKind::DnsTimeout => (
            format!("the DNS resolver did not answer: {}", failure.details),
            advice::fix(failure.kind, pool, naming),
        ),
        FailureKind::DestinationIpProhibited => (
            failure.details.clone(),
            advice::fix(failure.kind, pool, naming),
        ),
        FailureKind::DestinationIpUnroutable => (
            format!("there is no network route to {at}: {}", failure.details),
            advice::fix(failure.kind, pool, naming),
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
                        "connect to {at} did not complete within {} ({}): a firewall drops the packets, or the host is down",
                        naming.short(pool, Key::ConnectTimeout),
                        setting(|s| s.connect_timeout)
                    ),
                    advice::fix(failure.kind, pool, naming),
                )
            }
        }
        FailureKind::ConnectionTerminated | FailureKind::HttpProtocolError
            if facts.protocol == Some(Protocol::H2c) =>
        {
            (
                format!(
                    "{at} does not answer HTTP/2 with prior knowledge (h2c), which the proxy speaks on cleartext for an http2 upstream: {}",
                    failure.details
                ),
                format!(
                    "set upstream.{pool}.http2 = false if the backend speaks HTTP/1.1 only, or enable h2c (HTTP/2 without TLS) on it"
                ),
            )
        }
        FailureKind::ConnectionTerminated => (
            format!(
                "{at} accepted the connection but closed it without answering {}",
                facts.request
            ),
            advice::fix(failure.kind, pool, naming),
        ),
        FailureKind::HttpProtocolError => (
            format!("{at} does not answer in HTTP/1.x: {}", failure.details),
            advice::fix(failure.kind, pool, naming),
        ),
        FailureKind::HttpResponseHeaderSectionSize => {
            let limit = facts
                .settings
                .as_ref()
                .map_or(0, |s| s.max_response_header_size);
            match facts.header_bytes {
                Some(size) => (
                    format!(
                        "the response headers of {} are {size} bytes, more than {} ({limit} bytes)",
                        facts.request,
                        naming.short(pool, Key::MaxResponseHeaderSize)
                    ),
                    format!(
                        "{}, or make the app send smaller headers (often a large Set-Cookie)",
                        naming.header_fix(pool, size)
                    ),
                ),
                None => (
                    format!(
                        "the response headers of {} are larger than {} ({limit} bytes)",
                        facts.request,
                        naming.short(pool, Key::MaxResponseHeaderSize)
                    ),
                    advice::fix(failure.kind, pool, naming),
                ),
            }
        }
        FailureKind::HttpResponseTimeout => {
            let timeout = setting(|s| s.response_timeout);
            match facts.late_first_byte {
                Some(took) => (
                    format!(
                        "{at} answered {} after {}, later than {} ({timeout})",
                        facts.request,
                        human_ms(took),
                        naming.short(pool, Key::ResponseTimeout)
                    ),
                    format!(
                        "raise {} above {} or speed up the handler",
                        naming.key(pool, Key::ResponseTimeout),
                        human_ms(took)
                    ),
                ),
                None => (
                    format!(
                        "{at} accepted the connection but did not answer {} within {} ({} is {timeout})",
                        facts.request,
                        human(facts.waited),
                        naming.short(pool, Key::ResponseTimeout)
                    ),
                    "the backend is hung or overloaded: see its logs, its worker pool, its own upstreams (database?)".to_owned(),
                ),
            }
        }
        FailureKind::ConnectionReadTimeout => (
            failure.details.clone(),
            advice::fix(failure.kind, pool, naming),
        ),
        FailureKind::TlsProtocolError
        | FailureKind::TlsCertificateError
        | FailureKind::TlsAlertReceived => match &facts.tls {
            Some(tls) => tls_explain(failure, facts, tls, &at),
            None => (failure.details.clone(), failure.kind.hint().to_owned()),
        },
        FailureKind::ProxyConfigurationError
            if facts.tls.as_ref().is_some_and(|t| t.config_error.is_some()) =>
        {
            tls_config_explain(facts)
        }
        FailureKind::DestinationNotFound
        | FailureKind::DestinationUnavailable
        | FailureKind::ConnectionWriteTimeout
        | FailureKind::ConnectionLimitReached
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
        | FailureKind::ProxyLoopDetected => (
            failure.details.clone(),
            advice::fix(failure.kind, pool, naming),
        ),
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
                advice::fix(FailureKind::ConnectionRefused, &facts.pool, &facts.naming),
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
