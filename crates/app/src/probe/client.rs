//! One probe: a request to one URL (and its redirects), each phase timed, every failure
//! classified with the proxy's own code (`gatehouse_proxy::failure`), so that `probe` says
//! `connection_refused` exactly where the proxy would.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use gatehouse_proxy::client_body::RequestBody;
use gatehouse_proxy::failure::classify::{self, HeadFacts};
use gatehouse_proxy::failure::decode::{self, CacheStatusEntry, ProxyStatusEntry};
use gatehouse_proxy::failure::{Failure, FailureKind, Phase};
use gatehouse_proxy::upstream::connect::{self, classify_connect_error};
use gatehouse_proxy::upstream::dns::Dns;
use gatehouse_proxy::upstream::io::ConnStats;
use gatehouse_proxy::upstream::tls;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use rustls::{ClientConfig, RootCertStore};
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::Instant;
use url::Url;

use super::tlsdiag::{self, CertProblem, CertificateInfo, TlsReport};

/// Response header fields worth showing: what the server is, what it sent, how long to wait
/// and how it may be cached.
const SHOWN_HEADERS: [HeaderName; 7] = [
    header::SERVER,
    header::CONTENT_TYPE,
    header::CONTENT_LENGTH,
    header::LOCATION,
    header::RETRY_AFTER,
    header::CACHE_CONTROL,
    header::AGE,
];

/// A probe's largest accepted response header section: generous, since probe reports on the
/// server rather than enforcing a proxy's limit.
const MAX_HEADER_SECTION: usize = 1024 * 1024;

/// What the user asked for, the same for every URL.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) method: Method,
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
    /// Bounds each request, from DNS to the end of the body.
    pub(crate) timeout: Duration,
    pub(crate) follow: bool,
    pub(crate) max_redirects: usize,
}

/// What every probe shares: the resolver and the TLS client configuration.
#[derive(Debug)]
pub(crate) struct Env {
    pub(crate) dns: Dns,
    pub(crate) tls: Arc<ClientConfig>,
    /// The trust roots `tls` verifies with, for a second look at a certificate that failed.
    pub(crate) roots: Arc<RootCertStore>,
    /// `--cacert`, when the roots came from a file rather than the system.
    pub(crate) cacert: Option<PathBuf>,
}

/// The result for one URL as given.
#[derive(Debug, Serialize)]
pub(crate) struct UrlReport {
    pub(crate) url: String,
    pub(crate) outcome: Outcome,
    /// Every request made, the last one answering for the URL.
    pub(crate) hops: Vec<Hop>,
    /// Something about the chain as a whole, e.g. a redirect loop.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) note: Option<String>,
}

/// How one URL fared, which decides the exit status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub(crate) enum Outcome {
    /// A final 2xx or 3xx.
    Ok { status: u16 },
    /// A final 4xx or 5xx.
    ErrorStatus { status: u16 },
    /// No usable response: the failure kind says why.
    Failed { kind: &'static str },
    /// The URL itself cannot be requested.
    Invalid { reason: String },
}

/// One request and its response.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Hop {
    pub(crate) url: String,
    pub(crate) method: String,
    /// The addresses the host name resolved to.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) resolved: Vec<IpAddr>,
    /// The address connected to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) address: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) reason: Option<&'static str>,
    pub(crate) timing: Timing,
    /// The negotiated TLS: `protocol`, `cipher`, `alpn`, the certificate's `subject`, `issuer`,
    /// `not_after` (Unix seconds), `expires` (RFC 3339) and `days_left`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) tls: Option<TlsReport>,
    /// The certificate the server presented when it failed verification: `subject`, `issuer`,
    /// `not_after`, `expires`, `days_left`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) certificate: Option<CertificateInfo>,
    /// The response header fields worth showing, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) headers: Vec<(String, String)>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) proxy_status: Vec<ProxyStatusEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) cache_status: Vec<CacheStatusEntry>,
    /// The status a HEAD request got before the probe retried with GET.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) head_rejected: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) body_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) failure: Option<ProbeFailure>,
    /// Things worth knowing that did not stop the request (an unparsable Proxy-Status, ...).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) warnings: Vec<String>,
}

