//! Reading received `Proxy-Status` (RFC 9209) and `Cache-Status` (RFC 9211) headers back into
//! structs and into plain words for an operator.
//!
//! The writer side is [`super::proxy_status`]; this is the reader that `gatehouse probe` uses to
//! explain a 502/503/504 a gateway answered, e.g. "gateway `edge` could not connect to
//! `app/10.0.0.5:3000`: connection refused — backend not running, or wrong port".
//!
//! Both fields are RFC 8941 Lists, parsed with `sfv`. Several header lines of one field are one
//! list (RFC 9110 §5.3), so members of all given values are returned in order. A value that is
//! not a valid list, or a member that is an inner list or not named by a token or string, fails
//! the whole field (RFC 8941 §4.2). Parameters of an unexpected type are kept as text in
//! `params` rather than failing the field.

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use sfv::{BareItem, Item, ItemSerializer, List, ListEntry, Parameters, Parser, RefBareItem};

use super::FailureKind;

// === Proxy-Status ===

/// One `Proxy-Status` member: what one intermediary reports about this response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProxyStatusEntry {
    /// The member name: the intermediary that added the member.
    pub proxy: String,
    /// The `error` parameter (RFC 9209 §2.1.1), the token as received.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The kind named by `error`, if it is one of RFC 9209's types.
    #[serde(skip)]
    pub kind: Option<FailureKind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_hop: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_protocol: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub received_status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
    /// Every other parameter in received order, the value rendered as text
    /// (e.g. `("rcode", "NXDOMAIN")`). Serialised as a JSON object.
    #[serde(serialize_with = "serialize_pairs")]
    pub params: Vec<(String, String)>,
    /// [`Self::describe`], so that JSON output carries the sentence too.
    pub words: String,
}

impl ProxyStatusEntry {
    /// The value of another parameter (one not given its own field), as text.
    pub fn param(&self, name: &str) -> Option<&str> {
        lookup(&self.params, name)
    }

    /// One plain-English sentence for an operator.
    pub fn describe(&self) -> String {
        let proxy = &self.proxy;
        let mut out = match (&self.error, self.kind) {
            (Some(_), Some(kind)) => {
                let (what, why) = self.kind_words(kind);
                let mut s = format!("gateway `{proxy}` {what}");
                if let Some(why) = why {
                    s.push_str(": ");
                    s.push_str(&why);
                }
                if let Some(status) = self.received_status {
                    s.push_str(&format!(" (the upstream had answered {status})"));
                }
                s.push_str(" — ");
                s.push_str(kind.hint());
                s
            }
            (Some(token), None) => {
                let mut s = format!("gateway `{proxy}` reports error `{token}`");
                if let Some(hop) = &self.next_hop {
                    s.push_str(&format!(" at `{hop}`"));
                }
                if let Some(status) = self.received_status {
                    s.push_str(&format!(" (the upstream had answered {status})"));
                }
                s
            }
            (None, _) => match self.received_status {
                Some(status) => {
                    let whose = if status >= 400 {
                        "the origin's own error, not the gateway's"
                    } else {
                        "the origin's own answer"
                    };
                    format!(
                        "gateway `{proxy}` passed on status {status} {}: {whose}",
                        hop_from(self.next_hop.as_deref())
                    )
                }
                None => match &self.next_hop {
                    Some(hop) => format!("gateway `{proxy}` handled the request via `{hop}`"),
                    None => format!("gateway `{proxy}` handled the request"),
                },
            },
        };
        if let Some(details) = &self.details {
            out.push_str(&format!(" (details: {details})"));
        }
        out
    }

