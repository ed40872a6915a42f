//! RFC 9111 (HTTP caching) rules for gatehouse's shared cache, as pure functions over `http`
//! types: which responses may be stored (§3), their freshness lifetime (§4.2.1, §4.2.2) and
//! current age (§4.2.3), which stored variant a request selects (§4.1), revalidation with
//! conditional requests (§4.3), stale-if-error (RFC 5861), and answering a client's own
//! conditional request from a stored response (RFC 9110 §13.2.2).
//!
//! Nothing here does I/O or reads the clock: callers pass the times in.

use std::fmt;
use std::time::{Duration, SystemTime};

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};

use super::entry::StoredResponse;

/// The largest delta-seconds value kept (RFC 9111 §1.2.2): larger ones clamp to it.
const DELTA_SECONDS_MAX: u64 = 1 << 31;

/// Cache-Control directives of a request or response.
///
/// All `Cache-Control` field lines are combined; directive names are case-insensitive;
/// arguments may be tokens or quoted strings (RFC 9111 §5.2); unknown directives are ignored.
/// When a directive with an argument occurs more than once, the first valid occurrence is used
/// (RFC 9111 §4.2.1 allows that). A malformed delta-seconds makes that directive absent, except
/// `max-age` and `s-maxage`, which then read as 0 (an invalid freshness means stale, §4.2.1).
/// Delta-seconds beyond 2^31 clamp to 2^31 (§1.2.2).
///
/// `no_cache` and `private` are set by both their unqualified and their qualified
/// (`no-cache="field"`) forms: gatehouse treats the qualified forms like the unqualified ones,
/// which RFC 9111 §5.2.2.4 and §5.2.2.7 permit and which is always safe.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheControl {
    pub no_store: bool,
    pub no_cache: bool,
    pub private: bool,
    pub public: bool,
    pub must_revalidate: bool,
    pub proxy_revalidate: bool,
    pub must_understand: bool,
    pub max_age: Option<u64>,
    pub s_maxage: Option<u64>,
    pub stale_if_error: Option<u64>,
    pub stale_while_revalidate: Option<u64>,
    pub only_if_cached: bool,
}

impl CacheControl {
    /// Parses every `Cache-Control` field line of `headers`.
    pub fn parse(headers: &HeaderMap) -> Self {
        let mut cc = Self::default();
        for element in elements(headers, &header::CACHE_CONTROL) {
            let (name, argument) = match element.iter().position(|&b| b == b'=') {
                Some(i) => (&element[..i], Some(&element[i + 1..])),
                None => (element, None),
            };
            let name = String::from_utf8_lossy(name.trim_ascii()).to_ascii_lowercase();
            let argument = argument.and_then(|a| unquote(a.trim_ascii()));
            let delta = || argument.as_deref().and_then(delta_seconds);
            match name.as_str() {
                "no-store" => cc.no_store = true,
                "no-cache" => cc.no_cache = true,
                "private" => cc.private = true,
                "public" => cc.public = true,
                "must-revalidate" => cc.must_revalidate = true,
                "proxy-revalidate" => cc.proxy_revalidate = true,
                "must-understand" => cc.must_understand = true,
                "only-if-cached" => cc.only_if_cached = true,
                "max-age" => {
                    cc.max_age.get_or_insert(delta().unwrap_or(0));
                }
                "s-maxage" => {
                    cc.s_maxage.get_or_insert(delta().unwrap_or(0));
                }
                "stale-if-error" => cc.stale_if_error = cc.stale_if_error.or_else(delta),
                "stale-while-revalidate" => {
                    cc.stale_while_revalidate = cc.stale_while_revalidate.or_else(delta)
                }
                _ => {}
            }
        }
        cc
    }
}

/// Why a response is not stored (for logs and the `Cache-Status` `detail`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotStorable {
    /// The request method is not GET.
    Method,
    /// The status is not final, not understood, or not cacheable without explicit freshness.
    Status,
    /// `no-store` in the request or the response.
    NoStore,
    /// `private` in the response.
    Private,
    /// The request carries `Authorization` and the response does not allow shared caching.
    Authorization,
    /// The response sets a cookie.
    SetCookie,
    /// `Vary: *`.
    VaryStar,
    /// No explicit freshness and no way to compute a heuristic one.
    NoFreshness,
    /// A partial response (206, or a `Content-Range` field).
    Partial,
    /// An `Age` field that is not a non-negative integer (RFC 9111 §5.1: ignore the response).
    InvalidAge,
}

impl NotStorable {
    /// The reason as a short lowercase token.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Method => "method",
            Self::Status => "status",
            Self::NoStore => "no-store",
            Self::Private => "private",
            Self::Authorization => "authorization",
            Self::SetCookie => "set-cookie",
            Self::VaryStar => "vary-star",
            Self::NoFreshness => "no-freshness",
            Self::Partial => "partial",
            Self::InvalidAge => "invalid-age",
        }
    }
}

impl fmt::Display for NotStorable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a response may be stored by gatehouse's shared cache (RFC 9111 §3).
///
/// `method` is the request's method (only GET is stored; HEAD never stores a body), `request`
/// and `response` the header fields, `status` the response's status. The response's directives
/// come from the first of `targets` it carries validly (RFC 9213), else its `Cache-Control`
/// (see [`response_directives`]). Checked in this order:
///
/// - method other than GET => [`NotStorable::Method`];
/// - `no-store` in the request, or in the response => [`NotStorable::NoStore`] (a response's
///   `no-store` is ignored when it also has `must-understand` and gatehouse understands the
///   status, RFC 9111 §5.2.2.3);
/// - response `private`, with or without field names => [`NotStorable::Private`];
/// - request `Authorization` and none of `public`, `s-maxage`, `must-revalidate` in the
///   response => [`NotStorable::Authorization`] (§3.5);
/// - response `Set-Cookie` => [`NotStorable::SetCookie`]. This is gatehouse's own rule (Varnish
///   has the same one): RFC 9111 lets a shared cache store such a response, but a cookie is
///   almost always meant for one user, and serving it to others leaks sessions;
/// - `Vary: *` => [`NotStorable::VaryStar`];
/// - 206 or a `Content-Range` field => [`NotStorable::Partial`] (ranges are not combined);
/// - an `Age` whose first member is not a non-negative integer => [`NotStorable::InvalidAge`]
///   (RFC 9111 §5.1: "a cache SHOULD ignore the response");
/// - 1xx, 304, 600 and above, or `must-understand` with a status gatehouse does not know the
///   caching rules of => [`NotStorable::Status`];
/// - then a response with explicit freshness (`max-age`, `s-maxage`, `Expires`) is storable;
///   without it, the status must be heuristically cacheable (RFC 9110 §15.1) or the response
///   `public`, else [`NotStorable::Status`];
/// - a heuristically cacheable response with a valid `Last-Modified` is storable (heuristic
///   freshness); one without (or a `public` one whose status is not heuristically cacheable)
///   has a freshness lifetime of 0 and is stored only when `keep_without_freshness`, else
///   [`NotStorable::NoFreshness`].
pub fn storable(
    method: &Method,
    request: &HeaderMap,
    status: StatusCode,
    response: &HeaderMap,
    keep_without_freshness: bool,
    targets: &[HeaderName],
) -> Result<(), NotStorable> {
    if method != Method::GET {
        return Err(NotStorable::Method);
    }
    let request_cc = CacheControl::parse(request);
    let cc = response_directives(response, targets);
    if request_cc.no_store || (cc.no_store && !(cc.must_understand && understood(status))) {
        return Err(NotStorable::NoStore);
    }
    if cc.private {
        return Err(NotStorable::Private);
    }
    if request.contains_key(header::AUTHORIZATION)
        && !(cc.public || cc.s_maxage.is_some() || cc.must_revalidate)
    {
        return Err(NotStorable::Authorization);
    }
    if response.contains_key(header::SET_COOKIE) {
        return Err(NotStorable::SetCookie);
    }
    if vary_names(response).is_none() {
        return Err(NotStorable::VaryStar);
    }
    if status == StatusCode::PARTIAL_CONTENT || response.contains_key(header::CONTENT_RANGE) {
        return Err(NotStorable::Partial);
    }
    if age_field(response).is_err() {
        return Err(NotStorable::InvalidAge);
    }
    if status.is_informational()
        || status == StatusCode::NOT_MODIFIED
        || status.as_u16() >= 600
        || (cc.must_understand && !understood(status))
    {
        return Err(NotStorable::Status);
    }
    if cc.max_age.is_some() || cc.s_maxage.is_some() || response.contains_key(header::EXPIRES) {
        return Ok(());
    }
    let heuristic = heuristically_cacheable(status);
    if !heuristic && !cc.public {
        return Err(NotStorable::Status);
    }
    if heuristic && http_date(response, &header::LAST_MODIFIED).is_some() {
        return Ok(());
    }
    if keep_without_freshness {
        Ok(())
    } else {
        Err(NotStorable::NoFreshness)
    }
}

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

