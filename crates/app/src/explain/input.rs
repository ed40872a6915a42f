//! Reading the input: files or stdin, split into lines of bounded length; when following, a
//! file is polled for appended bytes like `tail -F`, and opened again at its path when it was
//! rotated (another file is there now) or truncated.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::detect::MAX_LINE;
use super::session::Session;

/// How often a followed file is checked for new bytes.
const POLL: Duration = Duration::from_millis(200);

/// Splits bytes into lines; a line longer than [`MAX_LINE`] is cut there and its rest dropped
/// up to the next newline, so memory stays bounded whatever the input.
#[derive(Debug, Default)]
pub(crate) struct LineSplitter {
    buf: Vec<u8>,
    oversized: bool,
    number: u64,
}

impl LineSplitter {
    fn feed(&mut self, data: &[u8], mut each: impl FnMut(u64, &[u8], bool)) {
        for chunk in data.split_inclusive(|b| *b == b'\n') {
            let (body, complete) = match chunk.strip_suffix(b"\n") {
                Some(body) => (body, true),
                None => (chunk, false),
            };
            let room = (MAX_LINE + 1).saturating_sub(self.buf.len());
            if body.len() > room {
                self.oversized = true;
            }
            self.buf
                .extend_from_slice(body.get(..room.min(body.len())).unwrap_or(body));
            if complete {
                self.number += 1;
                each(self.number, &self.buf, self.oversized);
                self.buf.clear();
                self.oversized = false;
            }
        }
    }

    /// The last line when it has no newline (end of a batch input, or a rotated file).
    fn flush(&mut self, mut each: impl FnMut(u64, &[u8], bool)) {
        if !self.buf.is_empty() {
            self.number += 1;
            each(self.number, &self.buf, self.oversized);
            self.buf.clear();
            self.oversized = false;
        }
    }
}

/// Reads a whole input into the session.
pub(crate) fn read_all(name: &str, mut reader: impl Read, session: &mut Session) -> io::Result<()> {
    let mut splitter = LineSplitter::default();
    let mut chunk = vec![0; 64 * 1024];
    loop {
        let n = match reader.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        let data = chunk.get(..n).unwrap_or_default();
        splitter.feed(data, |number, line, oversized| {
            session.line(name, number, line, oversized);
        });
    }
    splitter.flush(|number, line, oversized| session.line(name, number, line, oversized));
    Ok(())
}

/// One followed file.
#[derive(Debug)]
struct Followed {
    path: PathBuf,
    name: String,
    file: Option<File>,
    inode: u64,
    offset: u64,
    splitter: LineSplitter,
}

impl Followed {
    fn open(path: &Path) -> io::Result<Self> {
        let file = File::open(path)?;
        let inode = file.metadata()?.ino();
        Ok(Self {
            path: path.to_owned(),
            name: path.display().to_string(),
            file: Some(file),
            inode,
            offset: 0,
            splitter: LineSplitter::default(),
        })
    }

    /// Reads what was appended; reopens the path when the file there is another one (rotated)
    /// or shorter than what was read (truncated).
    fn poll(&mut self, session: &mut Session) {
        if let Ok(meta) = std::fs::metadata(&self.path) {
            let rotated = meta.ino() != self.inode;
            let truncated = !rotated && meta.len() < self.offset;
            if rotated {
                // Finish the old file first: lines written just before the rename.
                self.read_new(session);
                self.flush(session);
            }
            if rotated || truncated {
                self.file = File::open(&self.path).ok();
                self.inode = meta.ino();
                self.offset = 0;
                // A partial line of a truncated file will never be completed.
                self.splitter = LineSplitter::default();
            }
        }
        self.read_new(session);
    }

    fn read_new(&mut self, session: &mut Session) {
        let Some(file) = &mut self.file else {
            return;
        };
        if file.seek(SeekFrom::Start(self.offset)).is_err() {
            return;
        }
        let mut chunk = vec![0; 64 * 1024];
        while let Ok(n) = file.read(&mut chunk) {
            if n == 0 {
                break;
            }
            self.offset += n as u64;
            let (name, data) = (&self.name, chunk.get(..n).unwrap_or_default());
            self.splitter.feed(data, |number, line, oversized| {
                session.line(name, number, line, oversized);
            });
        }
    }

    fn flush(&mut self, session: &mut Session) {
        let name = &self.name;
        self.splitter
            .flush(|number, line, oversized| session.line(name, number, line, oversized));
    }
}

/// Follows the files until the process is stopped. Files that cannot be opened are an error
/// before anything is read.
pub(crate) fn follow(paths: &[PathBuf], session: &mut Session) -> io::Result<()> {
    let mut files = Vec::new();
    for path in paths {
        files.push(
            Followed::open(path)
                .map_err(|err| io::Error::new(err.kind(), format!("{}: {err}", path.display())))?,
        );
    }
    loop {
        for file in &mut files {
            file.poll(session);
        }
        session.settle(false);
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_split_and_bounded() {
        let mut splitter = LineSplitter::default();
        let mut seen = Vec::new();
        let mut data = b"one\ntw".to_vec();
        splitter.feed(&data, |n, l, o| seen.push((n, l.len(), o)));
        data = b"o\n".to_vec();
        splitter.feed(&data, |n, l, o| seen.push((n, l.len(), o)));
        let huge = vec![b'x'; MAX_LINE * 3];
        splitter.feed(&huge, |n, l, o| seen.push((n, l.len(), o)));
        splitter.feed(b"\nlast", |n, l, o| seen.push((n, l.len(), o)));
        splitter.flush(|n, l, o| seen.push((n, l.len(), o)));
        assert_eq!(
            seen,
            [
                (1, 3, false),
                (2, 3, false),
                (3, MAX_LINE + 1, true),
                (4, 4, false)
            ]
        );
    }
}
