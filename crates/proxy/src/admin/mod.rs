//! The admin listener: `/live`, `/ready`, `/metrics` (Prometheus), `/status` (the status
//! page), `/status.json`, `POST /reload` (what `gatehouse reload` calls), and `/maintenance`
//! (`GET` shows it; `POST /maintenance/on`, `/off` or `/config`, optionally `?route=LABEL`,
//! switches it), `POST /cache/purge?url=URL|prefix=URL|tag=VALUE` (what `gatehouse purge`
//! calls). Bound to
//! loopback by the default config; it never serves proxied traffic. With `admin_token` set,
//! every endpoint but `/live` and `/ready` wants `Authorization: Bearer <token>`.

use std::convert::Infallible;
use std::sync::Arc;

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};

use tokio::time::Instant;

use crate::body::ProxyBody;
use crate::listener::ConnTracker;
use crate::observe::metrics::{self, CacheGauges, PoolGauges, ScrapeState, ServerGauges};
use crate::snapshot::{Current, Snapshot};
use status::StatusReport;

pub mod certificates;
pub mod status;

/// The outcome of a reload, as `POST /reload` answers it.
#[derive(Debug, Clone)]
pub struct ReloadReply {
    pub taken: bool,
    /// What happened, in lines: `config reloaded ...`, or each error and `reload refused ...`.
    pub text: String,
}

/// A reload asked for on the admin listener; whoever does reloads answers on the channel.
pub type ReloadRequest = oneshot::Sender<ReloadReply>;

/// What the admin endpoints read from.
#[derive(Debug, Clone)]
pub struct Admin {
    pub current: Current,
    pub connections: Arc<ConnTracker>,
    pub reloads: mpsc::Sender<ReloadRequest>,
}

/// Serves the admin endpoints until `shutdown` turns true.
pub async fn serve(listener: TcpListener, admin: Admin, mut shutdown: watch::Receiver<bool>) {
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(_) => continue,
            },
            _ = shutdown.changed() => return,
        };
        let admin = admin.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let admin = admin.clone();
                async move { Ok::<_, Infallible>(admin.answer(&req).await) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

impl Admin {
    async fn answer(&self, req: &Request<Incoming>) -> Response<ProxyBody> {
        let snapshot = self.current.load_full();
        let path = req.uri().path();
        // Probes carry no secrets and must work without one (orchestrators send no token).
        if !matches!(path, "/live" | "/ready")
            && let Some(token) = &snapshot.config.server.admin_token
            && !bearer_matches(req.headers().get(header::AUTHORIZATION), token)
        {
            let mut response = text(
                StatusCode::UNAUTHORIZED,
                "this admin listener wants `Authorization: Bearer <admin_token>`\n",
            );
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"gatehouse admin\""),
            );
            return response;
        }
        if path == "/reload" {
            return reload(req.method(), &self.reloads).await;
        }
        if let Some(action) = path.strip_prefix("/maintenance/") {
            return switch_maintenance(&snapshot, req, action);
        }
        if path == "/cache/purge" {
            return purge(&snapshot, req).await;
        }
        if !matches!(*req.method(), Method::GET | Method::HEAD) {
            return text(StatusCode::METHOD_NOT_ALLOWED, "use GET\n");
        }
        match path {
            // Ready once listeners are bound and a config is loaded, which is when this runs.
            "/live" | "/ready" => text(StatusCode::OK, "ok\n"),
            "/metrics" => {
                let mut text = snapshot
                    .observer
                    .metrics
                    .render(&scrape_state(&snapshot, self.connections.open()));
                text.push_str(&certificates::metrics_text(&certificates::collect(
                    &snapshot,
                )));
                with_type(text, metrics::CONTENT_TYPE)
            }
            "/status" => with_type(
                StatusReport::build(&snapshot).to_html(),
                "text/html; charset=utf-8",
            ),
            "/status.json" => {
                with_type(StatusReport::build(&snapshot).to_json(), "application/json")
            }
            "/maintenance" => with_type(maintenance_json(&snapshot), "application/json"),
            "/" => index(&snapshot),
            _ => text(
                StatusCode::NOT_FOUND,
                "not found; try /status, /status.json, /metrics, /live or /ready\n",
            ),
        }
    }
}

