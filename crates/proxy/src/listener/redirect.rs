//! Redirect listeners (`redirect_https`): every request is answered `308 Permanent Redirect` to
//! the same URL over `https://`. 308 (RFC 9110 §15.4.9) rather than 301, so that a client
//! repeats a POST as a POST.
//!
//! The request never reaches routing, the cache or an upstream; it gets an access record like
//! any other. The redirect is not a failure: no Proxy-Status. A request without a usable host
//! cannot be redirected and is answered 400 by `respond::render`.

use std::net::SocketAddr;

use http::header::{self, HeaderValue};
use http::uri::Authority;
use http::{HeaderMap, Request, Response, StatusCode, Uri};

use crate::body::ProxyBody;
use crate::failure::Failure;
use crate::observe::access_log::{AccessRecord, AttemptContext};
use crate::respond::{self, ErrorContext};
use crate::service;
use crate::snapshot::Snapshot;

/// The port HTTPS URLs leave out (RFC 9110 §4.2.2).
const HTTPS_DEFAULT_PORT: u16 = 443;

/// Answers one request on a redirect listener.
pub(super) fn answer<B>(
    snapshot: &Snapshot,
    client: SocketAddr,
    req: &Request<B>,
) -> Response<ProxyBody> {
    let request_id = service::new_request_id();
    let access_log = snapshot.config.server.access_log;
    let target = if access_log {
        req.uri()
            .path_and_query()
            .map_or_else(|| req.uri().to_string(), ToString::to_string)
    } else {
        String::new()
    };
    let mut record = AccessRecord::new(
        access_log,
        client,
        request_id.as_str().into(),
        req.method().clone(),
        target,
    )
    .with_request_facts(&snapshot.observer.access, req);
    let head_only = req.method() == http::Method::HEAD;

    let location = target_host(req.headers(), req.uri()).and_then(|host| {
        let location = location(&host, snapshot.listeners.https_port(), req.uri());
        HeaderValue::from_str(&location).map_err(|_| "the request target cannot be redirected")
    });
    let response = match location {
        Ok(location) => redirect(location, &request_id, head_only),
        Err(why) => {
            let failure = Failure::client(StatusCode::BAD_REQUEST, why);
            snapshot
                .observer
                .failure(&failure, &AttemptContext::before_any_attempt(&request_id));
            record.failure = Some(failure.kind.token());
            respond::render(
                &failure,
                &ErrorContext {
                    request_id: &request_id,
                    accept: req.headers().get(header::ACCEPT),
                    head_only,
                    next_hop: None,
                    proxy_status: &snapshot.proxy_status,
                },
            )
        }
    };
    record.status = response.status().as_u16();
    record.body_bytes = http_body::Body::size_hint(response.body())
        .exact()
        .unwrap_or(0);
    snapshot.observer.finished(record);
    response
}

fn redirect(location: HeaderValue, request_id: &str, head_only: bool) -> Response<ProxyBody> {
    let text = format!(
        "Moved permanently to {}\n",
        location.to_str().unwrap_or_default()
    );
    let length = text.len();
    let mut response = Response::new(if head_only {
        ProxyBody::empty()
    } else {
        ProxyBody::full(text)
    });
    *response.status_mut() = StatusCode::PERMANENT_REDIRECT;
    let headers = response.headers_mut();
    headers.insert(header::LOCATION, location);
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    if let Some(id) = crate::forward::request_id_value(request_id) {
        headers.insert(crate::forward::X_REQUEST_ID, id);
    }
    response
}

