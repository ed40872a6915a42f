//! gatehouse's own log, as text or JSON (`log_format`), and its JSON access lines
//! (`access_log_format = "json"`).
//!
//! A failure warning (target `gatehouse::failure`, one per failed attempt) names the kind, the
//! pool and the server; an access record (target `gatehouse::access`, or a JSON access line)
//! says what the client got and is matched to its warnings by request id.

use gatehouse_proxy::failure::{FailureKind, Side};
use serde_json::Value;

use super::fields::field;
use super::record::{AccessLine, Event, LineRef, Parsed, Source, Stamp, parse_rfc3339};

/// Whether the line starts like a gatehouse text log line (an RFC 3339 time, then a level).
pub(crate) fn looks_like_text(line: &str) -> bool {
    line.split_once(' ')
        .is_some_and(|(time, _)| time.len() >= 20 && parse_rfc3339(time).is_some())
}

/// What a line (text or JSON) holds, before it becomes a [`Parsed`].
#[derive(Default)]
struct Fields {
    at: Option<Stamp>,
    target: String,
    kind: Option<String>,
    server: Option<String>,
    message: String,
    request_id: Option<String>,
    status: Option<u16>,
    method: Option<String>,
    path: Option<String>,
    client: Option<String>,
    total_ms: Option<f64>,
    /// A line of gatehouse's (a known target, or a JSON access line).
    known: bool,
}

pub(crate) fn parse_text(line: &str, at: LineRef) -> Parsed {
    let mut tokens = line.split_whitespace();
    let stamp = tokens.next().and_then(parse_rfc3339);
    let _level = tokens.next();
    let target = tokens
        .next()
        .and_then(|t| t.strip_suffix(':'))
        .unwrap_or("");
    let Some(stamp) = stamp.filter(|_| !target.is_empty()) else {
        return Parsed::Unreadable;
    };
    let message = line
        .split_once(&format!(" {target}: "))
        .map_or("", |(_, m)| m);
    // The message is what precedes the first field of the event.
    let message = message.split(" kind=").next().unwrap_or(message).to_owned();
    let fields = Fields {
        at: Some(stamp),
        target: target.to_owned(),
        kind: field(line, "kind").or_else(|| field(line, "failure")),
        server: server([
            field(line, "server"),
            field(line, "upstream"),
            field(line, "pool"),
        ]),
        message,
        request_id: field(line, "request_id"),
        status: field(line, "status").and_then(|v| v.parse().ok()),
        method: field(line, "method"),
        path: field(line, "path"),
        client: field(line, "client"),
        total_ms: field(line, "total_ms").and_then(|v| v.parse().ok()),
        known: target.starts_with("gatehouse"),
    };
    build(fields, at)
}

pub(crate) fn parse_json(line: &str, at: LineRef) -> Parsed {
    let Ok(Value::Object(object)) = serde_json::from_str::<Value>(line) else {
        return Parsed::Unreadable;
    };
    let text = |key: &str| object.get(key).and_then(Value::as_str).map(str::to_owned);
    let target = text("target").unwrap_or_default();
    let access_line = object.contains_key("request_id") && object.contains_key("failure");
    let fields = Fields {
        at: text("timestamp")
            .or_else(|| text("time"))
            .and_then(|t| parse_rfc3339(&t)),
        known: target.starts_with("gatehouse") || access_line,
        target: if access_line && target.is_empty() {
            "gatehouse::access".to_owned()
        } else {
            target
        },
        kind: text("kind").or_else(|| text("failure")),
        server: server([text("server"), text("upstream"), text("pool")]),
        message: text("message").unwrap_or_default(),
        request_id: text("request_id"),
        status: object
            .get("status")
            .and_then(Value::as_u64)
            .and_then(|s| u16::try_from(s).ok()),
        method: text("method"),
        path: text("path"),
        client: text("client"),
        total_ms: object.get("total_ms").and_then(Value::as_f64),
    };
    build(fields, at)
}

/// The server a line names (`pool/host:port`), else its pool: a failure before any server
/// was chosen (`destination_unavailable`) has `server="-"` and the pool's name.
fn server(candidates: [Option<String>; 3]) -> Option<String> {
    candidates
        .into_iter()
        .flatten()
        .find(|s| !s.is_empty() && s != "-")
}

