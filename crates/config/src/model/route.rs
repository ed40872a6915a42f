//! `[[route]]`: host and path matching, and a route's compression.

use super::*;

/// One `[[route]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteConfig {
    /// `None` = any host.
    pub host: Option<HostMatch>,
    /// Path prefix, always starting with `/`. Default `/`.
    pub path: String,
    /// Name of the upstream pool; guaranteed to exist in [`Config::upstreams`].
    pub upstream: String,
    /// Retry non-idempotent requests (POST, PATCH, ...) even after they may have reached the
    /// server. Default false (RFC 9110 §9.2.2).
    pub retry_non_idempotent: bool,
    /// `max_request_body_size` for this route (0 = no limit); `None` = the server's.
    pub max_request_body_size: Option<u64>,
    /// `[route.cache]`; `None` = this route's responses are not stored.
    pub cache: Option<RouteCache>,
    /// `[route.maintenance]` with `[maintenance]`'s values where it sets none. `None` = the route
    /// follows `[maintenance]`.
    pub maintenance: Option<MaintenanceConfig>,
    /// `[route.limit]`; `None` = no rate or concurrency limit on this route.
    pub limit: Option<RouteLimit>,
    /// `[route.compress]` with `[compress]`'s values where it sets none; `None` = the route
    /// follows `[compress]`.
    pub compress: Option<CompressConfig>,
}

/// `[compress]`, or a route's `[route.compress]` resolved against it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompressConfig {
    /// Compress responses. Default: false without a table; a `[compress]` or
    /// `[route.compress]` table switches it on unless it says `enabled = false`.
    pub enabled: bool,
    /// The codings gatehouse produces, in its order of preference among those the client
    /// accepts with equal q. Never empty when `enabled`. Default zstd, br, gzip.
    pub encodings: Vec<Encoding>,
    /// Responses whose `Content-Length` is below this are sent as they are (a response of
    /// unknown length is compressed). Default 1 KiB.
    pub min_size: u64,
    /// Media types to compress: `type/subtype`, `type/*` or `type/*+suffix`, lowercase.
    pub types: Vec<String>,
    /// gzip level, 1 to 9. Default 5.
    pub gzip_level: u32,
    /// brotli quality, 1 to 11. Default 4.
    pub brotli_level: u32,
    /// zstd level, 1 to 19. Default 3.
    pub zstd_level: u32,
    /// Decode an upstream's gzip, br or zstd response for a client that does not accept that
    /// coding. Default false.
    pub decompress: bool,
}

/// A content coding gatehouse can produce and decode (RFC 9110 §8.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    Gzip,
    Brotli,
    Zstd,
}

impl Encoding {
    /// The coding's token in `Accept-Encoding` and `Content-Encoding`.
    pub const fn token(self) -> &'static str {
        match self {
            Self::Gzip => "gzip",
            Self::Brotli => "br",
            Self::Zstd => "zstd",
        }
    }
}

/// `route.host`: exact, or a `*.suffix` wildcard. Both lowercase, without port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostMatch {
    /// `example.com`
    Exact(String),
    /// `*.example.com`, stored as `.example.com` (matches `a.example.com`, not `example.com`).
    Suffix(String),
}