/// `POST /cache/purge?url=URL`, `?prefix=URL` or `?tag=VALUE` (exactly one): drops what it
/// names from the cache, memory and disk, and answers `{"purged": N}` (N keys). A URL is
/// absolute (`http://example.com/path?query`) or host and target (`example.com/path`); its
/// host is matched as requests send it (port included when they send one).
async fn purge(snapshot: &Snapshot, req: &Request<Incoming>) -> Response<ProxyBody> {
    use crate::cache::store::Purge;
    if req.method() != Method::POST {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "use POST /cache/purge?url=URL (or ?prefix=URL, ?tag=VALUE), or `gatehouse purge`\n",
        );
    }
    let mut asked = Vec::new();
    for pair in req.uri().query().unwrap_or_default().split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let Some(value) = percent_decode(value).filter(|v| !v.is_empty()) else {
            return text(
                StatusCode::BAD_REQUEST,
                &format!("{name}: the value is empty or not valid percent-encoded UTF-8\n"),
            );
        };
        asked.push(match name {
            "url" => match cache_key_of(&value) {
                Some(key) => Purge::Key(key),
                None => {
                    return text(
                        StatusCode::BAD_REQUEST,
                        "url: write http://host/path or host/path\n",
                    );
                }
            },
            "prefix" => match cache_key_of(&value) {
                Some(key) => Purge::Prefix(key),
                None => {
                    return text(
                        StatusCode::BAD_REQUEST,
                        "prefix: write http://host/path or host/path\n",
                    );
                }
            },
            "tag" => Purge::Tag(value),
            _ => {
                return text(
                    StatusCode::BAD_REQUEST,
                    &format!("unknown parameter {name:?}; use url, prefix or tag\n"),
                );
            }
        });
    }
    let [what] = &asked[..] else {
        return text(
            StatusCode::BAD_REQUEST,
            "name exactly one of ?url=URL, ?prefix=URL, ?tag=VALUE\n",
        );
    };
    let purged = snapshot.cache.purge(what).await;
    let (kind, value) = match what {
        Purge::Key(key) => ("url", key),
        Purge::Prefix(key) => ("prefix", key),
        Purge::Tag(tag) => ("tag", tag),
    };
    tracing::info!(target: "gatehouse::cache", kind, value = %value, purged, "cache purged");
    let mut answer = serde_json::json!({ "purged": purged, kind: value }).to_string();
    answer.push('\n');
    with_type(answer, "application/json")
}

/// The cache key for `http://host/target`, `https://...` or `host/target`: lowercase host
/// (with its port, if written), then the target (`/` when none).
fn cache_key_of(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .unwrap_or(url);
    let (host, target) = match rest.find('/') {
        Some(slash) => (&rest[..slash], &rest[slash..]),
        None => (rest, "/"),
    };
    if host.is_empty() || host.contains(['?', '#', ' ', '@']) {
        return None;
    }
    Some(format!("{}{target}", host.to_ascii_lowercase()))
}

/// `%XX` decoded (`+` is kept: these are URLs, not form fields); `None` when invalid.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn index(snapshot: &Snapshot) -> Response<ProxyBody> {
    text(
        StatusCode::OK,
        &format!(
            "{} admin: /status /status.json /metrics /live /ready /maintenance, POST /reload, POST /maintenance/on|off|config[?route=LABEL], POST /cache/purge?url=|prefix=|tag=\nconfig: {}\n",
            snapshot.config.server.name, snapshot.config.source
        ),
    )
}

/// Whether `Authorization` is `Bearer <token>`, compared without an early exit so that the
/// time taken does not tell how much of a guess was right.
/// What `/metrics` reports as state gauges, read from the snapshot in force: a server a
/// reload removed is no longer reported.
fn scrape_state(snapshot: &Snapshot, open_connections: usize) -> ScrapeState {
    let now = Instant::now();
    let pools = snapshot
        .upstreams
        .iter()
        .map(|pool| PoolGauges {
            name: Arc::clone(&pool.name),
            servers: pool
                .members()
                .all()
                .map(|server| ServerGauges {
                    label: server.label.clone(),
                    available: server.state.is_available(now),
                    in_flight: server.state.in_flight(),
                })
                .collect(),
        })
        .collect();
    let usage = snapshot.cache.usage();
    ScrapeState {
        open_connections,
        pools,
        cache: CacheGauges {
            memory_entries: usage.memory_entries,
            memory_bytes: usage.memory_bytes,
            disk_entries: usage.disk_entries,
            disk_bytes: usage.disk_bytes,
        },
        limit_store: limit_store(snapshot),
    }
}

/// The limits' store and whether it answers, when a route has a rate limit.
fn limit_store(snapshot: &Snapshot) -> Option<(String, bool)> {
    if !snapshot.limits.in_use {
        return None;
    }
    Some(match snapshot.limits.redis() {
        Some((address, health)) => (address, health.is_up()),
        None => ("memory".to_owned(), true),
    })
}

fn bearer_matches(authorization: Option<&HeaderValue>, token: &str) -> bool {
    let Some(given) = authorization
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
    else {
        return false;
    };
    let (given, token) = (given.trim().as_bytes(), token.as_bytes());
    let differences = given
        .iter()
        .zip(token)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    differences == 0 && given.len() == token.len()
}

/// `POST /reload`: 200 when the config was taken, 422 with the reasons when it was refused.
async fn reload(method: &Method, reloads: &mpsc::Sender<ReloadRequest>) -> Response<ProxyBody> {
    if method != Method::POST {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "use POST /reload (or `gatehouse reload`)\n",
        );
    }
    let (reply, outcome) = oneshot::channel();
    if reloads.send(reply).await.is_err() {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "this gatehouse does not take reloads\n",
        );
    }
    match outcome.await {
        Ok(ReloadReply {
            taken: true,
            text: body,
        }) => text(StatusCode::OK, &body),
        Ok(ReloadReply {
            taken: false,
            text: body,
        }) => text(StatusCode::UNPROCESSABLE_ENTITY, &body),
        Err(_) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "gatehouse is shutting down; the reload was not done\n",
        ),
    }
}