/// Milliseconds per phase; `first_byte` and `total` count from the start of the request.
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub(crate) struct Timing {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) dns_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) connect_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) tls_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) first_byte_ms: Option<f64>,
    pub(crate) total_ms: f64,
}

/// A failure in the proxy's words: kind, the status a gateway would answer, phase, details, hint.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ProbeFailure {
    pub(crate) kind: &'static str,
    pub(crate) gateway_status: u16,
    pub(crate) phase: &'static str,
    pub(crate) details: String,
    /// What to do: the kind's generic hint, or a specific one where the probe found out more
    /// (which certificate expired when, that the port speaks plain HTTP, ...).
    pub(crate) hint: String,
}

impl From<&Failure> for ProbeFailure {
    fn from(failure: &Failure) -> Self {
        Self {
            kind: failure.kind.token(),
            gateway_status: failure.status().as_u16(),
            phase: failure.phase.describe(),
            details: failure.details.clone(),
            hint: failure.kind.hint().to_owned(),
        }
    }
}

/// A failed request: the proxy's classification, and a hint more specific than the kind's
/// when the probe could establish one.
#[derive(Debug)]
struct Failed {
    failure: Failure,
    hint: Option<String>,
}

impl From<Failure> for Failed {
    fn from(failure: Failure) -> Self {
        Self {
            failure,
            hint: None,
        }
    }
}

/// Probes one URL as given on the command line or in a list.
pub(crate) async fn probe(input: &str, options: &Options, env: &Env) -> UrlReport {
    let mut url = match parse_url(input) {
        Ok(url) => url,
        Err(reason) => {
            return UrlReport {
                url: input.to_owned(),
                outcome: Outcome::Invalid { reason },
                hops: Vec::new(),
                note: None,
            };
        }
    };
    let mut hops: Vec<Hop> = Vec::new();
    let mut note = None;
    loop {
        let mut hop = fetch(&url, &options.method, options, env).await;
        if options.method == Method::HEAD
            && let Some(status) = hop.status
            && head_rejected(status)
        {
            // Some servers refuse HEAD; the status of the page is what GET gets.
            hop = fetch(&url, &Method::GET, options, env).await;
            hop.head_rejected = Some(status);
        }
        let next = if options.follow {
            redirect_target(&url, &hop)
        } else {
            None
        };
        hops.push(hop);
        let Some(next) = next else { break };
        if !matches!(next.scheme(), "http" | "https") {
            note = Some(format!(
                "redirect to {next} not followed: not an http(s) URL"
            ));
            break;
        }
        if hops.len() > options.max_redirects {
            note = Some(format!(
                "stopped after {} redirects (--max-redirects)",
                options.max_redirects
            ));
            break;
        }
        if hops.iter().any(|h| h.url == next.as_str()) {
            note = Some(format!("redirect loop: {next} was already visited"));
            break;
        }
        url = next;
    }
    let outcome = hops.last().map_or(
        Outcome::Invalid {
            reason: "no request was made".to_owned(),
        },
        outcome_of,
    );
    UrlReport {
        url: input.to_owned(),
        outcome,
        hops,
        note,
    }
}

/// `example.com/x` means `http://example.com/x`, as curl reads it.
fn parse_url(input: &str) -> Result<Url, String> {
    let with_scheme = if has_scheme(input) {
        input.to_owned()
    } else {
        format!("http://{input}")
    };
    let url = Url::parse(&with_scheme).map_err(|e| format!("not a valid URL: {e}"))?;
    match url.scheme() {
        "http" | "https" => {}
        other => return Err(format!("unsupported scheme {other:?}: use http or https")),
    }
    if url.host().is_none() {
        return Err("the URL has no host".to_owned());
    }
    Ok(url)
}

/// Whether the text starts with `scheme://` (RFC 3986 §3.1: a letter, then letters, digits,
/// `+`, `-` or `.`), so that a URL in a query string does not count.
fn has_scheme(input: &str) -> bool {
    input.split_once("://").is_some_and(|(scheme, _)| {
        scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    })
}

/// 405 Method Not Allowed and 501 Not Implemented are how servers refuse HEAD.
fn head_rejected(status: u16) -> bool {
    matches!(status, 405 | 501)
}

