//! Check the request: the limits gatehouse applies itself (hyper answers only what it cannot
//! parse at all), loop detection, and the client's side of an upgrade taken before the request
//! is taken apart.

use http::header;
use http::request::Parts;
use http::{Request, StatusCode, Version};

use super::{Pipeline, UpgradeRequest};
use crate::client_body::{ClientBody, ClientUpgrade};
use crate::failure::{Failure, FailureKind, Phase};
use crate::forward;

/// Takes the request apart into its head, its body and, for an upgrade, the client's side of
/// the connection.
///
/// An upgrade needs the engine's handle on the client connection, which lives in the
/// request's extensions: taken now, before the request is taken apart. Only HTTP/1.1 has Upgrade
/// (an h2 request carries no such handle); any other request asking for one is forwarded
/// as an ordinary request, Upgrade and Connection stripped like all hop-by-hop fields.
pub(super) fn take_apart(
    mut req: Request<ClientBody>,
) -> (Parts, ClientBody, Option<UpgradeRequest>) {
    let protocols =
        forward::upgrade_protocols(req.headers()).filter(|_| req.version() == Version::HTTP_11);
    let client_upgrade = protocols
        .is_some()
        .then(|| ClientUpgrade::take(&mut req))
        .flatten();
    let upgrade = protocols
        .zip(client_upgrade)
        .map(|(protocols, client)| UpgradeRequest { client, protocols });
    let (parts, body) = req.into_parts();
    (parts, body, upgrade)
}

/// Makes `Host` name what the request target names, so that routing, the cache key,
/// X-Forwarded-Host and the upstream all see one host.
///
/// - HTTP/1.x absolute-form (`GET http://a.example/x`, RFC 9112 §3.2.2): the received Host is
///   ignored and replaced by the target's authority; otherwise a `Host: b.example` beside it
///   would route, or key a cached copy, by a host the URL does not name.
/// - HTTP/2: `:authority` becomes Host when there is none; a Host that names another host than
///   `:authority` is malformed (RFC 9113 §8.3.1) and refused.
///
/// A target with userinfo (`http://user@host/`) is refused (RFC 9110 §4.2.4).
fn host_from_target(parts: &mut Parts) -> Result<(), Failure> {
    let Some(authority) = parts.uri.authority() else {
        return Ok(());
    };
    if authority.as_str().contains('@') {
        return Err(Failure::client(
            StatusCode::BAD_REQUEST,
            "request target has userinfo (user@host), which HTTP forbids (RFC 9110 §4.2.4)",
        ));
    }
    let Ok(target_host) = header::HeaderValue::from_str(authority.as_str()) else {
        return Err(Failure::client(
            StatusCode::BAD_REQUEST,
            "request target's authority is not a valid Host",
        ));
    };
    if parts.version == Version::HTTP_2
        && let Some(host) = parts.headers.get(header::HOST)
        && !same_authority(
            host.as_bytes(),
            target_host.as_bytes(),
            parts.uri.scheme_str(),
        )
    {
        return Err(Failure::client(
            StatusCode::BAD_REQUEST,
            "Host names another host than :authority (RFC 9113 §8.3.1)",
        ));
    }
    parts.headers.insert(header::HOST, target_host);
    Ok(())
}

/// Whether Host and `:authority` name one entity once normalized (RFC 9113 §8.3.1, RFC 3986
/// §6.2.3): case aside, and with the scheme's default port (or an empty one) left out, so
/// `Host: a.example:443` goes with `:authority: a.example` on an `https` request.
fn same_authority(host: &[u8], authority: &[u8], scheme: Option<&str>) -> bool {
    let default_port = if scheme.is_some_and(|s| s.eq_ignore_ascii_case("https")) {
        443
    } else {
        80
    };
    let (host_name, host_port) = host_and_port(host, default_port);
    let (authority_name, authority_port) = host_and_port(authority, default_port);
    host_name.eq_ignore_ascii_case(authority_name) && host_port == authority_port
}

/// `value`'s host and its port as a number (the default when it has none or an empty one; the
/// bytes as they are when they are not digits, which then only match themselves).
fn host_and_port(value: &[u8], default_port: u32) -> (&[u8], Result<u32, &[u8]>) {
    // The port follows the last colon, unless that colon is inside an IPv6 literal.
    match value.iter().rposition(|&b| b == b':') {
        Some(colon) if !value[colon..].contains(&b']') => {
            let port = &value[colon + 1..];
            let number = if port.is_empty() {
                Ok(default_port)
            } else if port.iter().all(u8::is_ascii_digit) {
                Ok(port.iter().fold(0u32, |n, &d| {
                    n.saturating_mul(10).saturating_add(u32::from(d - b'0'))
                }))
            } else {
                Err(port)
            };
            (&value[..colon], number)
        }
        _ => (value, Ok(default_port)),
    }
}