    /// What happened (after "gateway `x` ") and, where there is one, a kind-specific phrase
    /// that follows a colon.
    fn kind_words(&self, kind: FailureKind) -> (String, Option<String>) {
        let hop = self.next_hop.as_deref();
        let to = hop_name(hop);
        let from = hop_from(hop);
        let p = |name: &str| self.param(name);
        match kind {
            FailureKind::DnsError => {
                let what = match hop {
                    Some(hop) => format!("could not resolve the name of `{hop}`"),
                    None => "could not resolve the upstream's name".to_owned(),
                };
                let facts: Vec<String> = [
                    p("rcode").map(str::to_owned),
                    p("info-code").map(|c| format!("extended DNS error {c}")),
                ]
                .into_iter()
                .flatten()
                .collect();
                if facts.is_empty() {
                    (what, None)
                } else {
                    (format!("{what} ({})", facts.join(", ")), None)
                }
            }
            FailureKind::DnsTimeout => {
                let what = match hop {
                    Some(hop) => format!("timed out resolving the name of `{hop}`"),
                    None => "timed out resolving the upstream's name".to_owned(),
                };
                (what, Some("no DNS answer in time".to_owned()))
            }
            FailureKind::DestinationNotFound => {
                ("has no route for this host and path".to_owned(), None)
            }
            FailureKind::DestinationUnavailable => {
                let what = match hop {
                    Some(hop) => format!("has no available server for `{hop}`"),
                    None => "has no available server".to_owned(),
                };
                (what, Some("every upstream server is out".to_owned()))
            }
            FailureKind::DestinationIpProhibited => (
                format!("refused to connect to {to}"),
                Some("its address is prohibited by configuration".to_owned()),
            ),
            FailureKind::DestinationIpUnroutable => (
                format!("could not reach {to}"),
                Some("no route to its address".to_owned()),
            ),
            FailureKind::ConnectionRefused => (
                format!("could not connect to {to}"),
                Some("connection refused".to_owned()),
            ),
            FailureKind::ConnectionTimeout => (
                format!("could not connect to {to} in time"),
                Some("connect timed out".to_owned()),
            ),
            FailureKind::ConnectionTerminated => (
                format!("lost its connection to {to}"),
                Some("closed before any response arrived".to_owned()),
            ),
            FailureKind::ConnectionWriteTimeout => (
                format!("timed out sending the request to {to}"),
                Some("the upstream stopped reading".to_owned()),
            ),
            FailureKind::ConnectionReadTimeout => (
                format!("timed out reading the response {from}"),
                Some("the upstream stopped sending".to_owned()),
            ),
            FailureKind::ConnectionLimitReached => (
                format!("could not open another connection to {to}"),
                Some("connection limit reached".to_owned()),
            ),
            FailureKind::TlsProtocolError => (
                format!("could not set up TLS with {to}"),
                Some("TLS handshake failed".to_owned()),
            ),
            FailureKind::TlsCertificateError => (
                format!("rejected the TLS certificate of {to}"),
                Some("certificate could not be verified".to_owned()),
            ),
            FailureKind::TlsAlertReceived => {
                let alert = match (p("alert-message"), p("alert-id")) {
                    (Some(msg), Some(id)) => Some(format!("{msg} (alert {id})")),
                    (Some(msg), None) => Some(msg.to_owned()),
                    (None, Some(id)) => Some(format!("alert {id}")),
                    (None, None) => None,
                };
                (format!("received a TLS alert {from}"), alert)
            }
            FailureKind::HttpRequestError => {
                let mut what = "rejected the request as malformed or over a limit".to_owned();
                if let Some(status) = p("status-code") {
                    what.push_str(&format!(" ({status})"));
                }
                (what, None)
            }
            FailureKind::HttpRequestDenied => ("denied the request".to_owned(), None),
            FailureKind::HttpResponseIncomplete => (
                format!("got an incomplete response {from}"),
                Some("the connection ended mid-response".to_owned()),
            ),
            FailureKind::HttpResponseHeaderSectionSize => {
                let mut why = format!("the response headers {from} were too large");
                if let Some(size) = p("header-section-size") {
                    why.push_str(&format!(" ({size} bytes)"));
                }
                ("rejected the response".to_owned(), Some(why))
            }
            FailureKind::HttpResponseHeaderSize => {
                let field = match p("header-name") {
                    Some(name) => format!("header field `{name}`"),
                    None => "a header field".to_owned(),
                };
                let mut why = format!("{field} {from} was too large");
                if let Some(size) = p("header-size") {
                    why.push_str(&format!(" ({size} bytes)"));
                }
                ("rejected the response".to_owned(), Some(why))
            }
            FailureKind::HttpResponseBodySize => {
                let mut why = format!("the response body {from} was too large");
                if let Some(size) = p("body-size") {
                    why.push_str(&format!(" ({size} bytes)"));
                }
                ("rejected the response".to_owned(), Some(why))
            }
            FailureKind::HttpResponseTransferCoding => {
                let why = match p("coding") {
                    Some(coding) => format!("bad transfer coding `{coding}`"),
                    None => "bad transfer coding".to_owned(),
                };
                (format!("could not decode the response {from}"), Some(why))
            }
            FailureKind::HttpResponseContentCoding => {
                let why = match p("coding") {
                    Some(coding) => format!("bad content coding `{coding}`"),
                    None => "bad content coding".to_owned(),
                };
                (format!("could not decode the response {from}"), Some(why))
            }
            FailureKind::HttpResponseTimeout => {
                (format!("got no response headers {from} in time"), None)
            }
            FailureKind::HttpUpgradeFailed => (
                format!("could not upgrade the connection to {to}"),
                Some("the upgrade was refused".to_owned()),
            ),
            FailureKind::HttpProtocolError => (
                format!("got a malformed HTTP response {from}"),
                Some("HTTP protocol error".to_owned()),
            ),
            FailureKind::ProxyInternalResponse => ("answered the request itself".to_owned(), None),
            FailureKind::ProxyInternalError => ("hit an internal error".to_owned(), None),
            FailureKind::ProxyConfigurationError => (
                "could not serve the request".to_owned(),
                Some("configuration error".to_owned()),
            ),
            FailureKind::ProxyLoopDetected => {
                let what = match hop {
                    Some(hop) => format!("detected a forwarding loop via `{hop}`"),
                    None => "detected a forwarding loop".to_owned(),
                };
                (
                    what,
                    Some("the request had already passed through it".to_owned()),
                )
            }
        }
    }
}

