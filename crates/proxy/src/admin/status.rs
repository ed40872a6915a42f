//! The admin status page: `/status` (one self-contained HTML page, readable without
//! JavaScript, refreshing itself) and `/status.json` (the same report as JSON).
//!
//! The report is built from the snapshot in force (routes, pools, each server's health), the
//! request counters (totals and rates over the last minute) and the recent failures.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::time::Instant;

use crate::observe::access_log::rfc3339;
use crate::observe::rates::counts;
use crate::observe::recent::RecentFailure;
use crate::respond::escape_html;
use crate::snapshot::Snapshot;

/// How often the page reloads itself, in seconds.
const REFRESH_SECONDS: u32 = 5;

/// Everything the status page shows.
#[derive(Debug, Serialize)]
pub struct StatusReport {
    pub name: String,
    pub version: &'static str,
    pub config: String,
    pub started: String,
    pub uptime_seconds: u64,
    pub routes: Vec<RouteStatus>,
    pub pools: Vec<PoolStatus>,
    /// The store of the rate limits' counters; `None` when no route has a rate limit.
    pub limit_store: Option<LimitStoreStatus>,
    /// What each TLS listener serves, and how long it has left.
    pub certificates: Vec<super::certificates::CertificateStatus>,
    pub recent_failures: Vec<RecentFailure>,
}

/// The rate limits' store: where, whether it answers, and what a failed decision does.
#[derive(Debug, Serialize)]
pub struct LimitStoreStatus {
    /// `memory`, or the `redis://host:port/db` address (never the password).
    pub store: String,
    pub up: bool,
    /// `open` or `closed` (`limits.fail`).
    pub fail: &'static str,
    /// Decisions the store did not answer, since start.
    pub failed_decisions: u64,
    pub last_error: Option<String>,
    /// RFC 3339, UTC.
    pub last_error_at: Option<String>,
    /// Keys in the memory store (its counters; with Redis, only `max_concurrent` is local).
    pub memory_keys: usize,
}

#[derive(Debug, Serialize)]
pub struct RouteStatus {
    /// `host/path`, or `-` for requests no route matched.
    pub route: String,
    pub upstream: Option<String>,
    pub requests_per_second: f64,
    pub errors_per_second: f64,
    pub requests_total: u64,
    /// Responses with a 5xx status.
    pub errors_total: u64,
}

#[derive(Debug, Serialize)]
pub struct PoolStatus {
    pub name: String,
    pub healthy_servers: usize,
    pub servers: Vec<ServerStatus>,
    /// `servers` entries without a usable address (a host name that does not resolve, a
    /// denied address), with why.
    pub unusable: Vec<UnusableEntry>,
}

#[derive(Debug, Serialize)]
pub struct ServerStatus {
    /// `pool/address`, as logs and Proxy-Status name it.
    pub server: String,
    pub address: String,
    pub backup: bool,
    pub state: crate::upstream::health::HealthState,
    pub reason: Option<String>,
    /// RFC 3339, UTC.
    pub since: String,
    pub in_flight: u32,
}

#[derive(Debug, Serialize)]
pub struct UnusableEntry {
    pub server: String,
    pub kind: &'static str,
    pub details: String,
}