/// Whether a stored response must be revalidated before every use, even when fresh: its
/// `no-cache` (the qualified form `no-cache="field"` counts too, see [`CacheControl`]).
pub fn must_revalidate_each_use(entry: &StoredResponse, targets: &[HeaderName]) -> bool {
    response_directives(&entry.headers, targets).no_cache
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

/// The cache directives of a response for gatehouse (RFC 9213 §2.2): those of the first of
/// `targets` (in order of precedence) that the response carries with a valid value, else its
/// `Cache-Control`. When a targeted field applies, `Cache-Control` is ignored entirely.
pub fn response_directives(headers: &HeaderMap, targets: &[HeaderName]) -> CacheControl {
    targets
        .iter()
        .find_map(|name| targeted_directives(headers, name))
        .unwrap_or_else(|| CacheControl::parse(headers))
}

/// The first of `targets` whose directives apply to the response (see
/// [`response_directives`]); `None` when `Cache-Control` decides.
pub fn governing_target<'t>(
    headers: &HeaderMap,
    targets: &'t [HeaderName],
) -> Option<&'t HeaderName> {
    targets
        .iter()
        .find(|name| targeted_directives(headers, name).is_some())
}

/// The directives of the targeted field `name` (RFC 9213 §2.1): a Structured Field Dictionary
/// (RFC 8941), all field lines combined. `None` when absent or not a valid Dictionary (the
/// field is then ignored, §2.1). Directive names are the dictionary's keys (lowercase by SF
/// syntax); `max-age` and `s-maxage` need a non-negative Integer (anything else reads as 0,
/// i.e. stale, like a malformed `Cache-Control` `max-age`); the other delta-seconds
/// directives are ignored when not a non-negative Integer; every other directive counts when
/// present with any value but Boolean false.
pub fn targeted_directives(headers: &HeaderMap, name: &HeaderName) -> Option<CacheControl> {
    let value = combined(headers, name)?;
    let dictionary: sfv::Dictionary = sfv::Parser::new(value.as_bytes()).parse().ok()?;
    let mut cc = CacheControl::default();
    for (key, entry) in &dictionary {
        let item = match entry {
            sfv::ListEntry::Item(item) => Some(&item.bare_item),
            sfv::ListEntry::InnerList(_) => None,
        };
        let present = !matches!(item, Some(sfv::BareItem::Boolean(false)));
        let seconds = item
            .and_then(sfv::BareItem::as_integer)
            .map(i64::from)
            .and_then(|n| u64::try_from(n).ok())
            .map(|n| n.min(DELTA_SECONDS_MAX));
        match key.as_str() {
            "no-store" => cc.no_store |= present,
            "no-cache" => cc.no_cache |= present,
            "private" => cc.private |= present,
            "public" => cc.public |= present,
            "must-revalidate" => cc.must_revalidate |= present,
            "proxy-revalidate" => cc.proxy_revalidate |= present,
            "must-understand" => cc.must_understand |= present,
            "max-age" => cc.max_age = Some(seconds.unwrap_or(0)),
            "s-maxage" => cc.s_maxage = Some(seconds.unwrap_or(0)),
            "stale-if-error" => cc.stale_if_error = seconds,
            "stale-while-revalidate" => cc.stale_while_revalidate = seconds,
            _ => {}
        }
    }
    Some(cc)
}

/// The request field values a response's `Vary` names, taken from `request`, to keep in
/// [`StoredResponse::varied`]. Names are lowercased and deduplicated (in first-seen order);
/// several field lines of one name are combined with `", "`; `None` as a value means the
/// request had no such field. Returns `None` for `Vary: *` (not storable). Names that are
/// not valid field names are skipped (no request can carry them).
pub fn varied_values(
    response: &HeaderMap,
    request: &HeaderMap,
) -> Option<Vec<(HeaderName, Option<HeaderValue>)>> {
    let names = vary_names(response)?;
    Some(
        names
            .into_iter()
            .map(|name| {
                let value = combined(request, &name);
                (name, value)
            })
            .collect(),
    )
}

/// Whether `entry` may be used for `request` (RFC 9111 §4.1): each field its `Vary` names must
/// have the same value in `request` as in the request that stored it, after removing
/// whitespace around commas and combining field lines (and comparing `Accept-Encoding`
/// case-insensitively). A field absent from both matches; absent from one only does not. An
/// entry whose `Vary` contains `*` never matches.
pub fn selects(entry: &StoredResponse, request: &HeaderMap) -> bool {
    if vary_names(&entry.headers).is_none() {
        return false;
    }
    entry
        .varied
        .iter()
        .all(|(name, stored)| match (stored, combined(request, name)) {
            (None, None) => true,
            (Some(stored), Some(current)) => {
                normalised(name, stored.as_bytes()) == normalised(name, current.as_bytes())
            }
            _ => false,
        })
}

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

