//! What one log line says, whatever its format: a failure, an access line still to be matched
//! with a failure line, a client-side termination, something normal, or nothing readable.
//!
//! The parsers (one file per format) produce these; the correlator and the grouping consume
//! them. No parser decides the fix: `advice.rs` does, from the source and the kind.

use gatehouse_proxy::failure::FailureKind;
use serde::Serialize;

/// Which program wrote the line: decides the words of the fix (nginx and HAProxy directives,
/// gatehouse config keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Source {
    Nginx,
    Haproxy,
    Gatehouse,
}

impl Source {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Nginx => "nginx",
            Self::Haproxy => "haproxy",
            Self::Gatehouse => "gatehouse",
        }
    }
}

/// Where a line came from, for examples a person can open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct LineRef {
    pub(crate) file: String,
    pub(crate) line: u64,
}

/// A time read from a log line, in milliseconds since the Unix epoch.
///
/// `wall` is the clock reading as written (local time when the log has no zone: nginx's
/// error.log, HAProxy's accept date), used to match lines of the same server; `utc` is the
/// best guess at the real instant (a zone-less time is taken as UTC), used for `--since` and
/// first/last seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    pub(crate) utc: i64,
    pub(crate) wall: i64,
}

impl Stamp {
    pub(crate) fn zoneless(wall: i64) -> Self {
        Self { utc: wall, wall }
    }
}

/// One upstream failure found in a line.
#[derive(Debug, Clone)]
pub(crate) struct Event {
    pub(crate) source: Source,
    pub(crate) kind: FailureKind,
    /// The upstream server as the log names it (`127.0.0.1:3000`, `app/127.0.0.1:3000`,
    /// `backend/server`, an nginx upstream block name, an unresolved host name).
    pub(crate) server: String,
    pub(crate) at: Option<Stamp>,
    pub(crate) request: Option<String>,
    pub(crate) client: Option<String>,
    /// The status the client got, when the line (or a matched access line) says.
    pub(crate) status: Option<u16>,
    /// What the log said, in its own words (the nginx message, the HAProxy state, ...).
    pub(crate) message: String,
    /// The kind was inferred from a status and timings, not read from a failure message.
    pub(crate) guessed: bool,
    /// The key that ties this failure to its access line (nginx: client and request;
    /// gatehouse: the request id).
    pub(crate) key: Option<String>,
    pub(crate) line: LineRef,
}

/// An access line that may be a failure whose failure line is elsewhere (or missing).
#[derive(Debug, Clone)]
pub(crate) struct AccessLine {
    /// The failure this line stands for when no failure line matches it.
    pub(crate) event: Event,
    /// How long the request took, to widen the window in which its failure line may be.
    pub(crate) took_ms: i64,
    /// How many failure lines it may take: one per upstream attempt it lists (nginx), all
    /// with its request id (gatehouse).
    pub(crate) attempts: usize,
    /// Whether it is a failure of its own when no failure line matches (a 502/503/504, or a
    /// gatehouse record naming a kind); otherwise it only tells a failure line what the
    /// client got (nginx's 200 after `upstream prematurely closed connection` in the body).
    pub(crate) stands_alone: bool,
}

/// A HAProxy session ended by the client side: not an upstream failure, but shown.
#[derive(Debug, Clone)]
pub(crate) struct ClientSide {
    pub(crate) source: Source,
    pub(crate) state: String,
    pub(crate) server: String,
    pub(crate) at: Option<Stamp>,
    pub(crate) line: LineRef,
}

/// What a line says.
#[derive(Debug, Clone)]
pub(crate) enum Parsed {
    Failure(Box<Event>),
    /// An access line of a request that may have failed: matched against failure lines.
    Access(Box<AccessLine>),
    ClientSide(Box<ClientSide>),
    /// Readable and not a failure (a normal request, a notice), with its time when known.
    Normal(Option<Stamp>),
    Blank,
    Unreadable,
}

// === time ===

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// The month number (1-12) of an English three-letter month name.
pub(crate) fn month_number(name: &str) -> Option<u32> {
    MONTHS
        .iter()
        .position(|m| *m == name)
        .and_then(|i| u32::try_from(i + 1).ok())
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's days_from_civil).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Milliseconds since the epoch of a civil date and time; `None` when a field is out of range.
pub(crate) fn epoch_ms(
    year: i64,
    month: u32,
    day: u32,
    hms: (u32, u32, u32),
    millis: u32,
) -> Option<i64> {
    let (hour, minute, second) = hms;
    let valid = (1..=12).contains(&month)
        && (1..=31).contains(&day)
        && hour < 24
        && minute < 60
        && second < 61
        && millis < 1000
        && (0..=9999).contains(&year);
    valid.then(|| {
        let days = days_from_civil(year, month, day);
        let secs =
            days * 86_400 + i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second);
        secs * 1000 + i64::from(millis)
    })
}

