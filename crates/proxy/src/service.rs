//! The request pipeline, as named phases in plain code:
//! check the request → route → pick a server → attempt (connect, send, read the head) →
//! respond (forward the upstream's response, or render the failure) → log.
//!
//! Every failure on the way becomes one [`Failure`], answered in one place ([`Pipeline::fail`]).
//! The access record is emitted when the response is finished: here for generated responses,
//! by the response body ([`UpstreamBody`]) for proxied ones.

use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::body::{Finish, ProxyBody, RequestBody, UpstreamBody};
use crate::client_io::ClientActivity;
use crate::failure::classify::{self, HeadFacts};
use crate::failure::{Failure, FailureKind, Phase};
use crate::forward;
use crate::observe::access_log::{AccessRecord, AttemptContext, log_failure};
use crate::respond::{self, ErrorContext};
use crate::router::request_host;
use crate::snapshot::{Snapshot, Upstream};
use crate::upstream::connect::connect;
use crate::upstream::pool::{Conn, Server};

/// Handles one request. Never fails: every error becomes a response here.
pub async fn handle(
    snapshot: Arc<Snapshot>,
    client: SocketAddr,
    activity: &ClientActivity,
    req: Request<Incoming>,
) -> Response<ProxyBody> {
    let request_id = request_id(req.headers());
    let access_log = snapshot.config.server.access_log;
    // The target is copied only when it will be logged.
    let target = match req.uri().path_and_query() {
        Some(pq) if access_log => pq.to_string(),
        _ if access_log => req.uri().to_string(),
        _ => String::new(),
    };
    let record = AccessRecord::new(
        access_log,
        client,
        request_id.clone(),
        req.method().clone(),
        target,
    );
    let accept = req.headers().get(header::ACCEPT).cloned();
    let mut pipeline = Pipeline {
        snapshot: &snapshot,
        client,
        request_id,
        record,
        accept,
    };
    pipeline.run(req, activity).await
}

struct Pipeline<'a> {
    snapshot: &'a Snapshot,
    client: SocketAddr,
    request_id: Arc<str>,
    record: AccessRecord,
    /// The client's `Accept`, kept for rendering an error after the request went upstream.
    accept: Option<HeaderValue>,
}

/// The response head and connection of a successful attempt.
struct Attempt {
    response: Response<Incoming>,
    conn: Conn,
}

