//! The `gatehouse` binary: command line, logging, runtime and signals. Everything on the
//! request path lives in `gatehouse-proxy`; config parsing and validation in `gatehouse-config`.

mod advice;
mod alloc;
mod cli;
mod doctor;
mod explain;
mod foreign;
mod import;
mod log_fields;
mod log_format;
mod logging;
mod naming;
mod probe;
mod purge;
mod reload;

/// mimalloc rather than glibc's allocator: cheaper per request (see the workspace manifest and
/// docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: alloc::MiMalloc = alloc::MiMalloc;

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match cli.command.unwrap_or(cli::Command::Run) {
        cli::Command::Run => cli::run(cli.config.as_deref()),
        cli::Command::Check => cli::check(cli.config.as_deref()),
        cli::Command::Reload => reload::run(cli.config.as_deref()),
        cli::Command::Purge(args) => purge::run(cli.config.as_deref(), &args),
        cli::Command::Probe(args) => probe::run(args),
        cli::Command::Doctor(args) => doctor::run(cli.config.as_deref(), &args),
        cli::Command::Explain(args) => explain::run(&args),
        cli::Command::Import(args) => import::run(&args),
    }
}
