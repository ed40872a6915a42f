//! Rate and concurrency limits per route (`[route.limit]`), with their counters in this
//! process's memory or in Redis (`[limits] store`).
//!
//! [`Limits`] lives as long as the process (in the snapshot's lasting state): the memory store,
//! the concurrency table and the Redis connection, so a reload keeps them. Each snapshot gets an
//! [`InForce`]: the store and settings its config names. A limit is identified by
//! [`LimitId`] (its route and its numbers), so a reload that leaves a limit unchanged keeps its
//! counters, and one that changes it starts it afresh.
//!
//! What a client is (the key) comes from the request: its address (the pipeline's client
//! address, the real one behind trusted proxies), a header or a cookie; a request without the
//! header or cookie is counted by its address. This module decides; the pipeline
//! (`service/limit.rs`) answers, logs and counts.

pub mod concurrency;
pub mod gcra;
pub mod memory;
pub mod redis;
pub mod resp;

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gatehouse_config::{LimitFail, LimitKey, LimitStore, LimitsConfig, RateLimit, RouteLimit};
use http::HeaderMap;
use http::header::{self, HeaderValue};

use concurrency::{Concurrency, InFlight};
use gcra::{Gcra, Verdict, ceil_secs};
use memory::MemoryStore;
use redis::{RedisStore, StoreError, StoreHealth};

/// A client key longer than this is replaced by a hash of it, so a huge header value costs
/// the store no more than a short one.
const MAX_KEY_LEN: usize = 96;

/// The process-wide part: stores and the concurrency table.
#[derive(Debug)]
pub struct Limits {
    memory: Arc<MemoryStore>,
    concurrency: Arc<Concurrency>,
    /// The Redis store in use, kept across reloads that name the same server (and its
    /// connection with it).
    redis: Mutex<Option<Arc<RedisStore>>>,
}

/// What one snapshot limits with.
#[derive(Debug, Clone)]
pub struct InForce {
    /// Some route has a rate limit (else the store is not even connected to).
    pub in_use: bool,
    store: Store,
    pub timeout: Duration,
    pub fail: LimitFail,
    memory: Arc<MemoryStore>,
    concurrency: Arc<Concurrency>,
}

#[derive(Debug, Clone)]
enum Store {
    Memory,
    Redis(Arc<RedisStore>),
}

/// A limit's identity: a stable hash of its route and its numbers (FNV-1a, the same in every
/// instance and version, since Redis keys are named by it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LimitId(pub u64);

/// The outcome of the rate limit for one request.
#[derive(Debug)]
pub enum RateOutcome {
    Allowed {
        remaining: u64,
        reset: u64,
    },
    Refused {
        retry_after: u64,
    },
    /// The store gave no answer: the caller fails open or closed.
    StoreFailed(StoreError),
}

impl Default for Limits {
    fn default() -> Self {
        Self::new(100_000)
    }
}

impl Limits {
    pub fn new(max_keys: usize) -> Self {
        Self {
            memory: Arc::new(MemoryStore::new(max_keys)),
            concurrency: Arc::new(Concurrency::default()),
            redis: Mutex::new(None),
        }
    }

    /// The store and settings `config` names; the Redis connection is made here (its task on
    /// the current runtime) unless the one in use already goes to that server. A store no
    /// longer named is let go: its connection closes once the last snapshot using it is gone.
    /// Keys the memory store holds are bounded by `max_keys` from now on.
    pub fn in_force(&self, config: &LimitsConfig, used: bool) -> InForce {
        self.memory.set_max_keys(config.max_keys);
        let mut redis = self
            .redis
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let store = match &config.store {
            LimitStore::Redis(address) if used => {
                let store = match &*redis {
                    Some(store) if store.address == *address => Arc::clone(store),
                    _ => {
                        let io_timeout = (config.timeout * 10).max(Duration::from_secs(1));
                        let store = Arc::new(RedisStore::start(address.clone(), io_timeout));
                        *redis = Some(Arc::clone(&store));
                        store
                    }
                };
                Store::Redis(store)
            }
            _ => {
                *redis = None;
                Store::Memory
            }
        };
        drop(redis);
        InForce {
            in_use: used,
            store,
            timeout: config.timeout,
            fail: config.fail,
            memory: Arc::clone(&self.memory),
            concurrency: Arc::clone(&self.concurrency),
        }
    }
}

