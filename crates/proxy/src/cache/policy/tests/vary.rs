//! Tests of variant selection with `Vary` (`vary.rs`).

use super::*;

// --- Vary ---

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
    stored.varied = varied_values(&stored.headers, &headers(request)).expect("no Vary: * in tests");
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
