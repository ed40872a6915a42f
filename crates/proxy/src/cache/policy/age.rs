//! The age of a response: its `Age` field (RFC 9111 §5.1) and the current age of a stored
//! copy (§4.2.3).

use std::time::{Duration, SystemTime};

use http::header::{self, HeaderMap};

use super::directives::delta_seconds;
use super::field::{http_date, since};
use crate::cache::entry::StoredResponse;

/// The `Age` field (RFC 9111 §5.1): `Ok(None)` when absent, `Ok(Some(seconds))` (clamped to
/// 2^31) when its first member is a non-negative integer, `Err` when that member is anything
/// else (`1a`, `-1`, `1.5`, empty). Several field lines, or a list, count as one list whose
/// first member is used, as §5.1 says.
pub fn age_field(headers: &HeaderMap) -> Result<Option<u64>, InvalidAge> {
    let mut lines = headers.get_all(header::AGE).iter();
    let Some(first_line) = lines.next() else {
        return Ok(None);
    };
    let bytes = first_line.as_bytes();
    let first = bytes
        .split(|&b| b == b',')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    delta_seconds(first).map(Some).ok_or(InvalidAge)
}

/// An `Age` field that is not a non-negative integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidAge;

/// Current age of a stored response at `now` (RFC 9111 §4.2.3): the larger of the apparent age
/// (`response_time` minus `Date`) and the received `Age` plus the response delay, plus the time
/// it has been stored. Every difference saturates at 0, so clock skew never makes it negative.
///
/// Reads `Age` and `Date` from `entry.headers`, so the store must keep the upstream's `Age`.
pub fn current_age(entry: &StoredResponse, now: SystemTime) -> Duration {
    let age_value = age_field(&entry.headers)
        .ok()
        .flatten()
        .map_or(Duration::ZERO, Duration::from_secs);
    let date = http_date(&entry.headers, &header::DATE).unwrap_or(entry.response_time);
    let apparent_age = since(entry.response_time, date);
    let response_delay = since(entry.response_time, entry.request_time);
    let corrected_age_value = age_value.saturating_add(response_delay);
    let corrected_initial_age = apparent_age.max(corrected_age_value);
    let resident_time = since(now, entry.response_time);
    corrected_initial_age.saturating_add(resident_time)
}
