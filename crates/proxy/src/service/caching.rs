//! The pipeline's cache phases: maintenance mode, the lookup before going upstream (hit,
//! revalidation, coalescing), what to store of the upstream's response, and the stale copy
//! served when the origin fails (stale-if-error and the robots.txt guard).
//!
//! This file holds what the phases share; each phase is an `impl Pipeline` block of its own:
//!
//! - `maintenance.rs`: maintenance mode;
//! - `lookup.rs`: the lookup before going upstream (hit, coalescing, revalidation);
//! - `background.rs`: stale-while-revalidate and its background revalidation;
//! - `store.rs`: what to store of the upstream's response, and the copy a 304 freshens;
//! - `stale.rs`: the stale copy served when the origin fails.

mod background;
mod lookup;
mod maintenance;
mod stale;
mod store;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use gatehouse_config::RouteCache;
use http::header::{self, HeaderMap, HeaderName};
use http::{Method, Response, StatusCode};

use super::Pipeline;
use crate::body::ProxyBody;
use crate::cache::entry::StoredResponse;
use crate::cache::policy::{self, Freshness};
use crate::cache::robots::ROBOTS_PATH;
use crate::cache::serve::{self, CacheStatus};
use crate::cache::store::FillGuard;
use crate::failure::Failure;
use crate::forward;

/// Heuristic freshness (10 % of the time since Last-Modified) is capped at one day.
const HEURISTIC_CAP: Duration = Duration::from_secs(24 * 3600);

/// What the cache knows about one request on a caching route.
#[derive(Debug)]
pub(super) struct CacheRequest {
    key: Arc<str>,
    settings: RouteCache,
    /// The stored variant the request selects (fresh or stale), once looked up.
    stored: Option<Arc<StoredResponse>>,
    looked_up: bool,
    /// A conditional request is revalidating `stored`.
    revalidating: bool,
    /// This request fetches the key for others waiting (coalescing).
    fill: Option<FillGuard>,
    /// The response may be stored (GET, no `no-store` in the request).
    may_store: bool,
    /// A GET: its response may be stored unless a rule says otherwise (HEAD has no body).
    is_get: bool,
    /// A stored copy may be served for it (no `Authorization`: RFC 9111 §3.5).
    may_use_stored: bool,
    /// An unsafe method: a successful response invalidates the key (RFC 9111 §4.4).
    invalidates: bool,
    /// GET or HEAD: the only methods the cache answers or stores.
    readable: bool,
    /// The client's request header fields, for `Vary` (taken only when going upstream).
    request_headers: HeaderMap,
    request_time: SystemTime,
    collapsed: bool,
    /// A background revalidation (stale-while-revalidate) made by gatehouse, not a client.
    background: bool,
}

/// Why the origin is taken as failed, for a stale copy.
#[derive(Debug, Clone, Copy)]
pub(super) enum OriginFailed<'f> {
    /// A failure of gatehouse's taxonomy; its Proxy-Status goes on the stale response.
    Failure(&'f Failure, Option<&'f str>),
    /// The origin's own 500, 502, 503 or 504, from this server, over this protocol (ALPN token).
    Status(StatusCode, &'f str, &'static str),
}

/// An origin status that lets a stale copy be served (RFC 5861 §4: "500, 502, 503, or 504").
pub(super) fn is_stale_status(status: StatusCode) -> bool {
    matches!(status.as_u16(), 500 | 502 | 503 | 504)
}

/// The host part of cache keys and of the robots.txt guard: the `Host` field as it is
/// forwarded (lowercase), port included, so that a response the origin built for
/// `example.com:1337` is never served for `example.com`.
pub(super) fn keyed_host(parts: &http::request::Parts) -> String {
    parts
        .headers
        .get(header::HOST)
        .map(|h| String::from_utf8_lossy(h.as_bytes()).to_ascii_lowercase())
        .or_else(|| {
            parts
                .uri
                .authority()
                .map(|a| a.as_str().to_ascii_lowercase())
        })
        .unwrap_or_default()
}

/// The cache key: host and request target (method and scheme are implied: GET/HEAD over http).
fn cache_key(parts: &http::request::Parts) -> Arc<str> {
    let target = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let mut key = keyed_host(parts);
    key.push_str(target);
    Arc::from(key)
}

impl Pipeline<'_> {
    /// Adds gatehouse's headers to a response made from the cache and writes its access record.
    fn finish_from_cache(
        &mut self,
        response: &mut Response<ProxyBody>,
        status: &CacheStatus,
        outcome: &'static str,
    ) {
        let headers = response.headers_mut();
        if let Some(value) = status.header(&self.snapshot.config.server.name) {
            headers.append(crate::forward::CACHE_STATUS, value);
        }
        if let Some(id) = self.request_id_header.clone() {
            headers.insert(forward::X_REQUEST_ID, id);
        }
        let mut record = self.take_record();
        record.status = response.status().as_u16();
        record.cache = Some(outcome);
        record.body_bytes = http_body::Body::size_hint(response.body())
            .exact()
            .unwrap_or(0);
        self.snapshot.observer.finished(record);
    }
}

/// Whether the request is for `/robots.txt` (GET or HEAD), the robots.txt guard's path.
pub(super) fn is_robots_request(parts: &http::request::Parts) -> bool {
    (parts.method == Method::GET || parts.method == Method::HEAD) && parts.uri.path() == ROBOTS_PATH
}

/// Whether the guard may learn from the response to this robots.txt request: a GET without a
/// query or credentials.
pub(super) fn may_learn_robots(parts: &http::request::Parts) -> bool {
    parts.method == Method::GET
        && parts.uri.query().is_none()
        && !parts.headers.contains_key(header::AUTHORIZATION)
        && !parts.headers.contains_key(header::COOKIE)
}
/// A stored copy as the response sent downstream (see [`serve::from_stored`]).
fn from_stored(
    entry: &StoredResponse,
    age: Duration,
    request: &HeaderMap,
    head_only: bool,
    hidden: Option<&HeaderName>,
) -> Response<ProxyBody> {
    serve::from_stored(entry, age, request, head_only, hidden).map(ProxyBody::full)
}

/// The freshness of a stored copy at `now`, its lifetime computed from its own fields
/// (RFC 9111 §4.2.1, with the heuristic capped at [`HEURISTIC_CAP`]) and the route's
/// targeted fields.
fn stored_freshness(stored: &StoredResponse, targets: &[HeaderName], now: SystemTime) -> Freshness {
    let lifetime = policy::freshness_lifetime(
        stored.status,
        &stored.headers,
        stored.response_time,
        HEURISTIC_CAP,
        targets,
    );
    policy::freshness(stored, lifetime, now)
}
