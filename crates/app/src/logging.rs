//! Log setup: text or JSON lines on stdout or in `server.log_file`; the level from `RUST_LOG`,
//! else `server.log_level`. Access records go into that log (`access_log_format = "log"`), or
//! as combined/JSON lines to `server.access_log_file` or stdout.
//!
//! Lines are written by background threads (tracing-appender), so a slow disk or stdout never
//! stalls the runtime threads serving requests. The writers block rather than drop when their
//! queue is full: a failure line is never lost silently.
//!
//! Log files are opened at start and appended to; [`Logs::reopen`] (on SIGUSR1) opens them
//! again at their paths, for logrotate. These keys take effect at start only: a reload that
//! changes them is taken, with a warning ([`start_only_changes`]).

use std::path::{Path, PathBuf};

use gatehouse_config::{AccessLogFormat, LogFormat, ServerConfig};
use gatehouse_proxy::observe::access_log::{AccessSink, LineFormat};
use gatehouse_proxy::observe::log_file::{LineQueue, LogFile, QueueGuard, non_blocking};
use tracing_subscriber::EnvFilter;

/// The log writers of a running gatehouse. Keep it until exit: dropping it flushes the queues.
#[derive(Debug)]
pub(crate) struct Logs {
    /// Where access records go; taken once by whoever starts the proxy.
    access: Option<AccessSink>,
    /// The files SIGUSR1 reopens, with the key that names each.
    files: Vec<(&'static str, LogFile)>,
    /// Dropped last (fields drop in order): flushes what is still queued.
    _guards: Vec<QueueGuard>,
}

/// Opens the log files and installs the global subscriber. An error (a log file that cannot be
/// opened) is one line for stderr; nothing is installed then.
pub(crate) fn init(server: &ServerConfig) -> Result<Logs, String> {
    let mut files = Vec::new();
    let mut guards = Vec::new();
    let log_writer = match &server.log_file {
        Some(path) => {
            let file = open("log_file", path)?;
            files.push(("log_file", file.clone()));
            queue(file, "gatehouse-log", &mut guards)?
        }
        None => queue(std::io::stdout(), "gatehouse-log", &mut guards)?,
    };
    let line_format = match server.access_log_format {
        AccessLogFormat::Log => None,
        AccessLogFormat::Combined => Some(LineFormat::Combined),
        AccessLogFormat::Json => Some(LineFormat::Json),
    };
    let access = match (line_format, &server.access_log_file) {
        (None, _) => AccessSink::Log,
        (Some(format), Some(path)) => {
            let file = open("access_log_file", path)?;
            files.push(("access_log_file", file.clone()));
            AccessSink::Lines {
                format,
                writer: queue(file, "gatehouse-access-log", &mut guards)?,
            }
        }
        // Both on stdout: one queue, so their lines never interleave.
        (Some(format), None) if server.log_file.is_none() => AccessSink::Lines {
            format,
            writer: log_writer.clone(),
        },
        (Some(format), None) => AccessSink::Lines {
            format,
            writer: queue(std::io::stdout(), "gatehouse-access-log", &mut guards)?,
        },
    };
    install(server, log_writer);
    Ok(Logs {
        access: Some(access),
        files,
        _guards: guards,
    })
}

fn open(key: &str, path: &Path) -> Result<LogFile, String> {
    LogFile::open(path).map_err(|err| {
        format!(
            "cannot open {key} {}: {err} (check that the user gatehouse runs as may write there)",
            path.display()
        )
    })
}

fn queue(
    writer: impl std::io::Write + Send + 'static,
    thread: &str,
    guards: &mut Vec<QueueGuard>,
) -> Result<LineQueue, String> {
    let (writer, guard) = non_blocking(writer, thread)
        .map_err(|err| format!("cannot start the {thread} writer thread: {err}"))?;
    guards.push(guard);
    Ok(writer)
}

fn install(server: &ServerConfig, writer: LineQueue) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&server.log_level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(move || writer.clone());
    let installed = match server.log_format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        // The same text as the default format, written faster (log_format.rs, log_fields.rs).
        LogFormat::Text => builder
            .with_ansi(false)
            .fmt_fields(crate::log_fields::PlainFields)
            .event_format(crate::log_format::PlainFormat::new())
            .try_init(),
    };
    if let Err(err) = installed {
        eprintln!("gatehouse: logging not set up: {err}");
    }
}

