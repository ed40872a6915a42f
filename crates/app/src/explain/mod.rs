//! `gatehouse explain`: reads proxy logs (nginx error and access logs, HAProxy httplog lines,
//! gatehouse's own text and JSON logs, mixed freely) and explains the upstream failures in
//! them: each mapped to gatehouse's failure kind, grouped by kind and upstream server, with
//! the cause and the directive (or config key) to change.
//!
//! One file per job: `detect` picks the parser of a line (`nginx_error`, `access_line`,
//! `haproxy`, `gatehouse_log`), `correlate` ties access lines to failure lines, `group` and
//! `advice` make the groups (`timeline` spreads each over time), `report` prints them, `input`
//! reads and follows files, `session` holds one run; `record` has the types the parsers share
//! and `fields` their text helpers. It does not read configs or contact servers: `gatehouse
//! doctor` does that.

mod access_line;
mod advice;
mod correlate;
mod detect;
mod fields;
mod gatehouse_log;
mod group;
mod haproxy;
mod input;
mod nginx_error;
mod record;
mod report;
mod session;
mod timeline;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use report::Live;
use session::Session;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exit status: 0 when no upstream failure was found, 1 when failures were found, 2 on a usage or I/O error (a file that cannot be read)."
)]
pub(crate) struct ExplainArgs {
    /// Log files to read (nginx error.log and access.log, HAProxy httplog/syslog, gatehouse's
    /// log), in any mix; standard input when none is given.
    #[arg(value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Keep reading the files as they grow, like `tail -F` (surviving rotation), and print each
    /// failure as it is read.
    #[arg(short, long)]
    follow: bool,
    /// Only lines from this long ago (`1h`, `30m`) or since this time (RFC 3339, e.g.
    /// `2026-12-05T20:00:00Z`).
    #[arg(long, value_name = "WHEN", value_parser = parse_since)]
    since: Option<i64>,
    /// Print the report as JSON (one JSON object per failure when following).
    #[arg(long)]
    json: bool,
}

/// `--since`: a duration back from now, or an RFC 3339 time; milliseconds since the epoch.
fn parse_since(text: &str) -> Result<i64, String> {
    if let Ok(ago) = humantime::parse_duration(text) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let ms = |d: std::time::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        return Ok(ms(now).saturating_sub(ms(ago)));
    }
    record::parse_rfc3339(text).map(|s| s.utc).ok_or_else(|| {
        format!(
            "`{text}` is neither a duration (1h, 30m) nor an RFC 3339 time (2026-12-05T20:00:00Z)"
        )
    })
}

pub(crate) fn run(args: &ExplainArgs) -> ExitCode {
    let live = args.follow.then_some(Live { json: args.json });
    let mut session = Session::new(args.since, live);
    let inputs: Vec<String> = if args.files.is_empty() {
        vec!["<stdin>".to_owned()]
    } else {
        args.files.iter().map(|p| p.display().to_string()).collect()
    };
    if args.follow && !args.files.is_empty() {
        // Runs until the process is stopped.
        if let Err(err) = input::follow(&args.files, &mut session) {
            eprintln!("gatehouse explain: {err}");
        }
        return ExitCode::from(2);
    }
    if args.files.is_empty()
        && let Err(err) = input::read_all("<stdin>", std::io::stdin().lock(), &mut session)
    {
        eprintln!("gatehouse explain: cannot read standard input: {err}");
        return ExitCode::from(2);
    }
    let mut io_error = false;
    for path in &args.files {
        let name = path.display().to_string();
        let read =
            std::fs::File::open(path).and_then(|file| input::read_all(&name, file, &mut session));
        if let Err(err) = read {
            eprintln!("gatehouse explain: cannot read {name}: {err}");
            io_error = true;
        }
    }
    if args.follow {
        // Standard input followed to its end.
        session.settle(true);
        return exit(session.found_failures(), io_error);
    }
    let outcome = session.finish();
    if args.json {
        println!("{}", report::json(&outcome, &inputs, args.since));
    } else {
        print!("{}", report::text(&outcome, &inputs));
    }
    exit(outcome.counts.failures > 0, io_error)
}

fn exit(failures: bool, io_error: bool) -> ExitCode {
    match (io_error, failures) {
        (true, _) => ExitCode::from(2),
        (false, true) => ExitCode::from(1),
        (false, false) => ExitCode::SUCCESS,
    }
}
