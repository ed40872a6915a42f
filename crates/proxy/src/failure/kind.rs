//! [`FailureKind`] and its table: for each kind its status, Proxy-Status token, hint, side,
//! metric label and retry rule. The `match`es are exhaustive and have no wildcard arm, so a new
//! kind does not compile until every mapping handles it.

use std::fmt;

use http::StatusCode;

/// One kind of failure, named by its RFC 9209 Proxy-Status error type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    DnsError,
    DnsTimeout,
    DestinationNotFound,
    DestinationUnavailable,
    DestinationIpProhibited,
    DestinationIpUnroutable,
    ConnectionRefused,
    ConnectionTimeout,
    ConnectionTerminated,
    ConnectionWriteTimeout,
    ConnectionReadTimeout,
    ConnectionLimitReached,
    TlsProtocolError,
    TlsCertificateError,
    TlsAlertReceived,
    HttpRequestError,
    HttpRequestDenied,
    HttpResponseIncomplete,
    HttpResponseHeaderSectionSize,
    HttpResponseHeaderSize,
    HttpResponseBodySize,
    HttpResponseTransferCoding,
    HttpResponseContentCoding,
    HttpResponseTimeout,
    HttpUpgradeFailed,
    HttpProtocolError,
    ProxyInternalResponse,
    ProxyInternalError,
    ProxyConfigurationError,
    ProxyLoopDetected,
}

/// Which side caused a failure. Only upstream-side failures may feed passive health or let a
/// stale copy be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Upstream,
    Downstream,
    Internal,
}

/// May another server be tried after this failure? (failures.md, "Retries")
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryRule {
    /// Nothing reached the server: any method may be retried.
    AnyMethod,
    /// Only idempotent methods (RFC 9110 §9.2.2), and only before any response byte arrived.
    IdempotentOnly,
    Never,
}

// === impl FailureKind ===

impl FailureKind {
    /// Every kind, for tests and documentation tables.
    pub const ALL: [FailureKind; 30] = [
        Self::DnsError,
        Self::DnsTimeout,
        Self::DestinationNotFound,
        Self::DestinationUnavailable,
        Self::DestinationIpProhibited,
        Self::DestinationIpUnroutable,
        Self::ConnectionRefused,
        Self::ConnectionTimeout,
        Self::ConnectionTerminated,
        Self::ConnectionWriteTimeout,
        Self::ConnectionReadTimeout,
        Self::ConnectionLimitReached,
        Self::TlsProtocolError,
        Self::TlsCertificateError,
        Self::TlsAlertReceived,
        Self::HttpRequestError,
        Self::HttpRequestDenied,
        Self::HttpResponseIncomplete,
        Self::HttpResponseHeaderSectionSize,
        Self::HttpResponseHeaderSize,
        Self::HttpResponseBodySize,
        Self::HttpResponseTransferCoding,
        Self::HttpResponseContentCoding,
        Self::HttpResponseTimeout,
        Self::HttpUpgradeFailed,
        Self::HttpProtocolError,
        Self::ProxyInternalResponse,
        Self::ProxyInternalError,
        Self::ProxyConfigurationError,
        Self::ProxyLoopDetected,
    ];

