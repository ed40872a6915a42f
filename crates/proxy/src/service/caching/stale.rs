//! The stale copy served when the origin fails: the route's stored copy within its
//! stale-if-error window (RFC 5861 §4), else the robots.txt guard's copy of `/robots.txt`; with
//! the failure still named in `Proxy-Status` and in the access record.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::header::HeaderMap;
use http::{Response, StatusCode};

use super::super::Pipeline;
use super::{OriginFailed, from_stored, is_stale_status, stored_freshness};
use crate::body::ProxyBody;
use crate::cache::policy::{self, Freshness};
use crate::cache::serve::{self, CacheStatus};

impl Pipeline<'_> {
    /// A stale copy for a request whose origin failed: the route's stored copy within its
    /// stale-if-error window, else (for `/robots.txt`) the robots.txt guard's. `None` when
    /// there is none; the failure is then answered as usual.
    pub(in crate::service) async fn stale_copy(
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
        let freshness = stored_freshness(&stored, targets, now);
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
    pub(super) fn robots_copy(
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
            response
                .headers_mut()
                .append(crate::forward::PROXY_STATUS, member);
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
