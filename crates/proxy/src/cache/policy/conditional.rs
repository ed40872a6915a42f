//! Conditional requests: the ones gatehouse sends to revalidate a stored copy and freshening it
//! with the 304 (RFC 9111 §4.3), and a client's own conditional answered from a response
//! (RFC 9110 §13.2.2), with the entity-tag syntax both need.

use std::time::SystemTime;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use super::field::{http_date, parse_date_value};
use crate::cache::entry::StoredResponse;

/// Conditional request fields to revalidate `entry` (RFC 9111 §4.3.1): `If-None-Match` with its
/// `ETag` (strong or weak) and `If-Modified-Since` with its `Last-Modified`. A field whose value
/// is not a valid entity-tag or HTTP-date is not used. Empty when the entry has neither.
pub fn conditional_headers(entry: &StoredResponse) -> HeaderMap {
    let mut conditional = HeaderMap::new();
    if let Some(etag) = entry.headers.get(header::ETAG)
        && single_entity_tag(etag.as_bytes()).is_some()
    {
        conditional.insert(header::IF_NONE_MATCH, etag.clone());
    }
    if let Some(last_modified) = entry.headers.get(header::LAST_MODIFIED)
        && parse_date_value(last_modified).is_some()
    {
        conditional.insert(header::IF_MODIFIED_SINCE, last_modified.clone());
    }
    conditional
}

/// Whether `entry` has a usable validator (`ETag` or `Last-Modified`), that is whether
/// [`conditional_headers`] is not empty.
pub fn has_validator(entry: &StoredResponse) -> bool {
    !conditional_headers(entry).is_empty()
}

/// Fields of a 304 that never replace the stored ones (RFC 9111 §3.2, §4.3.4): they describe
/// the stored body or the connection the 304 came on.
fn kept_on_freshen(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "content-length"
            | "content-encoding"
            | "transfer-encoding"
            | "content-range"
            | "connection"
            | "keep-alive"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "upgrade"
    )
}

/// Updates a stored response with a 304's header fields (RFC 9111 §4.3.4) and returns it with
/// the new `request_time` and `response_time`.
///
/// Every field of the 304 replaces all stored lines of that name, except `Content-Length`,
/// `Content-Encoding`, `Transfer-Encoding`, `Content-Range` (kept from the stored response) and
/// connection-specific fields (never stored). Because the age is recomputed from the 304: a
/// stored `Age` the 304 does not repeat is removed, and a 304 without `Date` gets one from
/// `response_time` (RFC 9110 §6.6.1), so the old `Date` does not make the entry look old. The
/// status, body and `varied` values are kept.
pub fn freshen(
    entry: &StoredResponse,
    not_modified: &HeaderMap,
    request_time: SystemTime,
    response_time: SystemTime,
) -> StoredResponse {
    let mut updated = entry.clone();
    for name in not_modified.keys() {
        if kept_on_freshen(name) {
            continue;
        }
        updated.headers.remove(name);
        for value in not_modified.get_all(name) {
            updated.headers.append(name.clone(), value.clone());
        }
    }
    if !not_modified.contains_key(header::AGE) {
        updated.headers.remove(header::AGE);
    }
    if !not_modified.contains_key(header::DATE)
        && let Ok(date) = HeaderValue::from_str(&httpdate::fmt_http_date(response_time))
    {
        updated.headers.insert(header::DATE, date);
    }
    updated.request_time = request_time;
    updated.response_time = response_time;
    updated
}

/// Whether the client's own conditional request is answered with 304 by `response` (a stored or
/// just fetched response; RFC 9110 §13.2.2). Only meaningful for GET and HEAD (the caller
/// checks).
///
/// `If-None-Match` takes precedence: `*` matches any response; otherwise its entity-tags are
/// compared to the response's `ETag` with the weak comparison. Only without `If-None-Match`,
/// `If-Modified-Since` (a valid HTTP-date) is compared to the response's `Last-Modified`, or to
/// its `Date` when it has none (RFC 9111 §4.3.2); not modified when that is at or before it.
pub fn not_modified_for(request: &HeaderMap, response: &HeaderMap) -> bool {
    if request.contains_key(header::IF_NONE_MATCH) {
        let etag = response
            .get(header::ETAG)
            .and_then(|value| single_entity_tag(value.as_bytes()));
        return request
            .get_all(header::IF_NONE_MATCH)
            .iter()
            .any(|value| if_none_match_matches(value.as_bytes(), etag));
    }
    let Some(since) = http_date(request, &header::IF_MODIFIED_SINCE) else {
        return false;
    };
    http_date(response, &header::LAST_MODIFIED)
        .or_else(|| http_date(response, &header::DATE))
        .is_some_and(|modified| modified <= since)
}

/// Fields a 304 sent to the client carries (RFC 9110 §15.4.5), copied from `response` when
/// present: `Cache-Control`, `Content-Location`, `Date`, `ETag`, `Expires`, `Vary`,
/// `Last-Modified`.
pub fn not_modified_headers(response: &HeaderMap) -> HeaderMap {
    let copied = [
        header::CACHE_CONTROL,
        header::CONTENT_LOCATION,
        header::DATE,
        header::ETAG,
        header::EXPIRES,
        header::VARY,
        header::LAST_MODIFIED,
    ];
    let mut headers = HeaderMap::new();
    for name in copied {
        for value in response.get_all(&name) {
            headers.append(name.clone(), value.clone());
        }
    }
    headers
}

/// An entity-tag (RFC 9110 §8.8.3): whether it is weak, and its opaque-tag with the quotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct EntityTag<'a> {
    weak: bool,
    opaque: &'a [u8],
}

/// Parses one entity-tag at the start of `input`; returns it and the rest of `input`.
fn entity_tag(input: &[u8]) -> Option<(EntityTag<'_>, &[u8])> {
    let (weak, tagged) = match input.strip_prefix(b"W/") {
        Some(rest) => (true, rest),
        None => (false, input),
    };
    let inner = tagged.strip_prefix(b"\"")?;
    let end = inner.iter().position(|&b| b == b'"')?;
    let etagc = |b: &u8| *b == 0x21 || (0x23..=0x7e).contains(b) || *b >= 0x80;
    if !inner[..end].iter().all(etagc) {
        return None;
    }
    let opaque = &tagged[..end + 2];
    Some((EntityTag { weak, opaque }, &inner[end + 1..]))
}

/// A field value that is exactly one entity-tag (an `ETag`).
fn single_entity_tag(value: &[u8]) -> Option<EntityTag<'_>> {
    let (tag, rest) = entity_tag(value.trim_ascii())?;
    rest.trim_ascii().is_empty().then_some(tag)
}

/// Whether an `If-None-Match` field line matches a response with `etag` (weak comparison,
/// RFC 9110 §8.8.3.2); `*` matches any response. Parsing stops at the first invalid element.
fn if_none_match_matches(value: &[u8], etag: Option<EntityTag<'_>>) -> bool {
    let mut rest = value;
    loop {
        rest = rest.trim_ascii_start();
        while let Some(after) = rest.strip_prefix(b",") {
            rest = after.trim_ascii_start();
        }
        if rest.is_empty() {
            return false;
        }
        if let Some(after) = rest.strip_prefix(b"*") {
            let after = after.trim_ascii_start();
            return after.is_empty() || after.starts_with(b",");
        }
        let Some((tag, after)) = entity_tag(rest) else {
            return false;
        };
        if etag.is_some_and(|etag| etag.opaque == tag.opaque) {
            return true;
        }
        rest = after;
    }
}
