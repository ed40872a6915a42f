//! `max_concurrent`: requests one client address has in flight on one route, counted in this
//! process (a count of open requests belongs to the instance that holds them; it is never
//! shared through Redis). A slot is held by an [`InFlight`] guard that travels with the
//! request's access record, so it is freed when the response ends (body included), whichever
//! way it ends.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

const SHARDS: usize = 16;

type Key = (u64, IpAddr);

/// Open requests per (limit, client address); an entry exists only while its count is above 0.
#[derive(Debug)]
pub struct Concurrency {
    shards: Box<[Mutex<HashMap<Key, u32>>]>,
    hasher: RandomState,
}

/// One request's slot; dropping it frees the slot.
#[derive(Debug)]
pub struct InFlight {
    table: Arc<Concurrency>,
    key: Key,
}

impl Default for Concurrency {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
        }
    }
}

impl Concurrency {
    fn shard(&self, key: &Key) -> std::sync::MutexGuard<'_, HashMap<Key, u32>> {
        let index = usize::try_from(self.hasher.hash_one(key) % SHARDS as u64).unwrap_or_default();
        self.shards[index]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A slot for `client` under limit `id`, unless it already has `max` open.
    pub fn acquire(self: &Arc<Self>, id: u64, client: IpAddr, max: u32) -> Option<InFlight> {
        let key = (id, client);
        let mut shard = self.shard(&key);
        let count = shard.entry(key).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(InFlight {
            table: Arc::clone(self),
            key,
        })
    }

    /// Requests open for `client` under limit `id`.
    pub fn open(&self, id: u64, client: IpAddr) -> u32 {
        let key = (id, client);
        self.shard(&key).get(&key).copied().unwrap_or(0)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut shard = self.table.shard(&self.key);
        if let Some(count) = shard.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                shard.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_freed_when_dropped_and_counted_per_client() {
        let table = Arc::new(Concurrency::default());
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let first = table.acquire(1, a, 2);
        let second = table.acquire(1, a, 2);
        assert!(first.is_some() && second.is_some());
        assert!(table.acquire(1, a, 2).is_none(), "a third is refused");
        assert!(table.acquire(1, b, 2).is_some(), "another client is not");
        assert!(table.acquire(2, a, 2).is_some(), "another limit is not");
        drop(first);
        assert_eq!(table.open(1, a), 1);
        assert!(table.acquire(1, a, 2).is_some());
        drop(second);
        assert_eq!(table.open(1, a), 0);
        assert!(table.shards.iter().all(|s| s.lock().unwrap().is_empty()));
    }
}
