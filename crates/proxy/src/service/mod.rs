//! The request pipeline, as named phases in plain code:
//! check the request → route → pick a server → attempt (connect, send, read the head) →
//! respond (forward the upstream's response, or render the failure) → log.
//!
//! Every failure on the way becomes one [`Failure`], answered in one place ([`Pipeline::fail`]).
//! The access record is emitted when the response is finished: here for generated responses,
//! by the response body ([`UpstreamBody`]) for proxied ones, and here when a `101` switches
//! protocols (the tunnel that follows logs its own end, see [`crate::tunnel`]).
//!
//! An upgrade request (HTTP/1.1 `Connection: upgrade` plus `Upgrade`, e.g. WebSocket) takes the
//! same path with three differences: it goes over a new connection of its own, never a pooled
//! one; it is not retried once sent and bypasses the cache; and an accepting `101` becomes a
//! tunnel instead of a streamed body.

use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use gatehouse_config::HashKey;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::body::{Finish, ProxyBody, UpstreamBody};
use crate::client_body::{ClientBody, ClientUpgrade, RequestBody};
use crate::client_io::ClientActivity;
use crate::failure::classify::{self, HeadFacts};
use crate::failure::{Failure, FailureKind, Phase, RetryRule};
use crate::forward;
use crate::observe::access_log::{AccessRecord, AttemptContext};
use crate::respond::{self, ErrorContext};
use crate::router::request_host;
use crate::snapshot::Snapshot;
use crate::tunnel::{self, Tunnel};
use crate::upstream::balance::stable_hash;
use crate::upstream::connect::{ConnMode, connect};
use crate::upstream::pool::{Members, NoServer, Pool};
use crate::upstream::server::{Conn, Lease, Server};

mod caching;

use caching::{CacheRequest, OriginFailed};

/// Handles one request. Never fails: every error becomes a response here.
pub async fn handle(
    snapshot: Arc<Snapshot>,
    client: SocketAddr,
    activity: &ClientActivity,
    req: Request<ClientBody>,
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
    )
    .with_request_facts(&snapshot.observer.access, &req);
    let accept = req.headers().get(header::ACCEPT).cloned();
    let mut pipeline = Pipeline {
        snapshot: &snapshot,
        client,
        request_id,
        record,
        accept,
        cache: None,
        robots_host: None,
        robots_learn: false,
        upgrade: None,
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
    /// The cache's view of the request, on a route with `[route.cache]`.
    cache: Option<CacheRequest>,
    /// The host of a `/robots.txt` request (the robots.txt guard keeps one copy per host).
    robots_host: Option<String>,
    /// The robots.txt guard may learn from this request's response.
    robots_learn: bool,
    /// The request asks to switch protocols (WebSocket), until its response decides.
    upgrade: Option<UpgradeRequest>,
}

/// What an upgrade request needs once the upstream has answered.
struct UpgradeRequest {
    /// The client's side of the connection, handed over by hyper after a 101 is written.
    client: ClientUpgrade,
    /// The `Upgrade` value forwarded (what the client asked for, `h2c` left out).
    protocols: HeaderValue,
}

/// Kept-alive connections found closed before the request was written that a request may
/// step over without using up one of its `attempts` (each was the connection's fault, not the
/// server's; after that they count like any failure).
const MAX_STALE_RETRIES: u32 = 2;
/// How long past the DNS timeout a request waits for a pool's first resolution at startup.
const MEMBERS_WAIT_SLACK: Duration = Duration::from_millis(500);
/// Request bodies up to this size (declared by Content-Length) are read before the first
/// attempt when the request may be retried, so that another server can get them too.
const REPLAY_BUFFER: u64 = 64 * 1024;

/// The response head and connection of a successful attempt.
struct Attempt {
    response: Response<Incoming>,
    conn: Conn,
}

/// A failed attempt and what the retry decision needs to know about it.
struct AttemptFailure {
    failure: Failure,
    /// Some byte of the request was written to the server (it may have acted on it).
    request_sent: bool,
    /// Bytes of a response that had arrived.
    response_bytes: u64,
    /// A kept-alive connection closed before the request was written: the connection was
    /// stale, which says nothing about the server (it may be tried again, on a new one).
    stale_connection: bool,
    /// The request, when the attempt failed before it was handed over (connect failed, or
    /// hyper gave it back unsent).
    unsent: Option<(Request<RequestBody>, Option<oneshot::Receiver<()>>)>,
}

