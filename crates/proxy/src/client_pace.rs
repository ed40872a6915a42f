//! How slowly a client may send its request body: the longest pause (`client_header_timeout`)
//! and the lowest average rate (`min_request_body_rate` after `min_rate_grace`), so that a body
//! trickled at a byte a second cannot hold a connection, and an upstream connection behind it,
//! for as long as it trickles. The rate is measured by [`RateGuard`] over the time gatehouse
//! waited for the client only.

use std::time::Duration;

use http::StatusCode;

use crate::failure::Failure;
pub use crate::http1::pace::{MinRate, RateGuard, TooSlow};

/// The pace a client must keep while sending a request body, and how much it may send.
#[derive(Debug, Clone, Copy)]
pub struct ClientPace {
    /// The longest pause between two reads that bring bytes.
    pub idle_timeout: Duration,
    pub min_rate: MinRate,
    /// `max_request_body_size`: more body bytes than this get 413. 0 = no limit.
    pub max_bytes: u64,
}

impl ClientPace {
    /// Only the pause limit (no minimum rate, no size limit).
    pub fn idle_only(idle_timeout: Duration) -> Self {
        Self {
            idle_timeout,
            min_rate: MinRate::OFF,
            max_bytes: 0,
        }
    }
}

/// The 413 a request body larger than `max_request_body_size` gets; `declared` when its
/// Content-Length said so before a byte was read.
pub fn too_large(limit: u64, declared: Option<u64>) -> Failure {
    let details = match declared {
        Some(length) => format!(
            "request body of {length} bytes (Content-Length) is larger than max_request_body_size ({limit} bytes)"
        ),
        None => format!(
            "request body grew past max_request_body_size ({limit} bytes) while it was being forwarded"
        ),
    };
    Failure::client(StatusCode::PAYLOAD_TOO_LARGE, details)
}

/// The 408 a request body too slow for its rate gets.
pub fn too_slow(slow: TooSlow) -> Failure {
    Failure::client(
        StatusCode::REQUEST_TIMEOUT,
        format!(
            "client sent its request body too slowly: {slow}, below min_request_body_rate ({} B/s)",
            slow.min_rate
        ),
    )
}
