//! Parsers for the values of upstream pools: CIDR blocks (`deny_addresses`), status code lists
//! (`health.expect_status`), hash keys (`hash_key`), health-check paths and `Host` values.
//!
//! Like the rest of `values`, each is a pure function of one string; keys, positions and
//! cross-field checks (host bits set in a block, a server inside a denied block) are `validate`'s.

use std::net::{IpAddr, Ipv6Addr};

use super::{Bad, bad, is_dns_name};
use crate::model::{HashKey, IpNet, StatusRange};

/// A `deny_addresses` entry: `"10.0.0.0/8"`, `"fd00::/8"`, or a bare address (a /32 or /128).
/// The block is returned as written: host bits set after the prefix are kept, so the caller can
/// warn about them and [`IpNet::trunc`] it.
pub(crate) fn ip_net(s: &str) -> Result<IpNet, Bad> {
    const FIX: &str =
        r#"write a CIDR block like "10.0.0.0/8" or "fd00::/8", or one address like "10.1.2.3""#;
    let (addr, prefix) = match s.split_once('/') {
        Some((addr, prefix)) => (addr, Some(prefix)),
        None => (s, None),
    };
    let Ok(addr) = addr.parse::<IpAddr>() else {
        return Err(bad(
            format!("{s:?} is not an IP address or CIDR block"),
            FIX,
        ));
    };
    let max = IpNet::max_prefix(addr);
    let prefix = match prefix {
        None => max,
        Some(p) if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) => {
            return Err(bad(
                format!("{s:?} has an invalid prefix length {p:?}"),
                FIX,
            ));
        }
        Some(p) => match p.parse::<u8>() {
            Ok(n) if n <= max => n,
            Ok(_) | Err(_) => {
                let family = if max == 32 { "IPv4" } else { "IPv6" };
                return Err(bad(
                    format!("{s:?} has a prefix longer than {max} bits"),
                    format!("an {family} prefix length is 0 to {max}"),
                ));
            }
        },
    };
    Ok(IpNet { addr, prefix })
}

/// `health.expect_status`: status codes and inclusive ranges separated by commas,
/// `"200-399"` or `"200,204,300-399"`; each code 100 to 599.
pub(crate) fn status_ranges(s: &str) -> Result<Vec<StatusRange>, Bad> {
    const FIX: &str =
        r#"write codes and ranges separated by commas, e.g. "200-399" or "200,204,300-399""#;
    let code = |c: &str| -> Result<u16, Bad> {
        if let [class @ b'1'..=b'5', b'x' | b'X', b'x' | b'X'] = c.as_bytes() {
            let class = char::from(*class);
            return Err(bad(
                format!("{c:?} in {s:?} is not a status code"),
                format!("write the class as a range: \"{class}00-{class}99\""),
            ));
        }
        match c.parse::<u16>() {
            Ok(n) if (100..=599).contains(&n) && c.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
            Ok(_) | Err(_) => Err(bad(
                format!("{c:?} in {s:?} is not a status code from 100 to 599"),
                FIX,
            )),
        }
    };
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim) {
        if part.is_empty() {
            return Err(bad(format!("{s:?} has an empty entry"), FIX));
        }
        let (low, high) = match part.split_once('-') {
            Some((low, high)) => (code(low.trim())?, code(high.trim())?),
            None => {
                let n = code(part)?;
                (n, n)
            }
        };
        if low > high {
            return Err(bad(
                format!("{part:?} in {s:?} is a range whose start is above its end"),
                format!("write \"{high}-{low}\""),
            ));
        }
        out.push(StatusRange { low, high });
    }
    Ok(out)
}

/// `hash_key`: `"client_ip"`, `"header:NAME"` (stored lowercase) or `"cookie:NAME"`.
pub(crate) fn hash_key(s: &str) -> Result<HashKey, Bad> {
    if s == "client_ip" {
        return Ok(HashKey::ClientIp);
    }
    let (kind, name, example) = match s.split_once(':') {
        Some(("header", name)) => ("header", name, "X-User"),
        Some(("cookie", name)) => ("cookie", name, "session"),
        _ => {
            return Err(bad(
                format!("{s:?} is not a hash key"),
                r#"use "client_ip", "header:NAME" (e.g. "header:X-User") or "cookie:NAME" (e.g. "cookie:session")"#,
            ));
        }
    };
    if name.is_empty() {
        return Err(bad(
            format!("{s:?} names no {kind}"),
            format!("write the {kind} name after the colon, e.g. \"{kind}:{example}\""),
        ));
    }
    if !is_token(name) {
        return Err(bad(
            format!("{name:?} is not a valid {kind} name"),
            "use letters, digits and !#$%&'*+-.^_`|~ only (no spaces or colons)",
        ));
    }
    Ok(match kind {
        "header" => HashKey::Header(name.to_ascii_lowercase()),
        _ => HashKey::Cookie(name.to_owned()),
    })
}

