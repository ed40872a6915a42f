//! Freshness (RFC 9111 §4.2): a response's freshness lifetime, explicit or heuristic, whether
//! a stored copy is fresh at a given time, and whether it must be revalidated on every use.

use std::time::{Duration, SystemTime};

use http::StatusCode;
use http::header::{self, HeaderMap, HeaderName};

use super::age::current_age;
#[cfg(doc)]
use super::directives::CacheControl;
use super::field::{http_date, parse_date_value, since};
use super::storable::heuristically_cacheable;
use super::targeted::response_directives;
use crate::cache::entry::StoredResponse;

/// Freshness lifetime of a response for a shared cache (RFC 9111 §4.2.1): `s-maxage`, else
/// `max-age`, else `Expires` minus `Date` (a missing or invalid `Date` reads as
/// `response_time`; an invalid `Expires` gives 0), else the heuristic (§4.2.2): 10 % of
/// `Date` minus `Last-Modified`, at most `heuristic_cap`, for heuristically cacheable statuses
/// only (others get 0). `response_time` is when the response head arrived. The directives are
/// the targeted field's when one of `targets` applies (RFC 9213 §2.3).
pub fn freshness_lifetime(
    status: StatusCode,
    response: &HeaderMap,
    response_time: SystemTime,
    heuristic_cap: Duration,
    targets: &[HeaderName],
) -> Duration {
    let cc = response_directives(response, targets);
    if let Some(seconds) = cc.s_maxage.or(cc.max_age) {
        return Duration::from_secs(seconds);
    }
    let date = http_date(response, &header::DATE).unwrap_or(response_time);
    if let Some(expires) = response.get(header::EXPIRES) {
        return parse_date_value(expires).map_or(Duration::ZERO, |expires| since(expires, date));
    }
    if !heuristically_cacheable(status) {
        return Duration::ZERO;
    }
    http_date(response, &header::LAST_MODIFIED).map_or(Duration::ZERO, |last_modified| {
        (since(date, last_modified) / 10).min(heuristic_cap)
    })
}

/// What a stored response can do at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Its current age is below its freshness lifetime; `ttl` is what remains.
    Fresh { ttl: Duration },
    /// It is past its freshness lifetime by `stale_for` (0 exactly at the boundary).
    Stale { stale_for: Duration },
}

/// Whether `entry` is fresh at `now` given its freshness `lifetime` (from
/// [`freshness_lifetime`]). Fresh only while its current age is strictly below the lifetime.
pub fn freshness(entry: &StoredResponse, lifetime: Duration, now: SystemTime) -> Freshness {
    let age = current_age(entry, now);
    match lifetime.checked_sub(age) {
        Some(ttl) if !ttl.is_zero() => Freshness::Fresh { ttl },
        _ => Freshness::Stale {
            stale_for: age.saturating_sub(lifetime),
        },
    }
}

/// Whether a stored response must be revalidated before every use, even when fresh: its
/// `no-cache` (the qualified form `no-cache="field"` counts too, see [`CacheControl`]).
pub fn must_revalidate_each_use(entry: &StoredResponse, targets: &[HeaderName]) -> bool {
    response_directives(&entry.headers, targets).no_cache
}
