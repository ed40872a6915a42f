//! The request pipeline, as named phases in plain code, one file each:
//!
//! 1. `check.rs`: check the request (limits, loops; an upgrade's client side taken);
//! 2. `route.rs`: route; `limit.rs`: the route's rate and concurrency limits; then what
//!    answers without an upstream (maintenance, `caching.rs`);
//! 3. `pick.rs`: pick a server (the pool's members, balancing, the retry budget);
//! 4. `outgoing.rs`: the request as it is forwarded, kept for a retry;
//! 5. `attempt.rs`: attempt (connect, send, read the head), then another server while allowed;
//! 6. `respond.rs`: respond (forward the upstream's response, or switch protocols);
//! 7. `fail.rs`: log and fail (render the failure, emit the access record);
//! 8. on the way out, [`compress::apply`]: the response compressed (or
//!    decoded) for this client, on a route that compresses; never a generated one.
//!
//! `handle` reads as that list. Every failure on the way becomes one [`Failure`],
//! answered in one place (`Pipeline::fail`). The access record is emitted when the response is
//! finished: by `fail` for generated responses, by the response body
//! ([`UpstreamBody`](crate::body::UpstreamBody)) for proxied ones, and by `respond` when a `101`
//! switches protocols (the tunnel that follows logs its own end, see [`crate::tunnel`]).
//!
//! An upgrade request (HTTP/1.1 `Connection: upgrade` plus `Upgrade`, e.g. WebSocket) takes the
//! same path with three differences: it goes over a new connection of its own, never a pooled
//! one; it is not retried once sent and bypasses the cache; and an accepting `101` becomes a
//! tunnel instead of a streamed body.

mod attempt;
mod caching;
mod check;
mod fail;
mod limit;
mod max_forwards;
mod outgoing;
mod pick;
mod respond;
mod route;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use http::header::{self, HeaderValue};
use http::{Method, Request, Response};
use tokio::time::Instant;

use crate::body::ProxyBody;
use crate::client_addr;
use crate::client_body::{ClientBody, ClientUpgrade};
use crate::client_io::ClientActivity;
use crate::compress::{self, CompressRequest};
#[cfg(doc)]
use crate::failure::Failure;
use crate::observe::access_log::AccessRecord;
use crate::snapshot::Snapshot;
use caching::CacheRequest;
use gatehouse_config::CompressConfig;
use outgoing::Outgoing;

/// Handles one request from `peer` (the connection's client, after any PROXY header). Never
/// fails: every error becomes a response here.
///
/// Not an `async fn`: an async fn keeps its arguments twice in its state (as received, and
/// moved into its body), and this state is part of every request's future, which the HTTP/1.1
/// engine moves into a box of its own. (All of the work stays inside the future, where a panic
/// is isolated.)
#[allow(
    clippy::manual_async_fn,
    reason = "an async fn would keep its arguments twice in every request's future"
)]
pub fn handle(
    snapshot: Arc<Snapshot>,
    peer: SocketAddr,
    activity: &ClientActivity,
    req: Request<ClientBody>,
) -> impl Future<Output = Response<ProxyBody>> + Send + '_ {
    async move {
        let trusted = &snapshot.config.server.trusted_proxies;
        let peer_trusted = !trusted.is_empty() && client_addr::is_trusted(trusted, peer.ip());
        let client = if peer_trusted {
            client_addr::resolve(peer, req.headers(), trusted)
        } else {
            peer
        };
        let request_id = request_id(req.headers());
        let access_log = snapshot.config.server.access_log;
        // The target is copied only when it will be logged.
        let target = match req.uri().path_and_query() {
            Some(pq) if access_log => {
                logged_target(pq.as_str(), snapshot.config.server.max_uri_length)
            }
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
        // Read only where some route compresses: else Accept-Encoding is never looked at.
        let compress_request = snapshot
            .compresses
            .then(|| CompressRequest::new(req.method(), req.headers()));
        let mut pipeline = Pipeline {
            snapshot: &snapshot,
            https: activity.https,
            client,
            peer_trusted,
            local: activity.local,
            request_id_header: crate::forward::shared_request_id_value(&request_id),
            request_id,
            record,
            recorded: false,
            accept,
            cache: None,
            robots_host: None,
            robots_learn: false,
            upgrade: None,
            interim: None,
            compress: None,
        };
        // The phases in order; each may end the request with its response. (Run here rather
        // than in a method of their own: a future per level would hold the request again.)
        let mut fields = limit::LimitFields::default();
        let prepared = pipeline.before_forward(req, activity, &mut fields).await;
        let mut response = match prepared {
            Ok(Forward {
                pool,
                members,
                hash_key,
                outgoing,
                head_only,
            }) => {
                pipeline
                    .forward(pool, members, hash_key, outgoing, head_only)
                    .await
            }
            Err(answer) => answer,
        };
        fields.apply(response.headers_mut());
        // Last, on the way out: the cache and the access record dealt in the upstream's response.
        match (pipeline.compress.take(), &compress_request) {
            (Some((config, route)), Some(compress_request)) => compress::apply(
                config,
                compress_request,
                response,
                &snapshot.observer.metrics,
                &route,
            ),
            _ => response,
        }
    }
}

