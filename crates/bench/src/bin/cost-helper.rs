//! `cost-helper`: the two small servers and clients `scripts/bench-cost.sh` needs besides the
//! proxies under test.
//!
//! `--mode sink` is an HTTP/1.1 upstream that reads each request body to the end (with
//! `Content-Length` or chunked), throws it away, then answers `200` with the number of body
//! bytes it read: the upload target, as fast as a 256 KiB `read` loop goes. One thread per
//! connection.
//!
//! `--mode hold` opens `--count` connections to a proxy one after another, makes one keep-alive
//! `GET` on each (so the proxy has used its buffers for it), checks the `200`, keeps them all
//! open and idle, prints `held N connections` and waits to be killed. The holder's own cost
//! is one socket per connection and a few bytes of bookkeeping, so it does not crowd the proxy.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use gatehouse_bench::{Args, content_length, fail, has_token, header_end, header_value};

const PROGRAM: &str = "cost-helper";
const USAGE: &str = "\
usage: cost-helper --mode sink --listen 127.0.0.1:PORT
       cost-helper --mode hold --connect 127.0.0.1:PORT --count N [--path /]

  --mode sink   HTTP/1.1 upstream: read and discard each request body, answer 200 with the
                number of body bytes read (keep-alive)
  --mode hold   open N connections to ADDR one by one, one keep-alive GET PATH on each (must be
                answered 200), keep them all idle, print `held N connections`, wait for SIGTERM
";

/// Read buffer of the sink: large enough that a 1 GiB body is a few thousand reads.
const SINK_BUFFER: usize = 256 * 1024;
/// Largest header section accepted (request in sink mode, response in hold mode).
const MAX_HEAD: usize = 64 * 1024;

fn main() {
    let args = Args::parse(
        PROGRAM,
        &["mode", "listen", "connect", "count", "path"],
        USAGE,
    );
    match args.required("mode") {
        "sink" => sink(args.required("listen")),
        "hold" => hold(
            args.required("connect"),
            args.number("count", 0usize),
            args.get("path").unwrap_or("/"),
        ),
        other => fail(PROGRAM, &format!("--mode {other:?}: expected sink or hold")),
    }
}

// ---------------------------------------------------------------------------------------------
// sink
// ---------------------------------------------------------------------------------------------

fn sink(listen: &str) {
    let listener = TcpListener::bind(listen)
        .unwrap_or_else(|e| fail(PROGRAM, &format!("cannot listen on {listen}: {e}")));
    for stream in listener.incoming() {
        match stream {
            Ok(stream) => {
                std::thread::spawn(move || {
                    // A client going away mid-body is the proxy's business, not ours.
                    let _ = serve_sink(stream);
                });
            }
            Err(e) => eprintln!("{PROGRAM}: accept: {e}"),
        }
    }
}

fn serve_sink(stream: TcpStream) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut conn = Buffered::new(stream, SINK_BUFFER);
    while let Some(head) = conn.read_head()? {
        let chunked =
            header_value(&head, "transfer-encoding").is_some_and(|v| has_token(v, "chunked"));
        let received = if chunked {
            conn.skip_chunked()?
        } else {
            let n = content_length(&head).unwrap_or(0) as u64;
            conn.skip(n)?;
            n
        };
        let body = format!("{received}\n");
        let close = header_value(&head, "connection").is_some_and(|v| has_token(v, "close"));
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{}\r\n{body}",
            body.len(),
            if close { "Connection: close\r\n" } else { "" },
        );
        conn.stream.write_all(response.as_bytes())?;
        if close {
            break;
        }
    }
    Ok(())
}

