//! Pick a server: the pool's members, the request's consistent-hash key, and for each attempt
//! a server that is available and not yet tried, while the retry budget allows another try.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use gatehouse_config::HashKey;
use http::Response;
use http::header;
use http::request::Parts;
use tokio::time::Instant;

use super::Pipeline;
use super::caching::OriginFailed;
use crate::body::ProxyBody;
use crate::failure::Failure;
use crate::observe::access_log::AttemptContext;
use crate::upstream::balance::stable_hash;
use crate::upstream::pool::{Members, NoServer, Pool};
use crate::upstream::server::Lease;

/// How long past the DNS timeout a request waits for a pool's first resolution at startup.
const MEMBERS_WAIT_SLACK: Duration = Duration::from_millis(500);

/// The servers a request has tried so far, and how its last attempt failed.
#[derive(Default)]
pub(super) struct Tries {
    /// Servers charged with a failed attempt.
    pub(super) tried: Vec<SocketAddr>,
    /// The last attempt's failure and the server it came from.
    pub(super) last: Option<(Failure, String)>,
    /// Attempts that met only a stale kept-alive connection (see `attempt::MAX_STALE_RETRIES`).
    pub(super) stale_retries: u32,
    /// The next attempt opens a new connection: the last pooled one was found closed.
    pub(super) fresh_connection: bool,
}

/// What picking a server for the next attempt came to.
pub(super) enum Pick {
    Lease(Lease),
    /// Nothing in the pool can take the first attempt: this failure, naming this next hop.
    NoServer(Failure, Option<String>),
    /// No other server to try, or the retry budget refused: the last attempt's failure stands.
    Stop,
}

impl Pipeline<'_> {
    /// The pool's servers (waiting only at startup, until its host names were resolved once),
    /// and the request's consistent-hash key when the pool balances by one.
    pub(super) async fn candidates(
        &self,
        pool: &Pool,
        parts: &Parts,
    ) -> (Arc<Members>, Option<u64>) {
        let members = pool
            .ready_members(self.snapshot.config.dns.timeout + MEMBERS_WAIT_SLACK)
            .await;
        let hash_key = pool
            .balancer
            .hash_key()
            .and_then(|key| balance_key(key, &parts.headers, self.client));
        (members, hash_key)
    }

    /// A server for the next attempt. A retry (`retry`) needs an untried server and a token
    /// from the pool's retry budget.
    pub(super) async fn pick_server(
        &self,
        pool: &Pool,
        members: &Members,
        hash_key: Option<u64>,
        tries: &Tries,
        retry: bool,
    ) -> Pick {
        if retry && !tries.tried.is_empty() && !members.has_untried(&tries.tried, Instant::now()) {
            // Nothing left to try (a single server, say): no budget spent, no queueing.
            return Pick::Stop;
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
            return Pick::Stop;
        }
        match pool.acquire(members, hash_key, &tries.tried).await {
            Ok(lease) => Pick::Lease(lease),
            Err(NoServer::Failure(failure, next_hop)) if tries.last.is_none() => {
                Pick::NoServer(failure, next_hop)
            }
            // No other server to try: the last attempt's failure is the answer.
            Err(NoServer::Failure(..) | NoServer::AllTried) => Pick::Stop,
        }
    }

    /// No server could take the first attempt: the failure is reported as attempt 1, and a
    /// stale copy stands in for it when there is one.
    pub(super) async fn no_server(
        &mut self,
        pool: &Pool,
        failure: Failure,
        next_hop: Option<String>,
        head_only: bool,
    ) -> Response<ProxyBody> {
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
        self.fail(&failure, head_only, next_hop.as_deref())
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
