//! Log setup: text or JSON lines on stdout; the level from `RUST_LOG`, else `server.log_level`.

use gatehouse_config::{LogFormat, ServerConfig};
use tracing_subscriber::EnvFilter;

pub(crate) fn init(server: &ServerConfig) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&server.log_level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout);
    let installed = match server.log_format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        LogFormat::Text => builder.with_ansi(false).try_init(),
    };
    if let Err(err) = installed {
        eprintln!("gatehouse: logging not set up: {err}");
    }
}
