//! `Accept` negotiation of gatehouse's error pages.

use gatehouse_proxy::respond::{Format, negotiate};
use http::HeaderValue;

const MEDIA: [(Format, &str); 3] = [
    (Format::Html, "text/html"),
    (Format::Json, "application/problem+json"),
    (Format::Text, "text/plain"),
];

/// The input is a request's `Accept` value.
///
/// Checked: a value that is not text gets HTML; JSON or text is chosen only when a range that
/// can name it is there; ruling out a format that lost (`;q=0` before or after the others)
/// never changes the winner; the result is the same every time.
pub fn accept(data: &[u8]) {
    let Ok(value) = HeaderValue::from_bytes(data) else {
        return;
    };
    let format = negotiate(&value);
    assert_eq!(negotiate(&value), format);
    let Ok(text) = value.to_str() else {
        assert_eq!(format, Format::Html, "{value:?}");
        return;
    };
    let lower = text.to_ascii_lowercase();
    let named = match format {
        Format::Html => true,
        Format::Json => [
            "application/json",
            "application/problem+json",
            "application/*",
            "*/*",
        ]
        .iter()
        .any(|range| lower.contains(range)),
        Format::Text => ["text/plain", "text/*", "*/*"]
            .iter()
            .any(|range| lower.contains(range)),
    };
    assert!(named, "{format:?} for {text:?}");
    for (loser, media) in MEDIA {
        if loser == format {
            continue;
        }
        for ruled_out in [
            format!("{text}, {media};q=0"),
            format!("{media};q=0, {text}"),
        ] {
            if let Ok(value) = HeaderValue::from_str(&ruled_out) {
                assert_eq!(negotiate(&value), format, "{ruled_out:?} after {text:?}");
            }
        }
    }
}

/// The input is a request's `Accept-Encoding` lines (see `header_values`).
///
/// Checked: reading never panics; the choice is the same every time; a chosen coding is
/// acceptable (q > 0), weighs at least as much as every other one offered and at least as much
/// as identity; offered alone it is still chosen; offered in the reverse order, the choice
/// weighs the same.
pub fn accept_encoding(data: &[u8]) {
    use gatehouse_config::Encoding::{Brotli, Gzip, Zstd};
    use gatehouse_proxy::compress::Accepted;
    let Some(values) = crate::header_values(data) else {
        return;
    };
    let mut headers = http::HeaderMap::new();
    for value in values {
        headers.append(http::header::ACCEPT_ENCODING, value);
    }
    let accepted = Accepted::from_headers(&headers);
    let offered = [Zstd, Brotli, Gzip];
    let choice = accepted.choose(&offered);
    assert_eq!(accepted.choose(&offered), choice);
    let Some(winner) = choice else {
        return;
    };
    let weight = accepted.weight(winner);
    assert!(weight > 0, "{winner:?} chosen with q=0");
    assert!(
        weight >= accepted.identity_weight(),
        "{winner:?} below identity"
    );
    for other in offered {
        assert!(
            accepted.weight(other) <= weight,
            "{other:?} weighs more than {winner:?}"
        );
    }
    assert_eq!(accepted.choose(&[winner]), Some(winner));
    let reversed = [Gzip, Brotli, Zstd];
    let again = accepted.choose(&reversed);
    assert_eq!(again.map(|e| accepted.weight(e)), Some(weight));
}
