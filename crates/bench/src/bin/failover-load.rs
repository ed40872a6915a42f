//! `failover-load`: a closed-loop HTTP/1.1 load generator that counts what a client sees.
//!
//! `--connections` threads each keep one keep-alive connection and send `GET` after `GET` for
//! `--duration` (reconnecting when the server closes). Each request has a deadline
//! (`--timeout`, connect + send + the whole response). At the end it prints one JSON line:
//! requests, responses by status class, transport errors by kind (reset, closed, timeout,
//! connect, other), client-visible errors (5xx + transport errors), requests slower than
//! `--slow`, latency percentiles over all requests (failed ones included), and the seconds of
//! the run in which errors or slow requests started.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gatehouse_bench::{Args, content_length, fail, has_token, header_end, header_value};

const PROGRAM: &str = "failover-load";
const USAGE: &str = "\
usage: failover-load --url http://127.0.0.1:PORT/ [options]

  --url URL          http:// URL to GET (required)
  --connections N    concurrent keep-alive connections, one thread each   [16]
  --duration D       how long to start new requests (e.g. 20s)             [20s]
  --slow D           a request slower than this counts as slow             [1s]
  --timeout D        per-request deadline: connect + send + whole response [10s]

Prints one JSON line on stdout. Client-visible errors = 5xx responses + transport errors.
";

fn main() {
    let args = Args::parse(
        PROGRAM,
        &["url", "connections", "duration", "slow", "timeout"],
        USAGE,
    );
    let url = args.required("url").to_owned();
    let target = Target::parse(&url).unwrap_or_else(|e| fail(PROGRAM, &e));
    let connections: usize = args.number("connections", 16);
    if connections == 0 {
        fail(PROGRAM, "--connections must be at least 1");
    }
    let config = Arc::new(Config {
        target,
        duration: args.duration("duration", Duration::from_secs(20)),
        slow: args.duration("slow", Duration::from_secs(1)),
        timeout: args.duration("timeout", Duration::from_secs(10)),
    });

    let started = Instant::now();
    let workers: Vec<_> = (0..connections)
        .map(|_| {
            let config = Arc::clone(&config);
            std::thread::spawn(move || Worker::new(&config, started).run())
        })
        .collect();
    let mut total = Stats::new(&config);
    for worker in workers {
        match worker.join() {
            Ok(stats) => total.merge(stats),
            Err(_) => fail(PROGRAM, "a load thread panicked"),
        }
    }
    let elapsed = started.elapsed();
    println!("{}", total.finish_json(&url, connections, &config, elapsed));
    for sample in &total.error_samples {
        eprintln!("{PROGRAM}: sample error: {sample}");
    }
}

#[derive(Debug)]
struct Target {
    addr: SocketAddr,
    request: Vec<u8>,
}

impl Target {
    fn parse(url: &str) -> Result<Self, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("{url:?}: only http:// URLs are supported"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let with_port = if authority.contains(':') {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        let addr = with_port
            .to_socket_addrs()
            .map_err(|e| format!("{authority}: {e}"))?
            .next()
            .ok_or_else(|| format!("{authority}: no address"))?;
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: {PROGRAM}\r\n\r\n")
                .into_bytes();
        Ok(Self { addr, request })
    }
}

#[derive(Debug)]
struct Config {
    target: Target,
    duration: Duration,
    slow: Duration,
    timeout: Duration,
}

/// What went wrong below HTTP, as the client sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    /// Connection reset (or aborted, or a broken pipe while sending).
    Reset,
    /// The server closed the connection before the response was complete.
    Closed,
    /// The request's deadline passed.
    Timeout,
    /// Could not connect to the proxy.
    Connect,
    /// Anything else, including a response that is not HTTP.
    Other,
}

#[derive(Debug)]
struct Failure {
    kind: Transport,
    detail: String,
    /// Nothing of a response arrived, on a connection that had already served a request:
    /// the race a browser would paper over by retrying.
    on_reuse: bool,
}

type Outcome = Result<u16, Failure>;

#[derive(Debug)]
struct Stats {
    requests: u64,
    /// Responses by status class: index 1 = 1xx ... 5 = 5xx, 0 = anything else.
    status: [u64; 6],
    reset: u64,
    closed: u64,
    timeout: u64,
    connect: u64,
    other: u64,
    closed_on_reuse: u64,
    slow: u64,
    slow_threshold: Duration,
    latencies_us: Vec<u32>,
    /// Per second of the run (by request start): requests, errors, slow.
    per_second: Vec<[u64; 3]>,
    error_samples: Vec<String>,
}