/// All members of every given `Proxy-Status` header value, in order (origin first, the proxy
/// closest to the client last). `Err(reason)` if a value is not a valid sf-list or a member is
/// not a token or string.
pub fn parse_proxy_status<'a>(
    values: impl IntoIterator<Item = &'a http::HeaderValue>,
) -> Result<Vec<ProxyStatusEntry>, String> {
    Ok(parse_members("Proxy-Status", values)?
        .into_iter()
        .map(|(name, params)| proxy_status_entry(name, &params))
        .collect())
}

fn proxy_status_entry(proxy: String, params: &Parameters) -> ProxyStatusEntry {
    let mut entry = ProxyStatusEntry {
        proxy,
        error: None,
        kind: None,
        next_hop: None,
        next_protocol: None,
        received_status: None,
        details: None,
        params: Vec::new(),
        words: String::new(),
    };
    for (key, value) in params {
        let key = key.as_str();
        let known = match key {
            "error" => text_of(value).map(|t| entry.error = Some(t)),
            "next-hop" => text_of(value).map(|t| entry.next_hop = Some(t)),
            "next-protocol" => match value {
                BareItem::ByteSequence(bytes) => {
                    entry.next_protocol = Some(String::from_utf8_lossy(bytes).into_owned());
                    Some(())
                }
                other => text_of(other).map(|t| entry.next_protocol = Some(t)),
            },
            "received-status" => status_of(value).map(|s| entry.received_status = Some(s)),
            "details" => text_of(value).map(|t| entry.details = Some(t)),
            _ => None,
        };
        if known.is_none() {
            entry.params.push((key.to_owned(), render(value)));
        }
    }
    entry.kind = entry.error.as_deref().and_then(FailureKind::from_token);
    entry.words = entry.describe();
    entry
}

// === Cache-Status ===

/// One `Cache-Status` member: what one cache did with this request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CacheStatusEntry {
    /// The member name: the cache that added the member.
    pub cache: String,
    pub hit: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fwd: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fwd_status: Option<u16>,
    /// Remaining freshness in seconds; negative means stale by that much.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl: Option<i64>,
    pub stored: bool,
    pub collapsed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Other (extension) parameters in received order, the value rendered as text.
    /// Serialised as a JSON object, left out when empty.
    #[serde(
        serialize_with = "serialize_pairs",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub params: Vec<(String, String)>,
    /// [`Self::describe`], so that JSON output carries the sentence too.
    pub words: String,
}

