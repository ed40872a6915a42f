//! Parsers for the string values a config holds: durations, sizes, sf-tokens and names, and the
//! "did you mean" suggestion. Addresses (listen, DNS servers, upstream servers, TLS names) are
//! in `address`, a route's host and path in `route`, the values of upstream pools (CIDR blocks,
//! status lists, hash keys, health-check paths and hosts) in `pool`.
//!
//! Each parser is a pure function of one value and returns a [`Bad`] (what is wrong, what to
//! change) on failure. They know nothing about keys, spans or other values: `validate` adds the key
//! path and position, and does the cross-field checks.

use std::time::Duration;

mod address;
mod pool;
mod route;

use address::is_dns_name;
pub(crate) use address::{
    Scheme, addrs_clash, listen_addr, nameserver, server_url, tls_server_name,
};
pub(crate) use pool::{hash_key, health_path, host_header, ip_net, status_ranges};
pub(crate) use route::{host_match, route_path};

/// Why one value was refused: the message and the fix of a diagnostic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Bad {
    pub(crate) message: String,
    pub(crate) fix: String,
}

fn bad(message: impl Into<String>, fix: impl Into<String>) -> Bad {
    Bad {
        message: message.into(),
        fix: fix.into(),
    }
}

/// A longer timeout than this is certainly a typo, and would overflow `Instant` arithmetic.
const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// `"500ms"`, `"2s"`, `"5m"`, `"1h30m"` (anything `humantime` reads). Zero is accepted here; the
/// caller decides whether zero makes sense.
pub(crate) fn duration(s: &str) -> Result<Duration, Bad> {
    const FIX: &str = r#"write it like "500ms", "2s" or "5m""#;
    match humantime::parse_duration(s.trim()) {
        Ok(d) if d > MAX_DURATION => Err(bad(format!("{s:?} is longer than a year"), FIX)),
        Ok(d) => Ok(d),
        Err(humantime::DurationError::UnknownUnit { unit, .. }) if unit.is_empty() => Err(bad(
            format!("{s:?} has no unit"),
            format!(r#"add one, e.g. "{}s" or "{}ms""#, s.trim(), s.trim()),
        )),
        Err(_) => Err(bad(format!("{s:?} is not a duration"), FIX)),
    }
}

/// `"64KiB"`, `"1MiB"`, `"512B"`, `"8KB"` (KB = 1000, KiB = 1024; units are case-insensitive, a
/// space before the unit is allowed), or a number of bytes written as a string (`"512"`).
pub(crate) fn size(s: &str) -> Result<u64, Bad> {
    const FIX: &str = r#"write it like "64KiB", "1MiB" or "512B", or as a number of bytes"#;
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(digits);
    let multiplier: u64 = match unit.trim_start().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1000,
        "kib" => 1 << 10,
        "mb" => 1_000_000,
        "mib" => 1 << 20,
        "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        _ => return Err(bad(format!("{s:?} is not a size"), FIX)),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| bad(format!("{s:?} is not a size"), FIX))?;
    n.checked_mul(multiplier)
        .ok_or_else(|| bad(format!("{s:?} is far too large"), FIX))
}

/// An RFC 8941 §3.3.4 sf-token: starts with ALPHA or `*`, then tchar (RFC 9110 §5.6.2), `:` or `/`.
/// `Proxy-Status` member names are sf-tokens (RFC 9209 §2).
pub(crate) fn is_sf_token(s: &str) -> bool {
    let mut bytes = s.bytes();
    let Some(first) = bytes.next() else {
        return false;
    };
    (first.is_ascii_alphabetic() || first == b'*')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~:/".contains(&b))
}

/// Upstream names: letters, digits, `-` and `_` (they appear in logs, metrics labels and key paths).
pub(crate) fn is_upstream_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The candidate closest to `name` by edit distance, if it is close enough to be a likely typo.
pub(crate) fn closest<'c>(
    name: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<&'c str> {
    let name_lower = name.to_ascii_lowercase();
    let limit = (name.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| (edit_distance(&name_lower, &c.to_ascii_lowercase()), c))
        .filter(|&(d, _)| d <= limit)
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = Vec::with_capacity(b.len() + 1);
        cur.push(i + 1);
        for (j, &cb) in b.iter().enumerate() {
            let substitute = prev[j] + usize::from(ca != cb);
            cur.push(substitute.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(
            duration("5").map_err(|b| b.message),
            Err("\"5\" has no unit".into())
        );
        assert!(duration("soon").is_err());
        assert!(duration("400d").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(size("64KiB"), Ok(65536));
        assert_eq!(size("8KB"), Ok(8000));
        assert_eq!(size("1MiB"), Ok(1 << 20));
        assert_eq!(size("512B"), Ok(512));
        assert_eq!(size("512"), Ok(512));
        assert_eq!(size("64 kib"), Ok(65536));
        assert!(size("64 KiBs").is_err());
        assert!(size("1.5MiB").is_err());
        assert!(size("KiB").is_err());
        assert!(size("99999999999999999999GiB").is_err());
    }

    #[test]
    fn tokens_and_suggestions() {
        assert!(is_sf_token("gatehouse"));
        assert!(is_sf_token("*edge:1/a"));
        assert!(!is_sf_token("1edge"));
        assert!(!is_sf_token("edge proxy"));
        assert_eq!(closest("ap", ["api", "web"]), Some("api"));
        assert_eq!(closest("database", ["api", "web"]), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
