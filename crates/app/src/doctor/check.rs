//! Checking one `servers` entry the way the proxy would use it: resolve its name with the
//! proxy's resolver, connect with the proxy's `connect` (same timeout, same header-size limit),
//! send one request to the health path, and classify every failure with the proxy's own code.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use gatehouse_config::{UpstreamConfig, UpstreamServer};
use gatehouse_proxy::body::RequestBody;
use gatehouse_proxy::failure::classify::{self, HeadFacts};
use gatehouse_proxy::failure::{Failure, FailureKind, Phase};
use gatehouse_proxy::upstream::connect::{ConnMode, connect};
use gatehouse_proxy::upstream::dns::Dns;
use gatehouse_proxy::upstream::server::{self, ConnSettings};
use http::header::{self, HeaderValue};
use http::{Method, Request, StatusCode};
use hyper::body::Incoming;
use serde::Serialize;
use tokio::time::Instant;

use super::ports::{self, Listener};
use super::verdict::{self, Verdict};
use crate::probe::{drain_body, millis};

/// Body bytes read to check the response's framing; a larger body is not read to its end.
const BODY_CHECK_LIMIT: u64 = 1024 * 1024;
/// The header limit used to measure a header section the proxy's own limit refused.
const MEASURE_HEADER_LIMIT: usize = 4 * 1024 * 1024;

/// Everything learned about one server address (or about an entry whose name did not resolve).
#[derive(Debug, Serialize)]
pub(crate) struct ServerReport {
    /// The entry as written in `servers`.
    pub(crate) server: String,
    /// The proxy's name for it (`pool/host:port (ip)`), as logs and `next-hop` show it.
    pub(crate) label: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) address: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) dns: Option<DnsStep>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) connect_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) http: Option<HttpStep>,
    pub(crate) verdict: Verdict,
    /// Healthy-but-worrying facts, e.g. latency close to `response_timeout`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct DnsStep {
    pub(crate) ms: f64,
    pub(crate) addresses: Vec<IpAddr>,
}

#[derive(Debug, Default, Serialize)]
pub(crate) struct HttpStep {
    /// e.g. `GET /ping`.
    pub(crate) request: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) status: Option<u16>,
    /// From sending the request to the complete response header section.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) first_byte_ms: Option<f64>,
    /// When the headers came after `response_timeout`: how long they took in the end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) late_first_byte_ms: Option<f64>,
    pub(crate) response_timeout_ms: f64,
    /// The size of the response header section (status line and fields).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) header_bytes: Option<u64>,
    pub(crate) header_limit: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) body_bytes: Option<u64>,
}

/// What the check of one entry needs besides the entry.
#[derive(Debug)]
pub(crate) struct Context<'a> {
    pub(crate) upstream: &'a UpstreamConfig,
    pub(crate) dns: &'a Dns,
    pub(crate) listeners: &'a [Listener],
    /// How long to keep waiting for a server slower than `response_timeout`, to measure it.
    pub(crate) wait: Duration,
}

/// Checks one `servers` entry: one report per address its name resolves to (one for a literal).
pub(crate) async fn check_entry(entry: &UpstreamServer, cx: &Context<'_>) -> Vec<ServerReport> {
    let address = &entry.address;
    let written = address.authority();
    let (addrs, dns) = match address.ip {
        Some(ip) => (vec![ip], None),
        None => {
            let started = Instant::now();
            match cx.dns.resolve(&address.host).await {
                Ok(resolved) => {
                    let step = DnsStep {
                        ms: millis(started.elapsed()),
                        addresses: resolved.addrs.clone(),
                    };
                    (resolved.addrs, Some(step))
                }
                Err(failure) => {
                    let label = format!("{}/{written}", cx.upstream.name);
                    let verdict = verdict::failed(&failure, &Facts::for_entry(cx, &written));
                    return vec![ServerReport {
                        server: written,
                        label,
                        address: None,
                        dns: None,
                        connect_ms: None,
                        http: None,
                        verdict,
                        warnings: Vec::new(),
                    }];
                }
            }
        }
    };
    let checks = addrs.into_iter().map(|ip| {
        let addr = SocketAddr::new(ip, address.port);
        let report = ServerReport {
            label: server::label(&cx.upstream.name, &address.host, address.ip.is_none(), addr),
            server: written.clone(),
            address: Some(addr),
            dns: dns.clone(),
            connect_ms: None,
            http: None,
            verdict: Verdict::healthy(String::new()),
            warnings: Vec::new(),
        };
        check_address(report, addr, cx)
    });
    futures_util::future::join_all(checks).await
}

