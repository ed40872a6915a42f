//! Readers for single config values: a string through a `values` parser, a positive duration, a
//! size within limits, an integer or a fraction within a range, one word of a fixed set. Each reports its own problem at the value's
//! position and falls back to the default, so validation carries on.

use std::fmt::Display;
use std::time::Duration;

use toml::Spanned;

use super::{KIB, MAX_HEADER_SIZE};
use crate::diag::Sink;
use crate::raw::RawSize;
use crate::values::{self, Bad};

/// Parses one spanned string, reporting a failure at its position under `key`.
pub(super) fn parse_at<T>(
    sink: &mut Sink<'_>,
    value: &Spanned<String>,
    key: &str,
    parse: impl FnOnce(&str) -> Result<T, Bad>,
) -> Option<T> {
    match parse(value.get_ref()) {
        Ok(v) => Some(v),
        Err(bad) => {
            sink.error(Some(value.span()), key, bad.message, bad.fix);
            None
        }
    }
}

/// A positive duration; `default` when absent or invalid.
pub(super) fn timeout(
    sink: &mut Sink<'_>,
    raw: Option<Spanned<String>>,
    key: &str,
    default: Duration,
) -> Duration {
    checked_timeout(sink, raw.as_ref(), key, default).unwrap_or(default)
}

/// A positive duration; `default` when absent, `None` when invalid (reported). For values that
/// are compared with others afterwards, so a replaced value does not cause a second diagnostic.
pub(super) fn checked_timeout(
    sink: &mut Sink<'_>,
    raw: Option<&Spanned<String>>,
    key: &str,
    default: Duration,
) -> Option<Duration> {
    let Some(raw) = raw else {
        return Some(default);
    };
    match parse_at(sink, raw, key, values::duration) {
        Some(d) if d.is_zero() => {
            sink.error(
                Some(raw.span()),
                key,
                format!(
                    "{:?} is zero: every operation would time out at once",
                    raw.get_ref()
                ),
                format!(
                    "use a positive duration, e.g. \"{}\" (the default)",
                    humantime::format_duration(default)
                ),
            );
            None
        }
        other => other,
    }
}

/// An integer in `min..=max`; `default` when absent or outside (reported).
pub(super) fn int_in<T>(
    sink: &mut Sink<'_>,
    raw: Option<&Spanned<i64>>,
    key: &str,
    default: T,
    min: T,
    max: T,
) -> T
where
    T: Copy + Display + Into<i64> + TryFrom<i64>,
{
    let Some(raw) = raw else { return default };
    let n = *raw.get_ref();
    if (min.into()..=max.into()).contains(&n)
        && let Ok(v) = T::try_from(n)
    {
        return v;
    }
    // The ranges used end at 10, 100, 1000 or the type's maximum ("no upper limit").
    let (message, fix) = if max.into() >= i64::from(u32::MAX) && n >= min.into() {
        (
            format!("{n} is too large (at most {max})"),
            format!("use a smaller number, e.g. {default} (the default)"),
        )
    } else if max.into() >= i64::from(u32::MAX) {
        (
            format!("{n} is less than {min}"),
            format!("use {min} or more, e.g. {default} (the default)"),
        )
    } else {
        (
            format!("{n} is outside the allowed range {min} to {max}"),
            format!("use a number in that range, e.g. {default} (the default)"),
        )
    };
    sink.error(Some(raw.span()), key, message, fix);
    default
}

/// A number in `0.0..=1.0`; `default` when absent or outside (reported).
pub(super) fn fraction(
    sink: &mut Sink<'_>,
    raw: Option<&Spanned<f64>>,
    key: &str,
    default: f64,
) -> f64 {
    let Some(raw) = raw else { return default };
    let n = *raw.get_ref();
    if (0.0..=1.0).contains(&n) {
        return n;
    }
    sink.error(
        Some(raw.span()),
        key,
        format!("{n} is outside the allowed range 0.0 to 1.0"),
        format!("use a number from 0.0 to 1.0, e.g. {default} (the default)"),
    );
    default
}

/// A size in `min..=1MiB`; `default` when absent or invalid.
pub(super) fn size(
    sink: &mut Sink<'_>,
    raw: Option<Spanned<RawSize>>,
    key: &str,
    default: u64,
    min: u64,
) -> usize {
    to_usize(size_within(sink, raw, key, default, min, MAX_HEADER_SIZE))
}

/// The largest `max_request_body_size` (1 TiB): more is certainly a typo.
pub(super) const MAX_BODY_SIZE: u64 = 1 << 40;

/// A size in `min..=max`; `default` when absent or invalid.
pub(super) fn size_within(
    sink: &mut Sink<'_>,
    raw: Option<Spanned<RawSize>>,
    key: &str,
    default: u64,
    min: u64,
    max: u64,
) -> u64 {
    let Some(raw) = raw else {
        return default;
    };
    let parsed = match raw.get_ref() {
        RawSize::Bytes(n) => u64::try_from(*n).map_err(|_| Bad {
            message: format!("{n} is negative"),
            fix: "write a size like \"64KiB\"".to_owned(),
        }),
        RawSize::Text(s) => values::size(s),
    };
    let shown = match raw.get_ref() {
        RawSize::Bytes(n) => n.to_string(),
        RawSize::Text(s) => format!("{s:?}"),
    };
    let checked = parsed.and_then(|n| {
        if (min..=max).contains(&n) {
            Ok(n)
        } else {
            Err(Bad {
                message: format!(
                    "{shown} is outside the allowed range {} to {}",
                    human_size(min),
                    human_size(max)
                ),
                fix: format!(
                    "use a size in that range, e.g. \"{}\" (the default)",
                    human_size(default)
                ),
            })
        }
    });
    match checked {
        Ok(n) => n,
        Err(bad) => {
            sink.error(Some(raw.span()), key, bad.message, bad.fix);
            default
        }
    }
}

fn to_usize(n: u64) -> usize {
    // Sizes are capped at 1 MiB, which fits every usize gatehouse builds for.
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// `65536` → `64KiB`: the largest unit that divides it.
pub(super) fn human_size(n: u64) -> String {
    const GIB: u64 = 1 << 30;
    const MIB: u64 = 1 << 20;
    if n >= GIB && n.is_multiple_of(GIB) {
        format!("{}GiB", n / GIB)
    } else if n >= MIB && n.is_multiple_of(MIB) {
        format!("{}MiB", n / MIB)
    } else if n >= KIB && n.is_multiple_of(KIB) {
        format!("{}KiB", n / KIB)
    } else {
        format!("{n}B")
    }
}

/// One of a fixed set of words; `default` when absent or invalid.
pub(super) fn choice<T: Copy>(
    sink: &mut Sink<'_>,
    raw: Option<Spanned<String>>,
    key: &str,
    default: T,
    options: &[(&str, T)],
) -> T {
    let Some(raw) = raw else { return default };
    if let Some((_, v)) = options.iter().find(|(word, _)| *word == raw.get_ref()) {
        return *v;
    }
    let words = options
        .iter()
        .map(|(w, _)| format!("\"{w}\""))
        .collect::<Vec<_>>()
        .join(", ");
    sink.error(
        Some(raw.span()),
        key,
        format!("{:?} is not one of {words}", raw.get_ref()),
        format!("use one of {words}"),
    );
    default
}