/// Whether `value` is a valid Host: `uri-host [ ":" port ]` (RFC 9112 §3.2, RFC 3986 §3.2.2),
/// or empty (a target URI without an authority). A server must answer 400 to any other (RFC
/// 9112 §3.2): a space, `/`, `@` or `,` in it would reach routing, the cache key,
/// X-Forwarded-Host and the upstream as a host that no URI names.
fn valid_host(value: &[u8]) -> bool {
    let (host, port) = if let Some(literal) = value.strip_prefix(b"[") {
        // IP-literal: an IPv6 address (or IPvFuture), then the port, if any.
        let Some(end) = literal.iter().position(|&b| b == b']') else {
            return false;
        };
        let inside = &literal[..end];
        if inside.is_empty()
            || !inside
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || b":.-_~!$&'()*+,;=".contains(&b))
        {
            return false;
        }
        match &literal[end + 1..] {
            [] => return true,
            [b':', port @ ..] => (&[][..], port),
            _ => return false,
        }
    } else {
        match value.iter().position(|&b| b == b':') {
            Some(colon) => (&value[..colon], &value[colon + 1..]),
            None => (value, &[][..]),
        }
    };
    let mut rest = host;
    while let Some((&b, tail)) = rest.split_first() {
        rest = tail;
        if b == b'%' {
            // pct-encoded: two hex digits.
            match rest {
                [h, l, tail @ ..] if h.is_ascii_hexdigit() && l.is_ascii_hexdigit() => rest = tail,
                _ => return false,
            }
        } else if !REG_NAME[usize::from(b)] {
            return false;
        }
    }
    // RFC 3986 allows any digits (or none); a TCP port is at most 65535.
    port.iter().all(u8::is_ascii_digit)
        && (port.len() < 5 || (port.len() == 5 && port <= b"65535".as_slice()))
}

/// The bytes of a reg-name (RFC 3986 §3.2.2: unreserved and sub-delims), looked up per byte,
/// less `,`: a comma would make the Host read as a list wherever a field is split on commas
/// (X-Forwarded-Host, a cache key), and no DNS name has one.
const REG_NAME: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric()
            || matches!(c, b'-' | b'.' | b'_' | b'~')
            || matches!(
                c,
                b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b';' | b'='
            );
        b += 1;
    }
    table
};

/// The request target's form fits the method (RFC 9112 §3.2): authority-form (`host:port`)
/// only for CONNECT, asterisk-form (`*`) only for OPTIONS, and otherwise origin-form (a path
/// from `/`) or absolute-form. Any other would be routed by a host or path it does not name.
///
/// CONNECT itself is a forward proxy's method: a reverse proxy opens no tunnels to hosts a
/// client names, so it gets 501 (RFC 9110 §9.1, a method the server does not implement),
/// not a 404 from a route that happened not to match.
fn check_target(parts: &Parts) -> Result<(), Failure> {
    let uri = &parts.uri;
    let refused = |why: &str| Err(Failure::client(StatusCode::BAD_REQUEST, why.to_owned()));
    if parts.method == http::Method::CONNECT {
        return Err(Failure::client(
            StatusCode::NOT_IMPLEMENTED,
            "CONNECT is not implemented: gatehouse is a reverse proxy and opens no tunnels to \
             hosts a client names",
        ));
    }
    // Before the scheme: an HTTP/2 request has one (and an authority) whatever its `:path`.
    if uri.path() == "*" && parts.method != http::Method::OPTIONS {
        return refused("request target * is only for OPTIONS (RFC 9112 §3.2.4)");
    }
    if let Some(scheme) = uri.scheme_str() {
        // An absolute-form target names a resource gatehouse serves over HTTP; `ftp://` or
        // any other scheme would be answered as if it were `http://`.
        if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
            return refused("request target's scheme is neither http nor https");
        }
        return Ok(());
    }
    if uri.authority().is_some() {
        // (CONNECT, the one method that may use it, was answered above.)
        return refused(
            "request target is in authority-form (host:port), which only CONNECT may use \
             (RFC 9112 §3.2.3)",
        );
    }
    match uri.path() {
        "*" => Ok(()),
        path if path.starts_with('/') => Ok(()),
        _ => refused("request target is neither a path from / nor an absolute URI (RFC 9112 §3.2)"),
    }
}