impl Stats {
    fn new(config: &Config) -> Self {
        let seconds = config.duration.as_secs() as usize + 2;
        Self {
            requests: 0,
            status: [0; 6],
            reset: 0,
            closed: 0,
            timeout: 0,
            connect: 0,
            other: 0,
            closed_on_reuse: 0,
            slow: 0,
            slow_threshold: config.slow,
            latencies_us: Vec::new(),
            per_second: vec![[0; 3]; seconds],
            error_samples: Vec::new(),
        }
    }

    fn record(&mut self, second: usize, latency: Duration, outcome: &Outcome) {
        self.requests += 1;
        let slow = latency > self.slow_threshold;
        self.slow += u64::from(slow);
        self.latencies_us
            .push(u32::try_from(latency.as_micros()).unwrap_or(u32::MAX));
        let error = match outcome {
            Ok(status) => {
                let class = usize::from(status / 100);
                self.status[if (1..=5).contains(&class) { class } else { 0 }] += 1;
                class == 5
            }
            Err(failure) => {
                *match failure.kind {
                    Transport::Reset => &mut self.reset,
                    Transport::Closed => &mut self.closed,
                    Transport::Timeout => &mut self.timeout,
                    Transport::Connect => &mut self.connect,
                    Transport::Other => &mut self.other,
                } += 1;
                self.closed_on_reuse += u64::from(failure.on_reuse);
                if self.error_samples.len() < 5 {
                    self.error_samples.push(format!(
                        "{:?}{}: {}",
                        failure.kind,
                        if failure.on_reuse {
                            " (reused connection)"
                        } else {
                            ""
                        },
                        failure.detail
                    ));
                }
                true
            }
        };
        if self.per_second.len() <= second {
            self.per_second.resize(second + 1, [0; 3]);
        }
        let bucket = &mut self.per_second[second];
        bucket[0] += 1;
        bucket[1] += u64::from(error);
        bucket[2] += u64::from(slow);
    }

    fn merge(&mut self, other: Self) {
        self.requests += other.requests;
        for (a, b) in self.status.iter_mut().zip(other.status) {
            *a += b;
        }
        self.reset += other.reset;
        self.closed += other.closed;
        self.timeout += other.timeout;
        self.connect += other.connect;
        self.other += other.other;
        self.closed_on_reuse += other.closed_on_reuse;
        self.slow += other.slow;
        self.latencies_us.extend(other.latencies_us);
        if self.per_second.len() < other.per_second.len() {
            self.per_second.resize(other.per_second.len(), [0; 3]);
        }
        for (a, b) in self.per_second.iter_mut().zip(other.per_second) {
            for i in 0..3 {
                a[i] += b[i];
            }
        }
        for sample in other.error_samples {
            if self.error_samples.len() < 5 && !self.error_samples.contains(&sample) {
                self.error_samples.push(sample);
            }
        }
    }

    fn transport_errors(&self) -> u64 {
        self.reset + self.closed + self.timeout + self.connect + self.other
    }

    fn finish_json(
        &mut self,
        url: &str,
        connections: usize,
        config: &Config,
        elapsed: Duration,
    ) -> String {
        self.latencies_us.sort_unstable();
        let ms = |us: u32| f64::from(us) / 1000.0;
        let pct = |p: f64| -> f64 {
            if self.latencies_us.is_empty() {
                return 0.0;
            }
            // Nearest rank.
            let rank = ((p / 100.0) * self.latencies_us.len() as f64).ceil() as usize;
            ms(self.latencies_us[rank.clamp(1, self.latencies_us.len()) - 1])
        };
        let bad_seconds: Vec<String> = self
            .per_second
            .iter()
            .enumerate()
            .filter(|(_, b)| b[1] > 0 || b[2] > 0)
            .map(|(s, b)| format!("[{s},{},{},{}]", b[0], b[1], b[2]))
            .collect();
        let transport = self.transport_errors();
        format!(
            concat!(
                "{{\"url\":\"{}\",\"connections\":{},\"duration_s\":{:.1},\"elapsed_s\":{:.2},",
                "\"requests\":{},\"rps\":{:.0},",
                "\"status_1xx\":{},\"status_2xx\":{},\"status_3xx\":{},\"status_4xx\":{},",
                "\"status_5xx\":{},\"status_other\":{},",
                "\"transport_errors\":{},\"reset\":{},\"closed\":{},\"timeout\":{},",
                "\"connect\":{},\"other\":{},\"closed_on_reuse\":{},",
                "\"errors\":{},\"slow\":{},\"slow_ms\":{},\"timeout_ms\":{},",
                "\"p50_ms\":{:.2},\"p90_ms\":{:.2},\"p99_ms\":{:.2},\"p999_ms\":{:.2},\"max_ms\":{:.2},",
                "\"bad_seconds\":[{}]}}"
            ),
            url.replace('\\', "\\\\").replace('"', "\\\""),
            connections,
            config.duration.as_secs_f64(),
            elapsed.as_secs_f64(),
            self.requests,
            self.requests as f64 / elapsed.as_secs_f64().max(1e-9),
            self.status[1],
            self.status[2],
            self.status[3],
            self.status[4],
            self.status[5],
            self.status[0],
            transport,
            self.reset,
            self.closed,
            self.timeout,
            self.connect,
            self.other,
            self.closed_on_reuse,
            self.status[5] + transport,
            self.slow,
            config.slow.as_millis(),
            config.timeout.as_millis(),
            pct(50.0),
            pct(90.0),
            pct(99.0),
            pct(99.9),
            self.latencies_us.last().copied().map_or(0.0, ms),
            bad_seconds.join(","),
        )
    }
}