fn redirect_target(url: &Url, hop: &Hop) -> Option<Url> {
    let status = StatusCode::from_u16(hop.status?).ok()?;
    if !status.is_redirection() || status == StatusCode::NOT_MODIFIED {
        return None;
    }
    let location = hop
        .headers
        .iter()
        .find(|(name, _)| name == header::LOCATION.as_str())?;
    url.join(&location.1).ok()
}

fn outcome_of(hop: &Hop) -> Outcome {
    if let Some(failure) = &hop.failure {
        return Outcome::Failed { kind: failure.kind };
    }
    match hop.status {
        Some(status) if status < 400 => Outcome::Ok { status },
        Some(status) => Outcome::ErrorStatus { status },
        None => Outcome::Invalid {
            reason: "no response".to_owned(),
        },
    }
}

/// One request on a new connection, within `options.timeout`.
async fn fetch(url: &Url, method: &Method, options: &Options, env: &Env) -> Hop {
    let started = Instant::now();
    let deadline = started + options.timeout;
    let mut hop = Hop {
        url: url.to_string(),
        method: method.to_string(),
        ..Hop::default()
    };
    let result = exchange(url, method, options, env, started, deadline, &mut hop).await;
    if let Err(failed) = result {
        let mut reported = ProbeFailure::from(&failed.failure);
        if let Some(hint) = failed.hint {
            reported.hint = hint;
        }
        hop.failure = Some(reported);
    }
    hop.timing.total_ms = millis(started.elapsed());
    hop
}

async fn exchange(
    url: &Url,
    method: &Method,
    options: &Options,
    env: &Env,
    started: Instant,
    deadline: Instant,
    hop: &mut Hop,
) -> Result<(), Failed> {
    let port = url.port_or_known_default().unwrap_or(80);
    let (host_name, addrs) = match url.host() {
        Some(url::Host::Ipv4(ip)) => (ip.to_string(), vec![IpAddr::V4(ip)]),
        Some(url::Host::Ipv6(ip)) => (ip.to_string(), vec![IpAddr::V6(ip)]),
        Some(url::Host::Domain(name)) => {
            let resolved = tokio::time::timeout_at(deadline, env.dns.resolve(name))
                .await
                .map_err(|_| out_of_time(Phase::Resolving, options.timeout))??;
            hop.timing.dns_ms = Some(millis(started.elapsed()));
            hop.resolved.clone_from(&resolved.addrs);
            (name.to_owned(), resolved.addrs)
        }
        None => {
            return Err(Failure::new(
                FailureKind::DnsError,
                Phase::Resolving,
                "the URL has no host",
            )
            .into());
        }
    };

    let connect_started = Instant::now();
    let (stream, addr) = connect_any(&addrs, port, deadline, options.timeout).await?;
    hop.address = Some(addr);
    hop.timing.connect_ms = Some(millis(connect_started.elapsed()));
    let _ = stream.set_nodelay(true);

    let exchanged = if url.scheme() == "https" {
        let tls_started = Instant::now();
        let left = deadline.saturating_duration_since(Instant::now());
        let (stream, facts) =
            match tls::handshake(stream, &host_name, Arc::clone(&env.tls), left).await {
                Ok(done) => done,
                Err(failure) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    let hint = tls_hint(&failure, url, addr, &host_name, env, hop, left).await;
                    return Err(Failed { failure, hint });
                }
            };
        hop.timing.tls_ms = Some(millis(tls_started.elapsed()));
        let now = SystemTime::now();
        let report = TlsReport::new(facts, now);
        hop.warnings.extend(report.expiry_warning(now));
        hop.tls = Some(report);
        http_exchange(stream, url, method, options, started, deadline, hop).await
    } else {
        http_exchange(stream, url, method, options, started, deadline, hop).await
    };
    exchanged.map_err(Failed::from)
}

