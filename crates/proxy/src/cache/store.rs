//! The response store: bounded memory (quick_cache, weighed in bytes) in front of an optional
//! redb file, plus request coalescing.
//!
//! It lives for the whole process, like the observer, so a reload keeps what was stored. Keys
//! are `host` + request target; each key holds the variants its `Vary` produced (at most
//! [`MAX_VARIANTS`], the newest kept).
//!
//! Disk reads and writes are blocking and run on tokio's blocking pool: a write is queued and
//! not awaited (the response never waits for the disk), a read happens only on a memory miss,
//! and what it finds is promoted to memory.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http::HeaderMap;
use tokio::sync::watch;

use super::disk::{DiskError, DiskStore};
use super::entry::StoredResponse;
use super::policy;

/// Variants kept per key; a `Vary` on a field with many values (User-Agent) would otherwise
/// fill the cache with copies of one resource.
pub const MAX_VARIANTS: usize = 8;

/// The stored variants of one key, with their total weight (computed once: the weigher runs
/// during eviction and must be cheap).
#[derive(Debug)]
pub struct Variants {
    entries: Vec<Arc<StoredResponse>>,
    weight: u64,
}

impl Variants {
    fn new(entries: Vec<Arc<StoredResponse>>) -> Self {
        let weight = entries.iter().map(|e| e.weight()).sum();
        Self { entries, weight }
    }

    /// The variant `request` selects (RFC 9111 §4.1), newest first.
    fn select(&self, request: &HeaderMap) -> Option<Arc<StoredResponse>> {
        self.entries
            .iter()
            .rev()
            .find(|entry| policy::selects(entry, request))
            .cloned()
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct ByBytes;

impl quick_cache::Weighter<Arc<str>, Arc<Variants>> for ByBytes {
    fn weight(&self, key: &Arc<str>, value: &Arc<Variants>) -> u64 {
        key.len() as u64 + value.weight
    }
}

type Memory = quick_cache::sync::Cache<Arc<str>, Arc<Variants>, ByBytes>;

/// The process's cache.
pub struct Cache {
    memory: Memory,
    memory_limit: u64,
    disk: Option<Arc<DiskStore>>,
    /// Keys whose response is being fetched by one request, which others wait for.
    fills: Mutex<HashMap<Arc<str>, watch::Sender<()>>>,
    /// Bytes held by response bodies being copied for the store, bounded by the memory size
    /// (many concurrent misses must not buffer without limit).
    capturing: std::sync::atomic::AtomicU64,
    /// Keys invalidated in memory whose removal from disk has not run yet: a lookup must not
    /// bring the old copy back from the file meanwhile.
    removing: Arc<Mutex<HashSet<String>>>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("entries", &self.memory.len())
            .field("bytes", &self.memory.weight())
            .field("memory_limit", &self.memory_limit)
            .field("disk", &self.disk.as_ref().map(|d| d.path().to_owned()))
            .finish_non_exhaustive()
    }
}

/// What a request for a key that is not stored does: fetch it (and let others wait), or wait.
#[derive(Debug)]
pub enum Fill {
    /// This request fetches the response; others wait until the guard is dropped.
    Leader(FillGuard),
    /// Another request is fetching it: wait for `changed()` (or the lock timeout), look again.
    Follower(watch::Receiver<()>),
}

/// Held by the request that fetches a key; dropping it wakes the requests waiting for it. It
/// travels with the response body, so waiters wake after the response was stored (or given up).
#[derive(Debug)]
pub struct FillGuard {
    cache: Arc<Cache>,
    key: Arc<str>,
}

impl Drop for FillGuard {
    fn drop(&mut self) {
        let sender = self
            .cache
            .fills
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.key);
        if let Some(sender) = sender {
            let _ = sender.send(());
        }
    }
}

