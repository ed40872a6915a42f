//! Whether a response's media type is one to compress: `Content-Type` against the configured
//! patterns (`type/subtype`, `type/*`, `type/*+suffix`; validated and lowercased by the config
//! crate), parameters such as `charset` ignored, case-insensitive (RFC 9110 §8.3.1).

use http::HeaderValue;

/// Whether `content_type` matches one of `patterns`.
pub fn type_matches(patterns: &[String], content_type: &HeaderValue) -> bool {
    let Ok(text) = content_type.to_str() else {
        return false;
    };
    let essence = text.split(';').next().unwrap_or("").trim();
    let Some((kind, sub)) = essence.split_once('/') else {
        return false;
    };
    let (kind, sub) = (kind.trim(), sub.trim());
    if kind.is_empty() || sub.is_empty() {
        return false;
    }
    patterns.iter().any(|pattern| {
        let Some((p_kind, p_sub)) = pattern.split_once('/') else {
            return false;
        };
        if !p_kind.eq_ignore_ascii_case(kind) {
            return false;
        }
        match p_sub.strip_prefix('*') {
            Some("") => true,
            Some(suffix) => {
                sub.len() > suffix.len()
                    && sub.is_char_boundary(sub.len() - suffix.len())
                    && sub[sub.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
            }
            None => p_sub.eq_ignore_ascii_case(sub),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patterns() -> Vec<String> {
        [
            "text/*",
            "application/json",
            "application/*+json",
            "image/svg+xml",
        ]
        .iter()
        .map(|&s| s.to_owned())
        .collect()
    }

    fn matches(content_type: &str) -> bool {
        type_matches(&patterns(), &HeaderValue::from_str(content_type).unwrap())
    }

    #[test]
    fn exact_wildcard_and_suffix() {
        assert!(matches("text/html"));
        assert!(matches("text/event-stream"));
        assert!(matches("application/json"));
        assert!(matches("application/problem+json"));
        assert!(matches("image/svg+xml"));
        assert!(!matches("image/png"));
        assert!(!matches("application/octet-stream"));
        assert!(!matches("application/jsonx"));
        assert!(!matches("application/+json"));
        assert!(!matches("texts/html"));
    }

    #[test]
    fn parameters_and_case_ignored() {
        assert!(matches("text/html; charset=utf-8"));
        assert!(matches("Application/JSON;charset=UTF-8"));
        assert!(matches(" application/json ; q=1"));
        assert!(matches("IMAGE/SVG+XML"));
    }

    #[test]
    fn malformed_never_matches() {
        for bad in ["", "text", "/html", "text/", ";", "/", "text/;charset=x"] {
            assert!(!matches(bad), "{bad:?}");
        }
        let bytes = HeaderValue::from_bytes(b"text/\xffhtml").unwrap();
        assert!(!type_matches(&patterns(), &bytes));
    }
}
