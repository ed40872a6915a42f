//! Route: the route for the request's host and path, and its pool; then what may answer
//! without an upstream (maintenance mode, the cache).

use std::sync::Arc;

use http::Response;
use http::request::Parts;

use super::{Pipeline, caching};
use crate::body::ProxyBody;
use crate::failure::{Failure, FailureKind, Phase};
use crate::router::{Routed, request_host};
use crate::upstream::pool::Pool;

impl<'a> Pipeline<'a> {
    /// The route and its pool, both written into the access record. A `/robots.txt` request
    /// (not an upgrade) is noted for the robots.txt guard.
    pub(super) fn route(
        &mut self,
        parts: &Parts,
        upgrade: bool,
    ) -> Result<(Routed<'a>, Arc<Pool>), Failure> {
        let snapshot = self.snapshot;
        let host = request_host(parts);
        // `OPTIONS *` asks about the server as a whole: it goes where the root would. (The
        // check phase refused `*` with any other method.)
        let path = match parts.uri.path() {
            "*" if parts.method == http::Method::OPTIONS => "/",
            path => path,
        };
        // Routed by its normal form, so that no spelling of a path takes a laxer route.
        let path = crate::router::path::normalize(path)
            .map_err(|why| Failure::client(http::StatusCode::BAD_REQUEST, why.describe()))?;
        let Some(routed) = snapshot.router.route(host.as_deref(), &path) else {
            return Err(Failure::new(
                FailureKind::DestinationNotFound,
                Phase::Routing,
                format!(
                    "no route for host {} path {}",
                    host.as_deref().unwrap_or("(none)"),
                    parts.uri.path()
                ),
            ));
        };
        self.record.route = Some(Arc::clone(routed.label));
        let pool = Arc::clone(&snapshot.upstreams[routed.upstream]);
        self.record.pool = Some(Arc::clone(&pool.name));
        let compress = routed.compress.unwrap_or(&snapshot.config.compress);
        if compress.enabled {
            self.compress = Some((compress, Arc::clone(routed.label)));
        }
        if !upgrade && caching::is_robots_request(parts) {
            self.robots_host = Some(caching::keyed_host(parts));
            self.robots_learn = caching::may_learn_robots(parts);
        }
        Ok((routed, pool))
    }

    /// Maintenance, then the cache: the answer when one needs no upstream. An upgrade is an
    /// exchange of its own, never a cacheable response: no lookup, no store.
    pub(super) async fn answer_locally(
        &mut self,
        routed: &Routed<'a>,
        parts: &mut Parts,
        upgrade: bool,
        head_only: bool,
    ) -> Option<Response<ProxyBody>> {
        if let Some(settings) = self.snapshot.maintenance.applies(
            &self.snapshot.config.maintenance,
            routed.label,
            routed.maintenance,
        ) {
            return Some(self.maintenance_response(settings, head_only));
        }
        match routed.cache {
            Some(settings) if !upgrade => {
                Box::pin(self.cache_lookup(settings, parts, head_only)).await
            }
            _ => None,
        }
    }
}