impl Cache {
    /// A memory-only cache of `memory` bytes, for responses of up to `max_object` bytes.
    pub fn in_memory(memory: u64, max_object: u64) -> Self {
        // quick_cache sizes its tables from an item estimate; 16 KiB per response is a guess
        // that only affects the initial allocation.
        let estimated_items = usize::try_from(memory / (16 * 1024))
            .unwrap_or(usize::MAX)
            .clamp(64, 1 << 20);
        // quick_cache splits the weight over its shards and refuses an item heavier than one
        // shard, so shards hold at least two of the largest responses (its default, 4 per
        // core, would refuse 2 MiB responses on 16 cores with 64 MiB).
        let wanted = (memory / max_object.max(1) / 2).clamp(1, 64);
        let shards = 1usize << (63 - wanted.leading_zeros());
        let options = quick_cache::OptionsBuilder::new()
            .estimated_items_capacity(estimated_items)
            .weight_capacity(memory)
            .shards(shards)
            .build()
            .unwrap_or_else(|err| unreachable!("cache options are in range: {err:?}"));
        Self {
            memory: Memory::with_options(options, ByBytes, Default::default(), Default::default()),
            memory_limit: memory,
            disk: None,
            fills: Mutex::new(HashMap::new()),
            capturing: std::sync::atomic::AtomicU64::new(0),
            removing: Arc::new(Mutex::new(HashSet::new())),
        }
    }

    /// A cache of `memory` bytes in memory backed by the redb file at `path`, bounded by
    /// `disk_size` bytes.
    pub fn with_disk(
        memory: u64,
        max_object: u64,
        path: &Path,
        disk_size: u64,
    ) -> Result<Self, DiskError> {
        let disk = DiskStore::open(path, disk_size)?;
        Ok(Self {
            disk: Some(Arc::new(disk)),
            ..Self::in_memory(memory, max_object)
        })
    }

    /// The variant of `key` that `request` selects: from memory, else from disk (promoted to
    /// memory).
    pub async fn lookup(&self, key: &str, request: &HeaderMap) -> Option<Arc<StoredResponse>> {
        if let Some(variants) = self.memory.get(key) {
            return variants.select(request);
        }
        let disk = Arc::clone(self.disk.as_ref()?);
        if self.lock_removing().contains(key) {
            return None;
        }
        let owned_key = key.to_owned();
        let found = tokio::task::spawn_blocking(move || disk.get(&owned_key))
            .await
            .ok()?;
        let stored = match found {
            Ok(Some(stored)) => stored,
            Ok(None) => return None,
            Err(err) => {
                tracing::warn!(target: "gatehouse::cache", error = %err, "cache file read failed; treated as a miss");
                return None;
            }
        };
        let variants = Arc::new(Variants::new(stored.into_iter().map(Arc::new).collect()));
        let selected = variants.select(request);
        // Invalidated, or stored anew, while the file was read: the file's copy is older.
        if !self.lock_removing().contains(key) && self.memory.get(key).is_none() {
            self.memory.insert(Arc::from(key), variants);
        }
        selected
    }