/// A TCP stream with a read buffer that messages are parsed out of; bytes read past the end
/// of one message stay buffered for the next.
struct Buffered {
    stream: TcpStream,
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl Buffered {
    fn new(stream: TcpStream, capacity: usize) -> Self {
        Self {
            stream,
            buf: vec![0; capacity],
            start: 0,
            end: 0,
        }
    }

    /// Reads more into the buffer (moving what is unread to the front first); false at EOF.
    fn fill(&mut self) -> std::io::Result<bool> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            return Err(std::io::Error::new(
                ErrorKind::InvalidData,
                "line or header section too long",
            ));
        }
        loop {
            match self.stream.read(&mut self.buf[self.end..]) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    self.end += n;
                    return Ok(true);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// The next request's header section, or `None` when the client closed between requests.
    fn read_head(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        loop {
            if let Some(len) = header_end(&self.buf[self.start..self.end]) {
                let head = self.buf[self.start..self.start + len].to_vec();
                self.start += len;
                return Ok(Some(head));
            }
            if self.end - self.start >= MAX_HEAD {
                return Err(std::io::Error::new(
                    ErrorKind::InvalidData,
                    "header section too long",
                ));
            }
            if !self.fill()? {
                return if self.start == self.end {
                    Ok(None)
                } else {
                    Err(eof())
                };
            }
        }
    }

    /// Discards `n` bytes of body.
    fn skip(&mut self, mut n: u64) -> std::io::Result<()> {
        loop {
            let available = (self.end - self.start) as u64;
            if available >= n {
                self.start += n as usize;
                return Ok(());
            }
            n -= available;
            self.start = 0;
            self.end = 0;
            if !self.fill()? {
                return Err(eof());
            }
        }
    }

    /// One line without its CRLF.
    fn read_line(&mut self) -> std::io::Result<Vec<u8>> {
        loop {
            if let Some(p) = self.buf[self.start..self.end]
                .iter()
                .position(|&b| b == b'\n')
            {
                let line = self.buf[self.start..self.start + p].to_vec();
                self.start += p + 1;
                return Ok(line.strip_suffix(b"\r").unwrap_or(&line).to_vec());
            }
            if !self.fill()? {
                return Err(eof());
            }
        }
    }

    /// Discards a chunked body (and its trailers); returns the number of body bytes.
    fn skip_chunked(&mut self) -> std::io::Result<u64> {
        let mut total = 0;
        loop {
            let line = self.read_line()?;
            let size = line.split(|&b| b == b';').next().unwrap_or_default();
            let size = std::str::from_utf8(size)
                .ok()
                .and_then(|s| u64::from_str_radix(s.trim(), 16).ok())
                .ok_or_else(|| std::io::Error::new(ErrorKind::InvalidData, "bad chunk size"))?;
            if size == 0 {
                // Trailer fields, up to the blank line.
                while !self.read_line()?.is_empty() {}
                return Ok(total);
            }
            self.skip(size + 2)?; // the data and its CRLF
            total += size;
        }
    }
}

fn eof() -> std::io::Error {
    std::io::Error::new(ErrorKind::UnexpectedEof, "connection closed mid-message")
}

// ---------------------------------------------------------------------------------------------
// hold
// ---------------------------------------------------------------------------------------------

fn hold(addr: &str, count: usize, path: &str) {
    if count == 0 {
        fail(PROGRAM, "--count must be at least 1");
    }
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: cost-helper\r\n\r\n");
    let mut held = Vec::with_capacity(count);
    for i in 0..count {
        let stream = TcpStream::connect(addr)
            .and_then(|mut s| {
                s.set_read_timeout(Some(Duration::from_secs(10)))?;
                s.write_all(request.as_bytes())?;
                read_response(&mut s)?;
                Ok(s)
            })
            .unwrap_or_else(|e| {
                fail(
                    PROGRAM,
                    &format!("connection {} of {count} to {addr}: {e} ({i} held)", i + 1),
                )
            });
        held.push(stream);
    }
    println!("held {} connections", held.len());
    let _ = std::io::stdout().flush();
    // Idle until the script kills us; the connections close with the process.
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// Reads one response with a `Content-Length` body (or a small chunked one) and checks it is a
/// `200`, leaving the connection ready for another request.
fn read_response(stream: &mut TcpStream) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let head_len = loop {
        if let Some(len) = header_end(&buf) {
            break len;
        }
        if buf.len() > MAX_HEAD {
            return Err(std::io::Error::new(
                ErrorKind::InvalidData,
                "response header section too long",
            ));
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(eof());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = &buf[..head_len];
    let status = head.split(|&b| b == b' ').nth(1).unwrap_or_default();
    if status != b"200" {
        let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
        return Err(std::io::Error::other(format!(
            "expected 200, got {:?}",
            String::from_utf8_lossy(line)
        )));
    }
    let chunked = header_value(head, "transfer-encoding").is_some_and(|v| has_token(v, "chunked"));
    let done = |buf: &[u8]| {
        if chunked {
            buf[head_len..].ends_with(b"0\r\n\r\n")
        } else {
            buf.len() - head_len >= content_length(&buf[..head_len]).unwrap_or(0)
        }
    };
    while !done(&buf) {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(eof());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(())
}
