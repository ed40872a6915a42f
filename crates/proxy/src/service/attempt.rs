//! Attempt: one server after another while the failure allows a retry; each attempt a
//! pooled or new connection, the request sent, the response head read, each phase bounded by
//! its own timeout.

use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use tokio::sync::oneshot;

use super::Pipeline;
use super::outgoing::{Outgoing, Taken};
use super::pick::{Pick, Tries};
use crate::body::ProxyBody;
use crate::boxed;
use crate::client_body::RequestBody;
use crate::failure::classify::{self, HeadFacts};
use crate::failure::{Failure, FailureKind, RetryRule};
use crate::observe::access_log::AttemptContext;
use crate::upstream::conn::{Conn, Protocol};
use crate::upstream::connect::{ConnMode, connect_for};
use crate::upstream::incoming::UpstreamIncoming;
use crate::upstream::pool::{Members, Pool};
use crate::upstream::server::{Lease, Server};

/// Kept-alive connections found closed that a request may step over without using up one of
/// its `attempts` (each was the connection's fault, not the server's; after that they count
/// like any failure). See [`AttemptFailure::stale_connection`].
const MAX_STALE_RETRIES: u32 = 2;
/// How soon after the request was written a kept-alive connection's close counts as the
/// keep-alive race (the server closed it as the request arrived) rather than the server's
/// failure while working on the request.
const STALE_CLOSE_WINDOW: Duration = Duration::from_secs(1);

/// The response head and connection of a successful attempt.
pub(super) struct Attempt {
    pub(super) response: Response<UpstreamIncoming>,
    pub(super) conn: Conn,
}