    /// Stores `entry` under `key`, replacing the variant with the same varied values, in memory
    /// now and on disk in the background.
    pub fn insert(&self, key: &str, entry: StoredResponse) {
        let mut entries: Vec<Arc<StoredResponse>> = self
            .memory
            .get(key)
            .map(|v| {
                v.entries
                    .iter()
                    .filter(|old| old.varied != entry.varied)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        entries.push(Arc::new(entry));
        if entries.len() > MAX_VARIANTS {
            entries.drain(..entries.len() - MAX_VARIANTS);
        }
        let variants = Arc::new(Variants::new(entries));
        if let Some(disk) = &self.disk {
            let disk = Arc::clone(disk);
            let owned_key = key.to_owned();
            let stored: Vec<StoredResponse> =
                variants.entries.iter().map(|e| (**e).clone()).collect();
            tokio::task::spawn_blocking(move || {
                if let Err(err) = disk.put(&owned_key, &stored) {
                    tracing::warn!(target: "gatehouse::cache", error = %err, "cache file write failed; the entry is kept in memory only");
                }
            });
        }
        self.memory.insert(Arc::from(key), variants);
    }

    /// Drops every variant of `key` (an unsafe method's response invalidates it, RFC 9111 §4.4).
    pub fn invalidate(&self, key: &str) {
        self.memory.remove(key);
        if let Some(disk) = &self.disk {
            let disk = Arc::clone(disk);
            let owned_key = key.to_owned();
            self.lock_removing().insert(owned_key.clone());
            let removing = Arc::clone(&self.removing);
            tokio::task::spawn_blocking(move || {
                if let Err(err) = disk.remove(&owned_key) {
                    tracing::warn!(target: "gatehouse::cache", error = %err, "cache file remove failed");
                }
                removing
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&owned_key);
            });
        }
    }

    /// Drops every key `what` selects, in memory and on disk, and returns how many keys went.
    /// The disk file is scanned on the blocking pool; keys found there are kept out of memory
    /// while they are removed (as [`Cache::invalidate`] does).
    pub async fn purge(&self, what: &Purge) -> u64 {
        let mut purged: HashSet<String> = HashSet::new();
        let in_memory: Vec<Arc<str>> = self
            .memory
            .iter()
            .filter(|(key, variants)| what.selects(key, &variants.entries))
            .map(|(key, _)| key)
            .collect();
        for key in in_memory {
            self.memory.remove(&*key);
            purged.insert(key.to_string());
        }
        if let Some(disk) = &self.disk {
            let disk = Arc::clone(disk);
            let removing = Arc::clone(&self.removing);
            let what = what.clone();
            let found = tokio::task::spawn_blocking(move || {
                let entries = match disk.entries() {
                    Ok(entries) => entries,
                    Err(err) => {
                        tracing::warn!(target: "gatehouse::cache", error = %err, "cache file scan for a purge failed");
                        return Vec::new();
                    }
                };
                let mut found = Vec::new();
                for (key, variants) in entries {
                    let variants: Vec<Arc<StoredResponse>> =
                        variants.into_iter().map(Arc::new).collect();
                    if !what.selects(&key, &variants) {
                        continue;
                    }
                    removing
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(key.clone());
                    if let Err(err) = disk.remove(&key) {
                        tracing::warn!(target: "gatehouse::cache", error = %err, "cache file remove failed");
                    }
                    removing
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .remove(&key);
                    found.push(key);
                }
                found
            })
            .await
            .unwrap_or_default();
            for key in found {
                // A lookup may have brought it back to memory while the file was scanned.
                self.memory.remove(key.as_str());
                purged.insert(key);
            }
        }
        purged.len() as u64
    }

    /// Reserves `bytes` for a body being copied; false when copies in flight would exceed
    /// the memory size.
    pub fn reserve_capture(&self, bytes: u64) -> bool {
        use std::sync::atomic::Ordering;
        let limit = self.memory_limit;
        self.capturing
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                held.checked_add(bytes).filter(|total| *total <= limit)
            })
            .is_ok()
    }

    /// Gives back what [`Cache::reserve_capture`] reserved.
    pub fn release_capture(&self, bytes: u64) {
        self.capturing
            .fetch_sub(bytes, std::sync::atomic::Ordering::AcqRel);
    }

    fn lock_removing(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.removing.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Becomes the one request fetching `key`, or learns who is.
    pub fn begin_fill(self: &Arc<Self>, key: &str) -> Fill {
        let mut fills = self.fills.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(sender) = fills.get(key) {
            return Fill::Follower(sender.subscribe());
        }
        let key: Arc<str> = Arc::from(key);
        let (sender, _) = watch::channel(());
        fills.insert(Arc::clone(&key), sender);
        Fill::Leader(FillGuard {
            cache: Arc::clone(self),
            key,
        })
    }

    /// Waits until the leader of a fill is done, at most `limit`. True when it finished.
    pub async fn wait_fill(mut receiver: watch::Receiver<()>, limit: Duration) -> bool {
        // `changed` fails once the sender is gone, which also means the leader is done.
        tokio::time::timeout(limit, receiver.changed())
            .await
            .is_ok()
    }

    /// Entries and bytes in memory, and on disk (for metrics).
    pub fn usage(&self) -> Usage {
        Usage {
            memory_entries: self.memory.len() as u64,
            memory_bytes: self.memory.weight(),
            disk_entries: self.disk.as_ref().map_or(0, |d| d.len()),
            disk_bytes: self.disk.as_ref().map_or(0, |d| d.bytes()),
        }
    }
}

