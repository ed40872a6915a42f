//! Checking one `servers` entry the way the proxy would use it: resolve its name with the
//! proxy's resolver, open a connection with the proxy's own steps and the server's
//! `ServerSettings` as the pool builds them (TCP connect, TLS handshake with the pool's client
//! configuration, then HTTP/1.1, or HTTP/2 over ALPN `h2` or cleartext prior knowledge for an
//! `http2` upstream; same timeouts, same header-size limit), send one request to the health
//! path on it, and classify every failure with the proxy's own code.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use gatehouse_config::{UpstreamConfig, UpstreamServer};
use gatehouse_proxy::client_body::RequestBody;
use gatehouse_proxy::failure::classify::{self, HeadFacts};
use gatehouse_proxy::failure::{Failure, FailureKind, Phase};
use gatehouse_proxy::upstream::connect;
use gatehouse_proxy::upstream::dns::Dns;
use gatehouse_proxy::upstream::h2::Multiplexed;
use gatehouse_proxy::upstream::io::Transport;
use gatehouse_proxy::upstream::server::{
    self, Conn, ConnSettings, Protocol, ServerSettings, TlsTarget,
};
use gatehouse_proxy::upstream::tls;
use http::header::{self, HeaderValue};
use http::uri::Authority;
use http::{Method, Request, StatusCode};
use hyper::body::Incoming;
use rustls::RootCertStore;
use serde::Serialize;
use tokio::time::Instant;

use super::ports::{self, Listener};
use super::verdict::{self, Verdict};
use crate::naming::Naming;
use crate::probe::tlsdiag::{self, CertificateInfo, Inspection, TlsReport};
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
    /// For a server reached over TLS: the handshake.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) tls: Option<TlsStep>,
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

/// The TLS handshake with a server (JSON `tls`).
#[derive(Debug, Serialize)]
pub(crate) struct TlsStep {
    /// Sent as SNI and verified against the certificate: `tls_server_name`, else the host.
    pub(crate) server_name: String,
    /// The ALPN protocols offered (`h2` too when the upstream has `http2`).
    pub(crate) alpn_offered: Vec<String>,
    /// How long the handshake took, when it completed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) handshake_ms: Option<f64>,
    /// When it completed: `protocol`, `cipher`, `alpn`, the certificate's `subject`, `issuer`,
    /// `not_after` (Unix seconds), `expires` (RFC 3339) and `days_left`.
    #[serde(flatten)]
    pub(crate) negotiated: Option<TlsReport>,
    /// When the certificate failed verification: the one presented (`subject`, `issuer`,
    /// `not_after`, `expires`, `days_left`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) certificate: Option<CertificateInfo>,
}

#[derive(Debug, Default, Serialize)]
pub(crate) struct HttpStep {
    /// e.g. `GET /ping`.
    pub(crate) request: String,
    /// The protocol the request went over, as the proxy's would: `http/1.1`, `h2` (HTTP/2 over
    /// TLS) or `h2c` (HTTP/2 over cleartext, prior knowledge).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) protocol: Option<&'static str>,
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
    /// The idle timeout the server announced (`Keep-Alive: timeout=N`), in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) keep_alive_timeout_s: Option<u64>,
}

/// What the check of one entry needs besides the entry.
#[derive(Debug)]
pub(crate) struct Context<'a> {
    pub(crate) upstream: &'a UpstreamConfig,
    pub(crate) dns: &'a Dns,
    pub(crate) listeners: &'a [Listener],
    /// How long to keep waiting for a server slower than `response_timeout`, to measure it.
    pub(crate) wait: Duration,
    /// Whose names the verdicts use for the limits.
    pub(crate) naming: Arc<Naming>,
}

