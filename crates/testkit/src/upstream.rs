//! Origin servers on `127.0.0.1:0`, one std thread per connection: a well-behaved one that
//! records what it received, and ones that break HTTP on purpose. Their behaviour can change
//! while they run (per path too, e.g. a failing health check), and they can be killed like a
//! crashed process and restarted on the same address. Two behaviours end keep-alive
//! connections the way real servers do ([`Behavior::IdleTimeout`], [`Behavior::MaxRequests`]),
//! for the races a proxy reusing connections runs into.

use std::collections::HashMap;
use std::io::{self, Read as _, Write as _};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
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

    /// The target without its query.
    pub fn path(&self) -> &str {
        path_of(&self.target)
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

/// What an upstream does with each connection, or with each request on it.
///
/// [`Upstream::set_behavior`] and [`Upstream::set_route`] change it while the upstream runs;
/// a request gets the behaviour current when it has been read. `CloseOnAccept` and `NeverRead`
/// act before any request is read: they apply to connections accepted while they are the
/// default behaviour (as a route, or when switched to mid-connection, they close or hold the
/// connection after the request).
#[derive(Debug, Clone)]
pub enum Behavior {
    /// Answers every request with the reply, keeping the connection alive.
    Serve(Reply),
    /// Answers every request with the reply after this delay, keeping the connection alive.
    Delay(Duration, Reply),
    /// A server whose keep-alive timer fires just as a reused connection's request goes out
    /// (Node.js: 5 s, gunicorn: 2 s). Answers every request with `reply`, keeping the connection
    /// alive, except a request whose first byte arrives once the connection has been idle for
    /// `idle` or longer since its previous response was written: that one is read (and
    /// recorded) and the connection is then closed without a byte of response (counted in
    /// [`Upstream::stale_closes`]). The first request on a connection is always answered, and an
    /// idle connection is never closed before a request arrives on it, so every request that
    /// arrives too late meets the race.
    IdleTimeout { idle: Duration, reply: Reply },
    /// A server with a max-requests-per-connection limit: answers up to `max` requests on a
    /// connection with `reply` (counting every response the connection carried), and closes
    /// the connection right after writing the `max`-th response, which says nothing about it
    /// (no `Connection: close`). A request read when `max` responses were written already (only
    /// with `max` 0, or after a switch of behaviour) is closed on unanswered.
    MaxRequests { max: usize, reply: Reply },
    /// Reads one request, writes these bytes, closes.
    RawThenClose(Vec<u8>),
    /// Reads one request, writes these bytes, then holds the connection open without a byte
    /// more (empty bytes: never answers).
    RawThenHang(Vec<u8>),
    /// Reads one request and never answers, holding the connection open until the upstream is
    /// killed or dropped.
    Hang,
    /// Closes each connection as soon as it is accepted, before reading anything.
    CloseOnAccept,
    /// Reads one request, then closes without sending a byte.
    CloseAfterRequest,
    /// Reads one request, then resets the connection (RST via `SO_LINGER` 0).
    ResetAfterRequest,
    /// Never reads a byte, with a tiny receive buffer (when it is the behaviour the upstream
    /// starts or restarts with), so a request body stalls at once.
    NeverRead,
}

/// What every listener generation of an upstream shares: its behaviour and its records.
#[derive(Debug)]
struct Shared {
    behavior: Mutex<Behavior>,
    /// Per-path behaviours, taking precedence over `behavior`.
    routes: Mutex<Vec<(String, Behavior)>>,
    connections: AtomicUsize,
    requests: Recorder<RecordedRequest>,
    in_flight: AtomicUsize,
    peak_in_flight: AtomicUsize,
    /// Requests [`Behavior::IdleTimeout`] closed on unanswered.
    stale_closes: AtomicUsize,
}

impl Shared {
    fn behavior(&self) -> Behavior {
        lock(&self.behavior).clone()
    }

    /// The behaviour for a request to `target`: its path's route, or the default.
    fn behavior_for(&self, target: &str) -> Behavior {
        let path = path_of(target);
        let routes = lock(&self.routes);
        match routes.iter().find(|(p, _)| p == path) {
            Some((_, behavior)) => behavior.clone(),
            None => self.behavior(),
        }
    }

    /// Counts a request as in flight until the guard drops.
    fn enter(&self) -> InFlight<'_> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(self)
    }
}

