//! nginx `error.log` lines:
//! `2026/12/05 20:57:43 [error] 28089#28089: *1 connect() failed (111: Connection refused)
//! while connecting to upstream, client: 127.0.0.1, server: , request: "GET / HTTP/1.1",
//! upstream: "http://127.0.0.1:1/", host: "127.0.0.1:19100"`.
//!
//! The message and its "while <action>" decide the kind (nginx's own messages, from
//! `ngx_http_upstream.c` and `ngx_http_proxy_module.c`); the `upstream:` field names the
//! server. Lines of other messages are readable and normal.

use gatehouse_proxy::failure::FailureKind;

use super::fields::server_of_url;
use super::record::{Event, LineRef, Parsed, Source, Stamp, epoch_ms};

/// Whether the line starts like an nginx error-log line (`YYYY/MM/DD HH:MM:SS [`).
pub(crate) fn looks_like(line: &str) -> bool {
    let b = line.as_bytes();
    b.len() > 21 && b[4] == b'/' && b[7] == b'/' && b[10] == b' ' && b[13] == b':' && b[20] == b'['
}

pub(crate) fn parse(line: &str, at: LineRef) -> Parsed {
    let Some(stamp) = time(line) else {
        return Parsed::Unreadable;
    };
    let Some(rest) = line.get(20..) else {
        return Parsed::Unreadable;
    };
    let Some((level, rest)) = rest.strip_prefix('[').and_then(|r| r.split_once("] ")) else {
        return Parsed::Unreadable;
    };
    // `PID#TID: ` then an optional `*CONNECTION `.
    let Some((_, rest)) = rest.split_once(": ") else {
        return Parsed::Unreadable;
    };
    let rest = match rest.strip_prefix('*') {
        Some(r) => r.split_once(' ').map_or(r, |(_, r)| r),
        None => rest,
    };
    if !matches!(level, "error" | "crit" | "alert" | "emerg" | "warn") {
        return Parsed::Normal(Some(stamp));
    }
    let (message, fields) = match rest.find(", client: ") {
        Some(i) => (rest.get(..i).unwrap_or(rest), rest.get(i..).unwrap_or("")),
        None => (rest, ""),
    };
    let Some(kind) = classify(message) else {
        return Parsed::Normal(Some(stamp));
    };
    let client = quoted_or_bare(fields, ", client: ");
    let request = quoted_or_bare(fields, ", request: ");
    let server = match kind {
        FailureKind::DnsError | FailureKind::DnsTimeout => message
            .split(" could not be resolved")
            .next()
            .unwrap_or("?")
            .to_owned(),
        _ => quoted_or_bare(fields, ", upstream: ")
            .map(|u| server_of_url(&u))
            .or_else(|| quoted_or_bare(fields, ", host: ").map(|h| format!("(host {h})")))
            .unwrap_or_else(|| "?".to_owned()),
    };
    let key = match (&client, &request) {
        (Some(c), Some(r)) => Some(format!("{c} {r}")),
        _ => None,
    };
    Parsed::Failure(Box::new(Event {
        source: Source::Nginx,
        kind,
        server,
        at: Some(stamp),
        request,
        client,
        status: None,
        message: message.to_owned(),
        guessed: false,
        key,
        line: at,
    }))
}

fn time(line: &str) -> Option<Stamp> {
    let num = |from: usize, to: usize| line.get(from..to)?.parse::<u32>().ok();
    let wall = epoch_ms(
        i64::from(num(0, 4)?),
        num(5, 7)?,
        num(8, 10)?,
        (num(11, 13)?, num(14, 16)?, num(17, 19)?),
        0,
    )?;
    Some(Stamp::zoneless(wall))
}

/// The value after `marker` up to the next `, name: ` field (quotes removed).
fn quoted_or_bare(fields: &str, marker: &str) -> Option<String> {
    let start = fields.find(marker)? + marker.len();
    let rest = fields.get(start..)?;
    let value = if let Some(quoted) = rest.strip_prefix('"') {
        // nginx does not escape quotes here; the value ends at `", ` before a field name, or
        // at the last quote of the line.
        let end = quoted
            .find("\", ")
            .or_else(|| quoted.rfind('"'))
            .unwrap_or(quoted.len());
        quoted.get(..end)?
    } else {
        rest.split(", ").next()?
    };
    (!value.is_empty()).then(|| value.to_owned())
}