#[derive(Debug)]
struct Worker<'a> {
    config: &'a Config,
    started: Instant,
    stream: Option<TcpStream>,
    /// Requests answered on the current connection.
    served: u64,
    buf: Vec<u8>,
    stats: Stats,
}

impl<'a> Worker<'a> {
    fn new(config: &'a Config, started: Instant) -> Self {
        Self {
            config,
            started,
            stream: None,
            served: 0,
            buf: Vec::with_capacity(16 * 1024),
            stats: Stats::new(config),
        }
    }

    fn run(mut self) -> Stats {
        let end = self.started + self.config.duration;
        loop {
            let begin = Instant::now();
            if begin >= end {
                break;
            }
            let outcome = self.request(begin + self.config.timeout);
            let latency = begin.elapsed();
            let second = (begin - self.started).as_secs() as usize;
            if outcome.is_err() {
                // Whatever the failure, this connection is done.
                self.stream = None;
            }
            let refused = matches!(&outcome, Err(f) if f.kind == Transport::Connect);
            self.stats.record(second, latency, &outcome);
            if refused {
                // The proxy itself is not there: do not spin.
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        self.stats
    }

    fn request(&mut self, deadline: Instant) -> Outcome {
        let reused = self.stream.is_some() && self.served > 0;
        if self.stream.is_none() {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let stream =
                TcpStream::connect_timeout(&self.config.target.addr, remaining).map_err(|e| {
                    Failure {
                        kind: if e.kind() == ErrorKind::TimedOut {
                            Transport::Timeout
                        } else {
                            Transport::Connect
                        },
                        detail: format!("connect: {e}"),
                        on_reuse: false,
                    }
                })?;
            let _ = stream.set_nodelay(true);
            self.stream = Some(stream);
            self.served = 0;
            self.buf.clear();
        }
        let result = self.exchange(deadline);
        match result {
            Ok((status, keep_alive)) => {
                self.served += 1;
                if !keep_alive {
                    self.stream = None;
                }
                Ok(status)
            }
            Err(mut failure) => {
                failure.on_reuse = reused && failure.on_reuse;
                Err(failure)
            }
        }
    }

    /// Sends the request and reads one complete response: (status, keep-alive?).
    fn exchange(&mut self, deadline: Instant) -> Result<(u16, bool), Failure> {
        let Some(stream) = self.stream.as_mut() else {
            unreachable!("connected above");
        };
        let _ = stream.set_write_timeout(Some(
            deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1)),
        ));
        stream
            .write_all(&self.config.target.request)
            .map_err(|e| io_failure(&e, "send", true))?;
        loop {
            // Header section (skipping interim 1xx responses).
            let head_len = loop {
                if let Some(end) = header_end(&self.buf) {
                    break end;
                }
                let nothing_yet = self.buf.is_empty();
                read_more(stream, &mut self.buf, deadline, nothing_yet)?;
            };
            let head = &self.buf[..head_len];
            let status = parse_status(head).ok_or_else(|| Failure {
                kind: Transport::Other,
                detail: format!(
                    "not an HTTP response: {:?}",
                    String::from_utf8_lossy(&head[..head.len().min(60)])
                ),
                on_reuse: false,
            })?;
            let http10 = head.starts_with(b"HTTP/1.0");
            let connection = header_value(head, "connection");
            let mut keep_alive = if http10 {
                connection.is_some_and(|v| has_token(v, "keep-alive"))
            } else {
                !connection.is_some_and(|v| has_token(v, "close"))
            };
            let chunked =
                header_value(head, "transfer-encoding").is_some_and(|v| has_token(v, "chunked"));
            let length = content_length(head);
            if (100..200).contains(&status) {
                self.buf.drain(..head_len);
                continue;
            }
            let consumed = if status == 204 || status == 304 {
                head_len
            } else if chunked {
                read_chunked(stream, &mut self.buf, head_len, deadline)?
            } else if let Some(length) = length {
                while self.buf.len() < head_len + length {
                    read_more(stream, &mut self.buf, deadline, false)?;
                }
                head_len + length
            } else {
                // Delimited by close.
                keep_alive = false;
                loop {
                    match read_more(stream, &mut self.buf, deadline, false) {
                        Ok(()) => {}
                        Err(f) if f.kind == Transport::Closed => break self.buf.len(),
                        Err(f) => return Err(f),
                    }
                }
            };
            self.buf.drain(..consumed);
            return Ok((status, keep_alive));
        }
    }
}

