//! `Cache-Control` and the RFC 9111 rules of gatehouse's shared cache, over fields an origin
//! or a client sent.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arbitrary::Unstructured;
use bytes::Bytes;
use gatehouse_proxy::cache::entry::StoredResponse;
use gatehouse_proxy::cache::policy::{self, CacheControl, Freshness, NotStorable};
use gatehouse_proxy::cache::{range, serve};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};

use crate::header_values;
use crate::status::cache_status_ttl_round_trip;

/// RFC 9111 §1.2.2: larger delta-seconds clamp to this.
const DELTA_SECONDS_MAX: u64 = 1 << 31;
/// 9999-12-31T23:59:59Z, the latest HTTP-date.
const LAST_HTTP_DATE: u64 = 253_402_300_799;

/// The input is `Cache-Control` field lines (one per line).
///
/// Checked: delta-seconds are clamped to 2^31; directive names are case-insensitive
/// (the lines upper-cased parse the same); several lines are one list (without quoted strings
/// in play, the lines joined with commas parse the same); a directive without arguments is set
/// exactly when it is listed, and `max-age` / `s-maxage` are present exactly when listed.
pub fn cache_control(data: &[u8]) {
    let Some(values) = header_values(data) else {
        return;
    };
    let cc = CacheControl::parse(&fields(header::CACHE_CONTROL, &values));
    targeted_and_neighbours(&values);
    for delta in [
        cc.max_age,
        cc.s_maxage,
        cc.stale_if_error,
        cc.stale_while_revalidate,
    ]
    .into_iter()
    .flatten()
    {
        assert!(delta <= DELTA_SECONDS_MAX, "{delta} in {cc:?}");
    }
    let upper: Vec<HeaderValue> = values
        .iter()
        .filter_map(|v| HeaderValue::from_bytes(&v.as_bytes().to_ascii_uppercase()).ok())
        .collect();
    assert_eq!(
        CacheControl::parse(&fields(header::CACHE_CONTROL, &upper)),
        cc,
        "upper-cased"
    );
    if data.contains(&b'"') {
        return;
    }
    let joined = values
        .iter()
        .map(HeaderValue::as_bytes)
        .collect::<Vec<_>>()
        .join(&b", "[..]);
    if let Ok(joined) = HeaderValue::from_bytes(&joined) {
        assert_eq!(
            CacheControl::parse(&fields(header::CACHE_CONTROL, &[joined])),
            cc,
            "joined"
        );
    }
    let names: Vec<&[u8]> = values
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(|element| {
            let name = element.split(|&b| b == b'=').next().unwrap_or_default();
            name.trim_ascii()
        })
        .collect();
    let listed = |directive: &str| {
        names
            .iter()
            .any(|name| name.eq_ignore_ascii_case(directive.as_bytes()))
    };
    let flags = [
        ("no-store", cc.no_store),
        ("no-cache", cc.no_cache),
        ("private", cc.private),
        ("public", cc.public),
        ("must-revalidate", cc.must_revalidate),
        ("proxy-revalidate", cc.proxy_revalidate),
        ("must-understand", cc.must_understand),
        ("only-if-cached", cc.only_if_cached),
        ("max-age", cc.max_age.is_some()),
        ("s-maxage", cc.s_maxage.is_some()),
    ];
    for (directive, set) in flags {
        assert_eq!(set, listed(directive), "{directive} in {names:?}");
    }
}