/// The facts a verdict's words draw on.
#[derive(Debug, Default)]
pub(crate) struct Facts {
    pub(crate) pool: String,
    pub(crate) server: String,
    pub(crate) address: Option<SocketAddr>,
    pub(crate) port_hints: Vec<ports::PortHint>,
    pub(crate) settings: Option<ConnSettings>,
    pub(crate) request: String,
    pub(crate) header_bytes: Option<u64>,
    pub(crate) late_first_byte: Option<Duration>,
    pub(crate) waited: Duration,
}

impl Facts {
    fn for_entry(cx: &Context<'_>, server: &str) -> Self {
        Self {
            pool: cx.upstream.name.clone(),
            server: server.to_owned(),
            settings: Some(ConnSettings::from(cx.upstream)),
            // A server is waited for `--wait`, but never less than its response_timeout.
            waited: cx.wait.max(cx.upstream.response_timeout),
            ..Self::default()
        }
    }
}

async fn check_address(
    mut report: ServerReport,
    addr: SocketAddr,
    cx: &Context<'_>,
) -> ServerReport {
    let mut facts = Facts::for_entry(cx, &report.server);
    facts.address = Some(addr);
    if let Some(net) = cx
        .upstream
        .deny_addresses
        .iter()
        .find(|n| n.contains(addr.ip()))
    {
        let failure = Failure::new(
            FailureKind::DestinationIpProhibited,
            Phase::Selecting,
            format!("{} is in deny_addresses ({net})", addr.ip()),
        );
        report.verdict = verdict::failed(&failure, &facts);
        return report;
    }
    let settings = ConnSettings::from(cx.upstream);
    let (path, host) = match &cx.upstream.health {
        Some(health) => (
            health.path.clone().unwrap_or_else(|| "/".to_owned()),
            health.host.clone(),
        ),
        None => ("/".to_owned(), None),
    };
    let host = host.unwrap_or_else(|| report.server.clone());
    facts.request = format!("GET {path}");
    let mut step = HttpStep {
        request: facts.request.clone(),
        response_timeout_ms: millis(settings.response_timeout),
        header_limit: settings.max_response_header_size as u64,
        ..HttpStep::default()
    };

    let (conn, connect_time) = match connect(addr, &settings, ConnMode::Pooled).await {
        Ok(connected) => connected,
        Err(failure) => {
            if matches!(
                failure.kind,
                FailureKind::ConnectionRefused | FailureKind::ConnectionTimeout
            ) {
                facts.port_hints = ports::hints_for(addr, cx.listeners);
            }
            report.verdict = verdict::failed(&failure, &facts);
            return report;
        }
    };
    report.connect_ms = Some(millis(connect_time));

    let outcome = exchange(conn, &path, &host, &settings, cx.wait, &mut step).await;
    let result = match outcome {
        Err(failure) if failure.kind == FailureKind::HttpResponseHeaderSectionSize => {
            // Ask again with room to spare, to tell the operator how big the headers really are.
            step.header_bytes = measure_headers(addr, &path, &host, &settings).await;
            facts.header_bytes = step.header_bytes;
            Err(failure)
        }
        other => other,
    };
    facts.late_first_byte = step
        .late_first_byte_ms
        .map(|ms| Duration::from_secs_f64(ms / 1000.0));
    report.verdict = match result {
        Err(failure) => verdict::failed(&failure, &facts),
        // A health check without a path is a TCP connect: the status does not judge it.
        Ok(status) => verdict::answered(
            status,
            cx.upstream.health.as_ref().filter(|h| h.path.is_some()),
            &facts,
        ),
    };
    if report.verdict.healthy {
        report.warnings = verdict::latency_warnings(&step, &settings);
    }
    report.http = Some(step);
    report
}

