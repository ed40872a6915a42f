//! Header rewriting between the two hops: hop-by-hop fields removed both ways (RFC 9110
//! §7.6.1), forwarding fields added to the request, loop detection through `Via`.

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

/// Removes hop-by-hop fields, including every field the `Connection` header names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    if let Some(connection) = headers.get(header::CONNECTION) {
        let named: Vec<HeaderName> = connection
            .to_str()
            .unwrap_or("")
            .split(',')
            .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
}

/// What the forwarding headers need to know about this hop.
/// Names parsed once rather than for every request.
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// What the forwarding headers need to know about this hop.
#[derive(Debug, Clone, Copy)]
pub struct Hop<'a> {
    /// The client's IP as a header value (formatted once per connection).
    pub client_ip: &'a HeaderValue,
    /// `1.1 <name>`
    pub via: &'a HeaderValue,
    pub request_id: &'a HeaderValue,
    pub host: Option<&'a HeaderValue>,
    /// The scheme the client used: `X-Forwarded-Proto`.
    pub proto: &'static str,
}

/// Prepares the headers of a request for the upstream.
pub fn request_headers(headers: &mut HeaderMap, hop: &Hop<'_>) {
    strip_hop_by_hop(headers);
    headers.remove(header::EXPECT);
    // Several X-Forwarded-For lines are one list; the combined value replaces them all.
    let xff = match headers.get(&X_FORWARDED_FOR) {
        None => hop.client_ip.clone(),
        Some(_) => {
            let mut list = String::new();
            for value in headers.get_all(&X_FORWARDED_FOR) {
                let value = value.to_str().unwrap_or("").trim();
                if !value.is_empty() {
                    list.push_str(value);
                    list.push_str(", ");
                }
            }
            list.push_str(hop.client_ip.to_str().unwrap_or(""));
            HeaderValue::from_str(&list).unwrap_or_else(|_| hop.client_ip.clone())
        }
    };
    headers.insert(X_FORWARDED_FOR, xff);
    headers.insert(X_REAL_IP, hop.client_ip.clone());
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(hop.proto));
    if let Some(host) = hop.host {
        headers.insert(X_FORWARDED_HOST, host.clone());
    }
    headers.append(header::VIA, hop.via.clone());
    headers.insert(X_REQUEST_ID, hop.request_id.clone());
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

    #[test]
    fn appends_forwarding_headers() {
        let mut headers = HeaderMap::new();
        headers.append("x-forwarded-for", "1.1.1.1".parse().unwrap());
        headers.append("x-forwarded-for", "2.2.2.2".parse().unwrap());
        headers.insert(header::VIA, "1.0 cdn".parse().unwrap());
        headers.insert(header::EXPECT, "100-continue".parse().unwrap());
        let via = HeaderValue::from_static("1.1 gatehouse");
        let id = HeaderValue::from_static("abc");
        let host = HeaderValue::from_static("example.com");
        request_headers(
            &mut headers,
            &Hop {
                client_ip: &HeaderValue::from_static("10.0.0.1"),
                via: &via,
                request_id: &id,
                host: Some(&host),
                proto: "http",
            },
        );
        assert_eq!(headers.get_all("x-forwarded-for").iter().count(), 1);
        assert_eq!(headers["x-forwarded-for"], "1.1.1.1, 2.2.2.2, 10.0.0.1");
        assert_eq!(headers["x-real-ip"], "10.0.0.1");
        assert_eq!(headers["x-forwarded-host"], "example.com");
        assert_eq!(headers["x-forwarded-proto"], "http");
        let vias: Vec<_> = headers.get_all(header::VIA).iter().collect();
        assert_eq!(vias, ["1.0 cdn", "1.1 gatehouse"]);
        assert!(!headers.contains_key(header::EXPECT));
    }

    #[test]
    fn loop_detection() {
        let mut headers = HeaderMap::new();
        headers.insert(header::VIA, "1.0 cdn, 1.1 Gatehouse (v1)".parse().unwrap());
        assert!(has_looped(&headers, "gatehouse"));
        assert!(!has_looped(&headers, "edge"));
    }
}
