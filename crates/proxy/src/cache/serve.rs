//! Responses made from a stored copy, and the `Cache-Status` header (RFC 9211) that says what the
//! cache did.

use std::fmt::Write as _;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Response, StatusCode};

use super::entry::StoredResponse;
use super::{policy, range};

/// One `Cache-Status` member (RFC 9211 §2): the cache's name and what it did.
#[derive(Debug, Clone, Default)]
pub struct CacheStatus {
    /// Served from the cache without going to the origin.
    pub hit: bool,
    /// Why the request went to the origin: `miss`, `stale`, `bypass`, `method`, `vary-miss`, ...
    pub fwd: Option<&'static str>,
    /// The status the origin answered the forwarded request with.
    pub fwd_status: Option<u16>,
    /// Freshness left, in seconds; negative when stale.
    pub ttl: Option<i64>,
    /// The response is being stored.
    pub stored: bool,
    /// The request waited for another request's response (coalescing).
    pub collapsed: bool,
    /// Free text: why not stored, `stale-if-error`, `robots-guard`, `maintenance`.
    pub detail: Option<&'static str>,
}

impl CacheStatus {
    /// The header value, e.g. `gatehouse; fwd=stale; fwd-status=503; ttl=-40; detail="stale-if-error"`.
    pub fn header(&self, name: &str) -> Option<HeaderValue> {
        let mut out = String::with_capacity(64);
        out.push_str(name);
        if self.hit {
            out.push_str("; hit");
        }
        if let Some(fwd) = self.fwd {
            let _ = write!(out, "; fwd={fwd}");
        }
        if let Some(status) = self.fwd_status {
            let _ = write!(out, "; fwd-status={status}");
        }
        if let Some(ttl) = self.ttl {
            let _ = write!(out, "; ttl={ttl}");
        }
        if self.stored {
            out.push_str("; stored");
        }
        if self.collapsed {
            out.push_str("; collapsed");
        }
        if let Some(detail) = self.detail {
            let _ = write!(out, "; detail=\"{detail}\"");
        }
        HeaderValue::from_str(&out).ok()
    }
}

/// Seconds for a `ttl` parameter: remaining freshness, or minus how long it has been stale.
pub fn ttl_secs(freshness: policy::Freshness) -> i64 {
    match freshness {
        policy::Freshness::Fresh { ttl } => i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX),
        policy::Freshness::Stale { stale_for } => {
            -i64::try_from(stale_for.as_secs().max(1)).unwrap_or(i64::MAX)
        }
    }
}

/// The response for a stored copy: its status, header fields and body, with `Age` set, or a 304
/// when the client's own conditional matches it, or a 206 / 416 for its `Range` (a stored 200
/// only, GET only, and only when `If-Range` allows it: RFC 9110 §14, §13.1.5). The body is
/// whole (empty for a 304 or `HEAD`); the pipeline wraps it into the body it sends. `hidden` is
/// a field of the stored response that is not sent on (gatehouse's own targeted field).
pub fn from_stored(
    entry: &StoredResponse,
    age: Duration,
    request: &HeaderMap,
    head_only: bool,
    hidden: Option<&HeaderName>,
) -> Response<Bytes> {
    let mut response = whole_or_range(entry, request, head_only);
    let headers = response.headers_mut();
    headers.insert(header::AGE, HeaderValue::from(age.as_secs()));
    if let Some(hidden) = hidden {
        headers.remove(hidden);
    }
    response
}

fn whole_or_range(entry: &StoredResponse, request: &HeaderMap, head_only: bool) -> Response<Bytes> {
    let not_modified =
        entry.status == StatusCode::OK && policy::not_modified_for(request, &entry.headers);
    if !not_modified
        && !head_only
        && entry.status == StatusCode::OK
        && request.contains_key(header::RANGE)
        && range::if_range_allows(request, &entry.headers, entry.response_time)
    {
        let length = entry.body.len() as u64;
        match range::parse(request, length) {
            range::RangeRequest::Whole => {}
            range::RangeRequest::Unsatisfiable => {
                let mut headers = entry.headers.clone();
                strip_representation(&mut headers);
                headers.insert(header::CONTENT_RANGE, range::unsatisfied_range(length));
                headers.insert(header::CONTENT_LENGTH, HeaderValue::from(0));
                return build(StatusCode::RANGE_NOT_SATISFIABLE, headers, Bytes::new());
            }
            range::RangeRequest::Ranges(ranges) => {
                let mut headers = entry.headers.clone();
                let body = if let [(first, last)] = ranges[..] {
                    headers.insert(
                        header::CONTENT_RANGE,
                        range::content_range(first, last, length),
                    );
                    entry.body.slice(range::slice(first, last))
                } else {
                    let boundary = format!("gatehouse-{}", crate::service::new_request_id());
                    let content_type = entry.headers.get(header::CONTENT_TYPE);
                    let body = range::multipart(&entry.body, &ranges, content_type, &boundary);
                    headers.remove(header::CONTENT_RANGE);
                    if let Ok(value) =
                        HeaderValue::from_str(&format!("multipart/byteranges; boundary={boundary}"))
                    {
                        headers.insert(header::CONTENT_TYPE, value);
                    }
                    body
                };
                headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
                return build(StatusCode::PARTIAL_CONTENT, headers, body);
            }
        }
    }
    let (status, mut headers, body) = if not_modified {
        (
            StatusCode::NOT_MODIFIED,
            policy::not_modified_headers(&entry.headers),
            Bytes::new(),
        )
    } else if head_only {
        (entry.status, entry.headers.clone(), Bytes::new())
    } else {
        (entry.status, entry.headers.clone(), entry.body.clone())
    };
    if !not_modified {
        // The stored body is whole; its length is known even if it came chunked.
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(entry.body.len()));
        if status == StatusCode::OK && !headers.contains_key(header::ACCEPT_RANGES) {
            headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        }
    }
    build(status, headers, body)
}