/// The host to redirect to: the request's `Host` (or the authority of an absolute-form or
/// HTTP/2 request) without its port, lowercase. Only a host name or an IP literal qualifies, so
/// that nothing a client writes in `Host` can reshape the `Location` URL.
fn target_host(headers: &HeaderMap, uri: &Uri) -> Result<String, &'static str> {
    let mut hosts = headers.get_all(header::HOST).iter();
    let raw = match (hosts.next(), hosts.next()) {
        (Some(_), Some(_)) => return Err("request with several Host headers"),
        (Some(host), None) => host.to_str().map_err(|_| "the Host header is not text")?,
        (None, _) => uri
            .authority()
            .map(Authority::as_str)
            .ok_or("request without a Host header: there is no URL to redirect to")?,
    };
    let authority: Authority = raw
        .parse()
        .map_err(|_| "the Host header is not a host name")?;
    let port = raw.get(authority.host().len()..).unwrap_or_default();
    let port_valid = port.is_empty()
        || port
            .strip_prefix(':')
            .is_some_and(|p| p.is_empty() || p.parse::<u16>().is_ok());
    let host = authority.host().trim_end_matches('.');
    let plain = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_');
    let ip_literal = |b: u8| b.is_ascii_hexdigit() || matches!(b, b'[' | b']' | b':' | b'.');
    let valid = !host.is_empty()
        && port_valid
        && !raw.contains('@')
        && (host.bytes().all(plain) || (host.starts_with('[') && host.bytes().all(ip_literal)));
    if !valid {
        return Err("the Host header is not a host name");
    }
    Ok(host.to_ascii_lowercase())
}

/// `https://HOST[:PORT]/path?query`: the port only when the HTTPS listener's is not 443.
fn location(host: &str, https_port: Option<u16>, uri: &Uri) -> String {
    let path = uri
        .path_and_query()
        .map(http::uri::PathAndQuery::as_str)
        .filter(|pq| pq.starts_with('/'))
        .unwrap_or("/");
    match https_port {
        Some(port) if port != HTTPS_DEFAULT_PORT => format!("https://{host}:{port}{path}"),
        _ => format!("https://{host}{path}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(value: Option<&str>, uri: &str) -> Result<String, &'static str> {
        let mut headers = HeaderMap::new();
        if let Some(value) = value {
            headers.insert(header::HOST, HeaderValue::from_str(value).unwrap());
        }
        target_host(&headers, &uri.parse().unwrap())
    }

    #[test]
    fn the_host_loses_its_port_and_case() {
        assert_eq!(
            host(Some("Example.TEST:8080"), "/").unwrap(),
            "example.test"
        );
        assert_eq!(host(Some("example.test."), "/").unwrap(), "example.test");
        assert_eq!(host(Some("[::1]:80"), "/").unwrap(), "[::1]");
        assert_eq!(host(Some("10.0.0.1"), "/").unwrap(), "10.0.0.1");
        assert_eq!(
            host(None, "http://from-uri.test:81/x").unwrap(),
            "from-uri.test",
            "HTTP/2 :authority and absolute-form requests carry the host in the URI"
        );
    }

    #[test]
    fn no_usable_host_is_an_error() {
        host(None, "/").unwrap_err();
        host(Some(""), "/").unwrap_err();
        host(Some("user@evil.test"), "/").unwrap_err();
        host(Some("a b.test"), "/").unwrap_err();
        host(Some("evil.test/path"), "/").unwrap_err();
        host(Some("evil.test:99999"), "/").unwrap_err();
        let mut headers = HeaderMap::new();
        headers.append(header::HOST, HeaderValue::from_static("a.test"));
        headers.append(header::HOST, HeaderValue::from_static("b.test"));
        target_host(&headers, &Uri::from_static("/")).unwrap_err();
    }

    #[test]
    fn the_port_is_written_unless_it_is_443() {
        let uri: Uri = "/a/b?x=1&y".parse().unwrap();
        assert_eq!(
            location("h.test", Some(8443), &uri),
            "https://h.test:8443/a/b?x=1&y"
        );
        assert_eq!(
            location("h.test", Some(443), &uri),
            "https://h.test/a/b?x=1&y"
        );
        assert_eq!(
            location("h.test", None, &uri),
            "https://h.test/a/b?x=1&y",
            "no TLS listener: 443 implied"
        );
        assert_eq!(
            location("h.test", None, &Uri::from_static("*")),
            "https://h.test/"
        );
        assert_eq!(
            location("h.test", None, &"http://h.test".parse().unwrap()),
            "https://h.test/"
        );
    }
}