impl StatusReport {
    pub fn build(snapshot: &Snapshot) -> Self {
        let observer = &snapshot.observer;
        let now = Instant::now();
        let current = counts(&observer.metrics);
        let rates = observer.rates.per_second(&current);
        let route_status = |route: &str, upstream: Option<String>| {
            let counts = current.get(route).copied().unwrap_or_default();
            let (requests_per_second, errors_per_second) =
                rates.get(route).copied().unwrap_or_default();
            RouteStatus {
                route: route.to_owned(),
                upstream,
                requests_per_second,
                errors_per_second,
                requests_total: counts.requests,
                errors_total: counts.errors,
            }
        };
        let mut routes: Vec<RouteStatus> = snapshot
            .router
            .routes()
            .map(|(label, upstream)| {
                let pool = snapshot.upstreams.get(upstream).map(|p| p.name.to_string());
                route_status(label, pool)
            })
            .collect();
        // Requests no route matched, and routes a reload removed, still count.
        let mut others: Vec<&String> = current
            .keys()
            .filter(|route| !routes.iter().any(|r| &&r.route == route))
            .collect();
        others.sort();
        routes.extend(others.into_iter().map(|route| route_status(route, None)));

        let pools = snapshot
            .upstreams
            .iter()
            .map(|pool| {
                let members = pool.members();
                let backups: Vec<_> = members.backups.servers.iter().map(|s| s.addr).collect();
                let servers: Vec<ServerStatus> = members
                    .all()
                    .map(|server| {
                        let report = server.state.report(now);
                        ServerStatus {
                            server: server.label.clone(),
                            address: server.addr.to_string(),
                            backup: backups.contains(&server.addr),
                            state: report.state,
                            reason: report.reason,
                            since: rfc3339(report.since),
                            in_flight: server.state.in_flight(),
                        }
                    })
                    .collect();
                PoolStatus {
                    name: pool.name.to_string(),
                    healthy_servers: servers
                        .iter()
                        .filter(|s| s.state == crate::upstream::health::HealthState::Healthy)
                        .count(),
                    servers,
                    unusable: members
                        .unusable
                        .iter()
                        .map(|(server, failure)| UnusableEntry {
                            server: server.clone(),
                            kind: failure.kind.token(),
                            details: failure.details.clone(),
                        })
                        .collect(),
                }
            })
            .collect();
        Self {
            name: snapshot.config.server.name.clone(),
            version: env!("CARGO_PKG_VERSION"),
            config: snapshot.config.source.clone(),
            started: rfc3339(observer.started),
            uptime_seconds: SystemTime::now()
                .duration_since(observer.started)
                .unwrap_or_default()
                .as_secs(),
            routes,
            pools,
            limit_store: limit_store(snapshot),
            certificates: super::certificates::collect(snapshot),
            recent_failures: observer.recent.newest_first(),
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|err| format!("{{\"error\":\"{err}\"}}"))
    }

    /// The page: inline style only, no scripts, a meta refresh.
    pub fn to_html(&self) -> String {
        let mut page = String::with_capacity(16 * 1024);
        let name = escape_html(&self.name);
        let _ = write!(
            page,
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta http-equiv=\"refresh\" content=\"{REFRESH_SECONDS}\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <title>{name} status</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
             <header><h1>{name} <small>status</small></h1>\
             <p>version {version} · config <code>{config}</code> · up {uptime} since {started} · \
             refreshes every {REFRESH_SECONDS}s · <a href=\"/status.json\">JSON</a> · \
             <a href=\"/metrics\">metrics</a></p></header>\n",
            version = escape_html(self.version),
            config = escape_html(&self.config),
            uptime = humantime::format_duration(Duration::from_secs(self.uptime_seconds)),
            started = escape_html(&self.started),
        );
        self.routes_html(&mut page);
        self.pools_html(&mut page);
        self.limit_store_html(&mut page);
        super::certificates::html(&self.certificates, &mut page);
        self.failures_html(&mut page);
        page.push_str("</body>\n</html>\n");
        page
    }

    fn routes_html(&self, page: &mut String) {
        page.push_str(
            "<section><h2>Routes</h2>\n<table id=\"routes\">\n<thead><tr><th>route</th>\
             <th>upstream</th><th class=\"num\">req/s (1 min)</th><th class=\"num\">5xx/s</th>\
             <th class=\"num\">requests</th><th class=\"num\">5xx</th></tr></thead>\n<tbody>\n",
        );
        for route in &self.routes {
            let erroring = if route.errors_per_second > 0.0 {
                " class=\"bad\""
            } else {
                ""
            };
            let _ = writeln!(
                page,
                "<tr class=\"route\" data-route=\"{label}\"><td><code>{label}</code></td>\
                 <td>{upstream}</td><td class=\"num\">{rps:.2}</td><td class=\"num\"><span{erroring}>{eps:.2}</span></td>\
                 <td class=\"num\">{total}</td><td class=\"num\">{errors}</td></tr>",
                label = escape_html(&route.route),
                upstream = escape_html(route.upstream.as_deref().unwrap_or("—")),
                rps = route.requests_per_second,
                eps = route.errors_per_second,
                total = route.requests_total,
                errors = route.errors_total,
            );
        }
        page.push_str("</tbody>\n</table>\n</section>\n");
    }