/// The same lines as a targeted field (RFC 9213), `Age`, `Range`/`If-Range` and a preference
/// list: none of their parsers panics, and what they return stays in range. A targeted field
/// that parses outranks `Cache-Control`; preference normalisation is idempotent.
fn targeted_and_neighbours(values: &[HeaderValue]) {
    let cdn = HeaderName::from_static("cdn-cache-control");
    let targeted = fields(cdn.clone(), values);
    if let Some(cc) = policy::targeted_directives(&targeted, &cdn) {
        for delta in [
            cc.max_age,
            cc.s_maxage,
            cc.stale_if_error,
            cc.stale_while_revalidate,
        ]
        .into_iter()
        .flatten()
        {
            assert!(delta <= DELTA_SECONDS_MAX, "{delta} in {cc:?}");
        }
        assert_eq!(policy::response_directives(&targeted, &[cdn]), cc);
    }
    if let Ok(Some(age)) = policy::age_field(&fields(header::AGE, values)) {
        assert!(age <= DELTA_SECONDS_MAX);
    }
    let mut ranged = fields(header::RANGE, values);
    for value in values {
        ranged.append(header::IF_RANGE, value.clone());
    }
    for length in [0, 1, 7, 1 << 20, u64::MAX] {
        if let range::RangeRequest::Ranges(ranges) = range::parse(&ranged, length) {
            assert!(!ranges.is_empty() && ranges.len() <= range::MAX_RANGES);
            for (first, last) in ranges {
                assert!(first <= last && last < length, "{first}-{last} of {length}");
            }
        }
    }
    let _ = range::if_range_allows(&ranged, &ranged, UNIX_EPOCH);
    for value in values {
        let once = policy::normalised_preferences(value.as_bytes());
        assert_eq!(policy::normalised_preferences(&once), once, "{value:?}");
    }
}

fn fields(name: HeaderName, values: &[HeaderValue]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for value in values {
        map.append(name.clone(), value.clone());
    }
    map
}

// === The cache policy ===

const REQUEST_NAMES: &[&str] = &[
    "cache-control",
    "authorization",
    "if-none-match",
    "if-modified-since",
    "accept-encoding",
    "accept",
    "cookie",
];
const RESPONSE_NAMES: &[&str] = &[
    "cache-control",
    "expires",
    "date",
    "last-modified",
    "age",
    "vary",
    "etag",
    "set-cookie",
    "content-range",
    "content-length",
    "content-encoding",
    "content-type",
];
const DIRECTIVES: &[&str] = &[
    "no-store",
    "no-cache",
    "private",
    "public",
    "must-revalidate",
    "proxy-revalidate",
    "must-understand",
    "only-if-cached",
    "max-age",
    "s-maxage",
    "stale-if-error",
    "stale-while-revalidate",
    "no-cache=\"set-cookie\"",
    "private=\"x-a, x-b\"",
];
const VARY: &[&str] = &["accept-encoding", "Accept", "cookie", "*", "x-a"];
const TAGS: &[&str] = &[
    "\"a\"",
    "W/\"a\"",
    "\"b\"",
    "W/\"\"",
    "*",
    "\"a\" , W/\"b\"",
];

/// Fields to store with the kept ones of `policy::freshen` (a 304 never replaces them).
const KEPT_ON_FRESHEN: &[&str] = &[
    "content-length",
    "content-encoding",
    "transfer-encoding",
    "content-range",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
];

/// The input describes a request, the response an origin gave it (status and fields drawn from
/// the ones caching reads, with realistic or arbitrary values), the times involved, and a later
/// 304 and request.
///
/// Checked: `storable` refuses what RFC 9111 and gatehouse's rules refuse (method, no-store,
/// private, Authorization, Set-Cookie, `Vary: *`, partial and non-final statuses); the
/// freshness lifetime is `s-maxage` or `max-age` when given and within the heuristic cap
/// without explicit freshness; the age is at least the time stored; freshness splits the
/// lifetime exactly into age and ttl; the `Cache-Status` ttl stays an sf-integer and round
/// trips; the storing request selects the stored variant; a stored response's own validators
/// revalidate it; freshening with a 304 takes its fields except the kept ones, drops an `Age`
/// it does not repeat and always dates the result; a response made from a stored copy has the
/// right status, `Content-Length`, `Age` and body; stale-if-error is monotonic in both
/// durations.
pub fn cache_policy(data: &[u8]) {
    let _ = run_policy(&mut Unstructured::new(data));
}

