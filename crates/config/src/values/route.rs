//! Parsers for a route's values: `host` (exact or `*.suffix`) and `path` (a prefix in the
//! normal form requests are routed by).
//!
//! Like the rest of `values`, each is a pure function of one string.

use std::net::Ipv6Addr;

use super::{Bad, bad, is_dns_name};
use crate::model::HostMatch;

/// `route.host`: `example.com` → `Exact("example.com")`, `*.example.com` →
/// `Suffix(".example.com")`, lowercased. A bracketed IPv6 literal (`[::1]`) is an exact host.
pub(crate) fn host_match(s: &str) -> Result<HostMatch, Bad> {
    const FIX: &str = r#"write a host name like "example.com" or "*.example.com""#;
    let lower = s.to_ascii_lowercase();
    if lower.is_empty() {
        return Err(bad("host is empty", "remove `host` to match any host"));
    }
    if lower == "*" {
        return Err(bad(
            "\"*\" is not a host pattern",
            "remove `host` to match any host",
        ));
    }
    if let Some(inner) = lower.strip_prefix('[').and_then(|r| r.strip_suffix(']'))
        && inner.parse::<Ipv6Addr>().is_ok()
    {
        return Ok(HostMatch::Exact(lower));
    }
    let (wildcard, name) = match lower.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, lower.as_str()),
    };
    if name.contains('*') {
        return Err(bad(
            format!("{s:?} has a `*` that is not a leading \"*.\""),
            r#"only a leading "*." is allowed, e.g. "*.example.com""#,
        ));
    }
    let port_split = if name.starts_with('[') {
        name.rsplit_once("]:")
    } else {
        name.rsplit_once(':')
    };
    if let Some((host, port)) = port_split
        && !port.is_empty()
        && port.bytes().all(|b| b.is_ascii_digit())
    {
        let host = if wildcard {
            format!("*.{host}")
        } else {
            host.to_owned()
        };
        let host = if host.starts_with('[') {
            format!("{host}]")
        } else {
            host
        };
        return Err(bad(
            format!("{s:?} has a port"),
            format!("write \"{host}\": hosts are matched without the port"),
        ));
    }
    if name.ends_with('.') && is_dns_name(name.trim_end_matches('.')) {
        return Err(bad(
            format!("{s:?} ends with a dot"),
            format!("write \"{}\"", s.trim_end_matches('.')),
        ));
    }
    if !is_dns_name(name) {
        return Err(bad(format!("{s:?} is not a valid host name"), FIX));
    }
    Ok(if wildcard {
        HostMatch::Suffix(format!(".{name}"))
    } else {
        HostMatch::Exact(name.to_owned())
    })
}

/// `route.path`: must start with `/` and be a plain path (no query, fragment, spaces or controls).
pub(crate) fn route_path(s: &str) -> Result<(), Bad> {
    if !s.starts_with('/') {
        return Err(bad(
            format!("{s:?} does not start with \"/\""),
            format!("write \"/{}\"", s.trim_start_matches('/')),
        ));
    }
    if let Some(c) = s
        .chars()
        .find(|c| matches!(c, '?' | '#') || !c.is_ascii_graphic())
    {
        return Err(bad(
            format!("{s:?} contains {c:?}"),
            "a route path is a plain path prefix: no query, fragment, spaces or non-ASCII (percent-encode them)",
        ));
    }
    // Requests are routed by their path's normal form: a prefix written otherwise would
    // never match, or match what another route's prefix matches.
    match crate::route_path::normalize(s) {
        Ok(normal) if normal != s => Err(bad(
            format!("{s:?} is not in normal form (requests are routed by theirs)"),
            format!("write \"{normal}\""),
        )),
        Ok(_) => Ok(()),
        Err(crate::route_path::Unroutable::DotSegment) => Err(bad(
            format!("{s:?} has a . or .. segment, which no request's path is routed by"),
            "write the path with its dot segments resolved",
        )),
        Err(crate::route_path::Unroutable::BadPercent) => Err(bad(
            format!("{s:?} has a % not followed by two hex digits"),
            "percent-encode a literal % as %25",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        assert_eq!(
            host_match("*.Example.com"),
            Ok(HostMatch::Suffix(".example.com".into()))
        );
        assert_eq!(host_match("[::1]"), Ok(HostMatch::Exact("[::1]".into())));
        assert!(host_match("a.*.com").is_err());
        assert!(host_match("*example.com").is_err());
        assert!(host_match("example.com.").is_err());
        assert_eq!(
            host_match("*.example.com:8080").map_err(|b| b.fix),
            Err("write \"*.example.com\": hosts are matched without the port".into())
        );
    }
}
