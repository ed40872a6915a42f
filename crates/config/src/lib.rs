//! gatehouse configuration: TOML text → a validated [`Config`], or every problem at once.
//!
//! `run`, `check` and reload all go through [`parse`] (or [`load`]), so they accept and refuse
//! exactly the same files. The pipeline is three steps, each in its own module:
//!
//! 1. `schema`: parse the TOML with spans, report every unknown key and wrongly typed value in all
//!    tables, and remove them from the document;
//! 2. `raw`: deserialize what is left into the `Raw*` serde types (cannot fail after step 1);
//! 3. `validate`: check meanings and cross-references, apply defaults, build the [`model`].
//!
//! Every problem is a [`Diagnostic`] with file, line, column, key path, what is wrong and what to
//! change. This crate does no I/O beyond reading the file in [`load`], looking whether the
//! directories of files gatehouse writes exist (`log_file`, `access_log_file`, the cache file),
//! and reading the files a config names for their contents (maintenance pages, TLS certificates,
//! keys and CA bundles), so that `check` and a reload see what `run` would: no tokio, no hyper.

mod diag;
pub mod model;
mod raw;
pub mod route_path;
mod schema;
mod validate;
mod values;

#[cfg(test)]
mod tests;

use std::io::ErrorKind;
use std::path::Path;

use serde::Deserialize;

pub use diag::{ConfigErrors, Diagnostic, Severity};
pub use model::*;

use diag::Sink;
use raw::RawConfig;

/// The embedded default config (TOML text): listens on `127.0.0.1:8080`, proxies everything (`/`)
/// to one upstream named `app` at `127.0.0.1:3000`, serves the admin endpoints on
/// `127.0.0.1:9901`. Commented for newcomers; see `src/default.toml`.
pub const DEFAULT_CONFIG: &str = include_str!("default.toml");

/// The source name of [`DEFAULT_CONFIG`] in diagnostics and [`Config::source`].
pub const DEFAULT_SOURCE: &str = "<embedded default>";

/// A valid config, plus the warnings it raised (problems that do not stop it from running).
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<Diagnostic>,
}

/// Parses and validates config text. `source_name` (a path, or [`DEFAULT_SOURCE`]) is used in
/// diagnostics and becomes [`Config::source`].
///
/// On failure, the error holds every problem found, errors and warnings, in file order.
pub fn parse(source_name: &str, text: &str) -> Result<Loaded, ConfigErrors> {
    let mut sink = Sink::new(source_name, text);
    let mut doc = match toml::de::DeTable::parse(text) {
        Ok(doc) => doc,
        Err(e) => {
            sink.error(
                e.span(),
                "",
                format!("invalid TOML: {}", e.message()),
                syntax_fix(e.message()),
            );
            return Err(ConfigErrors {
                diagnostics: sink.into_sorted(),
            });
        }
    };

    let removed = schema::check(doc.get_mut(), &mut sink);

    let raw = match RawConfig::deserialize(toml::de::Deserializer::from(doc)) {
        Ok(raw) => raw,
        Err(e) => {
            // `schema` removes everything serde could object to, so this is a gap in `schema`.
            sink.error(
                e.span(),
                "",
                e.message().to_owned(),
                "fix this value (and please report that `gatehouse check` did not explain it better)",
            );
            return Err(ConfigErrors {
                diagnostics: sink.into_sorted(),
            });
        }
    };

    let mut semantic = Sink::new(source_name, text);
    let config = validate::validate(raw, source_name, &mut semantic);
    // A value `schema` removed was replaced by its default (or nothing); don't also report what
    // that replacement caused, e.g. "route has no upstream" after `upstream = 5` was reported.
    let caused_by_removal = |key: &str| {
        removed.iter().any(|r| {
            key == r || key.starts_with(&format!("{r}.")) || key.starts_with(&format!("{r}["))
        })
    };
    sink.diagnostics.extend(
        semantic
            .diagnostics
            .into_iter()
            .filter(|d| !caused_by_removal(&d.key)),
    );

    if sink.has_errors() {
        Err(ConfigErrors {
            diagnostics: sink.into_sorted(),
        })
    } else {
        Ok(Loaded {
            config,
            warnings: sink.into_sorted(),
        })
    }
}

/// Reads and parses a config file. An unreadable file is one diagnostic at line 0 naming the OS
/// error.
pub fn load(path: &Path) -> Result<Loaded, ConfigErrors> {
    let source_name = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&source_name, &text),
        Err(e) => {
            // `ErrorKind` is non-exhaustive, so look the fix up instead of matching.
            const FIXES: [(ErrorKind, &str); 4] = [
                (
                    ErrorKind::NotFound,
                    "check the path, or run without -c to use the embedded default config",
                ),
                (
                    ErrorKind::PermissionDenied,
                    "make the file readable by the user gatehouse runs as",
                ),
                (ErrorKind::InvalidData, "save the file as UTF-8"),
                (
                    ErrorKind::IsADirectory,
                    "give the path of the config file, not of its directory",
                ),
            ];
            let fix = FIXES.iter().find(|(kind, _)| *kind == e.kind()).map_or(
                "check that the path names a readable config file",
                |(_, fix)| fix,
            );
            Err(ConfigErrors {
                diagnostics: vec![Diagnostic {
                    severity: Severity::Error,
                    file: source_name,
                    line: 0,
                    column: 0,
                    key: String::new(),
                    message: format!("cannot read the config file: {e}"),
                    fix: fix.to_owned(),
                }],
            })
        }
    }
}

/// The parsed [`DEFAULT_CONFIG`].
pub fn default_config() -> Loaded {
    parse(DEFAULT_SOURCE, DEFAULT_CONFIG)
        .expect("the embedded default config is valid (see tests::default_config_parses)")
}

/// What to change for a TOML syntax error, from the parser's message.
fn syntax_fix(message: &str) -> &'static str {
    if message.contains("duplicate key") {
        "a key may appear only once per table; remove or rename one of them"
    } else if message.contains("must be quoted") {
        "put the value in double quotes, e.g. timeout = \"2s\""
    } else if message.contains("unclosed") {
        "add the missing closing bracket or quote"
    } else {
        "fix the TOML syntax at this position (see https://toml.io)"
    }
}
