//! Rendering of generated error responses per format and mode.

use gatehouse_config::ProxyStatusMode;
use http::StatusCode;
use http::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use http_body_util::BodyExt as _;

use super::*;
use crate::failure::{Failure, FailureKind, Phase};

fn render_with(
    failure: &Failure,
    accept: Option<&str>,
    mode: ProxyStatusMode,
    head_only: bool,
) -> Response<ProxyBody> {
    let writer = ProxyStatusWriter::new("gatehouse", mode);
    let accept = accept.map(|a| http::HeaderValue::from_str(a).unwrap());
    render(
        failure,
        &ErrorContext {
            request_id: "req-1",
            accept: accept.as_ref(),
            head_only,
            next_hop: Some("app/127.0.0.1:3000"),
            proxy_status: &writer,
        },
    )
}

fn body_text(response: Response<ProxyBody>) -> String {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let bytes = runtime
        .block_on(response.into_body().collect())
        .unwrap()
        .to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

fn refused() -> Failure {
    Failure::new(
        FailureKind::ConnectionRefused,
        Phase::Connecting,
        "connect to 127.0.0.1:3000: refused <b>",
    )
}

#[test]
fn html_page_by_default() {
    let response = render_with(&refused(), None, ProxyStatusMode::Minimal, false);
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(response.headers()[CONTENT_TYPE], "text/html; charset=utf-8");
    assert_eq!(response.headers()[CACHE_CONTROL], "no-store");
    assert_eq!(response.headers()["x-request-id"], "req-1");
    assert_eq!(
        response.headers()["proxy-status"],
        "gatehouse;error=connection_refused"
    );
    let body = body_text(response);
    assert!(body.contains("<title>502 Bad Gateway</title>"), "{body}");
    assert!(body.contains("req-1"));
    assert!(body.contains("connection_refused"));
    assert!(
        !body.contains("127.0.0.1"),
        "minimal mode must not reveal the next hop: {body}"
    );
}

#[test]
fn problem_json_on_request() {
    let response = render_with(
        &refused(),
        Some("application/json"),
        ProxyStatusMode::Full,
        false,
    );
    assert_eq!(response.headers()[CONTENT_TYPE], "application/problem+json");
    assert_eq!(
        response.headers()["proxy-status"],
        "gatehouse;error=connection_refused;next-hop=\"app/127.0.0.1:3000\";details=\"connect to 127.0.0.1:3000: refused <b>\""
    );
    let json: serde_json::Value = serde_json::from_str(&body_text(response)).unwrap();
    assert_eq!(json["status"], 502);
    assert_eq!(json["title"], "502 Bad Gateway");
    assert_eq!(json["error"], "connection_refused");
    assert_eq!(json["request_id"], "req-1");
    assert_eq!(json["type"], "urn:gatehouse:error:connection_refused");
    assert_eq!(json["details"], "connect to 127.0.0.1:3000: refused <b>");
}

#[test]
fn plain_text_and_escaping() {
    let response = render_with(&refused(), Some("text/plain"), ProxyStatusMode::Full, false);
    assert_eq!(
        response.headers()[CONTENT_TYPE],
        "text/plain; charset=utf-8"
    );
    assert!(body_text(response).starts_with("502 Bad Gateway\n"));
    let html = body_text(render_with(&refused(), None, ProxyStatusMode::Full, false));
    assert!(
        html.contains("refused &lt;b&gt;"),
        "details must be escaped in HTML: {html}"
    );
}

#[test]
fn head_gets_headers_only() {
    let response = render_with(&refused(), None, ProxyStatusMode::Minimal, true);
    let length: usize = response.headers()[CONTENT_LENGTH]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(length > 0);
    assert_eq!(body_text(response), "");
}

#[test]
fn unavailable_gets_retry_after_and_off_mode_no_header() {
    let failure = Failure::new(
        FailureKind::DestinationUnavailable,
        Phase::Routing,
        "all out",
    );
    let response = render_with(&failure, None, ProxyStatusMode::Off, false);
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key(RETRY_AFTER));
    assert!(!response.headers().contains_key("proxy-status"));
}

#[test]
fn request_errors_close_the_connection() {
    let failure = Failure::client(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "big");
    let response = render_with(&failure, None, ProxyStatusMode::Minimal, false);
    assert_eq!(
        response.status(),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    );
    assert_eq!(
        response.headers()["proxy-status"],
        "gatehouse;error=http_request_error;status-code=431"
    );
    assert_eq!(response.headers()[http::header::CONNECTION], "close");
}
