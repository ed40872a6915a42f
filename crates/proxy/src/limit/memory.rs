//! The memory store: every key's TAT in this process, shared by all worker threads (a limit is
//! one limit per gatehouse instance, however many workers serve it).
//!
//! Sharded: a key hashes to one of [`SHARDS`] maps, each behind its own mutex held for a
//! lookup and a store only, so workers rarely wait on each other. Memory is bounded by
//! `max_keys`: a shard that is full first drops its expired keys (a TAT in the past says no
//! more than an absent key), then, if still full, the key closest to a full refill, which is
//! the one whose loss gives a client the least. It lives as long as the process, so a reload
//! keeps the counters of every limit it does not change (see [`super::LimitId`]).

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::time::Instant;

use super::gcra::{Gcra, Verdict};

/// Enough that two workers seldom meet on one mutex.
const SHARDS: usize = 64;

type Key = (u64, Box<str>);

#[derive(Debug)]
pub struct MemoryStore {
    shards: Box<[Mutex<HashMap<Key, u64>>]>,
    hasher: RandomState,
    max_keys: AtomicUsize,
    epoch: Instant,
}

impl MemoryStore {
    pub fn new(max_keys: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
            max_keys: AtomicUsize::new(max_keys),
            epoch: Instant::now(),
        }
    }

    /// A reload may change `limits.max_keys`; shards shrink as keys come and go.
    pub fn set_max_keys(&self, max_keys: usize) {
        self.max_keys.store(max_keys, Ordering::Relaxed);
    }

    /// Microseconds on this store's clock.
    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// Decides one request of `key` under limit `id`.
    pub fn decide(&self, gcra: Gcra, id: u64, key: &str) -> Verdict {
        self.decide_at(gcra, id, key, self.now())
    }

    fn decide_at(&self, gcra: Gcra, id: u64, key: &str, now: u64) -> Verdict {
        let shard_index =
            usize::try_from(self.hasher.hash_one((id, key)) % SHARDS as u64).unwrap_or_default();
        let per_shard = (self.max_keys.load(Ordering::Relaxed) / SHARDS).max(1);
        let mut shard = self.shards[shard_index]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // A lookup by (id, &str) would need a borrowed key type; a short-lived box is cheaper to
        // read than that is to write, and keys are short (long ones are hashed, see `client_key`).
        let owned: Key = (id, key.into());
        let tat = shard.get(&owned).copied();
        let (verdict, next) = gcra.decide(tat, now);
        if let Some(next) = next {
            if tat.is_none() && shard.len() >= per_shard {
                make_room(&mut shard, per_shard, now);
            }
            shard.insert(owned, next);
        }
        verdict
    }

    /// Keys held now (for tests and the status page).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map_or(0, |s| s.len()))
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Drops the expired keys; if that frees nothing, the one nearest a full refill.
fn make_room(shard: &mut HashMap<Key, u64>, per_shard: usize, now: u64) {
    shard.retain(|_, tat| *tat > now);
    while shard.len() >= per_shard {
        let Some(oldest) = shard
            .iter()
            .min_by_key(|(_, tat)| **tat)
            .map(|(key, _)| key.clone())
        else {
            break;
        };
        shard.remove(&oldest);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use gatehouse_config::RateLimit;

    use super::*;

    fn gcra(requests: u32, burst: u32) -> Gcra {
        Gcra::new(&RateLimit {
            requests,
            period: Duration::from_secs(1),
            burst,
        })
    }

    #[test]
    fn keys_and_limits_are_counted_apart() {
        let store = MemoryStore::new(1000);
        let g = gcra(1, 2);
        let allowed = |id, key| {
            (0..5)
                .filter(|_| matches!(store.decide_at(g, id, key, 10), Verdict::Allow { .. }))
                .count()
        };
        assert_eq!(allowed(1, "a"), 2);
        assert_eq!(allowed(1, "b"), 2);
        assert_eq!(allowed(2, "a"), 2);
        assert_eq!(allowed(1, "a"), 0);
    }

    #[test]
    fn memory_stays_bounded_and_expired_keys_go_first() {
        let store = MemoryStore::new(SHARDS * 4);
        let g = gcra(1, 1);
        for i in 0..10_000 {
            store.decide_at(g, 1, &format!("client-{i}"), 1_000_000);
        }
        assert!(store.len() <= SHARDS * 4, "{}", store.len());
        // A key far from a full refill survives new keys once the others have expired.
        let slow = Gcra::new(&RateLimit {
            requests: 1,
            period: Duration::from_secs(60),
            burst: 1,
        });
        let later = 10_000_000;
        store.decide_at(slow, 2, "kept", later);
        for i in 0..1000 {
            store.decide_at(g, 1, &format!("new-{i}"), later);
        }
        assert!(
            matches!(
                store.decide_at(slow, 2, "kept", later),
                Verdict::Deny { .. }
            ),
            "the counting key was evicted before expired ones"
        );
    }

    #[test]
    fn workers_share_one_limit() {
        let store = std::sync::Arc::new(MemoryStore::new(1000));
        let g = gcra(1, 100);
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let store = std::sync::Arc::clone(&store);
                std::thread::spawn(move || {
                    (0..100)
                        .filter(|_| matches!(store.decide_at(g, 7, "k", 5), Verdict::Allow { .. }))
                        .count()
                })
            })
            .collect();
        let total: usize = threads.into_iter().map(|t| t.join().unwrap_or(0)).sum();
        assert_eq!(total, 100, "exactly the burst across all threads");
    }
}
