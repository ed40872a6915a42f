//! The robots.txt guard: the last good `/robots.txt` of each host, kept on disk, served when the
//! origin fails (whatever its cache headers said) for up to `robots.max_age`.
//!
//! Crawlers treat a 5xx on robots.txt as "stop crawling the site"; a days-old copy is far better
//! (Google uses its own cached copy for up to 30 days). Copies live in memory for serving and in
//! `<state_dir>/robots.redb` so that they survive a restart. The disk is written only when a
//! copy changed or the kept one is older than [`REFRESH`], not on every crawl.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use super::disk::DiskStore;
use super::entry::StoredResponse;

/// The path the guard keeps.
pub const ROBOTS_PATH: &str = "/robots.txt";
/// Larger robots.txt files are not kept (Google reads the first 500 KiB).
pub const MAX_ROBOTS_SIZE: usize = 512 * 1024;
/// Hosts kept; beyond that, the oldest copy goes (a flood of made-up Host headers must not
/// grow memory without bound).
const MAX_HOSTS: usize = 10_000;
/// A copy identical to the kept one is written again only after this long (to keep its age).
const REFRESH: Duration = Duration::from_secs(3600);
/// Bound on the guard's file.
const DISK_LIMIT: u64 = 256 * 1024 * 1024;
/// The file in the state directory.
const FILE_NAME: &str = "robots.redb";

pub struct RobotsGuard {
    copies: RwLock<HashMap<String, Arc<StoredResponse>>>,
    disk: Option<Arc<DiskStore>>,
}

impl std::fmt::Debug for RobotsGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RobotsGuard")
            .field("hosts", &self.read().len())
            .field("disk", &self.disk.as_ref().map(|d| d.path().to_owned()))
            .finish()
    }
}

impl RobotsGuard {
    /// A guard without a file (copies are lost on restart).
    pub fn in_memory() -> Self {
        Self {
            copies: RwLock::new(HashMap::new()),
            disk: None,
        }
    }

    /// Opens (creating) `<state_dir>/robots.redb` and loads every kept copy. When the directory
    /// or file cannot be used, logs why and keeps copies in memory only: the guard is on by
    /// default and must never stop gatehouse from starting.
    pub fn open(state_dir: &Path) -> Self {
        let path = state_dir.join(FILE_NAME);
        let opened = std::fs::create_dir_all(state_dir)
            .map_err(|err| format!("cannot create {}: {err}", state_dir.display()))
            .and_then(|()| DiskStore::open(&path, DISK_LIMIT).map_err(|err| err.to_string()));
        let disk = match opened {
            Ok(disk) => disk,
            Err(reason) => {
                tracing::warn!(
                    target: "gatehouse::robots",
                    path = %path.display(),
                    "robots.txt guard keeps copies in memory only: {reason}; set server.state_dir to a writable directory"
                );
                return Self::in_memory();
            }
        };
        let copies = match disk.entries() {
            Ok(entries) => entries
                .into_iter()
                .filter_map(|(host, mut variants)| Some((host, Arc::new(variants.pop()?))))
                .collect(),
            Err(err) => {
                tracing::warn!(target: "gatehouse::robots", error = %err, "cannot read the kept robots.txt copies");
                HashMap::new()
            }
        };
        tracing::info!(
            target: "gatehouse::robots",
            path = %path.display(),
            hosts = copies.len(),
            "robots.txt guard ready"
        );
        Self {
            copies: RwLock::new(copies),
            disk: Some(Arc::new(disk)),
        }
    }

    /// The file copies are kept in, if any.
    pub fn path(&self) -> Option<PathBuf> {
        self.disk.as_ref().map(|d| d.path().to_owned())
    }

    /// Remembers a good (200, complete) robots.txt of `host`.
    pub fn remember(&self, host: &str, copy: StoredResponse) {
        if copy.body.len() > MAX_ROBOTS_SIZE {
            return;
        }
        let unchanged = self.read().get(host).is_some_and(|kept| {
            kept.body == copy.body
                && copy
                    .response_time
                    .duration_since(kept.response_time)
                    .is_ok_and(|since| since < REFRESH)
        });
        if unchanged {
            return;
        }
        {
            let mut copies = self.copies.write().unwrap_or_else(PoisonError::into_inner);
            if copies.len() >= MAX_HOSTS && !copies.contains_key(host) {
                // Full (made-up Host headers, or a very large wildcard site): the copy kept
                // longest ago makes room, so real hosts are never locked out.
                let oldest = copies
                    .iter()
                    .min_by_key(|(_, kept)| kept.response_time)
                    .map(|(host, _)| host.clone());
                if let Some(oldest) = oldest {
                    copies.remove(&oldest);
                    if let Some(disk) = &self.disk {
                        let disk = Arc::clone(disk);
                        tokio::task::spawn_blocking(move || disk.remove(&oldest));
                    }
                }
            }
            copies.insert(host.to_owned(), Arc::new(copy.clone()));
        }
        if let Some(disk) = &self.disk {
            let disk = Arc::clone(disk);
            let host = host.to_owned();
            tokio::task::spawn_blocking(move || {
                if let Err(err) = disk.put(&host, std::slice::from_ref(&copy)) {
                    tracing::warn!(target: "gatehouse::robots", error = %err, "cannot write the robots.txt copy; it is kept in memory");
                }
            });
        }
    }

    /// The kept copy of `host` when it is at most `max_age` old at `now`.
    pub fn copy_for(
        &self,
        host: &str,
        max_age: Duration,
        now: SystemTime,
    ) -> Option<Arc<StoredResponse>> {
        let copy = Arc::clone(self.read().get(host)?);
        let age = now.duration_since(copy.response_time).unwrap_or_default();
        (age <= max_age).then_some(copy)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<StoredResponse>>> {
        self.copies.read().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Where state is kept when `server.state_dir` is not set: `$STATE_DIRECTORY` (systemd's
/// `StateDirectory=`; the first one when several), else `$XDG_STATE_HOME/gatehouse`, else
/// `~/.local/state/gatehouse`, else `gatehouse-state` in the temp directory.
pub fn default_state_dir() -> PathBuf {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dirs) = var("STATE_DIRECTORY")
        && let Some(first) = std::env::split_paths(&dirs).next()
    {
        return first;
    }
    if let Some(state) = var("XDG_STATE_HOME") {
        return PathBuf::from(state).join("gatehouse");
    }
    if let Some(home) = var("HOME") {
        return PathBuf::from(home).join(".local/state/gatehouse");
    }
    std::env::temp_dir().join("gatehouse-state")
}
