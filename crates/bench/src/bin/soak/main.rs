//! `soak`: the backends, the load and the report of `scripts/soak.sh` (docs/soak.md).
//!
//! - `--mode backend`: an upstream server (`GET /get`, `POST /upload`, WebSocket echo on
//!   `/ws`, `GET /health`), see `backend.rs`.
//! - `--mode load`: the mixed load against the proxy, every request's outcome written to a file,
//!   see `load.rs`.
//! - `--mode report`: classifies the outcomes with the proxy's access log and the script's
//!   chaos log, compares RSS and fds at the end with the start, prints the verdict and exits 1
//!   on a lost request or growth, see `report.rs` (its inputs parsed in
//!   `report_input.rs`).
//!
//! std only and thread-per-connection, like the other bench tools: nothing is shared with the
//! proxy under test.

mod backend;
mod load;
mod reply;
mod report;
mod report_input;
mod wire;

use std::net::SocketAddr;
use std::time::Duration;

use gatehouse_bench::{Args, fail};

const PROGRAM: &str = "soak";
const USAGE: &str = "\
usage: soak --mode backend --listen 127.0.0.1:PORT
       soak --mode load --target 127.0.0.1:PORT --duration 30m --out FILE [--seed N]
       soak --mode report --outcomes FILE --access-log FILE --chaos FILE --samples FILE
                          [--metrics FILE] [--rss-tolerance 0.10] [--fd-tolerance 16]

  backend   an upstream: GET /get?size=N[&delay=MS] (N bytes of the test pattern), POST /upload
            (checks the body, answers `ok N`), WebSocket echo on /ws, GET /health; every
            response says X-Backend: its listen address
  load      keep-alive GETs, new-connection GETs, uploads of 64 KiB-1 MiB, bodies trickled at
            ~1 KB/s, responses read at 0.6-16 KB/s (up to 1 MiB) and 32-128 KB/s (5-8 MiB),
            WebSocket echo sessions; one line per request in FILE:
            kind id start_ms end_ms status result backend detail
  report    requests by kind and outcome (failures classified with the access log and the
            kills), reloads, RSS and fd medians at the start and the end; exit 1 on a lost
            request or growth
";

fn main() {
    let args = Args::parse(
        PROGRAM,
        &[
            "mode",
            "listen",
            "target",
            "duration",
            "out",
            "seed",
            "outcomes",
            "access-log",
            "chaos",
            "samples",
            "metrics",
            "rss-tolerance",
            "fd-tolerance",
        ],
        USAGE,
    );
    match args.required("mode") {
        "backend" => backend::run(args.required("listen")),
        "load" => {
            let target: SocketAddr = args.required("target").parse().unwrap_or_else(|_| {
                fail(PROGRAM, "--target must be an address like 127.0.0.1:8080")
            });
            load::run(load::Settings {
                target,
                duration: args.duration("duration", Duration::from_secs(30 * 60)),
                out: args.required("out").to_owned(),
                seed: args.number("seed", wire::now_ms()),
            });
        }
        "report" => report::run(&report::Inputs {
            outcomes: args.required("outcomes").to_owned(),
            access_log: args.required("access-log").to_owned(),
            chaos: args.required("chaos").to_owned(),
            samples: args.required("samples").to_owned(),
            metrics: args.get("metrics").map(str::to_owned),
            rss_tolerance: args.number("rss-tolerance", 0.10),
            fd_tolerance: args.number("fd-tolerance", 16.0),
        }),
        other => fail(
            PROGRAM,
            &format!("--mode {other:?}: expected backend, load or report"),
        ),
    }
}
