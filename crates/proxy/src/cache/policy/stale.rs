//! When a stale copy may still be served: stale-if-error (RFC 5861 §4) and
//! stale-while-revalidate (RFC 5861 §3).

use std::time::Duration;

use http::header::HeaderName;

use super::targeted::response_directives;
use crate::cache::entry::StoredResponse;

/// Whether a response stale by `stale_for` may still be served when the upstream fails:
/// `stale_for` must be within the response's own `stale-if-error` (RFC 5861) when it has one,
/// else within `route_default`. A response with `must-revalidate`, `proxy-revalidate`,
/// `no-cache` or `s-maxage` (which implies `proxy-revalidate`, RFC 9111 §5.2.2.10) is served
/// stale only under its own `stale-if-error` (RFC 5861 §4 lets that override them).
pub fn stale_if_error_allows(
    entry: &StoredResponse,
    stale_for: Duration,
    route_default: Duration,
    targets: &[HeaderName],
) -> bool {
    let cc = response_directives(&entry.headers, targets);
    if let Some(window) = cc.stale_if_error {
        return stale_for <= Duration::from_secs(window);
    }
    if cc.must_revalidate || cc.proxy_revalidate || cc.no_cache || cc.s_maxage.is_some() {
        return false;
    }
    stale_for <= route_default
}

/// Whether a copy stale by `stale_for` may answer at once while one request revalidates it in
/// the background (RFC 5861 §3): `stale_for` must be within the response's own
/// `stale-while-revalidate`. `must-revalidate`, `proxy-revalidate` and `no-cache` forbid it
/// (RFC 9111 §4.2.4); the `proxy-revalidate` that `s-maxage` implies does not, since the
/// directive is the origin's explicit permission (`s-maxage=60, stale-while-revalidate=30` is
/// the usual way to ask a CDN for it).
pub fn stale_while_revalidate_allows(
    entry: &StoredResponse,
    stale_for: Duration,
    targets: &[HeaderName],
) -> bool {
    let cc = response_directives(&entry.headers, targets);
    if cc.must_revalidate || cc.proxy_revalidate || cc.no_cache {
        return false;
    }
    cc.stale_while_revalidate
        .is_some_and(|window| stale_for <= Duration::from_secs(window))
}