/// What a purge drops (the admin listener's `POST /cache/purge`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Purge {
    /// One URL: its cache key (host, port included when not the default, and request target).
    Key(String),
    /// Every key starting with this (host and path prefix).
    Prefix(String),
    /// Every key with a variant whose response lists this value in `Surrogate-Key`
    /// (space-separated, Fastly's and Varnish's convention) or `Cache-Tag` (comma-separated,
    /// Cloudflare's). Compared exactly.
    Tag(String),
}

impl Purge {
    fn selects(&self, key: &str, variants: &[Arc<StoredResponse>]) -> bool {
        match self {
            Self::Key(wanted) => key == wanted,
            Self::Prefix(prefix) => key.starts_with(prefix.as_str()),
            Self::Tag(tag) => variants.iter().any(|entry| has_tag(&entry.headers, tag)),
        }
    }
}

/// Whether a response is tagged `tag` by its `Surrogate-Key` or `Cache-Tag` fields.
pub fn has_tag(headers: &HeaderMap, tag: &str) -> bool {
    if tag.is_empty() {
        return false;
    }
    let listed = |name: &str, separator: fn(char) -> bool| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .any(|value| value.split(separator).any(|item| item.trim() == tag))
    };
    listed("surrogate-key", char::is_whitespace) || listed("cache-tag", |c| c == ',')
}

