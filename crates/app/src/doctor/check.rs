//! Checking one `servers` entry the way the proxy would use it: resolve its name with the
//! proxy's resolver, connect with the proxy's `connect` (same timeout, same header-size limit),
//! for a TLS server do the handshake with the pool's client configuration, send one request to
//! the health path, and classify every failure with the proxy's own code.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use gatehouse_config::{UpstreamConfig, UpstreamServer};
use gatehouse_proxy::body::RequestBody;
use gatehouse_proxy::failure::classify::{self, HeadFacts};
use gatehouse_proxy::failure::{Failure, FailureKind, Phase};
use gatehouse_proxy::upstream::connect::{self, ConnMode, connect};
use gatehouse_proxy::upstream::dns::Dns;
use gatehouse_proxy::upstream::io::{ConnStats, UpstreamIo};
use gatehouse_proxy::upstream::server::{self, ConnSettings};
use gatehouse_proxy::upstream::tls;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::{ClientConfig, RootCertStore};
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::ports::{self, Listener};
use super::verdict::{self, Verdict};
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
    /// The pool's TLS client configuration, or why it cannot be built; `None` when no server
    /// of the upstream is reached over TLS.
    pub(crate) tls: Option<Result<Arc<ClientConfig>, String>>,
}

/// The ALPN protocols the pool offers: `h2` first when the upstream speaks HTTP/2.
pub(crate) fn alpn_offered(upstream: &UpstreamConfig) -> Vec<&'static [u8]> {
    if upstream.http2 {
        vec![b"h2", b"http/1.1"]
    } else {
        vec![b"http/1.1"]
    }
}