    /// The RFC 9209 error type: the Proxy-Status `error=` token, the log field and the metric label.
    pub const fn token(self) -> &'static str {
        match self {
            Self::DnsError => "dns_error",
            Self::DnsTimeout => "dns_timeout",
            Self::DestinationNotFound => "destination_not_found",
            Self::DestinationUnavailable => "destination_unavailable",
            Self::DestinationIpProhibited => "destination_ip_prohibited",
            Self::DestinationIpUnroutable => "destination_ip_unroutable",
            Self::ConnectionRefused => "connection_refused",
            Self::ConnectionTimeout => "connection_timeout",
            Self::ConnectionTerminated => "connection_terminated",
            Self::ConnectionWriteTimeout => "connection_write_timeout",
            Self::ConnectionReadTimeout => "connection_read_timeout",
            Self::ConnectionLimitReached => "connection_limit_reached",
            Self::TlsProtocolError => "tls_protocol_error",
            Self::TlsCertificateError => "tls_certificate_error",
            Self::TlsAlertReceived => "tls_alert_received",
            Self::HttpRequestError => "http_request_error",
            Self::HttpRequestDenied => "http_request_denied",
            Self::HttpResponseIncomplete => "http_response_incomplete",
            Self::HttpResponseHeaderSectionSize => "http_response_header_section_size",
            Self::HttpResponseHeaderSize => "http_response_header_size",
            Self::HttpResponseBodySize => "http_response_body_size",
            Self::HttpResponseTransferCoding => "http_response_transfer_coding",
            Self::HttpResponseContentCoding => "http_response_content_coding",
            Self::HttpResponseTimeout => "http_response_timeout",
            Self::HttpUpgradeFailed => "http_upgrade_failed",
            Self::HttpProtocolError => "http_protocol_error",
            Self::ProxyInternalResponse => "proxy_internal_response",
            Self::ProxyInternalError => "proxy_internal_error",
            Self::ProxyConfigurationError => "proxy_configuration_error",
            Self::ProxyLoopDetected => "proxy_loop_detected",
        }
    }

    /// The kind named by an RFC 9209 error token, e.g. from a received `Proxy-Status` member.
    pub fn from_token(token: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.token() == token)
    }

    /// The status of the response gatehouse generates (RFC 9110 §15, RFC 9209 §2.3).
    /// `http_request_error` carries its own 4xx in [`Failure::status`]; 400 is its fallback.
    pub const fn status(self) -> StatusCode {
        match self {
            Self::DnsError
            | Self::DestinationIpProhibited
            | Self::DestinationIpUnroutable
            | Self::ConnectionRefused
            | Self::ConnectionTerminated
            | Self::TlsProtocolError
            | Self::TlsCertificateError
            | Self::TlsAlertReceived
            | Self::HttpResponseIncomplete
            | Self::HttpResponseHeaderSectionSize
            | Self::HttpResponseHeaderSize
            | Self::HttpResponseBodySize
            | Self::HttpResponseTransferCoding
            | Self::HttpResponseContentCoding
            | Self::HttpUpgradeFailed
            | Self::HttpProtocolError
            | Self::ProxyLoopDetected => StatusCode::BAD_GATEWAY,
            Self::DnsTimeout
            | Self::ConnectionTimeout
            | Self::ConnectionWriteTimeout
            | Self::ConnectionReadTimeout
            | Self::HttpResponseTimeout => StatusCode::GATEWAY_TIMEOUT,
            // Deviation from RFC 9209 (500): an unrouted request is a 404, as Envoy and Traefik answer.
            Self::DestinationNotFound => StatusCode::NOT_FOUND,
            Self::DestinationUnavailable
            | Self::ConnectionLimitReached
            | Self::ProxyInternalResponse => StatusCode::SERVICE_UNAVAILABLE,
            Self::HttpRequestError => StatusCode::BAD_REQUEST,
            Self::HttpRequestDenied => StatusCode::FORBIDDEN,
            Self::ProxyInternalError | Self::ProxyConfigurationError => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    /// Which side causes this kind of failure.
    pub const fn side(self) -> Side {
        match self {
            Self::DnsError
            | Self::DnsTimeout
            | Self::DestinationUnavailable
            | Self::DestinationIpUnroutable
            | Self::ConnectionRefused
            | Self::ConnectionTimeout
            | Self::ConnectionTerminated
            | Self::ConnectionWriteTimeout
            | Self::ConnectionReadTimeout
            | Self::ConnectionLimitReached
            | Self::TlsProtocolError
            | Self::TlsCertificateError
            | Self::TlsAlertReceived
            | Self::HttpResponseIncomplete
            | Self::HttpResponseHeaderSectionSize
            | Self::HttpResponseHeaderSize
            | Self::HttpResponseBodySize
            | Self::HttpResponseTransferCoding
            | Self::HttpResponseContentCoding
            | Self::HttpResponseTimeout
            | Self::HttpUpgradeFailed
            | Self::HttpProtocolError => Side::Upstream,
            Self::DestinationNotFound
            | Self::HttpRequestError
            | Self::HttpRequestDenied
            | Self::ProxyLoopDetected => Side::Downstream,
            Self::DestinationIpProhibited
            | Self::ProxyInternalResponse
            | Self::ProxyInternalError
            | Self::ProxyConfigurationError => Side::Internal,
        }
    }

    /// Whether another server may be tried (failures.md "Retries").
    pub const fn retry_rule(self) -> RetryRule {
        match self {
            Self::ConnectionRefused
            | Self::ConnectionTimeout
            | Self::DnsError
            | Self::DnsTimeout
            | Self::DestinationIpProhibited
            | Self::DestinationIpUnroutable
            | Self::ConnectionLimitReached
            | Self::TlsProtocolError
            | Self::TlsCertificateError
            | Self::TlsAlertReceived => RetryRule::AnyMethod,
            Self::ConnectionTerminated
            | Self::HttpResponseIncomplete
            | Self::HttpResponseTimeout
            | Self::HttpProtocolError => RetryRule::IdempotentOnly,
            Self::DestinationNotFound
            | Self::DestinationUnavailable
            | Self::ConnectionWriteTimeout
            | Self::ConnectionReadTimeout
            | Self::HttpRequestError
            | Self::HttpRequestDenied
            | Self::HttpResponseHeaderSectionSize
            | Self::HttpResponseHeaderSize
            | Self::HttpResponseBodySize
            | Self::HttpResponseTransferCoding
            | Self::HttpResponseContentCoding
            | Self::HttpUpgradeFailed
            | Self::ProxyInternalResponse
            | Self::ProxyInternalError
            | Self::ProxyConfigurationError
            | Self::ProxyLoopDetected => RetryRule::Never,
        }
    }

    /// Whether this failure says something about the server that was tried, so that passive
    /// health counts it towards ejecting the server. Limits of our own config (header sizes,
    /// body size), upgrade refusals and failures before a server was chosen do not.
    pub const fn is_server_fault(self) -> bool {
        match self {
            Self::DestinationIpUnroutable
            | Self::ConnectionRefused
            | Self::ConnectionTimeout
            | Self::ConnectionTerminated
            | Self::ConnectionWriteTimeout
            | Self::ConnectionReadTimeout
            | Self::TlsProtocolError
            | Self::TlsCertificateError
            | Self::TlsAlertReceived
            | Self::HttpResponseIncomplete
            | Self::HttpResponseTransferCoding
            | Self::HttpResponseTimeout
            | Self::HttpProtocolError => true,
            Self::DnsError
            | Self::DnsTimeout
            | Self::DestinationNotFound
            | Self::DestinationUnavailable
            | Self::DestinationIpProhibited
            | Self::ConnectionLimitReached
            | Self::HttpRequestError
            | Self::HttpRequestDenied
            | Self::HttpResponseHeaderSectionSize
            | Self::HttpResponseHeaderSize
            | Self::HttpResponseBodySize
            | Self::HttpResponseContentCoding
            | Self::HttpUpgradeFailed
            | Self::ProxyInternalResponse
            | Self::ProxyInternalError
            | Self::ProxyConfigurationError
            | Self::ProxyLoopDetected => false,
        }
    }

    /// Whether a stale cached copy may stand in for the response: only when the upstream failed.
    pub const fn may_serve_stale(self) -> bool {
        matches!(self.side(), Side::Upstream)
    }

    /// Seconds a client should wait before retrying (`Retry-After`), for the kinds that mean
    /// "temporarily unable" (503).
    pub const fn retry_after_secs(self) -> Option<u32> {
        match self {
            Self::DestinationUnavailable
            | Self::ConnectionLimitReached
            | Self::ProxyInternalResponse => Some(5),
            Self::DnsError
            | Self::DnsTimeout
            | Self::DestinationNotFound
            | Self::DestinationIpProhibited
            | Self::DestinationIpUnroutable
            | Self::ConnectionRefused
            | Self::ConnectionTimeout
            | Self::ConnectionTerminated
            | Self::ConnectionWriteTimeout
            | Self::ConnectionReadTimeout
            | Self::TlsProtocolError
            | Self::TlsCertificateError
            | Self::TlsAlertReceived
            | Self::HttpRequestError
            | Self::HttpRequestDenied
            | Self::HttpResponseIncomplete
            | Self::HttpResponseHeaderSectionSize
            | Self::HttpResponseHeaderSize
            | Self::HttpResponseBodySize
            | Self::HttpResponseTransferCoding
            | Self::HttpResponseContentCoding
            | Self::HttpResponseTimeout
            | Self::HttpUpgradeFailed
            | Self::HttpProtocolError
            | Self::ProxyInternalError
            | Self::ProxyConfigurationError
            | Self::ProxyLoopDetected => None,
        }
    }

    /// Whether the downstream connection must close after the error response: after a
    /// malformed request the connection's framing cannot be trusted.
    pub const fn closes_client_connection(self) -> bool {
        match self {
            Self::HttpRequestError => true,
            Self::DnsError
            | Self::DnsTimeout
            | Self::DestinationNotFound
            | Self::DestinationUnavailable
            | Self::DestinationIpProhibited
            | Self::DestinationIpUnroutable
            | Self::ConnectionRefused
            | Self::ConnectionTimeout
            | Self::ConnectionTerminated
            | Self::ConnectionWriteTimeout
            | Self::ConnectionReadTimeout
            | Self::ConnectionLimitReached
            | Self::TlsProtocolError
            | Self::TlsCertificateError
            | Self::TlsAlertReceived
            | Self::HttpRequestDenied
            | Self::HttpResponseIncomplete
            | Self::HttpResponseHeaderSectionSize
            | Self::HttpResponseHeaderSize
            | Self::HttpResponseBodySize
            | Self::HttpResponseTransferCoding
            | Self::HttpResponseContentCoding
            | Self::HttpResponseTimeout
            | Self::HttpUpgradeFailed
            | Self::HttpProtocolError
            | Self::ProxyInternalResponse
            | Self::ProxyInternalError
            | Self::ProxyConfigurationError
            | Self::ProxyLoopDetected => false,
        }
    }

    /// One plain sentence for the error page: what happened, for the person who sees it.
    pub const fn summary(self) -> &'static str {
        match self {
            Self::DnsError => {
                "The gateway could not find the address of the upstream server: its name does not resolve."
            }
            Self::DnsTimeout => {
                "The gateway could not find the address of the upstream server: the DNS resolver did not answer in time."
            }
            Self::DestinationNotFound => "No route of this gateway serves this host and path.",
            Self::DestinationUnavailable => {
                "Every upstream server for this site is out of service right now."
            }
            Self::DestinationIpProhibited => {
                "The upstream server's address is one this gateway is not allowed to connect to."
            }
            Self::DestinationIpUnroutable => {
                "The gateway has no network route to the upstream server."
            }
            Self::ConnectionRefused => {
                "The gateway could not connect to the upstream server: the connection was refused, so no server is listening at its address."
            }
            Self::ConnectionTimeout => {
                "The gateway could not connect to the upstream server in time."
            }
            Self::ConnectionTerminated => {
                "The upstream server closed the connection without sending a response."
            }
            Self::ConnectionWriteTimeout => {
                "The upstream server stopped reading the request before it was fully sent."
            }
            Self::ConnectionReadTimeout => {
                "The upstream server stopped sending its response partway through."
            }
            Self::ConnectionLimitReached => "The upstream servers are at their connection limit.",
            Self::TlsProtocolError => {
                "The secure (TLS) connection to the upstream server could not be set up."
            }
            Self::TlsCertificateError => {
                "The upstream server's TLS certificate could not be verified."
            }
            Self::TlsAlertReceived => {
                "The upstream server ended the secure (TLS) connection with an alert."
            }
            Self::HttpRequestError => {
                "The request could not be understood or is over a limit of this gateway."
            }
            Self::HttpRequestDenied => "This request is blocked by the gateway's configuration.",
            Self::HttpResponseIncomplete => {
                "The upstream server closed the connection partway through its response."
            }
            Self::HttpResponseHeaderSectionSize => {
                "The upstream server's response headers are larger than this gateway accepts."
            }
            Self::HttpResponseHeaderSize => {
                "A response header from the upstream server is larger than this gateway accepts."
            }
            Self::HttpResponseBodySize => {
                "The upstream server's response is larger than this gateway accepts."
            }
            Self::HttpResponseTransferCoding => {
                "The upstream server sent a response with broken transfer encoding."
            }
            Self::HttpResponseContentCoding => {
                "The upstream server sent a response with a corrupt compressed body."
            }
            Self::HttpResponseTimeout => "The upstream server did not answer in time.",
            Self::HttpUpgradeFailed => "The upstream server did not accept the connection upgrade.",
            Self::HttpProtocolError => {
                "The upstream server sent a response that is not valid HTTP."
            }
            Self::ProxyInternalResponse => "The gateway answered this request itself.",
            Self::ProxyInternalError => {
                "The gateway ran into an internal error while handling this request."
            }
            Self::ProxyConfigurationError => {
                "The gateway's configuration cannot serve this request."
            }
            Self::ProxyLoopDetected => {
                "The request has already passed through this gateway: the upstream points back at it."
            }
        }
    }

    /// The operator's hint: the usual root cause and what to check (log line, error page).
    pub const fn hint(self) -> &'static str {
        match self {
            Self::DnsError => {
                "typo in the upstream host, or the name is not in DNS / the hosts file"
            }
            Self::DnsTimeout => "resolver unreachable or slow; check [dns] nameservers and timeout",
            Self::DestinationNotFound => "add a route for this host/path",
            Self::DestinationUnavailable => {
                "all backends failing health checks; see the status page"
            }
            Self::DestinationIpProhibited => "the upstream resolves to a denied address",
            Self::DestinationIpUnroutable => {
                "no route to the backend host; check its address and the network"
            }
            Self::ConnectionRefused => "backend not running, or wrong port",
            Self::ConnectionTimeout => "firewall dropping packets, or backend host down",
            Self::ConnectionTerminated => {
                "backend crashed or closed the keep-alive connection; check its logs"
            }
            Self::ConnectionWriteTimeout => {
                "backend not reading the request body; raise send_timeout or fix the backend"
            }
            Self::ConnectionReadTimeout => {
                "backend stalled mid-response; raise read_timeout or fix the backend"
            }
            Self::ConnectionLimitReached => "backend overloaded; raise the limit or add servers",
            Self::TlsProtocolError => {
                "upstream does not speak TLS on this port, or no common protocol"
            }
            Self::TlsCertificateError => "certificate expired, wrong SNI, or CA not trusted",
            Self::TlsAlertReceived => "see the alert",
            Self::HttpRequestError => "client error: the request is malformed or over a limit",
            Self::HttpRequestDenied => "blocked by configuration",
            Self::HttpResponseIncomplete => "backend crashed while answering; check its logs",
            Self::HttpResponseHeaderSectionSize => {
                "upstream sent too big a header section (often a huge Set-Cookie); raise max_response_header_size or fix the app"
            }
            Self::HttpResponseHeaderSize => {
                "upstream sent too big a header field; raise the limit or fix the app"
            }
            Self::HttpResponseBodySize => "response too large for the configured limit",
            Self::HttpResponseTransferCoding => {
                "upstream sent broken chunked encoding or an unknown transfer coding"
            }
            Self::HttpResponseContentCoding => "upstream sent a corrupt compressed body",
            Self::HttpResponseTimeout => {
                "backend too slow; raise response_timeout or fix the slow handler"
            }
            Self::HttpUpgradeFailed => "upstream does not support the upgrade on this path",
            Self::HttpProtocolError => "upstream is not speaking HTTP/1.x correctly on this port",
            Self::ProxyInternalResponse => "none: a response generated on purpose",
            Self::ProxyInternalError => "a bug in gatehouse; report it with the request id",
            Self::ProxyConfigurationError => "fix the config; `gatehouse check` explains",
            Self::ProxyLoopDetected => "the upstream points back at this proxy",
        }
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.token())
    }
}