/// A request dropped before its response was made: its client went away (an HTTP/2 stream
/// reset, an HTTP/1.1 connection closed) and the request was cancelled with its upstream
/// attempt. Its access record says so: status 499 (nginx's "client closed request"),
/// `client_aborted`. (Not while a panic unwinds: the panic's own 500 is recorded.)
impl Drop for Pipeline<'_> {
    fn drop(&mut self) {
        if self.recorded || std::thread::panicking() {
            return;
        }
        let mut record = self.take_record();
        record.status = CLIENT_CLOSED_REQUEST;
        record.client_aborted = true;
        self.snapshot.observer.finished(record);
    }
}

/// The status an access record gives a request whose client left before the response.
const CLIENT_CLOSED_REQUEST: u16 = 499;

struct Pipeline<'a> {
    /// Shared, so work the request starts in the background (a cache revalidation,
    /// stale-while-revalidate) can keep it.
    snapshot: &'a Arc<Snapshot>,
    /// The client's connection is TLS (a background revalidation forwards as it would).
    https: bool,
    /// The client: the connection's peer, or the address a trusted peer forwarded for.
    client: SocketAddr,
    /// The connection's peer is one of `trusted_proxies` (its forwarding fields are believed).
    peer_trusted: bool,
    /// The address the client reached gatehouse on.
    local: SocketAddr,
    request_id: Arc<str>,
    /// `request_id` as the `X-Request-ID` value sent upstream and to the client: made once,
    /// sharing the id's bytes.
    request_id_header: Option<HeaderValue>,
    record: AccessRecord,
    /// The access record was taken to be written (with the response, or by its body).
    recorded: bool,
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
    /// Where the upstream's interim (1xx) responses go (an HTTP/1.1 or HTTP/2 client).
    interim: Option<crate::client_body::Interim>,
    /// The route's compression settings and label, when it compresses; cleared for a response
    /// gatehouse generates (its error pages are sent as they are).
    compress: Option<(&'a CompressConfig, Arc<str>)>,
}

/// What an upgrade request needs once the upstream has answered.
struct UpgradeRequest {
    /// The client's side of the connection, handed over by the engine after a 101 is written.
    client: ClientUpgrade,
    /// The `Upgrade` value forwarded (what the client asked for, `h2c` left out).
    protocols: HeaderValue,
}