impl CacheStatusEntry {
    /// One plain-English line for an operator, e.g. "cache `edge`: hit, fresh for 60 s more".
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        if self.hit {
            parts.push(match self.ttl {
                Some(ttl) if ttl < 0 => {
                    format!("hit, served stale ({} s past its freshness)", -ttl)
                }
                Some(ttl) => format!("hit, fresh for {ttl} s more"),
                None => "hit".to_owned(),
            });
        }
        if let Some(fwd) = &self.fwd {
            parts.push(fwd_words(fwd));
        } else if !self.hit {
            parts.push("not served from the cache".to_owned());
        }
        if let Some(status) = self.fwd_status {
            parts.push(format!("upstream answered {status}"));
        }
        if self.stored {
            parts.push("stored".to_owned());
        }
        if !self.hit {
            match self.ttl {
                Some(ttl) if ttl < 0 => parts.push(format!("stale by {} s", -ttl)),
                Some(ttl) => parts.push(format!("fresh for {ttl} s")),
                None => {}
            }
        }
        if self.collapsed {
            parts.push("collapsed with another request".to_owned());
        }
        if let Some(key) = &self.key {
            parts.push(format!("key `{key}`"));
        }
        let mut out = format!("cache `{}`: {}", self.cache, parts.join(", "));
        if let Some(detail) = &self.detail {
            out.push_str(&format!(" (detail: {detail})"));
        }
        out
    }
}

fn fwd_words(fwd: &str) -> String {
    match fwd {
        "bypass" => "bypassed (the cache was not consulted)".to_owned(),
        "method" => "forwarded because the request method is not cacheable".to_owned(),
        "uri-miss" | "vary-miss" => format!("miss ({fwd})"),
        "miss" => "miss".to_owned(),
        "request" => "forwarded because the request asked for it (e.g. no-cache)".to_owned(),
        "stale" => "forwarded because stale".to_owned(),
        "partial" => "forwarded for the part not cached".to_owned(),
        other => format!("forwarded ({other})"),
    }
}

/// All members of every given `Cache-Status` header value, in order (the cache nearest the
/// origin first). `Err(reason)` if a value is not a valid sf-list or a member is not a token or
/// string.
pub fn parse_cache_status<'a>(
    values: impl IntoIterator<Item = &'a http::HeaderValue>,
) -> Result<Vec<CacheStatusEntry>, String> {
    Ok(parse_members("Cache-Status", values)?
        .into_iter()
        .map(|(name, params)| cache_status_entry(name, &params))
        .collect())
}

fn cache_status_entry(cache: String, params: &Parameters) -> CacheStatusEntry {
    let mut entry = CacheStatusEntry {
        cache,
        hit: false,
        fwd: None,
        fwd_status: None,
        ttl: None,
        stored: false,
        collapsed: false,
        key: None,
        detail: None,
        params: Vec::new(),
        words: String::new(),
    };
    for (key, value) in params {
        let key = key.as_str();
        let known = match key {
            "hit" => value.as_boolean().map(|b| entry.hit = b),
            "fwd" => text_of(value).map(|t| entry.fwd = Some(t)),
            "fwd-status" => status_of(value).map(|s| entry.fwd_status = Some(s)),
            "ttl" => value.as_integer().map(|i| entry.ttl = Some(i64::from(i))),
            "stored" => value.as_boolean().map(|b| entry.stored = b),
            "collapsed" => value.as_boolean().map(|b| entry.collapsed = b),
            "key" => text_of(value).map(|t| entry.key = Some(t)),
            "detail" => text_of(value).map(|t| entry.detail = Some(t)),
            _ => None,
        };
        if known.is_none() {
            entry.params.push((key.to_owned(), render(value)));
        }
    }
    entry.words = entry.describe();
    entry
}

// === Shared ===