/// The ALPN protocols the pool offers: `h2` first when the upstream speaks HTTP/2 (the
/// proxy's `TlsClients`; used for the report's words when they cannot be built).
fn alpn_offered(upstream: &UpstreamConfig) -> Vec<&'static [u8]> {
    if upstream.http2 {
        vec![tls::ALPN_H2, tls::ALPN_HTTP11]
    } else {
        vec![tls::ALPN_HTTP11]
    }
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
                        tls: None,
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
            tls: None,
            http: None,
            verdict: Verdict::healthy(String::new()),
            warnings: Vec::new(),
        };
        check_address(report, entry, addr, cx)
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
    /// The protocol the connection spoke (known once the connection was opened).
    pub(crate) protocol: Option<Protocol>,
    pub(crate) header_bytes: Option<u64>,
    pub(crate) late_first_byte: Option<Duration>,
    pub(crate) waited: Duration,
    /// For a server reached over TLS: what the TLS verdicts' words draw on.
    pub(crate) tls: Option<TlsDiagnosis>,
    /// Whose names the verdict uses for the limits.
    pub(crate) naming: Arc<Naming>,
}

/// What the doctor knows about a TLS server besides the failure.
#[derive(Debug, Default)]
pub(crate) struct TlsDiagnosis {
    /// The name sent as SNI and verified.
    pub(crate) server_name: String,
    /// Whether `tls_server_name` set it (else it is the server's host).
    pub(crate) name_configured: bool,
    /// `tls_ca_file`; `None` = the system's trust roots.
    pub(crate) ca_file: Option<PathBuf>,
    /// `tls_client_cert`, if any.
    pub(crate) client_cert: Option<PathBuf>,
    pub(crate) alpn_offered: Vec<String>,
    /// The handshake ran into its timeout (rather than failing).
    pub(crate) timed_out: bool,
    /// A certificate that failed verification, looked at again.
    pub(crate) inspection: Option<Inspection>,
    /// After a protocol error: the status the port answered a plain HTTP request with.
    pub(crate) plain_http_status: Option<u16>,
    /// The pool's client configuration could not be built: why.
    pub(crate) config_error: Option<String>,
}

impl TlsDiagnosis {
    fn new(upstream: &UpstreamConfig, host: &str) -> Self {
        let tls = &upstream.tls;
        Self {
            server_name: tls.server_name.clone().unwrap_or_else(|| host.to_owned()),
            name_configured: tls.server_name.is_some(),
            ca_file: tls.ca.as_ref().map(|ca| ca.path.clone()),
            client_cert: tls.client_cert.as_ref().map(|c| c.cert_path.clone()),
            alpn_offered: alpn_offered(upstream)
                .iter()
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .collect(),
            ..Self::default()
        }
    }
}

impl Facts {
    fn for_entry(cx: &Context<'_>, server: &str) -> Self {
        Self {
            pool: cx.upstream.name.clone(),
            server: server.to_owned(),
            settings: Some(ConnSettings::from(cx.upstream)),
            // A server is waited for `--wait`, but never less than its response_timeout.
            waited: cx.wait.max(cx.upstream.response_timeout),
            naming: Arc::clone(&cx.naming),
            ..Self::default()
        }
    }
}

