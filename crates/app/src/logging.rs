//! Log setup: text or JSON lines on stdout; the level from `RUST_LOG`, else `server.log_level`.
//!
//! Lines are written by a background thread (tracing-appender), so a slow stdout never stalls
//! the runtime threads serving requests. The writer blocks rather than drops when its queue
//! is full: a failure line is never lost silently.

use gatehouse_config::{LogFormat, ServerConfig};
use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. Keep the guard until exit: dropping it flushes the queue.
pub(crate) fn init(server: &ServerConfig) -> Option<WorkerGuard> {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&server.log_level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(false)
        .finish(std::io::stdout());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let installed = match server.log_format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        LogFormat::Text => builder.with_ansi(false).try_init(),
    };
    match installed {
        Ok(()) => Some(guard),
        Err(err) => {
            eprintln!("gatehouse: logging not set up: {err}");
            None
        }
    }
}
