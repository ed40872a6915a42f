//! Field syntax the policy shares: list elements (RFC 9110 §5.6.1), combined field lines,
//! HTTP-dates, and saturating time differences.

use std::time::{Duration, SystemTime};

use http::header::{HeaderMap, HeaderName, HeaderValue};

/// All field lines of `name` combined into one value with `", "`; `None` when absent.
pub(super) fn combined(headers: &HeaderMap, name: &HeaderName) -> Option<HeaderValue> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    let mut bytes: Option<Vec<u8>> = None;
    for value in values {
        let joined = bytes.get_or_insert_with(|| first.as_bytes().to_vec());
        joined.extend_from_slice(b", ");
        joined.extend_from_slice(value.as_bytes());
    }
    match bytes {
        None => Some(first.clone()),
        Some(bytes) => Some(HeaderValue::from_bytes(&bytes).unwrap_or_else(|_| first.clone())),
    }
}

/// The list elements (RFC 9110 §5.6.1) of every field line of `name`.
pub(super) fn elements<'a>(
    headers: &'a HeaderMap,
    name: &HeaderName,
) -> impl Iterator<Item = &'a [u8]> + use<'a> {
    headers
        .get_all(name)
        .iter()
        .flat_map(|value| split_list(value.as_bytes()))
}

/// Splits a field value at the commas outside quoted strings, trims whitespace and drops empty
/// elements.
pub(super) fn split_list<'a>(bytes: &'a [u8]) -> Vec<&'a [u8]> {
    let mut elements = Vec::new();
    let mut push = |element: &'a [u8]| {
        let element = element.trim_ascii();
        if !element.is_empty() {
            elements.push(element);
        }
    };
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, &b) in bytes.iter().enumerate() {
        if quoted {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                quoted = false;
            }
        } else if b == b'"' {
            quoted = true;
        } else if b == b',' {
            push(&bytes[start..i]);
            start = i + 1;
        }
    }
    push(&bytes[start..]);
    elements
}

/// The first `name` field as an HTTP-date; `None` when absent or invalid.
pub(super) fn http_date(headers: &HeaderMap, name: &HeaderName) -> Option<SystemTime> {
    headers.get(name).and_then(parse_date_value)
}

pub(super) fn parse_date_value(value: &HeaderValue) -> Option<SystemTime> {
    let text = value.to_str().ok()?;
    httpdate::parse_http_date(text.trim()).ok()
}

/// `later - earlier`, or 0 when `later` is earlier.
pub(super) fn since(later: SystemTime, earlier: SystemTime) -> Duration {
    later.duration_since(earlier).unwrap_or(Duration::ZERO)
}
