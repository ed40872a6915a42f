//! Log files that logrotate can rotate: appended to, and reopened at their path on request
//! (SIGUSR1), so that after logrotate renamed the file (its `create` mode) lines go to a new
//! file at the configured path.
//!
//! A [`LogFile`] is the writer behind a non-blocking queue ([`non_blocking`]): request handling
//! only queues a line ([`LineQueue`]); a background thread writes the lines queued meanwhile
//! in one `write_all` under the file's lock, so a reopen never splits a line. Lines still queued
//! when the file is reopened go to the new file; none is lost.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

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

/// How long the writer thread lets lines gather after the first one arrives: the most a line
/// waits before it is written (nginx's `flush=` of a buffered log, kept short).
const GATHER: std::time::Duration = std::time::Duration::from_millis(2);
/// Bytes of lines that may wait for the writer thread; beyond this a logging request waits
/// (a line is never dropped).
const MAX_QUEUED: usize = 8 * 1024 * 1024;

/// The request side of a log queue: appends whole lines to a batch that a background thread
/// writes out. The thread sleeps until there is something to write, lets a burst gather for
/// [`GATHER`], then takes the whole batch at once: a burst of lines costs one write, and a
/// logging request wakes the thread only when it sleeps (no spinning, no system call per line).
#[derive(Debug, Clone)]
pub struct LineQueue {
    shared: Arc<Queue>,
}

#[derive(Debug, Default)]
struct Queue {
    state: Mutex<QueueState>,
    /// The writer thread waits here for lines.
    filled: Condvar,
    /// Requests wait here while the batch is full.
    drained: Condvar,
}

#[derive(Debug, Default)]
struct QueueState {
    batch: Vec<u8>,
    writer_asleep: bool,
    closed: bool,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Write for LineQueue {
    /// Takes all of `buf`: the log formatter hands over one whole line per call.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut state = self.shared.lock();
        while state.batch.len() >= MAX_QUEUED && !state.closed {
            state = self
                .shared
                .drained
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        if state.closed {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        state.batch.extend_from_slice(buf);
        if std::mem::take(&mut state.writer_asleep) {
            self.shared.filled.notify_one();
        }
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.write(buf).map(drop)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Keeps the writer thread; dropping it writes what is queued and ends the thread.
#[derive(Debug)]
pub struct QueueGuard {
    shared: Arc<Queue>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for QueueGuard {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.filled.notify_one();
        self.shared.drained.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A queue in front of `writer`, written by a background thread named `thread`. Keep the
/// guard until exit: dropping it writes what is still queued.
pub fn non_blocking<W: Write + Send + 'static>(
    mut writer: W,
    thread: &str,
) -> io::Result<(LineQueue, QueueGuard)> {
    let shared = Arc::new(Queue::default());
    let queue = Arc::clone(&shared);
    let thread = std::thread::Builder::new()
        .name(thread.to_owned())
        .spawn(move || {
            let mut out = Vec::new();
            loop {
                let mut state = queue.lock();
                while state.batch.is_empty() && !state.closed {
                    state.writer_asleep = true;
                    state = queue
                        .filled
                        .wait(state)
                        .unwrap_or_else(PoisonError::into_inner);
                }
                if !state.closed {
                    // Lines come in bursts: let the burst gather, so that it costs one write
                    // and one wake-up rather than one of each per line.
                    drop(state);
                    std::thread::sleep(GATHER);
                    state = queue.lock();
                }
                let done = state.closed;
                std::mem::swap(&mut out, &mut state.batch);
                drop(state);
                queue.drained.notify_all();
                if !out.is_empty() {
                    // A failed write (disk full) loses this batch; the next one is tried anew.
                    let _ = writer.write_all(&out).and_then(|()| writer.flush());
                    out.clear();
                }
                if done {
                    return;
                }
            }
        })?;
    Ok((
        LineQueue {
            shared: Arc::clone(&shared),
        },
        QueueGuard {
            shared,
            thread: Some(thread),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes what it is given, recording each write (to see the batching).
    #[derive(Debug, Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<Vec<u8>>>>);

    impl Write for Recorder {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(buf.to_vec());
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn queued_lines_from_many_threads_all_arrive_whole_and_in_batches() {
        let recorder = Recorder::default();
        let (queue, guard) =
            non_blocking(recorder.clone(), "test-queue").unwrap_or_else(|e| panic!("{e}"));
        let writers: Vec<_> = (0..4)
            .map(|t| {
                let mut queue = queue.clone();
                std::thread::spawn(move || {
                    for i in 0..5000 {
                        let _ = queue.write_all(format!("thread {t} line {i}\n").as_bytes());
                    }
                })
            })
            .collect();
        for writer in writers {
            let _ = writer.join();
        }
        drop(guard); // writes what is still queued
        let writes = recorder
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let text = String::from_utf8(writes.concat()).unwrap_or_default();
        assert_eq!(text.lines().count(), 20_000);
        for t in 0..4 {
            let mine: Vec<&str> = text
                .lines()
                .filter(|l| l.starts_with(&format!("thread {t} ")))
                .collect();
            let expected: Vec<String> = (0..5000).map(|i| format!("thread {t} line {i}")).collect();
            assert_eq!(mine, expected, "thread {t}'s lines out of order or broken");
        }
        assert!(
            writes.len() < 20_000,
            "one write per line: {}",
            writes.len()
        );
        // After the guard is gone the queue refuses lines instead of losing them silently.
        let mut late = queue.clone();
        assert!(late.write_all(b"late\n").is_err());
    }

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
