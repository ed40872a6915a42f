//! Respond: the upstream's response forwarded (hop-by-hop fields removed, framing checked, the
//! body streamed), or, for an accepted upgrade, the `101` and the tunnel that follows.

use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use http::header::{self, HeaderValue};
use http::{Response, StatusCode, Version};
use http_body::Body as _;
use hyper::upgrade::Upgraded;

use super::attempt::Attempt;
use super::caching::{self, OriginFailed};
use super::outgoing::declared_length;
use super::{Pipeline, UpgradeRequest};
use crate::body::{Finish, Peeked, ProxyBody, UpstreamBody};
use crate::cache::capture::Capture;
use crate::failure::classify;
use crate::failure::{Failure, FailureKind, Phase};
use crate::forward;
use crate::observe::access_log::AttemptContext;
use crate::tunnel::{self, Tunnel};
use crate::upstream::conn::Conn;
use crate::upstream::incoming::UpstreamIncoming;
use crate::upstream::pool::{Members, Pool};
use crate::upstream::server::{Lease, Server};

impl Pipeline<'_> {
    /// Forwards the upstream's response: hop-by-hop fields removed, framing checked, our
    /// Proxy-Status member appended to an upstream 5xx, the body streamed.
    pub(super) async fn respond(
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
        let framing = classify::response_status(parts.status)
            .and_then(|()| classify::response_framing(&parts.headers));
        let chunked = match framing {
            Ok(chunked) => chunked,
            Err(failure) => {
                pool.record_outcome(&members, &server, Some(failure.kind));
                let status = parts.status;
                return self
                    .framing_failed(&pool, &server, status, conn, &failure, head_only)
                    .await;
            }
        };
        // A body that fails at once (a broken first chunk-size line, say) fails before a byte
        // of the response went downstream: the client gets a real 502, not an empty reply.
        let (body, first) = match first_frame(body, chunked).await {
            Ok(peeked) => {
                pool.record_outcome(&members, &server, None);
                peeked
            }
            Err(failure) => {
                pool.record_outcome(&members, &server, Some(failure.kind));
                let status = parts.status;
                return self
                    .framing_failed(&pool, &server, status, conn, &failure, head_only)
                    .await;
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
        if status == StatusCode::NOT_MODIFIED
            && let Some(response) = self.revalidated(&parts.headers, head_only)
        {
            // The stored copy answers; the 304's (empty) exchange finishes through the usual
            // body so that the connection returns to the pool and the record is written.
            self.record.status = response.status().as_u16();
            let finish = Box::new(Finish {
                record: self.take_record(),
                conn,
                lease,
                pool,
                members,
                chunked,
                capture: None,
            });
            drop(UpstreamBody::new(body, Duration::ZERO, finish));
            return response;
        }
        let capture = self.response_headers(&mut parts, &server, &conn);
        self.record.status = status.as_u16();
        let read_timeout = pool.settings.read_timeout;
        let finish = Box::new(Finish {
            record: self.take_record(),
            conn,
            lease,
            pool,
            members,
            chunked,
            capture: capture.map(Box::new),
        });
        let body = UpstreamBody::new(body, read_timeout, finish).starting_with(first);
        Response::from_parts(parts, ProxyBody::Upstream(body))
    }

    /// The response's framing is broken (RFC 9112 §6.3): the attempt's failure reported and
    /// charged, the connection closed, and a stale copy, or the failure, answers.
    async fn framing_failed(
        &mut self,
        pool: &Pool,
        server: &Server,
        status: StatusCode,
        conn: Conn,
        failure: &Failure,
        head_only: bool,
    ) -> Response<ProxyBody> {
        self.snapshot.observer.failure(
            failure,
            &AttemptContext {
                request_id: &self.request_id,
                route: self.record.route.as_deref(),
                pool: Some(&pool.name),
                server: Some(&server.label),
                attempt: self.record.attempts,
                request_sent: true,
            },
        );
        self.record.upstream_status = Some(status.as_u16());
        // The connection's framing is unknown now; it is closed, never reused.
        drop(conn);
        let failed = OriginFailed::Failure(failure, Some(&server.label));
        if let Some(stale) = Box::pin(self.stale_copy(failed, head_only)).await {
            return stale;
        }
        self.fail(failure, head_only, Some(&server.label))
    }

    /// The header fields gatehouse adds to a forwarded response: `Cache-Status` when the cache
    /// or the robots.txt guard plans to keep it (their copy of the body is returned), our
    /// Proxy-Status member on an upstream 5xx, X-Request-Id; and HTTP/1.1 as the version.
    fn response_headers(
        &mut self,
        parts: &mut http::response::Parts,
        server: &Server,
        conn: &Conn,
    ) -> Option<Capture> {
        let status = parts.status;
        let mut capture = None;
        if self.cache.is_some() || self.robots_host.is_some() {
            let length = declared_length(&parts.headers);
            let (planned, cache_status) = self.plan_store(status, &parts.headers, length);
            capture = planned;
            if let Some(value) = cache_status {
                parts.headers.append(forward::CACHE_STATUS, value);
            }
            // gatehouse's own targeted field is addressed to this cache: the stored copy keeps
            // it (its directives are read from there), the client does not get it.
            if self.cache.is_some()
                && let Some(hidden) = &self.snapshot.cache_hidden
            {
                parts.headers.remove(hidden);
            }
        }
        if status.is_server_error()
            && let Some(member) = self.proxy_status().for_received_status(
                status.as_u16(),
                &server.label,
                conn.protocol.alpn(),
            )
        {
            parts.headers.append(forward::PROXY_STATUS, member);
        }
        if let Some(id) = self.request_id_header.clone() {
            parts.headers.insert(forward::X_REQUEST_ID, id);
        }
        parts.version = Version::HTTP_11;
        capture
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
        let limit = pool.settings.response_timeout;
        let switched = take_over(self.upgrade.take(), &mut response, limit).await;
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
        if let Some(id) = self.request_id_header.clone() {
            parts.headers.insert(forward::X_REQUEST_ID, id);
        }
        parts.version = Version::HTTP_11;
        // The access record is written now, as the 101 goes out (status 101): the HTTP
        // exchange ends here. What the tunnel then carries, and for how long, is in the
        // tunnel's own (debug) line when it closes.
        self.record.status = StatusCode::SWITCHING_PROTOCOLS.as_u16();
        let record = self.take_record();
        self.snapshot.observer.finished(record);
        // The tunnel waits for the engine to write this 101 and hand the client connection over.
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
}

/// The upgrade's two ends once the upstream answered `101`: the client's side, the protocol
/// the upstream accepted, and the upstream connection handed over by hyper; or why not (no
/// upgrade was asked for, the 101 names another protocol, the hand-over failed or never came).
async fn take_over(
    upgrade: Option<UpgradeRequest>,
    response: &mut Response<UpstreamIncoming>,
    limit: Duration,
) -> Result<(UpgradeRequest, HeaderValue, Upgraded), String> {
    let Some(upgrade) = upgrade else {
        return Err(
            "upstream answered 101 Switching Protocols to a request that asked for no upgrade"
                .to_owned(),
        );
    };
    let accepted = forward::accepted_upgrade(&upgrade.protocols, response.headers())?;
    // hyper's connection task hands the stream over as soon as it has read the 101; bounded
    // all the same, so that a hand-over that never comes cannot hold the request.
    match tokio::time::timeout(limit, hyper::upgrade::on(response)).await {
        Ok(Ok(upstream)) => Ok((upgrade, accepted, upstream)),
        Ok(Err(err)) => Err(format!(
            "could not take over the upstream connection after its 101: {err}"
        )),
        Err(_) => Err(format!(
            "the upstream connection was not handed over within {limit:?} after its 101"
        )),
    }
}

/// The body's first frame when it is already at hand (the upstream's bytes came with its head):
/// polled once, without waiting. A failure then is the attempt's, before anything was sent on.
async fn first_frame(
    mut body: UpstreamIncoming,
    chunked: bool,
) -> Result<(UpstreamIncoming, Option<Peeked>), Failure> {
    if body.is_end_stream() {
        return Ok((body, None));
    }
    let polled = std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut body).poll_frame(cx))).await;
    match polled {
        Poll::Pending => Ok((body, None)),
        Poll::Ready(None) => Ok((body, Some(Peeked::End))),
        Poll::Ready(Some(Ok(frame))) => Ok((body, Some(Peeked::frame(frame)))),
        Poll::Ready(Some(Err(err))) => Err(err.into_failure(chunked)),
    }
}