fn run_policy(u: &mut Unstructured<'_>) -> arbitrary::Result<()> {
    let method = u
        .choose(&[Method::GET, Method::HEAD, Method::POST])?
        .clone();
    let status = StatusCode::from_u16(u.int_in_range(100..=999)?).unwrap_or(StatusCode::OK);
    let status = if u.ratio(1, 2)? {
        StatusCode::OK
    } else {
        status
    };
    let request = header_map(u, REQUEST_NAMES)?;
    let response = header_map(u, RESPONSE_NAMES)?;
    let base = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let request_time = base + Duration::from_secs(u.arbitrary::<u16>()?.into());
    let response_time = if u.ratio(1, 8)? {
        // Clock skew: the response seems to arrive before the request left.
        request_time - Duration::from_secs(u.arbitrary::<u8>()?.into())
    } else {
        request_time + Duration::from_millis(u.arbitrary::<u16>()?.into())
    };
    let now = response_time + Duration::from_secs(u.int_in_range(0..=DELTA_SECONDS_MAX)?);
    let cap = Duration::from_secs(u.int_in_range(0..=86_400)?);
    let keep = u.arbitrary()?;

    let request_cc = CacheControl::parse(&request);
    let cc = CacheControl::parse(&response);
    let varied = policy::varied_values(&response, &request);
    let verdict = policy::storable(&method, &request, status, &response, keep, &[]);
    check_storable(
        &method,
        &request,
        status,
        &response,
        &cc,
        &request_cc,
        verdict,
    );
    if verdict.is_ok() {
        assert!(varied.is_some(), "stored with Vary: * {response:?}");
    }

    let lifetime = policy::freshness_lifetime(status, &response, response_time, cap, &[]);
    if let Some(seconds) = cc.s_maxage.or(cc.max_age) {
        assert_eq!(lifetime, Duration::from_secs(seconds));
    } else if !response.contains_key(header::EXPIRES) {
        assert!(lifetime <= cap, "{lifetime:?} over the cap {cap:?}");
    }
    assert!(lifetime.as_secs() <= LAST_HTTP_DATE);

    let body = Bytes::copy_from_slice(u.arbitrary::<&[u8]>()?);
    let entry = StoredResponse {
        status,
        headers: response.clone(),
        body: body.clone(),
        request_time,
        response_time,
        varied: varied.clone().unwrap_or_default(),
    };
    let age = policy::current_age(&entry, now);
    let resident = now.duration_since(response_time).unwrap_or_default();
    assert!(
        age >= resident,
        "age {age:?} below the time stored {resident:?}"
    );
    let freshness = policy::freshness(&entry, lifetime, now);
    match freshness {
        Freshness::Fresh { ttl } => {
            assert!(!ttl.is_zero());
            assert_eq!(ttl + age, lifetime);
        }
        Freshness::Stale { stale_for } => {
            assert!(age >= lifetime);
            assert_eq!(stale_for, age - lifetime);
        }
    }
    let ttl = serve::ttl_secs(freshness);
    cache_status_ttl_round_trip(ttl);

    if varied.is_some() {
        assert!(
            policy::selects(&entry, &request),
            "the storing request does not select its variant"
        );
    }
    assert_eq!(policy::must_revalidate_each_use(&entry, &[]), cc.no_cache);

    let conditional = policy::conditional_headers(&entry);
    assert_eq!(policy::has_validator(&entry), !conditional.is_empty());
    if !conditional.is_empty() {
        assert!(
            policy::not_modified_for(&conditional, &entry.headers),
            "{conditional:?} does not match its own response"
        );
    }

    let windows = [
        Duration::from_secs(u.int_in_range(0..=DELTA_SECONDS_MAX)?),
        Duration::from_secs(u.int_in_range(0..=DELTA_SECONDS_MAX)?),
    ];
    let (short, long) = (windows[0].min(windows[1]), windows[0].max(windows[1]));
    let route = Duration::from_secs(u.int_in_range(0..=DELTA_SECONDS_MAX)?);
    if policy::stale_if_error_allows(&entry, long, route, &[]) {
        assert!(policy::stale_if_error_allows(&entry, short, route, &[]));
    }
    if policy::stale_if_error_allows(&entry, route, short, &[]) {
        assert!(policy::stale_if_error_allows(&entry, route, long, &[]));
    }

    let not_modified = header_map(u, RESPONSE_NAMES)?;
    let later = response_time + Duration::from_secs(u.arbitrary::<u16>()?.into());
    check_freshen(&entry, &not_modified, later);

    let next = header_map(u, REQUEST_NAMES)?;
    let served_age = Duration::from_secs(u.arbitrary::<u32>()?.into());
    let head_only = u.arbitrary()?;
    check_from_stored(&entry, served_age, &next, head_only);
    Ok(())
}

