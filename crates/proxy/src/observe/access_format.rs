//! The access record's own line formats: `combined` (nginx's, with gatehouse's fields after it)
//! and `json`, with the escaping and UTC time stamps they use.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderValue, Version};

use super::access_log::AccessRecord;

impl AccessRecord {
    /// Whether the request line was parsed (records of unparseable requests have method and
    /// target `-`).
    fn request_known(&self) -> bool {
        self.method.as_str() != "-"
    }

    /// The record in the combined format (no newline), written at `now`, `total` after the
    /// request started:
    ///
    /// `$remote_addr - - [$time_local] "$request" $status $body_bytes_sent "$http_referer"
    /// "$http_user_agent" rt=SECONDS upstream="POOL/HOST:PORT" upstream_status=N failure=KIND
    /// request_id=ID`, then ` cache=RESULT` on routes with a cache.
    ///
    /// Quoted fields escape `"`, `\`, control bytes and bytes above 0x7e as `\xHH`, as nginx
    /// does; absent values are `-`.
    pub fn combined(&self, now: SystemTime, total: Duration) -> String {
        let mut line = String::with_capacity(256);
        let _ = write!(line, "{} - - [{}] \"", self.client.ip(), time_local(now));
        if self.request_known() {
            escape_into(&mut line, self.method.as_str().as_bytes());
            line.push(' ');
            escape_into(&mut line, self.target.as_bytes());
            line.push(' ');
            line.push_str(self.version.map_or("-", protocol));
        } else {
            line.push('-');
        }
        let _ = write!(line, "\" {} {} \"", self.status, self.body_bytes);
        quoted_header_into(&mut line, self.referer.as_ref());
        line.push_str("\" \"");
        quoted_header_into(&mut line, self.user_agent.as_ref());
        let _ = write!(line, "\" rt={:.3} upstream=\"", total.as_secs_f64());
        escape_into(
            &mut line,
            self.upstream.as_deref().unwrap_or("-").as_bytes(),
        );
        line.push_str("\" upstream_status=");
        match self.upstream_status {
            Some(status) => {
                let _ = write!(line, "{status}");
            }
            None => line.push('-'),
        }
        line.push_str(" failure=");
        line.push_str(self.failure.unwrap_or("-"));
        line.push_str(" request_id=");
        escape_into(&mut line, self.request_id.as_bytes());
        if let Some(cache) = self.cache {
            line.push_str(" cache=");
            line.push_str(cache);
        }
        line
    }

    /// The record as one JSON object (no newline), written at `now`, `total` after the request
    /// started. Absent values are `null`; times in milliseconds (microsecond precision).
    pub fn json(&self, now: SystemTime, total: Duration) -> String {
        let known = self.request_known();
        let line = JsonLine {
            time: rfc3339(now),
            client: self.client.ip().to_string(),
            method: known.then(|| self.method.as_str()),
            path: known.then_some(self.target.as_str()),
            protocol: self.version.map(protocol),
            status: self.status,
            bytes: self.body_bytes,
            referer: header_text(self.referer.as_ref()),
            user_agent: header_text(self.user_agent.as_ref()),
            route: self.route.as_deref(),
            upstream: self.upstream.as_deref(),
            upstream_status: self.upstream_status,
            failure: self.failure,
            attempts: self.attempts,
            connect_ms: self.connect.map(millis),
            first_byte_ms: self.first_byte.map(millis),
            total_ms: millis(total),
            client_aborted: self.client_aborted,
            request_id: &self.request_id,
            cache: self.cache,
            upstream_aborted: self.upstream_aborted,
        };
        serde_json::to_string(&line).unwrap_or_else(|err| {
            format!("{{\"error\":\"access record not serialisable: {err}\"}}")
        })
    }
}

/// The fields of a `json` access line, in this order. Renaming one breaks every log pipeline
/// that reads them: add, never rename.
#[derive(serde::Serialize)]
struct JsonLine<'a> {
    time: String,
    client: String,
    method: Option<&'a str>,
    path: Option<&'a str>,
    protocol: Option<&'static str>,
    status: u16,
    bytes: u64,
    referer: Option<Cow<'a, str>>,
    user_agent: Option<Cow<'a, str>>,
    route: Option<&'a str>,
    upstream: Option<&'a str>,
    upstream_status: Option<u16>,
    failure: Option<&'static str>,
    attempts: u32,
    connect_ms: Option<f64>,
    first_byte_ms: Option<f64>,
    total_ms: f64,
    client_aborted: bool,
    request_id: &'a str,
    /// What the cache did (`hit`, `miss`, `stale`, ...); null on routes without a cache.
    cache: Option<&'static str>,
    /// The upstream's body failed after the head went downstream: the response was cut short.
    upstream_aborted: bool,
}