/// `health.path`: starts with `/`; visible ASCII only, no fragment. A query is allowed.
pub(crate) fn health_path(s: &str) -> Result<String, Bad> {
    if !s.starts_with('/') {
        return Err(bad(
            format!("{s:?} does not start with \"/\""),
            format!("write \"/{}\"", s.trim_start_matches('/')),
        ));
    }
    if let Some(c) = s.chars().find(|c| *c == '#' || !c.is_ascii_graphic()) {
        return Err(bad(
            format!("{s:?} contains {c:?}"),
            "write a plain path (a query is allowed): no fragment, spaces or non-ASCII (percent-encode them)",
        ));
    }
    Ok(s.to_owned())
}

/// `health.host`: a `Host` header value (RFC 9110 §7.2): a host name or IP, IPv6 in brackets,
/// optionally `:port`.
pub(crate) fn host_header(s: &str) -> Result<String, Bad> {
    const FIX: &str = r#"write a host name, optionally with a port, e.g. "api.internal" or "api.internal:8080" ("[::1]:8080" for IPv6)"#;
    let invalid = || bad(format!("{s:?} is not a valid Host header value"), FIX);
    let port = if let Some(rest) = s.strip_prefix('[') {
        let (inner, after) = rest.split_once(']').ok_or_else(invalid)?;
        if inner.parse::<Ipv6Addr>().is_err() {
            return Err(invalid());
        }
        match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or_else(invalid)?),
        }
    } else {
        let (host, port) = match s.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (s, None),
        };
        if host.contains(':') {
            return Err(bad(
                format!("{s:?} looks like an IPv6 address without brackets"),
                "put the address in brackets, e.g. \"[::1]\" or \"[::1]:8080\"",
            ));
        }
        if !is_dns_name(host) {
            return Err(invalid());
        }
        port
    };
    if let Some(port) = port
        && (port.is_empty()
            || !port.bytes().all(|b| b.is_ascii_digit())
            || port.parse::<u16>().is_err())
    {
        return Err(bad(format!("{s:?} has an invalid port {port:?}"), FIX));
    }
    Ok(s.to_owned())
}

