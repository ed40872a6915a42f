//! Tests of targeted cache-control fields (`targeted.rs`).

use super::*;

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