impl Pipeline<'_> {
    /// How much Proxy-Status tells this client: `full` for `proxy_status_full_for`.
    fn proxy_status(&self) -> &crate::failure::proxy_status::ProxyStatusWriter {
        let full_for = &self.snapshot.config.server.proxy_status_full_for;
        if !full_for.is_empty() && client_addr::is_trusted(full_for, self.client.ip()) {
            &self.snapshot.proxy_status_full
        } else {
            &self.snapshot.proxy_status
        }
    }

    /// The phases up to the attempts: the request checked, routed, limited, answered here if it
    /// can be, its servers found and its outgoing form prepared; `Err` with the answer when a
    /// phase ended the request.
    ///
    /// A future of its own: what these phases keep across their awaits (the request's parts,
    /// its route) then takes no room in the state the attempts run in.
    async fn before_forward(
        &mut self,
        req: Request<ClientBody>,
        activity: &ClientActivity,
        limit_fields: &mut limit::LimitFields,
    ) -> Result<Forward, Response<ProxyBody>> {
        #[cfg(feature = "test-hooks")]
        if req.headers().contains_key("x-gatehouse-test-panic") {
            panic!("panic requested by the x-gatehouse-test-panic test hook");
        }
        let (mut parts, body, upgrade) = check::take_apart(req);
        self.interim = body.interim();
        let head_only = parts.method == Method::HEAD;

        if let Err(failure) = self.check_request(&mut parts) {
            return Err(self.fail(&failure, head_only, None));
        }

        let (routed, pool) = match self.route(&parts, upgrade.is_some()) {
            Ok(routed) => routed,
            Err(failure) => return Err(self.fail(&failure, head_only, None)),
        };
        match self.limit(&routed, &parts).await {
            Ok(fields) => *limit_fields = fields,
            Err(refusal) => {
                *limit_fields = refusal.fields;
                return Err(self.fail(&refusal.failure, head_only, None));
            }
        }
        if let Some(answer) = self
            .answer_locally(&routed, &mut parts, upgrade.is_some(), head_only)
            .await
        {
            return Err(answer);
        }
        if let Some(answer) = self.max_forwards(&mut parts) {
            return Err(answer);
        }

        let (members, hash_key) = self.candidates(&pool, &parts).await;

        self.forward_headers(&mut parts, upgrade.as_ref(), activity);
        // Whether the request may be sent again after it may have reached a server. Never an
        // upgrade: a server that received one may have switched protocols and acted on it.
        // (Failures before anything was sent, e.g. connection_refused, still go elsewhere.)
        let replayable =
            (parts.method.is_idempotent() || routed.retry_non_idempotent) && upgrade.is_none();
        let server = &self.snapshot.config.server;
        let max_bytes = routed
            .max_request_body_size
            .unwrap_or(server.max_request_body_size);
        // A body announced too large is refused before anything is read or forwarded (and
        // before `100 Continue`, which goes out only when the body is first read).
        if max_bytes > 0
            && let Some(length) = outgoing::declared_length(&parts.headers)
            && length > max_bytes
        {
            let failure = crate::client_pace::too_large(max_bytes, Some(length));
            return Err(self.fail(&failure, head_only, None));
        }
        let pace = crate::client_pace::ClientPace {
            idle_timeout: server.client_header_timeout,
            min_rate: crate::client_pace::MinRate {
                bytes_per_second: server.min_request_body_rate,
                grace: server.min_rate_grace,
            },
            max_bytes,
        };
        let outgoing =
            match Outgoing::prepare(parts, body, &pool.config.retry, replayable, pace).await {
                Ok(outgoing) => outgoing,
                Err(failure) => return Err(self.fail(&failure, head_only, None)),
            };
        self.upgrade = upgrade;
        Ok(Forward {
            pool,
            members,
            hash_key,
            outgoing,
            head_only,
        })
    }
}

/// A request ready for its attempts, as [`Pipeline::before_forward`] leaves it.
struct Forward {
    pool: Arc<crate::upstream::pool::Pool>,
    members: Arc<crate::upstream::pool::Members>,
    hash_key: Option<u64>,
    outgoing: Outgoing,
    head_only: bool,
}

/// The target as the access log shows it: whole, unless it is longer than `max_uri_length`
/// (a request refused with 414), when only its first bytes are kept and `…` marks the cut, so
/// that a client sending huge targets cannot fill the log; the 414's reason gives the length.
fn logged_target(target: &str, max_uri_length: usize) -> String {
    if target.len() <= max_uri_length {
        return target.to_owned();
    }
    let cut = target.floor_char_boundary(max_uri_length.min(LOGGED_TARGET_CUT));
    format!("{}…", &target[..cut])
}

/// How much of a target longer than `max_uri_length` the access log keeps.
const LOGGED_TARGET_CUT: usize = 256;

/// The client's `X-Request-Id` when it is a sane token (1-128 of `A-Za-z0-9._:-`), else a new one.
fn request_id(headers: &http::HeaderMap) -> Arc<str> {
    if let Some(id) = headers
        .get(&crate::forward::X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
    {
        let valid = !id.is_empty()
            && id.len() <= 128
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
        if valid {
            return id.into();
        }
    }
    let hex = request_id_hex();
    // Hex digits are ASCII.
    std::str::from_utf8(&hex)
        .unwrap_or("0000000000000000")
        .into()
}

/// 16 hex digits: a per-process random seed mixed with a counter (splitmix64), so ids are
/// unique within a process and unpredictable across processes without a syscall per request.
pub fn new_request_id() -> String {
    String::from_utf8_lossy(&request_id_hex()).into_owned()
}

/// The digits of [`new_request_id`], written without formatting machinery or an allocation
/// (one per request otherwise).
fn request_id_hex() -> [u8; 16] {
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
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut digits = [0u8; 16];
    for (i, digit) in digits.iter_mut().enumerate() {
        *digit = HEX[((z >> (60 - 4 * i)) & 0xf) as usize];
    }
    digits
}
