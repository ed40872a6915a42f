//! Route validation: host and path syntax, the named upstream exists (with a "did you mean"), and
//! no two routes share a host and path. Unused-upstream warnings are in the parent module, which
//! sees both sides.

use std::collections::BTreeMap;
use std::path::Path;

use toml::Spanned;

use super::DEFAULT_ROUTE_PATH;
use super::caching;
use super::compress::compress as route_compress;
use super::fields::parse_at;
use crate::diag::Sink;
use crate::model::{CompressConfig, HostMatch, MaintenanceConfig, RouteConfig};
use crate::raw::{RawRoute, RawUpstream};
use crate::values;

pub(super) fn routes(
    raw: &[Spanned<RawRoute>],
    upstreams: &BTreeMap<String, Spanned<RawUpstream>>,
    maintenance: &MaintenanceConfig,
    compress: &CompressConfig,
    base: &Path,
    sink: &mut Sink<'_>,
) -> Vec<RouteConfig> {
    if raw.is_empty() {
        sink.error(
            None,
            "route",
            "there are no routes, so every request would get 404",
            "add a [[route]] with upstream = \"NAME\" (and optionally host and path)",
        );
    }
    let mut seen: BTreeMap<(Option<String>, String), (usize, usize)> = BTreeMap::new();
    let mut out = Vec::new();
    for (i, spanned) in raw.iter().enumerate() {
        let route = spanned.get_ref();
        let host = match &route.host {
            None => Ok(None),
            Some(h) => parse_at(sink, h, &format!("route[{i}].host"), values::host_match)
                .map(Some)
                .ok_or(()),
        };
        let path = route
            .path
            .as_ref()
            .map_or(DEFAULT_ROUTE_PATH, |p| p.get_ref().as_str());
        let path_ok = route.path.as_ref().is_none_or(|p| {
            parse_at(sink, p, &format!("route[{i}].path"), values::route_path).is_some()
        });
        let upstream = route_upstream(i, spanned, upstreams, sink);
        let cache = route
            .cache
            .as_ref()
            .map(|c| caching::route_cache(c.get_ref(), &format!("route[{i}].cache"), sink));
        let route_maintenance = route.maintenance.as_ref().map(|m| {
            caching::maintenance(
                Some(m),
                &format!("route[{i}].maintenance"),
                Some(maintenance),
                base,
                sink,
            )
        });
        let limit = route
            .limit
            .as_ref()
            .and_then(|l| super::limits::route_limit(l, &format!("route[{i}].limit"), sink));
        let route_compress = route
            .compress
            .as_ref()
            .map(|c| route_compress(c, &format!("route[{i}].compress"), compress, sink));
        let (Ok(host), true) = (host, path_ok) else {
            continue;
        };
        let host_key = host.as_ref().map(|h| match h {
            HostMatch::Exact(s) => s.clone(),
            HostMatch::Suffix(s) => format!("*{s}"),
        });
        let line = sink.line_of(spanned.span());
        if let Some(&(j, line_j)) = seen.get(&(host_key.clone(), path.to_owned())) {
            sink.error(
                Some(spanned.span()),
                format!("route[{i}]"),
                format!("same host and path as route[{j}] (line {line_j}), so it can never match"),
                "remove one of them, or change its host or path",
            );
            continue;
        }
        seen.insert((host_key, path.to_owned()), (i, line));
        if let Some(upstream) = upstream {
            out.push(RouteConfig {
                host,
                path: path.to_owned(),
                upstream,
                retry_non_idempotent: route
                    .retry_non_idempotent
                    .as_ref()
                    .is_some_and(|b| *b.get_ref()),
                max_request_body_size: route.max_request_body_size.clone().map(|raw| {
                    super::fields::size_within(
                        sink,
                        Some(raw),
                        &format!("route[{i}].max_request_body_size"),
                        0,
                        0,
                        super::fields::MAX_BODY_SIZE,
                    )
                }),
                cache,
                maintenance: route_maintenance,
                limit,
                compress: route_compress,
            });
        }
    }
    out
}

/// The route's upstream name, if it is given and exists.
fn route_upstream(
    i: usize,
    route: &Spanned<RawRoute>,
    upstreams: &BTreeMap<String, Spanned<RawUpstream>>,
    sink: &mut Sink<'_>,
) -> Option<String> {
    let key = format!("route[{i}].upstream");
    let names = || upstreams.keys().map(String::as_str);
    let listed = || {
        names()
            .map(|n| format!("\"{n}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let Some(name) = &route.get_ref().upstream else {
        let fix = if upstreams.is_empty() {
            "add upstream = \"NAME\" and an [upstream.NAME] table with its servers".to_owned()
        } else {
            format!("add upstream = one of {}", listed())
        };
        sink.error(Some(route.span()), key, "route has no `upstream`", fix);
        return None;
    };
    if upstreams.contains_key(name.get_ref()) {
        return Some(name.get_ref().clone());
    }
    let fix = match values::closest(name.get_ref(), names()) {
        Some(similar) => format!("did you mean \"{similar}\"?"),
        None if upstreams.is_empty() => {
            format!(
                "define it: add [upstream.{}] with servers = [\"host:port\"]",
                name.get_ref()
            )
        }
        None => format!(
            "use one of {}, or add [upstream.{}]",
            listed(),
            name.get_ref()
        ),
    };
    sink.error(
        Some(name.span()),
        key,
        format!("there is no upstream named {:?}", name.get_ref()),
        fix,
    );
    None
}
