//! `Accept` negotiation among the three error formats (RFC 9110 §12.5.1).
//!
//! Media ranges are ranked by their `q` weight; a more specific range beats a wildcard at the
//! same weight; ties go to HTML (what a browser gets by default). `application/json` counts as
//! asking for problem+json, which is a JSON document.

use http::HeaderValue;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Html,
    Json,
    Text,
}

const FORMATS: [(Format, &str); 3] = [
    (Format::Html, "text/html"),
    (Format::Json, "application/problem+json"),
    (Format::Text, "text/plain"),
];

/// The best format for these request headers; HTML when `Accept` is absent or names none of
/// ours (a 406 would hide the error itself).
///
/// Each format takes the weight of the most specific range that matches it (so
/// `text/html;q=0, text/*` rules HTML out); the highest weight wins, ties in the order of
/// [`FORMATS`].
pub fn negotiate(accept: &HeaderValue) -> Format {
    // Per format: (specificity, q) of the most specific matching range seen so far.
    let mut weights: [Option<(u8, u16)>; 3] = [None; 3];
    if let Ok(value) = accept.to_str() {
        for range in value.split(',') {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = parts
                .filter_map(|p| {
                    p.trim()
                        .strip_prefix("q=")
                        .or_else(|| p.trim().strip_prefix("Q="))
                })
                .find_map(parse_q)
                .unwrap_or(1000);
            for (slot, (format, name)) in weights.iter_mut().zip(FORMATS.iter()) {
                let specificity = match_range(&media, name, *format);
                if specificity > 0 && slot.is_none_or(|(best, _)| specificity > best) {
                    *slot = Some((specificity, q));
                }
            }
        }
    }
    let mut best = (Format::Html, 0u16);
    for (slot, (format, _)) in weights.iter().zip(FORMATS.iter()) {
        if let Some((_, q)) = slot
            && *q > best.1
        {
            best = (*format, *q);
        }
    }
    best.0
}

/// 0 = no match, 1 = `*/*`, 2 = `type/*`, 3 = exact.
fn match_range(media: &str, name: &str, format: Format) -> u8 {
    if media == name || (format == Format::Json && media == "application/json") {
        return 3;
    }
    if media == "*/*" {
        return 1;
    }
    match (media.strip_suffix("/*"), name.split_once('/')) {
        (Some(ty), Some((name_ty, _))) if ty == name_ty => 2,
        _ => 0,
    }
}

/// `q` values are `0`, `1` or up to three decimals (RFC 9110 §12.4.2); returns thousandths.
fn parse_q(text: &str) -> Option<u16> {
    let text = text.trim();
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole = match int {
        "0" => 0,
        "1" => 1000,
        _ => return None,
    };
    let mut thousandths = 0u16;
    for (i, digit) in frac.bytes().enumerate() {
        thousandths += u16::from(digit - b'0') * [100, 10, 1][i];
    }
    let q = whole + thousandths;
    (q <= 1000).then_some(q)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> Format {
        negotiate(&HeaderValue::from_str(value).unwrap())
    }

    #[test]
    fn defaults_to_html() {
        assert_eq!(accept(""), Format::Html);
        assert_eq!(accept("*/*"), Format::Html);
        assert_eq!(accept("image/png"), Format::Html);
    }

    #[test]
    fn json_variants() {
        assert_eq!(accept("application/json"), Format::Json);
        assert_eq!(accept("application/problem+json"), Format::Json);
        assert_eq!(accept("text/html;q=0.5, application/json"), Format::Json);
    }

    #[test]
    fn text_and_weights() {
        assert_eq!(accept("text/plain"), Format::Text);
        assert_eq!(accept("text/*"), Format::Html);
        assert_eq!(accept("text/html;q=0, text/*"), Format::Text);
        assert_eq!(
            accept("application/json;q=0.9, text/plain;q=0.95"),
            Format::Text
        );
        assert_eq!(
            accept("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
            Format::Html
        );
    }

    #[test]
    fn q_parsing() {
        assert_eq!(parse_q("0.5"), Some(500));
        assert_eq!(parse_q("1"), Some(1000));
        assert_eq!(parse_q("1.000"), Some(1000));
        assert_eq!(parse_q("1.5"), None);
        assert_eq!(parse_q("0.1234"), None);
    }
}
