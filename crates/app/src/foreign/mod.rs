//! Parsers of other proxies' config files: nginx (`nginx.rs`: the block/directive grammar,
//! `include` followed) and HAProxy (`haproxy.rs`: sections and their lines). Every directive and
//! line keeps the file and line it came from, so `gatehouse import` and `gatehouse doctor
//! --nginx/--haproxy` can point at it.
//!
//! This module only reads: what the directives mean for gatehouse is `crate::import`'s business.
//! Hostile input (garbage, unbalanced braces, invalid UTF-8, include loops, very deep nesting)
//! is an error or is read as text, never a panic.

pub(crate) mod haproxy;
pub(crate) mod nginx;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where a directive was written: file and line (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Origin {
    pub(crate) file: Arc<Path>,
    pub(crate) line: usize,
}

impl Origin {
    pub(crate) fn new(file: &Arc<Path>, line: usize) -> Self {
        Self {
            file: Arc::clone(file),
            line,
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// A file that could not be read or parsed: where, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParseError {
    pub(crate) file: PathBuf,
    /// 0 when the error is about the file as a whole (unreadable).
    pub(crate) line: usize,
    pub(crate) message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
        }
    }
}

impl std::error::Error for ParseError {}

/// Config files larger than this are refused (a config is text; a device or a log is not).
pub(crate) const MAX_FILE_SIZE: u64 = 16 * 1024 * 1024;

/// Reads a config file as text (invalid UTF-8 replaced, which keeps the line numbers), at
/// most [`MAX_FILE_SIZE`].
pub(crate) fn read_text(path: &Path) -> Result<String, ParseError> {
    use std::io::Read as _;
    let fail = |message: String| ParseError {
        file: path.to_path_buf(),
        line: 0,
        message,
    };
    let file = std::fs::File::open(path).map_err(|e| fail(format!("cannot read it: {e}")))?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| fail(format!("cannot read it: {e}")))?;
    if bytes.len() as u64 > MAX_FILE_SIZE {
        return Err(fail(format!(
            "larger than {} MiB: not a config file",
            MAX_FILE_SIZE >> 20
        )));
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}
