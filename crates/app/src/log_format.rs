//! The text log's line: what tracing-subscriber's default format (`Format<Full, SystemTime>`)
//! writes with ANSI colours off, byte for byte, at a fraction of the cost. The default formats
//! the time from scratch with `write!` for every line and sends the level and target through
//! the colour styles even when they are off; on the error path (a warning for every failed
//! request) that was a third of the line's cost. Here the date and time up to the second are
//! formatted once per second and thread, and the rest is written as plain strings.
//!
//! Lines this fast path does not know (inside a span, records from the `log` crate, times
//! outside the years 1970 to 9999) are written by the default format itself.

use std::cell::Cell;
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{Format, Full, Writer};
use tracing_subscriber::fmt::time::SystemTime as SystemTimer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The text log's [`FormatEvent`].
#[derive(Debug, Default)]
pub(crate) struct PlainFormat {
    fallback: Format<Full, SystemTimer>,
}

impl PlainFormat {
    pub(crate) fn new() -> Self {
        Self {
            fallback: Format::default().with_ansi(false),
        }
    }
}

impl<S, N> FormatEvent<S, N> for PlainFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let from_log_crate = meta.fields().field("log.target").is_some();
        let second = second_and_micros(SystemTime::now());
        let (Some((second, micros)), false, None) = (second, from_log_crate, ctx.event_scope())
        else {
            return self.fallback.format_event(ctx, writer, event);
        };
        write_date_time(&mut writer, second)?;
        write!(writer, ".{micros:06}Z ")?;
        writer.write_str(level_text(meta.level()))?;
        writer.write_char(' ')?;
        writer.write_str(meta.target())?;
        writer.write_str(": ")?;
        ctx.format_fields(writer.by_ref(), event)?;
        writer.write_char('\n')
    }
}

/// The level as the default writes it: five characters, right-aligned.
fn level_text(level: &Level) -> &'static str {
    match *level {
        Level::TRACE => "TRACE",
        Level::DEBUG => "DEBUG",
        Level::INFO => " INFO",
        Level::WARN => " WARN",
        Level::ERROR => "ERROR",
    }
}

/// The latest second this fast path formats: 9999-12-31T23:59:59 UTC.
const LAST_SECOND: u64 = 253_402_300_799;

/// Seconds since the epoch and the microseconds within the second; `None` before 1970 or
/// after 9999 (which the default writes differently).
fn second_and_micros(now: SystemTime) -> Option<(u64, u32)> {
    let since = now.duration_since(UNIX_EPOCH).ok()?;
    let second = since.as_secs();
    (second <= LAST_SECOND).then_some((second, since.subsec_micros()))
}

thread_local! {
    /// The last second formatted on this thread, and its text.
    static FORMATTED: Cell<(u64, [u8; 19])> = const { Cell::new((u64::MAX, [0; 19])) };
}

/// Writes `YYYY-MM-DDTHH:MM:SS` (UTC) of a second since the epoch, formatted once per second.
fn write_date_time(writer: &mut Writer<'_>, second: u64) -> fmt::Result {
    let (cached, mut text) = FORMATTED.get();
    if cached != second {
        text = format_date_time(second);
        FORMATTED.set((second, text));
    }
    // Only ASCII digits and separators are ever written into `text`.
    writer.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
}

