//! Range requests answered from a stored complete response (RFC 9110 §14): parsing `Range`
//! against the stored length, `If-Range` (§13.1.5), and the 206 bodies (one range, or
//! `multipart/byteranges`, §14.6).
//!
//! Pure functions over `http` types; nothing here reads the clock or does I/O.

use std::time::SystemTime;

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderValue};

/// More ranges than this in one request are not honoured: the whole response is sent instead
/// (RFC 9110 §14.2 lets a server ignore a Range it finds excessive). Browsers and media players
/// ask for one; a hostile client could otherwise multiply a small response many times over.
pub const MAX_RANGES: usize = 16;

/// What a `Range` field asks of a representation of a given length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeRequest {
    /// No usable `Range` (absent, another unit, invalid syntax, too many ranges): send it all.
    Whole,
    /// The satisfiable ranges, as inclusive `(first, last)` byte positions, in request order.
    Ranges(Vec<(u64, u64)>),
    /// Valid syntax but no range overlaps the representation: 416 (§15.5.17).
    Unsatisfiable,
}

/// Parses `Range` (§14.1.2) for a representation of `length` bytes. Only the `bytes` unit is
/// understood (case-insensitively); several field lines make the request invalid (`Range` is a
/// singleton). A range whose last position is before its first makes the whole field invalid
/// (§14.1.1); one that starts at or past the end, or a `-0` suffix, is unsatisfiable and
/// dropped; a last position past the end is clamped.
pub fn parse(headers: &HeaderMap, length: u64) -> RangeRequest {
    let mut lines = headers.get_all(header::RANGE).iter();
    let (Some(value), None) = (lines.next(), lines.next()) else {
        return RangeRequest::Whole;
    };
    let Some(set) = strip_unit(value.as_bytes()) else {
        return RangeRequest::Whole;
    };
    let mut ranges = Vec::new();
    let mut specs = 0usize;
    for spec in set.split(|&b| b == b',') {
        let spec = spec.trim_ascii();
        if spec.is_empty() {
            continue;
        }
        specs += 1;
        if specs > MAX_RANGES {
            return RangeRequest::Whole;
        }
        let Some(dash) = spec.iter().position(|&b| b == b'-') else {
            return RangeRequest::Whole;
        };
        let (first, last) = (spec[..dash].trim_ascii(), spec[dash + 1..].trim_ascii());
        if first.is_empty() {
            // suffix-range: the last N bytes.
            let Some(suffix) = digits(last) else {
                return RangeRequest::Whole;
            };
            if suffix == 0 || length == 0 {
                continue;
            }
            ranges.push((length.saturating_sub(suffix), length - 1));
            continue;
        }
        let Some(first) = digits(first) else {
            return RangeRequest::Whole;
        };
        let last = if last.is_empty() {
            None
        } else {
            match digits(last) {
                Some(last) if last >= first => Some(last),
                _ => return RangeRequest::Whole,
            }
        };
        if first >= length {
            continue;
        }
        let last = last.map_or(length - 1, |last| last.min(length - 1));
        ranges.push((first, last));
    }
    if specs == 0 {
        return RangeRequest::Whole;
    }
    if ranges.is_empty() {
        RangeRequest::Unsatisfiable
    } else {
        RangeRequest::Ranges(ranges)
    }
}

/// `bytes=` (unit case-insensitive, §14.1) stripped; `None` for another unit or no `=`.
fn strip_unit(value: &[u8]) -> Option<&[u8]> {
    let eq = value.iter().position(|&b| b == b'=')?;
    value[..eq]
        .trim_ascii()
        .eq_ignore_ascii_case(b"bytes")
        .then(|| &value[eq + 1..])
}

/// 1*DIGIT, `None` when empty, not all digits, or beyond `u64`.
fn digits(text: &[u8]) -> Option<u64> {
    if text.is_empty() || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    text.iter().try_fold(0u64, |value, &digit| {
        value.checked_mul(10)?.checked_add(u64::from(digit - b'0'))
    })
}

/// Whether the request's `If-Range` (§13.1.5) lets its `Range` apply to the stored response
/// `response`: true without `If-Range`; with an entity-tag, only when it is strong and equals
/// the response's strong `ETag`; with an HTTP-date, only when it equals the response's
/// `Last-Modified` exactly and that is a strong validator (at least one second before its
/// `Date`, §8.8.2.2; a response without `Date` is dated `received`, when the cache got it, as
/// §6.6.1 has a recipient do). Anything else, or an invalid value, means "send it all".
pub fn if_range_allows(request: &HeaderMap, response: &HeaderMap, received: SystemTime) -> bool {
    let Some(condition) = request.get(header::IF_RANGE) else {
        return true;
    };
    let condition = condition.as_bytes().trim_ascii();
    if condition.starts_with(b"W/") {
        return false;
    }
    if condition.starts_with(b"\"") {
        let Some(etag) = response.get(header::ETAG) else {
            return false;
        };
        let etag = etag.as_bytes().trim_ascii();
        return !etag.starts_with(b"W/") && is_entity_tag(condition) && etag == condition;
    }
    let parse = |value: &[u8]| {
        std::str::from_utf8(value)
            .ok()
            .and_then(|text| httpdate::parse_http_date(text.trim()).ok())
    };
    let (Some(since), Some(modified)) = (
        parse(condition),
        response
            .get(header::LAST_MODIFIED)
            .and_then(|v| parse(v.as_bytes())),
    ) else {
        return false;
    };
    let date = match response.get(header::DATE) {
        Some(date) => parse(date.as_bytes()),
        None => Some(received),
    };
    let strong = date.is_some_and(|date| {
        date.duration_since(modified)
            .is_ok_and(|gap| gap.as_secs() >= 1)
    });
    strong && since == modified
}

