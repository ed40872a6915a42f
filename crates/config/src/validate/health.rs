//! The three sub-tables of an upstream: `[upstream.NAME.health]` (active checks),
//! `[upstream.NAME.passive]` (ejection on real failures) and `[upstream.NAME.retry]`, with their
//! defaults, ranges and the checks between their own keys (a check timeout not shorter than its
//! interval, `max_ejection` shorter than `ejection`). The rest of the upstream is in `upstream`.

use std::time::Duration;

use toml::Spanned;

use super::fields::{checked_timeout, fraction, int_in, parse_at, timeout};
use crate::diag::Sink;
use crate::model::{HealthCheck, PassiveHealth, RetryPolicy, StatusRange};
use crate::raw::{RawHealth, RawPassive, RawRetry};
use crate::values;

// Defaults. Each is also documented on the model field and in docs/configuration.md.
const DEFAULT_HEALTH_INTERVAL: Duration = Duration::from_secs(5);
const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(2);
const DEFAULT_THRESHOLD: u32 = 2;
const DEFAULT_EXPECT_STATUS: StatusRange = StatusRange {
    low: 200,
    high: 399,
};
const DEFAULT_CONSECUTIVE_FAILURES: u32 = 5;
const DEFAULT_CONSECUTIVE_TIMEOUTS: u32 = 1;
const DEFAULT_EJECTION: Duration = Duration::from_secs(10);
const DEFAULT_MAX_EJECTION: Duration = Duration::from_secs(5 * 60);
const DEFAULT_MAX_EJECTED_PERCENT: u8 = 50;
const DEFAULT_ATTEMPTS: u32 = 3;
const MAX_ATTEMPTS: u32 = 10;
const DEFAULT_DEADLINE: Duration = Duration::from_secs(60);
const DEFAULT_BUDGET: f64 = 0.2;
const DEFAULT_MIN_RETRIES_PER_SECOND: u32 = 10;

/// `[PREFIX.health]`; `None` when the table is absent.
pub(super) fn health(
    raw: Option<&Spanned<RawHealth>>,
    prefix: &str,
    sink: &mut Sink<'_>,
) -> Option<HealthCheck> {
    let raw = raw?;
    let h = raw.get_ref();
    let key = |field: &str| format!("{prefix}.health.{field}");
    let interval = checked_timeout(
        sink,
        h.interval.as_ref(),
        &key("interval"),
        DEFAULT_HEALTH_INTERVAL,
    );
    let check_timeout = checked_timeout(
        sink,
        h.timeout.as_ref(),
        &key("timeout"),
        DEFAULT_HEALTH_TIMEOUT,
    );
    if let (Some(interval), Some(check_timeout)) = (interval, check_timeout)
        && check_timeout >= interval
    {
        // Point at whichever of the two was written (timeout first: it is the one to change).
        let (span, field) = match (&h.timeout, &h.interval) {
            (Some(t), _) => (t.span(), "timeout"),
            (None, Some(i)) => (i.span(), "interval"),
            (None, None) => (raw.span(), "timeout"),
        };
        sink.warning(
            Some(span),
            key(field),
            format!(
                "the check timeout ({}) is not shorter than the interval ({}), so checks of one server would overlap",
                humantime::format_duration(check_timeout),
                humantime::format_duration(interval)
            ),
            "make timeout shorter than interval",
        );
    }
    Some(HealthCheck {
        path: h
            .path
            .as_ref()
            .and_then(|p| parse_at(sink, p, &key("path"), values::health_path)),
        interval: interval.unwrap_or(DEFAULT_HEALTH_INTERVAL),
        timeout: check_timeout.unwrap_or(DEFAULT_HEALTH_TIMEOUT),
        unhealthy_threshold: int_in(
            sink,
            h.unhealthy_threshold.as_ref(),
            &key("unhealthy_threshold"),
            DEFAULT_THRESHOLD,
            1,
            u32::MAX,
        ),
        healthy_threshold: int_in(
            sink,
            h.healthy_threshold.as_ref(),
            &key("healthy_threshold"),
            DEFAULT_THRESHOLD,
            1,
            u32::MAX,
        ),
        expect_status: h
            .expect_status
            .as_ref()
            .and_then(|s| parse_at(sink, s, &key("expect_status"), values::status_ranges))
            .unwrap_or_else(|| vec![DEFAULT_EXPECT_STATUS]),
        host: h
            .host
            .as_ref()
            .and_then(|host| parse_at(sink, host, &key("host"), values::host_header)),
    })
}

