//! Origin servers on `127.0.0.1:0`, one std thread per connection: a well-behaved one that
//! records what it received, and ones that break HTTP on purpose.

use std::io::{self, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};

use crate::http1::{self, BodyState, Framing, Headers};
use crate::record::Recorder;

/// How long a hanging connection is held at most (tests end long before).
const HANG_LIMIT: Duration = Duration::from_secs(60);
/// How often blocked threads look at the stop flag.
const TICK: Duration = Duration::from_millis(50);

/// A request as an upstream received it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// Which accepted connection (0, 1, ...) it came on.
    pub conn: usize,
    pub method: String,
    pub target: String,
    /// The minor version: 1 for HTTP/1.1.
    pub version: u8,
    pub headers: Headers,
    /// The body, de-chunked; for an incomplete request, what arrived.
    pub body: Vec<u8>,
    pub framing: Framing,
    /// Whether the whole request (head and body, as framed) arrived.
    pub complete: bool,
}

impl RecordedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }
}

/// A response the [`Behavior::Serve`] upstream sends to every request.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// `200 OK` with `body`.
    pub fn ok(body: impl Into<Vec<u8>>) -> Self {
        Self::new(200, body)
    }

    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// The response bytes; `Content-Length` is added unless a framing header is set, and a
    /// chunked reply gets its body chunked.
    fn to_bytes(&self, head_request: bool) -> Vec<u8> {
        let reason = match self.status {
            200 => "OK",
            500 => "Internal Server Error",
            502 => "Bad Gateway",
            503 => "Service Unavailable",
            504 => "Gateway Timeout",
            _ => "Other",
        };
        let mut out = format!("HTTP/1.1 {} {reason}\r\n", self.status).into_bytes();
        let has = |name: &str| {
            self.headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case(name))
        };
        let chunked = self.headers.iter().any(|(n, v)| {
            n.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
        });
        for (name, value) in &self.headers {
            out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        if !has("content-length") && !has("transfer-encoding") {
            out.extend_from_slice(format!("Content-Length: {}\r\n", self.body.len()).as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        if !head_request {
            if chunked {
                if !self.body.is_empty() {
                    out.extend_from_slice(format!("{:x}\r\n", self.body.len()).as_bytes());
                    out.extend_from_slice(&self.body);
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(b"0\r\n\r\n");
            } else {
                out.extend_from_slice(&self.body);
            }
        }
        out
    }
}

/// What an upstream does with each connection.
#[derive(Debug, Clone)]
pub enum Behavior {
    /// Answers every request with the reply, keeping the connection alive.
    Serve(Reply),
    /// Reads one request, writes these bytes, closes.
    RawThenClose(Vec<u8>),
    /// Reads one request, writes these bytes, then holds the connection open without a byte
    /// more (empty bytes: never answers).
    RawThenHang(Vec<u8>),
    /// Closes each connection as soon as it is accepted, before reading anything.
    CloseOnAccept,
    /// Reads one request, then closes without sending a byte.
    CloseAfterRequest,
    /// Reads one request, then resets the connection (RST via `SO_LINGER` 0).
    ResetAfterRequest,
    /// Never reads a byte, with a tiny receive buffer, so a request body stalls at once.
    NeverRead,
}

#[derive(Debug, Default)]
struct State {
    stop: AtomicBool,
    connections: AtomicUsize,
    requests: Recorder<RecordedRequest>,
}

impl State {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Holds the calling thread (and whatever it owns) until the upstream stops.
    fn hang(&self) {
        let until = Instant::now() + HANG_LIMIT;
        while !self.stopped() && Instant::now() < until {
            std::thread::sleep(TICK);
        }
    }
}

/// An upstream server on `127.0.0.1:0`. Stops (and releases its port) when dropped.
#[derive(Debug)]
pub struct Upstream {
    addr: SocketAddr,
    state: Arc<State>,
    acceptor: Option<JoinHandle<()>>,
}

impl Upstream {
    pub fn start(behavior: Behavior) -> Self {
        let recv_buffer = matches!(behavior, Behavior::NeverRead).then_some(1024);
        let listener = bind_loopback(recv_buffer, 128);
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("local_addr: {e}"));
        let state = Arc::new(State::default());
        let accept_state = Arc::clone(&state);
        let acceptor = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if accept_state.stopped() {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let id = accept_state.connections.fetch_add(1, Ordering::Relaxed);
                let state = Arc::clone(&accept_state);
                let behavior = behavior.clone();
                std::thread::spawn(move || handle(stream, id, &behavior, &state));
            }
        });
        Self {
            addr,
            state,
            acceptor: Some(acceptor),
        }
    }

    /// Answers every request with `200 OK` and the body `hello`.
    pub fn hello() -> Self {
        Self::start(Behavior::Serve(Reply::ok("hello")))
    }

    pub fn serve(reply: Reply) -> Self {
        Self::start(Behavior::Serve(reply))
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::Relaxed)
    }

    /// Requests received so far (complete or not).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.requests.snapshot()
    }

    /// Waits until `n` requests were recorded; panics after `timeout`.
    pub fn wait_for_requests(&self, n: usize, timeout: Duration) -> Vec<RecordedRequest> {
        let found = self.state.requests.wait_until(timeout, |requests| {
            (requests.len() >= n).then(|| requests.to_vec())
        });
        found.unwrap_or_else(|| {
            panic!(
                "expected {n} request(s) upstream within {timeout:?}, got {:#?}",
                self.requests()
            )
        })
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::Relaxed);
        // Wake the acceptor so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