    fn limit_store_html(&self, page: &mut String) {
        let Some(store) = &self.limit_store else {
            return;
        };
        let (class, state) = if store.up {
            ("good", "up")
        } else {
            ("bad", "unreachable")
        };
        let _ = writeln!(
            page,
            "<section><h2>Rate limit store</h2>\n<table id=\"limit-store\">\n<thead><tr><th>store</th>\
             <th>state</th><th>when it fails</th><th class=\"num\">failed decisions</th><th>last error</th>\
             <th class=\"num\">keys in memory</th></tr></thead>\n<tbody>\n\
             <tr class=\"limit-store\" data-state=\"{state}\"><td><code>{address}</code></td>\
             <td><span class=\"{class}\">{state}</span></td><td>fail {fail}</td>\
             <td class=\"num\">{failed}</td><td>{error}</td><td class=\"num\">{keys}</td></tr>\n\
             </tbody>\n</table>\n</section>",
            address = escape_html(&store.store),
            fail = store.fail,
            failed = store.failed_decisions,
            error = match (&store.last_error, &store.last_error_at) {
                (Some(error), Some(at)) => format!("{} ({})", escape_html(error), escape_html(at)),
                _ => "—".to_owned(),
            },
            keys = store.memory_keys,
        );
    }

    fn pools_html(&self, page: &mut String) {
        page.push_str("<section><h2>Pools</h2>\n");
        for pool in &self.pools {
            let total = pool.servers.len();
            let class = if pool.healthy_servers == 0 {
                "bad"
            } else if pool.healthy_servers < total {
                "warn"
            } else {
                "good"
            };
            let _ = write!(
                page,
                "<h3 id=\"pool-{id}\">{name} <span class=\"{class}\">{healthy} of {total} healthy</span></h3>\n\
                 <table class=\"servers\" data-pool=\"{name}\">\n<thead><tr><th>server</th><th>state</th>\
                 <th>reason</th><th>since</th><th class=\"num\">in flight</th></tr></thead>\n<tbody>\n",
                id = escape_html(&pool.name),
                name = escape_html(&pool.name),
                healthy = pool.healthy_servers,
            );
            for server in &pool.servers {
                let state = server.state.as_str();
                let _ = writeln!(
                    page,
                    "<tr class=\"server\" data-pool=\"{pool}\" data-server=\"{label}\" data-state=\"{state}\">\
                     <td><code>{label}</code>{backup}</td><td class=\"state {state}\">{state}</td>\
                     <td class=\"reason\">{reason}</td><td class=\"since\">{since}</td>\
                     <td class=\"num\">{in_flight}</td></tr>",
                    pool = escape_html(&pool.name),
                    label = escape_html(&server.server),
                    backup = if server.backup {
                        " <small>backup</small>"
                    } else {
                        ""
                    },
                    reason = escape_html(server.reason.as_deref().unwrap_or("")),
                    since = escape_html(&server.since),
                    in_flight = server.in_flight,
                );
            }
            for entry in &pool.unusable {
                let _ = writeln!(
                    page,
                    "<tr class=\"unusable\" data-pool=\"{pool}\" data-server=\"{label}\" data-state=\"unusable\">\
                     <td><code>{label}</code></td><td class=\"state down\">unusable</td>\
                     <td class=\"reason\">{kind}: {details}</td><td class=\"since\"></td><td class=\"num\">0</td></tr>",
                    pool = escape_html(&pool.name),
                    label = escape_html(&entry.server),
                    kind = entry.kind,
                    details = escape_html(&entry.details),
                );
            }
            if pool.servers.is_empty() && pool.unusable.is_empty() {
                page.push_str("<tr><td colspan=\"5\">no servers</td></tr>\n");
            }
            page.push_str("</tbody>\n</table>\n");
        }
        page.push_str("</section>\n");
    }

