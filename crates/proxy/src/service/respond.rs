//! Respond: the upstream's response forwarded (hop-by-hop fields removed, framing checked, the
//! body streamed), or, for an accepted upgrade, the `101` and the tunnel that follows.

use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderValue};
use http::{Response, StatusCode, Version};

use super::Pipeline;
use super::attempt::Attempt;
use super::caching::{self, OriginFailed};
use super::outgoing::declared_length;
use crate::body::{Finish, ProxyBody, UpstreamBody};
use crate::failure::classify;
use crate::failure::{Failure, FailureKind, Phase};
use crate::forward;
use crate::observe::access_log::AttemptContext;
use crate::tunnel::{self, Tunnel};
use crate::upstream::pool::{Members, Pool};
use crate::upstream::server::Lease;

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
}