/// The failure kind of an nginx error message; `None` for messages that are not an upstream
/// failure.
pub(crate) fn classify(message: &str) -> Option<FailureKind> {
    let action = message.rsplit_once(" while ").map_or("", |(_, a)| a);
    let reading_body = action.starts_with("reading upstream");
    let has = |s: &str| message.contains(s);
    let errno = os_error(message);
    if has("no live upstreams") {
        return Some(FailureKind::DestinationUnavailable);
    }
    if has(" could not be resolved") {
        return Some(if errno == Some(110) || has("timed out") {
            FailureKind::DnsTimeout
        } else {
            FailureKind::DnsError
        });
    }
    if has("upstream timed out") {
        return Some(match action {
            a if a.starts_with("connecting") || a.starts_with("SSL handshaking") => {
                FailureKind::ConnectionTimeout
            }
            a if a.starts_with("sending request") => FailureKind::ConnectionWriteTimeout,
            a if a.starts_with("reading upstream") => FailureKind::ConnectionReadTimeout,
            _ => FailureKind::HttpResponseTimeout,
        });
    }
    if has("upstream sent too big header") {
        return Some(FailureKind::HttpResponseHeaderSectionSize);
    }
    if has("upstream sent invalid chunked response") || has("unknown \"Transfer-Encoding\"") {
        return Some(FailureKind::HttpResponseTransferCoding);
    }
    if has("upstream sent invalid header")
        || has("upstream sent no valid HTTP/1.0 header")
        || has("upstream sent duplicate header line")
        || has("upstream sent invalid \"Content-Length\"")
        || has("upstream sent more data than specified")
        || has("upstream sent invalid status")
    {
        return Some(FailureKind::HttpProtocolError);
    }
    if has("upstream SSL certificate") || has("certificate verify failed") {
        return Some(FailureKind::TlsCertificateError);
    }
    // TLS 1.3 servers may send their alert after the handshake: `SSL_read() failed (... SSL
    // alert number 116) while reading response header from upstream`.
    if has("SSL_do_handshake() failed")
        || has("in SSL handshake")
        || (has("SSL_read() failed") && has("alert number"))
    {
        return Some(if has("alert number") {
            FailureKind::TlsAlertReceived
        } else {
            FailureKind::TlsProtocolError
        });
    }
    let upstream_action = action.contains("upstream");
    if has("connect() failed") || (has("connect() to ") && has(" failed")) {
        return Some(match errno {
            Some(110) => FailureKind::ConnectionTimeout,
            Some(101 | 113 | 99) => FailureKind::DestinationIpUnroutable,
            Some(13) => FailureKind::DestinationIpProhibited,
            _ => FailureKind::ConnectionRefused,
        });
    }
    if has("upstream prematurely closed connection")
        || (upstream_action && matches!(errno, Some(104 | 32)))
    {
        return Some(if reading_body {
            FailureKind::HttpResponseIncomplete
        } else {
            FailureKind::ConnectionTerminated
        });
    }
    None
}

