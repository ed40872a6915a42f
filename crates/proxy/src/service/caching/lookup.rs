//! The lookup before a request goes upstream: a fresh hit answers it; else it waits for a
//! request already fetching the key (coalescing), or goes upstream, conditionally when a stale
//! copy can be revalidated.

use std::sync::Arc;
use std::time::SystemTime;

use gatehouse_config::{CacheMode, RouteCache};
use http::header::{self, HeaderMap};
use http::{Method, Response};

use super::super::Pipeline;
use super::background::Revalidation;
use super::{CacheRequest, cache_key, from_stored, stored_freshness};
use crate::body::ProxyBody;
use crate::cache::policy::{self, Freshness};
use crate::cache::serve::{self, CacheStatus};
use crate::cache::store::{Cache, Fill};

impl Pipeline<'_> {
    /// Decides what the cache does for a request on a caching route before it goes upstream:
    /// answer from a fresh copy, or forward it (conditionally, to revalidate a stale copy).
    /// Returns the answer when the cache gives one.
    pub(in crate::service) async fn cache_lookup(
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
        let freshness = stored_freshness(stored, targets, now);
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
}
