//! Parsers for addresses: listen and admin addresses, DNS servers, upstream servers (with
//! their scheme) and `tls_server_name`, and the DNS-name check the route and pool values share.
//!
//! Like the rest of `values`, each is a pure function of one string.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use super::{Bad, bad};
use crate::model::ServerAddress;

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
pub(super) fn is_dns_name(s: &str) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
