//! `Cache-Control` parsing (RFC 9111 §5.2): [`CacheControl`], the directives of a request or
//! response, and the delta-seconds and quoted-string syntax its arguments use.

use http::header::{self, HeaderMap};

use super::field::elements;

/// The largest delta-seconds value kept (RFC 9111 §1.2.2): larger ones clamp to it.
pub(super) const DELTA_SECONDS_MAX: u64 = 1 << 31;

/// Cache-Control directives of a request or response.
///
/// All `Cache-Control` field lines are combined; directive names are case-insensitive;
/// arguments may be tokens or quoted strings (RFC 9111 §5.2); unknown directives are ignored.
/// When a directive with an argument occurs more than once, the first valid occurrence is used
/// (RFC 9111 §4.2.1 allows that). A malformed delta-seconds makes that directive absent, except
/// `max-age` and `s-maxage`, which then read as 0 (an invalid freshness means stale, §4.2.1).
/// Delta-seconds beyond 2^31 clamp to 2^31 (§1.2.2).
///
/// `no_cache` and `private` are set by both their unqualified and their qualified
/// (`no-cache="field"`) forms: gatehouse treats the qualified forms like the unqualified ones,
/// which RFC 9111 §5.2.2.4 and §5.2.2.7 permit and which is always safe.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheControl {
    pub no_store: bool,
    pub no_cache: bool,
    pub private: bool,
    pub public: bool,
    pub must_revalidate: bool,
    pub proxy_revalidate: bool,
    pub must_understand: bool,
    pub max_age: Option<u64>,
    pub s_maxage: Option<u64>,
    pub stale_if_error: Option<u64>,
    pub stale_while_revalidate: Option<u64>,
    pub only_if_cached: bool,
}

impl CacheControl {
    /// Parses every `Cache-Control` field line of `headers`.
    pub fn parse(headers: &HeaderMap) -> Self {
        let mut cc = Self::default();
        for element in elements(headers, &header::CACHE_CONTROL) {
            let (name, argument) = match element.iter().position(|&b| b == b'=') {
                Some(i) => (&element[..i], Some(&element[i + 1..])),
                None => (element, None),
            };
            let name = String::from_utf8_lossy(name.trim_ascii()).to_ascii_lowercase();
            let argument = argument.and_then(|a| unquote(a.trim_ascii()));
            let delta = || argument.as_deref().and_then(delta_seconds);
            match name.as_str() {
                "no-store" => cc.no_store = true,
                "no-cache" => cc.no_cache = true,
                "private" => cc.private = true,
                "public" => cc.public = true,
                "must-revalidate" => cc.must_revalidate = true,
                "proxy-revalidate" => cc.proxy_revalidate = true,
                "must-understand" => cc.must_understand = true,
                "only-if-cached" => cc.only_if_cached = true,
                "max-age" => {
                    cc.max_age.get_or_insert(delta().unwrap_or(0));
                }
                "s-maxage" => {
                    cc.s_maxage.get_or_insert(delta().unwrap_or(0));
                }
                "stale-if-error" => cc.stale_if_error = cc.stale_if_error.or_else(delta),
                "stale-while-revalidate" => {
                    cc.stale_while_revalidate = cc.stale_while_revalidate.or_else(delta)
                }
                _ => {}
            }
        }
        cc
    }
}

/// A directive argument without its quotes and escapes; `None` for an unterminated quoted
/// string.
fn unquote(argument: &[u8]) -> Option<Vec<u8>> {
    let Some(inner) = argument.strip_prefix(b"\"") else {
        return Some(argument.to_vec());
    };
    let mut out = Vec::with_capacity(inner.len());
    let mut escaped = false;
    for (i, &b) in inner.iter().enumerate() {
        if escaped {
            out.push(b);
            escaped = false;
        } else if b == b'\\' {
            escaped = true;
        } else if b == b'"' {
            return inner[i + 1..].trim_ascii().is_empty().then_some(out);
        } else {
            out.push(b);
        }
    }
    None
}

/// RFC 9111 §1.2.2 delta-seconds: one or more digits, clamped to 2^31.
pub(super) fn delta_seconds(text: &[u8]) -> Option<u64> {
    if text.is_empty() || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let value = text.iter().fold(0u64, |value, &digit| {
        value
            .saturating_mul(10)
            .saturating_add(u64::from(digit - b'0'))
    });
    Some(value.min(DELTA_SECONDS_MAX))
}
