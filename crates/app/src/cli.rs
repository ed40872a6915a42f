//! The commands: `run` (the default), `check`, `reload`, `purge`, `probe` and `doctor`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use gatehouse_config::{ConfigErrors, Loaded, Severity};
use gatehouse_proxy::admin::ReloadReply;
use tokio::signal::unix::{SignalKind, signal};

#[derive(Debug, clap::Parser)]
#[command(
    name = "gatehouse",
    version,
    about = "A reverse proxy that explains every upstream failure"
)]
pub(crate) struct Cli {
    /// Config file (TOML). Without it, the embedded default config is used.
    #[arg(short, long, global = true, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Serve (the default command).
    Run,
    /// Validate a config like `nginx -t`: every problem at once, with file, line and column.
    Check,
    /// Ask the running gatehouse (found through the config's `admin` address) to reload its
    /// config, like SIGHUP; prints whether it was taken or why not.
    Reload,
    /// Ask the running gatehouse (through the config's `admin` address) to drop cached
    /// responses: one URL, every URL under a prefix, or every response carrying a tag
    /// (`Surrogate-Key` / `Cache-Tag`), from memory and the disk store.
    Purge(crate::purge::PurgeArgs),
    /// Check URLs: status, timing of each phase, redirects, Proxy-Status decoded into words.
    Probe(crate::probe::ProbeArgs),
    /// Check every upstream server of a config the way an operator debugs a 502, and name the
    /// root cause and the fix.
    Doctor(crate::doctor::DoctorArgs),
    /// Read nginx, HAProxy or gatehouse logs and explain the upstream failures in them: kind,
    /// upstream server, how often, and the directive to change.
    Explain(crate::explain::ExplainArgs),
    /// Write a gatehouse config for the reverse-proxy part of an nginx or HAProxy config, and
    /// report what maps to which key and what does not (and why).
    Import(crate::import::ImportArgs),
}

pub(crate) fn load(path: Option<&Path>) -> Result<Loaded, ConfigErrors> {
    match path {
        Some(path) => gatehouse_config::load(path),
        None => Ok(gatehouse_config::default_config()),
    }
}

/// Loads the config for a command that cannot go on without it: on errors, prints each one
/// and `verdict` (what that means for this command) on stderr and returns `None`.
pub(crate) fn load_or_explain(path: Option<&Path>, verdict: &str) -> Option<Loaded> {
    match load(path) {
        Ok(loaded) => Some(loaded),
        Err(errors) => {
            for diagnostic in &errors.diagnostics {
                eprintln!("{diagnostic}");
            }
            eprintln!("{verdict}");
            None
        }
    }
}

/// `gatehouse check`: 0 when valid (warnings allowed), 1 otherwise.
pub(crate) fn check(path: Option<&Path>) -> ExitCode {
    let source = path.map_or_else(
        || gatehouse_config::DEFAULT_SOURCE.to_owned(),
        |p| p.display().to_string(),
    );
    match load(path) {
        Ok(loaded) => {
            for warning in &loaded.warnings {
                println!("{warning}");
            }
            let config = &loaded.config;
            println!(
                "ok: {source} is valid ({} listener(s), {} route(s), {} upstream(s){})",
                config.server.listen.len()
                    + config
                        .server
                        .tls
                        .iter()
                        .map(|tls| tls.listen.len())
                        .sum::<usize>()
                    + config.server.redirect_https.len(),
                config.routes.len(),
                config.upstreams.len(),
                match loaded.warnings.len() {
                    0 => String::new(),
                    n => format!(", {n} warning(s)"),
                }
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for diagnostic in &errors.diagnostics {
                eprintln!("{diagnostic}");
            }
            let count = errors
                .diagnostics
                .iter()
                .filter(|d| d.severity == Severity::Error)
                .count();
            eprintln!("{source}: {count} error(s); the config was not accepted");
            ExitCode::FAILURE
        }
    }
}

/// `gatehouse run`: serve until SIGTERM/SIGINT; exit 1 with one line on a startup error.
pub(crate) fn run(path: Option<&Path>) -> ExitCode {
    let Some(loaded) = load_or_explain(
        path,
        "gatehouse: not starting: the config has errors (see above; `gatehouse check` lists them too)",
    ) else {
        return ExitCode::FAILURE;
    };
    let config = loaded.config;
    // Declared before the runtime, so dropped after it: the last lines are flushed at exit.
    let mut logs = match crate::logging::init(&config.server) {
        Ok(logs) => logs,
        Err(err) => {
            eprintln!("gatehouse: not starting: {err}");
            return ExitCode::FAILURE;
        }
    };
    let destinations = crate::logging::Destinations::of(&config.server);
    let access = logs.take_access_sink().unwrap_or_default();
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    let (runtime, workers) = match runtimes(&config.server) {
        Ok(runtimes) => runtimes,
        Err(err) => {
            eprintln!("gatehouse: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let source = config.source.clone();
        // Installed before the listeners are bound: SIGHUP's default action ends the process,
        // and a reload may be asked for as soon as gatehouse is seen listening.
        let mut hangup = signal(SignalKind::hangup()).ok();
        // SIGUSR1 (reopen the log files, for logrotate) likewise ends the process by default.
        let mut reopen = signal(SignalKind::user_defined1()).ok();
        let observer = gatehouse_proxy::observe::Observer::with_access_sink(access);
        let started = match workers {
            Some(workers) => {
                gatehouse_proxy::Running::start_with_workers(config, observer, workers).await
            }
            None => gatehouse_proxy::Running::start_with(config, observer).await,
        };
        let running = match started {
            Ok(running) => running,
            Err(err) => {
                eprintln!("gatehouse: {err}");
                return ExitCode::FAILURE;
            }
        };
        tracing::info!(config = %source, version = env!("CARGO_PKG_VERSION"), "gatehouse started");
        let mut shutdown = std::pin::pin!(shutdown_signal());
        let mut requests = running.take_reload_requests();
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                Some(()) = async { match hangup.as_mut() { Some(h) => h.recv().await, None => None } } => {
                    tracing::info!("SIGHUP received: reloading {source}");
                    let outcome = reload(&running, path, &destinations).await;
                    running.count_reload(outcome.taken);
                }
                Some(reply) = async { match requests.as_mut() { Some(r) => r.recv().await, None => None } } => {
                    tracing::info!("reload asked for on the admin listener: reloading {source}");
                    let outcome = reload(&running, path, &destinations).await;
                    running.count_reload(outcome.taken);
                    let _ = reply.send(outcome);
                }
                Some(()) = async { match reopen.as_mut() { Some(r) => r.recv().await, None => None } } => {
                    logs.reopen();
                }
            }
        }
        running.shutdown().await;
        ExitCode::SUCCESS
    })
}