/// `2026-12-05T20:57:14.692984Z`, `2026-12-05 20:57:14+02:00`, `2026-12-05T20:57:14`
/// (no zone: UTC): RFC 3339 and its common relaxations.
pub(crate) fn parse_rfc3339(text: &str) -> Option<Stamp> {
    let b = text.as_bytes();
    if b.len() < 19 || b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    if !matches!(b.get(10), Some(b'T' | b't' | b' ')) {
        return None;
    }
    let num = |from: usize, to: usize| text.get(from..to)?.parse::<u32>().ok();
    let year = i64::from(num(0, 4)?);
    let (month, day) = (num(5, 7)?, num(8, 10)?);
    if b.get(13) != Some(&b':') || b.get(16) != Some(&b':') {
        return None;
    }
    let hms = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    let mut rest = text.get(19..)?;
    let mut millis = 0;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let padded = format!("{:0<3}", frac.get(..digits.min(3))?);
        millis = padded.parse().ok()?;
        rest = frac.get(digits..)?;
    }
    let wall = epoch_ms(year, month, day, hms, millis)?;
    let offset_min: i64 = match rest {
        "" => return Some(Stamp::zoneless(wall)),
        "Z" | "z" => 0,
        zone => parse_offset(zone)?,
    };
    Some(Stamp {
        utc: wall - offset_min * 60_000,
        wall,
    })
}

/// `+02:00`, `-0530`, `+0000`: minutes east of UTC.
pub(crate) fn parse_offset(zone: &str) -> Option<i64> {
    let sign = match zone.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digits: String = zone.get(1..)?.chars().filter(|c| *c != ':').collect();
    if digits.len() != 4 || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let hours: i64 = digits.get(..2)?.parse().ok()?;
    let minutes: i64 = digits.get(2..)?.parse().ok()?;
    Some(sign * (hours * 60 + minutes))
}

/// `05/Dec/2026:20:57:43` (nginx `$time_local` without its zone, HAProxy's accept date with
/// an optional `.mmm`): the wall-clock milliseconds.
pub(crate) fn parse_clf_wall(text: &str) -> Option<i64> {
    let mut parts = text.splitn(3, '/');
    let day: u32 = parts.next()?.parse().ok()?;
    let month = month_number(parts.next()?)?;
    let rest = parts.next()?;
    let (year, clock) = rest.split_once(':')?;
    let year: i64 = year.parse().ok()?;
    let (clock, millis) = match clock.split_once('.') {
        Some((clock, ms)) => (clock, format!("{ms:0<3}").get(..3)?.parse().ok()?),
        None => (clock, 0),
    };
    let mut hms = clock.split(':').map(|p| p.parse::<u32>().ok());
    let hms = (hms.next()??, hms.next()??, hms.next()??);
    epoch_ms(year, month, day, hms, millis)
}

/// An instant as RFC 3339 UTC with milliseconds.
pub(crate) fn format_utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // civil_from_days
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_with_and_without_zone() {
        let z = parse_rfc3339("2026-12-05T20:57:14.692984Z").map(|s| s.utc);
        assert_eq!(
            z.map(format_utc).as_deref(),
            Some("2026-12-05T20:57:14.692Z")
        );
        let east = parse_rfc3339("2026-12-05T22:57:14+02:00").map(|s| s.utc);
        assert_eq!(
            east.map(format_utc).as_deref(),
            Some("2026-12-05T20:57:14.000Z")
        );
        assert!(parse_rfc3339("2026-13-05T20:57:14Z").is_none());
        assert!(parse_rfc3339("yesterday").is_none());
        assert!(parse_rfc3339("2026-12-05T20:57:14.Z").is_none());
    }

    #[test]
    fn clf_dates() {
        let ms = parse_clf_wall("05/Dec/2026:20:57:55.964");
        assert_eq!(
            ms.map(format_utc).as_deref(),
            Some("2026-12-05T20:57:55.964Z")
        );
        let ms = parse_clf_wall("29/Feb/2024:23:59:59");
        assert_eq!(
            ms.map(format_utc).as_deref(),
            Some("2024-02-29T23:59:59.000Z")
        );
        assert!(parse_clf_wall("05/Foo/2026:20:57:55").is_none());
        assert!(parse_clf_wall("05/Dec/2026").is_none());
    }
}