/// `[PREFIX.passive]`; defaults when the table is absent.
pub(super) fn passive(
    raw: Option<&RawPassive>,
    prefix: &str,
    sink: &mut Sink<'_>,
) -> PassiveHealth {
    let absent = RawPassive::default();
    let p = raw.unwrap_or(&absent);
    let key = |field: &str| format!("{prefix}.passive.{field}");
    let ejection = checked_timeout(
        sink,
        p.ejection.as_ref(),
        &key("ejection"),
        DEFAULT_EJECTION,
    );
    // Left out, the cap is the default or `ejection`, whichever is longer: a long first ejection
    // alone is not a mistake.
    let default_max = DEFAULT_MAX_EJECTION.max(ejection.unwrap_or(DEFAULT_EJECTION));
    let max_ejection = match &p.max_ejection {
        None => default_max,
        Some(raw) => match (
            checked_timeout(sink, Some(raw), &key("max_ejection"), default_max),
            ejection,
        ) {
            (Some(max), Some(ejection)) if max < ejection => {
                sink.error(
                    Some(raw.span()),
                    key("max_ejection"),
                    format!(
                        "max_ejection ({}) is shorter than ejection ({})",
                        humantime::format_duration(max),
                        humantime::format_duration(ejection)
                    ),
                    format!(
                        "set max_ejection to \"{}\" or more, or shorten ejection",
                        humantime::format_duration(ejection)
                    ),
                );
                default_max
            }
            (Some(max), _) => max,
            (None, _) => default_max,
        },
    };
    PassiveHealth {
        consecutive_failures: int_in(
            sink,
            p.consecutive_failures.as_ref(),
            &key("consecutive_failures"),
            DEFAULT_CONSECUTIVE_FAILURES,
            0,
            u32::MAX,
        ),
        consecutive_timeouts: int_in(
            sink,
            p.consecutive_timeouts.as_ref(),
            &key("consecutive_timeouts"),
            DEFAULT_CONSECUTIVE_TIMEOUTS,
            0,
            u32::MAX,
        ),
        ejection: ejection.unwrap_or(DEFAULT_EJECTION),
        max_ejection,
        max_ejected_percent: int_in(
            sink,
            p.max_ejected_percent.as_ref(),
            &key("max_ejected_percent"),
            DEFAULT_MAX_EJECTED_PERCENT,
            0,
            100,
        ),
    }
}

/// `[PREFIX.retry]`; defaults when the table is absent.
pub(super) fn retry(raw: Option<&RawRetry>, prefix: &str, sink: &mut Sink<'_>) -> RetryPolicy {
    let absent = RawRetry::default();
    let r = raw.unwrap_or(&absent);
    let key = |field: &str| format!("{prefix}.retry.{field}");
    RetryPolicy {
        attempts: int_in(
            sink,
            r.attempts.as_ref(),
            &key("attempts"),
            DEFAULT_ATTEMPTS,
            1,
            MAX_ATTEMPTS,
        ),
        deadline: timeout(sink, r.deadline.clone(), &key("deadline"), DEFAULT_DEADLINE),
        budget: fraction(sink, r.budget.as_ref(), &key("budget"), DEFAULT_BUDGET),
        min_retries_per_second: int_in(
            sink,
            r.min_retries_per_second.as_ref(),
            &key("min_retries_per_second"),
            DEFAULT_MIN_RETRIES_PER_SECOND,
            0,
            u32::MAX,
        ),
    }
}
