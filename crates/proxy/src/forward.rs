//! Header rewriting between the two hops: hop-by-hop fields removed both ways (RFC 9110
//! §7.6.1), forwarding fields added to the request, loop detection through `Via`. An upgrade
//! request (WebSocket) gets `Upgrade` and `Connection: upgrade` back after the stripping, and
//! the `101` that accepts it is checked against what was asked.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Fields that describe one connection, never the message (RFC 9110 §7.6.1, plus the
/// non-standard `Keep-Alive` and `Proxy-Connection`). `Expect` is answered by gatehouse itself
/// (hyper sends `100 Continue` when the body is first read), so it is not forwarded either.
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Interim (1xx) responses relayed to the client per request; an upstream that sends more
/// has the rest read and dropped, so that a flood of them is not buffered for a client that
/// does not read (each waits in memory until the client takes it).
pub const MAX_INTERIM_RELAYED: u32 = 16;

/// Joins the `Cookie` fields of an HTTP/2 request into one, as HTTP/1.1 wants them (RFC 9113
/// §8.2.3: an HTTP/2 client may send each cookie as a field of its own; the fields are
/// concatenated with "; " before the request goes to an HTTP/1.1 server).
pub fn join_cookies(headers: &mut HeaderMap) {
    let mut values = headers.get_all(header::COOKIE).iter();
    let (Some(first), Some(_)) = (values.next(), values.next()) else {
        return;
    };
    let mut joined = first.as_bytes().to_vec();
    for value in headers.get_all(header::COOKIE).iter().skip(1) {
        joined.extend_from_slice(b"; ");
        joined.extend_from_slice(value.as_bytes());
    }
    if let Ok(joined) = HeaderValue::from_bytes(&joined) {
        headers.insert(header::COOKIE, joined);
    }
}

/// The fields of an interim (1xx) response as it is relayed: hop-by-hop fields out, and any
/// Content-Length, which a 1xx never carries (RFC 9110 §8.6).
pub fn interim_fields(headers: &mut HeaderMap) {
    strip_hop_by_hop(headers);
    headers.remove(header::CONTENT_LENGTH);
}

/// Removes hop-by-hop fields, including every field the `Connection` header names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    remove_connection_named(headers);
    remove_where(headers, is_hop_by_hop);
}

fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(name)
}

/// Removes the fields the `Connection` header names (RFC 9110 §7.6.1). Every `Connection`
/// line counts: several lines are one list, and a name on the second line is as hop-by-hop as
/// one on the first.
fn remove_connection_named(headers: &mut HeaderMap) {
    // The names are gathered first (the map cannot change while its values are read). The
    // usual options name no field (`close`) or one removed with the hop-by-hop ones anyway
    // (`keep-alive`), so the usual message allocates nothing here. `Host` is never taken away:
    // every HTTP/1.1 request gatehouse sends must carry it (RFC 9112 §3.2), and the check
    // phase already made it the request's authority.
    let mut named = Vec::new();
    for value in headers.get_all(header::CONNECTION) {
        for token in value.as_bytes().split(|&b| b == b',') {
            let token = token.trim_ascii();
            if token.is_empty()
                || token.eq_ignore_ascii_case(b"keep-alive")
                || token.eq_ignore_ascii_case(b"close")
                || token.eq_ignore_ascii_case(b"host")
            {
                continue;
            }
            if let Ok(name) = HeaderName::from_bytes(token) {
                named.push(name);
            }
        }
    }
    for name in named {
        headers.remove(name);
    }
}

/// Removes every field whose name `doomed` picks. The names are found in one pass over the
/// fields: a message usually carries none or one of them, and a hashed removal per possible
/// name costs more than looking at the few fields there are.
fn remove_where(headers: &mut HeaderMap, doomed: impl Fn(&HeaderName) -> bool) {
    // Up to four names found at a time are kept on the stack (no allocation); more, which is
    // rare, take another pass.
    loop {
        let mut found: [Option<HeaderName>; 4] = Default::default();
        let mut count = 0;
        for name in headers.keys().filter(|name| doomed(name)) {
            if count == found.len() {
                break;
            }
            found[count] = Some(name.clone());
            count += 1;
        }
        for name in found.into_iter().flatten() {
            headers.remove(name);
        }
        if count < 4 {
            return;
        }
    }
}

