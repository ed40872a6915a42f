//! Failure kinds: the one place where a failure becomes a status, a Proxy-Status token, a hint,
//! a metric label and a retry rule.
//!
//! Every failure gatehouse meets while obtaining a response ends up as exactly one
//! [`FailureKind`]. Its mappings are in `kind.rs`, whose `match`es are exhaustive with no
//! wildcard arm, so adding a kind does not compile until every mapping handles it. Names and
//! statuses are RFC 9209's (§2.3); `../shared/spec/failures.md` is the table `kind.rs`
//! implements. Here: [`Failure`], the value a failure travels as, and its [`Phase`].
//!
//! This module does not detect failures (that happens where the facts are known: the resolver,
//! the connect call, the header-read timeout, see [`classify`]) and does not render responses
//! (see `crate::respond`).

pub mod classify;
pub mod decode;
mod kind;
pub mod marker;
pub mod proxy_status;

pub use kind::{FailureKind, RetryRule, Side};

use std::fmt;

use http::StatusCode;

/// Where in the exchange a failure happened, for the log line ("while connecting", ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    ReadingRequest,
    Routing,
    Selecting,
    Resolving,
    Connecting,
    SendingRequest,
    ReadingResponseHeaders,
    ReadingResponseBody,
    Internal,
}

impl Phase {
    pub const fn describe(self) -> &'static str {
        match self {
            Self::ReadingRequest => "while reading the client request",
            Self::Routing => "while routing the request",
            Self::Selecting => "while choosing an upstream server",
            Self::Resolving => "while resolving the upstream host",
            Self::Connecting => "while connecting to upstream",
            Self::SendingRequest => "while sending the request to upstream",
            Self::ReadingResponseHeaders => "while reading response headers from upstream",
            Self::ReadingResponseBody => "while reading the response body from upstream",
            Self::Internal => "while handling the request",
        }
    }
}

/// The kind-specific RFC 9209 parameters a failure carries (§2.3).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FailureParams {
    /// `dns_error`: the DNS response code, e.g. `NXDOMAIN`.
    pub rcode: Option<&'static str>,
    /// `http_request_error`: the 4xx answered.
    pub status_code: Option<StatusCode>,
    /// `http_response_header_section_size`: bytes received when the limit was exceeded.
    pub header_section_size: Option<u64>,
    /// `http_response_transfer_coding` / `http_response_content_coding`: the coding at fault.
    pub coding: Option<String>,
    /// `tls_alert_received`: the alert's number (RFC 8446 §6).
    pub alert_id: Option<u8>,
    /// `tls_alert_received`: the alert's name, e.g. `handshake_failure`.
    pub alert_message: Option<String>,
    /// `proxy_internal_response`: the configured `Retry-After` in seconds (maintenance mode),
    /// instead of the kind's own.
    pub retry_after: Option<u64>,
    /// A refusal by policy with a name of its own (`rate_limited`, `concurrency_limited`,
    /// `limit_store_unavailable`): the access log's `failure` field and the metric label say
    /// it instead of the kind's token, and no warning line is written per request (the access
    /// record and the counters tell).
    pub reason: Option<&'static str>,
    /// `http_request_error`: the client went away while sending its request (closed or reset
    /// the connection or stream mid-body), so no answer reaches it; the access record says
    /// `client_aborted` with status 499, as for any request whose client left.
    pub client_gone: bool,
}

/// One classified failure: the kind plus the facts that the log line and `details` report.
#[derive(Debug, Clone)]
pub struct Failure {
    pub kind: FailureKind,
    pub phase: Phase,
    /// What exactly happened, in words, e.g. `connect to 127.0.0.1:3000: Connection refused (os error 111)`.
    pub details: String,
    /// The OS error number, where one is known.
    pub os_error: Option<i32>,
    /// Boxed: most failures carry none, and a small `Failure` keeps `Result<_, Failure>` cheap.
    pub params: Box<FailureParams>,
    /// A sentence safe to show any client (no addresses), shown on the error page whatever
    /// `proxy_status` says; e.g. how many servers are out and why.
    pub note: Option<Box<str>>,
}

// === impl Failure ===

impl Failure {
    pub fn new(kind: FailureKind, phase: Phase, details: impl Into<String>) -> Self {
        Self {
            kind,
            phase,
            details: details.into(),
            os_error: None,
            params: Box::default(),
            note: None,
        }
    }

    /// A client error answered with the given 4xx.
    pub fn client(status: StatusCode, details: impl Into<String>) -> Self {
        let mut failure = Self::new(
            FailureKind::HttpRequestError,
            Phase::ReadingRequest,
            details,
        );
        failure.params.status_code = Some(status);
        failure
    }

    /// A client that went away while sending its request: a 400 no one will read (see
    /// [`FailureParams::client_gone`]).
    pub fn client_gone(details: impl Into<String>) -> Self {
        let mut failure = Self::client(StatusCode::BAD_REQUEST, details);
        failure.params.client_gone = true;
        failure
    }

    pub fn with_os_error(mut self, err: &std::io::Error) -> Self {
        self.os_error = err.raw_os_error();
        self
    }

    /// The `Retry-After` of the generated response, in seconds, if it has one.
    pub fn retry_after(&self) -> Option<u64> {
        self.params
            .retry_after
            .or(self.kind.retry_after_secs().map(u64::from))
    }

    /// What the access log and the request metric call this failure: its own reason, or
    /// the kind's token.
    pub fn log_name(&self) -> &'static str {
        self.params.reason.unwrap_or(self.kind.token())
    }

    /// Whether the downstream connection closes after the error response. A refusal by
    /// policy (429) leaves the connection's framing intact, unlike a malformed request.
    pub fn closes_client_connection(&self) -> bool {
        self.kind.closes_client_connection() && self.params.reason.is_none()
    }

    /// The status of the generated response.
    pub fn status(&self) -> StatusCode {
        match self.kind {
            FailureKind::HttpRequestError => {
                self.params.status_code.unwrap_or(StatusCode::BAD_REQUEST)
            }
            kind => kind.status(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.kind,
            self.phase.describe(),
            self.details
        )
    }
}

#[cfg(test)]
mod tests;
