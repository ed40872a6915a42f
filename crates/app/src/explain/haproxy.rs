//! HAProxy `option httplog` lines, with or without a syslog prefix:
//! `<134>Dec  5 20:57:57 haproxy[28313]: 127.0.0.1:52932 [05/Dec/2026:20:57:55.964] f
//! refused/s1 0/0/-1/-1/2002 503 217 - - SC-- 1/1/0/0/2 0/0 "GET /refused?q=1 HTTP/1.1"`.
//!
//! The termination state's first two letters (who ended the session, and in which phase; the
//! HAProxy configuration manual, section 8.5) decide the kind. Sessions the client ended
//! (`cD`, `CD`, `CH`, ...) are shown apart: they are not upstream failures. Other lines of a
//! `haproxy[PID]:` program (start-up notices, server state changes) are readable and normal.

use gatehouse_proxy::failure::FailureKind;

use super::record::{ClientSide, Event, LineRef, Parsed, Source, Stamp, parse_clf_wall};

/// The fields of one httplog line that explain needs.
#[derive(Debug)]
struct HttpLog<'a> {
    client: &'a str,
    at: Stamp,
    backend: &'a str,
    server: &'a str,
    timers: &'a str,
    status: Option<u16>,
    state: &'a str,
    retries: &'a str,
    request: Option<&'a str>,
}

/// Whether the line is HAProxy's: an httplog line, or any line of a `haproxy[PID]:` program.
pub(crate) fn looks_like(line: &str) -> bool {
    find_core(line).is_some() || program_line(line)
}

fn program_line(line: &str) -> bool {
    line.find("haproxy[")
        .and_then(|i| line.get(i..))
        .is_some_and(|rest| rest.contains("]: "))
}

/// Where the httplog part starts: `ADDR:PORT [dd/Mon/yyyy:hh:mm:ss.mmm] `.
fn find_core(line: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = line.get(from..)?.find(" [") {
        let open = from + i;
        let start = line.get(..open)?.rfind(' ').map_or(0, |s| s + 1);
        let addr = line.get(start..open)?;
        let date_ok = line
            .get(open + 2..)
            .and_then(|r| r.split_once(']'))
            .is_some_and(|(d, _)| parse_clf_wall(d).is_some());
        if date_ok
            && addr
                .rsplit_once(':')
                .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            return Some(start);
        }
        from = open + 2;
    }
    None
}

fn split(core: &str) -> Option<HttpLog<'_>> {
    let (client, rest) = core.split_once(" [")?;
    let (date, rest) = rest.split_once("] ")?;
    let wall = parse_clf_wall(date)?;
    let mut tokens = rest.split(' ').filter(|t| !t.is_empty());
    let _frontend = tokens.next()?;
    let (backend, server) = tokens.next()?.split_once('/')?;
    let timers = tokens.next()?;
    if timers.split('/').count() != 5 {
        return None;
    }
    let status = tokens.next()?.parse::<i32>().ok()?;
    let _bytes = tokens.next()?;
    let _cookie_req = tokens.next()?;
    let _cookie_resp = tokens.next()?;
    let state = tokens.next()?;
    if state.len() != 4 {
        return None;
    }
    let conns = tokens.next()?;
    let retries = conns.split('/').nth(4)?;
    let request = core
        .find(" \"")
        .and_then(|i| core.get(i + 2..))
        .map(|r| r.strip_suffix('"').unwrap_or(r).trim_end_matches('"'));
    Some(HttpLog {
        client,
        at: Stamp::zoneless(wall),
        backend,
        server,
        timers,
        status: u16::try_from(status).ok(),
        state,
        retries,
        request,
    })
}

