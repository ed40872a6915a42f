//! Diagnostics: what `check`, `run` and reload print when a config is wrong.
//!
//! Owns [`Diagnostic`] (one problem, with file, line, column, key path, what is wrong and what to
//! change), [`ConfigErrors`] (every problem of one config) and [`Sink`], the collector the schema
//! walk and validation push into. Byte spans from the TOML parser are turned into 1-based
//! line/column pairs here, so nothing else deals with offsets. It does not decide *what* is wrong:
//! that is `schema` (shape of the document) and `validate` (meaning of the values).

use std::fmt;
use std::ops::Range;

/// How bad a [`Diagnostic`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The config is refused.
    Error,
    /// The config is taken, but probably does not do what was meant.
    Warning,
}

/// One problem in a config file.
///
/// Displays as
/// `gatehouse.toml:12:21: error: upstream.api.connect_timeout: "2 seconds" is not a duration — write it like "500ms", "2s" or "5m"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    /// The config file's path as given, or [`crate::DEFAULT_SOURCE`].
    pub file: String,
    /// 1-based line of the offending key or value; 0 = the whole file.
    pub line: usize,
    /// 1-based column (in characters) on `line`; 0 when `line` is 0.
    pub column: usize,
    /// Dotted path of the key, e.g. `upstream.api.connect_timeout` or `route[2].upstream`
    /// (route indexes count from 0 in file order). Empty when no key is involved.
    pub key: String,
    /// What is wrong.
    pub message: String,
    /// What to change.
    pub fix: String,
}

/// Every problem found in one config: errors and warnings, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors {
    pub diagnostics: Vec<Diagnostic>,
}

// === impl Severity ===

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

// === impl Diagnostic ===

impl Diagnostic {
    /// Whether this diagnostic makes the config invalid.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        write!(f, ": {}: ", self.severity)?;
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)?;
        if !self.fix.is_empty() {
            write!(f, " — {}", self.fix)?;
        }
        Ok(())
    }
}

// === impl ConfigErrors ===

impl ConfigErrors {
    /// Only the diagnostics that make the config invalid.
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| d.is_error())
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            d.fmt(f)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

// === impl Sink ===

/// Collects diagnostics for one file, turning byte spans into line/column.
#[derive(Debug)]
pub(crate) struct Sink<'a> {
    file: &'a str,
    text: &'a str,
    /// Byte offset where each line starts.
    line_starts: Vec<usize>,
    pub(crate) diagnostics: Vec<Diagnostic>,
}

impl<'a> Sink<'a> {
    pub(crate) fn new(file: &'a str, text: &'a str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Sink {
            file,
            text,
            line_starts,
            diagnostics: Vec::new(),
        }
    }

    /// An error at `span` (`None` = the whole file).
    pub(crate) fn error(
        &mut self,
        span: Option<Range<usize>>,
        key: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.push(
            Severity::Error,
            span,
            key.into(),
            message.into(),
            fix.into(),
        );
    }

    /// A warning at `span` (`None` = the whole file).
    pub(crate) fn warning(
        &mut self,
        span: Option<Range<usize>>,
        key: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.push(
            Severity::Warning,
            span,
            key.into(),
            message.into(),
            fix.into(),
        );
    }

    pub(crate) fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }

    fn push(
        &mut self,
        severity: Severity,
        span: Option<Range<usize>>,
        key: String,
        message: String,
        fix: String,
    ) {
        let (line, column) = span.map_or((0, 0), |s| self.position(s.start));
        self.diagnostics.push(Diagnostic {
            severity,
            file: self.file.to_owned(),
            line,
            column,
            key,
            message,
            fix,
        });
    }

    /// 1-based line of a span's start.
    pub(crate) fn line_of(&self, span: Range<usize>) -> usize {
        self.position(span.start).0
    }

    /// 1-based (line, column) of a byte offset; the column counts characters, not bytes.
    fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&start| start <= offset);
        let start = self.line_starts.get(line - 1).copied().unwrap_or(0);
        let column = self
            .text
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count());
        (line, column + 1)
    }

    /// All diagnostics in file order (whole-file ones last), keeping insertion order on ties.
    pub(crate) fn into_sorted(mut self) -> Vec<Diagnostic> {
        self.diagnostics
            .sort_by_key(|d| (d.line == 0, d.line, d.column));
        self.diagnostics
    }
}