/// The pool's TLS client configuration, as the proxy builds it, when any server needs one.
pub(crate) fn pool_tls(upstream: &UpstreamConfig) -> Option<Result<Arc<ClientConfig>, String>> {
    upstream
        .servers
        .iter()
        .any(|s| s.tls)
        .then(|| tls::upstream_client_config(&upstream.tls, &alpn_offered(upstream)))
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
    pub(crate) header_bytes: Option<u64>,
    pub(crate) late_first_byte: Option<Duration>,
    pub(crate) waited: Duration,
    /// For a server reached over TLS: what the TLS verdicts' words draw on.
    pub(crate) tls: Option<TlsDiagnosis>,
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
    let settings = ConnSettings::from(cx.upstream);
    let transport = if entry.tls {
        let mut diagnosis = TlsDiagnosis::new(cx.upstream, &entry.address.host);
        let config = match &cx.tls {
            Some(Ok(config)) => Arc::clone(config),
            Some(Err(why)) => {
                diagnosis.config_error = Some(why.clone());
                facts.tls = Some(diagnosis);
                report.verdict = verdict::failed(&tls_config_failure(cx, why), &facts);
                return report;
            }
            None => {
                // pool_tls builds it whenever a server has `tls`; a missing one is a bug here.
                let why = "no TLS client configuration was built".to_owned();
                report.verdict = verdict::failed(&tls_config_failure(cx, &why), &facts);
                return report;
            }
        };
        let transport = Transport::Tls {
            config,
            server_name: diagnosis.server_name.clone(),
        };
        report.tls = Some(TlsStep {
            server_name: diagnosis.server_name.clone(),
            alpn_offered: diagnosis.alpn_offered.clone(),
            handshake_ms: None,
            negotiated: None,
            certificate: None,
        });
        facts.tls = Some(diagnosis);
        transport
    } else {
        Transport::Plain
    };
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

    let mut link = match open(addr, &settings, &transport).await {
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
            opened.link
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
        &mut link,
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
            step.header_bytes = measure_headers(addr, &path, &host, &settings, &transport).await;
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
        report
            .warnings
            .extend(verdict::latency_warnings(&step, &settings));
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

/// How a server is reached: as the pool would, in cleartext or over TLS with the pool's client
/// configuration and the name it sends and verifies.
#[derive(Debug, Clone)]
enum Transport {
    Plain,
    Tls {
        config: Arc<ClientConfig>,
        server_name: String,
    },
}

/// A connection ready for the health request.
#[derive(Debug)]
struct Opened {
    link: Link,
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

/// The request side of a connection.
#[derive(Debug)]
enum Link {
    /// The proxy's own connection (cleartext servers): what the pool would hand a request.
    Pooled(server::Conn),
    /// HTTP/1.1 over TLS.
    Http1(
        hyper::client::conn::http1::SendRequest<RequestBody>,
        Arc<ConnStats>,
    ),
    /// HTTP/2 over TLS, when the server chose `h2`.
    Http2(
        hyper::client::conn::http2::SendRequest<RequestBody>,
        Arc<ConnStats>,
    ),
}

type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<Response<Incoming>, hyper::Error>> + Send>>;

impl Link {
    fn send(&mut self, request: Request<RequestBody>) -> ResponseFuture {
        match self {
            Self::Pooled(conn) => Box::pin(conn.sender.send_request(request)),
            Self::Http1(sender, _) => Box::pin(sender.send_request(request)),
            Self::Http2(sender, _) => Box::pin(sender.send_request(request)),
        }
    }

    /// Response bytes received so far, which tells "closed before answering" from "cut off".
    fn response_bytes(&self) -> u64 {
        match self {
            Self::Pooled(conn) => conn.stats.read(),
            Self::Http1(_, stats) | Self::Http2(_, stats) => stats.read(),
        }
    }

    fn is_http2(&self) -> bool {
        matches!(self, Self::Http2(..))
    }
}

/// Opens a connection as the pool would: the proxy's `connect` for a cleartext server; for a
/// TLS server the TCP connect within `connect_timeout`, the handshake with the pool's client
/// configuration within `connect_timeout` again, then HTTP/2 if the server chose `h2`, else
/// HTTP/1.1, over the TLS stream.
async fn open(
    addr: SocketAddr,
    settings: &ConnSettings,
    transport: &Transport,
) -> Result<Opened, OpenFailed> {
    let (config, server_name) = match transport {
        Transport::Plain => {
            let (conn, connect_time) = connect(addr, settings, ConnMode::Pooled).await?;
            return Ok(Opened {
                link: Link::Pooled(conn),
                connect_time,
                tls: None,
            });
        }
        Transport::Tls {
            config,
            server_name,
        } => (config, server_name),
    };
    let started = Instant::now();
    let stream =
        match tokio::time::timeout(settings.connect_timeout, TcpStream::connect(addr)).await {
            Err(_) => {
                return Err(Failure::new(
                    FailureKind::ConnectionTimeout,
                    Phase::Connecting,
                    format!(
                        "connect to {addr} did not complete within {:?}",
                        settings.connect_timeout
                    ),
                )
                .into());
            }
            Ok(Err(err)) => return Err(connect::classify_connect_error(addr, &err).into()),
            Ok(Ok(stream)) => stream,
        };
    let connect_time = started.elapsed();
    // Small writes (request heads) must not wait for Nagle, as in the proxy's connect.
    let _ = stream.set_nodelay(true);
    let handshake_started = Instant::now();
    let (stream, negotiated) = tls::handshake(
        stream,
        server_name,
        Arc::clone(config),
        settings.connect_timeout,
    )
    .await
    .map_err(|failure| OpenFailed {
        failure,
        connect_time: Some(connect_time),
        tls_timed_out: handshake_started.elapsed() >= settings.connect_timeout,
    })?;
    let took = handshake_started.elapsed();
    let h2 = negotiated.alpn.as_deref() == Some("h2");
    let link = if h2 {
        handshake_h2(stream, settings).await
    } else {
        connect::handshake(
            stream,
            settings.send_timeout,
            settings.max_response_header_size,
        )
        .await
        .map(|(sender, stats)| Link::Http1(sender, stats))
    }
    .map_err(|failure| OpenFailed {
        failure,
        connect_time: Some(connect_time),
        tls_timed_out: false,
    })?;
    Ok(Opened {
        link,
        connect_time,
        tls: Some((negotiated, took)),
    })
}

/// An HTTP/2 client connection over a connected stream, its connection task spawned.
async fn handshake_h2<S>(stream: S, settings: &ConnSettings) -> Result<Link, Failure>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (io, stats) = UpstreamIo::new(stream, settings.send_timeout);
    let mut builder = hyper::client::conn::http2::Builder::new(TokioExecutor::new());
    builder
        .max_header_list_size(u32::try_from(settings.max_response_header_size).unwrap_or(u32::MAX));
    let (sender, connection) = builder
        .handshake::<_, RequestBody>(TokioIo::new(io))
        .await
        .map_err(|err| {
            Failure::new(
                FailureKind::ConnectionTerminated,
                Phase::Connecting,
                format!("the HTTP/2 connection preface could not be sent: {err}"),
            )
        })?;
    tokio::spawn(async move {
        // Errors surface to the request through its response or body.
        let _ = connection.await;
    });
    Ok(Link::Http2(sender, stats))
}

/// One request on the new connection; returns the status, or the failure the proxy would see.
async fn exchange(
    link: &mut Link,
    path: &str,
    host: &str,
    tls_name: Option<&str>,
    settings: &ConnSettings,
    wait: Duration,
    step: &mut HttpStep,
) -> Result<StatusCode, Failure> {
    let request = health_request(path, host, link.is_http2())?;
    let sent = Instant::now();
    let mut send = link.send(request);
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
                        response_bytes: link.response_bytes(),
                        reused: false,
                    },
                )
            })
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

/// `GET path` with `Host: host`; over HTTP/2 the target is absolute (`:scheme` and
/// `:authority` come from it) and there is no `Connection` header.
fn health_request(path: &str, host: &str, http2: bool) -> Result<Request<RequestBody>, Failure> {
    let target = if http2 {
        format!("https://{host}{path}")
    } else {
        path.to_owned()
    };
    let mut request = Request::new(RequestBody::empty());
    *request.method_mut() = Method::GET;
    *request.uri_mut() = target.parse().map_err(|_| {
        Failure::new(
            FailureKind::ProxyConfigurationError,
            Phase::SendingRequest,
            format!("{path:?} is not a valid request path"),
        )
    })?;
    let headers = request.headers_mut();
    if !http2 && let Ok(host) = HeaderValue::from_str(host) {
        headers.insert(header::HOST, host);
    }
    headers.insert(
        header::USER_AGENT,
        HeaderValue::from_static(concat!("gatehouse-doctor/", env!("CARGO_PKG_VERSION"))),
    );
    if !http2 {
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
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
    transport: &Transport,
) -> Option<u64> {
    let mut roomy = settings.clone();
    roomy.max_response_header_size = MEASURE_HEADER_LIMIT;
    let mut link = open(addr, &roomy, transport).await.ok()?.link;
    let request = health_request(path, host, link.is_http2()).ok()?;
    let response = tokio::time::timeout(roomy.response_timeout, link.send(request))
        .await
        .ok()?
        .ok()?;
    Some(header_section_size(&response))
}