/// One request on the new connection; returns the status, or the failure the proxy would see.
async fn exchange(
    mut conn: gatehouse_proxy::upstream::server::Conn,
    path: &str,
    host: &str,
    settings: &ConnSettings,
    wait: Duration,
    step: &mut HttpStep,
) -> Result<StatusCode, Failure> {
    let request = health_request(path, host)?;
    let sent = Instant::now();
    let mut send = std::pin::pin!(conn.sender.send_request(request));
    let Ok(response) = tokio::time::timeout(settings.response_timeout, &mut send).await else {
        // The proxy gives up here; the doctor waits on, to tell how slow the server is.
        let failure = classify::response_timeout(settings.response_timeout);
        let patience = wait.saturating_sub(settings.response_timeout);
        if let Ok(Ok(_)) = tokio::time::timeout(patience, &mut send).await {
            step.late_first_byte_ms = Some(millis(sent.elapsed()));
        }
        return Err(failure);
    };
    let response = response.map_err(|err| {
        classify::response_head_error(
            &err,
            HeadFacts {
                response_bytes: conn.stats.read(),
                reused: false,
            },
        )
    })?;
    step.first_byte_ms = Some(millis(sent.elapsed()));
    let status = response.status();
    step.status = Some(status.as_u16());
    step.header_bytes = Some(header_section_size(&response));
    let chunked = classify::response_framing(response.headers())?;
    // Read as the proxy would forward it: each read within read_timeout, framing checked.
    let body = response.into_body();
    step.body_bytes =
        Some(drain_body(body, chunked, BODY_CHECK_LIMIT, settings.read_timeout, None).await?);
    Ok(status)
}

fn health_request(path: &str, host: &str) -> Result<Request<RequestBody>, Failure> {
    let mut request = Request::new(RequestBody::empty());
    *request.method_mut() = Method::GET;
    *request.uri_mut() = path.parse().map_err(|_| {
        Failure::new(
            FailureKind::ProxyConfigurationError,
            Phase::SendingRequest,
            format!("{path:?} is not a valid request path"),
        )
    })?;
    let headers = request.headers_mut();
    if let Ok(host) = HeaderValue::from_str(host) {
        headers.insert(header::HOST, host);
    }
    headers.insert(
        header::USER_AGENT,
        HeaderValue::from_static(concat!("gatehouse-doctor/", env!("CARGO_PKG_VERSION"))),
    );
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    Ok(request)
}

/// The size of the response head as received: status line (with the reason phrase the server
/// sent), each field line, the blank line.
fn header_section_size(response: &http::Response<Incoming>) -> u64 {
    let reason = response
        .extensions()
        .get::<hyper::ext::ReasonPhrase>()
        .map(|r| r.as_bytes().len())
        .or_else(|| response.status().canonical_reason().map(str::len))
        .unwrap_or(0);
    let status_line = "HTTP/1.1 ".len() + 3 + 1 + reason + 2;
    let fields: usize = response
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + 2 + value.len() + 2)
        .sum();
    (status_line + fields + 2) as u64
}

/// The real size of a header section that exceeded the proxy's limit, by asking again with a
/// much larger one. `None` when that fails too.
async fn measure_headers(
    addr: SocketAddr,
    path: &str,
    host: &str,
    settings: &ConnSettings,
) -> Option<u64> {
    let mut roomy = settings.clone();
    roomy.max_response_header_size = MEASURE_HEADER_LIMIT;
    let (mut conn, _) = connect(addr, &roomy, ConnMode::Pooled).await.ok()?;
    let request = health_request(path, host).ok()?;
    let response = tokio::time::timeout(roomy.response_timeout, conn.sender.send_request(request))
        .await
        .ok()?
        .ok()?;
    Some(header_section_size(&response))
}
