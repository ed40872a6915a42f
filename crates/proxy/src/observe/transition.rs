//! A server's health transitions as observe reports them: one log line each (a warning when a
//! server goes out, info when it comes back) and a metric. Upstream health decides them
//! ([`crate::upstream::health`]); this is the plain record it hands over.

use std::time::Duration;

use crate::failure::FailureKind;

/// A state change worth a log line (and, later, a metric).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// Active checks took the server out.
    Down { reason: String },
    /// Active checks put it back.
    Up,
    /// Passive health ejected it for this long.
    Ejected {
        cause: FailureKind,
        duration: Duration,
    },
    /// A request succeeded after an ejection: back to normal.
    Recovered,
}

/// Logs a transition once, as a warning when a server goes out and info when it comes back.
pub fn log_transition(server: &str, transition: &Transition) {
    match transition {
        Transition::Down { reason } => tracing::warn!(
            target: "gatehouse::health",
            server,
            state = "down",
            reason = %reason,
            "server marked down by health checks"
        ),
        Transition::Up => tracing::info!(
            target: "gatehouse::health",
            server,
            state = "up",
            "server marked up by health checks"
        ),
        Transition::Ejected { cause, duration } => tracing::warn!(
            target: "gatehouse::health",
            server,
            state = "ejected",
            reason = cause.token(),
            ejection_ms = duration.as_millis() as u64,
            "server ejected after consecutive failures"
        ),
        Transition::Recovered => tracing::info!(
            target: "gatehouse::health",
            server,
            state = "recovered",
            "server answered again after an ejection"
        ),
    }
}