impl Pipeline<'_> {
    async fn run(
        &mut self,
        req: Request<Incoming>,
        activity: &ClientActivity,
    ) -> Response<ProxyBody> {
        #[cfg(feature = "test-hooks")]
        if req.headers().contains_key("x-gatehouse-test-panic") {
            panic!("panic requested by the x-gatehouse-test-panic test hook");
        }
        let (mut parts, body) = req.into_parts();
        let head_only = parts.method == Method::HEAD;

        // --- check the request ---
        if let Err(failure) = self.check_request(&parts, activity) {
            return self.fail(&failure, head_only, None);
        }

        // --- route ---
        let host = request_host(&parts);
        let Some(routed) = self
            .snapshot
            .router
            .route(host.as_deref(), parts.uri.path())
        else {
            let failure = Failure::new(
                FailureKind::DestinationNotFound,
                Phase::Routing,
                format!(
                    "no route for host {} path {}",
                    host.as_deref().unwrap_or("(none)"),
                    parts.uri.path()
                ),
            );
            return self.fail(&failure, head_only, None);
        };
        self.record.route = Some(Arc::clone(routed.label));
        let upstream = &self.snapshot.upstreams[routed.upstream];
        let Some(server) = upstream.pick() else {
            let failure = Failure::new(
                FailureKind::ProxyConfigurationError,
                Phase::Routing,
                format!(
                    "route {} names upstream {} which has no servers",
                    routed.label, upstream.name
                ),
            );
            return self.fail(&failure, head_only, None);
        };
        let server = Arc::clone(server);
        self.record.upstream = Some(server.label.as_str().into());

        // --- prepare the upstream request ---
        let request_id = HeaderValue::from_str(&self.request_id)
            .unwrap_or_else(|_| HeaderValue::from_static("-"));
        let host_header = parts.headers.get(header::HOST).cloned();
        forward::request_headers(
            &mut parts.headers,
            &forward::Hop {
                client_ip: &activity.client_ip,
                via: &self.snapshot.via,
                request_id: &request_id,
                host: host_header.as_ref(),
            },
        );
        if let Some(authority) = parts.uri.authority().cloned() {
            // Absolute-form (RFC 9112 §3.2.2) is for proxies; origin servers get origin-form,
            // with the authority as Host when the client sent none.
            let origin_form = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
            parts.uri = Uri::try_from(origin_form).unwrap_or_else(|_| Uri::from_static("/"));
            if host_header.is_none()
                && let Ok(authority) = HeaderValue::from_str(authority.as_str())
            {
                parts.headers.insert(header::HOST, authority);
            }
        }
        parts.version = Version::HTTP_11;
        let (body, sent) = if body_is_empty(&body) {
            (RequestBody::empty(), None)
        } else {
            let (body, sent) =
                RequestBody::streaming(body, self.snapshot.config.server.client_header_timeout);
            (body, Some(sent))
        };
        let upstream_request = Request::from_parts(parts, body);

        // --- attempt ---
        self.record.attempts = 1;
        match self
            .attempt(upstream, &server, upstream_request, sent)
            .await
        {
            Ok(attempt) => self.respond(upstream, server, attempt, head_only),
            Err((failure, request_sent)) => {
                log_failure(
                    &failure,
                    &AttemptContext {
                        request_id: &self.request_id,
                        pool: Some(&upstream.name),
                        server: Some(&server.label),
                        attempt: self.record.attempts,
                        request_sent,
                    },
                );
                self.fail(&failure, head_only, Some(&server.label))
            }
        }
    }

    /// Limits gatehouse applies itself, answered with the fitting 4xx (hyper answers only what it
    /// cannot parse at all), and loop detection.
    fn check_request(
        &self,
        parts: &http::request::Parts,
        activity: &ClientActivity,
    ) -> Result<(), Failure> {
        let limits = &self.snapshot.config.server;
        let target_len = parts.uri.path_and_query().map_or(0, |pq| pq.as_str().len());
        if target_len > limits.max_uri_length {
            return Err(Failure::client(
                StatusCode::URI_TOO_LONG,
                format!(
                    "request target is {target_len} bytes; max_uri_length is {}",
                    limits.max_uri_length
                ),
            ));
        }
        let header_size: usize = parts
            .headers
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 4)
            .sum();
        if header_size > limits.max_request_header_size {
            return Err(Failure::client(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                format!(
                    "request header section is {header_size} bytes; max_request_header_size is {}",
                    limits.max_request_header_size
                ),
            ));
        }
        // RFC 9112 §3.2: a server MUST answer 400 to an HTTP/1.1 request without exactly one Host.
        let hosts = parts.headers.get_all(header::HOST).iter().count();
        if parts.version == Version::HTTP_11 && hosts != 1 {
            return Err(Failure::client(
                StatusCode::BAD_REQUEST,
                if hosts == 0 {
                    "HTTP/1.1 request without a Host header"
                } else {
                    "request with several Host headers"
                },
            ));
        }
        // RFC 9112 §6.1: gatehouse decodes only chunked; a request with any other transfer
        // coding cannot be forwarded faithfully once Transfer-Encoding (hop-by-hop) is removed.
        if let Some(coding) = parts
            .headers
            .get_all(header::TRANSFER_ENCODING)
            .iter()
            .flat_map(|v| v.to_str().unwrap_or("?").split(','))
            .map(str::trim)
            .find(|c| !c.eq_ignore_ascii_case("chunked"))
        {
            let mut failure = Failure::client(
                StatusCode::NOT_IMPLEMENTED,
                format!(
                    "request uses transfer coding {coding:?}, which gatehouse does not implement"
                ),
            );
            failure.params.coding = Some(coding.to_ascii_lowercase());
            return Err(failure);
        }
        // RFC 9112 §6.1: both framings at once is a smuggling vector; refuse, never forward.
        if parts.headers.contains_key(header::TRANSFER_ENCODING) && activity.head_has_te_and_cl() {
            return Err(Failure::client(
                StatusCode::BAD_REQUEST,
                "request has both Transfer-Encoding and Content-Length (RFC 9112 §6.1)",
            ));
        }
        if forward::has_looped(&parts.headers, &limits.name) {
            return Err(Failure::new(
                FailureKind::ProxyLoopDetected,
                Phase::Routing,
                format!("the request already carries Via: 1.1 {}", limits.name),
            ));
        }
        Ok(())
    }

    /// One attempt against one server: a pooled or new connection, the request sent, the
    /// response head read, each phase bounded by its own timeout.
    async fn attempt(
        &mut self,
        upstream: &Upstream,
        server: &Arc<Server>,
        request: Request<RequestBody>,
        sent: Option<oneshot::Receiver<()>>,
    ) -> Result<Attempt, (Failure, bool)> {
        let mut conn = match server.checkout().await {
            Some(conn) => conn,
            None => {
                let (conn, timing) = connect(server, &self.snapshot.dns)
                    .await
                    .map_err(|f| (f, false))?;
                self.record.connect = Some(timing.connect);
                conn
            }
        };
        let read_before = conn.stats.read();
        let written_before = conn.stats.written();
        let response_timeout = upstream.settings.response_timeout;
        let result = {
            let mut send = pin!(conn.sender.send_request(request));
            let mut early = None;
            if let Some(sent) = sent {
                // The response timeout starts once the whole request was handed over; an
                // upstream may also answer early (e.g. 413) before the body is complete.
                tokio::select! {
                    biased;
                    result = &mut send => early = Some(result),
                    _ = sent => {}
                }
            }
            match early {
                Some(result) => Some(result),
                None => tokio::time::timeout(response_timeout, send).await.ok(),
            }
        };
        let request_sent = conn.stats.written() > written_before;
        match result {
            Some(Ok(response)) => {
                self.record.first_byte = Some(self.record.started.elapsed());
                Ok(Attempt { response, conn })
            }
            Some(Err(err)) => {
                let facts = HeadFacts {
                    response_bytes: conn.stats.read() - read_before,
                    reused: conn.reused,
                };
                Err((classify::response_head_error(&err, facts), request_sent))
            }
            None => Err((
                Failure::new(
                    FailureKind::HttpResponseTimeout,
                    Phase::ReadingResponseHeaders,
                    format!(
                        "no complete response header section within response_timeout ({response_timeout:?})"
                    ),
                ),
                request_sent,
            )),
        }
    }

    /// Forwards the upstream's response: hop-by-hop fields removed, framing checked, our
    /// Proxy-Status member appended to an upstream 5xx, the body streamed.
    fn respond(
        &mut self,
        upstream: &Upstream,
        server: Arc<Server>,
        attempt: Attempt,
        head_only: bool,
    ) -> Response<ProxyBody> {
        let Attempt { response, conn } = attempt;
        let (mut parts, body) = response.into_parts();
        let chunked = match check_framing(&parts.headers) {
            Ok(chunked) => chunked,
            Err(failure) => {
                log_failure(
                    &failure,
                    &AttemptContext {
                        request_id: &self.request_id,
                        pool: Some(&upstream.name),
                        server: Some(&server.label),
                        attempt: self.record.attempts,
                        request_sent: true,
                    },
                );
                self.record.upstream_status = Some(parts.status.as_u16());
                // The connection's framing is unknown now; it is closed, never reused.
                drop(conn);
                return self.fail(&failure, head_only, Some(&server.label));
            }
        };
        forward::strip_hop_by_hop(&mut parts.headers);
        let status = parts.status;
        if status.is_server_error()
            && let Some(member) = self
                .snapshot
                .proxy_status
                .for_received_status(status.as_u16(), &server.label)
        {
            parts.headers.append("proxy-status", member);
        }
        if let Ok(id) = HeaderValue::from_str(&self.request_id) {
            parts.headers.insert(forward::X_REQUEST_ID, id);
        }
        parts.version = Version::HTTP_11;
        self.record.status = status.as_u16();
        self.record.upstream_status = Some(status.as_u16());
        let record = self.take_record();
        let finish = Finish {
            record,
            conn,
            server,
            pool: Arc::clone(&upstream.name),
            chunked,
        };
        let body = UpstreamBody::new(body, upstream.settings.read_timeout, finish);
        Response::from_parts(parts, ProxyBody::Upstream(body))
    }

    /// Takes the access record out of the pipeline, to be emitted by whoever finishes the response.
    fn take_record(&mut self) -> AccessRecord {
        let placeholder = AccessRecord::new(
            false,
            self.client,
            Arc::clone(&self.request_id),
            Method::GET,
            String::new(),
        );
        std::mem::replace(&mut self.record, placeholder)
    }

    /// The one place a failure becomes a response (and, for generated responses, the access
    /// record is written).
    fn fail(
        &mut self,
        failure: &Failure,
        head_only: bool,
        next_hop: Option<&str>,
    ) -> Response<ProxyBody> {
        if self.record.attempts == 0 {
            // Failures before any attempt (routing, request checks) have not been logged yet.
            log_failure(
                failure,
                &AttemptContext::before_any_attempt(&self.request_id),
            );
        }
        let response = respond::render(
            failure,
            &ErrorContext {
                request_id: &self.request_id,
                accept: self.accept.as_ref(),
                head_only,
                next_hop,
                proxy_status: &self.snapshot.proxy_status,
            },
        );
        let mut record = self.take_record();
        record.status = response.status().as_u16();
        record.failure = Some(failure.kind.token());
        record.emit();
        response
    }
}