/// Statuses RFC 9110 §15.1 defines as heuristically cacheable.
fn heuristically_cacheable(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        200 | 203 | 204 | 206 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// Statuses whose caching requirements gatehouse implements, for `must-understand`
/// (RFC 9111 §5.2.2.3): the heuristically cacheable ones except 206, and the redirects that
/// follow the general rules.
fn understood(status: StatusCode) -> bool {
    status != StatusCode::PARTIAL_CONTENT
        && (heuristically_cacheable(status) || matches!(status.as_u16(), 302 | 303 | 307))
}

/// The field names a `Vary` lists, lowercased and deduplicated; `None` when it contains `*`.
fn vary_names(headers: &HeaderMap) -> Option<Vec<HeaderName>> {
    let mut names: Vec<HeaderName> = Vec::new();
    for element in elements(headers, &header::VARY) {
        if element == b"*" {
            return None;
        }
        if let Ok(name) = HeaderName::from_bytes(element)
            && !names.contains(&name)
        {
            names.push(name);
        }
    }
    Some(names)
}

/// All field lines of `name` combined into one value with `", "`; `None` when absent.
fn combined(headers: &HeaderMap, name: &HeaderName) -> Option<HeaderValue> {
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

/// A field value with the whitespace around its list elements removed and empty elements
/// dropped. `Accept-Encoding` and `Accept-Language` are put in a canonical form (see
/// [`normalised_preferences`]), so that equivalent requests select the same variant.
fn normalised(name: &HeaderName, value: &[u8]) -> Vec<u8> {
    if name == header::ACCEPT_ENCODING || name == header::ACCEPT_LANGUAGE {
        return normalised_preferences(value);
    }
    split_list(value).join(&b","[..])
}

/// The most elements a preference list is normalised for; a longer one is compared as written
/// (lowercased), so that a hostile request cannot make every lookup sort a huge list.
const MAX_PREFERENCES: usize = 64;

/// `Accept-Encoding` / `Accept-Language` in canonical form (RFC 9110 §12.5.3, §12.5.4): each
/// element's coding or language range lowercased (both are case-insensitive), whitespace
/// and elements without one dropped, its weight rewritten without trailing zeros (`q=0.50` is `q=0.5`, `q=1.000` is no
/// weight), other parameters dropped (the grammar has none), duplicates dropped (the first
/// wins), then sorted by weight (highest first) and name. An element with an invalid weight is
/// kept as written. Order among elements is not a preference in either field once weights are
/// equal, so `gzip, br` and `br, gzip` are the same request.
pub fn normalised_preferences(value: &[u8]) -> Vec<u8> {
    let elements = split_list(value);
    if elements.len() > MAX_PREFERENCES {
        return value.to_ascii_lowercase();
    }
    let mut parsed: Vec<(u16, Vec<u8>)> = Vec::with_capacity(elements.len());
    for element in elements {
        let mut parts = element.split(|&b| b == b';');
        let name = parts
            .next()
            .unwrap_or_default()
            .trim_ascii()
            .to_ascii_lowercase();
        if name.is_empty() {
            continue;
        }
        let mut weight = Some(1000);
        for param in parts {
            let param = param.trim_ascii();
            if let Some(q) = param
                .strip_prefix(b"q=")
                .or_else(|| param.strip_prefix(b"Q="))
            {
                weight = qvalue(q.trim_ascii());
            }
        }
        let Some(weight) = weight else {
            parsed.push((0, element.to_ascii_lowercase()));
            continue;
        };
        if parsed.iter().any(|(_, seen)| *seen == name) {
            continue;
        }
        parsed.push((weight, name));
    }
    parsed.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    let mut out = Vec::with_capacity(value.len());
    for (i, (weight, name)) in parsed.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(name);
        if *weight < 1000 && !name.contains(&b';') {
            let text = format!("{:.3}", f64::from(*weight) / 1000.0);
            let text = text.trim_end_matches('0').trim_end_matches('.');
            out.extend_from_slice(b";q=");
            out.extend_from_slice(text.as_bytes());
        }
    }
    out
}

/// An RFC 9110 §12.4.2 qvalue in thousandths: `0`, `0.5`, `1`, `1.000`; `None` when invalid.
fn qvalue(text: &[u8]) -> Option<u16> {
    let (whole, fraction) = match text.iter().position(|&b| b == b'.') {
        Some(dot) => (&text[..dot], &text[dot + 1..]),
        None => (text, &b""[..]),
    };
    if fraction.len() > 3 || !fraction.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut thousandths = 0u16;
    for i in 0..3 {
        let digit = fraction.get(i).map_or(0, |d| u16::from(d - b'0'));
        thousandths = thousandths * 10 + digit;
    }
    match whole {
        b"0" => Some(thousandths),
        b"1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// The list elements (RFC 9110 §5.6.1) of every field line of `name`.
fn elements<'a>(
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
fn split_list<'a>(bytes: &'a [u8]) -> Vec<&'a [u8]> {
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

/// A directive argument without its quotes and escapes; `None` for an unterminated quoted
/// string.
fn unquote(argument: &[u8]) -> Option<Vec<u8>> {
    let Some(inner) = argument.strip_prefix(b"\"") else {
        return Some(argument.to_vec());
    };
    let mut out = Vec::with_capacity(inner.len());
    let mut escaped = false;
    for (i, &b) in inner.iter().enumerate() {
        if escaped {
            out.push(b);
            escaped = false;
        } else if b == b'\\' {
            escaped = true;
        } else if b == b'"' {
            return inner[i + 1..].trim_ascii().is_empty().then_some(out);
        } else {
            out.push(b);
        }
    }
    None
}

/// RFC 9111 §1.2.2 delta-seconds: one or more digits, clamped to 2^31.
fn delta_seconds(text: &[u8]) -> Option<u64> {
    if text.is_empty() || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let value = text.iter().fold(0u64, |value, &digit| {
        value
            .saturating_mul(10)
            .saturating_add(u64::from(digit - b'0'))
    });
    Some(value.min(DELTA_SECONDS_MAX))
}

/// The first `name` field as an HTTP-date; `None` when absent or invalid.
fn http_date(headers: &HeaderMap, name: &HeaderName) -> Option<SystemTime> {
    headers.get(name).and_then(parse_date_value)
}

fn parse_date_value(value: &HeaderValue) -> Option<SystemTime> {
    let text = value.to_str().ok()?;
    httpdate::parse_http_date(text.trim()).ok()
}

/// `later - earlier`, or 0 when `later` is earlier.
fn since(later: SystemTime, earlier: SystemTime) -> Duration {
    later.duration_since(earlier).unwrap_or(Duration::ZERO)
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

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use bytes::Bytes;

    use super::*;

    /// A fixed origin for test times (whole seconds: HTTP-dates have no fractions).
    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000 + seconds)
    }

    fn date(seconds: u64) -> String {
        httpdate::fmt_http_date(at(seconds))
    }

    fn secs(seconds: u64) -> Duration {
        Duration::from_secs(seconds)
    }

    fn headers(fields: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in fields {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).expect("test field name"),
                HeaderValue::from_str(value).expect("test field value"),
            );
        }
        map
    }

    fn cc(fields: &[(&str, &str)]) -> CacheControl {
        CacheControl::parse(&headers(fields))
    }

    fn entry(fields: &[(&str, &str)], request_time: u64, response_time: u64) -> StoredResponse {
        StoredResponse {
            status: StatusCode::OK,
            headers: headers(fields),
            body: Bytes::from_static(b"body"),
            request_time: at(request_time),
            response_time: at(response_time),
            varied: Vec::new(),
        }
    }

    fn get_storable(
        request: &[(&str, &str)],
        status: u16,
        response: &[(&str, &str)],
    ) -> Result<(), NotStorable> {
        storable(
            &Method::GET,
            &headers(request),
            StatusCode::from_u16(status).expect("test status"),
            &headers(response),
            false,
            &[],
        )
    }

    const CAP: Duration = Duration::from_secs(86_400);

    fn lifetime(status: u16, response: &[(&str, &str)], response_time: u64) -> Duration {
        freshness_lifetime(
            StatusCode::from_u16(status).expect("test status"),
            &headers(response),
            at(response_time),
            CAP,
            &[],
        )
    }

    // --- Cache-Control parsing ---

    #[test]
    fn parse_empty_is_default() {
        assert_eq!(cc(&[]), CacheControl::default());
    }

    #[test]
    fn parse_boolean_directives_case_insensitive() {
        let parsed = cc(&[(
            "cache-control",
            "No-Store, NO-CACHE, private, Public, must-revalidate, proxy-revalidate, \
             must-understand, only-if-cached",
        )]);
        assert_eq!(
            parsed,
            CacheControl {
                no_store: true,
                no_cache: true,
                private: true,
                public: true,
                must_revalidate: true,
                proxy_revalidate: true,
                must_understand: true,
                only_if_cached: true,
                ..CacheControl::default()
            }
        );
    }

    #[test]
    fn parse_combines_field_lines_and_arguments() {
        let parsed = cc(&[
            ("cache-control", "max-age=60"),
            ("cache-control", "S-MaxAge=120 , stale-if-error=300"),
            ("cache-control", "stale-while-revalidate=30,,"),
        ]);
        assert_eq!(parsed.max_age, Some(60));
        assert_eq!(parsed.s_maxage, Some(120));
        assert_eq!(parsed.stale_if_error, Some(300));
        assert_eq!(parsed.stale_while_revalidate, Some(30));
        assert!(!parsed.no_store);
    }

    #[test]
    fn parse_quoted_arguments() {
        let parsed = cc(&[(
            "cache-control",
            r#"max-age="30", private="set-cookie, no-store", s-maxage="4""#,
        )]);
        assert_eq!(parsed.max_age, Some(30));
        assert_eq!(parsed.s_maxage, Some(4));
        assert!(parsed.private);
        // The comma inside the quoted string does not start a new directive.
        assert!(!parsed.no_store);
    }

    #[test]
    fn parse_qualified_no_cache_counts_as_no_cache() {
        assert!(cc(&[("cache-control", r#"no-cache="set-cookie""#)]).no_cache);
    }

    #[test]
    fn parse_malformed_max_age_is_zero() {
        assert_eq!(cc(&[("cache-control", "max-age=abc")]).max_age, Some(0));
        assert_eq!(cc(&[("cache-control", "max-age=-5")]).max_age, Some(0));
        assert_eq!(cc(&[("cache-control", "max-age")]).max_age, Some(0));
        assert_eq!(cc(&[("cache-control", "max-age=")]).max_age, Some(0));
        assert_eq!(cc(&[("cache-control", "max-age=\"12")]).max_age, Some(0));
        assert_eq!(cc(&[("cache-control", "s-maxage=1.5")]).s_maxage, Some(0));
    }

    #[test]
    fn parse_malformed_other_delta_is_absent() {
        let parsed = cc(&[(
            "cache-control",
            "stale-if-error=soon, stale-while-revalidate",
        )]);
        assert_eq!(parsed.stale_if_error, None);
        assert_eq!(parsed.stale_while_revalidate, None);
    }

    #[test]
    fn parse_clamps_large_delta_seconds() {
        let parsed = cc(&[(
            "cache-control",
            "max-age=99999999999999999999999999, stale-if-error=2147483649",
        )]);
        assert_eq!(parsed.max_age, Some(1 << 31));
        assert_eq!(parsed.stale_if_error, Some(1 << 31));
        assert_eq!(
            cc(&[("cache-control", "max-age=2147483647")]).max_age,
            Some(2_147_483_647)
        );
    }

    #[test]
    fn parse_first_occurrence_wins() {
        let parsed = cc(&[
            ("cache-control", "max-age=10"),
            ("cache-control", "max-age=20"),
        ]);
        assert_eq!(parsed.max_age, Some(10));
    }

    #[test]
    fn parse_ignores_unknown_directives() {
        let parsed = cc(&[("cache-control", "immutable, community=\"UCI\", max-age=5")]);
        assert_eq!(
            parsed,
            CacheControl {
                max_age: Some(5),
                ..CacheControl::default()
            }
        );
    }

    // --- storable ---

    #[test]
    fn storable_plain_max_age() {
        assert_eq!(
            get_storable(&[], 200, &[("cache-control", "max-age=60")]),
            Ok(())
        );
    }

    #[test]
    fn not_storable_method() {
        for method in [Method::HEAD, Method::POST, Method::PUT] {
            let result = storable(
                &method,
                &HeaderMap::new(),
                StatusCode::OK,
                &headers(&[("cache-control", "max-age=60")]),
                true,
                &[],
            );
            assert_eq!(result, Err(NotStorable::Method), "{method}");
        }
    }

    #[test]
    fn not_storable_no_store() {
        assert_eq!(
            get_storable(
                &[("cache-control", "no-store")],
                200,
                &[("cache-control", "max-age=60")]
            ),
            Err(NotStorable::NoStore)
        );
        assert_eq!(
            get_storable(&[], 200, &[("cache-control", "max-age=60, no-store")]),
            Err(NotStorable::NoStore)
        );
    }

    #[test]
    fn must_understand_overrides_no_store_for_understood_status() {
        assert_eq!(
            get_storable(
                &[],
                200,
                &[("cache-control", "max-age=60, no-store, must-understand")]
            ),
            Ok(())
        );
        // Not for an unknown status.
        assert_eq!(
            get_storable(
                &[],
                299,
                &[("cache-control", "max-age=60, no-store, must-understand")]
            ),
            Err(NotStorable::NoStore)
        );
        assert_eq!(
            get_storable(
                &[],
                299,
                &[("cache-control", "max-age=60, must-understand")]
            ),
            Err(NotStorable::Status)
        );
        // The request's no-store is never overridden.
        assert_eq!(
            get_storable(
                &[("cache-control", "no-store")],
                200,
                &[("cache-control", "max-age=60, no-store, must-understand")]
            ),
            Err(NotStorable::NoStore)
        );
    }

    #[test]
    fn not_storable_private() {
        assert_eq!(
            get_storable(&[], 200, &[("cache-control", "private, max-age=60")]),
            Err(NotStorable::Private)
        );
        assert_eq!(
            get_storable(
                &[],
                200,
                &[("cache-control", r#"private="x-user", max-age=60"#)]
            ),
            Err(NotStorable::Private)
        );
    }

    #[test]
    fn not_storable_authorization_without_exception() {
        let auth = [("authorization", "Bearer t")];
        assert_eq!(
            get_storable(&auth, 200, &[("cache-control", "max-age=60")]),
            Err(NotStorable::Authorization)
        );
        assert_eq!(
            get_storable(
                &auth,
                200,
                &[("cache-control", "max-age=60, proxy-revalidate")]
            ),
            Err(NotStorable::Authorization)
        );
    }

    #[test]
    fn authorization_exceptions() {
        let auth = [("authorization", "Bearer t")];
        assert_eq!(
            get_storable(&auth, 200, &[("cache-control", "public, max-age=60")]),
            Ok(())
        );
        assert_eq!(
            get_storable(&auth, 200, &[("cache-control", "s-maxage=60")]),
            Ok(())
        );
        assert_eq!(
            get_storable(
                &auth,
                200,
                &[("cache-control", "must-revalidate, max-age=60")]
            ),
            Ok(())
        );
        // private still wins over public.
        assert_eq!(
            get_storable(
                &auth,
                200,
                &[("cache-control", "public, private, max-age=60")]
            ),
            Err(NotStorable::Private)
        );
    }

    #[test]
    fn not_storable_set_cookie() {
        assert_eq!(
            get_storable(
                &[],
                200,
                &[
                    ("cache-control", "public, max-age=60"),
                    ("set-cookie", "a=b")
                ]
            ),
            Err(NotStorable::SetCookie)
        );
    }

    #[test]
    fn not_storable_vary_star() {
        assert_eq!(
            get_storable(&[], 200, &[("cache-control", "max-age=60"), ("vary", "*")]),
            Err(NotStorable::VaryStar)
        );
        assert_eq!(
            get_storable(
                &[],
                200,
                &[
                    ("cache-control", "max-age=60"),
                    ("vary", "accept"),
                    ("vary", "Accept-Language , *")
                ]
            ),
            Err(NotStorable::VaryStar)
        );
        assert_eq!(
            get_storable(
                &[],
                200,
                &[("cache-control", "max-age=60"), ("vary", "accept")]
            ),
            Ok(())
        );
    }

    #[test]
    fn not_storable_partial() {
        assert_eq!(
            get_storable(&[], 206, &[("cache-control", "max-age=60")]),
            Err(NotStorable::Partial)
        );
        assert_eq!(
            get_storable(
                &[],
                200,
                &[
                    ("cache-control", "max-age=60"),
                    ("content-range", "bytes 0-9/100")
                ]
            ),
            Err(NotStorable::Partial)
        );
    }

    #[test]
    fn not_storable_status() {
        // Never: informational, 304.
        assert_eq!(
            get_storable(&[], 103, &[("cache-control", "max-age=60")]),
            Err(NotStorable::Status)
        );
        assert_eq!(
            get_storable(&[], 304, &[("cache-control", "max-age=60")]),
            Err(NotStorable::Status)
        );
        // Not heuristically cacheable without explicit freshness.
        let last_modified = date(0);
        for status in [302, 307, 400, 403, 500, 503] {
            assert_eq!(
                get_storable(&[], status, &[("last-modified", &last_modified)]),
                Err(NotStorable::Status),
                "{status}"
            );
        }
    }

    #[test]
    fn explicit_freshness_makes_any_final_status_storable() {
        assert_eq!(
            get_storable(&[], 500, &[("cache-control", "max-age=5")]),
            Ok(())
        );
        assert_eq!(
            get_storable(&[], 302, &[("cache-control", "s-maxage=5")]),
            Ok(())
        );
        assert_eq!(get_storable(&[], 503, &[("expires", &date(100))]), Ok(()));
        // Even an invalid Expires (it means "already stale").
        assert_eq!(get_storable(&[], 200, &[("expires", "0")]), Ok(()));
    }

    #[test]
    fn heuristically_cacheable_statuses_with_last_modified() {
        let last_modified = date(0);
        for status in [200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501] {
            assert_eq!(
                get_storable(&[], status, &[("last-modified", &last_modified)]),
                Ok(()),
                "{status}"
            );
        }
    }

    #[test]
    fn no_freshness_unless_kept() {
        assert_eq!(get_storable(&[], 200, &[]), Err(NotStorable::NoFreshness));
        assert_eq!(
            get_storable(&[], 200, &[("last-modified", "yesterday")]),
            Err(NotStorable::NoFreshness)
        );
        assert_eq!(
            get_storable(&[], 302, &[("cache-control", "public")]),
            Err(NotStorable::NoFreshness)
        );
        let keep = |status: u16, response: &[(&str, &str)]| {
            storable(
                &Method::GET,
                &HeaderMap::new(),
                StatusCode::from_u16(status).expect("test status"),
                &headers(response),
                true,
                &[],
            )
        };
        assert_eq!(keep(200, &[("etag", "\"a\"")]), Ok(()));
        assert_eq!(keep(302, &[("cache-control", "public")]), Ok(()));
        // keep_without_freshness does not make other statuses storable.
        assert_eq!(keep(500, &[]), Err(NotStorable::Status));
    }

    #[test]
    fn not_storable_as_str() {
        let all = [
            (NotStorable::Method, "method"),
            (NotStorable::Status, "status"),
            (NotStorable::NoStore, "no-store"),
            (NotStorable::Private, "private"),
            (NotStorable::Authorization, "authorization"),
            (NotStorable::SetCookie, "set-cookie"),
            (NotStorable::VaryStar, "vary-star"),
            (NotStorable::NoFreshness, "no-freshness"),
            (NotStorable::Partial, "partial"),
        ];
        for (reason, text) in all {
            assert_eq!(reason.as_str(), text);
            assert_eq!(reason.to_string(), text);
        }
    }

    // --- freshness_lifetime ---

    #[test]
    fn lifetime_precedence() {
        let expires = date(1000);
        let now = date(0);
        let all = [
            ("cache-control", "max-age=60, s-maxage=30"),
            ("date", now.as_str()),
            ("expires", expires.as_str()),
        ];
        assert_eq!(lifetime(200, &all, 0), secs(30));
        assert_eq!(lifetime(200, &all[1..], 0), secs(1000));
        let max_age_and_expires = [
            ("cache-control", "max-age=60"),
            ("date", now.as_str()),
            ("expires", expires.as_str()),
        ];
        assert_eq!(lifetime(200, &max_age_and_expires, 0), secs(60));
        assert_eq!(lifetime(200, &[("cache-control", "max-age=0")], 0), secs(0));
    }

    #[test]
    fn lifetime_from_expires_and_date() {
        let response = [("date", date(100)), ("expires", date(400))];
        let response: Vec<_> = response.iter().map(|(n, v)| (*n, v.as_str())).collect();
        // The Date field counts, not response_time.
        assert_eq!(lifetime(200, &response, 150), secs(300));
    }

    #[test]
    fn lifetime_from_expires_without_date_uses_response_time() {
        let expires = date(400);
        assert_eq!(lifetime(200, &[("expires", &expires)], 150), secs(250));
        // An invalid Date is like no Date.
        assert_eq!(
            lifetime(200, &[("expires", &expires), ("date", "garbage")], 150),
            secs(250)
        );
    }

    #[test]
    fn lifetime_invalid_or_past_expires_is_zero() {
        let last_modified = date(0);
        let response = [("expires", "0"), ("last-modified", last_modified.as_str())];
        // Invalid Expires: 0, and no heuristic.
        assert_eq!(lifetime(200, &response, 100_000), secs(0));
        let past = [("date", date(500)), ("expires", date(100))];
        let past: Vec<_> = past.iter().map(|(n, v)| (*n, v.as_str())).collect();
        assert_eq!(lifetime(200, &past, 500), secs(0));
    }

    #[test]
    fn lifetime_heuristic_is_ten_percent() {
        let response = [("date", date(10_000)), ("last-modified", date(0))];
        let response: Vec<_> = response.iter().map(|(n, v)| (*n, v.as_str())).collect();
        assert_eq!(lifetime(200, &response, 10_000), secs(1_000));
        assert_eq!(lifetime(404, &response, 10_000), secs(1_000));
        // Without Date: response_time.
        let last_modified = date(0);
        assert_eq!(
            lifetime(200, &[("last-modified", &last_modified)], 5_000),
            secs(500)
        );
    }

    #[test]
    fn lifetime_heuristic_is_capped() {
        let response = [("date", date(100 * 86_400)), ("last-modified", date(0))];
        let response: Vec<_> = response.iter().map(|(n, v)| (*n, v.as_str())).collect();
        assert_eq!(lifetime(200, &response, 100 * 86_400), CAP);
    }

    #[test]
    fn lifetime_heuristic_only_for_heuristic_statuses() {
        let response = [("date", date(10_000)), ("last-modified", date(0))];
        let response: Vec<_> = response.iter().map(|(n, v)| (*n, v.as_str())).collect();
        assert_eq!(lifetime(500, &response, 10_000), secs(0));
        assert_eq!(lifetime(302, &response, 10_000), secs(0));
    }

    #[test]
    fn lifetime_heuristic_future_last_modified_or_none_is_zero() {
        let response = [("date", date(100)), ("last-modified", date(200))];
        let response: Vec<_> = response.iter().map(|(n, v)| (*n, v.as_str())).collect();
        assert_eq!(lifetime(200, &response, 100), secs(0));
        assert_eq!(lifetime(200, &[], 100), secs(0));
    }

    // --- current_age and freshness ---

    #[test]
    fn age_is_resident_time_without_date_or_age() {
        let stored = entry(&[], 100, 100);
        assert_eq!(current_age(&stored, at(130)), secs(30));
    }

    #[test]
    fn age_adds_received_age_and_response_delay() {
        let response_date = date(102);
        // Sent at 100, head at 102, Age 100: corrected initial age 102; 10 s resident.
        let stored = entry(&[("age", "100"), ("date", &response_date)], 100, 102);
        assert_eq!(current_age(&stored, at(112)), secs(112));
    }

    #[test]
    fn age_uses_apparent_age_when_larger() {
        let response_date = date(50);
        let stored = entry(&[("age", "10"), ("date", &response_date)], 99, 100);
        // apparent 50 > 10 + 1; resident 5.
        assert_eq!(current_age(&stored, at(105)), secs(55));
    }

    #[test]
    fn age_tolerates_clock_skew() {
        // Upstream clock ahead: the Date is after response_time.
        let future = date(1_000);
        let stored = entry(&[("date", &future)], 100, 100);
        assert_eq!(current_age(&stored, at(110)), secs(10));
        // Our clock went backwards: no negative resident time.
        assert_eq!(current_age(&stored, at(50)), secs(0));
        // request_time after response_time: no negative delay.
        let odd = entry(&[], 200, 100);
        assert_eq!(current_age(&odd, at(100)), secs(0));
    }

    #[test]
    fn age_ignores_invalid_age_field() {
        let stored = entry(&[("age", "ten")], 100, 100);
        assert_eq!(current_age(&stored, at(100)), secs(0));
        let clamped = entry(&[("age", "99999999999999")], 100, 100);
        assert_eq!(current_age(&clamped, at(100)), secs(1 << 31));
    }

    #[test]
    fn freshness_fresh_and_stale() {
        let stored = entry(&[("age", "10")], 100, 100);
        assert_eq!(
            freshness(&stored, secs(60), at(120)),
            Freshness::Fresh { ttl: secs(30) }
        );
        assert_eq!(
            freshness(&stored, secs(60), at(150)),
            Freshness::Stale { stale_for: secs(0) }
        );
        assert_eq!(
            freshness(&stored, secs(60), at(175)),
            Freshness::Stale {
                stale_for: secs(25)
            }
        );
        assert_eq!(
            freshness(&stored, secs(0), at(100)),
            Freshness::Stale {
                stale_for: secs(10)
            }
        );
    }

    // --- stale-if-error ---

    #[test]
    fn stale_if_error_route_default() {
        let stored = entry(&[("cache-control", "max-age=60")], 0, 0);
        assert!(stale_if_error_allows(&stored, secs(100), secs(300), &[]));
        assert!(stale_if_error_allows(&stored, secs(300), secs(300), &[]));
        assert!(!stale_if_error_allows(&stored, secs(301), secs(300), &[]));
        assert!(!stale_if_error_allows(&stored, secs(1), secs(0), &[]));
    }

    #[test]
    fn stale_if_error_from_response_overrides_route_default() {
        let stored = entry(&[("cache-control", "max-age=60, stale-if-error=30")], 0, 0);
        assert!(stale_if_error_allows(&stored, secs(30), secs(300), &[]));
        assert!(!stale_if_error_allows(&stored, secs(31), secs(300), &[]));
        let longer = entry(&[("cache-control", "max-age=60, stale-if-error=600")], 0, 0);
        assert!(stale_if_error_allows(&longer, secs(500), secs(0), &[]));
    }

    #[test]
    fn stale_if_error_with_revalidation_directives() {
        for directive in [
            "must-revalidate",
            "proxy-revalidate",
            "no-cache",
            "s-maxage=60",
        ] {
            let value = format!("max-age=60, {directive}");
            let stored = entry(&[("cache-control", &value)], 0, 0);
            assert!(
                !stale_if_error_allows(&stored, secs(1), secs(300), &[]),
                "{directive}"
            );
            let with_sie = format!("{value}, stale-if-error=100");
            let stored = entry(&[("cache-control", &with_sie)], 0, 0);
            assert!(
                stale_if_error_allows(&stored, secs(100), secs(0), &[]),
                "{directive}"
            );
            assert!(
                !stale_if_error_allows(&stored, secs(101), secs(300), &[]),
                "{directive}"
            );
        }
    }

    #[test]
    fn revalidate_each_use() {
        assert!(must_revalidate_each_use(
            &entry(&[("cache-control", "no-cache, max-age=60")], 0, 0),
            &[]
        ));
        assert!(must_revalidate_each_use(
            &entry(&[("cache-control", r#"no-cache="set-cookie""#)], 0, 0),
            &[]
        ));
        assert!(!must_revalidate_each_use(
            &entry(&[("cache-control", "must-revalidate, max-age=60")], 0, 0),
            &[]
        ));
        assert!(!must_revalidate_each_use(&entry(&[], 0, 0), &[]));
    }

    // --- Vary ---

    fn name(text: &'static str) -> HeaderName {
        HeaderName::from_static(text)
    }

    fn value(text: &'static str) -> HeaderValue {
        HeaderValue::from_static(text)
    }

    #[test]
    fn varied_values_names_and_values() {
        let response = headers(&[
            ("vary", "Accept-Encoding, accept-language"),
            ("vary", "ACCEPT-ENCODING, X-Absent"),
        ]);
        let request = headers(&[
            ("accept-encoding", "gzip"),
            ("accept-encoding", "br"),
            ("accept-language", "en"),
        ]);
        assert_eq!(
            varied_values(&response, &request),
            Some(vec![
                (name("accept-encoding"), Some(value("gzip, br"))),
                (name("accept-language"), Some(value("en"))),
                (name("x-absent"), None),
            ])
        );
    }

    #[test]
    fn varied_values_without_vary_or_with_star() {
        assert_eq!(
            varied_values(&HeaderMap::new(), &headers(&[("accept", "*/*")])),
            Some(Vec::new())
        );
        assert_eq!(
            varied_values(&headers(&[("vary", "accept, *")]), &HeaderMap::new()),
            None
        );
    }

    fn varied_entry(vary: &'static str, request: &[(&str, &str)]) -> StoredResponse {
        let mut stored = entry(&[("vary", vary)], 0, 0);
        stored.varied =
            varied_values(&stored.headers, &headers(request)).expect("no Vary: * in tests");
        stored
    }

    #[test]
    fn selects_equal_values() {
        let stored = varied_entry("accept-language", &[("accept-language", "en")]);
        assert!(selects(&stored, &headers(&[("accept-language", "en")])));
        assert!(!selects(&stored, &headers(&[("accept-language", "de")])));
        assert!(!selects(&stored, &HeaderMap::new()));
        // Language ranges are case-insensitive (RFC 4647 §2); other fields' case matters.
        assert!(selects(&stored, &headers(&[("accept-language", "EN")])));
        let other = varied_entry("x-flag", &[("x-flag", "on")]);
        assert!(!selects(&other, &headers(&[("x-flag", "ON")])));
    }

    #[test]
    fn preference_lists_normalise_order_case_whitespace_and_weights() {
        let n = |v: &str| String::from_utf8(normalised_preferences(v.as_bytes())).expect("ascii");
        assert_eq!(n("gzip, br"), "br,gzip");
        assert_eq!(n("BR ,GZip"), "br,gzip");
        assert_eq!(n("gzip;q=1.0, br;q=0.50"), "gzip,br;q=0.5");
        assert_eq!(n("br;q=0.5,gzip;Q=1"), "gzip,br;q=0.5");
        assert_eq!(n("identity;q=0, *;q=0.001"), "*;q=0.001,identity;q=0");
        assert_eq!(
            n("de-DE, en;q=0.8 , fr ; q=0.800"),
            "de-de,en;q=0.8,fr;q=0.8"
        );
        assert_eq!(n("en, en;q=0.1"), "en");
        // Invalid weights are kept as written (lowercased), never made equal to valid ones.
        assert_eq!(n("en;q=2"), "en;q=2");
        assert_ne!(n("en;q=1.5"), n("en"));
        let stored = varied_entry(
            "accept-language, accept-encoding",
            &[
                ("accept-language", "en-US,de;q=0.5"),
                ("accept-encoding", "gzip, br"),
            ],
        );
        assert!(selects(
            &stored,
            &headers(&[
                ("accept-language", "de;q=0.500 , EN-us"),
                ("accept-encoding", "br,GZIP"),
            ])
        ));
        assert!(!selects(
            &stored,
            &headers(&[
                ("accept-language", "de, en-US;q=0.5"),
                ("accept-encoding", "br,gzip"),
            ])
        ));
    }

    #[test]
    fn preference_normalisation_survives_hostile_input() {
        let long = "a;q=0.5,".repeat(10_000);
        let inputs: Vec<&[u8]> = vec![
            b"",
            b",,,",
            b";;;",
            b"q=",
            b";q=",
            b"a;q=",
            b"a;q=.",
            b"a;q=0.",
            b"a;q=0.1234",
            b"a;q=-1",
            b"a;q=99999999999999999999",
            b"\"a,b\";q=0.5",
            b"\xff\xfe;q=0.5",
            b", ;, =, ?c",
            long.as_bytes(),
        ];
        for input in inputs {
            let once = normalised_preferences(input);
            assert_eq!(normalised_preferences(&once), once, "{input:?}");
        }
    }

    // --- Age (RFC 9111 §5.1) ---

    #[test]
    fn age_field_is_the_first_member_and_digits_only() {
        let age = |lines: &[&str]| {
            let fields: Vec<(&str, &str)> = lines.iter().map(|l| ("age", *l)).collect();
            age_field(&headers(&fields))
        };
        assert_eq!(age(&[]), Ok(None));
        assert_eq!(age(&["10"]), Ok(Some(10)));
        assert_eq!(age(&[" 7 "]), Ok(Some(7)));
        assert_eq!(age(&["3, 9"]), Ok(Some(3)));
        assert_eq!(age(&["4", "8"]), Ok(Some(4)));
        assert_eq!(age(&["99999999999999999999"]), Ok(Some(1 << 31)));
        for bad in ["1a", "-1", "1.5", "", "+1", "0x10", "ten", "1 2", ", 5"] {
            assert_eq!(age(&[bad]), Err(InvalidAge), "{bad:?}");
        }
        assert_eq!(age(&["x", "5"]), Err(InvalidAge));
    }

    #[test]
    fn a_response_with_an_invalid_age_is_not_stored() {
        for bad in ["1a", "-1", "1.5"] {
            assert_eq!(
                get_storable(&[], 200, &[("cache-control", "max-age=60"), ("age", bad)]),
                Err(NotStorable::InvalidAge),
                "{bad}"
            );
        }
        assert_eq!(
            get_storable(
                &[],
                200,
                &[("cache-control", "max-age=60"), ("age", "5, 6")]
            ),
            Ok(())
        );
    }

    // --- Targeted cache control (RFC 9213) ---

    fn cdn() -> HeaderName {
        HeaderName::from_static("cdn-cache-control")
    }

    fn own() -> HeaderName {
        HeaderName::from_static("gatehouse-cache-control")
    }

    #[test]
    fn targeted_field_outranks_cache_control() {
        let targets = [own(), cdn()];
        let response = headers(&[
            ("cache-control", "no-store"),
            ("cdn-cache-control", "max-age=600"),
        ]);
        let cc = response_directives(&response, &targets);
        assert_eq!(cc.max_age, Some(600));
        assert!(
            !cc.no_store,
            "Cache-Control is ignored once a targeted field applies"
        );
        let response = headers(&[
            ("cache-control", "max-age=60"),
            ("cdn-cache-control", "max-age=600"),
            ("gatehouse-cache-control", "no-store"),
        ]);
        assert!(response_directives(&response, &targets).no_store);
        // Without targets, only Cache-Control counts.
        assert_eq!(response_directives(&response, &[]).max_age, Some(60));
        assert_eq!(
            storable(
                &Method::GET,
                &HeaderMap::new(),
                StatusCode::OK,
                &response,
                false,
                &targets
            ),
            Err(NotStorable::NoStore)
        );
        assert_eq!(
            freshness_lifetime(StatusCode::OK, &response, at(0), CAP, &[cdn()]),
            secs(600)
        );
    }

    #[test]
    fn targeted_directives_parse_as_a_dictionary() {
        let parse =
            |value: &str| targeted_directives(&headers(&[("cdn-cache-control", value)]), &cdn());
        let cc = parse("max-age=60, s-maxage=30, private, no-cache, stale-while-revalidate=5")
            .expect("valid");
        assert_eq!((cc.max_age, cc.s_maxage), (Some(60), Some(30)));
        assert!(cc.private && cc.no_cache);
        assert_eq!(cc.stale_while_revalidate, Some(5));
        assert!(!parse("no-store=?0").expect("valid").no_store);
        assert_eq!(parse("max-age=-5").expect("valid").max_age, Some(0));
        assert_eq!(parse("max-age=1.5").expect("valid").max_age, Some(0));
        assert_eq!(parse("max-age=\"60\"").expect("valid").max_age, Some(0));
        assert_eq!(
            parse("stale-if-error=abc").expect("valid").stale_if_error,
            None
        );
        // Not a Structured Field Dictionary: ignored, the next field applies.
        for invalid in [
            "max-age=60;",
            "Max-Age=60",
            "max-age=60,,",
            "max-age=(1",
            "=1",
            "max-age=60 x",
        ] {
            assert_eq!(parse(invalid), None, "{invalid}");
        }
        let fallback = headers(&[
            ("cdn-cache-control", "Max-Age=600"),
            ("cache-control", "max-age=5"),
        ]);
        assert_eq!(response_directives(&fallback, &[cdn()]).max_age, Some(5));
        // Several lines are one dictionary.
        let lines = headers(&[
            ("cdn-cache-control", "max-age=9"),
            ("cdn-cache-control", "no-cache"),
        ]);
        let cc = response_directives(&lines, &[cdn()]);
        assert!(cc.no_cache);
        assert_eq!(cc.max_age, Some(9));
    }

    #[test]
    fn targeted_parsing_survives_hostile_input() {
        let long = "a=1,".repeat(20_000);
        for value in [
            "max-age=99999999999999999",
            "max-age=-999999999999999",
            "max-age=?1",
            "max-age=:AAAA:",
            "max-age=@1",
            "max-age=%\"x\"",
            "no-store=(a b c)",
            long.as_str(),
        ] {
            let _ = targeted_directives(&headers(&[("cdn-cache-control", value)]), &cdn());
        }
        let mut bytes: Vec<u8> = (0x20..=0xffu8).collect();
        bytes.retain(|b| *b != 0x7f);
        let mut map = HeaderMap::new();
        map.insert(
            cdn(),
            HeaderValue::from_bytes(&bytes).expect("visible bytes"),
        );
        assert_eq!(targeted_directives(&map, &cdn()), None);
    }

    #[test]
    fn stale_while_revalidate_window() {
        let stored = entry(
            &[("cache-control", "max-age=1, stale-while-revalidate=30")],
            0,
            0,
        );
        assert!(stale_while_revalidate_allows(&stored, secs(30), &[]));
        assert!(!stale_while_revalidate_allows(&stored, secs(31), &[]));
        let cdn_style = entry(
            &[("cache-control", "s-maxage=1, stale-while-revalidate=30")],
            0,
            0,
        );
        assert!(stale_while_revalidate_allows(&cdn_style, secs(10), &[]));
        for forbidding in ["must-revalidate", "proxy-revalidate", "no-cache"] {
            let stored = entry(
                &[(
                    "cache-control",
                    &format!("max-age=1, stale-while-revalidate=30, {forbidding}"),
                )],
                0,
                0,
            );
            assert!(
                !stale_while_revalidate_allows(&stored, secs(1), &[]),
                "{forbidding}"
            );
        }
        assert!(!stale_while_revalidate_allows(
            &entry(&[("cache-control", "max-age=1")], 0, 0),
            secs(0),
            &[]
        ));
    }

    #[test]
    fn selects_absent_on_both_sides() {
        let stored = varied_entry("accept-language, x-flag", &[("accept-language", "en")]);
        assert!(selects(&stored, &headers(&[("accept-language", "en")])));
        assert!(!selects(
            &stored,
            &headers(&[("accept-language", "en"), ("x-flag", "1")])
        ));
        // An empty value is not the same as an absent field.
        assert!(!selects(
            &stored,
            &headers(&[("accept-language", "en"), ("x-flag", "")])
        ));
    }

    #[test]
    fn selects_normalises_whitespace_and_field_lines() {
        let stored = varied_entry("accept-encoding", &[("accept-encoding", "gzip,br")]);
        assert!(selects(
            &stored,
            &headers(&[("accept-encoding", "gzip , br")])
        ));
        assert!(selects(
            &stored,
            &headers(&[("accept-encoding", "gzip"), ("accept-encoding", "br")])
        ));
        assert!(selects(
            &stored,
            &headers(&[("accept-encoding", "GZIP, Br")])
        ));
        // Order is not a preference once weights are equal (RFC 9110 §12.5.3).
        assert!(selects(
            &stored,
            &headers(&[("accept-encoding", "br, gzip")])
        ));
        assert!(!selects(&stored, &headers(&[("accept-encoding", "gzip")])));
    }

    #[test]
    fn selects_without_vary_and_with_star() {
        let plain = entry(&[], 0, 0);
        assert!(selects(&plain, &headers(&[("accept", "text/html")])));
        let star = entry(&[("vary", "*")], 0, 0);
        assert!(!selects(&star, &HeaderMap::new()));
    }

    // --- revalidation ---

    #[test]
    fn conditional_headers_from_validators() {
        let last_modified = date(0);
        let strong = entry(
            &[("etag", "\"v1\""), ("last-modified", &last_modified)],
            0,
            0,
        );
        let conditional = conditional_headers(&strong);
        assert_eq!(conditional.len(), 2);
        assert_eq!(conditional[header::IF_NONE_MATCH], "\"v1\"");
        assert_eq!(
            conditional[header::IF_MODIFIED_SINCE],
            last_modified.as_str()
        );
        assert!(has_validator(&strong));

        let weak = entry(&[("etag", "W/\"v2\"")], 0, 0);
        let conditional = conditional_headers(&weak);
        assert_eq!(conditional.len(), 1);
        assert_eq!(conditional[header::IF_NONE_MATCH], "W/\"v2\"");
        assert!(has_validator(&weak));

        let modified_only = entry(&[("last-modified", &last_modified)], 0, 0);
        assert_eq!(
            conditional_headers(&modified_only)
                .keys()
                .collect::<Vec<_>>(),
            [header::IF_MODIFIED_SINCE]
        );
    }

    #[test]
    fn conditional_headers_without_validators() {
        let none = entry(&[("cache-control", "max-age=5")], 0, 0);
        assert!(conditional_headers(&none).is_empty());
        assert!(!has_validator(&none));
        let invalid = entry(&[("etag", "v1"), ("last-modified", "last week")], 0, 0);
        assert!(conditional_headers(&invalid).is_empty());
        assert!(!has_validator(&invalid));
    }

    #[test]
    fn freshen_replaces_fields_and_keeps_body_fields() {
        let old_date = date(0);
        let mut stored = entry(
            &[
                ("content-length", "4"),
                ("content-encoding", "gzip"),
                ("content-type", "text/plain"),
                ("cache-control", "max-age=10"),
                ("etag", "\"v1\""),
                ("date", &old_date),
                ("x-multi", "a"),
                ("x-multi", "b"),
                ("age", "5"),
            ],
            0,
            1,
        );
        stored.status = StatusCode::NOT_FOUND;
        stored.varied = vec![(name("accept"), Some(value("*/*")))];
        let new_date = date(500);
        let not_modified = headers(&[
            ("content-length", "0"),
            ("content-encoding", "br"),
            ("connection", "close"),
            ("cache-control", "max-age=60"),
            ("etag", "\"v1\""),
            ("date", &new_date),
            ("x-multi", "c"),
            ("x-new", "1"),
        ]);
        let fresh = freshen(&stored, &not_modified, at(499), at(500));
        let h = &fresh.headers;
        assert_eq!(h[header::CONTENT_LENGTH], "4");
        assert_eq!(h[header::CONTENT_ENCODING], "gzip");
        assert_eq!(h[header::CONTENT_TYPE], "text/plain");
        assert_eq!(h[header::CACHE_CONTROL], "max-age=60");
        assert_eq!(h[header::DATE], new_date.as_str());
        assert_eq!(h.get_all("x-multi").iter().collect::<Vec<_>>(), ["c"]);
        assert_eq!(h["x-new"], "1");
        assert!(!h.contains_key(header::CONNECTION));
        assert!(!h.contains_key(header::AGE));
        assert_eq!(fresh.request_time, at(499));
        assert_eq!(fresh.response_time, at(500));
        assert_eq!(fresh.status, StatusCode::NOT_FOUND);
        assert_eq!(fresh.body, stored.body);
        assert_eq!(fresh.varied, stored.varied);
        // The stored entry itself is unchanged.
        assert_eq!(stored.headers[header::CACHE_CONTROL], "max-age=10");
        // Fresh again with the new lifetime.
        assert_eq!(
            freshness(&fresh, secs(60), at(510)),
            Freshness::Fresh { ttl: secs(49) }
        );
    }

    #[test]
    fn freshen_without_date_or_with_age() {
        let old_date = date(0);
        let stored = entry(&[("date", &old_date), ("age", "5")], 0, 0);
        let fresh = freshen(&stored, &headers(&[("age", "7")]), at(999), at(1000));
        assert_eq!(fresh.headers[header::DATE], date(1000).as_str());
        assert_eq!(fresh.headers[header::AGE], "7");
        assert_eq!(current_age(&fresh, at(1000)), secs(8));
    }

    // --- the client's conditional requests ---

    fn not_modified(request: &[(&str, &str)], response: &[(&str, &str)]) -> bool {
        not_modified_for(&headers(request), &headers(response))
    }

    #[test]
    fn if_none_match_strong_and_weak() {
        let strong = [("etag", "\"v1\"")];
        let weak = [("etag", "W/\"v1\"")];
        assert!(not_modified(&[("if-none-match", "\"v1\"")], &strong));
        assert!(not_modified(&[("if-none-match", "W/\"v1\"")], &strong));
        assert!(not_modified(&[("if-none-match", "\"v1\"")], &weak));
        assert!(not_modified(&[("if-none-match", "W/\"v1\"")], &weak));
        assert!(!not_modified(&[("if-none-match", "\"v2\"")], &strong));
        assert!(!not_modified(&[("if-none-match", "W/\"V1\"")], &weak));
    }

    #[test]
    fn if_none_match_lists() {
        let response = [("etag", "\"b,c\"")];
        assert!(not_modified(
            &[("if-none-match", "\"a\", W/\"b,c\"")],
            &response
        ));
        assert!(not_modified(
            &[("if-none-match", "\"a\""), ("if-none-match", " \"b,c\" ")],
            &response
        ));
        assert!(!not_modified(
            &[("if-none-match", "\"a\", \"b\"")],
            &response
        ));
        // A response without an ETag matches no entity-tag.
        assert!(!not_modified(&[("if-none-match", "\"a\"")], &[]));
    }

    #[test]
    fn if_none_match_star() {
        assert!(not_modified(
            &[("if-none-match", "*")],
            &[("etag", "\"v1\"")]
        ));
        assert!(not_modified(&[("if-none-match", " * ")], &[]));
    }

    #[test]
    fn if_none_match_takes_precedence() {
        let last_modified = date(0);
        let since = date(100);
        let response = [
            ("etag", "\"v1\""),
            ("last-modified", last_modified.as_str()),
        ];
        // If-Modified-Since alone would say not modified.
        assert!(not_modified(&[("if-modified-since", &since)], &response));
        assert!(!not_modified(
            &[("if-none-match", "\"v2\""), ("if-modified-since", &since)],
            &response
        ));
    }

    #[test]
    fn if_modified_since() {
        let last_modified = date(100);
        let response = [("last-modified", last_modified.as_str())];
        assert!(not_modified(
            &[("if-modified-since", &date(100))],
            &response
        ));
        assert!(not_modified(
            &[("if-modified-since", &date(200))],
            &response
        ));
        assert!(!not_modified(
            &[("if-modified-since", &date(99))],
            &response
        ));
        assert!(!not_modified(
            &[("if-modified-since", "not a date")],
            &response
        ));
        assert!(!not_modified(&[], &response));
    }

    #[test]
    fn if_modified_since_falls_back_to_date() {
        let response_date = date(100);
        let response = [("date", response_date.as_str())];
        assert!(not_modified(
            &[("if-modified-since", &date(150))],
            &response
        ));
        assert!(!not_modified(
            &[("if-modified-since", &date(50))],
            &response
        ));
        assert!(!not_modified(&[("if-modified-since", &date(150))], &[]));
    }

    #[test]
    fn not_modified_headers_copies_the_listed_fields() {
        let response = headers(&[
            ("cache-control", "max-age=60"),
            ("content-location", "/a"),
            ("date", "Tue, 15 Nov 1994 08:12:31 GMT"),
            ("etag", "\"v1\""),
            ("expires", "Tue, 15 Nov 1994 09:12:31 GMT"),
            ("vary", "accept"),
            ("vary", "accept-encoding"),
            ("last-modified", "Mon, 14 Nov 1994 08:12:31 GMT"),
            ("content-type", "text/html"),
            ("content-length", "12"),
            ("set-cookie", "a=b"),
        ]);
        let copied = not_modified_headers(&response);
        assert_eq!(copied.len(), 8);
        for name in [
            "cache-control",
            "content-location",
            "date",
            "etag",
            "expires",
            "last-modified",
        ] {
            assert_eq!(copied.get(name), response.get(name), "{name}");
        }
        assert_eq!(copied.get_all("vary").iter().count(), 2);
        assert!(!copied.contains_key("content-type"));
        assert!(!copied.contains_key("content-length"));
        assert!(not_modified_headers(&HeaderMap::new()).is_empty());
    }
}
