//! The access record (one per request, emitted once, from one place), where it goes
//! ([`AccessSink`]), and the failure warning (one per failed attempt).
//!
//! With `access_log_format = "log"` (the default) the access record is a `tracing` event with
//! target `gatehouse::access`, so the subscriber set up by the binary decides text or JSON and
//! where it goes. With `"combined"` or `"json"` it is one line in that format, queued for a
//! background thread that writes it to `access_log_file` or stdout (see [`super::log_file`]).
//! Failure warnings are always events, target `gatehouse::failure`.
//!
//! The `combined` and `json` lines themselves are built in `access_format`.

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::{HeaderValue, Method, Version, header};
use tokio::time::Instant;

pub use super::access_format::{escape_into, rfc3339, time_local};
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
    /// What the cache did: `hit`, `miss`, `expired`, `revalidated`, `stale`, `uncacheable`,
    /// `bypass`, `maintenance`; `None` on routes without a cache.
    pub cache: Option<&'static str>,
    pub attempts: u32,
    pub connect: Option<Duration>,
    pub first_byte: Option<Duration>,
    pub body_bytes: u64,
    /// The client went away before the response was complete.
    pub client_aborted: bool,
    /// The response was cut short after its head went downstream: the upstream's body failed
    /// (`failure` says how). `status` is what the client was told, and never got in full.
    pub upstream_aborted: bool,
    /// The request's HTTP version, `Referer` and `User-Agent`: captured (by
    /// [`AccessRecord::with_request_facts`]) only when the access format writes them.
    pub version: Option<Version>,
    pub referer: Option<HeaderValue>,
    pub user_agent: Option<HeaderValue>,
    /// Held until the record is written or dropped, i.e. until the response ended: the
    /// request's `max_concurrent` slot.
    pub in_flight: Option<InFlightHold>,
}

/// Something a request holds while its response lasts (released on drop).
pub struct InFlightHold(pub Box<dyn Send + Sync>);

impl std::fmt::Debug for InFlightHold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InFlightHold")
    }
}

impl AccessRecord {
    pub fn new(
        enabled: bool,
        client: SocketAddr,
        request_id: Arc<str>,
        method: Method,
        target: String,
    ) -> Self {
        Self::started_at(Instant::now(), enabled, client, request_id, method, target)
    }

    /// An empty record (not enabled) to leave where this one was taken from: the same start,
    /// client and id, without reading the clock again.
    pub fn stand_in(&self) -> Self {
        Self::started_at(
            self.started,
            false,
            self.client,
            Arc::clone(&self.request_id),
            Method::GET,
            String::new(),
        )
    }

    fn started_at(
        started: Instant,
        enabled: bool,
        client: SocketAddr,
        request_id: Arc<str>,
        method: Method,
        target: String,
    ) -> Self {
        Self {
            enabled,
            started,
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
            cache: None,
            attempts: 0,
            connect: None,
            first_byte: None,
            body_bytes: 0,
            client_aborted: false,
            upstream_aborted: false,
            version: None,
            referer: None,
            user_agent: None,
            in_flight: None,
        }
    }

    /// Takes the request's version, `Referer` and `User-Agent` when the record will be written
    /// in a format that shows them (`combined`, `json`); else leaves them out, at no cost.
    #[must_use]
    pub fn with_request_facts<B>(mut self, sink: &AccessSink, req: &http::Request<B>) -> Self {
        if self.enabled && sink.wants_request_facts() {
            self.version = Some(req.version());
            self.referer = req.headers().get(header::REFERER).cloned();
            self.user_agent = req.headers().get(header::USER_AGENT).cloned();
        }
        self
    }

    /// Writes the record as a `gatehouse::access` event. Consumes it so a request is logged
    /// once.
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
            cache = self.cache,
            attempts = self.attempts,
            connect_ms = ms(self.connect),
            first_byte_ms = ms(self.first_byte),
            total_ms = self.started.elapsed().as_secs_f64() * 1000.0,
            bytes = self.body_bytes,
            client_aborted = self.client_aborted,
            upstream_aborted = self.upstream_aborted,
            request_id = %self.request_id,
        );
    }
}