/// The runtime gatehouse starts on, and the per-core workers that serve its connections:
/// `workers = 1` is one current-thread runtime doing everything; `work_stealing = true` one
/// multi-thread runtime; otherwise (the default) a current-thread runtime for the admin
/// listener, health checks and reloads, plus one worker per core (or per `workers`), each with
/// a current-thread runtime of its own (docs/benchmarks.md has the comparison).
fn runtimes(
    server: &gatehouse_config::ServerConfig,
) -> std::io::Result<(
    tokio::runtime::Runtime,
    Option<gatehouse_proxy::workers::Workers>,
)> {
    let count = server.workers.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    if server.work_stealing && count > 1 {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(count)
            .enable_all()
            .build()?;
        return Ok((runtime, None));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    if count == 1 {
        return Ok((runtime, None));
    }
    Ok((
        runtime,
        Some(gatehouse_proxy::workers::Workers::start(count)?),
    ))
}

/// Loads and validates the config again and swaps it in; a config with errors is refused with
/// each error logged, and the running config keeps serving. The reply says which, in words.
/// Where logs go is kept as `started` said (a change is warned about, not applied).
async fn reload(
    running: &gatehouse_proxy::Running,
    path: Option<&Path>,
    started: &crate::logging::Destinations,
) -> ReloadReply {
    let loaded = match load(path) {
        Ok(loaded) => loaded,
        Err(errors) => {
            let mut text = String::new();
            for diagnostic in &errors.diagnostics {
                tracing::error!("{diagnostic}");
                text.push_str(&format!("{diagnostic}\n"));
            }
            let refusal =
                "reload refused: the new config has errors; the running config keeps serving";
            tracing::error!(errors = errors.diagnostics.len(), "{refusal}");
            text.push_str(refusal);
            text.push('\n');
            return ReloadReply { taken: false, text };
        }
    };
    let mut text = String::new();
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
        text.push_str(&format!("{warning}\n"));
    }
    let mut start_only = crate::logging::start_only_changes(started, &loaded.config.server);
    start_only.extend(running.start_only_changes(&loaded.config));
    for change in start_only {
        tracing::warn!("{change}");
        text.push_str(&format!("warning: {change}\n"));
    }
    let source = loaded.config.source.clone();
    match running.reload(loaded.config).await {
        Ok(changes) => {
            tracing::info!(
                config = %source,
                listeners_opened = ?changes.listeners_opened,
                listeners_closed = ?changes.listeners_closed,
                "config reloaded"
            );
            text.push_str(&format!(
                "config reloaded: {source} (listeners opened: {:?}, closed: {:?})\n",
                changes.listeners_opened, changes.listeners_closed
            ));
            ReloadReply { taken: true, text }
        }
        Err(err) => {
            let refusal = format!("reload refused: {err}; the running config keeps serving");
            tracing::error!(error = %err, "{refusal}");
            text.push_str(&refusal);
            text.push('\n');
            ReloadReply { taken: false, text }
        }
    }
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop gatehouse with SIGKILL");
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    /// clap checks its definitions (e.g. clashing short options) only when a command is parsed;
    /// this checks them all.
    #[test]
    fn command_line_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
