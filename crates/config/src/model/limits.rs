//! `[limits]` and a route's `[route.limit]`: rate and concurrency limits and their store.

use std::time::Duration;

/// `[limits]`: the store every `[route.limit]` keeps its counters in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitsConfig {
    /// `store`: `"memory"` (the default: one set of counters per gatehouse instance, shared by
    /// its workers) or a `redis://` URL (one set shared by every instance using it).
    pub store: LimitStore,
    /// How long one decision may wait for the store before it counts as failed. Default 50ms.
    pub timeout: Duration,
    /// What a failed store decision does: let the request through (`open`, the default) or
    /// answer 503 (`closed`).
    pub fail: LimitFail,
    /// Bound on the keys the memory store tracks (the expired ones are swept first, then the
    /// closest to a full refill go). Default 100000.
    pub max_keys: usize,
}

/// `limits.store`
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitStore {
    Memory,
    /// `redis://[[user]:password@]host[:port][/db]`: Redis or Valkey, plain TCP.
    Redis(RedisAddress),
}

/// A parsed `redis://` URL.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisAddress {
    /// Host name or IP literal (IPv6 without brackets).
    pub host: String,
    /// Default 6379.
    pub port: u16,
    /// `SELECT`ed after connecting. Default 0.
    pub db: u32,
    /// For `AUTH` (Redis 6 ACL user); `None` = the default user.
    pub username: Option<String>,
    /// For `AUTH`; `None` = no AUTH.
    pub password: Option<String>,
}

impl std::fmt::Debug for RedisAddress {
    /// Never shows the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisAddress")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("db", &self.db)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

impl std::fmt::Display for RedisAddress {
    /// `redis://host:port/db`, without the credentials: for logs and the status page.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "redis://[{}]:{}/{}", self.host, self.port, self.db)
        } else {
            write!(f, "redis://{}:{}/{}", self.host, self.port, self.db)
        }
    }
}

/// `limits.fail`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitFail {
    /// The request goes on unlimited (a warning, a metric, the status page tell).
    Open,
    /// The request is answered 503.
    Closed,
}

/// `[route.limit]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteLimit {
    /// `rate`, `period`, `burst`; `None` = no rate limit (only `max_concurrent`).
    pub rate: Option<RateLimit>,
    /// What a client is: `key`. Default the client address.
    pub key: LimitKey,
    /// `max_concurrent`: requests one client address may have in flight on this route.
    pub max_concurrent: Option<u32>,
}

/// A GCRA rate: `requests` per `period`, up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RateLimit {
    pub requests: u32,
    /// Default 1s.
    pub period: Duration,
    /// Default `requests`.
    pub burst: u32,
}

/// `route.limit.key`
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LimitKey {
    /// `"client"`: the client address.
    Client,
    /// `"header:NAME"`: the value of a request header (name lowercase).
    Header(String),
    /// `"cookie:NAME"`: the value of a cookie.
    Cookie(String),
}
