//! `soak --mode load`: the mixed load, one thread per actor, every request's outcome one line of
//! `--out` (tab-separated):
//!
//! `kind  id  start_ms  end_ms  status  result  backend  detail`
//!
//! `kind` is `ka_get` (keep-alive GETs), `new_get` (a new connection per GET), `upload` (POST of
//! 64 KiB to 1 MiB, some chunked), `slow_upload` (a body trickled at ~1 KB/s), `slow_read` (up
//! to 1 MiB read at 0.6 to 16 KB/s), `big_read` (5 to 8 MiB read at 32 to 128 KB/s) or `ws` (a
//! WebSocket echo session of 5 to 30 s, one line per session). `id` is also in the request's query (`id=...`), so the proxy's access
//! record of each request can be found. `result` is `ok` or what went wrong: `status` (a
//! status other than the one expected), `bad_body` (wrong length or content), `reset`,
//! `closed`, `timeout`, `refused`, `broken_pipe`, `io_error`, `bad_response`. `backend` is the
//! response's `X-Backend`, `detail` the stage and error, or the `Proxy-Status` of a failed
//! response.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gatehouse_bench::{fail, header_value};

use crate::PROGRAM;
use crate::reply::{
    Failed, Response, expect_len, expect_text, finish_response, read_response, text,
};
use crate::wire::{
    Conn, OP_BINARY, OP_CLOSE, OP_TEXT, PatternCheck, Rng, now_ms, pattern_slice, read_frame,
    status_of, write_frame, write_pattern, ws_accept,
};

/// How long one read or write may stall before the request counts as timed out.
const STALL: Duration = Duration::from_secs(30);

pub(crate) struct Settings {
    pub(crate) target: SocketAddr,
    pub(crate) duration: Duration,
    pub(crate) out: String,
    pub(crate) seed: u64,
}

/// The actors and how many threads each gets.
pub(crate) const ACTORS: &[(&str, usize)] = &[
    ("ka_get", 5),
    ("new_get", 2),
    ("upload", 2),
    ("slow_upload", 2),
    ("slow_read", 2),
    ("big_read", 1),
    ("ws", 4),
];

pub(crate) fn run(settings: Settings) {
    let file = File::create(&settings.out)
        .unwrap_or_else(|e| fail(PROGRAM, &format!("cannot create {}: {e}", settings.out)));
    let rec = Arc::new(Recorder {
        out: Mutex::new(BufWriter::with_capacity(256 * 1024, file)),
        ok: ACTORS.iter().map(|_| AtomicU64::new(0)).collect(),
        failed: ACTORS.iter().map(|_| AtomicU64::new(0)).collect(),
    });
    let started = Instant::now();
    let deadline = started + settings.duration;
    let mut threads = Vec::new();
    for &(kind, count) in ACTORS {
        for t in 0..count {
            let actor = Actor {
                kind,
                thread: t,
                target: settings.target,
                deadline,
                rng: Rng::new(settings.seed ^ ((t as u64 + 1) << 8) ^ (kind.len() as u64 * 7919)),
                rec: Arc::clone(&rec),
                n: 0,
            };
            threads.push(
                std::thread::Builder::new()
                    .name(format!("{kind}-{t}"))
                    .spawn(move || actor.run())
                    .unwrap_or_else(|e| fail(PROGRAM, &format!("cannot start a thread: {e}"))),
            );
        }
    }
    // Progress once a minute, and the file flushed every few seconds.
    let mut next_progress = started + Duration::from_secs(60);
    while threads.iter().any(|t| !t.is_finished()) {
        std::thread::sleep(Duration::from_millis(500));
        if Instant::now() >= next_progress {
            next_progress += Duration::from_secs(60);
            eprintln!(
                "{PROGRAM} load: {:>4}s {}",
                started.elapsed().as_secs(),
                rec.summary()
            );
            rec.flush();
        }
    }
    for t in threads {
        if t.join().is_err() {
            fail(PROGRAM, "a load thread panicked");
        }
    }
    rec.flush();
    eprintln!(
        "{PROGRAM} load: done after {}s: {}",
        started.elapsed().as_secs(),
        rec.summary()
    );
}

