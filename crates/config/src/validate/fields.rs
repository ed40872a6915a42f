//! Readers for single config values: a string through a `values` parser, a positive duration, a
//! size within limits, one word of a fixed set. Each reports its own problem at the value's
//! position and falls back to the default, so validation carries on.

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
    let Some(raw) = raw else { return default };
    match parse_at(sink, &raw, key, values::duration) {
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
            default
        }
        Some(d) => d,
        None => default,
    }
}

/// A size in `min..=1MiB`; `default` when absent or invalid.
pub(super) fn size(
    sink: &mut Sink<'_>,
    raw: Option<Spanned<RawSize>>,
    key: &str,
    default: u64,
    min: u64,
) -> usize {
    let Some(raw) = raw else {
        return to_usize(default);
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
        if (min..=MAX_HEADER_SIZE).contains(&n) {
            Ok(n)
        } else {
            Err(Bad {
                message: format!(
                    "{shown} is outside the allowed range {} to 1MiB",
                    human_size(min)
                ),
                fix: format!(
                    "use a size in that range, e.g. \"{}\" (the default)",
                    human_size(default)
                ),
            })
        }
    });
    match checked {
        Ok(n) => to_usize(n),
        Err(bad) => {
            sink.error(Some(raw.span()), key, bad.message, bad.fix);
            to_usize(default)
        }
    }
}

fn to_usize(n: u64) -> usize {
    // Sizes are capped at 1 MiB, which fits every usize gatehouse builds for.
    usize::try_from(n).unwrap_or(usize::MAX)
}

fn human_size(n: u64) -> String {
    if n >= KIB && n.is_multiple_of(KIB) {
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
