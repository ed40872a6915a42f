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
