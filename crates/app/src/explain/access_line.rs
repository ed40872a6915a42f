//! Access lines in the combined format: nginx's (`combined`, or a custom `log_format` that
//! appends `$upstream_status`, `$upstream_addr`, `$upstream_response_time`, `$request_time`
//! ... as `key=value`) and gatehouse's own (`access_log_format = "combined"`, which appends
//! `upstream=... upstream_status=... failure=KIND request_id=...`).
//!
//! gatehouse's lines name the failure kind. nginx's say only the status: a 502/503/504 is a
//! failure whose kind is guessed from the status and timings, unless an error-log line of the
//! same request is found (the correlator matches them).

use gatehouse_proxy::failure::{FailureKind, Side};

use super::fields::{last_of_list, tail_fields};
use super::record::{
    AccessLine, Event, LineRef, Parsed, Source, Stamp, parse_clf_wall, parse_offset,
};

/// Whether the line starts like a combined access line: `ADDR - USER [`.
pub(crate) fn looks_like(line: &str) -> bool {
    let mut tokens = line.splitn(4, ' ');
    let client = tokens.next().unwrap_or("");
    let dash = tokens.next().unwrap_or("");
    let _user = tokens.next();
    let rest = tokens.next().unwrap_or("");
    !client.is_empty()
        && client
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b'.' || b == b':')
        && dash == "-"
        && rest.starts_with('[')
}

/// The pieces of a combined line.
struct Combined<'a> {
    client: &'a str,
    at: Stamp,
    request: &'a str,
    status: u16,
    tail: &'a str,
}

fn split(line: &str) -> Option<Combined<'_>> {
    let (client, rest) = line.split_once(' ')?;
    let open = rest.find('[')?;
    let rest = rest.get(open + 1..)?;
    let (date, rest) = rest.split_once(']')?;
    let (wall_text, zone) = date.split_once(' ').unwrap_or((date, "+0000"));
    let wall = parse_clf_wall(wall_text)?;
    let offset = parse_offset(zone)?;
    let rest = rest.strip_prefix(" \"")?;
    // nginx and gatehouse escape `"` inside the request line as \x22.
    let (request, rest) = rest.split_once("\" ")?;
    let mut tokens = rest.splitn(3, ' ');
    let status: u16 = tokens.next()?.parse().ok()?;
    let _bytes = tokens.next()?;
    let mut tail = tokens.next().unwrap_or("");
    // Referer and User-Agent, when present: two quoted fields.
    for _ in 0..2 {
        if let Some(quoted) = tail.strip_prefix('"') {
            tail = quoted.split_once('"').map_or("", |(_, t)| t).trim_start();
        }
    }
    Some(Combined {
        client,
        at: Stamp {
            utc: wall - offset * 60_000,
            wall,
        },
        request,
        status,
        tail,
    })
}

