//! Parsers for the string values a config holds: durations, sizes, addresses, route hosts and paths,
//! sf-tokens, and the "did you mean" suggestion. The values of upstream pools (CIDR blocks, status
//! lists, hash keys, health-check paths and hosts) are in `pool`.
//!
//! Each parser is a pure function of one value and returns a [`Bad`] (what is wrong, what to
//! change) on failure. They know nothing about keys, spans or other values: `validate` adds the key
//! path and position, and does the cross-field checks.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use crate::model::{HostMatch, ServerAddress};

mod pool;

pub(crate) use pool::{hash_key, health_path, host_header, ip_net, status_ranges};

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

/// A listen or admin address: an IP literal and a port (`127.0.0.1:8080`, `[::1]:8080`). Port 0
/// (any free port) is accepted.
pub(crate) fn listen_addr(s: &str) -> Result<SocketAddr, Bad> {
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        let example = SocketAddr::new(ip, 8080);
        return Err(bad(
            format!("{s:?} has no port"),
            format!("add one, e.g. \"{example}\""),
        ));
    }
    if let Some((host, port)) = s.rsplit_once(':')
        && port.parse::<u16>().is_ok()
        && !host.is_empty()
    {
        return Err(bad(
            format!("{s:?} is not an IP address and port"),
            format!(
                "listen on an IP, e.g. \"127.0.0.1:{port}\" (this machine only) or \"0.0.0.0:{port}\" (all interfaces)"
            ),
        ));
    }
    Err(bad(
        format!("{s:?} is not an IP address and port"),
        r#"write it like "127.0.0.1:8080" or "[::1]:8080""#,
    ))
}

/// Whether two listen addresses cannot both be bound: same port, and the same IP or one of them the
/// unspecified address of the same family. Port 0 never clashes (each bind gets its own port).
pub(crate) fn addrs_clash(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port()
        && a.port() != 0
        && (a.ip() == b.ip()
            || (a.is_ipv4() == b.is_ipv4() && (a.ip().is_unspecified() || b.ip().is_unspecified())))
}

/// A DNS server: `"ip:port"`, or a bare `"ip"` meaning port 53.
pub(crate) fn nameserver(s: &str) -> Result<SocketAddr, Bad> {
    let addr = match (s.parse::<SocketAddr>(), s.parse::<IpAddr>()) {
        (Ok(addr), _) => addr,
        (_, Ok(ip)) => SocketAddr::new(ip, 53),
        _ => {
            return Err(bad(
                format!("{s:?} is not an IP address"),
                r#"write it like "1.1.1.1", "10.0.0.2:53" or "[2606:4700::1111]:53" (name servers are given by IP)"#,
            ));
        }
    };
    if addr.port() == 0 {
        return Err(bad(
            format!("{s:?} has port 0"),
            "drop the port to use 53, or give the port the name server listens on",
        ));
    }
    Ok(addr)
}

/// How an upstream server is spoken to, when its address says so (`https://`, `http://`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
    Http,
    Https,
}