/// A hint for a failed handshake more specific than the kind's: for a certificate, which one
/// and why (from a second handshake that records it); for a protocol error, whether the port
/// answers plain HTTP; for an alert, what it usually means.
async fn tls_hint(
    failure: &Failure,
    url: &Url,
    addr: SocketAddr,
    host_name: &str,
    env: &Env,
    hop: &mut Hop,
    left: Duration,
) -> Option<String> {
    match failure.kind {
        FailureKind::TlsCertificateError => {
            let inspection =
                tlsdiag::inspect(addr, host_name, Arc::clone(&env.roots), left).await?;
            hop.certificate.clone_from(&inspection.certificate);
            let problem = inspection.problem?;
            let words = problem.words(inspection.certificate.as_ref(), SystemTime::now());
            let action = match &problem {
                CertProblem::Expired { .. } => "the server must renew it".to_owned(),
                CertProblem::NotYetValid { .. } => {
                    "check the clocks (NTP) of this host and the server".to_owned()
                }
                CertProblem::UnknownIssuer => match &env.cacert {
                    Some(path) => format!(
                        "--cacert {} does not hold the CA that issued it",
                        path.display()
                    ),
                    None => "pass the issuing CA with --cacert FILE (probe trusts the system's roots only), or add it to the system's trust store".to_owned(),
                },
                CertProblem::WrongName { .. } => {
                    "use a URL with a name the certificate covers, or reissue the certificate for this name".to_owned()
                }
                CertProblem::WrongPurpose | CertProblem::Revoked | CertProblem::Other(_) => {
                    "the server needs a valid certificate".to_owned()
                }
            };
            Some(format!("{words} — {action}"))
        }
        FailureKind::TlsProtocolError => {
            let authority = &url[url::Position::BeforeHost..url::Position::AfterPort];
            let status = tlsdiag::plain_http_status(addr, authority, left).await?;
            Some(format!(
                "the port speaks plain HTTP, not TLS (it answered a plain HTTP request with {status}): use http://{authority}/ or the server's TLS port"
            ))
        }
        FailureKind::TlsAlertReceived => {
            let alert = failure.params.alert_message.as_deref()?;
            let meaning = tlsdiag::alert_meaning(alert)?;
            Some(match alert {
                "certificate_required" => {
                    format!(
                        "{meaning}; probe sends none: check the service with a client that has one"
                    )
                }
                _ => format!("the server sent {alert}: {meaning}"),
            })
        }
        _ => None,
    }
}

/// Tries each address in turn (as a browser does without happy eyeballs); the last failure
/// stands for all.
async fn connect_any(
    addrs: &[IpAddr],
    port: u16,
    deadline: Instant,
    timeout: Duration,
) -> Result<(TcpStream, SocketAddr), Failure> {
    let mut last = None;
    for ip in addrs {
        let addr = SocketAddr::new(*ip, port);
        match tokio::time::timeout_at(deadline, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => return Ok((stream, addr)),
            Ok(Err(err)) => last = Some(classify_connect_error(addr, &err)),
            Err(_) => {
                return Err(Failure::new(
                    FailureKind::ConnectionTimeout,
                    Phase::Connecting,
                    format!("connect to {addr} did not complete within {timeout:?}"),
                ));
            }
        }
    }
    Err(last.unwrap_or_else(|| {
        Failure::new(
            FailureKind::DnsError,
            Phase::Resolving,
            "the host has no addresses",
        )
    }))
}

async fn http_exchange<S>(
    stream: S,
    url: &Url,
    method: &Method,
    options: &Options,
    started: Instant,
    deadline: Instant,
    hop: &mut Hop,
) -> Result<(), Failure>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, stats) =
        connect::handshake(stream, options.timeout, MAX_HEADER_SECTION).await?;
    let request = build_request(url, method, &options.headers)?;
    let host = url.host_str().unwrap_or_default();
    let response = match tokio::time::timeout_at(deadline, sender.send_request(request)).await {
        Err(_) => {
            return Err(Failure::new(
                FailureKind::HttpResponseTimeout,
                Phase::ReadingResponseHeaders,
                format!(
                    "no complete response header section within the probe's timeout ({:?})",
                    options.timeout
                ),
            ));
        }
        Ok(Err(err)) => {
            return Err(tlsdiag::alert_after_handshake(&err, host)
                .unwrap_or_else(|| head_error(&err, &stats)));
        }
        Ok(Ok(response)) => response,
    };
    hop.timing.first_byte_ms = Some(millis(started.elapsed()));
    let status = response.status();
    hop.status = Some(status.as_u16());
    hop.reason = status.canonical_reason();
    describe_headers(response.headers(), hop);
    let chunked = classify::response_framing(response.headers())?;
    if *method != Method::HEAD {
        let body = response.into_body();
        hop.body_bytes =
            Some(drain_body(body, chunked, u64::MAX, options.timeout, Some(deadline)).await?);
    }
    Ok(())
}