struct Recorder {
    out: Mutex<BufWriter<File>>,
    /// Requests that went well and requests that failed, per actor kind (as in `ACTORS`).
    ok: Vec<AtomicU64>,
    failed: Vec<AtomicU64>,
}

impl Recorder {
    fn record(&self, o: &Outcome) {
        let i = ACTORS
            .iter()
            .position(|(k, _)| *k == o.kind)
            .expect("every outcome is of an actor's kind");
        if o.result == "ok" {
            self.ok[i].fetch_add(1, Ordering::Relaxed);
        } else {
            self.failed[i].fetch_add(1, Ordering::Relaxed);
        }
        let clean = |s: &str| s.replace(['\t', '\n', '\r'], " ");
        let line = format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
            o.kind,
            o.id,
            o.start_ms,
            o.end_ms,
            o.status,
            o.result,
            if o.backend.is_empty() {
                "-"
            } else {
                &o.backend
            },
            if o.detail.is_empty() {
                "-".to_owned()
            } else {
                clean(&o.detail)
            },
        );
        if let Ok(mut out) = self.out.lock() {
            let _ = out.write_all(line.as_bytes());
        }
    }

    fn flush(&self) {
        if let Ok(mut out) = self.out.lock() {
            let _ = out.flush();
        }
    }

    fn summary(&self) -> String {
        ACTORS
            .iter()
            .enumerate()
            .map(|(i, (k, _))| {
                format!(
                    "{k} {}/{}",
                    self.ok[i].load(Ordering::Relaxed),
                    self.failed[i].load(Ordering::Relaxed)
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
            + " (ok/failed)"
    }
}

#[derive(Debug, Default)]
struct Outcome {
    kind: &'static str,
    id: String,
    start_ms: u64,
    end_ms: u64,
    status: u16,
    result: String,
    backend: String,
    detail: String,
}

struct Actor {
    kind: &'static str,
    thread: usize,
    target: SocketAddr,
    deadline: Instant,
    rng: Rng,
    rec: Arc<Recorder>,
    n: u64,
}

impl Actor {
    fn run(mut self) {
        // Spread the actors' first requests over the first second.
        std::thread::sleep(Duration::from_millis(self.rng.range(0, 1000)));
        let mut keep: Option<Conn> = None;
        while Instant::now() < self.deadline {
            let began = Instant::now();
            let pause = match self.kind {
                "ka_get" => {
                    self.ka_get(&mut keep);
                    Duration::from_millis(25) // 40 requests a second per thread
                }
                "new_get" => {
                    self.new_get();
                    Duration::from_millis(40)
                }
                "upload" => {
                    self.upload(&mut keep);
                    Duration::from_millis(250)
                }
                "slow_upload" => {
                    self.slow_upload();
                    Duration::from_millis(self.rng.range(500, 2000))
                }
                "slow_read" | "big_read" => {
                    self.slow_read();
                    Duration::from_millis(self.rng.range(500, 2000))
                }
                _ => {
                    self.ws();
                    Duration::from_millis(self.rng.range(100, 1000))
                }
            };
            if let Some(left) = pause.checked_sub(began.elapsed()) {
                std::thread::sleep(left);
            }
        }
    }

    fn next_id(&mut self) -> String {
        self.n += 1;
        format!("{}-{}-{}", self.kind.replace('_', ""), self.thread, self.n)
    }

    fn connect(&self) -> Result<Conn, Failed> {
        let stream = TcpStream::connect_timeout(&self.target, Duration::from_secs(5))
            .map_err(|e| Failed::io("connect", &e))?;
        let _ = stream.set_read_timeout(Some(STALL));
        let _ = stream.set_write_timeout(Some(STALL));
        Ok(Conn::new(stream))
    }

    fn record(&self, id: String, start_ms: u64, result: Result<Response, Failed>, want: u16) {
        let end_ms = now_ms();
        let mut o = Outcome {
            kind: self.kind,
            id,
            start_ms,
            end_ms,
            ..Outcome::default()
        };
        match result {
            Ok(r) => {
                o.status = r.status;
                o.backend = r.backend;
                if r.status != want {
                    o.result = "status".into();
                    o.detail = format!("proxy-status: {}; body: {}", r.proxy_status, r.text);
                } else if let Some(at) = r.check.bad_at {
                    o.result = "bad_body".into();
                    o.detail = format!("byte {at} differs from the pattern");
                } else {
                    o.result = "ok".into();
                }
            }
            Err(f) => {
                o.status = f.status;
                o.backend = f.backend;
                o.result = f.result.into();
                o.detail = f.detail;
            }
        }
        self.rec.record(&o);
    }

    /// Keep-alive GETs of 0 to 16 KiB; one in ten held 20 to 200 ms by the backend, so a kill
    /// finds some of them in flight.
    fn ka_get(&mut self, keep: &mut Option<Conn>) {
        let id = self.next_id();
        let size = self.rng.range(0, 16 * 1024);
        let delay = if self.rng.one_in(10) {
            format!("&delay={}", self.rng.range(20, 200))
        } else {
            String::new()
        };
        let start = now_ms();
        let result = (|| {
            if keep.is_none() {
                *keep = Some(self.connect()?);
            }
            let conn = keep.as_mut().expect("connected above");
            let reused = conn.exchanges > 0;
            let request = format!(
                "GET /get?id={id}&size={size}{delay} HTTP/1.1\r\nHost: soak\r\nUser-Agent: soak\r\n\r\n"
            );
            conn.stream
                .write_all(request.as_bytes())
                .map_err(|e| Failed::io(if reused { "send (reused)" } else { "send" }, &e))?;
            let r = read_response(conn, None, if reused { "reused" } else { "new" })?;
            expect_len(r, size)
        })();
        let drop_conn = match &result {
            Ok(r) => r.close,
            Err(_) => true,
        };
        if drop_conn {
            *keep = None;
        }
        self.record(id, start, result, 200);
    }

    /// A GET on a connection of its own (`Connection: close`).
    fn new_get(&mut self) {
        let id = self.next_id();
        let size = self.rng.range(0, 16 * 1024);
        let start = now_ms();
        let result = (|| {
            let mut conn = self.connect()?;
            let request = format!(
                "GET /get?id={id}&size={size} HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n"
            );
            conn.stream
                .write_all(request.as_bytes())
                .map_err(|e| Failed::io("send", &e))?;
            let r = read_response(&mut conn, None, "new")?;
            expect_len(r, size)
        })();
        self.record(id, start, result, 200);
    }

    /// POST of 64 KiB to 1 MiB of the pattern on a keep-alive connection; one in four chunked,
    /// one in three held 20 to 300 ms by the backend after it has read the body (so that a kill
    /// finds some uploads in flight).
    fn upload(&mut self, keep: &mut Option<Conn>) {
        let id = self.next_id();
        let size = self.rng.range(64 * 1024, 1024 * 1024);
        let delay = if self.rng.one_in(3) {
            format!("&delay={}", self.rng.range(20, 300))
        } else {
            String::new()
        };
        let chunked = self.rng.one_in(4);
        let piece = self.rng.range(8 * 1024, 64 * 1024) as usize;
        let start = now_ms();
        let result = (|| {
            if keep.is_none() {
                *keep = Some(self.connect()?);
            }
            let conn = keep.as_mut().expect("connected above");
            let framing = if chunked {
                "Transfer-Encoding: chunked".to_owned()
            } else {
                format!("Content-Length: {size}")
            };
            let head = format!(
                "POST /upload?id={id}{delay} HTTP/1.1\r\nHost: soak\r\nContent-Type: application/octet-stream\r\n{framing}\r\n\r\n"
            );
            let sent = (|| {
                conn.stream.write_all(head.as_bytes())?;
                if chunked {
                    let mut done = 0u64;
                    while done < size {
                        let len = (size - done).min(piece as u64) as usize;
                        conn.stream.write_all(format!("{len:x}\r\n").as_bytes())?;
                        conn.stream.write_all(pattern_slice(done, len))?;
                        conn.stream.write_all(b"\r\n")?;
                        done += len as u64;
                    }
                    conn.stream.write_all(b"0\r\n\r\n")
                } else {
                    write_pattern(&mut conn.stream, size, piece)
                }
            })();
            // The proxy may have answered (and stopped reading) before the body was all sent:
            // its answer, if there is one, says more than the failed write.
            let r = match sent {
                Ok(()) => read_response(conn, None, "upload")?,
                Err(e) => match read_response(conn, None, "upload after a failed send") {
                    Ok(r) => r,
                    Err(_) => return Err(Failed::io("send body", &e)),
                },
            };
            expect_text(r, &format!("ok {size}\n"))
        })();
        let drop_conn = match &result {
            Ok(r) => r.close,
            Err(_) => true,
        };
        if drop_conn {
            *keep = None;
        }
        self.record(id, start, result, 200);
    }

    /// POST of 2 to 8 KiB trickled at about 1 KB/s (128 bytes every 125 ms): well above
    /// `min_request_body_rate`, so it must be answered.
    fn slow_upload(&mut self) {
        let id = self.next_id();
        let size = self.rng.range(2 * 1024, 8 * 1024);
        let start = now_ms();
        let result = (|| {
            let mut conn = self.connect()?;
            let head = format!(
                "POST /upload?id={id} HTTP/1.1\r\nHost: soak\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n"
            );
            let sent = (|| {
                conn.stream.write_all(head.as_bytes())?;
                let mut done = 0u64;
                while done < size {
                    std::thread::sleep(Duration::from_millis(125));
                    let len = (size - done).min(128) as usize;
                    conn.stream.write_all(pattern_slice(done, len))?;
                    done += len as u64;
                }
                Ok::<(), io::Error>(())
            })();
            let r = match sent {
                Ok(()) => read_response(&mut conn, None, "slow upload")?,
                Err(e) => match read_response(&mut conn, None, "slow upload after a failed send") {
                    Ok(r) => r,
                    Err(_) => return Err(Failed::io("send body", &e)),
                },
            };
            expect_text(r, &format!("ok {size}\n"))
        })();
        self.record(id, start, result, 200);
    }

    /// A response read slowly, at a rate above `min_response_rate` (240 B/s), so it must
    /// arrive whole. `slow_read` reads 256 KiB to 1 MiB at 0.6 to 16 KB/s (log-uniform): the
    /// socket buffers take such a response at once, so the proxy is done with it at once.
    /// `big_read` reads 5 to 8 MiB at 32 to 128 KB/s: more than the buffers between the proxy
    /// and the client hold (about 4 MiB on Linux loopback), so the proxy's writes wait for the
    /// reader. A read is skipped when it could not finish before the end of the run.
    fn slow_read(&mut self) {
        let (rate, size) = if self.kind == "big_read" {
            let rate = self.rng.range(32_000, 128_000);
            (rate, self.rng.range(5 << 20, 8 << 20))
        } else {
            let rate = (600.0 * (16_000.0f64 / 600.0).powf(self.rng.range(0, 1000) as f64 / 1000.0))
                as u64;
            (
                rate,
                (rate * self.rng.range(60, 240)).clamp(256 * 1024, 1024 * 1024),
            )
        };
        let left = self.deadline.saturating_duration_since(Instant::now());
        if Duration::from_secs(size / rate + 5) > left {
            std::thread::sleep(left.min(Duration::from_secs(1)));
            return;
        }
        let id = self.next_id();
        let start = now_ms();
        let result = (|| {
            let mut conn = self.connect()?;
            let request = format!(
                "GET /get?id={id}&size={size}&rate={rate} HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n"
            );
            conn.stream
                .write_all(request.as_bytes())
                .map_err(|e| Failed::io("send", &e))?;
            let r = read_response(&mut conn, Some(rate), "slow read")?;
            expect_len(r, size)
        })();
        self.record(id, start, result, 200);
    }

    /// A WebSocket echo session: a message every 100 to 500 ms for 5 to 30 s (text or binary,
    /// 1 B to 16 KiB), each echo compared, then a close handshake.
    fn ws(&mut self) {
        let left = self.deadline.saturating_duration_since(Instant::now());
        let length = Duration::from_secs(self.rng.range(5, 30)).min(left);
        if length < Duration::from_secs(2) {
            std::thread::sleep(left);
            return;
        }
        let id = self.next_id();
        let start = now_ms();
        let mut backend = String::new();
        let mut messages = 0u64;
        let result = (|| {
            let mut conn = self.connect()?;
            let key = crate::wire::base64(&self.rng.next().to_be_bytes());
            let request = format!(
                "GET /ws?id={id} HTTP/1.1\r\nHost: soak\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            );
            conn.stream
                .write_all(request.as_bytes())
                .map_err(|e| Failed::io("handshake send", &e))?;
            let head = conn
                .read_head()
                .map_err(|e| Failed::io("handshake", &e))?
                .ok_or_else(|| Failed::io("handshake", &crate::wire::eof("before a response")))?;
            let status = status_of(&head).unwrap_or(0);
            backend = text(header_value(&head, "x-backend"));
            if status != 101 {
                // A failed handshake: read the rest of the response for its Proxy-Status.
                let r = finish_response(&mut conn, head, None, "handshake")?;
                return Ok(r);
            }
            let accept = text(header_value(&head, "sec-websocket-accept"));
            if accept != ws_accept(&key) {
                return Err(Failed {
                    result: "bad_response",
                    status,
                    backend: backend.clone(),
                    detail: format!("Sec-WebSocket-Accept {accept:?} is wrong"),
                });
            }
            let session = Failed::io;
            let ends = Instant::now() + length;
            while Instant::now() < ends {
                let len = self.rng.range(1, 16 * 1024) as usize;
                let opcode = if self.rng.one_in(2) {
                    OP_TEXT
                } else {
                    OP_BINARY
                };
                let payload: Vec<u8> = if opcode == OP_TEXT {
                    (0..len)
                        .map(|i| b'a' + ((i + messages as usize) % 26) as u8)
                        .collect()
                } else {
                    pattern_slice(messages, len).to_vec()
                };
                let mask = (self.rng.next() as u32).to_be_bytes();
                write_frame(&mut conn.stream, opcode, &payload, Some(mask))
                    .map_err(|e| session(&format!("after {messages} messages: send"), &e))?;
                let echo = read_frame(&mut conn)
                    .map_err(|e| session(&format!("after {messages} messages: echo"), &e))?;
                if echo.opcode != opcode || echo.payload != payload || !echo.fin {
                    return Err(Failed {
                        result: "bad_body",
                        status,
                        backend: backend.clone(),
                        detail: format!("message {messages}: the echo differs"),
                    });
                }
                messages += 1;
                std::thread::sleep(Duration::from_millis(self.rng.range(100, 500)));
            }
            let mask = (self.rng.next() as u32).to_be_bytes();
            write_frame(
                &mut conn.stream,
                OP_CLOSE,
                &1000u16.to_be_bytes(),
                Some(mask),
            )
            .map_err(|e| session("close send", &e))?;
            loop {
                let frame = read_frame(&mut conn).map_err(|e| session("close", &e))?;
                if frame.opcode == OP_CLOSE {
                    break;
                }
            }
            Ok(Response {
                status,
                backend: backend.clone(),
                proxy_status: String::new(),
                close: true,
                check: PatternCheck::default(),
                text: format!("{messages} messages"),
            })
        })();
        let result = result.map_err(|mut f| {
            if f.status == 0 && !backend.is_empty() {
                f.status = 101; // the session failed after the handshake
            }
            if f.backend.is_empty() {
                f.backend.clone_from(&backend);
            }
            f
        });
        self.record(id, start, result, 101);
    }
}