impl InForce {
    /// The Redis store's address and health, when the counters are in Redis.
    pub fn redis(&self) -> Option<(String, &StoreHealth)> {
        match &self.store {
            Store::Memory => None,
            Store::Redis(store) => Some((store.address.to_string(), &store.health)),
        }
    }

    /// Keys the memory store tracks.
    pub fn memory_keys(&self) -> usize {
        self.memory.len()
    }

    /// Decides one request of the client `key` under `rate`.
    pub async fn rate(&self, id: LimitId, rate: &RateLimit, key: &str) -> RateOutcome {
        let gcra = Gcra::new(rate);
        let verdict = match &self.store {
            Store::Memory => self.memory.decide(gcra, id.0, key),
            Store::Redis(store) => {
                let redis_key = format!("gatehouse:limit:{:016x}:{key}", id.0).into_bytes();
                match store.decide(redis_key, gcra, self.timeout).await {
                    Ok(verdict) => verdict,
                    Err(error) => {
                        store
                            .health
                            .failed
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        return RateOutcome::StoreFailed(error);
                    }
                }
            }
        };
        match verdict {
            Verdict::Allow { remaining, reset } => RateOutcome::Allowed { remaining, reset },
            Verdict::Deny { retry_after, .. } => RateOutcome::Refused { retry_after },
        }
    }

    /// A slot for `client` under limit `id`, unless it has `max` requests open already.
    pub fn acquire(&self, id: LimitId, client: IpAddr, max: u32) -> Option<InFlight> {
        self.concurrency.acquire(id.0, client, max)
    }
}

impl LimitId {
    /// The identity of the limit of the route labelled `route`.
    pub fn of(route: &str, limit: &RouteLimit) -> Self {
        let mut hash = Fnv::default();
        hash.write(route.as_bytes());
        hash.write(&[0]);
        if let Some(rate) = &limit.rate {
            hash.write(&rate.requests.to_le_bytes());
            hash.write(&rate.period.as_micros().to_le_bytes());
            hash.write(&rate.burst.to_le_bytes());
        }
        match &limit.key {
            LimitKey::Client => hash.write(b"client"),
            LimitKey::Header(name) => {
                hash.write(b"header:");
                hash.write(name.as_bytes());
            }
            LimitKey::Cookie(name) => {
                hash.write(b"cookie:");
                hash.write(name.as_bytes());
            }
        }
        Self(hash.0)
    }
}

/// The client's key for `source`: `h:VALUE` for a header, `k:VALUE` for a cookie, `c:ADDRESS`
/// when the request has neither (or the source is the address). A key longer than
/// [`MAX_KEY_LEN`] becomes `#` and a 128-bit hash of it.
pub fn client_key(source: &LimitKey, headers: &HeaderMap, client: IpAddr) -> String {
    let found = match source {
        LimitKey::Client => None,
        LimitKey::Header(name) => headers
            .get(name.as_str())
            .map(|v| v.as_bytes())
            .filter(|v| !v.is_empty())
            .map(|v| ("h:", v)),
        LimitKey::Cookie(name) => cookie(headers, name).map(|v| ("k:", v)),
    };
    let Some((prefix, value)) = found else {
        return format!("c:{client}");
    };
    if prefix.len() + value.len() <= MAX_KEY_LEN
        && value.iter().all(|b| b.is_ascii_graphic() || *b == b' ')
    {
        let mut key = String::with_capacity(prefix.len() + value.len());
        key.push_str(prefix);
        key.push_str(&String::from_utf8_lossy(value));
        return key;
    }
    let mut first = Fnv::default();
    first.write(prefix.as_bytes());
    first.write(value);
    let mut second = Fnv(0x6c62_272e_07bb_0142);
    second.write(value);
    second.write(prefix.as_bytes());
    format!("#{:016x}{:016x}", first.0, second.0)
}