/// Checks the response's message framing before forwarding it. Returns whether it is chunked.
///
/// RFC 9112 §6.1: gatehouse decodes only `chunked`; any other transfer coding cannot be
/// forwarded faithfully once the hop-by-hop `Transfer-Encoding` is removed. §6.3: a response
/// with both Transfer-Encoding and Content-Length "ought to be handled as an error" (it is a
/// response-splitting vector), so it is refused rather than guessed at.
fn check_framing(headers: &http::HeaderMap) -> Result<bool, Failure> {
    let mut chunked = false;
    for value in headers.get_all(header::TRANSFER_ENCODING) {
        for coding in value
            .to_str()
            .unwrap_or("?")
            .split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
        {
            if coding.eq_ignore_ascii_case("chunked") {
                chunked = true;
            } else {
                let mut failure = Failure::new(
                    FailureKind::HttpResponseTransferCoding,
                    Phase::ReadingResponseHeaders,
                    format!(
                        "response uses transfer coding {coding:?}, which gatehouse cannot decode"
                    ),
                );
                failure.params.coding = Some(coding.to_ascii_lowercase());
                return Err(failure);
            }
        }
    }
    if chunked && headers.contains_key(header::CONTENT_LENGTH) {
        return Err(Failure::new(
            FailureKind::HttpProtocolError,
            Phase::ReadingResponseHeaders,
            "response has both Transfer-Encoding and Content-Length (RFC 9112 §6.3)",
        ));
    }
    Ok(chunked)
}

fn body_is_empty(body: &Incoming) -> bool {
    http_body::Body::is_end_stream(body)
}

/// The client's `X-Request-Id` when it is a sane token (1-128 of `A-Za-z0-9._:-`), else a new one.
fn request_id(headers: &http::HeaderMap) -> Arc<str> {
    if let Some(id) = headers.get("x-request-id").and_then(|v| v.to_str().ok()) {
        let valid = !id.is_empty()
            && id.len() <= 128
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
        if valid {
            return id.into();
        }
    }
    new_request_id().into()
}

/// 16 hex digits: a per-process random seed mixed with a counter (splitmix64), so ids are
/// unique within a process and unpredictable across processes without a syscall per request.
pub fn new_request_id() -> String {
    use std::hash::{BuildHasher, RandomState};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let seed = *SEED.get_or_init(|| RandomState::new().hash_one(Instant::now()));
    let mut z = seed.wrapping_add(
        COUNTER
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15),
    );
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    format!("{z:016x}")
}