/// Whether a request asks to switch protocols (RFC 9110 §7.8): `Connection` carries the
/// `upgrade` token and `Upgrade` names a protocol. Returns the `Upgrade` value to forward, or
/// `None` for an ordinary request.
///
/// `h2c` is never offered upstream (its fields are stripped like any hop-by-hop field): an
/// upgrade to cleartext HTTP/2 through a proxy lets a client talk to the origin past every
/// per-request rule of the proxy ("h2c smuggling"), and gatehouse does not speak h2c anyway.
pub fn upgrade_protocols(headers: &HeaderMap) -> Option<HeaderValue> {
    let asks = headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|value| value.to_str().unwrap_or("").split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    if !asks {
        return None;
    }
    let protocols: Vec<&str> = headers
        .get_all(header::UPGRADE)
        .iter()
        .flat_map(|value| value.to_str().unwrap_or("").split(','))
        .map(str::trim)
        .filter(|protocol| !protocol.is_empty() && !is_h2c(protocol))
        .collect();
    if protocols.is_empty() {
        return None;
    }
    HeaderValue::from_str(&protocols.join(", ")).ok()
}

fn is_h2c(protocol: &str) -> bool {
    protocol.eq_ignore_ascii_case("h2c") || protocol.to_ascii_lowercase().starts_with("h2c/")
}

/// Puts back the two fields an upgrade needs on the next hop, after [`strip_hop_by_hop`]
/// removed them with the rest: `Upgrade` (as the client asked, or as the upstream accepted)
/// and `Connection: upgrade`. Other fields the client's `Connection` named stay removed.
pub fn keep_upgrade(headers: &mut HeaderMap, protocols: &HeaderValue) {
    headers.insert(header::UPGRADE, protocols.clone());
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
}

/// Checks the `Upgrade` of a `101 Switching Protocols` against what was asked: it must name
/// protocols, each one of those `requested` (RFC 9110 §7.8: a server must not switch to a
/// protocol the client did not offer). Returns the accepted value, or why it is refused.
pub fn accepted_upgrade(
    requested: &HeaderValue,
    response: &HeaderMap,
) -> Result<HeaderValue, String> {
    let Some(accepted) = response.get(header::UPGRADE) else {
        return Err("upstream answered 101 Switching Protocols without an Upgrade header".into());
    };
    let offered: Vec<&str> = requested
        .to_str()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .collect();
    let named: Vec<&str> = accepted
        .to_str()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|protocol| !protocol.is_empty())
        .collect();
    let all_offered = named
        .iter()
        .all(|protocol| offered.iter().any(|o| o.eq_ignore_ascii_case(protocol)));
    if named.is_empty() || !all_offered {
        return Err(format!(
            "upstream answered 101 Switching Protocols to {:?}, which the client did not ask for (asked: {:?})",
            String::from_utf8_lossy(accepted.as_bytes()),
            String::from_utf8_lossy(requested.as_bytes()),
        ));
    }
    Ok(accepted.clone())
}

/// How many header fields a request may gain on its way upstream: Host (set from the target
/// by the check phase) and what [`request_headers`] adds (X-Forwarded-For, X-Real-IP,
/// X-Forwarded-Proto, X-Forwarded-Host, Forwarded, Via, X-Request-ID). Room for them is made
/// once, when the request's header map is made. (The HTTP/1.1 engine, a layer below, keeps
/// its own count.)
pub const ADDED_FIELDS: usize = 8;

