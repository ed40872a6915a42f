//! The `Date` field of responses gatehouse writes (RFC 9110 §6.6.1), formatted at most once a
//! second per thread rather than once per response.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

use http::HeaderValue;

thread_local! {
    /// The Date value, formatted once per second per thread.
    static DATE: RefCell<(u64, [u8; 29])> = const { RefCell::new((u64::MAX, [0; 29])) };
}

/// Calls `f` with the current `Date` value (`Sun, 06 Dec 2026 04:12:19 GMT`).
pub fn with_date(f: impl FnOnce(&[u8])) {
    let now = SystemTime::now();
    let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DATE.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.0 != second {
            let text = httpdate::fmt_http_date(now);
            let n = text.len().min(29);
            cached.1[..n].copy_from_slice(&text.as_bytes()[..n]);
            cached.0 = second;
        }
        f(&cached.1);
    });
}

/// The current `Date` value as a field value.
pub fn header_value() -> HeaderValue {
    let mut value = None;
    with_date(|date| value = HeaderValue::from_bytes(date).ok());
    // The formatted date is always visible ASCII; the fallback is never taken.
    value.unwrap_or_else(|| HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_date_is_an_imf_fixdate_of_now() {
        let value = header_value();
        let parsed = httpdate::parse_http_date(value.to_str().unwrap()).unwrap();
        let age = SystemTime::now().duration_since(parsed).unwrap();
        assert!(age.as_secs() <= 2, "{value:?}");
    }
}