fn parse_status(head: &[u8]) -> Option<u16> {
    let line = head.split(|&b| b == b'\n').next()?;
    if !line.starts_with(b"HTTP/1.") {
        return None;
    }
    let code = line.get(9..12)?;
    std::str::from_utf8(code).ok()?.parse().ok()
}

/// Decodes a chunked body starting at `start`; returns where the message ends.
fn read_chunked(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    start: usize,
    deadline: Instant,
) -> Result<usize, Failure> {
    let mut pos = start;
    loop {
        let line_end = loop {
            if let Some(i) = buf[pos..].windows(2).position(|w| w == b"\r\n") {
                break pos + i;
            }
            read_more(stream, buf, deadline, false)?;
        };
        let size_text = String::from_utf8_lossy(&buf[pos..line_end]);
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| Failure {
            kind: Transport::Other,
            detail: format!("bad chunk size {size_text:?}"),
            on_reuse: false,
        })?;
        pos = line_end + 2;
        if size == 0 {
            // Trailer section: lines until an empty one.
            loop {
                let end = loop {
                    if let Some(i) = buf[pos..].windows(2).position(|w| w == b"\r\n") {
                        break pos + i;
                    }
                    read_more(stream, buf, deadline, false)?;
                };
                let empty = end == pos;
                pos = end + 2;
                if empty {
                    return Ok(pos);
                }
            }
        }
        while buf.len() < pos + size + 2 {
            read_more(stream, buf, deadline, false)?;
        }
        pos += size + 2;
    }
}

/// Reads at least one more byte into `buf` before `deadline`. `nothing_yet`: no byte of the
/// response has arrived (marks a close or reset as a possible keep-alive race).
fn read_more(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    deadline: Instant,
    nothing_yet: bool,
) -> Result<(), Failure> {
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(Failure {
                kind: Transport::Timeout,
                detail: "no complete response before the deadline".to_owned(),
                on_reuse: false,
            });
        }
        let _ = stream.set_read_timeout(Some(remaining));
        match stream.read(&mut chunk) {
            Ok(0) => {
                return Err(Failure {
                    kind: Transport::Closed,
                    detail: format!(
                        "connection closed {}",
                        if nothing_yet {
                            "before the response"
                        } else {
                            "mid-response"
                        }
                    ),
                    on_reuse: nothing_yet,
                });
            }
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                return Ok(());
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(io_failure(&e, "receive", nothing_yet)),
        }
    }
}

fn io_failure(e: &std::io::Error, what: &str, nothing_yet: bool) -> Failure {
    let kind = match e.kind() {
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe => {
            Transport::Reset
        }
        ErrorKind::WouldBlock | ErrorKind::TimedOut => Transport::Timeout,
        _ => Transport::Other,
    };
    Failure {
        kind,
        detail: format!("{what}: {e}"),
        on_reuse: nothing_yet && kind == Transport::Reset,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_line() {
        assert_eq!(parse_status(b"HTTP/1.1 502 Bad Gateway\r\n\r\n"), Some(502));
        assert_eq!(parse_status(b"HTTP/1.0 200 OK\r\n\r\n"), Some(200));
        assert_eq!(parse_status(b"SSH-2.0\r\n\r\n"), None);
    }

    #[test]
    fn target() {
        let t = Target::parse("http://127.0.0.1:8080/x").unwrap();
        assert_eq!(t.addr, "127.0.0.1:8080".parse().unwrap());
        assert!(
            t.request
                .starts_with(b"GET /x HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n")
        );
        assert!(Target::parse("https://x/").is_err());
    }
}
