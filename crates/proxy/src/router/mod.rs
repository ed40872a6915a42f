//! Routing: which upstream serves a request, by host (exact or `*.suffix`) and path prefix.
//!
//! Routes are ranked once, when the snapshot is built, from most to least specific: an exact
//! host beats a wildcard, a longer wildcard beats a shorter one, any host comes last; within
//! that, the longest path prefix wins; file order breaks ties. A request takes the first route
//! that matches. Path prefixes match whole segments: `/api` matches `/api` and `/api/users`
//! but not `/apiary` (a prefix ending in `/` matches anything under it). Both the prefixes and
//! the request's path are matched in their normal form ([`path::normalize`]).

use std::borrow::Cow;

use gatehouse_config::{
    CompressConfig, HostMatch, MaintenanceConfig, RouteCache, RouteConfig, RouteLimit,
};

use crate::limit::LimitId;

/// The normal form of paths, shared with the config (which holds route prefixes to it).
pub use gatehouse_config::route_path as path;

/// A compiled route table.
#[derive(Debug)]
pub struct Router {
    routes: Vec<CompiledRoute>,
}

#[derive(Debug)]
struct CompiledRoute {
    host: Option<HostMatch>,
    path: String,
    /// Index into the snapshot's upstream list.
    upstream: usize,
    /// The route as written, for logs (`host/path`).
    label: std::sync::Arc<str>,
    retry_non_idempotent: bool,
    max_request_body_size: Option<u64>,
    cache: Option<RouteCache>,
    maintenance: Option<MaintenanceConfig>,
    limit: Option<(RouteLimit, LimitId)>,
    compress: Option<CompressConfig>,
}

/// The outcome of routing a request.
#[derive(Debug, Clone, Copy)]
pub struct Routed<'a> {
    pub upstream: usize,
    pub label: &'a std::sync::Arc<str>,
    /// The route lets non-idempotent requests be retried after they reached a server.
    pub retry_non_idempotent: bool,
    /// The route's own `max_request_body_size` (0 = no limit); `None` = the server's.
    pub max_request_body_size: Option<u64>,
    /// `[route.cache]`: the route stores responses.
    pub cache: Option<&'a RouteCache>,
    /// `[route.maintenance]`, when the route has its own.
    pub maintenance: Option<&'a MaintenanceConfig>,
    /// `[route.limit]` and the limit's identity (see [`LimitId`]).
    pub limit: Option<&'a (RouteLimit, LimitId)>,
    /// `[route.compress]`, when the route has its own (else `[compress]` applies).
    pub compress: Option<&'a CompressConfig>,
}

impl Router {
    /// `upstream_index` maps an upstream name to its index in the snapshot.
    pub fn new(routes: &[RouteConfig], upstream_index: impl Fn(&str) -> Option<usize>) -> Self {
        let mut compiled: Vec<(usize, CompiledRoute)> = routes
            .iter()
            .enumerate()
            .filter_map(|(order, route)| {
                let upstream = upstream_index(&route.upstream)?;
                let host = match &route.host {
                    Some(HostMatch::Exact(h)) => h.clone(),
                    Some(HostMatch::Suffix(s)) => format!("*{s}"),
                    None => String::new(),
                };
                let label: std::sync::Arc<str> = format!("{host}{}", route.path).into();
                let limit = route
                    .limit
                    .as_ref()
                    .map(|limit| (limit.clone(), LimitId::of(&label, limit)));
                Some((
                    order,
                    CompiledRoute {
                        host: route.host.clone(),
                        path: path::normalize(&route.path)
                            .map_or_else(|_| route.path.clone(), Cow::into_owned),
                        upstream,
                        label,
                        retry_non_idempotent: route.retry_non_idempotent,
                        max_request_body_size: route.max_request_body_size,
                        cache: route.cache.clone(),
                        maintenance: route.maintenance.clone(),
                        limit,
                        compress: route.compress.clone(),
                    },
                ))
            })
            .collect();
        compiled
            .sort_by(|(order_a, a), (order_b, b)| rank(b).cmp(&rank(a)).then(order_a.cmp(order_b)));
        Self {
            routes: compiled.into_iter().map(|(_, route)| route).collect(),
        }
    }

    /// Every route in matching order: its label and its upstream's index.
    pub fn routes(&self) -> impl Iterator<Item = (&std::sync::Arc<str>, usize)> {
        self.routes
            .iter()
            .map(|route| (&route.label, route.upstream))
    }

    /// The route for a request to `host` (lowercase, no port) and `path` (normalized, see
    /// [`path::normalize`]).
    pub fn route(&self, host: Option<&str>, path: &str) -> Option<Routed<'_>> {
        self.routes
            .iter()
            .find(|route| {
                host_matches(route.host.as_ref(), host) && path_matches(&route.path, path)
            })
            .map(|route| Routed {
                upstream: route.upstream,
                label: &route.label,
                retry_non_idempotent: route.retry_non_idempotent,
                max_request_body_size: route.max_request_body_size,
                cache: route.cache.as_ref(),
                maintenance: route.maintenance.as_ref(),
                limit: route.limit.as_ref(),
                compress: route.compress.as_ref(),
            })
    }
}

