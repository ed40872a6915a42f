//! Prometheus metrics, served on the admin listener's `/metrics` in the classic text format
//! (0.0.4), which every Prometheus and `promtool check metrics` reads.
//!
//! Counters and histograms are updated on the request path; gauges that describe state
//! (server health, open connections) are read from the snapshot in force when scraped (the
//! admin listener hands them over as a [`ScrapeState`]), so a server a reload removed stops
//! being reported. Failure labels use the same kind tokens as
//! `Proxy-Status`.

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use prometheus::{HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Registry};

use crate::failure::FailureKind;
use define::{counter_vec, gauge, gauge_vec, histogram_vec, register};

mod define;
mod last_child;
mod scrape;

pub use scrape::{CacheGauges, PoolGauges, ScrapeState, ServerGauges};

/// The content type of a scrape.
pub const CONTENT_TYPE: &str = prometheus::TEXT_FORMAT;

/// Every metric gatehouse exports. Lives as long as the process, across reloads.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Requests by route, status and failure kind ("" when the response completed).
    pub(crate) requests: IntCounterVec,
    request_duration: HistogramVec,
    upstream_failures: IntCounterVec,
    retries: IntCounterVec,
    stale_connection_retries: IntCounterVec,
    budget_exhausted: IntCounterVec,
    connect_duration: HistogramVec,
    first_byte_duration: HistogramVec,
    ejections: IntCounterVec,
    health_transitions: IntCounterVec,
    connections: IntCounter,
    tls_handshake_failures: IntCounterVec,
    proxy_protocol_refused: IntCounterVec,
    tunnels_open: IntGaugeVec,
    tunnels_closed: IntCounterVec,
    reloads: IntCounterVec,
    last_reload_successful: IntGauge,
    last_reload_success_time: IntGauge,
    // Filled at scrape time from the snapshot in force.
    server_healthy: IntGaugeVec,
    server_in_flight: IntGaugeVec,
    healthy_servers: IntGaugeVec,
    servers: IntGaugeVec,
    open_connections: IntGauge,
    cache_requests: IntCounterVec,
    stale_served: IntCounterVec,
    cache_bytes: IntGaugeVec,
    cache_entries: IntGaugeVec,
    rate_limited: IntCounterVec,
    limit_store_errors: IntCounterVec,
    limit_store_up: IntGaugeVec,
    compressed: IntCounterVec,
    decompressed: IntCounterVec,
    compress_skipped: IntCounterVec,
    compress_bytes: IntCounterVec,
    decompress_bytes: IntCounterVec,
    /// One scrape at a time: the state gauges are cleared and refilled for each.
    scraping: Mutex<()>,
    /// Which `Metrics` this is, for the children the request path keeps (`last_child`).
    id: u64,
}