/// Names parsed once rather than for every request.
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
// Names used on every request (or every error response) are parsed once, here: a `&str` name
// is parsed and checked again on every lookup or insert.
pub const PROXY_STATUS: HeaderName = HeaderName::from_static("proxy-status");
pub const CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");
pub const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");

const FORWARDED: HeaderName = HeaderName::from_static("forwarded");

/// The `X-Request-ID` value for `id`, marked sensitive: HTTP/2's HPACK then sends it as a
/// literal that is never indexed, rather than adding a value that is new on every request to
/// the connection's header table, where it would push out the fields that do repeat (and cost
/// an insert, with its evictions, per response). (Its `Debug` form then hides the value.)
pub fn request_id_value(id: &str) -> Option<HeaderValue> {
    let mut value = HeaderValue::from_str(id).ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// [`request_id_value`] for a request that sends its id more than once (to the upstream, to
/// the client): the value shares `id`'s bytes, so each copy of it is a count, not an
/// allocation.
pub fn shared_request_id_value(id: &Arc<str>) -> Option<HeaderValue> {
    let mut value =
        HeaderValue::from_maybe_shared(Bytes::from_owner(SharedId(Arc::clone(id)))).ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// An id's bytes, owned by the id's `Arc`.
struct SharedId(Arc<str>);

impl AsRef<[u8]> for SharedId {
    fn as_ref(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

/// What the forwarding headers need to know about this hop.
#[derive(Debug, Clone, Copy)]
pub struct Hop<'a> {
    /// The IP of whoever sent gatehouse this request (the connection's peer, or the client a
    /// PROXY header named), formatted once per connection: appended to `X-Forwarded-For`.
    pub peer_ip: &'a HeaderValue,
    /// The peer is one of `trusted_proxies`: the forwarding fields it sent are passed on (and
    /// extended); from anyone else they are replaced.
    pub trusted: bool,
    /// The client's real IP (`X-Real-IP`): the peer's, or the one `X-Forwarded-For` gave when
    /// the peer is trusted.
    pub client_ip: &'a HeaderValue,
    /// Add an RFC 7239 `Forwarded` element (`server.forwarded`).
    pub forwarded: bool,
    /// `1.1 <name>`
    pub via: &'a HeaderValue,
    pub request_id: &'a HeaderValue,
    pub host: Option<&'a HeaderValue>,
    /// The scheme the client used: `X-Forwarded-Proto`.
    pub proto: &'static str,
}

/// Prepares the headers of a request for the upstream.
///
/// From a trusted peer, `X-Forwarded-For` is extended with the peer's address, and
/// `X-Forwarded-Proto`, `X-Forwarded-Host` and `Forwarded` are kept as it sent them (it
/// terminated the client's connection and knows them). From any other client every
/// `X-Forwarded-*`, `X-Real-IP` and `Forwarded` field is dropped and written afresh: a client
/// must not be able to choose the address or scheme an application believes.
pub fn request_headers(headers: &mut HeaderMap, hop: &Hop<'_>) {
    remove_connection_named(headers);
    let xff = if hop.trusted && headers.contains_key(&X_FORWARDED_FOR) {
        // Several X-Forwarded-For lines are one list; the combined value replaces them all.
        let mut list = String::new();
        for value in headers.get_all(&X_FORWARDED_FOR) {
            let value = value.to_str().unwrap_or("").trim();
            if !value.is_empty() {
                list.push_str(value);
                list.push_str(", ");
            }
        }
        list.push_str(hop.peer_ip.to_str().unwrap_or(""));
        HeaderValue::from_str(&list).unwrap_or_else(|_| hop.peer_ip.clone())
    } else {
        hop.peer_ip.clone()
    };
    // Hop-by-hop fields, Expect (answered here), and from an untrusted peer what it may have
    // sent to pass for a proxy, all in one pass.
    let trusted = hop.trusted;
    remove_where(headers, |name| {
        is_hop_by_hop(name) || name == header::EXPECT || (!trusted && is_spoofable(name))
    });
    headers.insert(X_FORWARDED_FOR, xff);
    headers.insert(X_REAL_IP, hop.client_ip.clone());
    // One lookup each (`entry`), not a `contains_key` and then an `insert`.
    headers
        .entry(X_FORWARDED_PROTO)
        .or_insert_with(|| HeaderValue::from_static(hop.proto));
    if let Some(host) = hop.host {
        headers
            .entry(X_FORWARDED_HOST)
            .or_insert_with(|| host.clone());
    }
    if hop.forwarded
        && let Some(element) = forwarded_element(hop)
    {
        headers.append(FORWARDED, element);
    }
    headers.append(header::VIA, hop.via.clone());
    headers.insert(X_REQUEST_ID, hop.request_id.clone());
}

/// What an untrusted client may have sent to pass for a proxy: `Forwarded`, `X-Real-IP` and
/// every `X-Forwarded-*` (`-For`, `-Host`, `-Proto`, `-Port`, `-Prefix`, ...).
fn is_spoofable(name: &HeaderName) -> bool {
    name == FORWARDED || name == X_REAL_IP || name.as_str().starts_with("x-forwarded-")
}

/// This hop's RFC 7239 element: `for` the peer (an IPv6 address quoted in brackets, §6),
/// `host` as received (quoted: it may hold a `:`), `proto`.
fn forwarded_element(hop: &Hop<'_>) -> Option<HeaderValue> {
    let ip = hop.peer_ip.to_str().ok()?;
    let node = if ip.contains(':') {
        format!("\"[{ip}]\"")
    } else {
        ip.to_owned()
    };
    let mut element = format!("for={node}");
    if let Some(host) = hop.host.and_then(|h| h.to_str().ok())
        && !host.contains(['"', '\\'])
    {
        element.push_str(&format!(";host=\"{host}\""));
    }
    element.push_str(";proto=");
    element.push_str(hop.proto);
    HeaderValue::from_str(&element).ok()
}

/// Whether the request already went through a proxy with our name (`Via: 1.1 <name>`).
pub fn has_looped(headers: &HeaderMap, name: &str) -> bool {
    headers.get_all(header::VIA).iter().any(|value| {
        value.to_str().unwrap_or("").split(',').any(|entry| {
            let mut parts = entry.split_whitespace();
            let _protocol = parts.next();
            parts
                .next()
                .is_some_and(|received_by| received_by.eq_ignore_ascii_case(name))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_more_fields_than_one_pass_keeps() {
        let mut headers = HeaderMap::new();
        for name in [
            "te",
            "trailer",
            "upgrade",
            "keep-alive",
            "proxy-connection",
            "x-kept",
        ] {
            headers.insert(HeaderName::from_static(name), "1".parse().unwrap());
        }
        headers.insert(header::CONNECTION, "x-a, x-b".parse().unwrap());
        headers.insert("x-a", "1".parse().unwrap());
        headers.insert("x-b", "1".parse().unwrap());
        strip_hop_by_hop(&mut headers);
        let left: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, ["x-kept"]);
    }

    #[test]
    fn a_shared_request_id_value_is_the_id_marked_sensitive() {
        let id: Arc<str> = "a1b2-c3.d4:e5_f6".into();
        let value = shared_request_id_value(&id).unwrap();
        assert_eq!(value, "a1b2-c3.d4:e5_f6");
        assert!(value.is_sensitive());
        assert_eq!(value.clone(), value);
        drop(id);
        assert_eq!(value.as_bytes(), b"a1b2-c3.d4:e5_f6");
        assert!(shared_request_id_value(&Arc::from("bad\nid")).is_none());
    }

    #[test]
    fn strips_the_fields_every_connection_line_names() {
        let mut headers = HeaderMap::new();
        headers.append(header::CONNECTION, "close".parse().unwrap());
        headers.append(
            header::CONNECTION,
            "x-secret, ,X-Other, Host".parse().unwrap(),
        );
        headers.insert(header::HOST, "app.test".parse().unwrap());
        headers.insert("x-secret", "1".parse().unwrap());
        headers.insert("x-other", "1".parse().unwrap());
        headers.insert("x-kept", "1".parse().unwrap());
        strip_hop_by_hop(&mut headers);
        let mut left: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(left, ["host", "x-kept"], "Host is never a hop's own");
    }

    #[test]
    fn strips_connection_named_fields() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONNECTION, "keep-alive, x-secret".parse().unwrap());
        headers.insert("x-secret", "1".parse().unwrap());
        headers.insert("keep-alive", "timeout=5".parse().unwrap());
        headers.insert(header::TRANSFER_ENCODING, "chunked".parse().unwrap());
        headers.insert("x-kept", "1".parse().unwrap());
        strip_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1);
        assert!(headers.contains_key("x-kept"));
    }

    /// A request as a proxy in front would send it, with forwarding fields of its own.
    fn forwarded_request() -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.append("x-forwarded-for", "1.1.1.1".parse().unwrap());
        headers.append("x-forwarded-for", "2.2.2.2".parse().unwrap());
        headers.insert("x-forwarded-proto", "https".parse().unwrap());
        headers.insert("x-forwarded-host", "front.example".parse().unwrap());
        headers.insert("x-forwarded-prefix", "/admin".parse().unwrap());
        headers.insert("x-real-ip", "6.6.6.6".parse().unwrap());
        headers.insert("forwarded", "for=6.6.6.6;proto=https".parse().unwrap());
        headers.insert(header::VIA, "1.0 cdn".parse().unwrap());
        headers.insert(header::EXPECT, "100-continue".parse().unwrap());
        headers
    }

    fn forward(headers: &mut HeaderMap, trusted: bool, peer: &'static str, client: &'static str) {
        let via = HeaderValue::from_static("1.1 gatehouse");
        let id = HeaderValue::from_static("abc");
        let host = HeaderValue::from_static("example.com:8080");
        request_headers(
            headers,
            &Hop {
                peer_ip: &HeaderValue::from_static(peer),
                trusted,
                client_ip: &HeaderValue::from_static(client),
                forwarded: true,
                via: &via,
                request_id: &id,
                host: Some(&host),
                proto: "http",
            },
        );
    }

    #[test]
    fn a_trusted_peers_forwarding_fields_are_extended() {
        let mut headers = forwarded_request();
        forward(&mut headers, true, "10.0.0.1", "2.2.2.2");
        assert_eq!(headers.get_all("x-forwarded-for").iter().count(), 1);
        assert_eq!(headers["x-forwarded-for"], "1.1.1.1, 2.2.2.2, 10.0.0.1");
        assert_eq!(headers["x-real-ip"], "2.2.2.2");
        assert_eq!(headers["x-forwarded-host"], "front.example");
        assert_eq!(headers["x-forwarded-proto"], "https");
        assert_eq!(headers["x-forwarded-prefix"], "/admin");
        let forwarded: Vec<_> = headers.get_all("forwarded").iter().collect();
        assert_eq!(
            forwarded,
            [
                "for=6.6.6.6;proto=https",
                "for=10.0.0.1;host=\"example.com:8080\";proto=http"
            ]
        );
        let vias: Vec<_> = headers.get_all(header::VIA).iter().collect();
        assert_eq!(vias, ["1.0 cdn", "1.1 gatehouse"]);
        assert!(!headers.contains_key(header::EXPECT));
    }

    #[test]
    fn an_untrusted_clients_forwarding_fields_are_replaced() {
        let mut headers = forwarded_request();
        forward(&mut headers, false, "2001:db8::7", "2001:db8::7");
        assert_eq!(headers["x-forwarded-for"], "2001:db8::7");
        assert_eq!(headers["x-real-ip"], "2001:db8::7");
        assert_eq!(headers["x-forwarded-host"], "example.com:8080");
        assert_eq!(headers["x-forwarded-proto"], "http");
        assert!(!headers.contains_key("x-forwarded-prefix"));
        let forwarded: Vec<_> = headers.get_all("forwarded").iter().collect();
        assert_eq!(
            forwarded,
            ["for=\"[2001:db8::7]\";host=\"example.com:8080\";proto=http"]
        );
    }

    #[test]
    fn upgrade_requests_are_recognised() {
        let mut headers = HeaderMap::new();
        headers.insert(header::UPGRADE, "websocket".parse().unwrap());
        assert_eq!(upgrade_protocols(&headers), None, "no Connection: upgrade");
        headers.append(header::CONNECTION, "keep-alive".parse().unwrap());
        headers.append(header::CONNECTION, "Upgrade, x-secret".parse().unwrap());
        assert_eq!(upgrade_protocols(&headers).unwrap(), "websocket");
        headers.insert(header::UPGRADE, "h2c, WebSocket".parse().unwrap());
        assert_eq!(
            upgrade_protocols(&headers).unwrap(),
            "WebSocket",
            "h2c is dropped"
        );
        headers.insert(header::UPGRADE, "h2c".parse().unwrap());
        assert_eq!(upgrade_protocols(&headers), None, "h2c alone is no upgrade");
        headers.remove(header::UPGRADE);
        assert_eq!(upgrade_protocols(&headers), None, "no Upgrade");
    }

    #[test]
    fn upgrade_fields_survive_stripping_but_other_named_fields_do_not() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONNECTION, "upgrade, x-secret".parse().unwrap());
        headers.insert(header::UPGRADE, "websocket".parse().unwrap());
        headers.insert("x-secret", "1".parse().unwrap());
        headers.insert("sec-websocket-key", "abc".parse().unwrap());
        let protocols = upgrade_protocols(&headers).unwrap();
        strip_hop_by_hop(&mut headers);
        keep_upgrade(&mut headers, &protocols);
        assert_eq!(headers["upgrade"], "websocket");
        assert_eq!(headers["connection"], "upgrade");
        assert!(!headers.contains_key("x-secret"));
        assert_eq!(headers["sec-websocket-key"], "abc");
    }

    #[test]
    fn switching_protocols_must_name_an_offered_protocol() {
        let asked = HeaderValue::from_static("websocket");
        let mut response = HeaderMap::new();
        assert!(accepted_upgrade(&asked, &response).is_err(), "no Upgrade");
        response.insert(header::UPGRADE, "WebSocket".parse().unwrap());
        assert_eq!(accepted_upgrade(&asked, &response).unwrap(), "WebSocket");
        response.insert(header::UPGRADE, "h2c".parse().unwrap());
        assert!(
            accepted_upgrade(&asked, &response).is_err(),
            "another protocol"
        );
        response.insert(header::UPGRADE, "".parse().unwrap());
        assert!(
            accepted_upgrade(&asked, &response).is_err(),
            "empty Upgrade"
        );
    }

    #[test]
    fn loop_detection() {
        let mut headers = HeaderMap::new();
        headers.insert(header::VIA, "1.0 cdn, 1.1 Gatehouse (v1)".parse().unwrap());
        assert!(has_looped(&headers, "gatehouse"));
        assert!(!has_looped(&headers, "edge"));
    }

    #[test]
    fn http2_cookie_fields_are_joined_into_one() {
        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, HeaderValue::from_static("a=1"));
        headers.append(header::COOKIE, HeaderValue::from_static("b=2"));
        headers.append(header::COOKIE, HeaderValue::from_static("c=3"));
        join_cookies(&mut headers);
        let cookies: Vec<_> = headers.get_all(header::COOKIE).iter().collect();
        assert_eq!(cookies, ["a=1; b=2; c=3"]);
        let mut one = HeaderMap::new();
        one.insert(header::COOKIE, HeaderValue::from_static("a=1"));
        join_cookies(&mut one);
        assert_eq!(one[header::COOKIE], "a=1");
    }
}