pub(crate) fn parse(line: &str, at: LineRef) -> Parsed {
    let Some(c) = split(line) else {
        return Parsed::Unreadable;
    };
    let fields = tail_fields(c.tail);
    let get = |names: &[&str]| {
        fields
            .iter()
            .find(|(k, _)| names.contains(&k.as_str()))
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty() && *v != "-")
    };
    let request = (c.request != "-").then(|| c.request.to_owned());
    let base = |source, kind, server: String, guessed, message: String, key| Event {
        source,
        kind,
        server,
        at: Some(c.at),
        request: request.clone(),
        client: Some(c.client.to_owned()),
        status: Some(c.status),
        message,
        guessed,
        key,
        line: at.clone(),
    };
    // gatehouse's own combined line names the kind.
    if let (Some(failure), true) = (
        fields.iter().find(|(k, _)| k == "failure"),
        get(&["request_id"]).is_some(),
    ) {
        let kind = FailureKind::from_token(&failure.1).filter(|k| k.side() == Side::Upstream);
        let Some(kind) = kind else {
            return Parsed::Normal(Some(c.at));
        };
        let server = get(&["upstream"]).unwrap_or("?").to_owned();
        let event = base(
            Source::Gatehouse,
            kind,
            server,
            false,
            format!("{} failure={}", c.status, kind.token()),
            get(&["request_id"]).map(str::to_owned),
        );
        return access(event, get(&["rt"]), usize::MAX, true);
    }
    let stands_alone = matches!(c.status, 502..=504);
    if !stands_alone && request.is_none() {
        return Parsed::Normal(Some(c.at));
    }
    let logged = |names: &[&str]| {
        fields
            .iter()
            .find(|(k, _)| names.contains(&k.as_str()))
            .map(|(_, v)| if v.is_empty() { "-" } else { v.as_str() })
    };
    let kind = guess(
        c.status,
        logged(&["upstream_addr", "ua", "upstream"]),
        logged(&["upstream_response_time", "urt"]),
        logged(&["upstream_connect_time", "uct"]),
    );
    let addr = get(&["upstream_addr", "ua", "upstream"]);
    let response_time = get(&["upstream_response_time", "urt"]);
    let connect_time = get(&["upstream_connect_time", "uct"]);
    let mut why = format!("status {}", c.status);
    for (name, value) in [
        ("upstream", addr),
        ("upstream_response_time", response_time),
        ("upstream_connect_time", connect_time),
    ] {
        if let Some(value) = value {
            why.push_str(&format!(", {name} {value}"));
        }
    }
    let server = addr.map_or_else(|| "?".to_owned(), |a| last_of_list(a).to_owned());
    let key = request.as_ref().map(|r| format!("{} {r}", c.client));
    let event = base(Source::Nginx, kind, server, true, why, key);
    let attempts = addr.map_or(1, |a| a.split(", ").count());
    access(event, get(&["request_time", "rt"]), attempts, stands_alone)
}

fn access(event: Event, took: Option<&str>, attempts: usize, stands_alone: bool) -> Parsed {
    let took_ms = took
        .and_then(|t| last_of_list(t).parse::<f64>().ok())
        .filter(|t| t.is_finite() && *t >= 0.0)
        .map_or(0, |t| (t * 1000.0).round().min(1e12) as i64);
    Parsed::Access(Box::new(AccessLine {
        event,
        took_ms,
        attempts,
        stands_alone,
    }))
}