impl Logs {
    /// Where access records go (the log itself until taken; `None` after the first call).
    pub(crate) fn take_access_sink(&mut self) -> Option<AccessSink> {
        self.access.take()
    }

    /// Opens every log file again at its path (SIGUSR1, after logrotate renamed them). A file
    /// that cannot be opened is logged as an error and the old one stays in use; the outcome
    /// is logged once the main log writes to its new file.
    pub(crate) fn reopen(&self) {
        if self.files.is_empty() {
            tracing::info!("SIGUSR1 received: no log file to reopen (logs go to stdout)");
            return;
        }
        let mut reopened = Vec::new();
        for (key, file) in &self.files {
            let path = file.path().display().to_string();
            match file.reopen() {
                Ok(()) => reopened.push(path),
                Err(err) => tracing::error!(
                    key = *key,
                    path = %path,
                    error = %err,
                    "cannot reopen {key} {path}: {err}; still writing to the file opened before"
                ),
            }
        }
        if !reopened.is_empty() {
            tracing::info!(files = ?reopened, "log files reopened");
        }
    }
}

/// Where logs go, as a config says: compared at reload, since it takes effect at start only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Destinations {
    log_file: Option<PathBuf>,
    access_log_format: AccessLogFormat,
    access_log_file: Option<PathBuf>,
}

impl Destinations {
    pub(crate) fn of(server: &ServerConfig) -> Self {
        Self {
            log_file: server.log_file.clone(),
            access_log_format: server.access_log_format,
            access_log_file: server.access_log_file.clone(),
        }
    }
}

/// One warning per log key whose value in `new` differs from the one gatehouse started with.
pub(crate) fn start_only_changes(started: &Destinations, new: &ServerConfig) -> Vec<String> {
    let new = Destinations::of(new);
    let path = |p: &Option<PathBuf>| {
        p.as_ref()
            .map_or_else(|| "stdout".to_owned(), |p| p.display().to_string())
    };
    let format = |f: AccessLogFormat| match f {
        AccessLogFormat::Log => "log",
        AccessLogFormat::Combined => "combined",
        AccessLogFormat::Json => "json",
    };
    let mut changes = Vec::new();
    let mut changed = |key: &str, from: String, to: String| {
        if from != to {
            changes.push(format!(
                "server.{key} changed from {from} to {to}: it takes effect at the next start; until then gatehouse keeps {from}"
            ));
        }
    };
    changed("log_file", path(&started.log_file), path(&new.log_file));
    changed(
        "access_log_format",
        format(started.access_log_format).to_owned(),
        format(new.access_log_format).to_owned(),
    );
    changed(
        "access_log_file",
        path(&started.access_log_file),
        path(&new.access_log_file),
    );
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(text: &str) -> ServerConfig {
        let tail = "[[route]]\nupstream = \"a\"\n[upstream.a]\nservers = [\"127.0.0.1:1\"]\n";
        match gatehouse_config::parse("t.toml", &format!("[server]\n{text}\n{tail}")) {
            Ok(loaded) => loaded.config.server,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn reload_warns_about_each_changed_log_key() {
        let tmp = std::env::temp_dir().display().to_string();
        let started = Destinations::of(&server(""));
        assert!(start_only_changes(&started, &server("access_log = false")).is_empty());
        let changes = start_only_changes(
            &started,
            &server(&format!(
                "log_file = '{tmp}/g.log'\naccess_log_format = \"json\""
            )),
        );
        assert_eq!(
            changes,
            [
                format!(
                    "server.log_file changed from stdout to {tmp}/g.log: it takes effect at the next start; until then gatehouse keeps stdout"
                ),
                "server.access_log_format changed from log to json: it takes effect at the next start; until then gatehouse keeps log".to_owned(),
            ]
        );
    }
}