/// Parses every value as an sf-list and returns each member's name and parameters.
fn parse_members<'a>(
    field: &str,
    values: impl IntoIterator<Item = &'a http::HeaderValue>,
) -> Result<Vec<(String, Parameters)>, String> {
    let mut members = Vec::new();
    for (index, value) in values.into_iter().enumerate() {
        let n = index + 1;
        let list: List = Parser::new(value.as_bytes())
            .parse()
            .map_err(|e| format!("{field} value #{n} is not a valid structured-field list: {e}"))?;
        for entry in list {
            let item: Item = match entry {
                ListEntry::Item(item) => item,
                ListEntry::InnerList(_) => {
                    return Err(format!(
                        "{field} value #{n} has an inner list where a member name belongs"
                    ));
                }
            };
            let Some(name) = text_of(&item.bare_item) else {
                return Err(format!(
                    "{field} value #{n} has a member named by {}, not a token or string",
                    render(&item.bare_item)
                ));
            };
            members.push((name, item.params));
        }
    }
    Ok(members)
}

/// A token's or string's text.
fn text_of(value: &BareItem) -> Option<String> {
    match value {
        BareItem::Token(token) => Some(token.as_str().to_owned()),
        BareItem::String(string) => Some(string.as_str().to_owned()),
        BareItem::Decimal(_)
        | BareItem::Integer(_)
        | BareItem::ByteSequence(_)
        | BareItem::Boolean(_)
        | BareItem::Date(_)
        | BareItem::DisplayString(_) => None,
    }
}

/// An integer that is a plausible HTTP status code.
fn status_of(value: &BareItem) -> Option<u16> {
    let n = i64::from(value.as_integer()?);
    u16::try_from(n).ok().filter(|s| (100..=999).contains(s))
}

/// Any bare item as text: strings and tokens without quotes, booleans as `true`/`false`,
/// byte sequences in their structured-field form.
fn render(value: &BareItem) -> String {
    match value {
        BareItem::Token(token) => token.as_str().to_owned(),
        BareItem::String(string) => string.as_str().to_owned(),
        BareItem::Integer(i) => i.to_string(),
        BareItem::Decimal(d) => d.to_string(),
        BareItem::Boolean(b) => b.to_string(),
        BareItem::Date(d) => d.to_string(),
        BareItem::DisplayString(s) => s.clone(),
        BareItem::ByteSequence(bytes) => ItemSerializer::new()
            .bare_item(RefBareItem::ByteSequence(bytes))
            .finish(),
    }
}

fn lookup<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

/// "`hop`" or "the upstream".
fn hop_name(hop: Option<&str>) -> String {
    match hop {
        Some(hop) => format!("`{hop}`"),
        None => "the upstream".to_owned(),
    }
}

/// "from `hop`" or "from the upstream".
fn hop_from(hop: Option<&str>) -> String {
    format!("from {}", hop_name(hop))
}

fn serialize_pairs<S: Serializer>(pairs: &[(String, String)], ser: S) -> Result<S::Ok, S::Error> {
    let mut map = ser.serialize_map(Some(pairs.len()))?;
    for (key, value) in pairs {
        map.serialize_entry(key, value)?;
    }
    map.end()
}

#[cfg(test)]
mod tests {
    use gatehouse_config::ProxyStatusMode;
    use http::{HeaderValue, StatusCode};

    use super::*;
    use crate::failure::proxy_status::ProxyStatusWriter;
    use crate::failure::{Failure, Phase};

    fn hv(s: &str) -> HeaderValue {
        HeaderValue::from_str(s).unwrap()
    }

    fn one_proxy(value: &HeaderValue) -> ProxyStatusEntry {
        let mut entries = parse_proxy_status([value]).unwrap();
        assert_eq!(entries.len(), 1);
        entries.pop().unwrap()
    }

    fn one_cache(value: &str) -> CacheStatusEntry {
        let value = hv(value);
        let mut entries = parse_cache_status([&value]).unwrap();
        assert_eq!(entries.len(), 1);
        entries.pop().unwrap()
    }

    fn full(name: &str) -> ProxyStatusWriter {
        ProxyStatusWriter::new(name, ProxyStatusMode::Full)
    }

