//! Who the client is: the peer of the connection (or the address its PROXY protocol header
//! names), unless that is one of `trusted_proxies`, in which case `X-Forwarded-For` is walked
//! from the right past trusted hops, as nginx's `real_ip_recursive on` does. The first
//! address not trusted is the client; when every hop is trusted, the leftmost.

use std::net::{IpAddr, SocketAddr};

use gatehouse_config::IpNet;
use http::HeaderMap;

// Its own name constant: `forward` sits in the same layer.
const X_FORWARDED_FOR: http::HeaderName = http::HeaderName::from_static("x-forwarded-for");

/// Whether `ip` is in one of the blocks.
pub fn is_trusted(trusted: &[IpNet], ip: IpAddr) -> bool {
    trusted.iter().any(|net| net.contains(ip))
}

/// The client's address for a request that arrived from `peer` (the connection's client,
/// after any PROXY header). From `X-Forwarded-For` the port is unknown: 0.
pub fn resolve(peer: SocketAddr, headers: &HeaderMap, trusted: &[IpNet]) -> SocketAddr {
    if trusted.is_empty() || !is_trusted(trusted, peer.ip()) {
        return peer;
    }
    let mut client = peer;
    // Several X-Forwarded-For lines are one list, in order: walk them all from the right.
    let values: Vec<&[u8]> = headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .map(http::HeaderValue::as_bytes)
        .collect();
    for value in values.iter().rev() {
        for entry in value.rsplit(|&b| b == b',') {
            let Some(ip) = parse_hop(entry) else {
                // Garbage (or a name, or `unknown`): nothing left of it can be believed.
                return client;
            };
            client = SocketAddr::new(ip, 0);
            if !is_trusted(trusted, ip) {
                return client;
            }
        }
    }
    client
}

/// One `X-Forwarded-For` entry: an IP address, possibly with a port (`1.2.3.4:5`,
/// `[2001:db8::1]:5`), as some proxies write them.
fn parse_hop(entry: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(entry).ok()?.trim();
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Some(addr.ip());
    }
    let bracketed = text.strip_prefix('[')?.strip_suffix(']')?;
    bracketed.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter()
            .map(|s| {
                let (addr, prefix) = s.split_once('/').unwrap();
                IpNet {
                    addr: addr.parse().unwrap(),
                    prefix: prefix.parse().unwrap(),
                }
            })
            .collect()
    }

    fn xff(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(X_FORWARDED_FOR, v.parse().unwrap());
        }
        headers
    }

    fn resolve_ip(peer: &str, values: &[&str], trusted: &[&str]) -> String {
        resolve(
            SocketAddr::new(peer.parse().unwrap(), 4000),
            &xff(values),
            &nets(trusted),
        )
        .ip()
        .to_string()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_says() {
        assert_eq!(resolve_ip("203.0.113.9", &["6.6.6.6"], &[]), "203.0.113.9");
        assert_eq!(
            resolve_ip("203.0.113.9", &["6.6.6.6"], &["10.0.0.0/8"]),
            "203.0.113.9"
        );
    }

    #[test]
    fn trusted_hops_are_walked_from_the_right_to_the_first_untrusted_one() {
        let trusted = ["10.0.0.0/8", "192.168.0.0/16"];
        // A client that sent its own X-Forwarded-For through two trusted proxies: the spoofed
        // leftmost entry is never reached.
        assert_eq!(
            resolve_ip(
                "10.0.0.1",
                &["6.6.6.6, 198.51.100.7, 192.168.1.1"],
                &trusted
            ),
            "198.51.100.7"
        );
        // The same list split over several lines.
        assert_eq!(
            resolve_ip(
                "10.0.0.1",
                &["6.6.6.6", "198.51.100.7", "192.168.1.1"],
                &trusted
            ),
            "198.51.100.7"
        );
        // Every hop trusted: the leftmost.
        assert_eq!(
            resolve_ip("10.0.0.1", &["10.9.9.9, 192.168.1.1"], &trusted),
            "10.9.9.9"
        );
        // No header: the trusted peer itself.
        assert_eq!(resolve_ip("10.0.0.1", &[], &trusted), "10.0.0.1");
    }

    #[test]
    fn ports_and_brackets_are_read_and_garbage_stops_the_walk() {
        let trusted = ["10.0.0.0/8"];
        assert_eq!(
            resolve_ip("10.0.0.1", &["198.51.100.7:5555"], &trusted),
            "198.51.100.7"
        );
        assert_eq!(
            resolve_ip("10.0.0.1", &["[2001:db8::7]:5555"], &trusted),
            "2001:db8::7"
        );
        assert_eq!(
            resolve_ip("10.0.0.1", &["2001:db8::7"], &trusted),
            "2001:db8::7"
        );
        // Garbage right of a real address: the last believable hop stands.
        assert_eq!(
            resolve_ip("10.0.0.1", &["198.51.100.7, unknown, 10.0.0.2"], &trusted),
            "10.0.0.2"
        );
        assert_eq!(resolve_ip("10.0.0.1", &["not-an-ip"], &trusted), "10.0.0.1");
        assert_eq!(
            resolve_ip("10.0.0.1", &["198.51.100.7,"], &trusted),
            "10.0.0.1"
        );
    }
}