fn head_error(err: &hyper::Error, stats: &ConnStats) -> Failure {
    classify::response_head_error(
        err,
        HeadFacts {
            response_bytes: stats.read(),
            reused: false,
        },
    )
}

fn build_request(
    url: &Url,
    method: &Method,
    extra: &[(HeaderName, HeaderValue)],
) -> Result<Request<RequestBody>, Failure> {
    let target = &url[url::Position::BeforePath..url::Position::AfterQuery];
    let authority = &url[url::Position::BeforeHost..url::Position::AfterPort];
    let invalid = |what: &str| {
        Failure::new(
            FailureKind::ProxyInternalError,
            Phase::SendingRequest,
            format!("cannot build the request: invalid {what}"),
        )
    };
    let mut request = Request::builder()
        .method(method.clone())
        .uri(if target.is_empty() { "/" } else { target })
        .body(RequestBody::empty())
        .map_err(|_| invalid("request target"))?;
    let headers = request.headers_mut();
    headers.insert(
        header::HOST,
        HeaderValue::from_str(authority).map_err(|_| invalid("host"))?,
    );
    headers.insert(
        header::USER_AGENT,
        HeaderValue::from_static(concat!("gatehouse-probe/", env!("CARGO_PKG_VERSION"))),
    );
    headers.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
    // A header given with -H replaces the default of that name; repeated, it is sent repeated.
    for (name, _) in extra {
        headers.remove(name);
    }
    for (name, value) in extra {
        headers.append(name.clone(), value.clone());
    }
    Ok(request)
}

fn describe_headers(headers: &HeaderMap, hop: &mut Hop) {
    for name in &SHOWN_HEADERS {
        for value in headers.get_all(name) {
            hop.headers.push((
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            ));
        }
    }
    let proxy_status = headers.get_all("proxy-status");
    if proxy_status.iter().next().is_some() {
        match decode::parse_proxy_status(proxy_status) {
            Ok(members) => hop.proxy_status = members,
            Err(why) => hop.warnings.push(format!(
                "Proxy-Status is not a valid structured field: {why}"
            )),
        }
    }
    let cache_status = headers.get_all("cache-status");
    if cache_status.iter().next().is_some() {
        match decode::parse_cache_status(cache_status) {
            Ok(members) => hop.cache_status = members,
            Err(why) => hop.warnings.push(format!(
                "Cache-Status is not a valid structured field: {why}"
            )),
        }
    }
}

/// Reads a response body to its end (or past `limit` bytes), so that framing errors and
/// truncation show; returns the bytes read. Each frame must come within `frame_timeout` and
/// before `deadline`; a stall is `connection_read_timeout`, the kind the proxy gives it.
pub(crate) async fn drain_body(
    mut body: Incoming,
    chunked: bool,
    limit: u64,
    frame_timeout: Duration,
    deadline: Option<Instant>,
) -> Result<u64, Failure> {
    let mut bytes = 0u64;
    while bytes <= limit {
        let mut by = Instant::now() + frame_timeout;
        if let Some(deadline) = deadline {
            by = by.min(deadline);
        }
        match tokio::time::timeout_at(by, body.frame()).await {
            Err(_) => {
                return Err(Failure::new(
                    FailureKind::ConnectionReadTimeout,
                    Phase::ReadingResponseBody,
                    format!(
                        "the response body stalled after {bytes} bytes (no data within {frame_timeout:?})"
                    ),
                ));
            }
            Ok(None) => break,
            Ok(Some(Err(err))) => return Err(classify::response_body_error(&err, chunked)),
            Ok(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    bytes += data.len() as u64;
                }
            }
        }
    }
    Ok(bytes)
}

fn out_of_time(phase: Phase, timeout: Duration) -> Failure {
    let kind = match phase {
        Phase::Resolving => FailureKind::DnsTimeout,
        _ => FailureKind::ConnectionTimeout,
    };
    Failure::new(
        kind,
        phase,
        format!("not done within the probe's timeout ({timeout:?})"),
    )
}

