//! `failover-backend`: an HTTP/1.1 keep-alive backend for the failover benchmark.
//!
//! `--mode serve` answers `200 ok` to every request (pipelined requests are answered in one
//! write); `--mode hang` accepts connections and reads requests but never answers, keeping the
//! connections open until the client gives up: a backend that is alive to TCP (and to TCP-only
//! health checks) but stuck. `--hang-when-exists FILE` serves until FILE appears, then stops
//! answering on every connection, the open keep-alive ones included (a deadlocked process).
//! One thread per connection; the benchmark uses a few dozen.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use gatehouse_bench::{Args, content_length, fail, has_token, header_end, header_value};

const PROGRAM: &str = "failover-backend";
const USAGE: &str = "\
usage: failover-backend --listen 127.0.0.1:PORT [--mode serve|hang] [--hang-when-exists FILE]

  --listen ADDR   address to listen on (SO_REUSEADDR, so a restart can take the same port at once)
  --mode serve    answer every request with `200 ok` (HTTP/1.1, keep-alive)   [default]
  --mode hang     accept and read requests, never answer, keep connections open
  --hang-when-exists FILE
                  serve until FILE exists (checked every 10 ms), then behave like hang mode on
                  every connection, including those already open
";

const RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nok\n";
const RESPONSE_CLOSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n";
/// Largest header section accepted before the connection is dropped.
const MAX_HEAD: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Serve,
    Hang,
}

fn main() {
    let args = Args::parse(PROGRAM, &["listen", "mode", "hang-when-exists"], USAGE);
    let listen = args.required("listen");
    let mode = match args.get("mode").unwrap_or("serve") {
        "serve" => Mode::Serve,
        "hang" => Mode::Hang,
        other => fail(
            PROGRAM,
            &format!("--mode {other:?}: expected serve or hang"),
        ),
    };
    // std sets SO_REUSEADDR on Unix listeners, so a backend restarted on the same port binds
    // even while the killed one's connections sit in TIME_WAIT.
    let listener = TcpListener::bind(listen)
        .unwrap_or_else(|e| fail(PROGRAM, &format!("cannot listen on {listen}: {e}")));
    let frozen = Arc::new(AtomicBool::new(false));
    if let Some(path) = args.get("hang-when-exists") {
        let path = PathBuf::from(path);
        let frozen = Arc::clone(&frozen);
        std::thread::spawn(move || {
            while !path.exists() {
                std::thread::sleep(Duration::from_millis(10));
            }
            frozen.store(true, Ordering::SeqCst);
        });
    }
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                // EMFILE and the like: back off instead of spinning.
                eprintln!("{PROGRAM}: accept: {e}");
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let frozen = Arc::clone(&frozen);
        let spawned = std::thread::Builder::new()
            .stack_size(64 * 1024)
            .spawn(move || match mode {
                Mode::Serve => serve(stream, &frozen),
                Mode::Hang => hang(stream),
            });
        if let Err(e) = spawned {
            // The stream moved into the failed closure is dropped: the client sees a close.
            eprintln!("{PROGRAM}: cannot start a connection thread: {e}");
        }
    }
}

fn serve(mut stream: TcpStream, frozen: &AtomicBool) {
    let _ = stream.set_nodelay(true);
    let mut buf = vec![0u8; 16 * 1024];
    let mut filled = 0;
    let mut out = Vec::with_capacity(RESPONSE.len() * 4);
    loop {
        let n = match stream.read(&mut buf[filled..]) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return,
        };
        filled += n;
        if frozen.load(Ordering::Relaxed) {
            return hang(stream);
        }
        // Answer every complete request in the buffer (pipelining), then write once.
        let mut start = 0;
        let mut close = false;
        while let Some(end) = header_end(&buf[start..filled]) {
            let head = &buf[start..start + end];
            let body = content_length(head).unwrap_or(0);
            if start + end + body > filled {
                break; // the body is not here yet
            }
            close = wants_close(head);
            out.extend_from_slice(if close { RESPONSE_CLOSE } else { RESPONSE });
            start += end + body;
            if close {
                break;
            }
        }
        if !out.is_empty() && stream.write_all(&out).is_err() {
            return;
        }
        out.clear();
        if close {
            return;
        }
        buf.copy_within(start..filled, 0);
        filled -= start;
        if filled == buf.len() {
            if buf.len() >= MAX_HEAD + 64 * 1024 {
                return; // a header section or body this large is not part of the benchmark
            }
            buf.resize(buf.len() * 2, 0);
        }
    }
}

/// HTTP/1.0 without `Connection: keep-alive`, any `Connection: close`, or a chunked request
/// body (which this backend does not parse: answer, then close).
fn wants_close(head: &[u8]) -> bool {
    let connection = header_value(head, "connection");
    if connection.is_some_and(|v| has_token(v, "close")) {
        return true;
    }
    if header_value(head, "transfer-encoding").is_some() {
        return true;
    }
    let http10 = head
        .split(|&b| b == b'\n')
        .next()
        .is_some_and(|line| line.trim_ascii_end().ends_with(b"HTTP/1.0"));
    http10 && !connection.is_some_and(|v| has_token(v, "keep-alive"))
}

fn hang(mut stream: TcpStream) {
    let mut scratch = [0u8; 4096];
    loop {
        match stream.read(&mut scratch) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}
