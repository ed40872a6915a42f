//! Routing by host and path prefix.

use arbitrary::Unstructured;
use gatehouse_config::route_path::normalize;
use gatehouse_config::{HostMatch, RouteConfig};
use gatehouse_proxy::router::{Router, request_host};

const HOSTS: &[&str] = &[
    "example.com",
    "www.example.com",
    "a.example.com",
    "b.a.example.com",
    "example.org",
    "[::1]",
    "x",
];
const SEGMENTS: &[&str] = &["api", "v2", "static", "", "a.css", "api2", "%2e"];
/// Upstream names; the last is missing from the snapshot (its routes are dropped).
const UPSTREAMS: &[&str] = &["app", "api", "missing"];

/// The input describes a route table (as the config validates it: hosts lowercase, paths
/// starting with `/`) and a request's `Host` value (or absolute-form authority) and path.
///
/// Checked: the request host is lowercase, without trailing dots, a bracketed IPv6 literal
/// stays bracketed; the route picked is the one a brute-force search finds: among routes whose
/// host matches (exact, or a `*.suffix` that leaves a label) and whose prefix matches whole path
/// segments, the most specific (exact host, then longer wildcard, then any host; then the
/// longer path), file order breaking ties; routes to an unknown upstream are dropped; the table
/// lists routes most specific first. Prefixes and the request's path are matched in normal
/// form: normalizing is idempotent, and leaves no empty or dot segment and no encoded
/// unreserved character.
pub fn router(data: &[u8]) {
    let _ = run(&mut Unstructured::new(data));
}

fn run(u: &mut Unstructured<'_>) -> arbitrary::Result<()> {
    let mut routes = Vec::new();
    for _ in 0..u.int_in_range(0..=10)? {
        let host = match u.int_in_range(0..=2)? {
            0 => None,
            1 => Some(HostMatch::Exact(host_name(u)?)),
            _ => Some(HostMatch::Suffix(format!(".{}", host_name(u)?))),
        };
        routes.push(RouteConfig {
            host,
            path: path(u)?,
            upstream: (*u.choose(UPSTREAMS)?).to_owned(),
            retry_non_idempotent: u.arbitrary()?,
            max_request_body_size: None,
            cache: None,
            maintenance: None,
            limit: None,
            compress: None,
        });
    }
    let index = |name: &str| UPSTREAMS[..2].iter().position(|u| *u == name);
    let router = Router::new(&routes, index);

    // The request's host, as the pipeline derives it.
    let raw: String = if u.ratio(1, 2)? {
        let host = host_name(u)?;
        let port = if u.arbitrary()? { ":8080" } else { "" };
        let dot = if u.ratio(1, 4)? { "." } else { "" };
        if u.arbitrary()? {
            format!("{}{dot}{port}", host.to_ascii_uppercase())
        } else {
            format!("{host}{dot}{port}")
        }
    } else {
        u.arbitrary()?
    };
    let mut builder = http::Request::get("/");
    if u.ratio(7, 8)? {
        builder = builder.header(http::header::HOST, raw.as_str());
    }
    let host = match builder.body(()) {
        Ok(request) => request_host(&request.into_parts().0).map(std::borrow::Cow::into_owned),
        Err(_) => None,
    };
    if let Some(host) = &host {
        assert_eq!(host, &host.to_ascii_lowercase(), "{raw:?}");
        assert!(!host.ends_with('.'), "{raw:?} -> {host:?}");
        if raw.starts_with('[') {
            assert!(
                host.starts_with('[') && host.ends_with(']'),
                "{raw:?} -> {host:?}"
            );
        }
    }

    let request_path = path(u)?;
    let Ok(request_path) = normalize(&request_path).map(std::borrow::Cow::into_owned) else {
        return Ok(());
    };
    check_normal(&request_path);
    let got = router.route(host.as_deref(), &request_path);
    let want = routes
        .iter()
        .enumerate()
        .filter(|(_, route)| index(&route.upstream).is_some())
        .filter(|(_, route)| {
            host_matches(route.host.as_ref(), host.as_deref())
                && path_matches(&normal(&route.path), &request_path)
        })
        .min_by_key(|(order, route)| (std::cmp::Reverse(rank(route)), *order));
    match (got, want) {
        (None, None) => {}
        (Some(got), Some((_, want))) => {
            assert_eq!(Some(got.upstream), index(&want.upstream));
            assert_eq!(got.label.as_ref(), label(want), "{host:?} {request_path:?}");
            assert_eq!(got.retry_non_idempotent, want.retry_non_idempotent);
        }
        (got, want) => panic!("{host:?} {request_path:?}: routed {got:?}, expected {want:?}"),
    }

    let listed: Vec<String> = router
        .routes()
        .map(|(label, _)| label.to_string())
        .collect();
    let kept: Vec<&RouteConfig> = routes
        .iter()
        .filter(|route| index(&route.upstream).is_some())
        .collect();
    assert_eq!(listed.len(), kept.len());
    let mut labels: Vec<String> = kept.iter().map(|route| label(route)).collect();
    labels.sort_unstable();
    labels.dedup();
    if labels.len() < kept.len() {
        // Two routes written alike: their order is file order, checked by routing above.
        return Ok(());
    }
    let ranks: Vec<(u8, usize, usize)> = listed
        .iter()
        .map(|label| {
            kept.iter()
                .find(|route| label == &self::label(route))
                .map(|route| rank(route))
                .unwrap_or_default()
        })
        .collect();
    assert!(
        ranks.windows(2).all(|w| w[0] >= w[1]),
        "routes out of order: {listed:?}"
    );
    Ok(())
}