    #[test]
    fn connection_refused_round_trip() {
        let failure = Failure::new(
            FailureKind::ConnectionRefused,
            Phase::Connecting,
            "connect to 10.0.0.5:3000: Connection refused (os error 111)",
        );
        let value = full("edge")
            .for_failure(&failure, Some("app/10.0.0.5:3000"))
            .unwrap();
        let e = one_proxy(&value);
        assert_eq!(e.proxy, "edge");
        assert_eq!(e.error.as_deref(), Some("connection_refused"));
        assert_eq!(e.kind, Some(FailureKind::ConnectionRefused));
        assert_eq!(e.next_hop.as_deref(), Some("app/10.0.0.5:3000"));
        assert_eq!(
            e.details.as_deref(),
            Some("connect to 10.0.0.5:3000: Connection refused (os error 111)")
        );
        assert!(e.params.is_empty());
        assert_eq!(
            e.words,
            "gateway `edge` could not connect to `app/10.0.0.5:3000`: connection refused \
             — backend not running, or wrong port \
             (details: connect to 10.0.0.5:3000: Connection refused (os error 111))"
        );
        assert_eq!(e.words, e.describe());
    }

    #[test]
    fn minimal_mode_has_no_next_hop() {
        let writer = ProxyStatusWriter::new("edge", ProxyStatusMode::Minimal);
        let failure = Failure::new(FailureKind::ConnectionRefused, Phase::Connecting, "x");
        let e = one_proxy(&writer.for_failure(&failure, Some("app/1.2.3.4:1")).unwrap());
        assert_eq!(e.next_hop, None);
        assert_eq!(e.details, None);
        assert_eq!(
            e.words,
            "gateway `edge` could not connect to the upstream: connection refused \
             — backend not running, or wrong port"
        );
    }

    #[test]
    fn dns_error_with_rcode() {
        let writer = ProxyStatusWriter::new("edge", ProxyStatusMode::Minimal);
        let mut failure = Failure::new(FailureKind::DnsError, Phase::Resolving, "no such host");
        failure.params.rcode = Some("NXDOMAIN");
        let e = one_proxy(&writer.for_failure(&failure, None).unwrap());
        assert_eq!(e.kind, Some(FailureKind::DnsError));
        assert_eq!(e.param("rcode"), Some("NXDOMAIN"));
        assert_eq!(e.params, vec![("rcode".to_owned(), "NXDOMAIN".to_owned())]);
        assert_eq!(
            e.words,
            format!(
                "gateway `edge` could not resolve the upstream's name (NXDOMAIN) — {}",
                FailureKind::DnsError.hint()
            )
        );
    }

    #[test]
    fn timeouts_and_sizes() {
        let w = full("edge");
        let f = Failure::new(FailureKind::ConnectionTimeout, Phase::Connecting, "");
        let e = one_proxy(&w.for_failure(&f, Some("app/x:1")).unwrap());
        assert_eq!(e.details, None);
        assert_eq!(
            e.words,
            "gateway `edge` could not connect to `app/x:1` in time: connect timed out \
             — firewall dropping packets, or backend host down"
        );

        let f = Failure::new(
            FailureKind::HttpResponseTimeout,
            Phase::ReadingResponseHeaders,
            "",
        );
        let e = one_proxy(&w.for_failure(&f, Some("app/x:1")).unwrap());
        assert!(
            e.words
                .starts_with("gateway `edge` got no response headers from `app/x:1` in time — "),
            "{}",
            e.words
        );

        let mut f = Failure::new(
            FailureKind::HttpResponseHeaderSectionSize,
            Phase::ReadingResponseHeaders,
            "",
        );
        f.params.header_section_size = Some(70_000);
        let e = one_proxy(&w.for_failure(&f, Some("app/x:1")).unwrap());
        assert_eq!(e.param("header-section-size"), Some("70000"));
        assert!(
            e.words
                .contains("the response headers from `app/x:1` were too large (70000 bytes) — "),
            "{}",
            e.words
        );
    }

    #[test]
    fn request_error_status_code_and_coding() {
        let w = full("edge");
        let f = Failure::client(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "");
        let e = one_proxy(&w.for_failure(&f, None).unwrap());
        assert_eq!(e.param("status-code"), Some("431"));
        assert_eq!(
            e.words,
            format!(
                "gateway `edge` rejected the request as malformed or over a limit (431) — {}",
                FailureKind::HttpRequestError.hint()
            )
        );

        let mut f = Failure::new(
            FailureKind::HttpResponseContentCoding,
            Phase::ReadingResponseBody,
            "",
        );
        f.params.coding = Some("gzip".to_owned());
        let e = one_proxy(&w.for_failure(&f, Some("app/x:1")).unwrap());
        assert_eq!(e.param("coding"), Some("gzip"));
        assert!(e.words.contains("bad content coding `gzip`"), "{}", e.words);
    }

