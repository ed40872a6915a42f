//! What is kept of the upstream's response: the capture that stores it (and feeds the
//! robots.txt guard) with its `Cache-Status`, and the stored copy freshened by a 304 to
//! gatehouse's revalidation.

use std::sync::Arc;
use std::time::SystemTime;

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode};

use super::super::Pipeline;
use super::{HEURISTIC_CAP, from_stored, stored_freshness};
use crate::body::ProxyBody;
use crate::cache::capture::Capture;
use crate::cache::entry::StoredResponse;
use crate::cache::policy;
use crate::cache::robots::MAX_ROBOTS_SIZE;
use crate::cache::serve::{self, CacheStatus};
use crate::forward;

impl Pipeline<'_> {
    /// For a response from the origin on a caching route (or of `/robots.txt`): what to store
    /// of it, and its `Cache-Status`. Returns the capture to attach to the body.
    pub(in crate::service) fn plan_store(
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
    pub(in crate::service) fn revalidated(
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
        let freshness = stored_freshness(&fresh, targets, now);
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
            response
                .headers_mut()
                .append(crate::forward::CACHE_STATUS, value);
        }
        if let Some(id) = self.request_id_header.clone() {
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