/// The value of cookie `name` among the request's `Cookie` fields (RFC 6265 §5.4).
fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h [u8]> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .flat_map(|value| value.as_bytes().split(|b| *b == b';'))
        .find_map(|pair| {
            let pair = pair.trim_ascii();
            let eq = pair.iter().position(|b| *b == b'=')?;
            (pair[..eq].trim_ascii() == name.as_bytes()).then(|| pair[eq + 1..].trim_ascii())
        })
        .filter(|v| !v.is_empty())
}

/// The `RateLimit-Policy` field (draft-ietf-httpapi-ratelimit-headers, structured-field form):
/// `"default";q=REQUESTS;w=PERIOD_SECONDS`.
pub fn policy_header(rate: &RateLimit) -> HeaderValue {
    let window = rate.period.as_secs() + u64::from(rate.period.subsec_nanos() > 0);
    HeaderValue::from_str(&format!(
        "\"default\";q={};w={}",
        rate.requests,
        window.max(1)
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("\"default\""))
}

/// The `RateLimit` field: `"default";r=REMAINING;t=SECONDS`. `t` is when the quota is whole
/// again for an allowed request, and when the next request is allowed for a refused one.
pub fn rate_header(remaining: u64, micros: u64) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "\"default\";r={remaining};t={}",
        ceil_secs(micros)
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("\"default\""))
}

/// FNV-1a, 64 bits.
#[derive(Debug)]
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn keys_come_from_the_source_and_fall_back_to_the_address() {
        let ip: IpAddr = [192, 0, 2, 7].into();
        let h = headers(&[
            ("x-api-key", "abc"),
            ("cookie", "a=1; session=s3cr3t"),
            ("cookie", "other=2"),
        ]);
        assert_eq!(client_key(&LimitKey::Client, &h, ip), "c:192.0.2.7");
        assert_eq!(
            client_key(&LimitKey::Header("x-api-key".into()), &h, ip),
            "h:abc"
        );
        assert_eq!(
            client_key(&LimitKey::Cookie("session".into()), &h, ip),
            "k:s3cr3t"
        );
        assert_eq!(client_key(&LimitKey::Cookie("other".into()), &h, ip), "k:2");
        assert_eq!(
            client_key(&LimitKey::Header("x-missing".into()), &h, ip),
            "c:192.0.2.7"
        );
        assert_eq!(
            client_key(&LimitKey::Cookie("sess".into()), &h, ip),
            "c:192.0.2.7"
        );
        let long = "x".repeat(5000);
        let key = client_key(
            &LimitKey::Header("x-api-key".into()),
            &headers(&[("x-api-key", &long)]),
            ip,
        );
        assert_eq!(key.len(), 33);
        assert!(key.starts_with('#'));
    }

    #[test]
    fn a_limit_is_the_same_limit_while_its_route_and_numbers_are() {
        let limit = |requests| RouteLimit {
            rate: Some(RateLimit {
                requests,
                period: Duration::from_secs(1),
                burst: 5,
            }),
            key: LimitKey::Client,
            max_concurrent: None,
        };
        assert_eq!(
            LimitId::of("/api", &limit(5)),
            LimitId::of("/api", &limit(5))
        );
        assert_ne!(
            LimitId::of("/api", &limit(5)),
            LimitId::of("/api", &limit(6))
        );
        assert_ne!(LimitId::of("/api", &limit(5)), LimitId::of("/", &limit(5)));
    }

    #[test]
    fn header_fields_in_structured_form() {
        let rate = RateLimit {
            requests: 100,
            period: Duration::from_secs(60),
            burst: 10,
        };
        assert_eq!(policy_header(&rate), "\"default\";q=100;w=60");
        let rate = RateLimit {
            period: Duration::from_millis(500),
            ..rate
        };
        assert_eq!(policy_header(&rate), "\"default\";q=100;w=1");
        assert_eq!(rate_header(0, 4_200_000), "\"default\";r=0;t=5");
    }
}
