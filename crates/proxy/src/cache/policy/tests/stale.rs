//! Tests of stale-if-error and stale-while-revalidate (`stale.rs`).

use super::*;

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