fn check_storable(
    method: &Method,
    request: &HeaderMap,
    status: StatusCode,
    response: &HeaderMap,
    cc: &CacheControl,
    request_cc: &CacheControl,
    verdict: Result<(), NotStorable>,
) {
    if method != Method::GET {
        assert_eq!(verdict, Err(NotStorable::Method));
        return;
    }
    if verdict.is_err() {
        return;
    }
    let why = format!("{status} {response:?} for {request:?} stored");
    assert!(!request_cc.no_store, "{why}");
    assert!(!cc.no_store || cc.must_understand, "{why}");
    assert!(!cc.private, "{why}");
    assert!(
        !request.contains_key(header::AUTHORIZATION)
            || cc.public
            || cc.s_maxage.is_some()
            || cc.must_revalidate,
        "{why}"
    );
    assert!(!response.contains_key(header::SET_COOKIE), "{why}");
    assert!(
        status != StatusCode::PARTIAL_CONTENT && !response.contains_key(header::CONTENT_RANGE),
        "{why}"
    );
    assert!(
        !status.is_informational() && status != StatusCode::NOT_MODIFIED && status.as_u16() < 600,
        "{why}"
    );
}

fn check_freshen(entry: &StoredResponse, not_modified: &HeaderMap, later: SystemTime) {
    let fresh = policy::freshen(entry, not_modified, later, later);
    assert_eq!(fresh.status, entry.status);
    assert_eq!(fresh.body, entry.body);
    assert_eq!(fresh.varied, entry.varied);
    assert_eq!((fresh.request_time, fresh.response_time), (later, later));
    let values = |map: &HeaderMap, name: &HeaderName| -> Vec<HeaderValue> {
        map.get_all(name).iter().cloned().collect()
    };
    for name in fresh.headers.keys().chain(not_modified.keys()) {
        let got = values(&fresh.headers, name);
        let want = if KEPT_ON_FRESHEN.contains(&name.as_str()) || !not_modified.contains_key(name) {
            values(&entry.headers, name)
        } else {
            values(not_modified, name)
        };
        if name == header::AGE && !not_modified.contains_key(header::AGE) {
            assert!(got.is_empty(), "an Age the 304 did not repeat was kept");
        } else if name == header::DATE && !not_modified.contains_key(header::DATE) {
            let date = got
                .first()
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            let secs = |t: SystemTime| t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).ok();
            assert_eq!(
                httpdate::parse_http_date(date).ok().and_then(secs),
                secs(later),
                "Date {got:?}"
            );
        } else {
            assert_eq!(got, want, "{name} after freshening");
        }
    }
    assert!(fresh.headers.contains_key(header::DATE));
}

