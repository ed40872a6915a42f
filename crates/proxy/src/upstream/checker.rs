//! Active health checks, load-balancer style: every `interval`, each server of a pool gets a
//! TCP connect or an HTTP `GET path`, bounded by `timeout`; a TLS server's check includes the
//! TLS handshake (a certificate that does not verify fails it as `tls_certificate_error`, as it
//! would fail a request), and an `http2` server's is sent over HTTP/2 when the server speaks
//! it. The result feeds the server's
//! rise/fall hysteresis (see [`ServerState::observe_check`]) and flips are logged once.
//!
//! A failed check is described with the same kind tokens as a failed request
//! (`connection_refused`, `http_response_timeout`, ...) or `status NNN`, so the status page and
//! the 503 page speak the same language as the failure log.

use std::sync::{Arc, Weak};

use gatehouse_config::HealthCheck;
use http::header::{self, HeaderValue};
use http::{Method, Request};
use tokio::time::{Instant, MissedTickBehavior};

use super::connect::{self, ConnMode, connect};
use super::health::CheckResult;
use super::pool::Pool;
use super::server::Server;
use crate::client_body::RequestBody;
use crate::failure::FailureKind;
use crate::failure::classify::HeadFacts;
use crate::observe::Observer;
use crate::observe::transition::Transition;

/// Checks every server of the pool each `interval` until the pool is dropped or retired.
pub async fn run_checks(pool: Weak<Pool>, check: HealthCheck) {
    let mut ticks = tokio::time::interval(check.interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(pool) = pool.upgrade() else { return };
        if pool.is_retired() {
            return;
        }
        check_all(&pool, &check).await;
    }
}

/// One round: every server of the pool checked concurrently, results applied.
pub async fn check_all(pool: &Pool, check: &HealthCheck) {
    let members = pool.members();
    let servers: Vec<Arc<Server>> = members.all().cloned().collect();
    let probes = servers.iter().map(|server| probe(server, check));
    let results = futures_util::future::join_all(probes).await;
    for (server, result) in servers.iter().zip(results) {
        let transition = apply(&pool.observer, &pool.name, server, result, check);
        if transition == Some(Transition::Up) {
            // Requests queued for a connection slot may use the server that came back.
            pool.wake_queued();
        }
    }
}

fn apply(
    observer: &Observer,
    pool: &str,
    server: &Server,
    result: CheckResult,
    check: &HealthCheck,
) -> Option<Transition> {
    let transition =
        server
            .state
            .observe_check(result, check.unhealthy_threshold, check.healthy_threshold)?;
    observer.transition(pool, &server.label, &transition);
    Some(transition)
}

/// One check of one server.
pub async fn probe(server: &Server, check: &HealthCheck) -> CheckResult {
    let deadline = Instant::now() + check.timeout;
    let mut settings = server.settings().clone();
    settings.conn.connect_timeout = check.timeout;
    let Some(path) = &check.path else {
        // A TCP check: the connect (and, for a TLS server, the handshake) is all.
        return match connect::open(server.addr, &settings, false).await {
            Ok(_) => CheckResult::Pass,
            Err(failure) => fail(failure.kind),
        };
    };
    let mut conn = match connect(server.addr, &settings, ConnMode::Pooled).await {
        Ok((conn, _)) => conn,
        Err(failure) => return fail(failure.kind),
    };
    let host = check.host.clone().unwrap_or_else(|| authority(server));
    let mut request = Request::new(RequestBody::empty());
    *request.method_mut() = Method::GET;
    *request.uri_mut() = match path.parse() {
        Ok(uri) => uri,
        Err(_) => return CheckResult::Fail(format!("invalid health check path {path:?}")),
    };
    let headers = request.headers_mut();
    if let Ok(host) = HeaderValue::from_str(&host) {
        headers.insert(header::HOST, host);
    }
    headers.insert(
        header::USER_AGENT,
        HeaderValue::from_static("gatehouse-health-check"),
    );
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    match tokio::time::timeout_at(deadline, conn.sender.try_send_request(request, None)).await {
        Err(_) => fail(FailureKind::HttpResponseTimeout),
        Ok(Ok(response)) => {
            let status = response.status().as_u16();
            if check
                .expect_status
                .iter()
                .any(|range| range.contains(status))
            {
                CheckResult::Pass
            } else {
                CheckResult::Fail(format!("status {status}"))
            }
        }
        Ok(Err(failed)) => {
            let facts = HeadFacts {
                response_bytes: conn.stats.read(),
                reused: false,
            };
            fail(failed.failure(facts).kind)
        }
    }
}

fn fail(kind: FailureKind) -> CheckResult {
    CheckResult::Fail(kind.token().to_owned())
}

