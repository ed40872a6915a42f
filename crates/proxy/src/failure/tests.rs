//! One assertion per row of the failures.md table: token, status, side, retry rule.

use http::StatusCode;

use super::*;

/// (kind, token, status, side, retry) exactly as `../shared/spec/failures.md` lists them.
const TABLE: [(FailureKind, &str, u16, Side, RetryRule); 30] = [
    (
        FailureKind::DnsError,
        "dns_error",
        502,
        Side::Upstream,
        RetryRule::AnyMethod,
    ),
    (
        FailureKind::DnsTimeout,
        "dns_timeout",
        504,
        Side::Upstream,
        RetryRule::AnyMethod,
    ),
    (
        FailureKind::DestinationNotFound,
        "destination_not_found",
        404,
        Side::Downstream,
        RetryRule::Never,
    ),
    (
        FailureKind::DestinationUnavailable,
        "destination_unavailable",
        503,
        Side::Upstream,
        RetryRule::Never,
    ),
    (
        FailureKind::DestinationIpProhibited,
        "destination_ip_prohibited",
        502,
        Side::Internal,
        RetryRule::AnyMethod,
    ),
    (
        FailureKind::DestinationIpUnroutable,
        "destination_ip_unroutable",
        502,
        Side::Upstream,
        RetryRule::AnyMethod,
    ),
    (
        FailureKind::ConnectionRefused,
        "connection_refused",
        502,
        Side::Upstream,
        RetryRule::AnyMethod,
    ),
    (
        FailureKind::ConnectionTimeout,
        "connection_timeout",
        504,
        Side::Upstream,
        RetryRule::AnyMethod,
    ),
    (
        FailureKind::ConnectionTerminated,
        "connection_terminated",
        502,
        Side::Upstream,
        RetryRule::IdempotentOnly,
    ),
    (
        FailureKind::ConnectionWriteTimeout,
        "connection_write_timeout",
        504,
        Side::Upstream,
        RetryRule::Never,
    ),
    (
        FailureKind::ConnectionReadTimeout,
        "connection_read_timeout",
        504,
        Side::Upstream,
        RetryRule::Never,
    ),
    (
        FailureKind::ConnectionLimitReached,
        "connection_limit_reached",
        503,
        Side::Upstream,
        RetryRule::AnyMethod,
    ),
    (
        FailureKind::TlsProtocolError,
        "tls_protocol_error",
        502,
        Side::Upstream,
        RetryRule::AnyMethod,
    ),
    (
        FailureKind::TlsCertificateError,
        "tls_certificate_error",
        502,
        Side::Upstream,
        RetryRule::AnyMethod,
    ),
    (
        FailureKind::TlsAlertReceived,
        "tls_alert_received",
        502,
        Side::Upstream,
        RetryRule::AnyMethod,
    ),
    (
        FailureKind::HttpRequestError,
        "http_request_error",
        400,
        Side::Downstream,
        RetryRule::Never,
    ),
    (
        FailureKind::HttpRequestDenied,
        "http_request_denied",
        403,
        Side::Downstream,
        RetryRule::Never,
    ),
    (
        FailureKind::HttpResponseIncomplete,
        "http_response_incomplete",
        502,
        Side::Upstream,
        RetryRule::IdempotentOnly,
    ),
    (
        FailureKind::HttpResponseHeaderSectionSize,
        "http_response_header_section_size",
        502,
        Side::Upstream,
        RetryRule::Never,
    ),
    (
        FailureKind::HttpResponseHeaderSize,
        "http_response_header_size",
        502,
        Side::Upstream,
        RetryRule::Never,
    ),
    (
        FailureKind::HttpResponseBodySize,
        "http_response_body_size",
        502,
        Side::Upstream,
        RetryRule::Never,
    ),
    (
        FailureKind::HttpResponseTransferCoding,
        "http_response_transfer_coding",
        502,
        Side::Upstream,
        RetryRule::Never,
    ),
    (
        FailureKind::HttpResponseContentCoding,
        "http_response_content_coding",
        502,
        Side::Upstream,
        RetryRule::Never,
    ),
    (
        FailureKind::HttpResponseTimeout,
        "http_response_timeout",
        504,
        Side::Upstream,
        RetryRule::IdempotentOnly,
    ),
    (
        FailureKind::HttpUpgradeFailed,
        "http_upgrade_failed",
        502,
        Side::Upstream,
        RetryRule::Never,
    ),
    (
        FailureKind::HttpProtocolError,
        "http_protocol_error",
        502,
        Side::Upstream,
        RetryRule::IdempotentOnly,
    ),
    (
        FailureKind::ProxyInternalResponse,
        "proxy_internal_response",
        503,
        Side::Internal,
        RetryRule::Never,
    ),
    (
        FailureKind::ProxyInternalError,
        "proxy_internal_error",
        500,
        Side::Internal,
        RetryRule::Never,
    ),
    (
        FailureKind::ProxyConfigurationError,
        "proxy_configuration_error",
        500,
        Side::Internal,
        RetryRule::Never,
    ),
    (
        FailureKind::ProxyLoopDetected,
        "proxy_loop_detected",
        502,
        Side::Downstream,
        RetryRule::Never,
    ),
];

