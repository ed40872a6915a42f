//! What gatehouse tells operators: one access record per request, one warning per failure,
//! Prometheus metrics, and the recent failures and request rates that the admin status page
//! ([`crate::admin`]) shows.
//!
//! [`Observer`] is the one place a failure or a finished request is reported: it writes the
//! log line, counts the metric and remembers the failure for `/status`. It lives as long as
//! the process, shared by every config snapshot, so counters survive reloads.
//!
//! It sits below the pipeline and knows none of its types: the pipeline, the bodies and the
//! upstream pools hand it plain records ([`Failure`], [`AttemptContext`], [`AccessRecord`],
//! [`Transition`]), and `/metrics` hands it the state gauges as a
//! [`ScrapeState`](metrics::ScrapeState).

mod access_format;
pub mod access_log;
pub mod log_file;
pub mod metrics;
pub mod rates;
pub mod recent;
pub mod transition;

use std::time::SystemTime;

use access_log::{AccessRecord, AccessSink, AttemptContext, log_failure};
use metrics::{Metrics, RequestOutcome};
use recent::{RecentFailure, RecentFailures};

use crate::failure::Failure;
use transition::{Transition, log_transition};

/// Metrics, recent failures and request rates, for the process's whole life.
#[derive(Debug)]
pub struct Observer {
    pub metrics: Metrics,
    pub recent: RecentFailures,
    pub rates: rates::Rates,
    pub started: SystemTime,
    /// Where access records go (log events, or combined/JSON lines); fixed at start.
    pub access: AccessSink,
}

impl Default for Observer {
    fn default() -> Self {
        Self {
            metrics: Metrics::new(),
            recent: RecentFailures::default(),
            rates: rates::Rates::default(),
            started: SystemTime::now(),
            access: AccessSink::default(),
        }
    }
}

impl Observer {
    /// An observer whose access records go to `access` (the default writes them as log events).
    pub fn with_access_sink(access: AccessSink) -> Self {
        Self {
            access,
            ..Self::default()
        }
    }

    /// A failure (of one attempt, or of a request before any attempt): its warning line, its
    /// metric when an upstream server was involved, and its entry in the recent failures.
    pub fn failure(&self, failure: &Failure, ctx: &AttemptContext<'_>) {
        log_failure(failure, ctx);
        if let (Some(pool), Some(server)) = (ctx.pool, ctx.server) {
            self.metrics.upstream_failure(pool, server, failure.kind);
        }
        self.recent.push(RecentFailure::new(failure, ctx));
    }

    /// A request is finished (its response complete, failed or abandoned): counted, then its
    /// access record written.
    pub fn finished(&self, record: AccessRecord) {
        if record.failure.is_some() || record.attempts > 1 {
            // Something failed on the way: its recent-failure entries learn the outcome.
            self.recent.answered(&record.request_id, record.status);
        }
        if let Some(result) = record.cache {
            self.metrics
                .cache_result(record.route.as_deref().unwrap_or("-"), result);
        }
        self.metrics.request(&RequestOutcome {
            route: record.route.as_deref(),
            pool: record.pool.as_deref(),
            status: http::StatusCode::from_u16(record.status)
                .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR),
            failure: record.failure,
            total: record.started.elapsed(),
            connect: record.connect,
            first_byte: record.first_byte,
        });
        self.access.write(record);
    }

    /// A stale copy stood in for a failed origin: a warning line and a count, so that an outage
    /// hidden from clients is not hidden from the operator.
    pub fn stale_served(&self, route: &str, source: &str, reason: &str, request_id: &str) {
        self.metrics.stale_served(route, source, reason);
        tracing::warn!(
            target: "gatehouse::cache",
            route,
            source,
            reason,
            request_id,
            "origin failed ({reason}); served a stale copy from the {}",
            if source == "robots_guard" { "robots.txt guard" } else { "cache" }
        );
    }

    /// A server's health changed: logged and counted.
    pub fn transition(&self, pool: &str, server: &str, transition: &Transition) {
        log_transition(server, transition);
        match transition {
            Transition::Down { .. } => self.metrics.health_transition(pool, server, false),
            Transition::Up => self.metrics.health_transition(pool, server, true),
            Transition::Ejected { cause, .. } => self.metrics.ejection(pool, server, *cause),
            Transition::Recovered => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::failure::FailureKind;

    #[test]
    fn health_changes_are_counted_by_what_happened() {
        let observer = Observer::default();
        let server = "app/127.0.0.1:1";
        observer.transition(
            "app",
            server,
            &Transition::Ejected {
                cause: FailureKind::ConnectionTimeout,
                duration: Duration::from_secs(30),
            },
        );
        observer.transition("app", server, &Transition::Recovered);
        observer.transition(
            "app",
            server,
            &Transition::Down {
                reason: "status 500".into(),
            },
        );
        observer.transition("app", server, &Transition::Up);
        let text = observer.metrics.encode();
        for expected in [
            r#"gatehouse_upstream_ejections_total{kind="connection_timeout",pool="app",server="app/127.0.0.1:1"} 1"#,
            r#"gatehouse_upstream_health_transitions_total{pool="app",server="app/127.0.0.1:1",to="down"} 1"#,
            r#"gatehouse_upstream_health_transitions_total{pool="app",server="app/127.0.0.1:1",to="up"} 1"#,
        ] {
            assert!(text.contains(expected), "{expected} missing from:\n{text}");
        }
    }
}