/// `"..."` with only etagc inside (§8.8.3).
fn is_entity_tag(value: &[u8]) -> bool {
    value.len() >= 2
        && value.starts_with(b"\"")
        && value.ends_with(b"\"")
        && value[1..value.len() - 1]
            .iter()
            .all(|&b| b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80)
}

/// `Content-Range: bytes first-last/length`.
pub fn content_range(first: u64, last: u64, length: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("bytes {first}-{last}/{length}"))
        .unwrap_or_else(|_| HeaderValue::from_static("bytes */0"))
}

/// `Content-Range: bytes */length`, for a 416.
pub fn unsatisfied_range(length: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("bytes */{length}"))
        .unwrap_or_else(|_| HeaderValue::from_static("bytes */0"))
}

/// A `multipart/byteranges` body (§14.6) for `ranges` of `body`, each part carrying
/// `content_type` (when the response has one) and its `Content-Range`.
pub fn multipart(
    body: &Bytes,
    ranges: &[(u64, u64)],
    content_type: Option<&HeaderValue>,
    boundary: &str,
) -> Bytes {
    let length = body.len() as u64;
    let mut out = BytesMut::new();
    for &(first, last) in ranges {
        out.extend_from_slice(b"\r\n--");
        out.extend_from_slice(boundary.as_bytes());
        out.extend_from_slice(b"\r\n");
        if let Some(content_type) = content_type {
            out.extend_from_slice(b"Content-Type: ");
            out.extend_from_slice(content_type.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"Content-Range: ");
        out.extend_from_slice(content_range(first, last, length).as_bytes());
        out.extend_from_slice(b"\r\n\r\n");
        out.extend_from_slice(&body[slice(first, last)]);
    }
    out.extend_from_slice(b"\r\n--");
    out.extend_from_slice(boundary.as_bytes());
    out.extend_from_slice(b"--\r\n");
    out.freeze()
}

/// The byte positions `first..=last` as a slice range (positions were checked against the
/// body's length by [`parse`]).
pub fn slice(first: u64, last: u64) -> std::ops::Range<usize> {
    let first = usize::try_from(first).unwrap_or(usize::MAX);
    let end = usize::try_from(last).unwrap_or(usize::MAX - 1) + 1;
    first..end
}

#[cfg(test)]
mod tests {
    use http::HeaderName;

    use super::*;

    fn range(value: &str, length: u64) -> RangeRequest {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::RANGE,
            HeaderValue::from_str(value).expect("test value"),
        );
        parse(&headers, length)
    }

    fn fields(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).expect("name"),
                HeaderValue::from_str(value).expect("value"),
            );
        }
        headers
    }

    #[test]
    fn single_suffix_and_open_ended_ranges() {
        assert_eq!(range("bytes=0-4", 10), RangeRequest::Ranges(vec![(0, 4)]));
        assert_eq!(range("bytes=5-", 10), RangeRequest::Ranges(vec![(5, 9)]));
        assert_eq!(range("bytes=-3", 10), RangeRequest::Ranges(vec![(7, 9)]));
        assert_eq!(range("bytes=-30", 10), RangeRequest::Ranges(vec![(0, 9)]));
        assert_eq!(range("bytes=8-100", 10), RangeRequest::Ranges(vec![(8, 9)]));
        assert_eq!(
            range("BYTES = 0-0, 2-3 ,,", 10),
            RangeRequest::Ranges(vec![(0, 0), (2, 3)])
        );
    }

    #[test]
    fn unsatisfiable_ranges() {
        assert_eq!(range("bytes=10-", 10), RangeRequest::Unsatisfiable);
        assert_eq!(range("bytes=10-20", 10), RangeRequest::Unsatisfiable);
        assert_eq!(range("bytes=-0", 10), RangeRequest::Unsatisfiable);
        assert_eq!(range("bytes=0-", 0), RangeRequest::Unsatisfiable);
        assert_eq!(range("bytes=-5", 0), RangeRequest::Unsatisfiable);
        // One satisfiable range among unsatisfiable ones is served alone.
        assert_eq!(
            range("bytes=20-30, 1-2", 10),
            RangeRequest::Ranges(vec![(1, 2)])
        );
    }

    #[test]
    fn invalid_or_foreign_ranges_mean_the_whole_response() {
        for value in [
            "bytes=5-4",
            "bytes=a-b",
            "bytes=1-2-3",
            "bytes=",
            "bytes=,",
            "items=0-4",
            "bytes 0-4",
            "bytes=0x1-2",
            "bytes=-",
            "bytes=1.5-2",
            "bytes=-1-2",
            "bytes=99999999999999999999999-",
        ] {
            assert_eq!(range(value, 10), RangeRequest::Whole, "{value}");
        }
        let many = format!("bytes={}", vec!["0-0"; MAX_RANGES + 1].join(","));
        assert_eq!(range(&many, 10), RangeRequest::Whole);
        let two = fields(&[("range", "bytes=0-1"), ("range", "bytes=2-3")]);
        assert_eq!(parse(&two, 10), RangeRequest::Whole);
        assert_eq!(parse(&HeaderMap::new(), 10), RangeRequest::Whole);
    }

    #[test]
    fn hostile_input_never_panics() {
        let inputs = [
            "bytes=18446744073709551615-18446744073709551615",
            "bytes=-18446744073709551615",
            "bytes=0-18446744073709551615",
            "bytes=18446744073709551614-",
            "=",
            "bytes==",
            "bytes=--",
            "bytes=0-0,-1,1-,",
        ];
        for value in inputs {
            for length in [0, 1, 10, u64::MAX] {
                let _ = range(value, length);
            }
        }
        let mut bytes: Vec<u8> = (0..=255u8).collect();
        bytes.retain(|b| *b != b'\n' && *b != b'\r' && *b != 0 && *b != 0x7f);
        if let Ok(value) = HeaderValue::from_bytes(&bytes) {
            let mut headers = HeaderMap::new();
            headers.insert(header::RANGE, value.clone());
            headers.insert(header::IF_RANGE, value);
            let _ = parse(&headers, 10);
            let _ = if_range_allows(&headers, &headers, SystemTime::UNIX_EPOCH);
        }
    }

    #[test]
    fn if_range_with_strong_etag_or_exact_date() {
        let response = fields(&[
            ("etag", "\"v1\""),
            ("last-modified", "Mon, 01 Jan 2024 00:00:00 GMT"),
            ("date", "Tue, 02 Jan 2024 00:00:00 GMT"),
        ]);
        assert!(if_range_allows(
            &HeaderMap::new(),
            &response,
            SystemTime::UNIX_EPOCH
        ));
        assert!(if_range_allows(
            &fields(&[("if-range", "\"v1\"")]),
            &response,
            SystemTime::UNIX_EPOCH
        ));
        assert!(!if_range_allows(
            &fields(&[("if-range", "\"v2\"")]),
            &response,
            SystemTime::UNIX_EPOCH
        ));
        assert!(!if_range_allows(
            &fields(&[("if-range", "W/\"v1\"")]),
            &response,
            SystemTime::UNIX_EPOCH
        ));
        assert!(if_range_allows(
            &fields(&[("if-range", "Mon, 01 Jan 2024 00:00:00 GMT")]),
            &response,
            SystemTime::UNIX_EPOCH
        ));
        assert!(!if_range_allows(
            &fields(&[("if-range", "Mon, 01 Jan 2024 00:00:01 GMT")]),
            &response,
            SystemTime::UNIX_EPOCH
        ));
        assert!(!if_range_allows(
            &fields(&[("if-range", "soon")]),
            &response,
            SystemTime::UNIX_EPOCH
        ));
        let weak = fields(&[("etag", "W/\"v1\"")]);
        assert!(!if_range_allows(
            &fields(&[("if-range", "\"v1\"")]),
            &weak,
            SystemTime::UNIX_EPOCH
        ));
        // A Last-Modified equal to Date is a weak validator.
        let same_second = fields(&[
            ("last-modified", "Mon, 01 Jan 2024 00:00:00 GMT"),
            ("date", "Mon, 01 Jan 2024 00:00:00 GMT"),
        ]);
        assert!(!if_range_allows(
            &fields(&[("if-range", "Mon, 01 Jan 2024 00:00:00 GMT")]),
            &same_second,
            SystemTime::UNIX_EPOCH
        ));
    }

    #[test]
    fn without_date_the_time_received_dates_the_response() {
        let response = fields(&[("last-modified", "Mon, 01 Jan 2024 00:00:00 GMT")]);
        let asked = fields(&[("if-range", "Mon, 01 Jan 2024 00:00:00 GMT")]);
        let modified = httpdate::parse_http_date("Mon, 01 Jan 2024 00:00:00 GMT").expect("date");
        let later = modified + std::time::Duration::from_secs(60);
        assert!(if_range_allows(&asked, &response, later));
        assert!(
            !if_range_allows(&asked, &response, modified),
            "weak: same second"
        );
    }

    #[test]
    fn multipart_body_has_each_part_and_the_closing_boundary() {
        let body = Bytes::from_static(b"0123456789");
        let ct = HeaderValue::from_static("text/plain");
        let out = multipart(&body, &[(0, 1), (8, 9)], Some(&ct), "B");
        assert_eq!(
            &out[..],
            b"\r\n--B\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-1/10\r\n\r\n01\
              \r\n--B\r\nContent-Type: text/plain\r\nContent-Range: bytes 8-9/10\r\n\r\n89\
              \r\n--B--\r\n"
        );
    }
}