/// The likely kind of an nginx 502/503/504 seen only in the access log: a guess, said so.
/// `addr` and `connect_time` are the raw values (`-` when nginx logged the variable empty),
/// `None` when the log format does not have them.
fn guess(
    status: u16,
    addr: Option<&str>,
    response_time: Option<&str>,
    connect_time: Option<&str>,
) -> FailureKind {
    let seconds = |v: Option<&str>| v.and_then(|v| last_of_list(v).parse::<f64>().ok());
    match status {
        // `$upstream_connect_time` is `-` when the connect never completed.
        504 if connect_time.is_some_and(|t| last_of_list(t) == "-") => {
            FailureKind::ConnectionTimeout
        }
        504 => FailureKind::HttpResponseTimeout,
        503 => FailureKind::DestinationUnavailable,
        // No upstream was ever tried: the name did not resolve.
        _ if addr == Some("-") => FailureKind::DnsError,
        // Failed at once, or nothing logged to say otherwise: the most common 502.
        _ if addr.is_none() || seconds(response_time) == Some(0.0) => {
            FailureKind::ConnectionRefused
        }
        _ => FailureKind::ConnectionTerminated,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> LineRef {
        LineRef {
            file: "access.log".into(),
            line: 3,
        }
    }

    fn access_event(line: &str) -> AccessLine {
        match parse(line, at()) {
            Parsed::Access(a) => *a,
            other => panic!("not an access failure: {other:?}"),
        }
    }

    #[test]
    fn nginx_line_with_upstream_fields() {
        // As nginx 1.22.1 wrote it with `us=$upstream_status ua=$upstream_addr
        // urt=$upstream_response_time rt=$request_time` appended to the combined format.
        let line = r#"127.0.0.1 - - [05/Dec/2026:20:57:44 +0000] "GET /hang?q=1 HTTP/1.1" 504 167 "-" "curl/x" us=504 ua=127.0.0.1:19002 urt=1.001 rt=1.001"#;
        let a = access_event(line);
        assert_eq!(a.event.kind, FailureKind::HttpResponseTimeout);
        assert!(a.event.guessed);
        assert_eq!(a.event.server, "127.0.0.1:19002");
        assert_eq!(a.event.status, Some(504));
        assert_eq!(a.took_ms, 1001);
        assert_eq!(
            a.event.key.as_deref(),
            Some("127.0.0.1 GET /hang?q=1 HTTP/1.1")
        );
        let retried = r#"127.0.0.1 - - [05/Dec/2026:20:57:50 +0000] "GET /dead HTTP/1.1" 502 157 "-" "curl/7.88.1" us=502, 502 ua=127.0.0.1:1, 127.0.0.1:2 urt=0.000, 0.000 rt=0.000"#;
        let a = access_event(retried);
        assert_eq!(
            (a.event.kind, a.event.server.as_str()),
            (FailureKind::ConnectionRefused, "127.0.0.1:2")
        );
        let unresolved = r#"127.0.0.1 - - [05/Dec/2026:20:57:45 +0000] "GET /dns?q=1 HTTP/1.1" 502 157 "-" "curl/x" us=- ua=- urt=- rt=1.001"#;
        assert_eq!(access_event(unresolved).event.kind, FailureKind::DnsError);
        let no_connect = r#"127.0.0.1 - - [05/Dec/2026:20:57:45 +0000] "GET / HTTP/1.1" 504 0 "-" "-" ua=10.0.0.1:80 uct=- urt=1.000"#;
        assert_eq!(
            access_event(no_connect).event.kind,
            FailureKind::ConnectionTimeout
        );
        // Positional extra fields are not read: the combined part still is.
        let positional = r#"127.0.0.1 - - [05/Dec/2026:20:57:45 +0000] "GET / HTTP/1.1" 502 0 "-" "-" 127.0.0.1:1 502 0.000"#;
        assert_eq!(access_event(positional).event.server, "?");
    }

    #[test]
    fn plain_combined_and_normal_lines() {
        let ok = r#"127.0.0.1 - - [05/Dec/2026:20:57:44 +0000] "GET /half?q=1 HTTP/1.1" 200 3 "-" "curl/x""#;
        assert!(matches!(parse(ok, at()), Parsed::Access(a) if !a.stands_alone));
        let no_request = r#"127.0.0.1 - - [05/Dec/2026:20:57:44 +0000] "-" 400 0 "-" "-""#;
        assert!(matches!(parse(no_request, at()), Parsed::Normal(Some(_))));
        let bad = r#"::1 - bob [05/Dec/2026:20:57:44 -0100] "POST /x HTTP/1.1" 502 0 "-" "-""#;
        let a = access_event(bad);
        assert_eq!(a.event.kind, FailureKind::ConnectionRefused);
        assert!(a.event.guessed && a.stands_alone);
        assert_eq!(a.event.at.map(|s| s.utc - s.wall), Some(3_600_000));
        assert!(looks_like(bad));
        assert!(!looks_like("hello - - world"));
    }

    #[test]
    fn gatehouse_combined_names_the_kind() {
        let line = r#"192.0.2.7 - - [21/Nov/2026:01:55:18 +0000] "GET /a HTTP/1.1" 502 0 "-" "curl/8.5.0" rt=0.012 upstream="app/127.0.0.1:3000" upstream_status=- failure=connection_refused request_id=req-1"#;
        let a = access_event(line);
        assert_eq!(a.event.kind, FailureKind::ConnectionRefused);
        assert_eq!(a.event.source, Source::Gatehouse);
        assert!(!a.event.guessed);
        assert_eq!(a.event.server, "app/127.0.0.1:3000");
        assert_eq!(a.event.key.as_deref(), Some("req-1"));
        let fine = line
            .replace("failure=connection_refused", "failure=-")
            .replace(" 502 0", " 200 5");
        assert!(matches!(parse(&fine, at()), Parsed::Normal(_)));
    }
}