fn protocol(version: Version) -> &'static str {
    const NAMES: [(Version, &str); 5] = [
        (Version::HTTP_09, "HTTP/0.9"),
        (Version::HTTP_10, "HTTP/1.0"),
        (Version::HTTP_11, "HTTP/1.1"),
        (Version::HTTP_2, "HTTP/2.0"),
        (Version::HTTP_3, "HTTP/3.0"),
    ];
    NAMES
        .iter()
        .find(|(v, _)| *v == version)
        .map_or("-", |(_, name)| name)
}

/// A header value as text (bytes that are not UTF-8 become U+FFFD).
fn header_text(value: Option<&HeaderValue>) -> Option<Cow<'_, str>> {
    value.map(|v| String::from_utf8_lossy(v.as_bytes()))
}

fn millis(d: Duration) -> f64 {
    // Microsecond precision: enough, and keeps the numbers short.
    d.as_micros() as f64 / 1000.0
}

/// A header value in a quoted field: escaped, or `-` when absent (or empty, as nginx).
fn quoted_header_into(line: &mut String, value: Option<&HeaderValue>) {
    match value {
        Some(v) if !v.is_empty() => escape_into(line, v.as_bytes()),
        _ => line.push('-'),
    }
}

/// Appends `bytes` with `"`, `\`, control bytes and bytes above 0x7e written as `\xHH`
/// (nginx's access log escaping): the line stays one line of printable ASCII.
pub fn escape_into(line: &mut String, bytes: &[u8]) {
    for &b in bytes {
        if b == b'"' || b == b'\\' || !(0x20..0x7f).contains(&b) {
            let _ = write!(line, "\\x{b:02X}");
        } else {
            line.push(char::from(b));
        }
    }
}

/// A UTC civil date and time: (year, month 1-12, day 1-31, hour, minute, second).
fn civil(secs: u64) -> (i64, u32, u32, u32, u32, u32) {
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let small = |v: i64| u32::try_from(v).unwrap_or(0);
    let small_u = |v: u64| u32::try_from(v).unwrap_or(0);
    (
        year,
        small(month),
        small(day),
        small_u(rem / 3600),
        small_u(rem % 3600 / 60),
        small_u(rem % 60),
    )
}

fn since_epoch(t: SystemTime) -> Duration {
    t.duration_since(UNIX_EPOCH).unwrap_or_default()
}

/// `21/Nov/2026:01:55:18 +0000` (nginx's `$time_local`, in UTC).
pub fn time_local(t: SystemTime) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (year, month, day, hour, minute, second) = civil(since_epoch(t).as_secs());
    let name = MONTHS
        .get(month.saturating_sub(1) as usize)
        .copied()
        .unwrap_or("???");
    format!("{day:02}/{name}/{year:04}:{hour:02}:{minute:02}:{second:02} +0000")
}

/// `2026-11-21T01:55:18.123Z` (RFC 3339, UTC, milliseconds).
pub fn rfc3339(t: SystemTime) -> String {
    let since = since_epoch(t);
    let (year, month, day, hour, minute, second) = civil(since.as_secs());
    format!(
        "{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{:03}Z",
        since.subsec_millis()
    )
}

#[cfg(test)]
pub(super) mod tests {
    use std::net::SocketAddr;

    use http::Method;

    use super::*;