fn format_date_time(second: u64) -> [u8; 19] {
    let days = second / 86_400;
    let in_day = second % 86_400;
    let (year, month, day) = civil_from_days(days);
    let mut text = *b"0000-00-00T00:00:00";
    let mut put = |at: usize, value: u64, width: usize| {
        let mut value = value;
        for i in (at..at + width).rev() {
            text[i] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(0, year, 4);
    put(5, month, 2);
    put(8, day, 2);
    put(11, in_day / 3600, 2);
    put(14, in_day / 60 % 60, 2);
    put(17, in_day % 60, 2);
    text
}

/// The proleptic Gregorian date of a day since 1970-01-01 (Howard Hinnant's `civil_from_days`,
/// for days on or after the epoch).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Counted from 0000-03-01, so that a leap day is the last of its year.
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::log_fields::tests::{Buffer, emit};

    #[test]
    fn formats_dates_and_times_of_the_whole_range() {
        for (second, text) in [
            (0, "1970-01-01T00:00:00"),
            (951_782_400, "2000-02-29T00:00:00"),
            (1_700_000_000, "2023-11-14T22:13:20"),
            (1_798_675_199, "2026-12-30T23:59:59"),
            (4_102_444_800, "2100-01-01T00:00:00"),
            (LAST_SECOND, "9999-12-31T23:59:59"),
        ] {
            assert_eq!(&format_date_time(second), text.as_bytes(), "{second}");
        }
        assert_eq!(
            second_and_micros(UNIX_EPOCH + Duration::new(LAST_SECOND + 1, 0)),
            None
        );
        assert_eq!(
            second_and_micros(UNIX_EPOCH + Duration::new(5, 1_234_567)),
            Some((5, 1_234))
        );
    }

    fn run(format: Option<PlainFormat>) -> String {
        let buffer = Buffer::default();
        let builder = tracing_subscriber::fmt()
            .with_ansi(false)
            .fmt_fields(crate::log_fields::PlainFields)
            .with_writer(buffer.clone());
        let emit_with_span = || {
            emit();
            let span = tracing::info_span!("request", id = 7);
            span.in_scope(|| tracing::warn!(pool = "app", "inside a span"));
        };
        match format {
            Some(format) => tracing::subscriber::with_default(
                builder.event_format(format).finish(),
                emit_with_span,
            ),
            None => tracing::subscriber::with_default(builder.finish(), emit_with_span),
        }
        buffer.text()
    }

    /// Splits a line into its time (`YYYY-MM-DDTHH:MM:SS.micros`) and the rest; a line that
    /// continues a multi-line message has no time.
    fn split_time(line: &str) -> (Option<&str>, &str) {
        let starts_with_time = line.len() > 27 && &line[4..5] == "-" && &line[10..11] == "T";
        match line.split_once("Z ") {
            Some((time, rest)) if starts_with_time => (Some(time), rest),
            _ => (None, line),
        }
    }

    fn now_second() -> u64 {
        second_and_micros(SystemTime::now())
            .expect("a clock between 1970 and 9999")
            .0
    }

    #[test]
    fn writes_what_the_default_format_writes() {
        let first = now_second();
        let default = run(None);
        let plain = run(Some(PlainFormat::new()));
        let seconds: Vec<[u8; 19]> = (first..=now_second()).map(format_date_time).collect();
        let (default_lines, plain_lines): (Vec<&str>, Vec<&str>) =
            (default.lines().collect(), plain.lines().collect());
        assert!(default_lines.len() > 8, "{default}");
        assert_eq!(plain_lines.len(), default_lines.len(), "{plain}\n{default}");
        assert!(plain.ends_with('\n'));
        for (ours, theirs) in plain_lines.iter().zip(&default_lines) {
            let (our_time, our_rest) = split_time(ours);
            let (their_time, their_rest) = split_time(theirs);
            assert_eq!(our_rest, their_rest);
            assert_eq!(our_time.is_some(), their_time.is_some(), "{ours}\n{theirs}");
            // Both a second of the runs, to the microsecond.
            for time in our_time.into_iter().chain(their_time) {
                assert_eq!(time.len(), 26, "{ours}\n{theirs}");
                assert!(
                    seconds.iter().any(|s| s == &time.as_bytes()[..19]),
                    "{time}"
                );
                assert_eq!(time.as_bytes()[19], b'.');
                assert!(time[20..].bytes().all(|b| b.is_ascii_digit()), "{time}");
            }
        }
        assert!(plain.contains(" WARN request{id=7}: "), "{plain}");
        assert!(plain.contains(" WARN gatehouse::failure: connection_refused"));
        assert!(plain.contains("ERROR "));
    }
}