/// The format of access lines written by gatehouse itself (not through the log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineFormat {
    Combined,
    Json,
}

/// Where access records go, fixed at start: events in the log (the default), or lines in a
/// format of their own, queued for a background writer.
#[derive(Debug, Clone, Default)]
pub enum AccessSink {
    /// A `gatehouse::access` event in the log, in `log_format`.
    #[default]
    Log,
    /// One line per record in `format`, to `writer` (an `access_log_file`, or stdout).
    Lines {
        format: LineFormat,
        writer: super::log_file::LineQueue,
    },
}

impl AccessSink {
    /// Whether records should carry the request's version, `Referer` and `User-Agent`.
    pub fn wants_request_facts(&self) -> bool {
        matches!(self, Self::Lines { .. })
    }

    /// Writes a finished request's record (nothing when the access log is off). Never waits
    /// for the disk: a line is only queued.
    pub fn write(&self, record: AccessRecord) {
        if !record.enabled {
            return;
        }
        match self {
            Self::Log => record.emit(),
            Self::Lines { format, writer } => {
                let now = SystemTime::now();
                let total = record.started.elapsed();
                let mut line = match format {
                    LineFormat::Combined => record.combined(now, total),
                    LineFormat::Json => record.json(now, total),
                };
                line.push('\n');
                // Fails only once the writer thread is gone (at exit): nothing to do then.
                let _ = writer.clone().write_all(line.as_bytes());
            }
        }
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

#[cfg(test)]
mod tests {
    use super::super::access_format::tests::record;
    use super::*;

    #[test]
    fn request_facts_are_taken_only_for_line_formats() {
        let req = http::Request::builder()
            .version(Version::HTTP_10)
            .header("referer", "https://r.example/")
            .header("user-agent", "ua/1")
            .body(())
            .unwrap_or_default();
        let new = || {
            AccessRecord::new(
                true,
                SocketAddr::from(([127, 0, 0, 1], 1)),
                "id".into(),
                Method::GET,
                "/".to_owned(),
            )
        };
        let logged = new().with_request_facts(&AccessSink::Log, &req);
        assert_eq!(
            (logged.version, logged.referer, logged.user_agent),
            (None, None, None)
        );
        let (writer, _guard) = super::super::log_file::non_blocking(std::io::sink(), "test")
            .unwrap_or_else(|e| panic!("{e}"));
        let lines = AccessSink::Lines {
            format: LineFormat::Json,
            writer,
        };
        let taken = new().with_request_facts(&lines, &req);
        assert_eq!(taken.version, Some(Version::HTTP_10));
        assert_eq!(
            taken.referer,
            Some(HeaderValue::from_static("https://r.example/"))
        );
        assert_eq!(taken.user_agent, Some(HeaderValue::from_static("ua/1")));
        let mut off = new();
        off.enabled = false;
        assert_eq!(off.with_request_facts(&lines, &req).user_agent, None);
    }

    #[test]
    fn sink_writes_one_line_per_enabled_record() {
        let path =
            std::env::temp_dir().join(format!("gatehouse-access-sink-{}.log", std::process::id()));
        let file = super::super::log_file::LogFile::open(&path)
            .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
        let (writer, guard) = super::super::log_file::non_blocking(file, "test-access")
            .unwrap_or_else(|e| panic!("{e}"));
        let sink = AccessSink::Lines {
            format: LineFormat::Combined,
            writer,
        };
        sink.write(record());
        let mut off = record();
        off.enabled = false;
        sink.write(off);
        drop(sink);
        drop(guard); // flushes
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let _ = std::fs::remove_file(&path);
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(
            text.starts_with("192.0.2.7 - - [") && text.ends_with(" request_id=req-1\n"),
            "{text}"
        );
    }
}