    /// 2026-11-21 01:55:18.123 UTC
    fn instant() -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(1_795_226_118_123)
    }

    pub(in crate::observe) fn record() -> AccessRecord {
        let mut record = AccessRecord::new(
            true,
            SocketAddr::from(([192, 0, 2, 7], 51234)),
            "req-1".into(),
            Method::GET,
            "/a/b?c=d".to_owned(),
        );
        record.status = 200;
        record.body_bytes = 1234;
        record.route = Some("route[0]".into());
        record.pool = Some("app".into());
        record.upstream = Some("app/127.0.0.1:3000".into());
        record.upstream_status = Some(200);
        record.attempts = 1;
        record.connect = Some(Duration::from_micros(1500));
        record.first_byte = Some(Duration::from_micros(9250));
        record.version = Some(Version::HTTP_11);
        record.referer = Some(HeaderValue::from_static("https://example.com/start"));
        record.user_agent = Some(HeaderValue::from_static("curl/8.5.0"));
        record
    }

    #[test]
    fn time_local_is_nginx_style_utc() {
        assert_eq!(time_local(instant()), "21/Nov/2026:01:55:18 +0000");
        assert_eq!(time_local(UNIX_EPOCH), "01/Jan/1970:00:00:00 +0000");
        let leap = UNIX_EPOCH + Duration::from_secs(1_709_251_199);
        assert_eq!(time_local(leap), "29/Feb/2024:23:59:59 +0000");
        let after = UNIX_EPOCH + Duration::from_secs(951_868_800);
        assert_eq!(time_local(after), "01/Mar/2000:00:00:00 +0000");
    }

    #[test]
    fn rfc3339_is_utc_with_milliseconds() {
        assert_eq!(rfc3339(instant()), "2026-11-21T01:55:18.123Z");
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn escaping_is_nginx_style() {
        let mut out = String::new();
        escape_into(&mut out, "a\"b\\c\u{1}d\x7fé".as_bytes());
        assert_eq!(out, r"a\x22b\x5Cc\x01d\x7F\xC3\xA9");
        let mut plain = String::new();
        escape_into(&mut plain, b"Mozilla/5.0 (X11; Linux) ~!@#$%^&*()");
        assert_eq!(plain, "Mozilla/5.0 (X11; Linux) ~!@#$%^&*()");
    }

    #[test]
    fn combined_line() {
        let line = record().combined(instant(), Duration::from_millis(12));
        assert_eq!(
            line,
            "192.0.2.7 - - [21/Nov/2026:01:55:18 +0000] \"GET /a/b?c=d HTTP/1.1\" 200 1234 \
             \"https://example.com/start\" \"curl/8.5.0\" rt=0.012 upstream=\"app/127.0.0.1:3000\" \
             upstream_status=200 failure=- request_id=req-1"
        );
    }

    #[test]
    fn combined_line_of_a_failure_with_absent_values() {
        let mut r = record();
        r.status = 502;
        r.body_bytes = 0;
        r.upstream_status = None;
        r.failure = Some("connection_refused");
        r.referer = None;
        r.user_agent = Some(HeaderValue::from_static("say \"hi\""));
        r.version = Some(Version::HTTP_2);
        r.upstream = Some("app/api.internal:80 (10.0.0.5)".into());
        let line = r.combined(instant(), Duration::from_micros(3_400));
        assert_eq!(
            line,
            "192.0.2.7 - - [21/Nov/2026:01:55:18 +0000] \"GET /a/b?c=d HTTP/2.0\" 502 0 \"-\" \
             \"say \\x22hi\\x22\" rt=0.003 upstream=\"app/api.internal:80 (10.0.0.5)\" \
             upstream_status=- failure=connection_refused request_id=req-1"
        );
    }

    #[test]
    fn combined_line_of_an_unparsed_request() {
        let mut r = AccessRecord::new(
            true,
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 4000)),
            "req-2".into(),
            Method::from_bytes(b"-").unwrap_or_default(),
            "-".to_owned(),
        );
        r.status = 400;
        r.failure = Some("http_request_error");
        let line = r.combined(instant(), Duration::ZERO);
        assert_eq!(
            line,
            "::1 - - [21/Nov/2026:01:55:18 +0000] \"-\" 400 0 \"-\" \"-\" rt=0.000 upstream=\"-\" \
             upstream_status=- failure=http_request_error request_id=req-2"
        );
    }

    #[test]
    fn json_line() {
        let line = record().json(instant(), Duration::from_micros(12_345));
        let v: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let expected = serde_json::json!({
            "time": "2026-11-21T01:55:18.123Z",
            "client": "192.0.2.7",
            "method": "GET",
            "path": "/a/b?c=d",
            "protocol": "HTTP/1.1",
            "status": 200,
            "bytes": 1234,
            "referer": "https://example.com/start",
            "user_agent": "curl/8.5.0",
            "route": "route[0]",
            "upstream": "app/127.0.0.1:3000",
            "upstream_status": 200,
            "failure": null,
            "attempts": 1,
            "connect_ms": 1.5,
            "first_byte_ms": 9.25,
            "total_ms": 12.345,
            "client_aborted": false,
            "request_id": "req-1",
            "cache": null,
            "upstream_aborted": false,
        });
        assert_eq!(v, expected);
        assert!(!line.contains('\n'));
        // Field order is stable too: time first, fields added later (cache) at the end.
        assert!(line.starts_with("{\"time\":"), "{line}");
        assert!(
            line.ends_with("\"request_id\":\"req-1\",\"cache\":null,\"upstream_aborted\":false}"),
            "{line}"
        );
    }

    #[test]
    fn json_line_of_an_unparsed_request_has_nulls() {
        let r = AccessRecord::new(
            true,
            SocketAddr::from(([127, 0, 0, 1], 4000)),
            "req-3".into(),
            Method::from_bytes(b"-").unwrap_or_default(),
            "-".to_owned(),
        );
        let v: serde_json::Value =
            serde_json::from_str(&r.json(instant(), Duration::ZERO)).unwrap_or_default();
        for key in [
            "method",
            "path",
            "protocol",
            "referer",
            "user_agent",
            "upstream",
        ] {
            assert_eq!(v[key], serde_json::Value::Null, "{key} in {v}");
        }
    }
}