fn check_from_stored(entry: &StoredResponse, age: Duration, request: &HeaderMap, head_only: bool) {
    let response = serve::from_stored(entry, age, request, head_only, None);
    let not_modified =
        entry.status == StatusCode::OK && policy::not_modified_for(request, &entry.headers);
    let headers = response.headers();
    assert_eq!(
        headers.get(header::AGE).and_then(|v| v.to_str().ok()),
        Some(age.as_secs().to_string().as_str())
    );
    let ranged = !not_modified
        && !head_only
        && entry.status == StatusCode::OK
        && range::if_range_allows(request, &entry.headers, entry.response_time)
        && range::parse(request, entry.body.len() as u64) != range::RangeRequest::Whole;
    if ranged {
        match range::parse(request, entry.body.len() as u64) {
            range::RangeRequest::Unsatisfiable => {
                assert_eq!(response.status(), StatusCode::RANGE_NOT_SATISFIABLE);
                assert!(response.body().is_empty());
            }
            range::RangeRequest::Ranges(ranges) => {
                assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
                if let [(first, last)] = ranges[..] {
                    assert_eq!(
                        response.body(),
                        &entry.body.slice(range::slice(first, last))
                    );
                }
            }
            range::RangeRequest::Whole => unreachable!("checked above"),
        }
        return;
    }
    if not_modified {
        assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
        assert!(response.body().is_empty());
        let mut want = policy::not_modified_headers(&entry.headers);
        want.insert(header::AGE, HeaderValue::from(age.as_secs()));
        assert_eq!(headers, &want);
        for (name, value) in policy::not_modified_headers(&entry.headers).iter() {
            assert!(entry.headers.get_all(name).iter().any(|v| v == value));
        }
    } else {
        assert_eq!(response.status(), entry.status);
        assert_eq!(
            headers
                .get_all(header::CONTENT_LENGTH)
                .iter()
                .map(|v| v.to_str().unwrap_or_default().to_owned())
                .collect::<Vec<_>>(),
            vec![entry.body.len().to_string()]
        );
        let body = if head_only {
            Bytes::new()
        } else {
            entry.body.clone()
        };
        assert_eq!(response.body(), &body);
    }
}

/// Up to 8 fields named from `names` (or, rarely, any name), with values a peer would send
/// or arbitrary bytes.
fn header_map(u: &mut Unstructured<'_>, names: &[&'static str]) -> arbitrary::Result<HeaderMap> {
    let mut map = HeaderMap::new();
    let count = u.int_in_range(0..=8)?;
    for _ in 0..count {
        let name = if u.ratio(1, 16)? {
            match HeaderName::from_bytes(u.arbitrary::<&[u8]>()?) {
                Ok(name) => name,
                Err(_) => continue,
            }
        } else {
            HeaderName::from_static(u.choose(names)?)
        };
        if let Some(value) = field_value(u, &name)? {
            map.append(name, value);
        }
    }
    Ok(map)
}

fn field_value(
    u: &mut Unstructured<'_>,
    name: &HeaderName,
) -> arbitrary::Result<Option<HeaderValue>> {
    if u.ratio(1, 4)? {
        return Ok(HeaderValue::from_bytes(u.arbitrary::<&[u8]>()?).ok());
    }
    let text = match name.as_str() {
        "cache-control" => {
            let mut out = Vec::new();
            for _ in 0..u.int_in_range(1..=3)? {
                let mut directive = (*u.choose(DIRECTIVES)?).to_owned();
                if u.ratio(1, 2)? {
                    let seconds = u.int_in_range(0..=u64::from(u32::MAX) * 4)?;
                    directive = if u.ratio(1, 4)? {
                        format!("{directive}=\"{seconds}\"")
                    } else {
                        format!("{directive}={seconds}")
                    };
                }
                out.push(directive);
            }
            out.join(", ")
        }
        "expires" | "date" | "last-modified" | "if-modified-since" => {
            let offset = i64::from(u.arbitrary::<i32>()?);
            let secs = 1_700_000_000i64.saturating_add(offset).max(0);
            httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs as u64))
        }
        "age" | "content-length" => u.arbitrary::<u32>()?.to_string(),
        "vary" => {
            let mut out = Vec::new();
            for _ in 0..u.int_in_range(1..=3)? {
                out.push(*u.choose(VARY)?);
            }
            out.join(", ")
        }
        "etag" | "if-none-match" => (*u.choose(TAGS)?).to_owned(),
        "accept-encoding" => (*u.choose(&["gzip", "GZIP , br", "br", "gzip,br"])?).to_owned(),
        "content-range" => "bytes 0-1/2".to_owned(),
        _ => (*u.choose(&["x", "a=b", "text/html"])?).to_owned(),
    };
    Ok(HeaderValue::from_str(&text).ok())
}