/// A loopback listener, optionally with a small receive buffer (inherited by accepted sockets).
fn bind_loopback(recv_buffer: Option<usize>, backlog: i32) -> TcpListener {
    let socket =
        Socket::new(Domain::IPV4, Type::STREAM, None).unwrap_or_else(|e| panic!("socket: {e}"));
    if let Some(size) = recv_buffer {
        socket
            .set_recv_buffer_size(size)
            .unwrap_or_else(|e| panic!("SO_RCVBUF: {e}"));
    }
    let addr: SocketAddr = ([127, 0, 0, 1], 0).into();
    socket
        .bind(&addr.into())
        .unwrap_or_else(|e| panic!("bind: {e}"));
    socket
        .listen(backlog)
        .unwrap_or_else(|e| panic!("listen: {e}"));
    socket.into()
}

fn handle(mut stream: TcpStream, id: usize, behavior: &Behavior, state: &State) {
    let _ = stream.set_nodelay(true);
    let mut reader = RequestReader {
        buf: Vec::new(),
        eof: false,
    };
    match behavior {
        Behavior::CloseOnAccept => {}
        Behavior::NeverRead => state.hang(),
        Behavior::Serve(reply) => {
            while let Some(request) = reader.next(&mut stream, id, state) {
                let complete = request.complete;
                let head_request = request.method == "HEAD";
                state.requests.push(request);
                if !complete || stream.write_all(&reply.to_bytes(head_request)).is_err() {
                    return;
                }
            }
        }
        Behavior::RawThenClose(_)
        | Behavior::RawThenHang(_)
        | Behavior::CloseAfterRequest
        | Behavior::ResetAfterRequest => {
            if let Some(request) = reader.next(&mut stream, id, state) {
                state.requests.push(request);
            }
            match behavior {
                Behavior::RawThenClose(bytes) => {
                    let _ = stream.write_all(bytes);
                }
                Behavior::RawThenHang(bytes) => {
                    let _ = stream.write_all(bytes);
                    state.hang();
                }
                Behavior::ResetAfterRequest => {
                    let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
                }
                _ => {}
            }
        }
    }
}

/// Reads requests off one connection, keeping bytes that belong to the next one.
struct RequestReader {
    buf: Vec<u8>,
    eof: bool,
}

impl RequestReader {
    /// Reads more bytes; false at EOF, on an error or when the upstream stops.
    fn fill(&mut self, stream: &mut TcpStream, state: &State) -> bool {
        let _ = stream.set_read_timeout(Some(TICK));
        let mut chunk = [0u8; 64 * 1024];
        loop {
            if state.stopped() || self.eof {
                return false;
            }
            match stream.read(&mut chunk) {
                Ok(0) => {
                    self.eof = true;
                    return false;
                }
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return true;
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) => {}
                Err(_) => {
                    self.eof = true;
                    return false;
                }
            }
        }
    }

    /// The next request: `None` when the connection ends before any byte of one. A request
    /// cut short (or unparseable) comes back with `complete == false`.
    fn next(
        &mut self,
        stream: &mut TcpStream,
        conn: usize,
        state: &State,
    ) -> Option<RecordedRequest> {
        let head = loop {
            match http1::parse_request_head(&self.buf) {
                Ok(Some(head)) => break head,
                Ok(None) if self.fill(stream, state) => {}
                Ok(None) if self.buf.is_empty() => return None,
                Ok(None) | Err(_) => {
                    let raw = String::from_utf8_lossy(&std::mem::take(&mut self.buf)).into_owned();
                    return Some(RecordedRequest {
                        conn,
                        method: String::new(),
                        target: raw,
                        version: 1,
                        headers: Headers::default(),
                        body: Vec::new(),
                        framing: Framing::None,
                        complete: false,
                    });
                }
            }
        };
        let framing = Framing::of_request(&head.headers);
        let mut request = RecordedRequest {
            conn,
            method: head.method,
            target: head.target,
            version: head.version,
            headers: head.headers,
            body: Vec::new(),
            framing,
            complete: false,
        };
        loop {
            match http1::body_state(framing, &self.buf[head.len..], self.eof) {
                BodyState::Complete { body, consumed } => {
                    self.buf.drain(..head.len + consumed);
                    request.body = body;
                    request.complete = true;
                    return Some(request);
                }
                BodyState::Partial { body } if !self.fill(stream, state) => {
                    request.body = body;
                    return Some(request);
                }
                BodyState::Partial { .. } => {}
                BodyState::Invalid { body, .. } => {
                    request.body = body;
                    self.buf.clear();
                    return Some(request);
                }
            }
        }
    }
}

/// A listener whose accept queue is full, so a new connect gets no SYN-ACK and times out.
#[derive(Debug)]
pub struct FullBacklog {
    addr: SocketAddr,
    _listener: TcpListener,
    _queued: Vec<TcpStream>,
}

impl FullBacklog {
    pub fn start() -> Self {
        let listener = bind_loopback(None, 0);
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("local_addr: {e}"));
        let mut queued = Vec::new();
        // Connect until one attempt does not complete: the queue is full from then on.
        for _ in 0..64 {
            match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
                Ok(stream) => queued.push(stream),
                Err(_) => {
                    return Self {
                        addr,
                        _listener: listener,
                        _queued: queued,
                    };
                }
            }
        }
        panic!(
            "the accept queue of {addr} never filled after {} connections",
            queued.len()
        );
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// A `200 OK` whose header section is about `size` bytes (1000-byte `X-Big-N` fields).
pub fn big_header_response(size: usize) -> Vec<u8> {
    let mut out = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n".to_vec();
    let mut n = 0;
    while out.len() < size {
        out.extend_from_slice(format!("X-Big-{n}: {}\r\n", "a".repeat(1000)).as_bytes());
        n += 1;
    }
    out.extend_from_slice(b"\r\n");
    out
}