pub(crate) fn millis(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 10_000.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_without_a_scheme_are_http() {
        let url = parse_url("example.com/x?y=1").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(url.as_str(), "http://example.com/x?y=1");
        assert!(parse_url("ftp://example.com/").is_err());
        assert!(parse_url("http://").is_err());
        let with_query =
            parse_url("example.com/login?next=http://x/").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            with_query.as_str(),
            "http://example.com/login?next=http://x/"
        );
    }

    #[test]
    fn request_carries_origin_form_target_and_host() {
        let url = parse_url("http://example.com:8080/a/b?c=d").unwrap_or_else(|e| panic!("{e}"));
        let request = build_request(&url, &Method::HEAD, &[]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(request.uri(), "/a/b?c=d");
        assert_eq!(request.headers()[header::HOST], "example.com:8080");
        let root = parse_url("http://example.com").unwrap_or_else(|e| panic!("{e}"));
        let request = build_request(&root, &Method::GET, &[]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(request.uri(), "/");
        assert_eq!(request.headers()[header::HOST], "example.com");
    }

    #[test]
    fn user_headers_replace_defaults_and_may_repeat() {
        let url = parse_url("http://example.com/").unwrap_or_else(|e| panic!("{e}"));
        let extra = [
            (header::USER_AGENT, HeaderValue::from_static("seo-bot")),
            (
                HeaderName::from_static("x-a"),
                HeaderValue::from_static("1"),
            ),
            (
                HeaderName::from_static("x-a"),
                HeaderValue::from_static("2"),
            ),
        ];
        let request = build_request(&url, &Method::HEAD, &extra).unwrap_or_else(|e| panic!("{e}"));
        let agents: Vec<_> = request
            .headers()
            .get_all(header::USER_AGENT)
            .iter()
            .collect();
        assert_eq!(agents, ["seo-bot"]);
        let repeated: Vec<_> = request.headers().get_all("x-a").iter().collect();
        assert_eq!(repeated, ["1", "2"]);
    }

    #[test]
    fn relative_redirects_resolve_against_the_url() {
        let url = parse_url("http://example.com/a/b").unwrap_or_else(|e| panic!("{e}"));
        let hop = Hop {
            status: Some(301),
            headers: vec![("location".to_owned(), "../c".to_owned())],
            ..Hop::default()
        };
        assert_eq!(
            redirect_target(&url, &hop).map(|u| u.to_string()),
            Some("http://example.com/c".to_owned())
        );
        let not_modified = Hop {
            status: Some(304),
            headers: vec![("location".to_owned(), "/x".to_owned())],
            ..Hop::default()
        };
        assert_eq!(redirect_target(&url, &not_modified), None);
    }

    /// An https URL to a port that speaks plain HTTP fails the handshake as
    /// `tls_protocol_error`, the kind the proxy uses for the same mistake upstream.
    #[tokio::test]
    async fn https_to_a_plain_http_port_is_a_tls_protocol_error() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("bind: {e}"));
        let port = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("{e}"))
            .port();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut buf = [0u8; 2048];
                let _ = stream.read(&mut buf).await;
                let _ = stream
                    .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                    .await;
            }
        });
        let env = Env {
            dns: Dns::new(&gatehouse_config::DnsConfig {
                nameservers: Vec::new(),
                timeout: Duration::from_secs(2),
            }),
            tls: tls::client_config(rustls::RootCertStore::empty(), &[b"http/1.1"])
                .unwrap_or_else(|e| panic!("{e}")),
            roots: Arc::new(rustls::RootCertStore::empty()),
            cacert: None,
        };
        let options = Options {
            method: Method::HEAD,
            headers: Vec::new(),
            timeout: Duration::from_secs(5),
            follow: false,
            max_redirects: 10,
        };
        let report = probe(&format!("https://127.0.0.1:{port}/"), &options, &env).await;
        assert_eq!(
            report.outcome,
            Outcome::Failed {
                kind: "tls_protocol_error"
            }
        );
        let hop = &report.hops[0];
        assert!(hop.timing.connect_ms.is_some());
        assert!(hop.tls.is_none());
    }
}
