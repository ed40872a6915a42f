//! Which format a line is in, decided per line so that one file may mix them (a syslog file
//! with HAProxy and other programs, an error log and an access log concatenated).

use super::record::{LineRef, Parsed};
use super::{access_line, gatehouse_log, haproxy, nginx_error};

/// Lines longer than this are not log lines of any format read here: unreadable, never parsed
/// (a binary file without newlines must not cost more than its size).
pub(crate) const MAX_LINE: usize = 64 * 1024;

pub(crate) fn parse_line(line: &str, at: LineRef) -> Parsed {
    let line = line.trim_end_matches(['\r', '\n']);
    if line.trim().is_empty() {
        return Parsed::Blank;
    }
    if line.len() > MAX_LINE || line.contains('\0') {
        return Parsed::Unreadable;
    }
    if line.starts_with('{') {
        return gatehouse_log::parse_json(line, at);
    }
    if nginx_error::looks_like(line) {
        return nginx_error::parse(line, at);
    }
    if gatehouse_log::looks_like_text(line) {
        return gatehouse_log::parse_text(line, at);
    }
    if access_line::looks_like(line) {
        return access_line::parse(line, at);
    }
    if haproxy::looks_like(line) {
        return haproxy::parse(line, at);
    }
    Parsed::Unreadable
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> LineRef {
        LineRef {
            file: "x".into(),
            line: 1,
        }
    }

    #[test]
    fn garbage_never_panics_and_is_unreadable() {
        let samples: Vec<String> = vec![
            "\u{fffd}\u{fffd}\u{fffd}".into(),
            "ELF\u{1}\u{2}\0\0".into(),
            "x".repeat(MAX_LINE + 1),
            "[".repeat(5000),
            " [".repeat(5000),
            "2026/12/05 20:57:43 [".into(),
            "2026/12/05 20:57:43 [error] 1#1: *1 ".into(),
            "127.0.0.1 - - [".into(),
            "127.0.0.1 - - [05/Dec/2026:20:57:44 +0000] \"".into(),
            "haproxy[1]: 1:1 [05/Dec/2026:20:57:55.964] f b/s 1/2/3 ".into(),
            "1:1 [05/Dec/2026:20:57:55.964] f b/s 0/0/0/0/0 abc 1 - - SC-- 1/1/1/1/1 0/0 \"".into(),
            "{\"target\":\"gatehouse::failure\",\"kind\":12}".into(),
            "2026-12-05T20:57:15.393738Z".into(),
            "2026-12-05T20:57:15.393738Z WARN gatehouse::failure: kind=\"".into(),
            "é".repeat(100),
        ];
        for sample in &samples {
            let parsed = parse_line(sample, at());
            assert!(
                matches!(parsed, Parsed::Unreadable | Parsed::Normal(_)),
                "{:?} gave {parsed:?}",
                sample.get(..40.min(sample.len())).unwrap_or("")
            );
        }
        assert!(matches!(parse_line("   \r\n", at()), Parsed::Blank));
    }

    #[test]
    fn every_prefix_of_real_lines_is_safe() {
        let lines = [
            r#"2026/12/05 20:57:43 [error] 28089#28089: *1 connect() failed (111: Connection refused) while connecting to upstream, client: 127.0.0.1, server: , request: "GET /refused?q=1 HTTP/1.1", upstream: "http://127.0.0.1:1/refused?q=1", host: "127.0.0.1:19100""#,
            r#"<134>Dec  5 20:57:57 haproxy[28313]: 127.0.0.1:52932 [05/Dec/2026:20:57:55.964] f refused/s1 0/0/-1/-1/2002 503 217 - - SC-- 1/1/0/0/2 0/0 "GET /refused?q=1 HTTP/1.1""#,
            r#"127.0.0.1 - - [05/Dec/2026:20:57:44 +0000] "GET /hang?q=1 HTTP/1.1" 504 167 "-" "curl/x" us=504 ua=127.0.0.1:19002 urt=1.001 rt=1.001"#,
            r#"2026-12-05T20:57:15.394696Z  INFO gatehouse::access: client=127.0.0.1 method=GET path=/x?y=1 status=502 route="/" upstream="app/127.0.0.1:1" failure="connection_refused" attempts=1 total_ms=1.260705 request_id=751ff56e54c62c72"#,
        ];
        for line in lines {
            for (i, _) in line.char_indices() {
                let _ = parse_line(line.get(..i).unwrap_or(""), at());
                let _ = parse_line(line.get(i..).unwrap_or(""), at());
            }
        }
    }
}