fn text(status: StatusCode, body: &str) -> Response<ProxyBody> {
    let mut response = with_type(body.to_owned(), "text/plain; charset=utf-8");
    *response.status_mut() = status;
    response
}

fn with_type(body: String, content_type: &'static str) -> Response<ProxyBody> {
    let mut response = Response::new(ProxyBody::full(body));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Admin answers describe this moment; nothing should keep them.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `POST /maintenance/on|off|config[?route=LABEL]`: switches maintenance mode for every route or
/// one route (`config` clears the switch: the config decides again).
fn switch_maintenance(
    snapshot: &Snapshot,
    req: &Request<Incoming>,
    action: &str,
) -> Response<ProxyBody> {
    if req.method() != Method::POST {
        return text(StatusCode::METHOD_NOT_ALLOWED, "use POST\n");
    }
    let state = match action {
        "on" => Some(true),
        "off" => Some(false),
        "config" => None,
        _ => {
            return text(
                StatusCode::NOT_FOUND,
                "use POST /maintenance/on, /maintenance/off or /maintenance/config\n",
            );
        }
    };
    let route = req.uri().query().and_then(|query| {
        url::form_urlencoded::parse(query.as_bytes())
            .find(|(key, _)| key == "route")
            .map(|(_, value)| value.into_owned())
    });
    if let Some(label) = &route
        && !snapshot
            .router
            .routes()
            .any(|(known, _)| **known == **label)
    {
        let known: Vec<&str> = snapshot.router.routes().map(|(l, _)| &**l).collect();
        return text(
            StatusCode::NOT_FOUND,
            &format!(
                "no route {label:?}; routes are named host+path: {}\n",
                known.join(", ")
            ),
        );
    }
    snapshot.maintenance.set(route.as_deref(), state);
    tracing::warn!(
        target: "gatehouse::maintenance",
        route = route.as_deref().unwrap_or("*"),
        state = match state {
            Some(true) => "on",
            Some(false) => "off",
            None => "as configured",
        },
        "maintenance mode switched"
    );
    with_type(maintenance_json(snapshot), "application/json")
}

/// Maintenance mode as configured, switched and in effect, globally and per route.
fn maintenance_json(snapshot: &Snapshot) -> String {
    let global = &snapshot.config.maintenance;
    let switch = &snapshot.maintenance;
    let routes: Vec<serde_json::Value> = snapshot
        .config
        .routes
        .iter()
        .map(|route| {
            let host = match &route.host {
                Some(gatehouse_config::HostMatch::Exact(h)) => h.clone(),
                Some(gatehouse_config::HostMatch::Suffix(s)) => format!("*{s}"),
                None => String::new(),
            };
            let label = format!("{host}{}", route.path);
            let scope = switch.route_scope(global, &label, route.maintenance.as_ref());
            serde_json::json!({ "route": label, "maintenance": scope })
        })
        .collect();
    let report = serde_json::json!({
        "global": switch.global_scope(global),
        "routes": routes,
    });
    format!("{report:#}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_token_must_match_exactly() {
        let header = |v: &'static str| HeaderValue::from_static(v);
        assert!(bearer_matches(Some(&header("Bearer s3cret")), "s3cret"));
        assert!(!bearer_matches(Some(&header("Bearer s3cre")), "s3cret"));
        assert!(!bearer_matches(Some(&header("Bearer s3cret2")), "s3cret"));
        assert!(!bearer_matches(Some(&header("Basic s3cret")), "s3cret"));
        assert!(!bearer_matches(Some(&header("s3cret")), "s3cret"));
        assert!(!bearer_matches(None, "s3cret"));
    }

    #[test]
    fn purge_urls_become_cache_keys() {
        assert_eq!(
            cache_key_of("http://Example.COM/a?b=1").as_deref(),
            Some("example.com/a?b=1")
        );
        assert_eq!(cache_key_of("https://h:8080").as_deref(), Some("h:8080/"));
        assert_eq!(cache_key_of("h/static/").as_deref(), Some("h/static/"));
        for bad in ["", "/path", "http:///x", "a b/c", "u@h/x", "h?x"] {
            assert_eq!(cache_key_of(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn percent_decoding_rejects_what_is_not_utf8_or_not_hex() {
        assert_eq!(percent_decode("a%2Fb%20c+d").as_deref(), Some("a/b c+d"));
        assert_eq!(percent_decode("%C3%A9").as_deref(), Some("é"));
        for bad in ["%", "%2", "%zz", "%ff", "%C3", "%%41", "%+1", "%-1"] {
            assert_eq!(percent_decode(bad), None, "{bad:?}");
        }
    }
}
