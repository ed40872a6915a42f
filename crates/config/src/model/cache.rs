//! `[cache]`, `[robots]`, `[maintenance]` and a route's `[route.cache]`.

use std::path::PathBuf;
use std::time::Duration;

/// `[cache]`
#[derive(Debug, Clone, PartialEq)]
pub struct CacheConfig {
    /// Bytes of stored responses kept in memory, across all routes. Default 64 MiB.
    pub memory: u64,
    /// Responses with a larger body are passed through and not stored. Default 8 MiB.
    pub max_object_size: u64,
    /// The on-disk store (a redb file), which survives a restart. `None` (the default) = memory
    /// only. Its directory exists (checked). Taken at start only.
    pub disk_path: Option<PathBuf>,
    /// Bound on the on-disk store; the least recently written entries go first. Default 1 GiB.
    pub disk_size: u64,
    /// How long requests for a key whose response is being fetched wait for it (request
    /// coalescing) before going to the upstream themselves. Default 5s.
    pub lock_timeout: Duration,
    /// gatehouse's own targeted cache-control field (RFC 9213), lowercase; it outranks
    /// `CDN-Cache-Control` and `Cache-Control`. Default `gatehouse-cache-control`; `None`
    /// (`targeted_field = ""`) = none.
    pub targeted_field: Option<String>,
    /// Obey `CDN-Cache-Control` (RFC 9213 §3) over `Cache-Control`. Default true.
    pub cdn_cache_control: bool,
    /// Send `targeted_field` on to the client. Default false: it is addressed to this cache
    /// alone, and no cache downstream obeys it. (`CDN-Cache-Control` is always forwarded: it
    /// addresses every CDN on the way, and another may follow.)
    pub forward_targeted_field: bool,
}

/// `[robots]`
#[derive(Debug, Clone, PartialEq)]
pub struct RobotsConfig {
    /// Keep each host's last good `/robots.txt` (on disk, in `server.state_dir`) and serve it
    /// when the origin fails. Default true.
    pub guard: bool,
    /// How old a kept copy may be and still be served. Default 30 days.
    pub max_age: Duration,
}

/// `[maintenance]`, or a route's `[route.maintenance]` resolved against it.
#[derive(Debug, Clone, PartialEq)]
pub struct MaintenanceConfig {
    /// Answer every request with 503 (`/robots.txt` is still served from the guard).
    /// Default false.
    pub enabled: bool,
    /// The `Retry-After` of the 503. Default 5 minutes.
    pub retry_after: Duration,
    /// The body of the 503; `None` = gatehouse's own negotiated error page.
    pub page: Option<MaintenancePage>,
}

/// A maintenance page, read when the config is loaded (so a reload picks up an edited page).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaintenancePage {
    pub path: PathBuf,
    /// From the file name's extension: `.html`/`.htm`, `.json`, `.txt`; HTML otherwise.
    pub content_type: &'static str,
    /// Shared, so that serving it copies nothing.
    pub body: std::sync::Arc<[u8]>,
}

/// `[route.cache]`
#[derive(Debug, Clone, PartialEq)]
pub struct RouteCache {
    pub mode: CacheMode,
    /// How long past its freshness a stored response may be served when the origin fails, for
    /// responses without a `stale-if-error` directive of their own. Default 1 day.
    pub stale_if_error: Duration,
}

/// `route.cache.mode`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheMode {
    /// Serve fresh copies, revalidate stale ones, serve stale on error.
    Full,
    /// Keep copies only to serve them when the origin fails; every request goes upstream.
    StaleIfError,
}
