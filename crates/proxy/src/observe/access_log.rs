//! The access record (one per request, emitted once, from one place) and the failure warning
//! (one per failed attempt).
//!
//! Both go through `tracing`, so the subscriber set up by the binary decides text or JSON. The
//! access record uses target `gatehouse::access`, failure warnings `gatehouse::failure`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::Method;
use tokio::time::Instant;

use crate::failure::Failure;

/// Everything the access log says about one request. Filled in as the request moves through
/// the pipeline; emitted when the response (body included) is finished.
#[derive(Debug)]
pub struct AccessRecord {
    pub enabled: bool,
    pub started: Instant,
    pub client: SocketAddr,
    pub request_id: Arc<str>,
    pub method: Method,
    pub target: String,
    pub status: u16,
    pub route: Option<Arc<str>>,
    /// The pool the route sends to.
    pub pool: Option<Arc<str>>,
    pub upstream: Option<Arc<str>>,
    pub upstream_status: Option<u16>,
    pub failure: Option<&'static str>,
    pub attempts: u32,
    pub connect: Option<Duration>,
    pub first_byte: Option<Duration>,
    pub body_bytes: u64,
    /// The client went away before the response was complete.
    pub client_aborted: bool,
}

impl AccessRecord {
    pub fn new(
        enabled: bool,
        client: SocketAddr,
        request_id: Arc<str>,
        method: Method,
        target: String,
    ) -> Self {
        Self {
            enabled,
            started: Instant::now(),
            client,
            request_id,
            method,
            target,
            status: 0,
            route: None,
            pool: None,
            upstream: None,
            upstream_status: None,
            failure: None,
            attempts: 0,
            connect: None,
            first_byte: None,
            body_bytes: 0,
            client_aborted: false,
        }
    }

    /// Writes the record. Consumes it so a request is logged once.
    pub fn emit(self) {
        if !self.enabled {
            return;
        }
        let ms = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1000.0);
        tracing::info!(
            target: "gatehouse::access",
            client = %self.client.ip(),
            method = %self.method,
            path = %self.target,
            status = self.status,
            route = self.route.as_deref().unwrap_or("-"),
            upstream = self.upstream.as_deref().unwrap_or("-"),
            upstream_status = self.upstream_status,
            failure = self.failure.unwrap_or("-"),
            attempts = self.attempts,
            connect_ms = ms(self.connect),
            first_byte_ms = ms(self.first_byte),
            total_ms = self.started.elapsed().as_secs_f64() * 1000.0,
            bytes = self.body_bytes,
            client_aborted = self.client_aborted,
            request_id = %self.request_id,
        );
    }
}

/// Facts about the attempt a failure happened in, for its warning line.
#[derive(Debug, Clone, Copy)]
pub struct AttemptContext<'a> {
    pub request_id: &'a str,
    /// The route's label, once the request was routed.
    pub route: Option<&'a str>,
    pub pool: Option<&'a str>,
    pub server: Option<&'a str>,
    pub attempt: u32,
    /// Whether any byte of the request had been written to the upstream (replay safety).
    pub request_sent: bool,
}

impl<'a> AttemptContext<'a> {
    /// For failures before any upstream was tried (bad request, no route, panic).
    pub fn before_any_attempt(request_id: &'a str) -> Self {
        Self {
            request_id,
            route: None,
            pool: None,
            server: None,
            attempt: 0,
            request_sent: false,
        }
    }
}

/// The one warning line a failure produces: kind, phase, where, attempt, replay safety, OS
/// error, request id and the hint that names the likely fix.
pub fn log_failure(failure: &Failure, ctx: &AttemptContext<'_>) {
    tracing::warn!(
        target: "gatehouse::failure",
        kind = failure.kind.token(),
        phase = failure.phase.describe(),
        pool = ctx.pool.unwrap_or("-"),
        server = ctx.server.unwrap_or("-"),
        attempt = ctx.attempt,
        request_sent = ctx.request_sent,
        os_error = failure.os_error,
        request_id = ctx.request_id,
        hint = failure.kind.hint(),
        rcode = failure.params.rcode,
        status_code = failure.params.status_code.map(|s| s.as_u16()),
        header_section_size = failure.params.header_section_size,
        coding = failure.params.coding.as_deref(),
        "{} {}: {}",
        failure.kind.token(),
        failure.phase.describe(),
        failure.details,
    );
}