/// What a finished request adds to the metrics.
#[derive(Debug)]
pub struct RequestOutcome<'a> {
    pub route: Option<&'a str>,
    pub pool: Option<&'a str>,
    pub status: http::StatusCode,
    pub failure: Option<&'static str>,
    pub total: Duration,
    pub connect: Option<Duration>,
    pub first_byte: Option<Duration>,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let requests = counter_vec(
            &registry,
            "gatehouse_requests_total",
            "Requests answered, by route, status and failure kind (empty when the response completed).",
            &["route", "status", "failure"],
        );
        let request_duration = histogram_vec(
            &registry,
            "gatehouse_request_duration_seconds",
            "Time from the request's arrival to the end of its response, by route.",
            &["route"],
        );
        let upstream_failures = counter_vec(
            &registry,
            "gatehouse_upstream_failures_total",
            "Failed upstream attempts, by pool, server and failure kind (the Proxy-Status error token).",
            &["pool", "server", "kind"],
        );
        let retries = counter_vec(
            &registry,
            "gatehouse_upstream_retries_total",
            "Attempts made after a failed one (on another server), by pool.",
            &["pool"],
        );
        let stale_connection_retries = counter_vec(
            &registry,
            "gatehouse_upstream_stale_connection_retries_total",
            "Requests sent again on a new connection because the kept-alive one they met had been closed by the server (the keep-alive race), by pool. Not failures of the server.",
            &["pool"],
        );
        let budget_exhausted = counter_vec(
            &registry,
            "gatehouse_upstream_retry_budget_exhausted_total",
            "Retries not made because the pool's retry budget was spent.",
            &["pool"],
        );
        let connect_duration = histogram_vec(
            &registry,
            "gatehouse_upstream_connect_duration_seconds",
            "Time to open a new upstream connection, by pool.",
            &["pool"],
        );
        let first_byte_duration = histogram_vec(
            &registry,
            "gatehouse_upstream_first_byte_duration_seconds",
            "Time from the request's arrival to the upstream's response head, by pool.",
            &["pool"],
        );
        let ejections = counter_vec(
            &registry,
            "gatehouse_upstream_ejections_total",
            "Servers taken out by passive health (outlier detection), by the failure kind that did it.",
            &["pool", "server", "kind"],
        );
        let health_transitions = counter_vec(
            &registry,
            "gatehouse_upstream_health_transitions_total",
            "Servers taken out (to=down) or put back (to=up) by active health checks.",
            &["pool", "server", "to"],
        );
        let connections = IntCounter::new(
            "gatehouse_connections_total",
            "Client connections accepted.",
        )
        .unwrap_or_else(|err| unreachable!("static metric definition: {err}"));
        register(&registry, connections.clone());
        let tls_handshake_failures = counter_vec(
            &registry,
            "gatehouse_tls_handshake_failures_total",
            "Client TLS handshakes that failed (reason=error) or did not finish within client_header_timeout (reason=timeout).",
            &["reason"],
        );
        for reason in ["error", "timeout"] {
            tls_handshake_failures.with_label_values(&[reason]);
        }
        let proxy_protocol_refused = counter_vec(
            &registry,
            "gatehouse_proxy_protocol_refused_total",
            "Connections to a proxy_protocol listener closed before HTTP: from a peer not in trusted_proxies (reason=untrusted), without a valid PROXY header (reason=invalid), or whose header did not arrive within client_header_timeout (reason=timeout).",
            &["reason"],
        );
        for reason in ["untrusted", "invalid", "timeout"] {
            proxy_protocol_refused.with_label_values(&[reason]);
        }
        let cache_requests = counter_vec(
            &registry,
            "gatehouse_cache_requests_total",
            "Requests on caching routes by what the cache did: hit, miss, expired, revalidated, stale, stale-revalidate (a stale copy served while it is revalidated), background (that revalidation), uncacheable, bypass, maintenance.",
            &["route", "result"],
        );
        let stale_served = counter_vec(
            &registry,
            "gatehouse_stale_served_total",
            "Stale copies served because the origin failed, by route, source (cache or robots_guard) and reason (failure kind, or http_5xx for the origin's own error).",
            &["route", "source", "reason"],
        );
        let cache_bytes = gauge_vec(
            &registry,
            "gatehouse_cache_bytes",
            "Bytes of stored responses, by tier (memory or disk).",
            &["tier"],
        );
        let cache_entries = gauge_vec(
            &registry,
            "gatehouse_cache_entries",
            "Stored keys, by tier (memory or disk).",
            &["tier"],
        );
        let compressed = counter_vec(
            &registry,
            "gatehouse_compressed_responses_total",
            "Responses gatehouse compressed, by route and encoding (gzip, br, zstd).",
            &["route", "encoding"],
        );
        let decompressed = counter_vec(
            &registry,
            "gatehouse_decompressed_responses_total",
            "Compressed upstream responses gatehouse decoded for a client that does not accept their encoding (decompress = true), by route and encoding.",
            &["route", "encoding"],
        );
        let compress_skipped = counter_vec(
            &registry,
            "gatehouse_compress_skipped_total",
            "Responses on compressing routes sent as they came, by route and reason: head, status (1xx, 204, 304), partial (206), no_transform, encoded (already has a Content-Encoding), type, small (below min_size), not_accepted.",
            &["route", "reason"],
        );
        let compress_bytes = counter_vec(
            &registry,
            "gatehouse_compress_bytes_total",
            "Bytes through the compressor, by route, encoding and side: in (the upstream's body) and out (sent); the ratio is out / in.",
            &["route", "encoding", "side"],
        );
        let decompress_bytes = counter_vec(
            &registry,
            "gatehouse_decompress_bytes_total",
            "Bytes through the decompressor, by route, encoding and side: in (the upstream's compressed body) and out (sent).",
            &["route", "encoding", "side"],
        );
        let tunnels_open = gauge_vec(
            &registry,
            "gatehouse_tunnels_open",
            "Upgraded connections (WebSocket) open now, by pool.",
            &["pool"],
        );
        let tunnels_closed = counter_vec(
            &registry,
            "gatehouse_tunnels_closed_total",
            "Upgraded connections that ended, by pool and how (closed, idle_timeout, error, client_not_upgraded).",
            &["pool", "end"],
        );
        let reloads = counter_vec(
            &registry,
            "gatehouse_reloads_total",
            "Config reloads, by outcome (ok or refused).",
            &["outcome"],
        );
        let last_reload_successful = gauge(
            &registry,
            "gatehouse_config_last_reload_successful",
            "1 when the last reload (or the start) took its config, 0 when it was refused.",
        );
        let last_reload_success_time = gauge(
            &registry,
            "gatehouse_config_last_reload_success_timestamp_seconds",
            "When a config was last taken (start or reload), as a Unix time.",
        );
        let server_healthy = gauge_vec(
            &registry,
            "gatehouse_upstream_server_healthy",
            "1 when the server may take requests, 0 when health checks or passive health have it out.",
            &["pool", "server"],
        );
        let server_in_flight = gauge_vec(
            &registry,
            "gatehouse_upstream_server_in_flight_requests",
            "Requests in flight on the server.",
            &["pool", "server"],
        );
        let healthy_servers = gauge_vec(
            &registry,
            "gatehouse_upstream_healthy_servers",
            "Servers of the pool that may take requests.",
            &["pool"],
        );
        let servers = gauge_vec(
            &registry,
            "gatehouse_upstream_servers",
            "Servers in the pool (host names expanded to their addresses).",
            &["pool"],
        );
        let open_connections = gauge(
            &registry,
            "gatehouse_open_connections",
            "Client connections open now.",
        );
        let rate_limited = counter_vec(
            &registry,
            "gatehouse_rate_limited_total",
            "Requests refused with 429 by a route's limit, by route and limit (rate or concurrency).",
            &["route", "limit"],
        );
        let limit_store_errors = counter_vec(
            &registry,
            "gatehouse_limit_store_errors_total",
            "Rate-limit decisions the store did not answer (the request then went on or got 503, as limits.fail says), by reason (unreachable, timeout, reply).",
            &["reason"],
        );
        let limit_store_up = gauge_vec(
            &registry,
            "gatehouse_limit_store_up",
            "1 when the store of the rate limits' counters answers (always 1 for memory), 0 when it is unreachable.",
            &["store"],
        );
        for outcome in ["ok", "refused"] {
            reloads.with_label_values(&[outcome]);
        }
        let metrics = Self {
            registry,
            requests,
            request_duration,
            upstream_failures,
            retries,
            stale_connection_retries,
            budget_exhausted,
            connect_duration,
            first_byte_duration,
            ejections,
            health_transitions,
            connections,
            tls_handshake_failures,
            proxy_protocol_refused,
            tunnels_open,
            tunnels_closed,
            reloads,
            last_reload_successful,
            last_reload_success_time,
            server_healthy,
            server_in_flight,
            healthy_servers,
            servers,
            open_connections,
            cache_requests,
            stale_served,
            cache_bytes,
            cache_entries,
            rate_limited,
            limit_store_errors,
            limit_store_up,
            compressed,
            decompressed,
            compress_skipped,
            compress_bytes,
            decompress_bytes,
            scraping: Mutex::new(()),
            id: last_child::owner_id(),
        };
        metrics.config_taken(true);
        metrics
    }

    pub fn request(&self, outcome: &RequestOutcome<'_>) {
        use last_child::{FIRST_BYTE, REQUEST_DURATION, REQUESTS};
        let route = outcome.route.unwrap_or("-");
        let labels = [
            route,
            outcome.status.as_str(),
            outcome.failure.unwrap_or(""),
        ];
        last_child::inc(&REQUESTS, self.id, &self.requests, &labels);
        let seconds = outcome.total.as_secs_f64();
        last_child::observe(
            &REQUEST_DURATION,
            self.id,
            &self.request_duration,
            &[route],
            seconds,
        );
        if let Some(pool) = outcome.pool {
            if let Some(connect) = outcome.connect {
                self.connect_duration
                    .with_label_values(&[pool])
                    .observe(connect.as_secs_f64());
            }
            if let Some(first_byte) = outcome.first_byte {
                let seconds = first_byte.as_secs_f64();
                last_child::observe(
                    &FIRST_BYTE,
                    self.id,
                    &self.first_byte_duration,
                    &[pool],
                    seconds,
                );
            }
        }
    }

    pub fn upstream_failure(&self, pool: &str, server: &str, kind: FailureKind) {
        self.upstream_failures
            .with_label_values(&[pool, server, kind.token()])
            .inc();
    }

    /// What the cache did for a request on a caching route.
    pub fn cache_result(&self, route: &str, result: &str) {
        self.cache_requests
            .with_label_values(&[route, result])
            .inc();
    }

    /// A response compressed with `encoding`; returns its byte counters (in, out).
    pub fn compressed(&self, route: &str, encoding: &str) -> (IntCounter, IntCounter) {
        self.compressed.with_label_values(&[route, encoding]).inc();
        (
            self.compress_bytes
                .with_label_values(&[route, encoding, "in"]),
            self.compress_bytes
                .with_label_values(&[route, encoding, "out"]),
        )
    }

    /// An upstream response decoded from `encoding`; returns its byte counters (in, out).
    pub fn decompressed(&self, route: &str, encoding: &str) -> (IntCounter, IntCounter) {
        self.decompressed
            .with_label_values(&[route, encoding])
            .inc();
        (
            self.decompress_bytes
                .with_label_values(&[route, encoding, "in"]),
            self.decompress_bytes
                .with_label_values(&[route, encoding, "out"]),
        )
    }

    /// A response on a compressing route sent as it came, and why.
    pub fn compress_skipped(&self, route: &str, reason: &str) {
        self.compress_skipped
            .with_label_values(&[route, reason])
            .inc();
    }

    pub fn stale_served(&self, route: &str, source: &str, reason: &str) {
        self.stale_served
            .with_label_values(&[route, source, reason])
            .inc();
    }

    /// A request refused by a route's `limit` (`rate` or `concurrency`).
    pub fn rate_limited(&self, route: &str, limit: &str) {
        self.rate_limited.with_label_values(&[route, limit]).inc();
    }

    /// A rate-limit decision the store did not answer.
    pub fn limit_store_error(&self, reason: &str) {
        self.limit_store_errors.with_label_values(&[reason]).inc();
    }

    pub fn retry(&self, pool: &str) {
        self.retries.with_label_values(&[pool]).inc();
    }

    pub fn stale_connection_retry(&self, pool: &str) {
        self.stale_connection_retries
            .with_label_values(&[pool])
            .inc();
    }

    pub fn retry_budget_exhausted(&self, pool: &str) {
        self.budget_exhausted.with_label_values(&[pool]).inc();
    }

    pub fn ejection(&self, pool: &str, server: &str, kind: FailureKind) {
        self.ejections
            .with_label_values(&[pool, server, kind.token()])
            .inc();
    }

    pub fn health_transition(&self, pool: &str, server: &str, up: bool) {
        self.health_transitions
            .with_label_values(&[pool, server, if up { "up" } else { "down" }])
            .inc();
    }

    pub fn connection_accepted(&self) {
        self.connections.inc();
    }

    /// A client's TLS handshake failed; `reason` is `error` or `timeout`.
    pub fn tls_handshake_failed(&self, reason: &str) {
        self.tls_handshake_failures
            .with_label_values(&[reason])
            .inc();
    }

    /// A connection to a proxy_protocol listener was closed before HTTP; `reason` is
    /// `untrusted`, `invalid` or `timeout`.
    pub fn proxy_protocol_refused(&self, reason: &str) {
        self.proxy_protocol_refused
            .with_label_values(&[reason])
            .inc();
    }

    /// An upgraded connection (WebSocket) of `pool` started its tunnel.
    pub fn tunnel_opened(&self, pool: &str) {
        self.tunnels_open.with_label_values(&[pool]).inc();
    }

    /// A tunnel of `pool` ended; `end` says how.
    pub fn tunnel_closed(&self, pool: &str, end: &str) {
        self.tunnels_open.with_label_values(&[pool]).dec();
        self.tunnels_closed.with_label_values(&[pool, end]).inc();
    }

    /// A reload (or the start) took its config, or refused it.
    pub fn config_taken(&self, taken: bool) {
        self.last_reload_successful.set(i64::from(taken));
        if taken {
            let now = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs();
            self.last_reload_success_time
                .set(i64::try_from(now).unwrap_or(i64::MAX));
        }
    }

    pub fn reload(&self, taken: bool) {
        self.reloads
            .with_label_values(&[if taken { "ok" } else { "refused" }])
            .inc();
        self.config_taken(taken);
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests;