fn build(f: Fields, at: LineRef) -> Parsed {
    if !f.known {
        return Parsed::Unreadable;
    }
    let kind = f
        .kind
        .as_deref()
        .and_then(FailureKind::from_token)
        .filter(|k| k.side() == Side::Upstream);
    let is_failure = f.target == "gatehouse::failure";
    let is_access = f.target == "gatehouse::access";
    let Some(kind) = kind.filter(|_| is_failure || is_access) else {
        return Parsed::Normal(f.at);
    };
    let request = match (&f.method, &f.path) {
        (Some(m), Some(p)) => Some(format!("{m} {p}")),
        _ => None,
    };
    let event = Event {
        source: Source::Gatehouse,
        kind,
        server: f
            .server
            .filter(|s| s != "-")
            .unwrap_or_else(|| "?".to_owned()),
        at: f.at,
        request,
        client: f.client,
        status: f.status,
        message: if f.message.is_empty() {
            format!("failure={}", kind.token())
        } else {
            f.message
        },
        guessed: false,
        key: f.request_id,
        line: at,
    };
    if is_access {
        let took_ms = f
            .total_ms
            .filter(|t| t.is_finite() && *t >= 0.0)
            .map_or(0, |t| t.min(1e12) as i64);
        Parsed::Access(Box::new(AccessLine {
            event,
            took_ms,
            attempts: usize::MAX,
            stands_alone: true,
        }))
    } else {
        Parsed::Failure(Box::new(event))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> LineRef {
        LineRef {
            file: "gatehouse.log".into(),
            line: 4,
        }
    }

    // Lines as gatehouse wrote them (log_format text and json) for a refused connection.
    const TEXT_WARN: &str = r#"2026-12-05T20:57:15.393738Z  WARN gatehouse::failure: connection_refused while connecting to upstream: connect to 127.0.0.1:1: Connection refused (os error 111) kind="connection_refused" phase="while connecting to upstream" pool="app" server="app/127.0.0.1:1" attempt=1 request_sent=false os_error=111 request_id="751ff56e54c62c72" hint="backend not running, or wrong port""#;
    const TEXT_ACCESS: &str = r#"2026-12-05T20:57:15.394696Z  INFO gatehouse::access: client=127.0.0.1 method=GET path=/x?y=1 status=502 route="/" upstream="app/127.0.0.1:1" failure="connection_refused" attempts=1 total_ms=1.260705 bytes=0 client_aborted=false upstream_aborted=false request_id=751ff56e54c62c72"#;
    const JSON_WARN: &str = r#"{"timestamp":"2026-12-05T20:57:16.412946Z","level":"WARN","message":"connection_refused while connecting to upstream: connect to 127.0.0.1:1: Connection refused (os error 111)","kind":"connection_refused","phase":"while connecting to upstream","pool":"app","server":"app/127.0.0.1:1","attempt":1,"request_sent":false,"os_error":111,"request_id":"b2aefdfa57120974","hint":"backend not running, or wrong port","target":"gatehouse::failure"}"#;
    const JSON_ACCESS: &str = r#"{"timestamp":"2026-12-05T20:57:16.414176Z","level":"INFO","client":"127.0.0.1","method":"GET","path":"/x?y=1","status":502,"route":"/","upstream":"app/127.0.0.1:1","failure":"connection_refused","attempts":1,"total_ms":1.587579,"bytes":0,"client_aborted":false,"upstream_aborted":false,"request_id":"b2aefdfa57120974","target":"gatehouse::access"}"#;

    #[test]
    fn text_warning_and_access() {
        let Parsed::Failure(e) = parse_text(TEXT_WARN, at()) else {
            panic!("warning not read")
        };
        assert_eq!(e.kind, FailureKind::ConnectionRefused);
        assert_eq!(e.server, "app/127.0.0.1:1");
        assert_eq!(e.key.as_deref(), Some("751ff56e54c62c72"));
        assert!(
            e.message.starts_with("connection_refused while connecting"),
            "{}",
            e.message
        );
        let Parsed::Access(a) = parse_text(TEXT_ACCESS, at()) else {
            panic!("access not read")
        };
        assert_eq!(a.event.status, Some(502));
        assert_eq!(a.event.request.as_deref(), Some("GET /x?y=1"));
        assert_eq!(a.event.key.as_deref(), Some("751ff56e54c62c72"));
    }

    #[test]
    fn json_warning_and_access() {
        let Parsed::Failure(e) = parse_json(JSON_WARN, at()) else {
            panic!("warning not read")
        };
        assert_eq!(
            (e.kind, e.server.as_str()),
            (FailureKind::ConnectionRefused, "app/127.0.0.1:1")
        );
        let Parsed::Access(a) = parse_json(JSON_ACCESS, at()) else {
            panic!("access not read")
        };
        assert_eq!(a.took_ms, 1);
        let ok = JSON_ACCESS
            .replace("\"failure\":\"connection_refused\"", "\"failure\":null")
            .replace(":502", ":200");
        assert!(matches!(parse_json(&ok, at()), Parsed::Normal(Some(_))));
    }

    #[test]
    fn other_lines() {
        let info = "2026-12-05T20:57:14.693658Z  INFO gatehouse_proxy::server: listening addr=127.0.0.1:18471 protocol=\"http\" sockets=2";
        assert!(looks_like_text(info));
        assert!(matches!(parse_text(info, at()), Parsed::Normal(Some(_))));
        assert!(matches!(parse_json("{\"a\":1}", at()), Parsed::Unreadable));
        assert!(matches!(parse_json("{not json", at()), Parsed::Unreadable));
        // Before any server was chosen: the pool names the group.
        let unavailable = TEXT_WARN
            .replace(
                "kind=\"connection_refused\"",
                "kind=\"destination_unavailable\"",
            )
            .replace("server=\"app/127.0.0.1:1\"", "server=\"-\"");
        let Parsed::Failure(e) = parse_text(&unavailable, at()) else {
            panic!("not read")
        };
        assert_eq!(e.server, "app");
        // A client error is not an upstream failure.
        let client =
            TEXT_WARN.replace("kind=\"connection_refused\"", "kind=\"http_request_error\"");
        assert!(matches!(parse_text(&client, at()), Parsed::Normal(_)));
    }
}