/// The request as it is forwarded, kept so that it can be sent to another server.
struct Outgoing {
    parts: http::request::Parts,
    body: OutgoingBody,
    /// Whether a later attempt may need the head again (else the first attempt takes it).
    keep_copy: bool,
}

enum OutgoingBody {
    /// No body, or one read completely: it can be sent any number of times.
    Full(Bytes),
    /// The client's body streams through; it can be sent once, unless it comes back unsent.
    Streaming(Option<(RequestBody, oneshot::Receiver<()>)>),
}

impl Outgoing {
    /// Whether another attempt can have the request.
    fn can_take(&self) -> bool {
        match &self.body {
            OutgoingBody::Full(_) => true,
            OutgoingBody::Streaming(body) => body.is_some(),
        }
    }

    /// The request for the next attempt, or `None` when its body was spent on an earlier one.
    fn take(&mut self) -> Option<(Request<RequestBody>, Option<oneshot::Receiver<()>>)> {
        let (body, sent) = match &mut self.body {
            OutgoingBody::Full(bytes) => (RequestBody::full(bytes.clone()), None),
            OutgoingBody::Streaming(body) => {
                let (body, sent) = body.take()?;
                (body, Some(sent))
            }
        };
        let mut request = Request::new(body);
        *request.method_mut() = self.parts.method.clone();
        *request.uri_mut() = self.parts.uri.clone();
        *request.version_mut() = self.parts.version;
        *request.headers_mut() = if self.keep_copy {
            self.parts.headers.clone()
        } else {
            std::mem::take(&mut self.parts.headers)
        };
        Some((request, sent))
    }

    /// A request that was never sent comes back for the next attempt.
    fn give_back(
        &mut self,
        (request, sent): (Request<RequestBody>, Option<oneshot::Receiver<()>>),
    ) {
        let (parts, body) = request.into_parts();
        if !self.keep_copy {
            self.parts.headers = parts.headers;
        }
        if let (OutgoingBody::Streaming(slot @ None), Some(sent)) = (&mut self.body, sent) {
            *slot = Some((body, sent));
        }
    }
}

/// Whether failures.md allows another server after this failure: any method when nothing
/// reached the server; idempotent (or opted-in) methods when nothing came back yet.
fn retry_allowed(failed: &AttemptFailure, replayable: bool) -> bool {
    match failed.failure.kind.retry_rule() {
        RetryRule::AnyMethod => true,
        RetryRule::IdempotentOnly => {
            !failed.request_sent || (replayable && failed.response_bytes == 0)
        }
        RetryRule::Never => false,
    }
}

/// The consistent-hash key of a request, if it has one.
fn balance_key(key: &HashKey, headers: &http::HeaderMap, client: SocketAddr) -> Option<u64> {
    match key {
        HashKey::ClientIp => Some(match client.ip() {
            std::net::IpAddr::V4(ip) => stable_hash(&ip.octets()),
            std::net::IpAddr::V6(ip) => stable_hash(&ip.octets()),
        }),
        HashKey::Header(name) => headers
            .get(name.as_str())
            .map(|value| stable_hash(value.as_bytes())),
        HashKey::Cookie(name) => headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(key, _)| *key == name)
            .map(|(_, value)| stable_hash(value.as_bytes())),
    }
}

/// The request's Content-Length, when it declares one.
fn declared_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// Reads a (small) request body completely, with the client timeouts of a streaming one.
async fn read_body(body: ClientBody, idle_timeout: Duration) -> Result<Bytes, Failure> {
    use http_body_util::BodyExt;
    let (body, _sent) = RequestBody::streaming(body, idle_timeout);
    match body.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) => Err(
            match err.downcast::<crate::failure::marker::DownstreamBodyError>() {
                Ok(failed) => failed.0,
                Err(other) => Failure::client(
                    StatusCode::BAD_REQUEST,
                    format!("could not read the request body: {other}"),
                ),
            },
        ),
    }
}