#[test]
fn every_kind_maps_as_the_table_says() {
    assert_eq!(TABLE.len(), FailureKind::ALL.len());
    for (kind, token, status, side, retry) in TABLE {
        assert_eq!(kind.token(), token, "{kind:?} token");
        assert_eq!(kind.status().as_u16(), status, "{kind:?} status");
        assert_eq!(kind.side(), side, "{kind:?} side");
        assert_eq!(kind.retry_rule(), retry, "{kind:?} retry");
        assert_eq!(
            kind.may_serve_stale(),
            side == Side::Upstream,
            "{kind:?} stale"
        );
        assert!(
            !kind.hint().is_empty() && !kind.summary().is_empty(),
            "{kind:?} wording"
        );
    }
}

#[test]
fn all_lists_every_kind_once() {
    let mut tokens: Vec<&str> = FailureKind::ALL.iter().map(|k| k.token()).collect();
    tokens.sort_unstable();
    tokens.dedup();
    assert_eq!(tokens.len(), FailureKind::ALL.len());
    for (kind, ..) in TABLE {
        assert!(FailureKind::ALL.contains(&kind));
    }
}

#[test]
fn request_errors_carry_their_own_4xx() {
    for status in [400, 408, 411, 413, 414, 431] {
        let status = StatusCode::from_u16(status).unwrap();
        let failure = Failure::client(status, "x");
        assert_eq!(failure.kind, FailureKind::HttpRequestError);
        assert_eq!(failure.status(), status);
    }
    let bare = Failure::new(FailureKind::HttpRequestError, Phase::ReadingRequest, "x");
    assert_eq!(bare.status(), StatusCode::BAD_REQUEST);
}

#[test]
fn display_names_kind_phase_and_details() {
    let failure = Failure::new(
        FailureKind::ConnectionRefused,
        Phase::Connecting,
        "connect to 127.0.0.1:3000: refused",
    );
    assert_eq!(
        failure.to_string(),
        "connection_refused while connecting to upstream: connect to 127.0.0.1:3000: refused"
    );
}

/// The README's table of failure kinds stays true to the mapping: every kind is named there,
/// and every table row states the kind's own status first.
#[test]
fn readme_names_every_kind_with_its_status() {
    let readme = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"));
    for kind in FailureKind::ALL {
        let token = format!("`{}`", kind.token());
        assert!(readme.contains(&token), "README does not mention {token}");
        let row_start = format!("| {token} | ");
        if let Some(row) = readme.lines().find(|line| line.starts_with(&row_start)) {
            let status = kind.status().as_u16().to_string();
            let cell = row[row_start.len()..].split('|').next().unwrap_or("");
            assert!(
                cell.trim_start().starts_with(&status),
                "README row for {token} says {cell:?}, the mapping says {status}"
            );
        }
    }
}

#[test]
fn retry_after_exactly_on_the_temporary_503s_and_close_on_request_errors() {
    for kind in FailureKind::ALL {
        let temporary = matches!(
            kind,
            FailureKind::DestinationUnavailable
                | FailureKind::ConnectionLimitReached
                | FailureKind::ProxyInternalResponse
        );
        assert_eq!(kind.retry_after_secs().is_some(), temporary, "{kind:?}");
        assert_eq!(
            kind.retry_after_secs().is_some(),
            kind.status() == StatusCode::SERVICE_UNAVAILABLE,
            "{kind:?}"
        );
        assert_eq!(
            kind.closes_client_connection(),
            kind == FailureKind::HttpRequestError,
            "{kind:?}"
        );
    }
}