fn host_name(u: &mut Unstructured<'_>) -> arbitrary::Result<String> {
    Ok(if u.ratio(3, 4)? {
        (*u.choose(HOSTS)?).to_owned()
    } else {
        let name: String = u.arbitrary()?;
        name.to_ascii_lowercase()
    })
}

fn path(u: &mut Unstructured<'_>) -> arbitrary::Result<String> {
    if u.ratio(1, 8)? {
        let text: String = u.arbitrary()?;
        return Ok(format!("/{text}"));
    }
    let mut out = String::new();
    for _ in 0..u.int_in_range(0..=3)? {
        out.push('/');
        out.push_str(u.choose(SEGMENTS)?);
    }
    if out.is_empty() || u.ratio(1, 4)? {
        out.push('/');
    }
    Ok(out)
}

/// The label the router gives a route: `host/path`, `*.suffix/path` or `/path`.
fn label(route: &RouteConfig) -> String {
    let host = match &route.host {
        Some(HostMatch::Exact(host)) => host.clone(),
        Some(HostMatch::Suffix(suffix)) => format!("*{suffix}"),
        None => String::new(),
    };
    format!("{host}{}", route.path)
}

fn rank(route: &RouteConfig) -> (u8, usize, usize) {
    let (class, len) = match &route.host {
        Some(HostMatch::Exact(host)) => (2, host.len()),
        Some(HostMatch::Suffix(suffix)) => (1, suffix.len()),
        None => (0, 0),
    };
    (class, len, normal(&route.path).len())
}

/// A route's prefix as the router matches it.
fn normal(path: &str) -> String {
    normalize(path).map_or_else(|_| path.to_owned(), std::borrow::Cow::into_owned)
}

/// A normalized path is its own normal form, and holds no empty or dot segment and no
/// percent-encoded unreserved character.
fn check_normal(path: &str) {
    assert!(path.starts_with('/'), "{path:?}");
    assert_eq!(normalize(path).as_deref(), Ok(path), "not idempotent");
    let segments: Vec<&str> = path[1..].split('/').collect();
    let last = segments.len() - 1;
    for (i, segment) in segments.iter().enumerate() {
        assert!(
            !matches!(*segment, "." | "..") && (i == last || !segment.is_empty()),
            "{path:?}"
        );
    }
    for (i, _) in path.match_indices('%') {
        if let Some(hex) = path.get(i + 1..i + 3)
            && let Ok(byte) = u8::from_str_radix(hex, 16)
        {
            assert!(
                !(byte.is_ascii_alphanumeric() || b"-._~".contains(&byte)),
                "{path:?} keeps %{hex}"
            );
            assert_eq!(hex, hex.to_ascii_uppercase(), "{path:?}");
        }
    }
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

/// A prefix matches whole segments: `/api` matches `/api` and `/api/x`, not `/apiary`; a prefix
/// ending in `/` matches everything under it.
fn path_matches(prefix: &str, path: &str) -> bool {
    if prefix.ends_with('/') {
        return path.starts_with(prefix);
    }
    path == prefix || path.starts_with(&format!("{prefix}/"))
}