/// A failed attempt and what the retry decision needs to know about it. Returned boxed: it is
/// rare, and large (the request it gives back), and a large error would be copied with every
/// successful attempt.
struct AttemptFailure {
    failure: Failure,
    /// Some byte of the request was written to the server (it may have acted on it).
    request_sent: bool,
    /// Bytes of a response that had arrived.
    response_bytes: u64,
    /// A kept-alive connection that the server had closed (the keep-alive race): closed before
    /// the request was written, or, for an idempotent request on an HTTP/1.1 connection,
    /// closed after it was written without a byte of response (RFC 9112 §9.3.1 lets a client
    /// retry such a request). It
    /// says nothing about the server: the request goes again, on a new connection.
    stale_connection: bool,
    /// A response timeout shortened by the request's retry deadline: says little about the
    /// server, so it is not held against it.
    cut_short: bool,
    /// The request, when the attempt failed before it was handed over (connect failed, or
    /// hyper gave it back unsent).
    unsent: Option<(Request<RequestBody>, Option<oneshot::Receiver<()>>)>,
    /// The header fields of a request that was sent, when another attempt may send it again
    /// ([`Taken::keep_head`]).
    head: Option<http::HeaderMap>,
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

impl Pipeline<'_> {
    /// Attempts, then the response: a server, then another one while the failure allows a
    /// retry and the attempts, the deadline and the retry budget do. The answer is the first
    /// response, else the last failure (or a stale copy standing in for it).
    ///
    /// Not an `async fn`, which would keep the outgoing request twice in its state (as argument
    /// and as local), and this state is part of every request's future.
    #[allow(
        clippy::manual_async_fn,
        reason = "an async fn would keep the outgoing request twice in every request's future"
    )]
    pub(super) fn forward(
        &mut self,
        pool: Arc<Pool>,
        members: Arc<Members>,
        hash_key: Option<u64>,
        mut outgoing: Outgoing,
        head_only: bool,
    ) -> impl Future<Output = Response<ProxyBody>> {
        async move {
            let policy = &pool.config.retry;
            pool.budget.record_request();
            let mut tries = Tries::default();
            loop {
                let retry = !tries.tried.is_empty() || tries.last.is_some();
                let lease = match self
                    .pick_server(&pool, &members, hash_key, &tries, retry)
                    .await
                {
                    Pick::Lease(lease) => lease,
                    Pick::NoServer(failure, next_hop) => {
                        return self.no_server(&pool, failure, next_hop, head_only).await;
                    }
                    Pick::Stop => break,
                };
                let Some(taken) = outgoing.take() else {
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
                let fresh = std::mem::take(&mut tries.fresh_connection);
                // Boxed: the attempt (the send and its connection) is the largest part of the
                // request's future, and every future above it is moved whole when it starts; a
                // pointer here keeps those moves small. Built in the box, not copied into it.
                let attempt =
                    boxed::pinned(|| self.attempt(&server, taken, response_timeout, fresh));
                match attempt.await {
                    Ok(attempt) => {
                        return self.respond(pool, members, lease, attempt, head_only).await;
                    }
                    Err(failed) => {
                        if !self.attempt_failed(
                            &pool,
                            &members,
                            lease,
                            failed,
                            &mut outgoing,
                            &mut tries,
                        ) {
                            break;
                        }
                    }
                }
            }
            self.give_up(tries.last, head_only).await
        }
    }

    /// After a failed attempt: the failure reported, the server charged with it (unless the
    /// failure was only a stale kept-alive connection's), and whether another attempt may
    /// follow.
    fn attempt_failed(
        &mut self,
        pool: &Pool,
        members: &Members,
        lease: Lease,
        mut failed: Box<AttemptFailure>,
        outgoing: &mut Outgoing,
        tries: &mut Tries,
    ) -> bool {
        let server = Arc::clone(&lease.server);
        if let Some(unsent) = failed.unsent.take() {
            outgoing.give_back(unsent);
        }
        if let Some(head) = failed.head.take() {
            outgoing.give_back_head(head);
        }
        // Only when the request can go again, in time: otherwise it is an ordinary failure,
        // reported and answered as one.
        let stale_retry = failed.stale_connection
            && tries.stale_retries < MAX_STALE_RETRIES
            && outgoing.can_take()
            && self.record.started.elapsed() < pool.config.retry.deadline;
        if stale_retry {
            // Not the server's failure, and not one of the request's tries: no warning, no
            // failure counted, no mark against the server.
            tracing::debug!(
                request_id = %self.request_id,
                server = %server.label,
                request_sent = failed.request_sent,
                error = %failed.failure.details,
                "kept-alive upstream connection was closed by the server; trying again on a new connection"
            );
            self.snapshot
                .observer
                .metrics
                .stale_connection_retry(&pool.name);
            drop(lease);
            tries.stale_retries += 1;
            tries.fresh_connection = true;
            return true;
        }
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
        if !failed.cut_short {
            pool.record_outcome(members, &server, Some(failed.failure.kind));
        }
        tries.tried.push(server.addr);
        let allowed = retry_allowed(&failed, outgoing.replayable);
        let policy = &pool.config.retry;
        let may_retry = allowed
            && self.record.attempts - tries.stale_retries < policy.attempts
            && self.record.started.elapsed() < policy.deadline
            && outgoing.can_take();
        tries.last = Some((failed.failure, server.label.clone()));
        may_retry
    }

    /// One attempt against one server: a pooled (unless `fresh`) or new connection, the request
    /// sent, the response head read, each phase bounded by its own timeout.
    ///
    /// Not an `async fn`, which would keep the request twice in its state (as argument and as
    /// local); this future is boxed, so every byte of it is copied once per attempt.
    fn attempt(
        &mut self,
        server: &Arc<Server>,
        taken: Taken,
        response_timeout: Duration,
        fresh: bool,
    ) -> impl Future<Output = Result<Attempt, Box<AttemptFailure>>> {
        let Taken {
            request,
            mut sent,
            keep_head,
        } = taken;
        async move {
            let idempotent = request.method().is_idempotent();
            let mut conn = match self.open_connection(server, fresh, !idempotent).await {
                Ok(conn) => conn,
                Err(failure) => {
                    return Err(Box::new(AttemptFailure {
                        failure,
                        request_sent: false,
                        response_bytes: 0,
                        stale_connection: false,
                        cut_short: false,
                        unsent: Some((request, sent)),
                        head: None,
                    }));
                }
            };
            let read_before = conn.stats.read();
            let written_before = conn.stats.written();
            let sending = tokio::time::Instant::now();
            let mut head = None;
            let result = 'sent: {
                let mut send = pin!(conn.sender.try_send_request_keeping(
                    request,
                    self.interim.clone(),
                    keep_head,
                    &mut head,
                ));
                // The response timeout starts once the whole request was handed over (at once
                // without a body, and the clock read for `sending` serves).
                let mut handed_over = sending;
                if let Some(fully_sent) = sent.as_mut() {
                    // An upstream may also answer early (e.g. 413) before the body is complete.
                    tokio::select! {
                        biased;
                        result = &mut send => break 'sent Some(result),
                        _ = fully_sent => {}
                    }
                    handed_over = tokio::time::Instant::now();
                }
                tokio::time::timeout_at(handed_over + response_timeout, send)
                    .await
                    .ok()
            };
            let request_sent = conn.stats.written() > written_before;
            let response_bytes = conn.stats.read() - read_before;
            match result {
                Some(Ok(response)) => {
                    self.record.first_byte = Some(self.record.started.elapsed());
                    conn.note_response(response.headers());
                    Ok(Attempt { response, conn })
                }
                Some(Err(failed)) => {
                    let facts = HeadFacts {
                        response_bytes,
                        reused: conn.reused,
                    };
                    let failure = failed.failure(facts);
                    // An unsent request goes again with the fields it was sent with.
                    let unsent = failed.unsent.map(|mut request| {
                        if let Some(head) = head.take() {
                            *request.headers_mut() = head;
                        }
                        *request
                    });
                    // An HTTP/1.1 server closes an idle connection without a word, so a request
                    // written just then meets the close; an HTTP/2 server says GOAWAY first (its
                    // streams come back unsent), so a stream cut after it was sent is the server's.
                    // And the close came right after the write, as a race's does: a server that
                    // worked on the request for a while and then died is a server's failure.
                    let idle_race =
                        conn.protocol == Protocol::Http1 && sending.elapsed() < STALE_CLOSE_WINDOW;
                    // A request hyper gave back was never written.
                    let request_sent = request_sent && unsent.is_none();
                    Err(Box::new(AttemptFailure {
                        // A kept-alive HTTP/1.1 connection closed before the request was written,
                        // or an HTTP/2 stream refused unprocessed (REFUSED_STREAM, e.g. a burst
                        // that raced the server's stream limit before its SETTINGS arrived): not
                        // the server's failure, so it may be tried again on the same server, at
                        // most MAX_STALE_RETRIES times, without being held against it.
                        stale_connection: conn.reused
                            && (!request_sent || (idempotent && idle_race && response_bytes == 0))
                            && failure.kind == FailureKind::ConnectionTerminated,
                        failure,
                        request_sent,
                        response_bytes,
                        cut_short: false,
                        // An unsent body comes back with its "fully sent" signal, unfired.
                        unsent: unsent.map(|request| (request, sent)),
                        head,
                    }))
                }
                None => Err(Box::new(AttemptFailure {
                    failure: classify::response_timeout(response_timeout),
                    request_sent,
                    response_bytes,
                    stale_connection: false,
                    cut_short: response_timeout < server.settings().response_timeout,
                    unsent: None,
                    head,
                })),
            }
        }
    }

    /// The connection for an attempt. An upgrade takes its connection over for good: always a
    /// new one of its own, never one from the idle pool. Any other request takes an idle
    /// pooled connection (unless `fresh`: the last one was found closed), or a new one;
    /// `careful` when the request could not be sent again (see [`Server::checkout`]).
    async fn open_connection(
        &mut self,
        server: &Arc<Server>,
        fresh: bool,
        careful: bool,
    ) -> Result<Conn, Failure> {
        let opened = if self.upgrade.is_some() {
            Some(Box::pin(self.connect_for_upgrade(server)).await?)
        } else if fresh {
            None
        } else {
            server.checkout(careful).await
        };
        match opened {
            Some(conn) => Ok(conn),
            None => {
                let (conn, connect_time) =
                    Box::pin(server.connect(ConnMode::Pooled, Some((self.client, self.local))))
                        .await?;
                self.record.connect = Some(connect_time);
                Ok(conn)
            }
        }
    }

    /// A new connection for an upgrade request: TLS when the server is a TLS one, always
    /// HTTP/1.1, its task handing the stream over after a 101 (`ConnMode::Upgrade`). What
    /// `Server::connect` does for this mode; called directly because an upgrade connection is
    /// never shared, so none of its pooling applies.
    async fn connect_for_upgrade(&mut self, server: &Server) -> Result<Conn, Failure> {
        let (conn, connect_time) = connect_for(
            server.addr,
            server.settings(),
            ConnMode::Upgrade,
            Some((self.client, self.local)),
        )
        .await?;
        self.record.connect = Some(connect_time);
        Ok(conn)
    }
}