/// An upstream server as written in `servers`: `host:port`, or `https://host[:port]` /
/// `http://host[:port]` (port 443 / 80 when left out). The scheme is `None` when none is
/// written. Nothing may follow the host and port: a server is an address, not a URL prefix.
pub(crate) fn server_url(s: &str) -> Result<(ServerAddress, Option<Scheme>), Bad> {
    let Some((scheme_text, rest)) = s.split_once("://") else {
        return server_address(s).map(|a| (a, None));
    };
    let (scheme, default_port) = match scheme_text.to_ascii_lowercase().as_str() {
        "https" => (Scheme::Https, 443),
        "http" => (Scheme::Http, 80),
        _ => {
            return Err(bad(
                format!(
                    "{s:?} has the scheme {scheme_text:?}; servers are reached over http or https"
                ),
                format!("write \"https://{rest}\" (TLS) or \"http://{rest}\""),
            ));
        }
    };
    let written = if scheme == Scheme::Https {
        "https"
    } else {
        "http"
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, after) = rest.split_at(end);
    if !after.is_empty() {
        return Err(bad(
            format!("{s:?} has {after:?} after the host and port"),
            format!(
                "write \"{written}://{authority}\": a server is an address, and each request keeps its own path"
            ),
        ));
    }
    if authority.contains('@') {
        return Err(bad(
            format!("{s:?} has user information (\"...@\")"),
            "remove it: gatehouse does not log in to servers; write only the host and port",
        ));
    }
    if authority.is_empty() {
        return Err(bad(
            format!("{s:?} has no host"),
            format!("write it like \"{written}://app.internal\" or \"{written}://10.0.0.5:8443\""),
        ));
    }
    if authority.parse::<Ipv6Addr>().is_ok() {
        return Err(bad(
            format!("{s:?} is an IPv6 address without brackets"),
            format!("write \"{written}://[{authority}]\""),
        ));
    }
    let has_port = match authority.strip_prefix('[') {
        Some(bracketed) => bracketed.contains("]:"),
        None => authority.contains(':'),
    };
    let with_port = if has_port {
        authority.to_owned()
    } else {
        format!("{authority}:{default_port}")
    };
    parse_server(&with_port, s).map(|a| (a, Some(scheme)))
}

/// An upstream server: `host:port`, where host is an IP literal (`10.0.0.5`, `[::1]`) or a DNS
/// name (`app.internal`).
pub(crate) fn server_address(s: &str) -> Result<ServerAddress, Bad> {
    parse_server(s, s)
}

/// [`server_address`] of `s`, naming `shown` (what was written) in its messages.
fn parse_server(s: &str, shown: &str) -> Result<ServerAddress, Bad> {
    const FIX: &str = r#"write it like "127.0.0.1:3000", "app.internal:3000" or "[::1]:3000""#;
    if let Ok(addr) = s.parse::<SocketAddr>() {
        if addr.port() == 0 {
            return Err(bad(
                format!("{shown:?} has port 0"),
                "give the port the server listens on",
            ));
        }
        return Ok(ServerAddress {
            host: addr.ip().to_string(),
            port: addr.port(),
            ip: Some(addr.ip()),
        });
    }
    if s.parse::<Ipv6Addr>().is_ok() {
        return Err(bad(
            format!("{shown:?} is an IPv6 address without brackets and port"),
            format!("write it like \"[{s}]:3000\""),
        ));
    }
    let Some((host, port)) = s.rsplit_once(':') else {
        return Err(bad(
            format!("{shown:?} has no port"),
            format!("add the port the server listens on, e.g. \"{s}:3000\""),
        ));
    };
    if host.contains(':') {
        return Err(bad(
            format!("{shown:?} looks like an IPv6 address without brackets"),
            "put the address in brackets, e.g. \"[::1]:3000\"",
        ));
    }
    let port = match port.parse::<u16>() {
        Ok(0) => {
            return Err(bad(
                format!("{shown:?} has port 0"),
                "give the port the server listens on",
            ));
        }
        Ok(p) => p,
        Err(_) => {
            return Err(bad(format!("{shown:?} has an invalid port {port:?}"), FIX));
        }
    };
    if !is_dns_name(host) {
        return Err(bad(
            format!("{shown:?} has an invalid host name {host:?}"),
            FIX,
        ));
    }
    Ok(ServerAddress {
        host: host.to_ascii_lowercase(),
        port,
        ip: None,
    })
}

