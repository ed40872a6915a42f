//! Tests of `Cache-Control` parsing (`directives.rs`).

use super::*;

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