/// `host:port` as the server's entry names it (brackets for an IPv6 literal).
fn authority(server: &Server) -> String {
    if server.host.contains(':') {
        format!("[{}]:{}", server.host, server.addr.port())
    } else {
        format!("{}:{}", server.host, server.addr.port())
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpListener};
    use std::time::Duration;

    use gatehouse_config::StatusRange;

    use super::*;
    use crate::upstream::health::ServerState;
    use crate::upstream::server::{ConnSettings, ServerSpec, WaitQueue};

    fn settings() -> ConnSettings {
        ConnSettings {
            connect_timeout: Duration::from_secs(1),
            response_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(1),
            send_timeout: Duration::from_secs(1),
            max_response_header_size: 8192,
            proxy_protocol: None,
        }
    }

    fn server(addr: SocketAddr) -> Server {
        Server::new(
            "app",
            ServerSpec {
                addr,
                host: "127.0.0.1".into(),
                named: false,
                weight: 1,
                max_connections: None,
                backup: false,
            },
            Arc::new(ServerState::default()),
            Arc::new(WaitQueue::default()),
            settings(),
        )
    }

    fn check(path: Option<&str>) -> HealthCheck {
        HealthCheck {
            path: path.map(str::to_owned),
            interval: Duration::from_secs(1),
            timeout: Duration::from_millis(500),
            unhealthy_threshold: 2,
            healthy_threshold: 2,
            expect_status: vec![StatusRange {
                low: 200,
                high: 399,
            }],
            host: Some("health.example".to_owned()),
        }
    }

    /// A one-shot HTTP server answering every connection with `status`; returns the request
    /// heads it saw through the join handle.
    fn http_server(
        status: u16,
        connections: usize,
    ) -> (SocketAddr, std::thread::JoinHandle<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let handle = std::thread::spawn(move || {
            let mut heads = Vec::new();
            for _ in 0..connections {
                let Ok((mut stream, _)) = listener.accept() else {
                    break;
                };
                let mut buf = [0u8; 4096];
                let n = stream.read(&mut buf).unwrap_or(0);
                heads.push(String::from_utf8_lossy(&buf[..n]).into_owned());
                let reply = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
                let _ = stream.write_all(reply.as_bytes());
            }
            heads
        });
        (addr, handle)
    }

    #[tokio::test]
    async fn http_check_sends_path_and_host_and_judges_the_status() {
        let (addr, seen) = http_server(200, 1);
        let result = probe(&server(addr), &check(Some("/healthz"))).await;
        assert_eq!(result, CheckResult::Pass);
        let heads = seen.join().unwrap_or_default();
        assert!(
            heads[0].starts_with("GET /healthz HTTP/1.1\r\n"),
            "{heads:?}"
        );
        assert!(
            heads[0]
                .to_ascii_lowercase()
                .contains("host: health.example\r\n"),
            "{heads:?}"
        );

        let (addr, _seen) = http_server(503, 1);
        let result = probe(&server(addr), &check(Some("/"))).await;
        assert_eq!(result, CheckResult::Fail("status 503".into()));
    }

    #[tokio::test]
    async fn failed_checks_are_named_by_failure_kind() {
        // Nothing listening.
        let closed = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let addr = closed.local_addr().unwrap_or_else(|e| panic!("{e}"));
        drop(closed);
        assert_eq!(
            probe(&server(addr), &check(None)).await,
            CheckResult::Fail("connection_refused".into())
        );
        assert_eq!(
            probe(&server(addr), &check(Some("/"))).await,
            CheckResult::Fail("connection_refused".into())
        );
        // Accepts (the kernel does, from the backlog) but never answers.
        let silent = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let addr = silent.local_addr().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            probe(&server(addr), &check(None)).await,
            CheckResult::Pass,
            "a TCP check passes on connect"
        );
        assert_eq!(
            probe(&server(addr), &check(Some("/"))).await,
            CheckResult::Fail("http_response_timeout".into())
        );
        drop(silent);
    }

    #[tokio::test]
    async fn a_round_marks_a_refusing_server_down_after_the_threshold() {
        let (addr, _seen) = http_server(200, 4);
        let observer = Observer::default();
        let server = server(addr);
        let check = check(Some("/"));
        for _ in 0..2 {
            let result = probe(&server, &check).await;
            apply(&observer, "app", &server, result, &check);
        }
        assert!(!server.state.is_down());
        // Now a port where nothing listens.
        let closed = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let dead = self::server(closed.local_addr().unwrap_or_else(|e| panic!("{e}")));
        drop(closed);
        let result = probe(&dead, &check).await;
        apply(&observer, "app", &dead, result, &check);
        assert!(!dead.state.is_down(), "one failure of two");
        let result = probe(&dead, &check).await;
        apply(&observer, "app", &dead, result, &check);
        assert!(dead.state.is_down());
        assert_eq!(
            dead.state.reason(Instant::now()).as_deref(),
            Some("connection_refused")
        );
        let scrape = observer.metrics.encode();
        let down = format!(
            "gatehouse_upstream_health_transitions_total{{pool=\"app\",server=\"{}\",to=\"down\"}} 1",
            dead.label
        );
        assert!(scrape.contains(&down), "{down} in:\n{scrape}");
    }
}