    #[test]
    fn received_status_round_trip() {
        let e = one_proxy(
            &full("edge")
                .for_received_status(503, "app/x:1", "http/1.1")
                .unwrap(),
        );
        assert_eq!(e.error, None);
        assert_eq!(e.kind, None);
        assert_eq!(e.received_status, Some(503));
        assert_eq!(e.next_hop.as_deref(), Some("app/x:1"));
        assert_eq!(e.next_protocol.as_deref(), Some("http/1.1"));
        assert_eq!(
            e.words,
            "gateway `edge` passed on status 503 from `app/x:1`: \
             the origin's own error, not the gateway's"
        );

        let minimal = ProxyStatusWriter::new("edge", ProxyStatusMode::Minimal);
        let e = one_proxy(
            &minimal
                .for_received_status(502, "app/x:1", "http/1.1")
                .unwrap(),
        );
        assert_eq!(
            e.words,
            "gateway `edge` passed on status 502 from the upstream: \
             the origin's own error, not the gateway's"
        );
    }

    #[test]
    fn members_across_values_keep_order() {
        let origin_side = hv(r#"inner;error=http_response_timeout;next-hop="app:80", "cdn 2""#);
        let outer = hv("edge;received-status=504;next-hop=inner");
        let entries = parse_proxy_status([&origin_side, &outer]).unwrap();
        let names: Vec<&str> = entries.iter().map(|e| e.proxy.as_str()).collect();
        assert_eq!(names, ["inner", "cdn 2", "edge"]);
        assert_eq!(entries[0].kind, Some(FailureKind::HttpResponseTimeout));
        assert_eq!(entries[0].next_hop.as_deref(), Some("app:80"));
        // A string member name, no parameters.
        assert_eq!(entries[1].words, "gateway `cdn 2` handled the request");
        assert_eq!(entries[2].received_status, Some(504));
        assert_eq!(entries[2].next_hop.as_deref(), Some("inner"));
    }

    #[test]
    fn unknown_token_and_extra_params() {
        let e = one_proxy(&hv(
            r#""My Proxy";error=teapot_overheated;next-hop=backend;x-extra=?1;details="hot""#,
        ));
        assert_eq!(e.proxy, "My Proxy");
        assert_eq!(e.error.as_deref(), Some("teapot_overheated"));
        assert_eq!(e.kind, None);
        assert_eq!(e.params, vec![("x-extra".to_owned(), "true".to_owned())]);
        assert_eq!(
            e.words,
            "gateway `My Proxy` reports error `teapot_overheated` at `backend` (details: hot)"
        );
    }

    #[test]
    fn handled_without_error() {
        let e = one_proxy(&hv(r#"edge;next-hop="app/x:1""#));
        assert_eq!(e.words, "gateway `edge` handled the request via `app/x:1`");
    }

    #[test]
    fn tls_alert_uses_alert_params() {
        let e = one_proxy(&hv(
            r#"edge;error=tls_alert_received;alert-id=40;alert-message="handshake_failure";next-hop="api:443""#,
        ));
        assert_eq!(e.param("alert-id"), Some("40"));
        assert!(
            e.words.starts_with(
                "gateway `edge` received a TLS alert from `api:443`: handshake_failure (alert 40) — "
            ),
            "{}",
            e.words
        );
    }

    #[test]
    fn json_has_words_and_params_object() {
        let e = one_proxy(&hv(r#"edge;error=dns_error;rcode="NXDOMAIN""#));
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["proxy"], "edge");
        assert_eq!(json["params"]["rcode"], "NXDOMAIN");
        assert!(json.get("next_hop").is_none());
        assert!(json.get("kind").is_none());
        assert_eq!(json["words"], e.words.as_str());
    }

    #[test]
    fn invalid_input_is_err() {
        for bad in [
            "edge;error=",
            "edge;;",
            "(a b);error=x",
            "1;error=dns_error",
            "\"x",
        ] {
            let value = hv(bad);
            assert!(parse_proxy_status([&value]).is_err(), "{bad}");
            assert!(parse_cache_status([&value]).is_err(), "{bad}");
        }
        let good = hv("edge");
        let bad = hv("edge,");
        let err = parse_proxy_status([&good, &bad]).unwrap_err();
        assert!(err.contains("value #2"), "{err}");
        // No values, or an empty value: no members.
        assert!(parse_proxy_status([]).unwrap().is_empty());
        assert!(parse_proxy_status([&hv("")]).unwrap().is_empty());
    }

    #[test]
    fn every_kind_has_words_naming_the_proxy() {
        let w = full("edge-1");
        for kind in FailureKind::ALL {
            for hop in [None, Some("app/10.0.0.5:3000")] {
                let failure = Failure::new(kind, Phase::Internal, "");
                let e = one_proxy(&w.for_failure(&failure, hop).unwrap());
                assert_eq!(e.kind, Some(kind));
                assert!(e.words.starts_with("gateway `edge-1` "), "{}", e.words);
                assert!(e.words.ends_with(kind.hint()), "{}", e.words);
                let names_hop = !matches!(
                    kind,
                    FailureKind::DestinationNotFound
                        | FailureKind::HttpRequestError
                        | FailureKind::HttpRequestDenied
                        | FailureKind::ProxyInternalResponse
                        | FailureKind::ProxyInternalError
                        | FailureKind::ProxyConfigurationError
                );
                if let (Some(hop), true) = (hop, names_hop) {
                    assert!(e.words.contains(hop), "{}", e.words);
                }
            }
        }
    }

    #[test]
    fn cache_hit_fresh_and_stale() {
        let e = one_cache("edge; hit; ttl=60");
        assert!(e.hit);
        assert_eq!(e.ttl, Some(60));
        assert_eq!(e.words, "cache `edge`: hit, fresh for 60 s more");

        let e = one_cache("edge; hit; ttl=-120");
        assert_eq!(e.ttl, Some(-120));
        assert_eq!(
            e.words,
            "cache `edge`: hit, served stale (120 s past its freshness)"
        );
    }

    #[test]
    fn cache_miss_forward_and_booleans() {
        let e = one_cache("edge; fwd=uri-miss; fwd-status=200; stored");
        assert!(!e.hit);
        assert!(e.stored);
        assert_eq!(e.fwd.as_deref(), Some("uri-miss"));
        assert_eq!(e.fwd_status, Some(200));
        assert_eq!(
            e.words,
            "cache `edge`: miss (uri-miss), upstream answered 200, stored"
        );

        let e = one_cache(r#"edge; fwd=stale; fwd-status=503; detail="origin down""#);
        assert_eq!(
            e.words,
            "cache `edge`: forwarded because stale, upstream answered 503 (detail: origin down)"
        );

        let e = one_cache("edge; hit=?0; stored=?0; collapsed=?1; fwd=miss; key=\"GET /a\"");
        assert!(!e.hit);
        assert!(!e.stored);
        assert!(e.collapsed);
        assert_eq!(e.key.as_deref(), Some("GET /a"));
        assert_eq!(
            e.words,
            "cache `edge`: miss, collapsed with another request, key `GET /a`"
        );
    }

    #[test]
    fn cache_members_across_values_and_extras() {
        let a = hv(r#"OriginCache; hit; ttl=1100, "CDN Company Here"; fwd=vary-miss"#);
        let b = hv("edge; fwd=bypass; x-y=:AQID:; detail=private");
        let entries = parse_cache_status([&a, &b]).unwrap();
        let names: Vec<&str> = entries.iter().map(|e| e.cache.as_str()).collect();
        assert_eq!(names, ["OriginCache", "CDN Company Here", "edge"]);
        assert_eq!(
            entries[1].words,
            "cache `CDN Company Here`: miss (vary-miss)"
        );
        assert_eq!(entries[2].detail.as_deref(), Some("private"));
        assert_eq!(
            entries[2].params,
            vec![("x-y".to_owned(), ":AQID:".to_owned())]
        );
        let json = serde_json::to_value(&entries[0]).unwrap();
        assert_eq!(json["hit"], true);
        assert!(json.get("params").is_none());
        assert!(json.get("fwd").is_none());
    }
}
