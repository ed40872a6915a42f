//! Stale-while-revalidate (RFC 5861 §3): a stale copy within its window answers at once, and
//! one request gatehouse sends itself revalidates it in the background.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::header;
use http::{Method, Request, Response};

use super::super::Pipeline;
use super::{CacheRequest, from_stored, stored_freshness};
use crate::body::ProxyBody;
use crate::cache::policy::{self, Freshness};
use crate::cache::serve::{self, CacheStatus};
use crate::cache::store::{Fill, FillGuard};
use crate::forward;

/// Marks the request gatehouse sends itself to revalidate a copy it served stale
/// (stale-while-revalidate, RFC 5861 §3), and carries the fill guard that makes other misses of
/// the key wait for it. A request extension: no client can send one.
#[derive(Debug, Clone)]
pub(super) struct Revalidation(Arc<std::sync::Mutex<Option<FillGuard>>>);

impl Revalidation {
    pub(super) fn take(&self) -> Option<FillGuard> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }
}

impl Pipeline<'_> {
    /// A stale copy within its `stale-while-revalidate` window (RFC 5861 §3) answers at once,
    /// and one background request revalidates it. When another request is already fetching
    /// the key (a miss, or the revalidation another stale hit started), none is added.
    pub(super) fn stale_while_revalidate(
        &mut self,
        request: &CacheRequest,
        parts: &http::request::Parts,
        head_only: bool,
    ) -> Option<Response<ProxyBody>> {
        let stored = request.stored.as_ref()?;
        let now = SystemTime::now();
        let targets = &self.snapshot.cache_targets;
        let freshness = stored_freshness(stored, targets, now);
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
        let snapshot = Arc::clone(self.snapshot);
        let (client, local, https) = (self.client, self.local, self.https);
        tokio::spawn(async move {
            let activity = crate::client_io::ClientActivity::new(client, local, https);
            let response = crate::service::handle(snapshot, client, &activity, req).await;
            let _ = http_body_util::BodyExt::collect(response.into_body()).await;
        });
    }
}