async fn check_address(
    mut report: ServerReport,
    entry: &UpstreamServer,
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
    // What the pool would use for this server: TLS target and client configurations (ALPN
    // `h2` offered when `http2`), HTTP/2 prior knowledge on cleartext.
    let settings = ServerSettings::for_server(cx.upstream, entry);
    if let Some(target) = &settings.tls {
        let mut diagnosis = TlsDiagnosis::new(cx.upstream, &entry.address.host);
        diagnosis.server_name = target.server_name.to_string();
        match &target.clients {
            Ok(clients) => {
                diagnosis.alpn_offered = clients
                    .config(settings.http2)
                    .alpn_protocols
                    .iter()
                    .map(|p| String::from_utf8_lossy(p).into_owned())
                    .collect();
            }
            Err(why) => {
                diagnosis.config_error = Some(why.to_string());
                facts.tls = Some(diagnosis);
                report.verdict = verdict::failed(&tls_config_failure(cx, why), &facts);
                return report;
            }
        }
        report.tls = Some(TlsStep {
            server_name: diagnosis.server_name.clone(),
            alpn_offered: diagnosis.alpn_offered.clone(),
            handshake_ms: None,
            negotiated: None,
            certificate: None,
        });
        facts.tls = Some(diagnosis);
    }
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

    let mut conn = match open(addr, &settings).await {
        Ok(opened) => {
            report.connect_ms = Some(millis(opened.connect_time));
            if let (Some(step), Some((negotiated, took))) = (&mut report.tls, opened.tls) {
                let now = SystemTime::now();
                let negotiated = TlsReport::new(negotiated, now);
                // A certificate close to its end is worth a warning whatever the verdict.
                report.warnings.extend(negotiated.expiry_warning(now));
                step.handshake_ms = Some(millis(took));
                step.negotiated = Some(negotiated);
            }
            step.protocol = Some(opened.conn.protocol.alpn());
            facts.protocol = Some(opened.conn.protocol);
            opened.conn
        }
        Err(failed) => {
            report.connect_ms = failed.connect_time.map(millis);
            if failed.connect_time.is_none() {
                // No TCP connection, so no handshake to report.
                report.tls = None;
            }
            let failure = failed.failure;
            if matches!(
                failure.kind,
                FailureKind::ConnectionRefused | FailureKind::ConnectionTimeout
            ) {
                facts.port_hints = ports::hints_for(addr, cx.listeners);
            }
            if let Some(diagnosis) = &mut facts.tls {
                diagnosis.timed_out = failed.tls_timed_out;
                diagnose_tls(&failure, addr, &host, cx, &settings, diagnosis).await;
                if let Some(step) = &mut report.tls {
                    step.certificate = diagnosis
                        .inspection
                        .as_ref()
                        .and_then(|i| i.certificate.clone());
                }
            }
            report.verdict = verdict::failed(&failure, &facts);
            return report;
        }
    };

    let tls_name = facts.tls.as_ref().map(|t| t.server_name.clone());
    let outcome = exchange(
        &mut conn,
        &path,
        &host,
        tls_name.as_deref(),
        &settings,
        cx.wait,
        &mut step,
    )
    .await;
    let result = match outcome {
        Err(failure) if failure.kind == FailureKind::HttpResponseHeaderSectionSize => {
            // Ask again with room to spare, to tell the operator how big the headers really are.
            step.header_bytes = measure_headers(addr, &path, &host, &settings).await;
            facts.header_bytes = step.header_bytes;
            Err(failure)
        }
        // A limit below hyper's smallest buffer (8 KiB), e.g. nginx's 4k proxy_buffer_size, is
        // checked on the size received.
        Ok(_)
            if step
                .header_bytes
                .is_some_and(|bytes| bytes > settings.max_response_header_size as u64) =>
        {
            facts.header_bytes = step.header_bytes;
            let mut failure = Failure::new(
                FailureKind::HttpResponseHeaderSectionSize,
                Phase::ReadingResponseHeaders,
                format!(
                    "response header section exceeds {} ({} bytes)",
                    cx.naming
                        .short(&cx.upstream.name, crate::naming::Key::MaxResponseHeaderSize),
                    settings.max_response_header_size
                ),
            );
            failure.params.header_section_size = step.header_bytes;
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
        report
            .warnings
            .extend(verdict::latency_warnings(&step, &settings, &facts));
    }
    report.http = Some(step);
    report
}

/// The pool's TLS client configuration cannot be built (a CA file that holds no usable CA, a
/// client key that does not fit): every request routed here would fail before connecting.
fn tls_config_failure(cx: &Context<'_>, why: &str) -> Failure {
    Failure::new(
        FailureKind::ProxyConfigurationError,
        Phase::Connecting,
        format!(
            "the TLS client configuration of upstream {} cannot be built: {why}",
            cx.upstream.name
        ),
    )
}

/// Learns more about a failed TLS handshake, for the verdict's words: the certificate and why
/// it failed (a second handshake that records it), or whether the port speaks plain HTTP.
async fn diagnose_tls(
    failure: &Failure,
    addr: SocketAddr,
    host: &str,
    cx: &Context<'_>,
    settings: &ConnSettings,
    diagnosis: &mut TlsDiagnosis,
) {
    // A second connection for a diagnosis gets the connect timeout, but at least a second: it
    // explains a failure already seen, and a loaded server should not make it fail as well.
    let patience = settings.connect_timeout.max(Duration::from_secs(1));
    match failure.kind {
        FailureKind::TlsCertificateError => {
            let roots = match &cx.upstream.tls.ca {
                Some(bundle) => {
                    let mut roots = RootCertStore::empty();
                    // The pool's configuration was built from the same certificates, so they
                    // are all usable; one that is not would only narrow the diagnosis.
                    let _ = roots.add_parsable_certificates(bundle.certs.iter().cloned());
                    roots
                }
                None => tls::cached_system_roots().clone(),
            };
            diagnosis.inspection =
                tlsdiag::inspect(addr, &diagnosis.server_name, Arc::new(roots), patience).await;
        }
        FailureKind::TlsProtocolError if !diagnosis.timed_out => {
            diagnosis.plain_http_status = tlsdiag::plain_http_status(addr, host, patience).await;
        }
        _ => {}
    }
}

/// A connection ready for the health request.
#[derive(Debug)]
struct Opened {
    /// The proxy's own connection: what the pool would hand a request (for HTTP/2, the first
    /// stream of a new connection).
    conn: Conn,
    /// From the start of the TCP connect to its end.
    connect_time: Duration,
    /// For TLS: what the handshake negotiated and how long it took.
    tls: Option<(tls::TlsFacts, Duration)>,
}

/// Why a connection could not be opened, and how far it got.
#[derive(Debug)]
struct OpenFailed {
    failure: Failure,
    /// Set when the TCP connect succeeded (the failure came later: TLS or the HTTP handshake).
    connect_time: Option<Duration>,
    /// The TLS handshake ran out of time, rather than failing.
    tls_timed_out: bool,
}

impl From<Failure> for OpenFailed {
    fn from(failure: Failure) -> Self {
        Self {
            failure,
            connect_time: None,
            tls_timed_out: false,
        }
    }
}

/// Opens a connection as the pool's `connect::connect(addr, settings, ConnMode::Pooled)` does,
/// with the proxy's own steps, one at a time so that each can be timed and a failure placed:
/// the TCP connect within `connect_timeout` (`connect::open`), for a TLS server the handshake
/// with the pool's client configuration for the server (offering `h2` when `http2`) within
/// `connect_timeout` again, then the HTTP handshake: HTTP/2 when `http2` and either cleartext
/// (prior knowledge, h2c) or the server chose `h2`, else HTTP/1.1.
async fn open(addr: SocketAddr, settings: &ServerSettings) -> Result<Opened, OpenFailed> {
    let want_h2 = settings.http2;
    // A bare `ConnSettings` reaches the address in cleartext: the TCP connect alone.
    let tcp = connect::open(addr, &settings.conn, false).await?;
    let connect_time = tcp.connect_time;
    let after_connect = |failure| OpenFailed {
        failure,
        connect_time: Some(connect_time),
        tls_timed_out: false,
    };
    let (transport, negotiated) = match (&settings.tls, tcp.transport) {
        (Some(target), Transport::Tcp(stream)) => {
            let handshake_started = Instant::now();
            let (transport, facts) = tls_handshake(stream, target, want_h2, settings)
                .await
                .map_err(|failure| OpenFailed {
                    failure,
                    connect_time: Some(connect_time),
                    tls_timed_out: handshake_started.elapsed() >= settings.connect_timeout,
                })?;
            let took = handshake_started.elapsed();
            (transport, Some((facts, took)))
        }
        (_, transport) => (transport, None),
    };
    let speak_h2 = want_h2
        && negotiated.as_ref().is_none_or(|(facts, _)| {
            facts
                .alpn
                .as_deref()
                .is_some_and(|p| p.as_bytes() == tls::ALPN_H2)
        });
    let tls_handshake = negotiated.as_ref().map(|(_, took)| *took);
    let conn = if speak_h2 {
        let (sender, driver) = connect::handshake_h2(transport, &settings.conn)
            .await
            .map_err(after_connect)?;
        // Requests carry `Host`, which becomes `:authority`; this is only the fallback.
        let authority = Authority::try_from(addr.to_string())
            .unwrap_or_else(|_| Authority::from_static("upstream"));
        Multiplexed::new(
            sender,
            addr,
            settings.tls.is_some(),
            authority,
            driver,
            tls_handshake,
        )
        .stream(false)
    } else {
        let (sender, stats) = connect::handshake(
            transport,
            settings.send_timeout,
            settings.max_response_header_size,
        )
        .await
        .map_err(after_connect)?;
        Conn::http1(sender, stats, addr, tls_handshake)
    };
    Ok(Opened {
        conn,
        connect_time,
        tls: negotiated,
    })
}

/// The TLS handshake of `connect::open`: the server's TLS name, the pool's client
/// configuration for the connection (offering `h2` when `want_h2`), within `connect_timeout`.
async fn tls_handshake(
    stream: tokio::net::TcpStream,
    target: &TlsTarget,
    want_h2: bool,
    settings: &ServerSettings,
) -> Result<(Transport, tls::TlsFacts), Failure> {
    let clients = target.clients.as_ref().map_err(|why| {
        Failure::new(
            FailureKind::ProxyConfigurationError,
            Phase::Connecting,
            format!("the upstream's TLS settings cannot be used: {why}"),
        )
    })?;
    tls::handshake(
        stream,
        &target.server_name,
        Arc::clone(clients.config(want_h2)),
        settings.connect_timeout,
    )
    .await
    .map(|(stream, facts)| (Transport::Tls(Box::new(stream)), facts))
}

/// One request on the new connection; returns the status, or the failure the proxy would see.
async fn exchange(
    conn: &mut Conn,
    path: &str,
    host: &str,
    tls_name: Option<&str>,
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
        // In TLS 1.3 a rejected client certificate shows up as an alert on the first read.
        tls_name
            .and_then(|name| tlsdiag::alert_after_handshake(&err, name))
            .unwrap_or_else(|| {
                classify::response_head_error(
                    &err,
                    HeadFacts {
                        response_bytes: conn.stats.read(),
                        reused: false,
                    },
                )
            })
    })?;
    step.first_byte_ms = Some(millis(sent.elapsed()));
    let status = response.status();
    step.status = Some(status.as_u16());
    step.header_bytes = Some(header_section_size(&response));
    step.keep_alive_timeout_s =
        gatehouse_proxy::upstream::idle::keep_alive_timeout(response.headers())
            .map(|timeout| timeout.as_secs());
    let chunked = classify::response_framing(response.headers())?;
    // Read as the proxy would forward it: each read within read_timeout, framing checked.
    let body = response.into_body();
    step.body_bytes =
        Some(drain_body(body, chunked, BODY_CHECK_LIMIT, settings.read_timeout, None).await?);
    Ok(status)
}

/// `GET path` with `Host: host`, as the proxy sends it: over HTTP/2 the connection's stream
/// makes the target absolute (`:scheme`, and `:authority` from `Host`). Over HTTP/1.1 it asks
/// for keep-alive as the proxy does, so the server says how long it keeps idle connections.
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
    settings: &ServerSettings,
) -> Option<u64> {
    let mut roomy = settings.clone();
    roomy.conn.max_response_header_size = MEASURE_HEADER_LIMIT;
    let mut conn = open(addr, &roomy).await.ok()?.conn;
    let request = health_request(path, host).ok()?;
    let response = tokio::time::timeout(roomy.response_timeout, conn.sender.send_request(request))
        .await
        .ok()?
        .ok()?;
    Some(header_section_size(&response))
}