/// The errno of `(111: Connection refused)`: the first parenthesis that opens on a number.
fn os_error(message: &str) -> Option<i32> {
    message.split('(').skip(1).find_map(|rest| {
        let (num, _) = rest.split_once(':')?;
        num.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> LineRef {
        LineRef {
            file: "error.log".into(),
            line: 1,
        }
    }

    fn event(line: &str) -> Event {
        match parse(line, at()) {
            Parsed::Failure(e) => *e,
            other => panic!("not a failure: {other:?}"),
        }
    }

    // Lines as nginx 1.22.1 wrote them in this project's tests.
    const REFUSED: &str = r#"2026/12/05 20:57:43 [error] 28089#28089: *1 connect() failed (111: Connection refused) while connecting to upstream, client: 127.0.0.1, server: , request: "GET /refused?q=1 HTTP/1.1", upstream: "http://127.0.0.1:1/refused?q=1", host: "127.0.0.1:19100""#;

    #[test]
    fn refused_with_its_fields() {
        let e = event(REFUSED);
        assert_eq!(e.kind, FailureKind::ConnectionRefused);
        assert_eq!(e.server, "127.0.0.1:1");
        assert_eq!(e.client.as_deref(), Some("127.0.0.1"));
        assert_eq!(e.request.as_deref(), Some("GET /refused?q=1 HTTP/1.1"));
        assert_eq!(
            e.key.as_deref(),
            Some("127.0.0.1 GET /refused?q=1 HTTP/1.1")
        );
        assert!(e.message.starts_with("connect() failed (111"));
    }

    #[test]
    fn each_message_has_its_kind() {
        let cases = [
            (
                "upstream prematurely closed connection while reading response header from upstream",
                FailureKind::ConnectionTerminated,
            ),
            (
                "upstream prematurely closed connection while reading upstream",
                FailureKind::HttpResponseIncomplete,
            ),
            (
                "upstream timed out (110: Connection timed out) while reading response header from upstream",
                FailureKind::HttpResponseTimeout,
            ),
            (
                "upstream timed out (110: Connection timed out) while connecting to upstream",
                FailureKind::ConnectionTimeout,
            ),
            (
                "upstream timed out (110: Connection timed out) while sending request to upstream",
                FailureKind::ConnectionWriteTimeout,
            ),
            (
                "upstream timed out (110: Connection timed out) while reading upstream",
                FailureKind::ConnectionReadTimeout,
            ),
            (
                "upstream sent too big header while reading response header from upstream",
                FailureKind::HttpResponseHeaderSectionSize,
            ),
            (
                r#"upstream sent invalid header: "Bad\x20..." while reading response header from upstream"#,
                FailureKind::HttpProtocolError,
            ),
            (
                "upstream sent no valid HTTP/1.0 header while reading response header from upstream",
                FailureKind::HttpProtocolError,
            ),
            (
                "upstream sent invalid chunked response while reading upstream",
                FailureKind::HttpResponseTransferCoding,
            ),
            (
                "no live upstreams while connecting to upstream",
                FailureKind::DestinationUnavailable,
            ),
            (
                "connect() to 10.0.0.9:80 failed (113: No route to host) while connecting to upstream",
                FailureKind::DestinationIpUnroutable,
            ),
            (
                "recv() failed (104: Connection reset by peer) while reading response header from upstream",
                FailureKind::ConnectionTerminated,
            ),
            (
                "peer closed connection in SSL handshake while SSL handshaking to upstream",
                FailureKind::TlsProtocolError,
            ),
            (
                "SSL_do_handshake() failed (SSL: error:0A00010B:SSL routines::wrong version number) while SSL handshaking to upstream",
                FailureKind::TlsProtocolError,
            ),
            (
                "SSL_do_handshake() failed (SSL: error:0A000410:SSL routines::sslv3 alert handshake failure:SSL alert number 40) while SSL handshaking to upstream",
                FailureKind::TlsAlertReceived,
            ),
            (
                "upstream SSL certificate verify error: (10:certificate has expired) while SSL handshaking to upstream",
                FailureKind::TlsCertificateError,
            ),
            (
                "upstream SSL certificate does not match \"app.internal\" while SSL handshaking to upstream",
                FailureKind::TlsCertificateError,
            ),
            (
                "nonexist.invalid could not be resolved (110: Operation timed out)",
                FailureKind::DnsTimeout,
            ),
            (
                "nonexist.invalid could not be resolved (3: Host not found)",
                FailureKind::DnsError,
            ),
        ];
        for (message, kind) in cases {
            assert_eq!(classify(message), Some(kind), "{message}");
        }
        let late_alert = "SSL_read() failed (SSL: error:0A00045C:SSL routines::tlsv13 alert certificate required:SSL alert number 116) while reading response header from upstream";
        assert_eq!(classify(late_alert), Some(FailureKind::TlsAlertReceived));
        assert_eq!(
            classify("client 127.0.0.1 closed keepalive connection"),
            None
        );
        assert_eq!(
            classify("upstream server temporarily disabled while connecting to upstream"),
            None
        );
    }

    #[test]
    fn dns_names_the_host_and_no_live_names_the_block() {
        let dns = r#"2026/12/05 20:57:45 [error] 28089#28089: *23 nonexist.invalid could not be resolved (110: Operation timed out), client: 127.0.0.1, server: , request: "GET /dns?q=1 HTTP/1.1", host: "127.0.0.1:19100""#;
        let e = event(dns);
        assert_eq!(
            (e.kind, e.server.as_str()),
            (FailureKind::DnsTimeout, "nonexist.invalid")
        );
        let nolive = r#"2026/12/05 20:57:50 [error] 28238#28238: *4 no live upstreams while connecting to upstream, client: 127.0.0.1, server: , request: "GET /dead HTTP/1.1", upstream: "http://dead/dead", host: "127.0.0.1:19100""#;
        assert_eq!(event(nolive).server, "dead");
    }

    #[test]
    fn crit_handshake_alert() {
        // As nginx 1.22.1 logged a server that requires a client certificate.
        let line = r#"2026/12/05 21:14:33 [crit] 10119#10119: *2 SSL_do_handshake() failed (SSL: error:0A00045C:SSL routines::tlsv13 alert certificate required:SSL alert number 116) while SSL handshaking to upstream, client: 127.0.0.1, server: , request: "GET /client-cert HTTP/1.1", upstream: "https://127.0.0.1:33667/client-cert", host: "test""#;
        let e = event(line);
        assert_eq!(
            (e.kind, e.server.as_str()),
            (FailureKind::TlsAlertReceived, "127.0.0.1:33667")
        );
    }

    #[test]
    fn notices_are_normal_and_garbage_is_unreadable() {
        let notice = "2026/12/05 20:57:43 [notice] 28089#28089: using the \"epoll\" event method";
        assert!(matches!(parse(notice, at()), Parsed::Normal(Some(_))));
        assert!(matches!(
            parse("2026/99/99 99:99:99 [error] x", at()),
            Parsed::Unreadable
        ));
        assert!(matches!(
            parse("2026/12/05 20:57:43 [error", at()),
            Parsed::Unreadable
        ));
    }
}
