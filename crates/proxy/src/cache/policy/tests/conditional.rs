//! Tests of revalidation and of the client's conditional requests (`conditional.rs`).

use super::*;

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