/// One request being answered (see [`Shared::enter`]).
struct InFlight<'a>(&'a Shared);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One listener's life, from `start`/`restart` to `kill`: its connections watch `stop`.
#[derive(Debug, Default)]
struct Generation {
    stop: AtomicBool,
    /// Connection threads still running.
    live: AtomicUsize,
    /// A handle on each open connection (by id), so `kill` can close it even while its
    /// thread is blocked writing. Removed before the thread drops its own handle, or the
    /// socket would stay open.
    open: Mutex<HashMap<usize, TcpStream>>,
}

impl Generation {
    /// Shuts every open connection down (the peer sees them closed) and stops the threads.
    fn close_all(&self) {
        self.stop.store(true, Ordering::Relaxed);
        for stream in lock(&self.open).values() {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Holds the calling thread (and whatever it owns) until the upstream stops.
    fn hang(&self) {
        self.sleep(HANG_LIMIT);
    }

    /// Sleeps for `delay`; false if the upstream stopped meanwhile.
    fn sleep(&self, delay: Duration) -> bool {
        let until = Instant::now() + delay;
        loop {
            if self.stopped() {
                return false;
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            std::thread::sleep(left.min(TICK));
        }
    }
}

/// A running listener: its generation and its accept thread.
#[derive(Debug)]
struct Running {
    generation: Arc<Generation>,
    acceptor: JoinHandle<()>,
}

/// An upstream server on `127.0.0.1:0` (or an address of the test's choosing). It can be killed
/// and restarted on the same address; stops (and releases its port) when dropped.
#[derive(Debug)]
pub struct Upstream {
    addr: SocketAddr,
    shared: Arc<Shared>,
    running: Mutex<Option<Running>>,
}

impl Upstream {
    pub fn start(behavior: Behavior) -> Self {
        Self::start_on(([127, 0, 0, 1], 0).into(), behavior)
    }

    /// Listens on `addr`: e.g. `127.0.0.2:0`, or `127.0.0.3:P` with the port `P` of another
    /// upstream, so one host name can resolve to several loopback addresses with one port.
    pub fn start_on(addr: SocketAddr, behavior: Behavior) -> Self {
        let shared = Arc::new(Shared {
            behavior: Mutex::new(behavior),
            routes: Mutex::new(Vec::new()),
            connections: AtomicUsize::new(0),
            requests: Recorder::default(),
            in_flight: AtomicUsize::new(0),
            peak_in_flight: AtomicUsize::new(0),
            stale_closes: AtomicUsize::new(0),
        });
        let (addr, running) = listen(addr, &shared);
        Self {
            addr,
            shared,
            running: Mutex::new(Some(running)),
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

    /// Switches the default behaviour, for requests read (and connections accepted) from now on.
    pub fn set_behavior(&self, behavior: Behavior) {
        *lock(&self.shared.behavior) = behavior;
    }

    /// Requests whose path (the target without its query) is exactly `path` get `behavior`
    /// from now on, whatever the default: e.g. a failing health-check path on a server that
    /// serves everything else.
    pub fn set_route(&self, path: &str, behavior: Behavior) {
        let mut routes = lock(&self.shared.routes);
        routes.retain(|(p, _)| p != path);
        routes.push((path.to_owned(), behavior));
    }

    /// Requests to `path` get the default behaviour again.
    pub fn clear_route(&self, path: &str) {
        lock(&self.shared.routes).retain(|(p, _)| p != path);
    }

    /// Stops as a crashed process would: the listener is closed (new connects are refused) and
    /// every open connection is closed; returns once both are done. Nothing is answered from
    /// then on. A no-op when already stopped.
    pub fn kill(&self) {
        let Some(running) = lock(&self.running).take() else {
            return;
        };
        let generation = running.generation;
        generation.stop.store(true, Ordering::Relaxed);
        // Wake the acceptor so it sees the flag and drops the listener.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        let _ = running.acceptor.join();
        generation.close_all();
        // The threads notice within a TICK.
        let deadline = Instant::now() + Duration::from_secs(5);
        while generation.live.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Listens again on the same address after [`Upstream::kill`] (the behaviour, routes and
    /// records carry over). A no-op when running.
    pub fn restart(&self) {
        let mut running = lock(&self.running);
        if running.is_none() {
            let (_, listener) = listen(self.addr, &self.shared);
            *running = Some(listener);
        }
    }

    /// Whether it is listening (started or restarted, and not killed).
    pub fn is_running(&self) -> bool {
        lock(&self.running).is_some()
    }

    /// Connections accepted so far (over every restart).
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::Relaxed)
    }

    /// Requests received so far (complete or not), health checks included.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests.snapshot()
    }

    /// Requests received so far whose path is exactly `path`.
    pub fn requests_to(&self, path: &str) -> Vec<RecordedRequest> {
        let mut requests = self.requests();
        requests.retain(|r| r.path() == path);
        requests
    }

    /// Requests received so far whose path is not `path` (e.g. all but health checks).
    pub fn requests_except(&self, path: &str) -> Vec<RecordedRequest> {
        let mut requests = self.requests();
        requests.retain(|r| r.path() != path);
        requests
    }

    /// Requests read and not yet answered (or closed on), right now.
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight.load(Ordering::SeqCst)
    }

    /// The most requests ever in flight at once.
    pub fn peak_in_flight(&self) -> usize {
        self.shared.peak_in_flight.load(Ordering::SeqCst)
    }

    /// Requests that [`Behavior::IdleTimeout`] read on a connection idle too long and closed
    /// on without answering, so far. Counted before the connection is closed: once the peer
    /// saw the close, the count includes it.
    pub fn stale_closes(&self) -> usize {
        self.shared.stale_closes.load(Ordering::SeqCst)
    }

    /// Waits until `n` requests were recorded; panics after `timeout`.
    pub fn wait_for_requests(&self, n: usize, timeout: Duration) -> Vec<RecordedRequest> {
        let found = self.shared.requests.wait_until(timeout, |requests| {
            (requests.len() >= n).then(|| requests.to_vec())
        });
        found.unwrap_or_else(|| {
            panic!(
                "expected {n} request(s) upstream within {timeout:?}, got {:#?}",
                self.requests()
            )
        })
    }

    /// Waits until a request to `path` is recorded; panics after `timeout`.
    pub fn wait_for_request_to(&self, path: &str, timeout: Duration) -> RecordedRequest {
        let found = self.shared.requests.wait_until(timeout, |requests| {
            requests.iter().find(|r| r.path() == path).cloned()
        });
        found.unwrap_or_else(|| {
            panic!(
                "expected a request to {path} upstream within {timeout:?}, got {:#?}",
                self.requests()
            )
        })
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.kill();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The path of a request target: up to the query.
fn path_of(target: &str) -> &str {
    target.split_once('?').map_or(target, |(path, _)| path)
}

/// Binds `addr` and starts accepting with the upstream's current behaviour; returns the bound
/// address (the port chosen, for port 0).
fn listen(addr: SocketAddr, shared: &Arc<Shared>) -> (SocketAddr, Running) {
    let recv_buffer = matches!(shared.behavior(), Behavior::NeverRead).then_some(1024);
    let listener = bind(addr, recv_buffer, 128);
    let addr = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("local_addr: {e}"));
    let generation = Arc::new(Generation::default());
    let (shared, accept_generation) = (Arc::clone(shared), Arc::clone(&generation));
    let acceptor = std::thread::spawn(move || {
        for stream in listener.incoming() {
            if accept_generation.stopped() {
                return;
            }
            let Ok(stream) = stream else { continue };
            let id = shared.connections.fetch_add(1, Ordering::Relaxed);
            accept_generation.live.fetch_add(1, Ordering::SeqCst);
            if let Ok(handle) = stream.try_clone() {
                lock(&accept_generation.open).insert(id, handle);
            }
            let (shared, generation) = (Arc::clone(&shared), Arc::clone(&accept_generation));
            std::thread::spawn(move || {
                let stream = handle(stream, id, &shared, &generation);
                lock(&generation.open).remove(&id);
                drop(stream);
                generation.live.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    (
        addr,
        Running {
            generation,
            acceptor,
        },
    )
}

/// A loopback listener on port 0, optionally with a small receive buffer (inherited by
/// accepted sockets).
fn bind_loopback(recv_buffer: Option<usize>, backlog: i32) -> TcpListener {
    bind(([127, 0, 0, 1], 0).into(), recv_buffer, backlog)
}

/// A listener on `addr`. `SO_REUSEADDR` lets a restarted upstream bind its port again while
/// connections of its previous life sit in TIME_WAIT (Linux still refuses two listeners).
fn bind(addr: SocketAddr, recv_buffer: Option<usize>, backlog: i32) -> TcpListener {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)
        .unwrap_or_else(|e| panic!("socket: {e}"));
    socket
        .set_reuse_address(true)
        .unwrap_or_else(|e| panic!("SO_REUSEADDR: {e}"));
    if let Some(size) = recv_buffer {
        socket
            .set_recv_buffer_size(size)
            .unwrap_or_else(|e| panic!("SO_RCVBUF: {e}"));
    }
    socket
        .bind(&addr.into())
        .unwrap_or_else(|e| panic!("bind {addr}: {e}"));
    socket
        .listen(backlog)
        .unwrap_or_else(|e| panic!("listen on {addr}: {e}"));
    socket.into()
}

/// Serves one connection; gives the stream back for the caller to close.
fn handle(mut stream: TcpStream, id: usize, shared: &Shared, generation: &Generation) -> TcpStream {
    let _ = stream.set_nodelay(true);
    match shared.behavior() {
        Behavior::CloseOnAccept => return stream,
        Behavior::NeverRead => {
            generation.hang();
            return stream;
        }
        _ => {}
    }
    let mut reader = RequestReader {
        buf: Vec::new(),
        eof: false,
        arrived: Instant::now(),
    };
    let mut answered = Answered::default();
    while let Some(request) = reader.next(&mut stream, id, generation) {
        let behavior = shared.behavior_for(&request.target);
        let complete = request.complete;
        let head_request = request.method == "HEAD";
        let _in_flight = shared.enter();
        shared.requests.push(request);
        let keep_alive = match behavior {
            Behavior::Serve(reply) => complete && answered.write(&mut stream, &reply, head_request),
            Behavior::Delay(delay, reply) => {
                complete
                    && generation.sleep(delay)
                    && answered.write(&mut stream, &reply, head_request)
            }
            Behavior::IdleTimeout { idle, reply } => {
                let idle_for = answered.idle_at(reader.arrived);
                if idle_for.is_some_and(|idle_for| idle_for >= idle) {
                    shared.stale_closes.fetch_add(1, Ordering::SeqCst);
                    false
                } else {
                    complete && answered.write(&mut stream, &reply, head_request)
                }
            }
            Behavior::MaxRequests { max, reply } => {
                // The max-th response ends the connection, closed right after it is written.
                let wrote = complete
                    && answered.count < max
                    && answered.write(&mut stream, &reply, head_request);
                // Counted after the write: keep the connection only below the limit.
                let below_limit = answered.count < max;
                wrote && below_limit
            }
            Behavior::RawThenClose(bytes) => {
                let _ = stream.write_all(&bytes);
                false
            }
            Behavior::RawThenHang(bytes) => {
                let _ = stream.write_all(&bytes);
                generation.hang();
                false
            }
            Behavior::Hang | Behavior::NeverRead => {
                generation.hang();
                false
            }
            Behavior::ResetAfterRequest => {
                let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
                false
            }
            Behavior::CloseOnAccept | Behavior::CloseAfterRequest => false,
        };
        if !keep_alive {
            return stream;
        }
    }
    stream
}

/// The responses one connection carried so far, for behaviours that depend on its history.
#[derive(Debug, Default)]
struct Answered {
    /// Responses written.
    count: usize,
    /// When the last one was written in full.
    last: Option<Instant>,
}

impl Answered {
    /// Writes `reply`; false if the write failed (the peer is gone).
    fn write(&mut self, stream: &mut TcpStream, reply: &Reply, head_request: bool) -> bool {
        if stream.write_all(&reply.to_bytes(head_request)).is_err() {
            return false;
        }
        self.count += 1;
        self.last = Some(Instant::now());
        true
    }

    /// How long the connection had been idle at `at`, since its last response; `None` before
    /// its first one.
    fn idle_at(&self, at: Instant) -> Option<Duration> {
        self.last.map(|last| at.saturating_duration_since(last))
    }
}

/// Reads requests off one connection, keeping bytes that belong to the next one.
struct RequestReader {
    buf: Vec<u8>,
    eof: bool,
    /// When the first byte of the request [`RequestReader::next`] read last arrived (for one
    /// already buffered behind the previous request: when reading it began).
    arrived: Instant,
}

impl RequestReader {
    /// Reads more bytes; false at EOF, on an error or when the upstream stops.
    fn fill(&mut self, stream: &mut TcpStream, generation: &Generation) -> bool {
        let _ = stream.set_read_timeout(Some(TICK));
        let mut chunk = [0u8; 64 * 1024];
        loop {
            if generation.stopped() || self.eof {
                return false;
            }
            match stream.read(&mut chunk) {
                Ok(0) => {
                    self.eof = true;
                    return false;
                }
                Ok(n) => {
                    if self.buf.is_empty() {
                        self.arrived = Instant::now();
                    }
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
        generation: &Generation,
    ) -> Option<RecordedRequest> {
        // Bytes already here were pipelined behind the previous request; otherwise `fill`
        // stamps the first one to arrive.
        self.arrived = Instant::now();
        let head = loop {
            match http1::parse_request_head(&self.buf) {
                Ok(Some(head)) => break head,
                Ok(None) if self.fill(stream, generation) => {}
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
                BodyState::Partial { body } if !self.fill(stream, generation) => {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{RawConn, Req};

    /// `STATUS BODY` of a GET on a new connection.
    fn get(addr: SocketAddr, path: &str) -> String {
        let mut conn = RawConn::connect(addr);
        let _ = conn.send(&Req::get(path).to_bytes());
        match conn.try_read_response(false, Duration::from_secs(5)) {
            Ok(response) => format!("{} {}", response.status, response.text()),
            Err(_) => String::new(),
        }
    }

    #[test]
    fn routes_behaviors_kill_and_restart() {
        let upstream = Upstream::hello();
        upstream.set_route("/health", Behavior::Serve(Reply::new(500, "down")));
        assert!(get(upstream.addr(), "/a?x=1").ends_with("hello"));
        assert!(get(upstream.addr(), "/health").starts_with("500"));
        upstream.clear_route("/health");
        assert!(get(upstream.addr(), "/health").starts_with("200"));
        upstream.set_behavior(Behavior::CloseAfterRequest);
        assert_eq!(get(upstream.addr(), "/b"), "");
        let paths: Vec<String> = upstream
            .requests()
            .iter()
            .map(|r| r.path().to_owned())
            .collect();
        assert_eq!(paths, ["/a", "/health", "/health", "/b"]);
        assert_eq!(upstream.requests_to("/health").len(), 2);
        assert_eq!(upstream.requests_except("/health").len(), 2);

        // An idle keep-alive connection is closed by kill, and new connects are refused.
        upstream.set_behavior(Behavior::Serve(Reply::ok("again")));
        let mut idle = TcpStream::connect(upstream.addr()).unwrap();
        idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        upstream.kill();
        assert!(!upstream.is_running());
        let mut buf = [0u8; 16];
        assert!(
            matches!(idle.read(&mut buf), Ok(0) | Err(_)),
            "still open after kill"
        );
        let refused = TcpStream::connect(upstream.addr()).unwrap_err();
        assert_eq!(refused.kind(), io::ErrorKind::ConnectionRefused);

        upstream.restart();
        assert!(get(upstream.addr(), "/c").ends_with("again"));
        assert_eq!(upstream.requests().len(), 5);
    }

    #[test]
    fn hang_holds_until_killed_and_delay_counts_in_flight() {
        let upstream = Upstream::start(Behavior::Hang);
        let mut stream = TcpStream::connect(upstream.addr()).unwrap();
        stream
            .write_all(b"GET /h HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        upstream.wait_for_requests(1, Duration::from_secs(5));
        stream
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let mut buf = [0u8; 16];
        assert!(
            stream.read(&mut buf).is_err(),
            "a hanging upstream answered"
        );
        assert_eq!(upstream.in_flight(), 1);
        upstream.kill();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        assert!(matches!(stream.read(&mut buf), Ok(0) | Err(_)));
        assert_eq!(upstream.in_flight(), 0);

        let slow = Upstream::start(Behavior::Delay(
            Duration::from_millis(300),
            Reply::ok("slow"),
        ));
        let addr = slow.addr();
        let started = Instant::now();
        let clients: Vec<_> = (0..3)
            .map(|_| std::thread::spawn(move || get(addr, "/")))
            .collect();
        for client in clients {
            assert!(client.join().unwrap().ends_with("slow"));
        }
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert_eq!(slow.peak_in_flight(), 3);
    }

    #[test]
    fn kill_closes_a_connection_blocked_writing() {
        let upstream = Upstream::serve(Reply::ok(vec![b'x'; 32 * 1024 * 1024]));
        let mut stream = TcpStream::connect(upstream.addr()).unwrap();
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        upstream.wait_for_requests(1, Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(100)); // the reply fills the buffers
        let started = Instant::now();
        upstream.kill();
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "kill took {:?}",
            started.elapsed()
        );
        // Whatever was buffered arrives, then the end: never the whole 32 MiB.
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut received = 0;
        let mut buf = vec![0u8; 1 << 20];
        while let Ok(n @ 1..) = stream.read(&mut buf) {
            received += n;
        }
        assert!(received < 32 * 1024 * 1024, "{received}");
    }

    #[test]
    fn idle_timeout_closes_unanswered_only_a_request_after_the_idle_time() {
        let idle = Duration::from_millis(200);
        let upstream = Upstream::start(Behavior::IdleTimeout {
            idle,
            reply: Reply::ok("ok").header("Keep-Alive", "timeout=1"),
        });
        // Requests in quick succession are answered on one connection.
        let mut conn = RawConn::connect(upstream.addr());
        for _ in 0..2 {
            let response = Req::get("/").send_on(&mut conn);
            assert_eq!((response.status, response.text().as_str()), (200, "ok"));
            assert_eq!(response.header("keep-alive"), Some("timeout=1"));
        }
        // An idle connection is not closed before a request arrives on it; that request is
        // read, recorded, and closed on without a byte.
        assert!(!conn.closes_within(idle * 2), "closed while idle");
        conn.send(&Req::new("POST", "/late").body("late").to_bytes())
            .unwrap();
        let unanswered = conn
            .try_read_response(false, Duration::from_secs(5))
            .unwrap_err();
        assert!(unanswered.raw.is_empty(), "{unanswered}");
        assert!(conn.closes_within(Duration::from_secs(5)));
        assert_eq!(upstream.stale_closes(), 1);
        let late = upstream.wait_for_request_to("/late", Duration::from_secs(5));
        assert_eq!(
            (late.conn, late.complete, late.body.as_slice()),
            (0, true, &b"late"[..])
        );

        // The first request on a connection is answered however long it took to come.
        let mut conn = RawConn::connect(upstream.addr());
        std::thread::sleep(idle * 2);
        assert_eq!(Req::get("/first").send_on(&mut conn).status, 200);
        assert_eq!(Req::get("/second").send_on(&mut conn).status, 200);
        assert_eq!(upstream.stale_closes(), 1);
        let conns: Vec<usize> = upstream.requests().iter().map(|r| r.conn).collect();
        assert_eq!(conns, [0, 0, 0, 1, 1]);
    }

    #[test]
    fn max_requests_closes_right_after_the_last_response_without_saying_so() {
        let upstream = Upstream::start(Behavior::MaxRequests {
            max: 2,
            reply: Reply::ok("ok"),
        });
        for _ in 0..2 {
            let mut conn = RawConn::connect(upstream.addr());
            let first = Req::new("POST", "/").body("1").send_on(&mut conn);
            assert_eq!(first.status, 200);
            assert!(
                !conn.closes_within(Duration::from_millis(200)),
                "closed after the first response"
            );
            let second = Req::get("/").send_on(&mut conn);
            assert_eq!((second.status, second.complete), (200, true));
            assert_eq!(second.header("connection"), None, "{second:#?}");
            assert!(
                conn.closes_within(Duration::from_secs(5)),
                "still open after the max-th response"
            );
        }
        assert_eq!(upstream.connections(), 2);
        let conns: Vec<usize> = upstream.requests().iter().map(|r| r.conn).collect();
        assert_eq!(conns, [0, 0, 1, 1]);

        // With max 0 a request is read and closed on unanswered.
        upstream.set_behavior(Behavior::MaxRequests {
            max: 0,
            reply: Reply::ok("ok"),
        });
        assert_eq!(get(upstream.addr(), "/zero"), "");
        upstream.wait_for_request_to("/zero", Duration::from_secs(5));
        assert_eq!(upstream.stale_closes(), 0);
    }

    #[test]
    fn start_on_other_loopback_addresses_with_one_port() {
        let two = Upstream::start_on(
            ([127, 0, 0, 2], 0).into(),
            Behavior::Serve(Reply::ok("two")),
        );
        let port = two.addr().port();
        let three = Upstream::start_on(
            ([127, 0, 0, 3], port).into(),
            Behavior::Serve(Reply::ok("three")),
        );
        assert_eq!(three.addr().port(), port);
        assert!(get(two.addr(), "/").ends_with("two"));
        assert!(get(three.addr(), "/").ends_with("three"));
    }
}