    fn failures_html(&self, page: &mut String) {
        let _ = writeln!(
            page,
            "<section><h2>Recent failures <small>(newest first, last {})</small></h2>",
            crate::observe::recent::KEPT
        );
        if self.recent_failures.is_empty() {
            page.push_str("<p>None since gatehouse started.</p>\n</section>\n");
            return;
        }
        page.push_str(
            "<table id=\"failures\">\n<thead><tr><th>time</th><th>kind</th><th>answered</th>\
             <th>route</th><th>server</th><th>request id</th><th>what happened · likely fix</th>\
             </tr></thead>\n<tbody>\n",
        );
        for failure in &self.recent_failures {
            let _ = writeln!(
                page,
                "<tr class=\"failure\" data-kind=\"{kind}\"><td class=\"time\">{time}</td>\
                 <td><code>{kind}</code></td><td class=\"answered\">{answered}</td><td>{route}</td><td>{server}{attempt}</td>\
                 <td><code>{request_id}</code></td><td>{details}<br><small>{hint}</small></td></tr>",
                kind = failure.kind,
                time = escape_html(&failure.time_text().replacen('T', " ", 1)),
                answered = match failure.answered {
                    Some(status) if status < 400 && failure.status >= 500 => {
                        format!("<span class=\"good\">{status}</span> <small>after a retry</small>")
                    }
                    Some(status) if failure.attempt >= 1 && status != failure.status => {
                        format!("{status} <small>after a retry</small>")
                    }
                    Some(status) => status.to_string(),
                    None => "<small>in progress</small>".to_owned(),
                },
                route = escape_html(failure.route.as_deref().unwrap_or("—")),
                // A failure of the whole pool (none available) names the pool.
                server = escape_html(
                    failure
                        .server
                        .as_deref()
                        .or(failure.pool.as_deref())
                        .unwrap_or("—")
                ),
                attempt = if failure.attempt > 1 {
                    format!(" <small>(attempt {})</small>", failure.attempt)
                } else {
                    String::new()
                },
                request_id = escape_html(&failure.request_id),
                details = escape_html(&failure.details),
                hint = escape_html(failure.hint),
            );
        }
        page.push_str("</tbody>\n</table>\n</section>\n");
    }
}

const STYLE: &str = "\
body{font:14px/1.45 system-ui,sans-serif;margin:1.5em auto;max-width:1200px;padding:0 1em;color:#1d2228;background:#fafbfc}\
h1{font-size:1.5em;margin:0}h1 small{color:#6a737d;font-weight:normal}h2{font-size:1.15em;margin:1.6em 0 .5em}\
h3{font-size:1em;margin:1.2em 0 .4em}header p{color:#586069;margin:.3em 0 0}\
table{border-collapse:collapse;width:100%;background:#fff;border:1px solid #e1e4e8}\
th,td{text-align:left;padding:.35em .6em;border-bottom:1px solid #eaecef;vertical-align:top}\
th{background:#f6f8fa;font-weight:600}.num{text-align:right;font-variant-numeric:tabular-nums}\
code{font:12.5px ui-monospace,monospace}.time,.answered{white-space:nowrap}small{color:#6a737d}\
.state{font-weight:600}.healthy,.good{color:#1a7f37}.down,.bad{color:#cf222e}.ejected,.warn{color:#9a6700}\
tr[data-state=down],tr[data-state=unusable]{background:#fff5f5}tr[data-state=ejected]{background:#fffbe6}";

/// The rate limits' store, when a route has a rate limit.
fn limit_store(snapshot: &Snapshot) -> Option<LimitStoreStatus> {
    if !snapshot.limits.in_use {
        return None;
    }
    let limits = &snapshot.limits;
    let fail = match limits.fail {
        gatehouse_config::LimitFail::Open => "open",
        gatehouse_config::LimitFail::Closed => "closed",
    };
    let memory_keys = limits.memory_keys();
    Some(match limits.redis() {
        Some((address, health)) => {
            let last = health.last_error();
            LimitStoreStatus {
                store: address,
                up: health.is_up(),
                fail,
                failed_decisions: health.failed.load(std::sync::atomic::Ordering::Relaxed),
                last_error_at: last.as_ref().map(|(at, _)| rfc3339(*at)),
                last_error: last.map(|(_, error)| error),
                memory_keys,
            }
        }
        None => LimitStoreStatus {
            store: "memory".to_owned(),
            up: true,
            fail,
            failed_decisions: 0,
            last_error: None,
            last_error_at: None,
            memory_keys,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_text_is_escaped_for_markup_and_attribute_quotes() {
        assert_eq!(
            escape_html(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