impl Pipeline<'_> {
    async fn run(
        &mut self,
        req: Request<ClientBody>,
        activity: &ClientActivity,
    ) -> Response<ProxyBody> {
        #[cfg(feature = "test-hooks")]
        if req.headers().contains_key("x-gatehouse-test-panic") {
            panic!("panic requested by the x-gatehouse-test-panic test hook");
        }
        let mut req = req;
        // An upgrade needs the engine's handle on the client connection, which lives in the
        // request's extensions: taken now, before the request is taken apart. Only HTTP/1.1 has Upgrade
        // (an h2 request carries no such handle); any other request asking for one is forwarded
        // as an ordinary request, Upgrade and Connection stripped like all hop-by-hop fields.
        let protocols =
            forward::upgrade_protocols(req.headers()).filter(|_| req.version() == Version::HTTP_11);
        let client_upgrade = protocols
            .is_some()
            .then(|| ClientUpgrade::take(&mut req))
            .flatten();
        let upgrade = protocols
            .zip(client_upgrade)
            .map(|(protocols, client)| UpgradeRequest { client, protocols });
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
        let pool = Arc::clone(&self.snapshot.upstreams[routed.upstream]);
        self.record.pool = Some(Arc::clone(&pool.name));
        if upgrade.is_none() && caching::is_robots_request(&parts) {
            self.robots_host = Some(caching::keyed_host(&parts));
            self.robots_learn = caching::may_learn_robots(&parts);
        }

        // --- maintenance, then the cache ---
        if let Some(settings) = self.snapshot.maintenance.applies(
            &self.snapshot.config.maintenance,
            routed.label,
            routed.maintenance,
        ) {
            return self.maintenance_response(settings, head_only);
        }
        // An upgrade is an exchange of its own, never a cacheable response: no lookup, no store.
        if let Some(settings) = routed.cache
            && upgrade.is_none()
            && let Some(answer) = Box::pin(self.cache_lookup(settings, &mut parts, head_only)).await
        {
            return answer;
        }
        // Waits only at startup, until the pool's host names were resolved once.
        let members = pool
            .ready_members(self.snapshot.config.dns.timeout + MEMBERS_WAIT_SLACK)
            .await;
        let hash_key = pool
            .balancer
            .hash_key()
            .and_then(|key| balance_key(key, &parts.headers, self.client));

        // --- prepare the upstream request ---
        let request_id = HeaderValue::from_str(&self.request_id)
            .unwrap_or_else(|_| HeaderValue::from_static("-"));
        let host_header = parts.headers.get(header::HOST).cloned();
        // HTTP/2 clients send `:authority` instead of Host (RFC 9113 §8.3.1); it becomes Host
        // below and is the host they asked for, so X-Forwarded-Host carries it too.
        let authority_host = match &host_header {
            Some(_) => None,
            None => parts
                .uri
                .authority()
                .and_then(|authority| HeaderValue::from_str(authority.as_str()).ok()),
        };
        forward::request_headers(
            &mut parts.headers,
            &forward::Hop {
                client_ip: &activity.client_ip,
                via: &self.snapshot.via,
                request_id: &request_id,
                host: host_header.as_ref().or(authority_host.as_ref()),
                proto: if activity.https { "https" } else { "http" },
            },
        );
        if let Some(upgrade) = &upgrade {
            forward::keep_upgrade(&mut parts.headers, &upgrade.protocols);
        }
        if parts.uri.authority().is_some() {
            // Absolute-form (RFC 9112 §3.2.2) is for proxies; origin servers get origin-form,
            // with the authority as Host when the client sent none.
            let origin_form = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
            parts.uri = Uri::try_from(origin_form).unwrap_or_else(|_| Uri::from_static("/"));
            if host_header.is_none()
                && let Some(authority) = authority_host
            {
                parts.headers.insert(header::HOST, authority);
            }
        }
        parts.version = Version::HTTP_11;
        let policy = &pool.config.retry;
        // Whether the request may be sent again after it may have reached a server. Never an
        // upgrade: a server that received one may have switched protocols and acted on it.
        // (Failures before anything was sent, e.g. connection_refused, still go elsewhere.)
        let replayable =
            (parts.method.is_idempotent() || routed.retry_non_idempotent) && upgrade.is_none();
        let client_timeout = self.snapshot.config.server.client_header_timeout;
        let body = if body_is_empty(&body) {
            OutgoingBody::Full(Bytes::new())
        } else if replayable
            && policy.attempts > 1
            && declared_length(&parts.headers).is_some_and(|n| n <= REPLAY_BUFFER)
        {
            // Small bodies are read first so that a retry can send them again.
            match Box::pin(read_body(body, client_timeout)).await {
                Ok(bytes) => OutgoingBody::Full(bytes),
                Err(failure) => return self.fail(&failure, head_only, None),
            }
        } else {
            let (body, sent) = RequestBody::streaming(body, client_timeout);
            OutgoingBody::Streaming(Some((body, sent)))
        };
        let mut outgoing = Outgoing {
            parts,
            body,
            // Only a request that may be replayed after it was sent needs its head kept; any
            // other comes back from hyper when it was not sent.
            keep_copy: policy.attempts > 1 && replayable,
        };

        self.upgrade = upgrade;

        // --- attempts: a server, then another one while the failure allows a retry ---
        pool.budget.record_request();
        let mut tried: Vec<SocketAddr> = Vec::new();
        let mut last: Option<(Failure, String)> = None;
        let mut stale_retries = 0;
        loop {
            let retry = !tried.is_empty() || last.is_some();
            if retry && !tried.is_empty() && !members.has_untried(&tried, Instant::now()) {
                // Nothing left to try (a single server, say): no budget spent, no queueing.
                break;
            }
            if retry && !pool.budget.try_withdraw() {
                self.snapshot
                    .observer
                    .metrics
                    .retry_budget_exhausted(&pool.name);
                tracing::warn!(
                    target: "gatehouse::retry",
                    pool = %pool.name,
                    request_id = %self.request_id,
                    "retry budget exhausted; not retrying"
                );
                break;
            }
            let lease = match pool.acquire(&members, hash_key, &tried).await {
                Ok(lease) => lease,
                Err(NoServer::Failure(failure, next_hop)) if last.is_none() => {
                    self.record.attempts = 1;
                    if let Some(next_hop) = &next_hop {
                        self.record.upstream = Some(next_hop.as_str().into());
                    }
                    self.snapshot.observer.failure(
                        &failure,
                        &AttemptContext {
                            request_id: &self.request_id,
                            route: self.record.route.as_deref(),
                            pool: Some(&pool.name),
                            server: next_hop.as_deref(),
                            attempt: 1,
                            request_sent: false,
                        },
                    );
                    if let Some(stale) = Box::pin(self.stale_copy(
                        OriginFailed::Failure(&failure, next_hop.as_deref()),
                        head_only,
                    ))
                    .await
                    {
                        return stale;
                    }
                    return self.fail(&failure, head_only, next_hop.as_deref());
                }
                // No other server to try: the last attempt's failure is the answer.
                Err(NoServer::Failure(..) | NoServer::AllTried) => break,
            };
            let Some((request, sent)) = outgoing.take() else {
                break;
            };
            let server = Arc::clone(&lease.server);
            if retry {
                self.snapshot.observer.metrics.retry(&pool.name);
            }
            self.record.attempts += 1;
            self.record.upstream = Some(server.label.as_str().into());
            // A retry gets only what is left of the request's deadline to answer in.
            let response_timeout = if retry {
                let left = policy
                    .deadline
                    .saturating_sub(self.record.started.elapsed());
                pool.settings.response_timeout.min(left)
            } else {
                pool.settings.response_timeout
            };
            match self.attempt(&server, request, sent, response_timeout).await {
                Ok(attempt) => {
                    return self.respond(pool, members, lease, attempt, head_only).await;
                }
                Err(failed) => {
                    self.snapshot.observer.failure(
                        &failed.failure,
                        &AttemptContext {
                            request_id: &self.request_id,
                            route: self.record.route.as_deref(),
                            pool: Some(&pool.name),
                            server: Some(&server.label),
                            attempt: self.record.attempts,
                            request_sent: failed.request_sent,
                        },
                    );
                    drop(lease);
                    if failed.stale_connection && stale_retries < MAX_STALE_RETRIES {
                        // Not the server's failure, and not one of the request's tries.
                        stale_retries += 1;
                    } else {
                        pool.record_outcome(&members, &server, Some(failed.failure.kind));
                        tried.push(server.addr);
                    }
                    let allowed = retry_allowed(&failed, replayable);
                    if let Some(unsent) = failed.unsent {
                        outgoing.give_back(unsent);
                    }
                    let may_retry = allowed
                        && self.record.attempts - stale_retries < policy.attempts
                        && self.record.started.elapsed() < policy.deadline
                        && outgoing.can_take();
                    last = Some((failed.failure, server.label.clone()));
                    if !may_retry {
                        break;
                    }
                }
            }
        }
        match last {
            Some((failure, next_hop)) => {
                let failed = OriginFailed::Failure(&failure, Some(&next_hop));
                match Box::pin(self.stale_copy(failed, head_only)).await {
                    Some(stale) => stale,
                    None => self.fail(&failure, head_only, Some(&next_hop)),
                }
            }
            None => {
                let failure = Failure::new(
                    FailureKind::ProxyInternalError,
                    Phase::Selecting,
                    "no attempt was made",
                );
                self.fail(&failure, head_only, None)
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
        server: &Arc<Server>,
        request: Request<RequestBody>,
        sent: Option<oneshot::Receiver<()>>,
        response_timeout: Duration,
    ) -> Result<Attempt, AttemptFailure> {
        // An upgrade takes its connection over for good: always a new one of its own, never
        // one from the idle pool.
        let opened = if self.upgrade.is_some() {
            match Box::pin(self.connect_for_upgrade(server)).await {
                Ok(conn) => Some(conn),
                Err(failure) => {
                    return Err(AttemptFailure {
                        failure,
                        request_sent: false,
                        response_bytes: 0,
                        stale_connection: false,
                        unsent: Some((request, sent)),
                    });
                }
            }
        } else {
            server.checkout().await
        };
        let mut conn = match opened {
            Some(conn) => conn,
            None => match Box::pin(server.connect(ConnMode::Pooled)).await {
                Ok((conn, connect_time)) => {
                    self.record.connect = Some(connect_time);
                    conn
                }
                Err(failure) => {
                    return Err(AttemptFailure {
                        failure,
                        request_sent: false,
                        response_bytes: 0,
                        stale_connection: false,
                        unsent: Some((request, sent)),
                    });
                }
            },
        };
        let read_before = conn.stats.read();
        let written_before = conn.stats.written();
        let mut sent = sent;
        let result = {
            let mut send = pin!(conn.sender.try_send_request(request));
            let mut early = None;
            if let Some(fully_sent) = sent.as_mut() {
                // The response timeout starts once the whole request was handed over; an
                // upstream may also answer early (e.g. 413) before the body is complete.
                tokio::select! {
                    biased;
                    result = &mut send => early = Some(result),
                    _ = fully_sent => {}
                }
            }
            match early {
                Some(result) => Some(result),
                None => tokio::time::timeout(response_timeout, send).await.ok(),
            }
        };
        let request_sent = conn.stats.written() > written_before;
        let response_bytes = conn.stats.read() - read_before;
        match result {
            Some(Ok(response)) => {
                self.record.first_byte = Some(self.record.started.elapsed());
                Ok(Attempt { response, conn })
            }
            Some(Err(mut err)) => {
                let unsent = err.take_message();
                let facts = HeadFacts {
                    response_bytes,
                    reused: conn.reused,
                };
                let failure = classify::response_head_error(err.error(), facts);
                // A request hyper gave back was never written.
                let request_sent = request_sent && unsent.is_none();
                Err(AttemptFailure {
                    // A kept-alive HTTP/1.1 connection closed before the request was written,
                    // or an HTTP/2 stream refused unprocessed (REFUSED_STREAM, e.g. a burst
                    // that raced the server's stream limit before its SETTINGS arrived): not
                    // the server's failure, so it may be tried again on the same server, at
                    // most MAX_STALE_RETRIES times, without being held against it.
                    stale_connection: conn.reused
                        && !request_sent
                        && failure.kind == FailureKind::ConnectionTerminated,
                    failure,
                    request_sent,
                    response_bytes,
                    // An unsent body comes back with its "fully sent" signal, unfired.
                    unsent: unsent.map(|request| (request, sent)),
                })
            }
            None => Err(AttemptFailure {
                failure: classify::response_timeout(response_timeout),
                request_sent,
                response_bytes,
                stale_connection: false,
                unsent: None,
            }),
        }
    }

    /// A new connection for an upgrade request: TLS when the server is a TLS one, always
    /// HTTP/1.1, its task handing the stream over after a 101 (`ConnMode::Upgrade`). What
    /// `Server::connect` does for this mode; called directly because an upgrade connection is
    /// never shared, so none of its pooling applies.
    async fn connect_for_upgrade(&mut self, server: &Server) -> Result<Conn, Failure> {
        let (conn, connect_time) =
            connect(server.addr, server.settings(), ConnMode::Upgrade).await?;
        self.record.connect = Some(connect_time);
        Ok(conn)
    }

    /// Forwards the upstream's response: hop-by-hop fields removed, framing checked, our
    /// Proxy-Status member appended to an upstream 5xx, the body streamed.
    async fn respond(
        &mut self,
        pool: Arc<Pool>,
        members: Arc<Members>,
        lease: Lease,
        attempt: Attempt,
        head_only: bool,
    ) -> Response<ProxyBody> {
        if attempt.response.status() == StatusCode::SWITCHING_PROTOCOLS {
            return Box::pin(self.switch_protocols(pool, members, lease, attempt, head_only)).await;
        }
        // Any other final answer to an upgrade request is the origin's own (a 403, a 426, a 200
        // that ignored Upgrade) and is forwarded like any response; the client's connection
        // stays HTTP. hyper switches only on a 101, so the upstream connection is an ordinary
        // HTTP/1.1 one now, and is reused like one once its body was read.
        self.upgrade = None;
        let Attempt { response, conn } = attempt;
        let server = Arc::clone(&lease.server);
        let (mut parts, body) = response.into_parts();
        let framing = classify::response_framing(&parts.headers);
        pool.record_outcome(&members, &server, framing.as_ref().err().map(|f| f.kind));
        let chunked = match framing {
            Ok(chunked) => chunked,
            Err(failure) => {
                self.snapshot.observer.failure(
                    &failure,
                    &AttemptContext {
                        request_id: &self.request_id,
                        route: self.record.route.as_deref(),
                        pool: Some(&pool.name),
                        server: Some(&server.label),
                        attempt: self.record.attempts,
                        request_sent: true,
                    },
                );
                self.record.upstream_status = Some(parts.status.as_u16());
                // The connection's framing is unknown now; it is closed, never reused.
                drop(conn);
                let failed = OriginFailed::Failure(&failure, Some(&server.label));
                if let Some(stale) = Box::pin(self.stale_copy(failed, head_only)).await {
                    return stale;
                }
                return self.fail(&failure, head_only, Some(&server.label));
            }
        };
        forward::strip_hop_by_hop(&mut parts.headers);
        let status = parts.status;
        self.record.upstream_status = Some(status.as_u16());
        if caching::is_stale_status(status)
            && let Some(stale) = Box::pin(self.stale_copy(
                OriginFailed::Status(status, &server.label, conn.protocol.alpn()),
                head_only,
            ))
            .await
        {
            // The origin's error body is not read; its connection closes.
            drop(conn);
            return stale;
        }
        let mut capture = None;
        if status == StatusCode::NOT_MODIFIED
            && let Some(response) = self.revalidated(&parts.headers, head_only)
        {
            // The stored copy answers; the 304's (empty) exchange finishes through the usual
            // body so that the connection returns to the pool and the record is written.
            self.record.status = response.status().as_u16();
            let finish = Finish {
                record: self.take_record(),
                conn,
                lease,
                pool,
                members,
                chunked,
                capture: None,
            };
            drop(UpstreamBody::new(body, Duration::ZERO, finish));
            return response;
        }
        if self.cache.is_some() || self.robots_host.is_some() {
            let length = declared_length(&parts.headers);
            let (planned, cache_status) = self.plan_store(status, &parts.headers, length);
            capture = planned;
            if let Some(value) = cache_status {
                parts.headers.append("cache-status", value);
            }
        }
        if status.is_server_error()
            && let Some(member) = self.snapshot.proxy_status.for_received_status(
                status.as_u16(),
                &server.label,
                conn.protocol.alpn(),
            )
        {
            parts.headers.append("proxy-status", member);
        }
        if let Ok(id) = HeaderValue::from_str(&self.request_id) {
            parts.headers.insert(forward::X_REQUEST_ID, id);
        }
        parts.version = Version::HTTP_11;
        self.record.status = status.as_u16();
        let record = self.take_record();
        let read_timeout = pool.settings.read_timeout;
        let finish = Finish {
            record,
            conn,
            lease,
            pool,
            members,
            chunked,
            capture: capture.map(Box::new),
        };
        let body = UpstreamBody::new(body, read_timeout, finish);
        Response::from_parts(parts, ProxyBody::Upstream(body))
    }

    /// The upstream answered `101 Switching Protocols`. When the request asked for an upgrade
    /// and the 101 names a protocol it offered, the 101 goes to the client and a tunnel joins
    /// the two connections; anything else is `http_upgrade_failed`.
    async fn switch_protocols(
        &mut self,
        pool: Arc<Pool>,
        members: Arc<Members>,
        lease: Lease,
        attempt: Attempt,
        head_only: bool,
    ) -> Response<ProxyBody> {
        let Attempt { mut response, conn } = attempt;
        let server = Arc::clone(&lease.server);
        self.record.upstream_status = Some(StatusCode::SWITCHING_PROTOCOLS.as_u16());
        let switched = match self.upgrade.take() {
            None => Err(
                "upstream answered 101 Switching Protocols to a request that asked for no upgrade"
                    .to_owned(),
            ),
            Some(upgrade) => {
                match forward::accepted_upgrade(&upgrade.protocols, response.headers()) {
                    Err(why) => Err(why),
                    Ok(accepted) => {
                        // hyper's connection task hands the stream over as soon as it has read the
                        // 101; bounded all the same, so that a hand-over that never comes cannot
                        // hold the request.
                        let limit = pool.settings.response_timeout;
                        match tokio::time::timeout(limit, hyper::upgrade::on(&mut response)).await {
                            Ok(Ok(upstream)) => Ok((upgrade, accepted, upstream)),
                            Ok(Err(err)) => Err(format!(
                                "could not take over the upstream connection after its 101: {err}"
                            )),
                            Err(_) => Err(format!(
                                "the upstream connection was not handed over within {limit:?} after its 101"
                            )),
                        }
                    }
                }
            }
        };
        // The sender was kept until the hand-over; the connection now belongs to the tunnel
        // (or is closed, on failure): it never goes back to the idle pool.
        drop(conn);
        let (upgrade, accepted, upstream) = match switched {
            Ok(switched) => switched,
            Err(why) => {
                let failure = Failure::new(
                    FailureKind::HttpUpgradeFailed,
                    Phase::ReadingResponseHeaders,
                    why,
                );
                // After an attempt, fail() writes no warning: the attempt's one is written here.
                self.snapshot.observer.failure(
                    &failure,
                    &AttemptContext {
                        request_id: &self.request_id,
                        route: self.record.route.as_deref(),
                        pool: Some(&pool.name),
                        server: Some(&server.label),
                        attempt: self.record.attempts,
                        request_sent: true,
                    },
                );
                pool.record_outcome(&members, &server, Some(failure.kind));
                drop(lease);
                return self.fail(&failure, head_only, Some(&server.label));
            }
        };
        pool.record_outcome(&members, &server, None);
        let (mut parts, _empty) = response.into_parts();
        // The upstream's 101 as the client gets it: its own fields (Sec-WebSocket-Accept, a
        // chosen subprotocol, cookies) with the connection-level ones stripped, then Upgrade
        // and Connection: upgrade put back for this hop. A 101 has no body to frame.
        forward::strip_hop_by_hop(&mut parts.headers);
        parts.headers.remove(header::CONTENT_LENGTH);
        forward::keep_upgrade(&mut parts.headers, &accepted);
        if let Ok(id) = HeaderValue::from_str(&self.request_id) {
            parts.headers.insert(forward::X_REQUEST_ID, id);
        }
        parts.version = Version::HTTP_11;
        // The access record is written now, as the 101 goes out (status 101): the HTTP
        // exchange ends here. What the tunnel then carries, and for how long, is in the
        // tunnel's own (debug) line when it closes.
        self.record.status = StatusCode::SWITCHING_PROTOCOLS.as_u16();
        let record = self.take_record();
        self.snapshot.observer.finished(record);
        // The tunnel waits for hyper to write this 101 and hand the client connection over.
        tunnel::spawn(Tunnel {
            client: upgrade.client,
            upstream,
            idle_timeout: pool.config.tunnel_idle_timeout,
            request_id: Arc::clone(&self.request_id),
            lease,
            pool: Arc::clone(&pool.name),
            observer: Arc::clone(&pool.observer),
        });
        Response::from_parts(parts, ProxyBody::empty())
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
            self.snapshot.observer.failure(
                failure,
                &AttemptContext {
                    route: self.record.route.as_deref(),
                    ..AttemptContext::before_any_attempt(&self.request_id)
                },
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
        self.snapshot.observer.finished(record);
        response
    }
}

fn body_is_empty(body: &ClientBody) -> bool {
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
