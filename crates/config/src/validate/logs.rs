//! `server.log_file`, `server.access_log_format` and `server.access_log_file`: where log lines
//! and access lines go.
//!
//! The one place validation looks at the file system: a log file's directory must exist (and
//! the path must not be a directory), so that `check` reports what would stop gatehouse from
//! starting, with the path named. Whether the file can be opened for writing is found out at
//! start (opening it would create it).

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use toml::Spanned;

use super::fields::choice;
use crate::diag::Sink;
use crate::model::AccessLogFormat;

/// The three keys, validated.
pub(super) struct LogTargets {
    pub(super) log_file: Option<PathBuf>,
    pub(super) access_log_format: AccessLogFormat,
    pub(super) access_log_file: Option<PathBuf>,
}

/// Reads the three keys; relative paths are resolved against `base` (the config file's
/// directory).
pub(super) fn log_targets(
    log_file: Option<Spanned<String>>,
    access_log_format: Option<Spanned<String>>,
    access_log_file: Option<Spanned<String>>,
    base: &Path,
    sink: &mut Sink<'_>,
) -> LogTargets {
    // A format that is not one of the words is reported once, not again as "needs a format".
    let format_unknown = access_log_format
        .as_ref()
        .is_some_and(|f| !["log", "combined", "json"].contains(&f.get_ref().as_str()));
    let format = choice(
        sink,
        access_log_format,
        "server.access_log_format",
        AccessLogFormat::Log,
        &[
            ("log", AccessLogFormat::Log),
            ("combined", AccessLogFormat::Combined),
            ("json", AccessLogFormat::Json),
        ],
    );
    let log_path = log_file
        .as_ref()
        .and_then(|raw| checked_path(raw, "server.log_file", base, sink));
    let mut access_path = access_log_file
        .as_ref()
        .and_then(|raw| checked_path(raw, "server.access_log_file", base, sink));
    if let (Some(raw), Some(path)) = (&access_log_file, &access_path) {
        if format_unknown {
            access_path = None;
        } else if format == AccessLogFormat::Log {
            sink.error(
                Some(raw.span()),
                "server.access_log_file",
                "access_log_file needs access_log_format = \"combined\" or \"json\": with \"log\" (the default) access records are events in the main log",
                "set access_log_format = \"combined\" or \"json\", or remove access_log_file",
            );
            access_path = None;
        } else if log_path.as_ref() == Some(path) {
            sink.error(
                Some(raw.span()),
                "server.access_log_file",
                format!(
                    "{} is also log_file: two writers would mix two formats in one file",
                    path.display()
                ),
                "give the access log a file of its own, or use access_log_format = \"log\" to have access records in the main log",
            );
            access_path = None;
        }
    }
    LogTargets {
        log_file: log_path,
        access_log_format: format,
        access_log_file: access_path,
    }
}

/// The directory relative log paths are resolved against: the config file's own (empty, i.e.
/// the working directory, for a bare file name or the embedded default).
pub(super) fn config_dir(source: &str) -> &Path {
    if source == crate::DEFAULT_SOURCE {
        return Path::new("");
    }
    Path::new(source).parent().unwrap_or(Path::new(""))
}

/// A log file path whose directory exists; `None` (reported) otherwise.
fn checked_path(
    raw: &Spanned<String>,
    key: &str,
    base: &Path,
    sink: &mut Sink<'_>,
) -> Option<PathBuf> {
    let example = if key == "server.log_file" {
        "/var/log/gatehouse/gatehouse.log"
    } else {
        "/var/log/gatehouse/access.log"
    };
    if raw.get_ref().trim().is_empty() {
        sink.error(
            Some(raw.span()),
            key,
            "the path is empty",
            format!("give a file path like \"{example}\", or remove the key to write to stdout"),
        );
        return None;
    }
    writable_file_path(raw, key, example, base, sink)
}

/// A path for a file gatehouse writes (created if missing), resolved against `base`: not a
/// directory, and its directory exists. `None` (reported) otherwise.
pub(super) fn writable_file_path(
    raw: &Spanned<String>,
    key: &str,
    example: &str,
    base: &Path,
    sink: &mut Sink<'_>,
) -> Option<PathBuf> {
    let text = raw.get_ref();
    if text.trim().is_empty() {
        sink.error(
            Some(raw.span()),
            key,
            "the path is empty",
            format!("give a file path like \"{example}\", or remove the key"),
        );
        return None;
    }
    let path = base.join(text);
    if text.ends_with('/') || path.is_dir() {
        sink.error(
            Some(raw.span()),
            key,
            format!("{} is a directory, not a file", path.display()),
            format!("name the file inside it, e.g. \"{example}\""),
        );
        return None;
    }
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let problem = match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => return Some(path),
        Ok(_) => format!(
            "cannot write {}: {} is not a directory",
            path.display(),
            dir.display()
        ),
        Err(err) if err.kind() == ErrorKind::NotFound => format!(
            "cannot write {}: the directory {} does not exist",
            path.display(),
            dir.display()
        ),
        Err(err) => format!(
            "cannot write {}: cannot look at the directory {}: {err}",
            path.display(),
            dir.display()
        ),
    };
    sink.error(
        Some(raw.span()),
        key,
        problem,
        format!(
            "create the directory (mkdir -p {}) for the user gatehouse runs as, or choose another path",
            dir.display()
        ),
    );
    None
}