pub(crate) fn parse(line: &str, at: LineRef) -> Parsed {
    let Some(start) = find_core(line) else {
        return if program_line(line) {
            Parsed::Normal(None)
        } else {
            Parsed::Unreadable
        };
    };
    let Some(log) = line.get(start..).and_then(split) else {
        return Parsed::Unreadable;
    };
    let mut state = log.state.chars();
    let (first, phase) = (state.next().unwrap_or('-'), state.next().unwrap_or('-'));
    let no_server = log.server == "<NOSRV>";
    let kind = match (first, phase) {
        ('S', 'C') if no_server => Some(FailureKind::DestinationUnavailable),
        ('S', 'C') => Some(FailureKind::ConnectionRefused),
        ('s', 'C') => Some(FailureKind::ConnectionTimeout),
        ('S', 'H') => Some(FailureKind::ConnectionTerminated),
        ('s', 'H') => Some(FailureKind::HttpResponseTimeout),
        ('S', 'D' | 'L') => Some(FailureKind::HttpResponseIncomplete),
        ('s', 'D' | 'L') => Some(FailureKind::ConnectionReadTimeout),
        ('P', 'H') => Some(FailureKind::HttpProtocolError),
        ('P', 'D' | 'L') => Some(FailureKind::HttpResponseTransferCoding),
        ('s' | 'S', 'Q') | ('P', 'C') => Some(FailureKind::ConnectionLimitReached),
        // Killed because the server went down (`on-marked-down shutdown-sessions`).
        ('D', _) => Some(FailureKind::DestinationUnavailable),
        (_, _) if no_server && log.status == Some(503) => Some(FailureKind::DestinationUnavailable),
        _ => None,
    };
    let server = format!("{}/{}", log.backend, log.server);
    let Some(kind) = kind else {
        if matches!(first, 'c' | 'C') {
            return Parsed::ClientSide(Box::new(ClientSide {
                source: Source::Haproxy,
                state: log.state.get(..2).unwrap_or(log.state).to_owned(),
                server,
                at: Some(log.at),
                line: at,
            }));
        }
        return Parsed::Normal(Some(log.at));
    };
    let retries = log.retries.trim_start_matches('+');
    let mut message = format!(
        "termination state {} (timers Tq/Tw/Tc/Tr/Ta {})",
        log.state, log.timers
    );
    if retries != "0" {
        message.push_str(&format!(", {retries} retries"));
    }
    Parsed::Failure(Box::new(Event {
        source: Source::Haproxy,
        kind,
        server,
        at: Some(log.at),
        request: log.request.map(str::to_owned),
        client: Some(
            log.client
                .rsplit_once(':')
                .map_or(log.client, |(ip, _)| ip)
                .to_owned(),
        ),
        status: log.status,
        message,
        guessed: false,
        key: None,
        line: at,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> LineRef {
        LineRef {
            file: "haproxy.log".into(),
            line: 7,
        }
    }

    fn kind(line: &str) -> (FailureKind, String, Option<u16>) {
        match parse(line, at()) {
            Parsed::Failure(e) => (e.kind, e.server, e.status),
            other => panic!("not a failure: {other:?}"),
        }
    }

    // Lines as HAProxy 2.6 sent them to syslog in this project's tests.
    const SC: &str = r#"<134>Dec  5 20:57:57 haproxy[28313]: 127.0.0.1:52932 [05/Dec/2026:20:57:55.964] f refused/s1 0/0/-1/-1/2002 503 217 - - SC-- 1/1/0/0/2 0/0 "GET /refused?q=1 HTTP/1.1""#;

    #[test]
    fn states_map_to_kinds() {
        assert_eq!(
            kind(SC),
            (
                FailureKind::ConnectionRefused,
                "refused/s1".to_owned(),
                Some(503)
            )
        );
        let swap = |state: &str| SC.replace("SC--", state);
        assert_eq!(kind(&swap("sH--")).0, FailureKind::HttpResponseTimeout);
        assert_eq!(kind(&swap("SH--")).0, FailureKind::ConnectionTerminated);
        assert_eq!(kind(&swap("PH--")).0, FailureKind::HttpProtocolError);
        assert_eq!(kind(&swap("SD--")).0, FailureKind::HttpResponseIncomplete);
        assert_eq!(kind(&swap("sC--")).0, FailureKind::ConnectionTimeout);
        assert_eq!(kind(&swap("sQ--")).0, FailureKind::ConnectionLimitReached);
        let nosrv = SC.replace("refused/s1", "refused/<NOSRV>");
        assert_eq!(kind(&nosrv).0, FailureKind::DestinationUnavailable);
    }

    #[test]
    fn retries_and_request_are_read() {
        match parse(SC, at()) {
            Parsed::Failure(e) => {
                assert!(e.message.contains("2 retries"), "{}", e.message);
                assert_eq!(e.request.as_deref(), Some("GET /refused?q=1 HTTP/1.1"));
                assert_eq!(e.client.as_deref(), Some("127.0.0.1"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn client_side_normal_and_notices() {
        let cd = SC.replace("SC--", "cD--");
        assert!(matches!(parse(&cd, at()), Parsed::ClientSide(c) if c.state == "cD"));
        let ok = SC.replace("SC--", "----").replace(" 503 ", " 200 ");
        assert!(matches!(parse(&ok, at()), Parsed::Normal(Some(_))));
        // Without the syslog prefix (`log stdout format raw`).
        let raw = SC.split_once("]: ").map(|(_, r)| r).unwrap_or_default();
        assert_eq!(kind(raw).0, FailureKind::ConnectionRefused);
        let notice = "<133>Dec  5 20:57:55 haproxy[28313]: Proxy f started.";
        assert!(looks_like(notice));
        assert!(matches!(parse(notice, at()), Parsed::Normal(None)));
        // With header captures between the queues and the request.
        let captured = SC.replace("0/0 \"GET", "0/0 {host a b|x} \"GET");
        assert_eq!(kind(&captured).0, FailureKind::ConnectionRefused);
    }
}
