//! The units of nginx and HAProxy values, and how gatehouse writes them.
//!
//! nginx times are `500ms`, `30s`, `1m`, `1h30m`, or a bare number of seconds; sizes `4k`,
//! `1m`, or bytes (`ngx_parse_time`, `ngx_parse_size`). HAProxy times are a number with
//! `us`, `ms` (the default), `s`, `m`, `h`, `d`; sizes are bytes with an optional `k`, `m`, `g`.

use std::time::Duration;

/// An nginx time; `None` when it is not one (or uses a variable).
pub(crate) fn nginx_time(text: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let number: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (unit, len) = if rest.starts_with("ms") {
            (Duration::from_millis(1), 2)
        } else {
            match rest.chars().next() {
                None => (Duration::from_secs(1), 0),
                Some('s') => (Duration::from_secs(1), 1),
                Some('m') => (Duration::from_secs(60), 1),
                Some('h') => (Duration::from_secs(3600), 1),
                Some('d') => (Duration::from_secs(86_400), 1),
                Some('w') => (Duration::from_secs(7 * 86_400), 1),
                Some('M') => (Duration::from_secs(30 * 86_400), 1),
                Some('y') => (Duration::from_secs(365 * 86_400), 1),
                Some(_) => return None,
            }
        };
        rest = rest[len..].trim_start();
        total = total.checked_add(unit.checked_mul(u32::try_from(number).ok()?)?)?;
    }
    Some(total)
}

/// An nginx size in bytes.
pub(crate) fn nginx_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let (number, multiplier) = match text.chars().last()? {
        'k' | 'K' => (&text[..text.len() - 1], 1024),
        'm' | 'M' => (&text[..text.len() - 1], 1024 * 1024),
        'g' | 'G' => (&text[..text.len() - 1], 1024 * 1024 * 1024),
        _ => (text, 1),
    };
    number.parse::<u64>().ok()?.checked_mul(multiplier)
}

/// A HAProxy time (milliseconds without a unit).
pub(crate) fn haproxy_time(text: &str) -> Option<Duration> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let number: u64 = text[..digits].parse().ok()?;
    let unit = match &text[digits..] {
        "us" => return Some(Duration::from_micros(number)),
        "" | "ms" => Duration::from_millis(1),
        "s" => Duration::from_secs(1),
        "m" => Duration::from_secs(60),
        "h" => Duration::from_secs(3600),
        "d" => Duration::from_secs(86_400),
        _ => return None,
    };
    unit.checked_mul(u32::try_from(number).ok()?)
}

/// A HAProxy size in bytes.
pub(crate) fn haproxy_size(text: &str) -> Option<u64> {
    nginx_size(text)
}

/// A duration as gatehouse writes it: `"60s"`, `"1500ms"`.
pub(crate) fn duration(d: Duration) -> String {
    if d.subsec_millis() == 0 && d.as_secs() > 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// A size as gatehouse writes it: `"8KiB"`, `"1MiB"`, or bytes.
pub(crate) fn size(bytes: u64) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{}MiB", bytes >> 20)
    } else if bytes >= 1024 && bytes.is_multiple_of(1024) {
        format!("{}KiB", bytes >> 10)
    } else {
        format!("{bytes}B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nginx_units() {
        let s = Duration::from_secs;
        assert_eq!(nginx_time("60"), Some(s(60)));
        assert_eq!(nginx_time("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(nginx_time("1m30s"), Some(s(90)));
        assert_eq!(nginx_time("1h"), Some(s(3600)));
        assert_eq!(nginx_time("$t"), None);
        assert_eq!(nginx_time(""), None);
        assert_eq!(nginx_time("99999999999999999999"), None);
        assert_eq!(nginx_size("4k"), Some(4096));
        assert_eq!(nginx_size("1M"), Some(1 << 20));
        assert_eq!(nginx_size("512"), Some(512));
        assert_eq!(nginx_size("x"), None);
        assert_eq!(nginx_size(""), None);
    }

    #[test]
    fn haproxy_units() {
        assert_eq!(haproxy_time("5000"), Some(Duration::from_secs(5)));
        assert_eq!(haproxy_time("2s"), Some(Duration::from_secs(2)));
        assert_eq!(haproxy_time("1m"), Some(Duration::from_secs(60)));
        assert_eq!(haproxy_time("2x"), None);
        assert_eq!(haproxy_size("16384"), Some(16384));
    }

    #[test]
    fn gatehouse_units() {
        assert_eq!(duration(Duration::from_secs(60)), "60s");
        assert_eq!(duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(size(8192), "8KiB");
        assert_eq!(size(1 << 20), "1MiB");
        assert_eq!(size(1000), "1000B");
    }
}