/// How full the cache is.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    pub memory_entries: u64,
    pub memory_bytes: u64,
    pub disk_entries: u64,
    pub disk_bytes: u64,
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use http::{HeaderName, HeaderValue, StatusCode};

    use super::*;

    fn entry(accept_encoding: Option<&'static str>, body: &'static str) -> StoredResponse {
        let mut headers = HeaderMap::new();
        headers.insert("vary", HeaderValue::from_static("accept-encoding"));
        StoredResponse {
            status: StatusCode::OK,
            headers,
            body: bytes::Bytes::from_static(body.as_bytes()),
            request_time: SystemTime::now(),
            response_time: SystemTime::now(),
            varied: vec![(
                HeaderName::from_static("accept-encoding"),
                accept_encoding.map(HeaderValue::from_static),
            )],
        }
    }

    fn request(accept_encoding: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("accept-encoding", HeaderValue::from_static(accept_encoding));
        headers
    }

    #[tokio::test]
    async fn variants_are_kept_apart_and_a_new_one_replaces_its_own_kind() {
        let cache = Cache::in_memory(1 << 20, 1 << 16);
        cache.insert("h/x", entry(Some("gzip"), "zipped"));
        cache.insert("h/x", entry(Some("br"), "brotli"));
        cache.insert("h/x", entry(Some("gzip"), "zipped again"));
        let gzip = cache.lookup("h/x", &request("gzip")).await;
        assert_eq!(gzip.map(|e| e.body.clone()), Some("zipped again".into()));
        let br = cache.lookup("h/x", &request("br")).await;
        assert_eq!(br.map(|e| e.body.clone()), Some("brotli".into()));
        assert!(cache.lookup("h/x", &request("zstd")).await.is_none());
        assert_eq!(cache.usage().memory_entries, 1, "one key, two variants");
    }

    #[tokio::test]
    async fn at_most_max_variants_are_kept_per_key() {
        let cache = Cache::in_memory(1 << 20, 1 << 16);
        let names: Vec<&'static str> = (0..=MAX_VARIANTS)
            .map(|i| &*Box::leak(format!("enc{i}").into_boxed_str()))
            .collect();
        for name in &names {
            cache.insert("h/x", entry(Some(name), "b"));
        }
        assert!(
            cache.lookup("h/x", &request(names[0])).await.is_none(),
            "the oldest went"
        );
        assert!(
            cache
                .lookup("h/x", &request(names[MAX_VARIANTS]))
                .await
                .is_some()
        );
    }

    #[tokio::test]
    async fn one_request_fills_a_key_and_the_others_wake_when_it_is_done() {
        let cache = Arc::new(Cache::in_memory(1 << 20, 1 << 16));
        let Fill::Leader(guard) = cache.begin_fill("h/x") else {
            panic!("the first request leads");
        };
        let Fill::Follower(waiting) = cache.begin_fill("h/x") else {
            panic!("the second one waits");
        };
        let waiter = tokio::spawn(Cache::wait_fill(waiting, Duration::from_secs(5)));
        cache.insert("h/x", entry(None, "filled"));
        drop(guard);
        assert!(
            waiter.await.unwrap_or(false),
            "woken before the lock timeout"
        );
        assert!(
            matches!(cache.begin_fill("h/x"), Fill::Leader(_)),
            "the key is free again"
        );
    }

    fn tagged(tags: &[(&'static str, &'static str)]) -> StoredResponse {
        let mut stored = entry(None, "t");
        stored.headers.remove("vary");
        stored.varied.clear();
        for (name, value) in tags {
            stored
                .headers
                .append(*name, HeaderValue::from_static(value));
        }
        stored
    }

    #[tokio::test]
    async fn purge_by_key_prefix_and_tag() {
        let cache = Cache::in_memory(1 << 20, 1 << 16);
        cache.insert("h/a", tagged(&[("surrogate-key", "red  blue")]));
        cache.insert("h/b", tagged(&[("cache-tag", "green, blue")]));
        cache.insert("h/c/1", tagged(&[]));
        cache.insert("h/c/2", tagged(&[]));
        cache.insert("g/a", tagged(&[("surrogate-key", "bluest")]));
        let none = HeaderMap::new();
        assert_eq!(cache.purge(&Purge::Key("h/zzz".into())).await, 0);
        assert_eq!(cache.purge(&Purge::Key("h/c/1".into())).await, 1);
        assert!(cache.lookup("h/c/1", &none).await.is_none());
        assert!(cache.lookup("h/c/2", &none).await.is_some());
        assert_eq!(cache.purge(&Purge::Tag("blue".into())).await, 2);
        assert!(cache.lookup("h/a", &none).await.is_none());
        assert!(cache.lookup("h/b", &none).await.is_none());
        assert!(
            cache.lookup("g/a", &none).await.is_some(),
            "bluest is not blue"
        );
        assert_eq!(cache.purge(&Purge::Prefix("h/".into())).await, 1);
        assert!(cache.lookup("g/a", &none).await.is_some());
        assert_eq!(cache.usage().memory_entries, 1);
    }

    #[test]
    fn tags_are_list_members_not_substrings() {
        let stored = tagged(&[("surrogate-key", "a b"), ("cache-tag", "c,d ,e")]);
        for tag in ["a", "b", "c", "d", "e"] {
            assert!(has_tag(&stored.headers, tag), "{tag}");
        }
        for tag in ["", "ab", "a b", "c,d", " "] {
            assert!(!has_tag(&stored.headers, tag), "{tag:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_gives_up_after_the_lock_timeout() {
        let cache = Arc::new(Cache::in_memory(1 << 20, 1 << 16));
        let _leader = cache.begin_fill("h/x");
        let Fill::Follower(waiting) = cache.begin_fill("h/x") else {
            panic!("the second one waits");
        };
        assert!(!Cache::wait_fill(waiting, Duration::from_secs(5)).await);
    }
}