/// Specificity: (host class, host length, path length).
fn rank(route: &CompiledRoute) -> (u8, usize, usize) {
    let (class, len) = match &route.host {
        Some(HostMatch::Exact(h)) => (2, h.len()),
        Some(HostMatch::Suffix(s)) => (1, s.len()),
        None => (0, 0),
    };
    (class, len, route.path.len())
}

fn host_matches(pattern: Option<&HostMatch>, host: Option<&str>) -> bool {
    match (pattern, host) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(HostMatch::Exact(want)), Some(host)) => want == host,
        (Some(HostMatch::Suffix(suffix)), Some(host)) => {
            host.len() > suffix.len() && host.ends_with(suffix.as_str())
        }
    }
}

fn path_matches(prefix: &str, path: &str) -> bool {
    if prefix == "/" || prefix.ends_with('/') {
        return path.starts_with(prefix);
    }
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// The request's host for routing: `Host` (or the absolute-form authority), lowercase, without
/// port and trailing dot. Borrowed from the request when it is already in that form (the usual
/// case: this runs on every request).
pub fn request_host(req: &http::request::Parts) -> Option<Cow<'_, str>> {
    let raw = req
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri.authority().map(http::uri::Authority::as_str))?;
    let host: Cow<'_, str> = if raw.starts_with('[') {
        match raw.find(']') {
            Some(end) => Cow::Borrowed(&raw[..=end]),
            None => Cow::Owned(format!("{raw}]")),
        }
    } else {
        Cow::Borrowed(raw.rsplit_once(':').map_or(raw, |(host, _)| host))
    };
    let trimmed = host.trim_end_matches('.');
    if trimmed.len() == host.len() && !host.bytes().any(|b| b.is_ascii_uppercase()) {
        return Some(host);
    }
    Some(Cow::Owned(trimmed.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(host: Option<HostMatch>, path: &str, upstream: &str) -> RouteConfig {
        RouteConfig {
            host,
            path: path.to_owned(),
            upstream: upstream.to_owned(),
            retry_non_idempotent: false,
            max_request_body_size: None,
            cache: None,
            maintenance: None,
            limit: None,
            compress: None,
        }
    }

    fn router() -> Router {
        let routes = vec![
            route(None, "/", "default"),
            route(None, "/api", "api"),
            route(None, "/api/v2/", "api2"),
            route(Some(HostMatch::Suffix(".example.com".into())), "/", "wild"),
            route(Some(HostMatch::Suffix(".eu.example.com".into())), "/", "eu"),
            route(Some(HostMatch::Exact("www.example.com".into())), "/", "www"),
            route(
                Some(HostMatch::Exact("www.example.com".into())),
                "/static",
                "static",
            ),
        ];
        let names = ["default", "api", "api2", "wild", "eu", "www", "static"];
        Router::new(&routes, |name| names.iter().position(|n| *n == name))
    }

    fn pick(host: Option<&str>, path: &str) -> Option<usize> {
        router().route(host, path).map(|r| r.upstream)
    }

    #[test]
    fn longest_prefix_wins_on_segment_boundaries() {
        assert_eq!(pick(None, "/"), Some(0));
        assert_eq!(pick(None, "/api"), Some(1));
        assert_eq!(pick(None, "/api/users"), Some(1));
        assert_eq!(pick(None, "/apiary"), Some(0));
        assert_eq!(pick(None, "/api/v2/x"), Some(2));
        assert_eq!(pick(None, "/api/v2"), Some(1));
    }

    #[test]
    fn exact_host_beats_wildcard_beats_any() {
        assert_eq!(pick(Some("www.example.com"), "/"), Some(5));
        assert_eq!(pick(Some("www.example.com"), "/static/a.css"), Some(6));
        assert_eq!(pick(Some("shop.example.com"), "/"), Some(3));
        assert_eq!(pick(Some("a.eu.example.com"), "/"), Some(4));
        assert_eq!(pick(Some("example.com"), "/api"), Some(1));
        assert_eq!(pick(Some("other.org"), "/x"), Some(0));
    }

    #[test]
    fn no_match_without_catch_all() {
        let routes = vec![route(Some(HostMatch::Exact("a.com".into())), "/", "a")];
        let router = Router::new(&routes, |_| Some(0));
        assert!(router.route(Some("b.com"), "/").is_none());
        assert!(router.route(None, "/").is_none());
    }

    #[test]
    fn host_normalisation() {
        let req = http::Request::get("/")
            .header("host", "WWW.Example.COM.:8080")
            .body(())
            .unwrap();
        assert_eq!(
            request_host(&req.into_parts().0).as_deref(),
            Some("www.example.com")
        );
        let req = http::Request::get("/")
            .header("host", "[::1]:80")
            .body(())
            .unwrap();
        assert_eq!(request_host(&req.into_parts().0).as_deref(), Some("[::1]"));
    }
}
