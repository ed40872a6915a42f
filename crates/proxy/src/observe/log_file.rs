//! Log files that logrotate can rotate: appended to, and reopened at their path on request
//! (SIGUSR1), so that after logrotate renamed the file (its `create` mode) lines go to a new
//! file at the configured path.
//!
//! A [`LogFile`] is the writer behind a non-blocking queue ([`non_blocking`]): request handling
//! only queues a line; a background thread writes it. Each line is written with one `write_all`
//! under a lock, so a reopen never splits a line. Lines still queued when the file is reopened
//! go to the new file; none is lost.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tracing_appender::non_blocking::{NonBlocking, NonBlockingBuilder, WorkerGuard};

/// A log file at a fixed path; clones share the open file.
#[derive(Debug, Clone)]
pub struct LogFile {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    file: Mutex<File>,
}

impl LogFile {
    /// Opens `path` for appending, creating it if missing.
    pub fn open(path: &Path) -> io::Result<Self> {
        Ok(Self {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                file: Mutex::new(open_append(path)?),
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Opens the path again and writes there from now on. On failure (the directory is gone,
    /// permissions changed), the old file stays in use and the error is returned.
    pub fn reopen(&self) -> io::Result<()> {
        let fresh = open_append(&self.inner.path)?;
        let old = std::mem::replace(&mut *self.lock(), fresh);
        drop(old);
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, File> {
        self.inner
            .file
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

impl Write for LogFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.lock().write(buf)
    }

    /// The whole line under one lock: a reopen cannot come between its parts.
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.lock().write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.lock().flush()
    }
}

/// A queue in front of `writer`, written by a background thread named `thread`. It blocks
/// rather than drops when full (like the main log: a line is never lost silently). Keep the
/// guard until exit: dropping it flushes the queue.
pub fn non_blocking<W: Write + Send + 'static>(
    writer: W,
    thread: &str,
) -> (NonBlocking, WorkerGuard) {
    NonBlockingBuilder::default()
        .lossy(false)
        .thread_name(thread)
        .finish(writer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_path(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("gatehouse-log-file-{}-{name}", std::process::id()))
    }

    #[test]
    fn reopen_writes_to_a_new_file_after_a_rename() {
        let path = temp_path("rotate.log");
        let rotated = temp_path("rotate.log.1");
        let mut file = LogFile::open(&path).unwrap_or_else(|e| panic!("open: {e}"));
        file.write_all(b"one\n")
            .unwrap_or_else(|e| panic!("write: {e}"));
        std::fs::rename(&path, &rotated).unwrap_or_else(|e| panic!("rename: {e}"));
        file.write_all(b"two\n")
            .unwrap_or_else(|e| panic!("write: {e}"));
        file.reopen().unwrap_or_else(|e| panic!("reopen: {e}"));
        file.write_all(b"three\n")
            .unwrap_or_else(|e| panic!("write: {e}"));
        let old = std::fs::read_to_string(&rotated).unwrap_or_default();
        let new = std::fs::read_to_string(&path).unwrap_or_default();
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_file(&rotated);
        assert_eq!((old.as_str(), new.as_str()), ("one\ntwo\n", "three\n"));
    }

    #[test]
    fn failed_reopen_keeps_the_old_file() {
        let dir = temp_path("gone");
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir: {e}"));
        let path = dir.join("g.log");
        let mut file = LogFile::open(&path).unwrap_or_else(|e| panic!("open: {e}"));
        let kept = temp_path("kept.log");
        std::fs::rename(&path, &kept).unwrap_or_else(|e| panic!("rename: {e}"));
        std::fs::remove_dir(&dir).unwrap_or_else(|e| panic!("rmdir: {e}"));
        assert!(file.reopen().is_err());
        file.write_all(b"still here\n")
            .unwrap_or_else(|e| panic!("write: {e}"));
        let text = std::fs::read_to_string(&kept).unwrap_or_default();
        let _ = std::fs::remove_file(&kept);
        assert_eq!(text, "still here\n");
    }

    #[test]
    fn appends_to_an_existing_file() {
        let path = temp_path("append.log");
        std::fs::write(&path, "before\n").unwrap_or_else(|e| panic!("write: {e}"));
        let mut file = LogFile::open(&path).unwrap_or_else(|e| panic!("open: {e}"));
        file.write_all(b"after\n")
            .unwrap_or_else(|e| panic!("write: {e}"));
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let _ = std::fs::remove_file(&path);
        assert_eq!(text, "before\nafter\n");
    }
}
