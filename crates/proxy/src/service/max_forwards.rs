//! Max-Forwards (RFC 9110 §7.6.2): a TRACE or OPTIONS request that may go no further is
//! answered here, as its final recipient, once it has been routed, limited and let through
//! maintenance like any request; one that may go on is forwarded with the count lowered by
//! one. Other methods ignore the field, as the RFC says.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Method, Response, StatusCode};

use super::Pipeline;
use crate::body::ProxyBody;
use crate::forward;

/// The only fields a TRACE answer reflects: what shows the request's way through the proxies
/// and how it was made, never credentials or what a proxy in front may have added about the
/// client (RFC 9110 §9.3.8: the final recipient SHOULD exclude fields likely to hold sensitive
/// data; an allow-list leaves out the ones no list of names foresees).
const REFLECTED: [header::HeaderName; 7] = [
    header::HOST,
    header::VIA,
    header::MAX_FORWARDS,
    header::USER_AGENT,
    header::ACCEPT,
    header::ACCEPT_ENCODING,
    header::ACCEPT_LANGUAGE,
];

/// The count a valid `Max-Forwards` holds (`1*DIGIT`); `None` for any other value, which is
/// forwarded as it came. A count too large for 64 bits is as good as unlimited: it is taken
/// as `u64::MAX`, so it too is lowered on its way.
fn remaining(value: &HeaderValue) -> Option<u64> {
    let digits = value.as_bytes();
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(digits.iter().fold(0u64, |count, &digit| {
        count
            .saturating_mul(10)
            .saturating_add(u64::from(digit - b'0'))
    }))
}

/// The request as received, as a `message/http` body: its line and its [`REFLECTED`] fields.
fn reflected(parts: &Parts) -> Vec<u8> {
    let target = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let mut out = format!("{} {target} {:?}\r\n", parts.method, parts.version).into_bytes();
    for (name, value) in &parts.headers {
        if !REFLECTED.contains(name) {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

impl Pipeline<'_> {
    /// For a TRACE or OPTIONS with `Max-Forwards`: the answer when this hop is its last (the
    /// count is 0), else `None` with the count lowered for the next hop.
    pub(super) fn max_forwards(&mut self, parts: &mut Parts) -> Option<Response<ProxyBody>> {
        if parts.method != Method::TRACE && parts.method != Method::OPTIONS {
            return None;
        }
        let left = remaining(parts.headers.get(header::MAX_FORWARDS)?)?;
        if left > 0 {
            parts
                .headers
                .insert(header::MAX_FORWARDS, HeaderValue::from(left - 1));
            return None;
        }
        // Gatehouse's own answer: sent as it is.
        self.compress = None;
        let mut response = Response::new(ProxyBody::empty());
        let headers = response.headers_mut();
        if parts.method == Method::TRACE {
            let body = reflected(parts);
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("message/http"),
            );
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
            *response.body_mut() = ProxyBody::full(Bytes::from(body));
        } else {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
        }
        if let Some(id) = self.request_id_header.clone() {
            response.headers_mut().insert(forward::X_REQUEST_ID, id);
        }
        *response.status_mut() = StatusCode::OK;
        let mut record = self.take_record();
        record.status = StatusCode::OK.as_u16();
        record.body_bytes = http_body::Body::size_hint(response.body())
            .exact()
            .unwrap_or(0);
        self.snapshot.observer.finished(record);
        Some(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_digits_make_a_count() {
        let count = |v: &'static str| remaining(&HeaderValue::from_static(v));
        assert_eq!(count("0"), Some(0));
        assert_eq!(count("10"), Some(10));
        assert_eq!(count("007"), Some(7));
        // Beyond 64 bits: as good as unlimited, and still lowered on its way.
        assert_eq!(count("99999999999999999999999"), Some(u64::MAX));
        for invalid in ["", "+1", "-1", "1 ", "x", "9x"] {
            assert_eq!(count(invalid), None, "{invalid:?}");
        }
    }

    #[test]
    fn a_trace_reflects_only_the_fields_that_show_its_way() {
        let (parts, ()) = http::Request::builder()
            .method(Method::TRACE)
            .uri("/a?b")
            .header("host", "a.example")
            .header("cookie", "s=1")
            .header("authorization", "Bearer x")
            .header("x-amzn-oidc-data", "token")
            .header("via", "1.1 lb")
            .body(())
            .unwrap()
            .into_parts();
        assert_eq!(
            String::from_utf8(reflected(&parts)).unwrap(),
            "TRACE /a?b HTTP/1.1\r\nhost: a.example\r\nvia: 1.1 lb\r\n\r\n"
        );
    }
}
