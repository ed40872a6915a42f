//! One connection and one request as the proxy makes them: the TCP connect, the TLS
//! handshake and the HTTP handshake, each timed and each failure placed, then the health
//! request and the measure of the response head.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use gatehouse_proxy::client_body::RequestBody;
use gatehouse_proxy::failure::classify::{self, HeadFacts};
use gatehouse_proxy::failure::{Failure, FailureKind, Phase};
use gatehouse_proxy::upstream::conn::Conn;
use gatehouse_proxy::upstream::connect;
use gatehouse_proxy::upstream::h2::Multiplexed;
use gatehouse_proxy::upstream::io::Transport;
use gatehouse_proxy::upstream::server::{ConnSettings, ServerSettings, TlsTarget};
use gatehouse_proxy::upstream::tls;
use http::header::{self, HeaderValue};
use http::uri::Authority;
use http::{Method, Request, StatusCode};
use hyper::body::Incoming;
use tokio::time::Instant;

use super::HttpStep;
use crate::probe::tlsdiag;
use crate::probe::{drain_body, millis};

/// Body bytes read to check the response's framing; a larger body is not read to its end.
const BODY_CHECK_LIMIT: u64 = 1024 * 1024;
/// The header limit used to measure a header section the proxy's own limit refused.
const MEASURE_HEADER_LIMIT: usize = 4 * 1024 * 1024;

/// A connection ready for the health request.
#[derive(Debug)]
pub(super) struct Opened {
    /// The proxy's own connection: what the pool would hand a request (for HTTP/2, the first
    /// stream of a new connection).
    pub(super) conn: Conn,
    /// From the start of the TCP connect to its end.
    pub(super) connect_time: Duration,
    /// For TLS: what the handshake negotiated and how long it took.
    pub(super) tls: Option<(tls::TlsFacts, Duration)>,
}

/// Why a connection could not be opened, and how far it got.
#[derive(Debug)]
pub(super) struct OpenFailed {
    pub(super) failure: Failure,
    /// Set when the TCP connect succeeded (the failure came later: TLS or the HTTP handshake).
    pub(super) connect_time: Option<Duration>,
    /// The TLS handshake ran out of time, rather than failing.
    pub(super) tls_timed_out: bool,
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
pub(super) async fn open(
    addr: SocketAddr,
    settings: &ServerSettings,
) -> Result<Opened, OpenFailed> {
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
pub(super) async fn exchange(
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
    let Some(send) = conn.sender.send_request(request) else {
        return Err(hyper_only());
    };
    let mut send = std::pin::pin!(send);
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

/// The doctor's connections are hyper's (it reads the reason phrase and TLS alerts from it);
/// this is what a connection of the proxy's own client would say.
fn hyper_only() -> Failure {
    Failure::new(
        FailureKind::ProxyInternalError,
        Phase::SendingRequest,
        "the doctor's check needs a connection driven by hyper",
    )
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
pub(super) async fn measure_headers(
    addr: SocketAddr,
    path: &str,
    host: &str,
    settings: &ServerSettings,
) -> Option<u64> {
    let mut roomy = settings.clone();
    roomy.conn.max_response_header_size = MEASURE_HEADER_LIMIT;
    let mut conn = open(addr, &roomy).await.ok()?.conn;
    let request = health_request(path, host).ok()?;
    let response = tokio::time::timeout(roomy.response_timeout, conn.sender.send_request(request)?)
        .await
        .ok()?
        .ok()?;
    Some(header_section_size(&response))
}
