//! Unique temporary files (std only), removed on drop.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A file path in the temp directory that no other test (or process) uses; the file, if
/// created, is removed when this is dropped.
#[derive(Debug)]
pub struct TempFile {
    path: PathBuf,
}

impl TempFile {
    pub fn new(prefix: &str, suffix: &str) -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("{prefix}-{}-{n}-{nanos}{suffix}", std::process::id());
        Self {
            path: std::env::temp_dir().join(name),
        }
    }

    /// A new temp file holding `contents`.
    pub fn with_contents(prefix: &str, suffix: &str, contents: &[u8]) -> Self {
        let file = Self::new(prefix, suffix);
        std::fs::write(&file.path, contents)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", file.path.display()));
        file
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        // A path used as a directory (see `TempFile::dir`) is removed with what it holds.
        if self.path.is_dir() {
            let _ = std::fs::remove_dir_all(&self.path);
        } else {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl TempFile {
    /// A new, empty temp directory, removed with its contents when dropped.
    pub fn dir(prefix: &str) -> Self {
        let dir = Self::new(prefix, "");
        std::fs::create_dir_all(&dir.path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.path.display()));
        dir
    }
}