/// An RFC 9110 §5.6.2 token (header field names; RFC 6265 cookie names are tokens too).
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        ip_net(s).unwrap_or_else(|b| panic!("{s}: {}", b.message))
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn cidr_blocks() {
        assert_eq!(net("10.1.2.3").prefix, 32);
        assert_eq!(net("fd00::1").prefix, 128);
        assert_eq!(net("169.254.0.0/16").prefix, 16);
        assert_eq!(net("::/0").prefix, 0);
        // Host bits are kept for the caller to warn about; trunc clears them.
        assert_eq!(net("10.1.2.3/8").addr, ip("10.1.2.3"));
        assert_eq!(net("10.1.2.3/8").trunc(), net("10.0.0.0/8"));
        assert_eq!(net("fd12:3456::1/8").trunc().to_string(), "fd00::/8");
        assert_eq!(net("10.1.2.3/0").trunc().to_string(), "0.0.0.0/0");
        let message = |s: &str| ip_net(s).map_err(|b| b.message);
        assert_eq!(
            message("10.0.0.0/33"),
            Err("\"10.0.0.0/33\" has a prefix longer than 32 bits".into())
        );
        assert!(message("fd00::/129").is_err());
        assert!(message("fd00::/300").is_err());
        assert!(message("10.0.0.0/").is_err());
        assert!(message("10.0.0.0/-1").is_err());
        assert!(message("10.0.0/8").is_err());
        assert!(message("[fd00::]/8").is_err());
        assert!(message("localhost").is_err());
    }

    #[test]
    fn containment() {
        let link_local = net("169.254.0.0/16");
        assert!(link_local.contains(ip("169.254.169.254")));
        assert!(!link_local.contains(ip("169.255.0.1")));
        // IPv4-mapped IPv6 addresses are checked against IPv4 blocks...
        assert!(link_local.contains(ip("::ffff:169.254.1.1")));
        assert!(!link_local.contains(ip("::ffff:10.0.0.1")));
        // ...but other IPv6 addresses never are.
        assert!(!link_local.contains(ip("fe80::1")));
        assert!(!link_local.contains(ip("::a9fe:101")));
        // A mapped IPv6 block contains the plain IPv4 addresses it maps.
        let mapped = net("::ffff:10.0.0.0/104");
        assert!(mapped.contains(ip("10.9.9.9")));
        assert!(!mapped.contains(ip("11.0.0.1")));
        // Other IPv6 blocks, even ::/0, contain no IPv4 address.
        assert!(net("::/0").contains(ip("fd00::1")));
        assert!(!net("::/0").contains(ip("10.0.0.1")));
        assert!(!net("fd00::/8").contains(ip("10.0.0.1")));
        let ula = net("fd00::/8");
        assert!(ula.contains(ip("fd12::1")));
        assert!(!ula.contains(ip("fe80::1")));
        // Single addresses and the whole space.
        assert!(net("10.1.2.3").contains(ip("10.1.2.3")));
        assert!(!net("10.1.2.3").contains(ip("10.1.2.4")));
        assert!(net("0.0.0.0/0").contains(ip("203.0.113.9")));
        assert!(net("::1").contains(ip("::1")));
        // A prefix longer than the family's (never built by validation) does not panic.
        let odd = IpNet {
            addr: ip("10.0.0.1"),
            prefix: 40,
        };
        assert!(odd.contains(ip("10.0.0.1")));
        assert!(!odd.contains(ip("10.0.0.2")));
    }

    #[test]
    fn status_lists() {
        let r = |low, high| StatusRange { low, high };
        assert_eq!(status_ranges("200-399"), Ok(vec![r(200, 399)]));
        assert_eq!(
            status_ranges("200, 204 ,300 - 399"),
            Ok(vec![r(200, 200), r(204, 204), r(300, 399)])
        );
        let fail = |s: &str| status_ranges(s).map_err(|b| (b.message, b.fix));
        assert!(fail("").is_err());
        assert!(fail("200,").is_err());
        assert!(fail("99").is_err());
        assert!(fail("600").is_err());
        assert!(fail("+200").is_err());
        assert!(fail("200-").is_err());
        assert_eq!(
            fail("399-200").map_err(|e| e.1),
            Err("write \"200-399\"".into())
        );
        assert_eq!(
            fail("2xx").map_err(|e| e.1),
            Err("write the class as a range: \"200-299\"".into())
        );
        assert!(r(200, 399).contains(204));
        assert!(!r(200, 399).contains(404));
    }

    #[test]
    fn hash_keys() {
        assert_eq!(hash_key("client_ip"), Ok(HashKey::ClientIp));
        assert_eq!(
            hash_key("header:X-User"),
            Ok(HashKey::Header("x-user".into()))
        );
        assert_eq!(
            hash_key("cookie:Session"),
            Ok(HashKey::Cookie("Session".into()))
        );
        let message = |s: &str| hash_key(s).map_err(|b| b.message);
        assert_eq!(
            message("header:"),
            Err("\"header:\" names no header".into())
        );
        assert!(message("cookie:").is_err());
        assert!(message("header:X User").is_err());
        assert!(message("header:a:b").is_err());
        assert!(message("ip").is_err());
        assert!(message("Header:X").is_err());
    }

    #[test]
    fn health_paths_and_hosts() {
        assert_eq!(health_path("/ping?full=1"), Ok("/ping?full=1".into()));
        assert!(health_path("ping").is_err());
        assert!(health_path("/a b").is_err());
        assert!(health_path("/a#b").is_err());
        for ok in [
            "api.internal",
            "api.internal:8080",
            "10.0.0.1",
            "10.0.0.1:80",
            "[::1]",
            "[::1]:8080",
        ] {
            assert_eq!(host_header(ok), Ok(ok.to_owned()));
        }
        for bad in [
            "",
            "api internal",
            "api.internal:",
            "api.internal:99999",
            "::1",
            "[::1",
            "[nope]",
            "[::1]x",
            "http://api",
        ] {
            assert!(host_header(bad).is_err(), "{bad}");
        }
    }
}
