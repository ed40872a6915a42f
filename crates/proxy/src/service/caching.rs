//! The pipeline's cache phases: maintenance mode, the lookup before going upstream (hit,
//! revalidation, coalescing), what to store of the upstream's response, and the stale copy
//! served when the origin fails (stale-if-error and the robots.txt guard).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use gatehouse_config::{CacheMode, MaintenanceConfig, RouteCache};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};

use super::Pipeline;
use crate::body::ProxyBody;
use crate::cache::capture::Capture;
use crate::cache::entry::StoredResponse;
use crate::cache::policy::{self, Freshness};
use crate::cache::robots::{MAX_ROBOTS_SIZE, ROBOTS_PATH};
use crate::cache::serve::{self, CacheStatus};
use crate::cache::store::{Cache, Fill, FillGuard};
use crate::failure::{Failure, FailureKind, Phase};
use crate::forward;
use crate::respond::{self, ErrorContext};

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

/// Marks the request gatehouse sends itself to revalidate a copy it served stale
/// (stale-while-revalidate, RFC 5861 §3), and carries the fill guard that makes other misses of
/// the key wait for it. A request extension: no client can send one.
#[derive(Debug, Clone)]
struct Revalidation(Arc<std::sync::Mutex<Option<FillGuard>>>);

impl Revalidation {
    fn take(&self) -> Option<FillGuard> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }
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
    /// Maintenance mode: the robots.txt copy for `/robots.txt`, else a 503 with `Retry-After`.
    pub(super) fn maintenance_response(
        &mut self,
        settings: &MaintenanceConfig,
        head_only: bool,
    ) -> Response<ProxyBody> {
        // The maintenance page is gatehouse's own answer: sent as it is.
        self.compress = None;
        if let Some(response) = self.robots_copy(None, head_only, "maintenance") {
            return response;
        }
        let mut failure = Failure::new(
            FailureKind::ProxyInternalResponse,
            Phase::Routing,
            "the route is in maintenance mode",
        );
        failure.params.retry_after = Some(settings.retry_after.as_secs());
        let mut response = respond::render(
            &failure,
            &ErrorContext {
                request_id: &self.request_id,
                accept: self.accept.as_ref(),
                head_only,
                next_hop: None,
                proxy_status: self.proxy_status(),
            },
        );
        if let Some(page) = &settings.page {
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(page.content_type),
            );
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(page.body.len()));
            if !head_only {
                *response.body_mut() =
                    ProxyBody::full(bytes::Bytes::from_owner(Arc::clone(&page.body)));
            }
        }
        let mut record = self.take_record();
        record.status = response.status().as_u16();
        record.failure = Some(failure.kind.token());
        record.cache = Some("maintenance");
        self.snapshot.observer.finished(record);
        response
    }

    /// Decides what the cache does for a request on a caching route before it goes upstream:
    /// answer from a fresh copy, or forward it (conditionally, to revalidate a stale copy).
    /// Returns the answer when the cache gives one.
    pub(super) async fn cache_lookup(
        &mut self,
        settings: &RouteCache,
        parts: &mut http::request::Parts,
        head_only: bool,
    ) -> Option<Response<ProxyBody>> {
        let method = &parts.method;
        let readable = *method == Method::GET || *method == Method::HEAD;
        let request_cc = policy::CacheControl::parse(&parts.headers);
        let mut request = CacheRequest {
            key: cache_key(parts),
            settings: settings.clone(),
            stored: None,
            looked_up: false,
            revalidating: false,
            fill: None,
            may_store: *method == Method::GET && !request_cc.no_store,
            is_get: *method == Method::GET,
            may_use_stored: readable && !parts.headers.contains_key(header::AUTHORIZATION),
            invalidates: !method.is_safe(),
            readable,
            request_headers: HeaderMap::new(),
            request_time: SystemTime::now(),
            collapsed: false,
            background: false,
        };
        let background = parts
            .extensions
            .remove::<Revalidation>()
            .and_then(|revalidation| revalidation.take());
        if !readable {
            self.record.cache = Some("bypass");
            self.cache = Some(request);
            return None;
        }
        if settings.mode == CacheMode::Full && request.may_use_stored {
            let cache = Arc::clone(&self.snapshot.cache);
            request.stored = cache.lookup(&request.key, &parts.headers).await;
            request.looked_up = true;
            if let Some(guard) = background {
                // gatehouse's own revalidation: it holds the key's fill already, and always
                // goes upstream.
                request.fill = Some(guard);
                request.background = true;
                self.record.cache = Some("background");
            } else if let Some(response) = self.fresh_hit(&request, &parts.headers, head_only) {
                return Some(response);
            } else if let Some(response) = self.stale_while_revalidate(&request, parts, head_only) {
                return Some(response);
            }
            if *method == Method::GET && !request.background {
                match cache.begin_fill(&request.key) {
                    Fill::Leader(guard) => request.fill = Some(guard),
                    Fill::Follower(waiting) => {
                        // Another request is fetching this key: wait for it, then look again.
                        if Cache::wait_fill(waiting, self.snapshot.config.cache.lock_timeout).await
                        {
                            request.collapsed = true;
                            request.stored = cache.lookup(&request.key, &parts.headers).await;
                            if let Some(response) =
                                self.fresh_hit(&request, &parts.headers, head_only)
                            {
                                return Some(response);
                            }
                            // Not stored after all: this request goes upstream on its own.
                            request.collapsed = false;
                        }
                    }
                }
            }
            if request.readable {
                // The client's own fields, before our validators replace its conditionals:
                // for `Vary` and for answering its conditional from the copy.
                request.request_headers = parts.headers.clone();
            }
            if let Some(stored) = &request.stored
                && policy::has_validator(stored)
            {
                // Revalidate the stale copy: our validators replace the client's (its own
                // conditional is answered from the copy afterwards).
                for name in [header::IF_NONE_MATCH, header::IF_MODIFIED_SINCE] {
                    parts.headers.remove(name);
                }
                parts.headers.extend(policy::conditional_headers(stored));
                request.revalidating = true;
            }
        }
        if request.request_headers.is_empty() {
            request.request_headers = parts.headers.clone();
        }
        // Ages count from when the request goes upstream, not from before a coalescing wait.
        request.request_time = SystemTime::now();
        self.cache = Some(request);
        None
    }

    /// The answer from a fresh stored copy, if there is one.
    fn fresh_hit(
        &mut self,
        request: &CacheRequest,
        client_headers: &HeaderMap,
        head_only: bool,
    ) -> Option<Response<ProxyBody>> {
        let stored = request.stored.as_ref()?;
        let now = SystemTime::now();
        let targets = &self.snapshot.cache_targets;
        let lifetime = policy::freshness_lifetime(
            stored.status,
            &stored.headers,
            stored.response_time,
            HEURISTIC_CAP,
            targets,
        );
        let freshness = policy::freshness(stored, lifetime, now);
        if !matches!(freshness, Freshness::Fresh { .. })
            || policy::must_revalidate_each_use(stored, targets)
        {
            return None;
        }
        let mut response = from_stored(
            stored,
            policy::current_age(stored, now),
            client_headers,
            head_only,
            self.snapshot.cache_hidden.as_ref(),
        );
        let status = CacheStatus {
            hit: true,
            ttl: Some(serve::ttl_secs(freshness)),
            collapsed: request.collapsed,
            ..CacheStatus::default()
        };
        self.finish_from_cache(&mut response, &status, "hit");
        Some(response)
    }

    /// A stale copy within its `stale-while-revalidate` window (RFC 5861 §3) answers at once,
    /// and one background request revalidates it. When another request is already fetching
    /// the key (a miss, or the revalidation another stale hit started), none is added.
    fn stale_while_revalidate(
        &mut self,
        request: &CacheRequest,
        parts: &http::request::Parts,
        head_only: bool,
    ) -> Option<Response<ProxyBody>> {
        let stored = request.stored.as_ref()?;
        let now = SystemTime::now();
        let targets = &self.snapshot.cache_targets;
        let lifetime = policy::freshness_lifetime(
            stored.status,
            &stored.headers,
            stored.response_time,
            HEURISTIC_CAP,
            targets,
        );
        let freshness = policy::freshness(stored, lifetime, now);
        let Freshness::Stale { stale_for } = freshness else {
            return None;
        };
        if !policy::stale_while_revalidate_allows(stored, stale_for, targets) {
            return None;
        }
        if let Fill::Leader(guard) = self.snapshot.cache.begin_fill(&request.key) {
            self.spawn_revalidation(parts, guard);
        }
        // RFC 5861: a stale response is visibly stale, so Age is at least 1.
        let age = policy::current_age(stored, now).max(Duration::from_secs(1));
        let mut response = from_stored(
            stored,
            age,
            &parts.headers,
            head_only,
            self.snapshot.cache_hidden.as_ref(),
        );
        let status = CacheStatus {
            hit: true,
            ttl: Some(serve::ttl_secs(freshness)),
            detail: Some("stale-while-revalidate"),
            ..CacheStatus::default()
        };
        self.finish_from_cache(&mut response, &status, "stale-revalidate");
        Some(response)
    }

    /// Sends the request that revalidates a copy served stale, in the background, through the
    /// whole pipeline (routing, limits, retries, storing) as a GET with the client's fields but
    /// none of its conditionals or ranges. Its response body is read to the end so that the
    /// copy is stored; its access-log line says `cache=background`.
    fn spawn_revalidation(&self, parts: &http::request::Parts, guard: FillGuard) {
        let mut headers = parts.headers.clone();
        for name in [
            header::IF_NONE_MATCH,
            header::IF_MODIFIED_SINCE,
            header::IF_MATCH,
            header::IF_UNMODIFIED_SINCE,
            header::IF_RANGE,
            header::RANGE,
            // The client's own directives (a reload's no-cache, a no-store) are not the
            // cache's: the revalidation is made for everyone.
            header::CACHE_CONTROL,
            header::PRAGMA,
        ] {
            headers.remove(name);
        }
        headers.remove(forward::X_REQUEST_ID);
        let body = crate::client_body::ClientBody::Http1(crate::http1::RequestBody::empty());
        let Ok(mut req) = Request::builder()
            .method(Method::GET)
            .uri(parts.uri.clone())
            .version(parts.version)
            .body(body)
        else {
            return;
        };
        *req.headers_mut() = headers;
        req.extensions_mut()
            .insert(Revalidation(Arc::new(std::sync::Mutex::new(Some(guard)))));
        let snapshot = Arc::clone(&self.shared);
        let (client, local, https) = (self.client, self.local, self.https);
        tokio::spawn(async move {
            let activity = crate::client_io::ClientActivity::new(client, local, 0, https);
            let response = super::handle(snapshot, client, &activity, req).await;
            let _ = http_body_util::BodyExt::collect(response.into_body()).await;
        });
    }

    /// Adds gatehouse's headers to a response made from the cache and writes its access record.
    fn finish_from_cache(
        &mut self,
        response: &mut Response<ProxyBody>,
        status: &CacheStatus,
        outcome: &'static str,
    ) {
        let headers = response.headers_mut();
        if let Some(value) = status.header(&self.snapshot.config.server.name) {
            headers.append("cache-status", value);
        }
        if let Ok(id) = HeaderValue::from_str(&self.request_id) {
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

    /// A stale copy for a request whose origin failed: the route's stored copy within its
    /// stale-if-error window, else (for `/robots.txt`) the robots.txt guard's. `None` when
    /// there is none; the failure is then answered as usual.
    pub(super) async fn stale_copy(
        &mut self,
        failed: OriginFailed<'_>,
        head_only: bool,
    ) -> Option<Response<ProxyBody>> {
        let reason: &'static str = match failed {
            OriginFailed::Failure(failure, _) if failure.kind.may_serve_stale() => {
                failure.kind.token()
            }
            OriginFailed::Failure(..) => return None,
            OriginFailed::Status(status, ..) if is_stale_status(status) => status_reason(status),
            OriginFailed::Status(..) => return None,
        };
        let route = self.record.route.clone();
        if let Some(response) = self.stale_from_cache(failed, reason, head_only).await {
            return Some(response);
        }
        let response = self.robots_copy(Some(failed), head_only, "robots-guard")?;
        self.snapshot.observer.stale_served(
            route.as_deref().unwrap_or("-"),
            "robots_guard",
            reason,
            &self.request_id,
        );
        Some(response)
    }

    async fn stale_from_cache(
        &mut self,
        failed: OriginFailed<'_>,
        reason: &'static str,
        head_only: bool,
    ) -> Option<Response<ProxyBody>> {
        let request = self.cache.as_mut()?;
        if !request.may_use_stored {
            return None;
        }
        if !request.looked_up {
            // stale_if_error mode looks only when the origin failed.
            let cache = Arc::clone(&self.snapshot.cache);
            request.stored = cache.lookup(&request.key, &request.request_headers).await;
            request.looked_up = true;
        }
        let stored = Arc::clone(request.stored.as_ref()?);
        let window = request.settings.stale_if_error;
        let now = SystemTime::now();
        let targets = &self.snapshot.cache_targets;
        let lifetime = policy::freshness_lifetime(
            stored.status,
            &stored.headers,
            stored.response_time,
            HEURISTIC_CAP,
            targets,
        );
        let freshness = policy::freshness(&stored, lifetime, now);
        let allowed = match freshness {
            // A fresh copy (stale_if_error mode never serves hits) may stand in, unless it
            // must be revalidated before each use (no-cache) and allows no stale use itself.
            Freshness::Fresh { .. } => {
                !policy::must_revalidate_each_use(&stored, targets)
                    || policy::stale_if_error_allows(&stored, Duration::ZERO, window, targets)
            }
            Freshness::Stale { stale_for } => {
                policy::stale_if_error_allows(&stored, stale_for, window, targets)
            }
        };
        if !allowed {
            return None;
        }
        // RFC 5861 §4: a stale response should be visibly stale, so Age is at least 1.
        let age = policy::current_age(&stored, now).max(Duration::from_secs(1));
        let mut response = from_stored(
            &stored,
            age,
            &HeaderMap::new(),
            head_only,
            self.snapshot.cache_hidden.as_ref(),
        );
        self.add_failure_status(&mut response, failed);
        let status = CacheStatus {
            fwd: Some("stale"),
            fwd_status: match failed {
                OriginFailed::Status(status, ..) => Some(status.as_u16()),
                OriginFailed::Failure(..) => None,
            },
            ttl: Some(serve::ttl_secs(freshness)),
            detail: Some("stale-if-error"),
            ..CacheStatus::default()
        };
        self.note_origin_failure(failed);
        self.snapshot.observer.stale_served(
            self.record.route.as_deref().unwrap_or("-"),
            "cache",
            reason,
            &self.request_id,
        );
        self.finish_from_cache(&mut response, &status, "stale");
        Some(response)
    }

    /// The robots.txt guard's copy of this host's `/robots.txt`, for a GET or HEAD of it.
    fn robots_copy(
        &mut self,
        failed: Option<OriginFailed<'_>>,
        head_only: bool,
        detail: &'static str,
    ) -> Option<Response<ProxyBody>> {
        let robots = &self.snapshot.config.robots;
        let host = self.robots_host.as_deref()?;
        if !robots.guard {
            return None;
        }
        let now = SystemTime::now();
        let copy = self.snapshot.robots.copy_for(host, robots.max_age, now)?;
        let age = now
            .duration_since(copy.response_time)
            .unwrap_or_default()
            .max(Duration::from_secs(1));
        let mut response = from_stored(&copy, age, &HeaderMap::new(), head_only, None);
        if let Some(failed) = failed {
            self.add_failure_status(&mut response, failed);
            self.note_origin_failure(failed);
        }
        let status = CacheStatus {
            fwd: Some(if failed.is_some() { "stale" } else { "bypass" }),
            fwd_status: match failed {
                Some(OriginFailed::Status(status, ..)) => Some(status.as_u16()),
                _ => None,
            },
            detail: Some(detail),
            ..CacheStatus::default()
        };
        self.finish_from_cache(
            &mut response,
            &status,
            if failed.is_some() {
                "stale"
            } else {
                "maintenance"
            },
        );
        Some(response)
    }

    /// Proxy-Status on a stale response still names what failed, so monitoring sees the outage.
    fn add_failure_status(&self, response: &mut Response<ProxyBody>, failed: OriginFailed<'_>) {
        let member = match failed {
            OriginFailed::Failure(failure, next_hop) => {
                self.proxy_status().for_failure(failure, next_hop)
            }
            OriginFailed::Status(status, next_hop, protocol) => self
                .proxy_status()
                .for_received_status(status.as_u16(), next_hop, protocol),
        };
        if let Some(member) = member {
            response.headers_mut().append("proxy-status", member);
        }
    }

    /// The access record keeps what failed, though the client got a copy.
    fn note_origin_failure(&mut self, failed: OriginFailed<'_>) {
        match failed {
            OriginFailed::Failure(failure, _) => {
                self.record.failure = Some(failure.kind.token());
                if self.record.attempts == 0 {
                    self.snapshot.observer.failure(
                        failure,
                        &crate::observe::access_log::AttemptContext {
                            route: self.record.route.as_deref(),
                            ..crate::observe::access_log::AttemptContext::before_any_attempt(
                                &self.request_id,
                            )
                        },
                    );
                }
            }
            OriginFailed::Status(status, ..) => self.record.upstream_status = Some(status.as_u16()),
        }
    }

    /// For a response from the origin on a caching route (or of `/robots.txt`): what to store
    /// of it, and its `Cache-Status`. Returns the capture to attach to the body.
    pub(super) fn plan_store(
        &mut self,
        status: StatusCode,
        headers: &HeaderMap,
        content_length: Option<u64>,
    ) -> (Option<Capture>, Option<HeaderValue>) {
        let now = SystemTime::now();
        let mut capture = None;
        let mut cache_status = None;
        if let Some(request) = self.cache.as_mut() {
            if request.invalidates && (status.is_success() || status.is_redirection()) {
                self.snapshot.cache.invalidate(&request.key);
            }
            if !request.readable {
                self.record.cache = Some("bypass");
                let report = CacheStatus {
                    fwd: Some("bypass"),
                    fwd_status: Some(status.as_u16()),
                    ..CacheStatus::default()
                };
                return (None, report.header(&self.snapshot.config.server.name));
            }
            let limit = self.snapshot.config.cache.max_object_size;
            let mut report = CacheStatus {
                fwd: Some(if request.revalidating || request.stored.is_some() {
                    "stale"
                } else if request.invalidates || !request.may_use_stored {
                    "bypass"
                } else {
                    "miss"
                }),
                fwd_status: Some(status.as_u16()),
                collapsed: request.collapsed,
                ..CacheStatus::default()
            };
            // The request's own no-store is among the rules `storable` applies.
            let method = if request.is_get {
                Method::GET
            } else {
                Method::HEAD
            };
            let targets = &self.snapshot.cache_targets;
            let storable = policy::storable(
                &method,
                &request.request_headers,
                status,
                headers,
                true,
                targets,
            )
            .map_err(policy::NotStorable::as_str)
            .and_then(
                |()| match policy::varied_values(headers, &request.request_headers) {
                    Some(varied) => Ok(varied),
                    None => Err("vary-star"),
                },
            )
            .and_then(|varied| match content_length {
                Some(length) if length > limit => Err("too-large"),
                _ => Ok(varied),
            });
            match storable {
                Ok(varied) if request.may_store => {
                    report.stored = true;
                    // Which field decided, when it was not Cache-Control (RFC 9213).
                    report.detail = policy::governing_target(headers, targets).map(|name| {
                        if name == "cdn-cache-control" {
                            "cdn-cache-control"
                        } else {
                            "targeted-field"
                        }
                    });
                    let head = StoredResponse {
                        status,
                        headers: headers.clone(),
                        body: bytes::Bytes::new(),
                        request_time: request.request_time,
                        response_time: now,
                        varied,
                    };
                    // A copy that will not be fresh answers no waiting request: they are let go
                    // now rather than after its whole body.
                    let fresh_for =
                        policy::freshness_lifetime(status, headers, now, HEURISTIC_CAP, targets);
                    let fill = if fresh_for.is_zero() {
                        None
                    } else {
                        request.fill.take()
                    };
                    capture = Some(
                        Capture::new(head, usize::try_from(limit).unwrap_or(usize::MAX))
                            .into_cache(Arc::clone(&self.snapshot.cache), Arc::clone(&request.key))
                            .releasing(fill),
                    );
                    self.record.cache = Some(if request.background {
                        "background"
                    } else if request.revalidating {
                        "expired"
                    } else {
                        "miss"
                    });
                }
                Ok(_) => self.record.cache = Some("bypass"),
                Err(reason) => {
                    report.detail = Some(reason);
                    self.record.cache = Some("uncacheable");
                    // The origin answered the background revalidation with something that may
                    // not be kept (no-store now, say): the stale copy is obsolete, and serving
                    // it on would start a revalidation per request.
                    if request.background {
                        self.snapshot.cache.invalidate(&request.key);
                    }
                }
            }
            cache_status = report.header(&self.snapshot.config.server.name);
            // Not stored: requests waiting for this key go upstream themselves now.
            request.fill = None;
        }
        // The guard learns only from a plain GET (no query, no credentials) whose body is the
        // file itself (not compressed for this client): what it keeps is served to everyone.
        let encoded = headers
            .get(header::CONTENT_ENCODING)
            .is_some_and(|coding| !coding.as_bytes().eq_ignore_ascii_case(b"identity"));
        if self.robots_learn
            && let Some(host) = self.robots_host.clone()
            && status == StatusCode::OK
            && !encoded
            && self.snapshot.config.robots.guard
            && content_length.is_none_or(|n| n <= MAX_ROBOTS_SIZE as u64)
        {
            let guard = Arc::clone(&self.snapshot.robots);
            let mut kept_headers = headers.clone();
            kept_headers.remove(header::SET_COOKIE);
            capture = Some(match capture {
                Some(capture) => capture.into_robots_guard(guard, host),
                None => Capture::new(
                    StoredResponse {
                        status,
                        headers: kept_headers,
                        body: bytes::Bytes::new(),
                        request_time: now,
                        response_time: now,
                        varied: Vec::new(),
                    },
                    MAX_ROBOTS_SIZE,
                )
                .into_robots_guard(guard, host),
            });
        }
        (capture, cache_status)
    }

    /// After a 304 to our conditional request: the stored copy, freshened, answers the client.
    /// `None` when this request was not revalidating.
    pub(super) fn revalidated(
        &mut self,
        not_modified: &HeaderMap,
        head_only: bool,
    ) -> Option<Response<ProxyBody>> {
        let request = self.cache.as_mut()?;
        if !request.revalidating {
            return None;
        }
        let stored = request.stored.as_ref()?;
        let now = SystemTime::now();
        let fresh = policy::freshen(stored, not_modified, request.request_time, now);
        // The 304's fields are merged in: they may make the copy one that must not be shared
        // (a Set-Cookie, private, no-store). This client gets it; the cache lets it go.
        let targets = &self.snapshot.cache_targets;
        let keep = request.may_store
            && policy::storable(
                &Method::GET,
                &request.request_headers,
                fresh.status,
                &fresh.headers,
                true,
                targets,
            )
            .is_ok();
        let lifetime = policy::freshness_lifetime(
            fresh.status,
            &fresh.headers,
            fresh.response_time,
            HEURISTIC_CAP,
            targets,
        );
        let freshness = policy::freshness(&fresh, lifetime, now);
        let mut response = from_stored(
            &fresh,
            policy::current_age(&fresh, now),
            &request.request_headers,
            head_only,
            self.snapshot.cache_hidden.as_ref(),
        );
        if keep {
            self.snapshot.cache.insert(&request.key, fresh);
        } else {
            self.snapshot.cache.invalidate(&request.key);
        }
        request.fill = None;
        let status = CacheStatus {
            fwd: Some("stale"),
            fwd_status: Some(304),
            ttl: Some(serve::ttl_secs(freshness)),
            collapsed: request.collapsed,
            ..CacheStatus::default()
        };
        if let Some(value) = status.header(&self.snapshot.config.server.name) {
            response.headers_mut().append("cache-status", value);
        }
        if let Ok(id) = HeaderValue::from_str(&self.request_id) {
            response.headers_mut().insert(forward::X_REQUEST_ID, id);
        }
        self.record.cache = Some(if request.background {
            "background"
        } else {
            "revalidated"
        });
        self.record.body_bytes = http_body::Body::size_hint(response.body())
            .exact()
            .unwrap_or(0);
        Some(response)
    }
}

/// The stale-serve reason for an origin status (a metric label).
fn status_reason(status: StatusCode) -> &'static str {
    match status.as_u16() {
        500 => "http_500",
        502 => "http_502",
        503 => "http_503",
        _ => "http_504",
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