impl Pipeline<'_> {
    /// Limits gatehouse applies itself, answered with the fitting 4xx (the engines answer only
    /// what they cannot parse at all), and loop detection.
    pub(super) fn check_request(&self, parts: &mut http::request::Parts) -> Result<(), Failure> {
        let limits = &self.snapshot.config.server;
        let target_len = parts.uri.path_and_query().map_or(0, |pq| pq.as_str().len());
        if target_len > limits.max_uri_length {
            return Err(Failure::client(
                StatusCode::URI_TOO_LONG,
                format!(
                    "request target is {target_len} bytes; max_uri_length is {}",
                    limits.max_uri_length
                ),
            ));
        }
        // One pass: the section's size, and (HTTP/2 only) the first field whose value starts
        // or ends with whitespace (RFC 9113 §8.2.1: malformed, and a proxy must not forward it;
        // HTTP/1.1 parsing trims it).
        let check_padding = parts.version == Version::HTTP_2;
        let mut header_size = 0;
        let mut padded = None;
        for (name, value) in &parts.headers {
            header_size += name.as_str().len() + value.len() + 4;
            let bytes = value.as_bytes();
            if check_padding
                && padded.is_none()
                && (matches!(bytes.first(), Some(b' ' | b'\t'))
                    || matches!(bytes.last(), Some(b' ' | b'\t')))
            {
                padded = Some(name);
            }
        }
        if header_size > limits.max_request_header_size {
            return Err(Failure::client(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                format!(
                    "request header section is {header_size} bytes; max_request_header_size is {}",
                    limits.max_request_header_size
                ),
            ));
        }
        // RFC 9112 §3.2: a server MUST answer 400 to an HTTP/1.1 request without exactly one
        // Host; more than one is refused in any version (which would the route follow?).
        let hosts = parts.headers.get_all(header::HOST).iter().count();
        if hosts > 1 || (parts.version == Version::HTTP_11 && hosts == 0) {
            return Err(Failure::client(
                StatusCode::BAD_REQUEST,
                if hosts == 0 {
                    "HTTP/1.1 request without a Host header"
                } else {
                    "request with several Host headers"
                },
            ));
        }
        // RFC 9112 §6.1: gatehouse decodes only chunked; a request with any other transfer
        // coding cannot be forwarded faithfully once Transfer-Encoding (hop-by-hop) is removed.
        if let Some(coding) = parts
            .headers
            .get_all(header::TRANSFER_ENCODING)
            .iter()
            .flat_map(|v| v.to_str().unwrap_or("?").split(','))
            .map(str::trim)
            .find(|c| !c.eq_ignore_ascii_case("chunked"))
        {
            let mut failure = Failure::client(
                StatusCode::NOT_IMPLEMENTED,
                format!(
                    "request uses transfer coding {coding:?}, which gatehouse does not implement"
                ),
            );
            failure.params.coding = Some(coding.to_ascii_lowercase());
            return Err(failure);
        }
        // RFC 9112 §6.1: both framings at once is a smuggling vector; refuse, never forward.
        // (The HTTP/1.1 engine refuses such a head before it is a request, and HTTP/2 has no
        // Transfer-Encoding; this keeps the rule for any engine.)
        if parts.headers.contains_key(header::TRANSFER_ENCODING)
            && parts.headers.contains_key(header::CONTENT_LENGTH)
        {
            return Err(Failure::client(
                StatusCode::BAD_REQUEST,
                "request has both Transfer-Encoding and Content-Length (RFC 9112 §6.1)",
            ));
        }
        if let Some(name) = padded {
            return Err(Failure::client(
                StatusCode::BAD_REQUEST,
                format!(
                    "field {name} has whitespace at the start or end of its value, which HTTP/2 \
                     forbids (RFC 9113 §8.2.1)"
                ),
            ));
        }
        check_target(parts)?;
        host_from_target(parts)?;
        match parts.headers.get(header::HOST) {
            Some(host) if !valid_host(host.as_bytes()) => {
                return Err(Failure::client(
                    StatusCode::BAD_REQUEST,
                    "Host is not a valid host[:port] (RFC 9112 §3.2)",
                ));
            }
            Some(_) => {}
            // An HTTP/1.0 request may come without Host; the request sent upstream is HTTP/1.1,
            // which must carry one (RFC 9112 §3.2). Its authority is then this server's
            // address, as RFC 9112 §3.3 reconstructs the target URI.
            None => {
                if let Ok(local) = header::HeaderValue::from_str(&self.local.to_string()) {
                    parts.headers.insert(header::HOST, local);
                }
            }
        }
        if forward::has_looped(&parts.headers, &limits.name) {
            return Err(Failure::new(
                FailureKind::ProxyLoopDetected,
                Phase::Routing,
                format!("the request already carries Via: 1.1 {}", limits.name),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(version: Version, target: &str, hosts: &[&str]) -> Parts {
        let mut builder = Request::builder().version(version).uri(target);
        for host in hosts {
            builder = builder.header(header::HOST, *host);
        }
        builder.body(()).unwrap().into_parts().0
    }

    fn hosts(parts: &Parts) -> Vec<&str> {
        parts
            .headers
            .get_all(header::HOST)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect()
    }

    #[test]
    fn absolute_form_replaces_the_received_host() {
        let mut p = parts(Version::HTTP_11, "http://a.example:8080/x", &["b.example"]);
        host_from_target(&mut p).unwrap();
        assert_eq!(hosts(&p), ["a.example:8080"]);
        let mut p = parts(Version::HTTP_10, "http://a.example/x", &[]);
        host_from_target(&mut p).unwrap();
        assert_eq!(hosts(&p), ["a.example"]);
    }

    #[test]
    fn origin_form_keeps_its_host() {
        let mut p = parts(Version::HTTP_11, "/x", &["b.example"]);
        host_from_target(&mut p).unwrap();
        assert_eq!(hosts(&p), ["b.example"]);
    }

    #[test]
    fn userinfo_in_the_target_is_refused() {
        let mut p = parts(Version::HTTP_11, "http://u:p@a.example/", &["a.example"]);
        let failure = host_from_target(&mut p).unwrap_err();
        assert_eq!(failure.status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn http2_authority_becomes_host_and_a_differing_host_is_refused() {
        let mut p = parts(Version::HTTP_2, "https://a.example/x", &[]);
        host_from_target(&mut p).unwrap();
        assert_eq!(hosts(&p), ["a.example"]);
        let mut p = parts(Version::HTTP_2, "https://a.example/x", &["A.Example"]);
        host_from_target(&mut p).unwrap();
        let mut p = parts(Version::HTTP_2, "https://a.example/x", &["b.example"]);
        assert!(host_from_target(&mut p).is_err());
    }

    #[test]
    fn hosts_are_checked_against_the_uri_grammar() {
        for good in [
            "a.example",
            "a.example:8080",
            "a.example:65535",
            "a.example:0443",
            "A-b_c~d.example:",
            "127.0.0.1:80",
            "[::1]",
            "[::1]:8443",
            "%41.example",
            "",
        ] {
            assert!(valid_host(good.as_bytes()), "{good:?} refused");
        }
        for bad in [
            "a,b",
            "a b",
            "x/y",
            "x@evil",
            "x, y",
            "a.example:80a",
            "a.example:80:81",
            "[::1",
            "[::1]x",
            "[]",
            "%4",
            "%zz.example",
            "a\\b",
            "a.example:65536",
            "a.example:100000",
        ] {
            assert!(!valid_host(bad.as_bytes()), "{bad:?} accepted");
        }
    }

    #[test]
    fn host_and_authority_compare_normalized() {
        let http = Some("http");
        let https = Some("https");
        assert!(same_authority(b"a.example", b"a.example", http));
        assert!(same_authority(b"A.Example", b"a.example", https));
        assert!(same_authority(b"a.example:80", b"a.example", http));
        assert!(same_authority(b"a.example", b"a.example:443", https));
        assert!(same_authority(b"a.example:", b"a.example", https));
        assert!(same_authority(b"[::1]:443", b"[::1]", https));
        assert!(same_authority(b"a.example:0443", b"a.example", https));
        assert!(same_authority(
            b"a.example:443",
            b"a.example",
            Some("HTTPS")
        ));
        assert!(same_authority(b"a.example:8080", b"a.example:08080", http));
        assert!(!same_authority(b"a.example:443", b"a.example", http));
        assert!(!same_authority(b"a.example:8080", b"a.example", http));
        assert!(!same_authority(b"b.example", b"a.example", http));
        assert!(!same_authority(b"[::1]", b"[::2]", http));
    }

    #[test]
    fn the_target_form_must_fit_the_method() {
        let with = |method: &str, target: &str| {
            let parts = Request::builder()
                .method(method)
                .uri(target)
                .body(())
                .unwrap()
                .into_parts()
                .0;
            check_target(&parts).is_ok()
        };
        assert!(with("GET", "/x?y"));
        assert!(with("GET", "http://a.example/x"));
        assert!(with("GET", "HTTPS://a.example/x"));
        assert!(!with("GET", "ftp://a.example/x"));
        assert!(with("OPTIONS", "*"));
        assert!(!with("CONNECT", "a.example:443"));
        assert!(!with("GET", "*"));
        assert!(!with("GET", "a.example:80"));
        assert!(!with("GET", "ok"));
        // HTTP/2 gives every request a scheme and an authority: `*` is checked all the same.
        let h2_star = |method: http::Method| {
            let uri = http::Uri::builder()
                .scheme("https")
                .authority("a.example")
                .path_and_query("*")
                .build()
                .unwrap();
            let parts = Request::builder()
                .method(method)
                .uri(uri)
                .body(())
                .unwrap()
                .into_parts()
                .0;
            check_target(&parts).is_ok()
        };
        assert!(h2_star(http::Method::OPTIONS));
        assert!(!h2_star(http::Method::GET));
    }
}