/// `tls_server_name`: a DNS name (stored lowercase) or an IP literal (IPv6 with or without
/// brackets, stored without), which is what rustls can send and verify.
pub(crate) fn tls_server_name(s: &str) -> Result<String, Bad> {
    const FIX: &str = "write the name the servers' certificates are issued for, e.g. \"api.internal\", or an IP address";
    let trimmed = s.trim();
    let unbracketed = trimmed
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(trimmed);
    if let Ok(ip) = unbracketed.parse::<IpAddr>() {
        return Ok(ip.to_string());
    }
    if trimmed.is_empty() {
        return Err(bad("the server name is empty", FIX));
    }
    if trimmed.contains('*') {
        return Err(bad(
            format!("{s:?} is a wildcard; a server name is the one name sent to the server"),
            FIX,
        ));
    }
    if let Some((host, port)) = trimmed.rsplit_once(':')
        && port.bytes().all(|b| b.is_ascii_digit())
        && !host.contains(':')
    {
        return Err(bad(
            format!("{s:?} has a port"),
            format!("write \"{host}\": the server name is matched without the port"),
        ));
    }
    let lower = trimmed.to_ascii_lowercase();
    if !is_dns_name(&lower) || rustls_pki_types::ServerName::try_from(lower.as_str()).is_err() {
        return Err(bad(format!("{s:?} is not a DNS name or IP address"), FIX));
    }
    Ok(lower)
}

/// Letters, digits, `-` and `_` in dot-separated labels of 1..=63 characters, 253 at most overall.
fn is_dns_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

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
    fn server_addresses() {
        let a = server_address("[::1]:3000").map_err(|b| b.message);
        assert_eq!(
            a.as_ref().map(ServerAddress::authority),
            Ok("[::1]:3000".into())
        );
        let a = server_address("App.Internal:3000").map_err(|b| b.message);
        assert_eq!(
            a,
            Ok(ServerAddress {
                host: "app.internal".into(),
                port: 3000,
                ip: None
            })
        );
        assert!(server_address("::1").is_err());
        assert!(server_address("::1:3000").is_err());
        assert!(server_address("app").is_err());
        assert!(server_address("app:0").is_err());
        assert!(server_address("a b:80").is_err());
    }

    #[test]
    fn server_urls() {
        let url = |s: &str| server_url(s).map(|(a, scheme)| (a.authority(), scheme));
        assert_eq!(
            url("https://App.Internal"),
            Ok(("app.internal:443".into(), Some(Scheme::Https)))
        );
        assert_eq!(
            url("http://10.0.0.5"),
            Ok(("10.0.0.5:80".into(), Some(Scheme::Http)))
        );
        assert_eq!(
            url("HTTPS://[::1]:8443"),
            Ok(("[::1]:8443".into(), Some(Scheme::Https)))
        );
        assert_eq!(url("a.internal:3000"), Ok(("a.internal:3000".into(), None)));
        let message = |s: &str| server_url(s).map_err(|b| b.message);
        assert_eq!(
            message("https://a.internal/"),
            Err("\"https://a.internal/\" has \"/\" after the host and port".into())
        );
        assert_eq!(
            message("https://a b"),
            Err("\"https://a b\" has an invalid host name \"a b\"".into())
        );
        assert!(message("https://user@a.internal").is_err());
        assert!(message("https://").is_err());
        assert!(message("https://a.internal:x").is_err());
    }

    #[test]
    fn tls_server_names() {
        assert_eq!(tls_server_name("API.internal"), Ok("api.internal".into()));
        assert_eq!(tls_server_name("10.0.0.5"), Ok("10.0.0.5".into()));
        assert_eq!(tls_server_name("[::1]"), Ok("::1".into()));
        assert!(tls_server_name("*.internal").is_err());
        assert!(tls_server_name("a..b").is_err());
        assert!(tls_server_name("api.internal:443").is_err());
    }

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

    #[test]
    fn clashes() {
        let a = |s: &str| {
            s.parse::<SocketAddr>()
                .unwrap_or_else(|e| panic!("{s}: {e}"))
        };
        assert!(addrs_clash(a("0.0.0.0:80"), a("127.0.0.1:80")));
        assert!(!addrs_clash(a("127.0.0.1:80"), a("127.0.0.2:80")));
        assert!(!addrs_clash(a("127.0.0.1:0"), a("127.0.0.1:0")));
        assert!(!addrs_clash(a("[::]:80"), a("127.0.0.1:80")));
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