fn build(status: StatusCode, headers: HeaderMap, body: Bytes) -> Response<Bytes> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// A 416 describes no representation: the body's own fields go (RFC 9110 §15.5.17).
fn strip_representation(headers: &mut HeaderMap) {
    for name in [
        header::CONTENT_TYPE,
        header::CONTENT_ENCODING,
        header::CONTENT_LANGUAGE,
        header::CONTENT_LOCATION,
    ] {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;

    fn stored() -> StoredResponse {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        headers.insert(header::ETAG, HeaderValue::from_static("\"e\""));
        headers.insert(
            "gatehouse-cache-control",
            HeaderValue::from_static("max-age=9"),
        );
        StoredResponse {
            status: StatusCode::OK,
            headers,
            body: Bytes::from_static(b"0123456789"),
            request_time: SystemTime::now(),
            response_time: SystemTime::now(),
            varied: Vec::new(),
        }
    }

    fn asking(fields: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in fields {
            headers.append(*name, HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn a_range_of_a_stored_copy_is_206_and_an_impossible_one_416() {
        let entry = stored();
        let partial = from_stored(
            &entry,
            Duration::ZERO,
            &asking(&[("range", "bytes=2-3")]),
            false,
            None,
        );
        assert_eq!(partial.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(&partial.body()[..], b"23");
        assert_eq!(partial.headers()[header::CONTENT_RANGE], "bytes 2-3/10");
        assert_eq!(partial.headers()[header::CONTENT_LENGTH], "2");
        let refused = from_stored(
            &entry,
            Duration::ZERO,
            &asking(&[("range", "bytes=10-")]),
            false,
            None,
        );
        assert_eq!(refused.status(), StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(refused.headers()[header::CONTENT_RANGE], "bytes */10");
        assert!(refused.headers().get(header::CONTENT_TYPE).is_none());
        assert!(refused.body().is_empty());
    }

    #[test]
    fn head_not_modified_and_if_range_come_before_the_range() {
        let entry = stored();
        let head = from_stored(
            &entry,
            Duration::ZERO,
            &asking(&[("range", "bytes=2-3")]),
            true,
            None,
        );
        assert_eq!(head.status(), StatusCode::OK);
        assert_eq!(head.headers()[header::ACCEPT_RANGES], "bytes");
        let not_modified = from_stored(
            &entry,
            Duration::ZERO,
            &asking(&[("range", "bytes=2-3"), ("if-none-match", "\"e\"")]),
            false,
            None,
        );
        assert_eq!(not_modified.status(), StatusCode::NOT_MODIFIED);
        let changed = from_stored(
            &entry,
            Duration::ZERO,
            &asking(&[("range", "bytes=2-3"), ("if-range", "\"other\"")]),
            false,
            None,
        );
        assert_eq!(changed.status(), StatusCode::OK);
        assert_eq!(changed.body().len(), 10);
    }

    #[test]
    fn the_hidden_field_is_removed_and_age_set() {
        let hidden = HeaderName::from_static("gatehouse-cache-control");
        let served = from_stored(
            &stored(),
            Duration::from_secs(7),
            &HeaderMap::new(),
            false,
            Some(&hidden),
        );
        assert!(served.headers().get(&hidden).is_none());
        assert_eq!(served.headers()[header::AGE], "7");
        let kept = from_stored(&stored(), Duration::ZERO, &HeaderMap::new(), false, None);
        assert!(kept.headers().get(&hidden).is_some());
    }
}
