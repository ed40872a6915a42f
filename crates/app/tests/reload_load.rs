//! Reload under load, against the real binary: while a bounded client load runs on loopback
//! (keep-alive connections, and a new connection per request), the config is reloaded 50 times
//! with SIGHUP, valid and invalid configs mixed, with routes, server lists, balancing and
//! timeouts changing from one to the next. Proven:
//!
//! - no client request fails, is cut short or is reset: every response is a complete `200`
//!   from an origin of a config in force while the request was under way, on a reused
//!   connection too (and gatehouse logs no failure, not even one hidden by a retry);
//! - each reload is taken or refused as its config deserves, and after each one exactly what
//!   the config in force says applies (a refused config changes nothing);
//! - a response streaming across 40 of the reloads, some of which remove its server or its
//!   route, arrives complete and byte for byte on the config it started with;
//! - after the sequence the last config taken is in force, and nothing goes to servers it
//!   dropped.
//!
//! The origins answer with their own name as the body, so a response tells which one served it.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gatehouse_testkit::{Config, Gatehouse, PATIENCE, RawConn, RawResponse, Reply, Req, Upstream};

/// How many times the config is reloaded.
const RELOADS: usize = 50;
/// Every 5th reload (the 5th, 10th, ...) is of a config with errors.
const BROKEN_EVERY: usize = 5;
/// The stream gets its first piece before the reloads and one more after each of the first
/// `STREAM_RELOADS` reloads, then its end: it spans that many reloads whatever the timing.
const STREAM_RELOADS: usize = 40;
/// Client threads reusing one connection, and client threads opening one per request.
const KEEP_ALIVE_CLIENTS: usize = 2;
const NEW_CONNECTION_CLIENTS: usize = 2;
/// Requests per client thread at most: the load is bounded by count as well as by time. A new
/// connection per request leaves a port in TIME_WAIT, hence the lower bound there.
const MAX_KEEP_ALIVE_REQUESTS: usize = 100_000;
const MAX_NEW_CONNECTION_REQUESTS: usize = 5_000;
/// The load stops at the end of the reloads, or after this long at the latest.
const LOAD_TIME_LIMIT: Duration = Duration::from_secs(20);
/// Client requests made between one reload and the next, at least (waited for, not timed).
const REQUESTS_BETWEEN_RELOADS: usize = 20;
/// A short pause between reloads, so that the load runs on each config for a while.
const PAUSE_BETWEEN_RELOADS: Duration = Duration::from_millis(40);
/// The origins' names (and bodies).
static ORIGINS: [&str; 3] = ["alpha", "beta", "gamma"];

fn start(config: &Config) -> Gatehouse {
    Gatehouse::start(Path::new(env!("CARGO_BIN_EXE_gatehouse")), &config.toml())
}

/// The origins, by name.
struct Origins(Vec<(&'static str, Upstream)>);

impl Origins {
    fn start() -> Self {
        Self(
            ORIGINS
                .iter()
                .map(|name| (*name, Upstream::serve(Reply::ok(*name))))
                .collect(),
        )
    }

    fn get(&self, name: &str) -> &Upstream {
        self.0
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, upstream)| upstream)
            .unwrap_or_else(|| panic!("no origin named {name}"))
    }

    fn addrs(&self, names: &[&str]) -> Vec<SocketAddr> {
        names.iter().map(|name| self.get(name).addr()).collect()
    }

    /// How many requests each origin has received so far.
    fn request_counts(&self) -> Vec<(&'static str, usize)> {
        self.0
            .iter()
            .map(|(name, upstream)| (*name, upstream.requests().len()))
            .collect()
    }
}

/// Where `/stream` goes in a config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StreamRoute {
    /// `/stream` to the pool `slow`, whose one server is the slow stream.
    Streamer,
    /// `/stream` to the pool `slow`, whose one server is now this origin instead.
    MovedTo(&'static str),
    /// No `/stream` route (and no pool `slow`): `/stream` goes where `/` goes.
    Removed,
}

/// What a valid config of the sequence says, in the terms the test checks.
#[derive(Debug, Clone)]
struct Layout {
    /// The servers of the pool `app`, where `/` (so every path without a longer route) goes.
    app: &'static [&'static str],
    /// The route `/b` to the pool `other` with these servers, or no `/b` route.
    b: Option<&'static [&'static str]>,
    stream: StreamRoute,
    /// `response_timeout` and `balance` of the pool `app`.
    response_timeout: &'static str,
    balance: &'static str,
}

impl Layout {
    /// The config before any reload: `/` to alpha and beta, `/b` to gamma, `/stream` to the
    /// slow stream.
    fn initial() -> Self {
        Self {
            app: &["alpha", "beta"],
            b: Some(&["gamma"]),
            stream: StreamRoute::Streamer,
            response_timeout: "30s",
            balance: "round_robin",
        }
    }

    /// The layout of the `n`th config of the sequence: the server lists rotate, `/b` comes and
    /// goes, `/stream` moves between the slow stream, alpha and nowhere, and the timeout and
    /// balancing change.
    fn nth(n: usize) -> Self {
        const APP: [&[&str]; 7] = [
            &["alpha"],
            &["alpha", "beta"],
            &["beta"],
            &["beta", "gamma"],
            &["alpha", "gamma"],
            &["alpha", "beta", "gamma"],
            &["gamma"],
        ];
        const OTHER: [&[&str]; 2] = [&["gamma"], &["alpha", "beta"]];
        Self {
            app: APP[n % APP.len()],
            b: (!n.is_multiple_of(3)).then_some(OTHER[n % OTHER.len()]),
            stream: match n % 4 {
                1 => StreamRoute::MovedTo("alpha"),
                2 => StreamRoute::Removed,
                _ => StreamRoute::Streamer,
            },
            response_timeout: if n.is_multiple_of(2) { "10s" } else { "20s" },
            balance: if n % 6 < 3 {
                "round_robin"
            } else {
                "least_requests"
            },
        }
    }

    fn config(&self, origins: &Origins, streamer: SocketAddr) -> Config {
        let mut config = Config::new()
            .server("access_log", false)
            .upstream("app", origins.addrs(self.app))
            .upstream_setting("app", "response_timeout", self.response_timeout)
            .upstream_setting("app", "balance", self.balance)
            .route(None, "/", "app");
        if let Some(other) = self.b {
            config = config
                .upstream("other", origins.addrs(other))
                .route(None, "/b", "other");
        }
        match self.stream {
            StreamRoute::Streamer => config
                .upstream("slow", [streamer])
                .route(None, "/stream", "slow"),
            StreamRoute::MovedTo(name) => config
                .upstream("slow", origins.addrs(&[name]))
                .route(None, "/stream", "slow"),
            StreamRoute::Removed => config,
        }
    }

    /// The origins a request to `path` may be answered by under this config; `None` for the
    /// slow stream (which answers one request only, the stream itself).
    fn expected(&self, path: &str) -> Option<&'static [&'static str]> {
        match path {
            "/b" => Some(self.b.unwrap_or(self.app)),
            "/stream" => match self.stream {
                StreamRoute::Streamer => None,
                StreamRoute::MovedTo(name) => ORIGINS
                    .iter()
                    .position(|o| *o == name)
                    .map(|i| &ORIGINS[i..=i]),
                StreamRoute::Removed => Some(self.app),
            },
            _ => Some(self.app),
        }
    }
}

/// How a config of the sequence is broken; each is refused.
#[derive(Debug, Clone, Copy)]
enum Broken {
    /// A key gatehouse does not know.
    UnknownKey,
    /// A route to an upstream that is not defined.
    MissingUpstream,
    /// A duration that does not parse.
    BadDuration,
    /// Not even TOML.
    NotToml,
}

impl Broken {
    const ALL: [Self; 4] = [
        Self::UnknownKey,
        Self::MissingUpstream,
        Self::BadDuration,
        Self::NotToml,
    ];

    /// Writes `layout`'s config, broken this way. The layout differs from the one in force, so
    /// that a broken config taken by mistake would show in where requests go.
    fn write(self, gh: &Gatehouse, layout: &Layout, origins: &Origins, streamer: SocketAddr) {
        let config = layout.config(origins, streamer);
        match self {
            Self::UnknownKey => {
                gh.rewrite_config(&config.upstream_setting("app", "retries", 3).toml());
            }
            Self::MissingUpstream => {
                gh.rewrite_config(&config.route(None, "/c", "nowhere").toml());
            }
            Self::BadDuration => {
                gh.rewrite_config(
                    &config
                        .upstream_setting("app", "connect_timeout", "soon")
                        .toml(),
                );
            }
            Self::NotToml => {
                gh.rewrite_config_raw(&format!("{}\n[upstream.app\n", config.toml()));
            }
        }
    }

    /// A word the error logged for it contains, where there is one to rely on.
    fn named_in_error(self) -> Option<&'static str> {
        match self {
            Self::UnknownKey => Some("retries"),
            Self::MissingUpstream => Some("nowhere"),
            Self::BadDuration => Some("connect_timeout"),
            Self::NotToml => None,
        }
    }
}

/// One reload of the sequence.
#[derive(Debug, Clone)]
enum Step {
    Valid(Layout),
    Broken(Broken, Layout),
}

fn sequence() -> Vec<Step> {
    (0..RELOADS)
        .map(|n| {
            if n % BROKEN_EVERY == BROKEN_EVERY - 1 {
                let broken = Broken::ALL[(n / BROKEN_EVERY) % Broken::ALL.len()];
                Step::Broken(broken, Layout::nth(n))
            } else {
                Step::Valid(Layout::nth(n))
            }
        })
        .collect()
}

/// The configs gatehouse takes, in order (the initial one first), and how many of them the
/// test has seen taken: a request sent once config `g` was taken, and answered before config
/// `h` was seen taken, was served under config `g`, ..., `h + 1` (the test starts a reload
/// only once it has seen the previous one's outcome).
struct Taken {
    layouts: Vec<Layout>,
    seen: AtomicUsize,
}

impl Taken {
    fn new(initial: &Layout) -> Self {
        let valid = sequence().into_iter().filter_map(|step| match step {
            Step::Valid(layout) => Some(layout),
            Step::Broken(..) => None,
        });
        Self {
            layouts: std::iter::once(initial.clone()).chain(valid).collect(),
            seen: AtomicUsize::new(0),
        }
    }

    /// The index of the config last seen taken.
    fn seen(&self) -> usize {
        self.seen.load(Ordering::SeqCst)
    }

    /// The test saw config `g` taken.
    fn saw(&self, g: usize) {
        self.seen.store(g, Ordering::SeqCst);
    }

    /// The origins that may answer `path` under configs `first..=last + 1`.
    fn may_answer(&self, path: &str, first: usize, last: usize) -> Vec<&'static str> {
        let until = (last + 1).min(self.layouts.len() - 1);
        let mut origins: Vec<&'static str> = self.layouts[first..=until]
            .iter()
            .filter_map(|layout| layout.expected(path))
            .flatten()
            .copied()
            .collect();
        origins.sort_unstable();
        origins.dedup();
        origins
    }
}

/// A one-shot origin for `/stream`: answers the first request it gets with a chunked `200`
/// whose chunks the test hands it one at a time, so the response lasts exactly as long as the
/// test wants. Its thread returns the request line, or why the stream could not be sent whole.
struct SlowStream {
    addr: SocketAddr,
    pieces: mpsc::Sender<Piece>,
    answering: mpsc::Receiver<()>,
    thread: JoinHandle<Result<String, String>>,
}

enum Piece {
    Data(Vec<u8>),
    End,
}

impl SlowStream {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the slow stream's listener");
        let addr = listener
            .local_addr()
            .expect("the slow stream's listener has an address");
        let (pieces, feed) = mpsc::channel();
        let (answered, answering) = mpsc::channel();
        let thread = std::thread::spawn(move || stream_one_response(&listener, &feed, &answered));
        Self {
            addr,
            pieces,
            answering,
            thread,
        }
    }

    /// Waits until the request arrived and the response head was written.
    fn wait_answering(&self) {
        self.answering.recv_timeout(PATIENCE).unwrap_or_else(|_| {
            panic!("the request to /stream did not reach the slow stream within {PATIENCE:?}")
        });
    }

    fn send(&self, piece: Piece) {
        // The thread only hangs up early after a write failed; `finish` reports why.
        let _ = self.pieces.send(piece);
    }

    /// The request line it answered; panics with why the stream was not sent whole.
    fn finish(self) -> String {
        drop(self.pieces);
        self.thread
            .join()
            .unwrap_or_else(|_| panic!("the slow stream's thread panicked"))
            .unwrap_or_else(|why| panic!("the slow stream was not sent whole: {why}"))
    }
}

fn stream_one_response(
    listener: &TcpListener,
    feed: &mpsc::Receiver<Piece>,
    answered: &mpsc::Sender<()>,
) -> Result<String, String> {
    let (mut stream, _) = listener.accept().map_err(|e| format!("accept: {e}"))?;
    let _ = stream.set_nodelay(true);
    stream
        .set_read_timeout(Some(PATIENCE))
        .map_err(|e| format!("set_read_timeout: {e}"))?;
    let head = read_request_head(&mut stream)?;
    let request_line = head.lines().next().unwrap_or_default().to_owned();
    stream
        .write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n",
        )
        .map_err(|e| format!("writing the response head: {e}"))?;
    let _ = answered.send(());
    for (n, piece) in feed.iter().enumerate() {
        match piece {
            Piece::Data(bytes) => {
                let mut chunk = format!("{:x}\r\n", bytes.len()).into_bytes();
                chunk.extend_from_slice(&bytes);
                chunk.extend_from_slice(b"\r\n");
                stream.write_all(&chunk).map_err(|e| {
                    format!("writing piece {n}: {e} (gatehouse dropped the upstream connection)")
                })?;
            }
            Piece::End => {
                stream
                    .write_all(b"0\r\n\r\n")
                    .map_err(|e| format!("writing the last chunk: {e}"))?;
                // Hold the connection until gatehouse lets go of it (or a while), so that the
                // response ends by its framing, never by a close.
                let mut rest = [0u8; 1024];
                while let Ok(1..) = stream.read(&mut rest) {}
                return Ok(request_line);
            }
        }
    }
    Err("the test stopped feeding the stream before its end".to_owned())
}

/// Reads up to the blank line ending a request head (a GET has no body).
fn read_request_head(stream: &mut TcpStream) -> Result<String, String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            Ok(_) => return Err("the request ended before its head did".to_owned()),
            Err(e) => return Err(format!("reading the request head: {e}")),
        }
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

/// The `n`th piece of the stream: about 1 KiB, numbered, so a lost or repeated piece shows.
fn stream_piece(n: usize) -> Vec<u8> {
    format!("piece {n:02} of the slow stream {}\n", "~".repeat(1000)).into_bytes()
}

/// Sends `GET /stream` on a new connection from a thread and reads the whole response.
fn request_the_stream(addr: SocketAddr) -> JoinHandle<RawResponse> {
    std::thread::spawn(move || {
        let mut conn = RawConn::connect(addr);
        conn.send(&Req::get("/stream").to_bytes())
            .unwrap_or_else(|e| panic!("sending GET /stream: {e}"));
        conn.try_read_response(false, Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("GET /stream: {e}"))
    })
}

/// How a client thread uses connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Connections {
    /// One connection for all its requests (a new one only when gatehouse says `close`).
    KeepAlive,
    /// A new connection for each request.
    NewPerRequest,
}

/// The bounded client load: threads sending `GET /` and `GET /b` in turn until told to stop,
/// recording every request that did not get a complete `200` from an origin of a config in
/// force while it was under way.
struct Load {
    stop: Arc<AtomicBool>,
    attempts: Arc<AtomicUsize>,
    failures: Arc<Mutex<Vec<String>>>,
    clients: Vec<(Connections, JoinHandle<ClientTally>)>,
}

/// What one client thread did.
#[derive(Debug, Default, Clone, Copy)]
struct ClientTally {
    requests: usize,
    /// Responses with `Connection: close` (allowed, but worth knowing).
    closed_by_gatehouse: usize,
}

impl Load {
    fn start(addr: SocketAddr, taken: &Arc<Taken>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let attempts = Arc::new(AtomicUsize::new(0));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let deadline = Instant::now() + LOAD_TIME_LIMIT;
        let kinds = std::iter::repeat_n(Connections::KeepAlive, KEEP_ALIVE_CLIENTS).chain(
            std::iter::repeat_n(Connections::NewPerRequest, NEW_CONNECTION_CLIENTS),
        );
        let clients = kinds
            .enumerate()
            .map(|(id, connections)| {
                let client = Client {
                    id,
                    addr,
                    connections,
                    stop: Arc::clone(&stop),
                    attempts: Arc::clone(&attempts),
                    taken: Arc::clone(taken),
                    failures: Arc::clone(&failures),
                    deadline,
                };
                (connections, std::thread::spawn(move || client.run()))
            })
            .collect();
        Self {
            stop,
            attempts,
            failures,
            clients,
        }
    }

    fn attempts(&self) -> usize {
        self.attempts.load(Ordering::SeqCst)
    }

    /// Waits until the clients made `n` more requests than `since`; panics if the load stalls.
    fn wait_for_requests_after(&self, since: usize, n: usize) {
        let deadline = Instant::now() + PATIENCE;
        while self.attempts() < since + n {
            assert!(
                Instant::now() < deadline,
                "the client load stalled: {} request(s) in {PATIENCE:?}, {n} expected; failures: {:#?}",
                self.attempts() - since,
                self.failures()
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn failures(&self) -> Vec<String> {
        self.failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Stops the clients and returns each one's tally and every failure.
    fn stop(self) -> (Vec<(Connections, ClientTally)>, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        let tallies = self
            .clients
            .into_iter()
            .map(|(connections, client)| {
                let tally = client
                    .join()
                    .unwrap_or_else(|_| panic!("a {connections:?} client thread panicked"));
                (connections, tally)
            })
            .collect();
        let failures = self
            .failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        (tallies, failures)
    }
}

/// One client thread of the load.
struct Client {
    id: usize,
    addr: SocketAddr,
    connections: Connections,
    stop: Arc<AtomicBool>,
    attempts: Arc<AtomicUsize>,
    taken: Arc<Taken>,
    failures: Arc<Mutex<Vec<String>>>,
    deadline: Instant,
}

impl Client {
    fn run(self) -> ClientTally {
        let max = match self.connections {
            Connections::KeepAlive => MAX_KEEP_ALIVE_REQUESTS,
            Connections::NewPerRequest => MAX_NEW_CONNECTION_REQUESTS,
        };
        let mut tally = ClientTally::default();
        let mut conn = None;
        while tally.requests < max
            && !self.stop.load(Ordering::SeqCst)
            && Instant::now() < self.deadline
        {
            let path = if tally.requests % 2 == 0 { "/" } else { "/b" };
            tally.requests += 1;
            self.attempts.fetch_add(1, Ordering::SeqCst);
            match self.one_request(path, &mut conn) {
                Ok(Reuse::Yes) => {}
                Ok(Reuse::No) => {
                    if self.connections == Connections::KeepAlive {
                        tally.closed_by_gatehouse += 1;
                    }
                    conn = None;
                }
                Err(why) => {
                    self.failures
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(format!(
                            "client {} ({:?}), request {} (GET {path}): {why}",
                            self.id, self.connections, tally.requests
                        ));
                    conn = None;
                }
            }
            if self.connections == Connections::NewPerRequest {
                conn = None;
            }
        }
        tally
    }

    /// Sends `GET path` (on `conn`, or a new connection) and checks the response is a complete
    /// `200` from an origin of a config in force meanwhile; says whether the connection may
    /// carry the next request.
    fn one_request(&self, path: &str, conn: &mut Option<RawConn>) -> Result<Reuse, String> {
        let first = self.taken.seen();
        let open = match conn {
            Some(open) => open,
            None => conn.insert(connect(self.addr)?),
        };
        open.send(&Req::get(path).to_bytes())
            .map_err(|e| format!("sending the request: {e}"))?;
        let response = open
            .try_read_response(false, PATIENCE)
            .map_err(|e| e.to_string())?;
        let last = self.taken.seen();
        let body = response.text();
        if response.status != 200 || !response.complete {
            return Err(format!(
                "{} {body:?} (complete: {}, {:?}; headers: {:?})",
                response.status, response.complete, response.incomplete_because, response.headers
            ));
        }
        let allowed = self.taken.may_answer(path, first, last);
        if !allowed.contains(&body.as_str()) {
            return Err(format!(
                "answered by {body:?}, while configs {first}..={} taken in turn send it to one of {allowed:?}",
                last + 1
            ));
        }
        let closing = response
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        Ok(if closing { Reuse::No } else { Reuse::Yes })
    }
}

enum Reuse {
    Yes,
    No,
}

/// A new connection to `addr`, or why not (the kit's connect panics; a failed connect is one
/// failed request here, not the end of the client).
fn connect(addr: SocketAddr) -> Result<RawConn, String> {
    std::panic::catch_unwind(move || RawConn::connect(addr)).map_err(|panic| {
        panic
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_else(|| format!("connect to {addr} failed"))
    })
}

/// Sends `GET path` on a new connection and asserts it was answered by one of `expected`.
fn assert_served_by(gh: &Gatehouse, path: &str, expected: &[&str], context: &str) {
    let response = Req::get(path).send(gh.addr());
    let body = response.text();
    assert!(
        response.status == 200 && response.complete && expected.contains(&body.as_str()),
        "{context}: GET {path} must be answered by one of {expected:?}; got {} {body:?}",
        response.status
    );
}

/// Asserts that what `layout` says applies now, with one request per path.
fn assert_in_force(gh: &Gatehouse, layout: &Layout, context: &str) {
    for path in ["/", "/b", "/stream"] {
        if let Some(expected) = layout.expected(path) {
            assert_served_by(gh, path, expected, context);
        }
    }
}

/// Whether the logs from line `from` on have an ERROR line naming `word`.
fn error_logged_since(gh: &Gatehouse, from: usize, word: &str) -> bool {
    gh.logs().iter().skip(from).any(|line| {
        line["level"] == "ERROR" && line["message"].as_str().is_some_and(|m| m.contains(word))
    })
}

/// Where the bodies differ first, for a readable message about a long body.
fn first_difference(got: &[u8], want: &[u8]) -> String {
    let at = got
        .iter()
        .zip(want)
        .position(|(g, w)| g != w)
        .unwrap_or(got.len().min(want.len()));
    let around = |bytes: &[u8]| {
        String::from_utf8_lossy(
            &bytes[at.saturating_sub(40).min(bytes.len())..(at + 40).min(bytes.len())],
        )
        .into_owned()
    };
    format!(
        "{} bytes received, {} expected; first difference at byte {at}: got {:?}, expected {:?}",
        got.len(),
        want.len(),
        around(got),
        around(want)
    )
}

#[test]
fn fifty_reloads_under_load_fail_no_request_and_a_stream_spanning_them_completes() {
    let started = Instant::now();
    let origins = Origins::start();
    let streamer = SlowStream::start();
    let initial = Layout::initial();
    let gh = start(&initial.config(&origins, streamer.addr));
    assert_in_force(&gh, &initial, "before any reload");

    // The stream starts on the initial config, where /stream goes to the slow stream.
    let stream_client = request_the_stream(gh.addr());
    streamer.wait_answering();
    let mut streamed = stream_piece(0);
    streamer.send(Piece::Data(stream_piece(0)));

    let taken_in_order = Arc::new(Taken::new(&initial));
    let load = Load::start(gh.addr(), &taken_in_order);
    load.wait_for_requests_after(0, REQUESTS_BETWEEN_RELOADS);

    let mut in_force = initial;
    let (mut taken, mut refused, mut streamer_gone_while_streaming) = (0, 0, 0);
    for (n, step) in sequence().into_iter().enumerate() {
        let context = format!("reload {n} ({step:?})");
        let logged_before = gh.logs().len();
        let requests_before = load.attempts();
        match step {
            Step::Valid(layout) => {
                gh.rewrite_config(&layout.config(&origins, streamer.addr).toml());
                gh.reload()
                    .unwrap_or_else(|line| panic!("{context} must be taken; refused: {line}"));
                taken += 1;
                taken_in_order.saw(taken);
                if n < STREAM_RELOADS && layout.stream != StreamRoute::Streamer {
                    streamer_gone_while_streaming += 1;
                }
                in_force = layout;
            }
            Step::Broken(broken, layout) => {
                broken.write(&gh, &layout, &origins, streamer.addr);
                let line = gh
                    .reload()
                    .expect_err(&format!("{context} must be refused"));
                assert!(
                    line["message"]
                        .as_str()
                        .is_some_and(|m| m.contains("the running config keeps serving")),
                    "{context}: {line}"
                );
                if let Some(word) = broken.named_in_error() {
                    assert!(
                        error_logged_since(&gh, logged_before, word),
                        "{context}: no error line names {word:?}; logs: {:#?}",
                        &gh.logs()[logged_before..]
                    );
                }
                refused += 1;
            }
        }
        assert_in_force(&gh, &in_force, &context);
        if n < STREAM_RELOADS {
            let piece = if n + 1 < STREAM_RELOADS {
                let piece = stream_piece(n + 1);
                streamed.extend_from_slice(&piece);
                Piece::Data(piece)
            } else {
                Piece::End
            };
            streamer.send(piece);
        }
        load.wait_for_requests_after(requests_before, REQUESTS_BETWEEN_RELOADS);
        std::thread::sleep(PAUSE_BETWEEN_RELOADS);
    }
    let reloads_done = started.elapsed();

    let (tallies, failures) = load.stop();
    let total: usize = tallies.iter().map(|(_, t)| t.requests).sum();
    let by_kind = |kind: Connections| -> usize {
        tallies
            .iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, t)| t.requests)
            .sum()
    };
    let closed: usize = tallies.iter().map(|(_, t)| t.closed_by_gatehouse).sum();
    println!(
        "reload under load: {total} client requests ({} on keep-alive connections, {} on a new connection each; {closed} keep-alive connection(s) closed by gatehouse), {taken} reloads taken and {refused} refused in {reloads_done:?}",
        by_kind(Connections::KeepAlive),
        by_kind(Connections::NewPerRequest),
    );
    assert!(
        failures.is_empty(),
        "{} of {total} client requests failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!((taken, refused), (40, 10));

    // The stream went on while 40 reloads happened, some removing its server or its route.
    assert!(
        streamer_gone_while_streaming > 0,
        "the sequence must remove the slow stream's server while it streams"
    );
    let response = stream_client
        .join()
        .unwrap_or_else(|_| panic!("the /stream client thread panicked"));
    assert_eq!(
        (response.status, response.complete),
        (200, true),
        "the stream must arrive complete: {:?}",
        response.incomplete_because
    );
    assert!(
        response.body == streamed,
        "the stream must arrive byte for byte: {}",
        first_difference(&response.body, &streamed)
    );
    let request_line = streamer.finish();
    assert_eq!(request_line, "GET /stream HTTP/1.1");

    // The last config taken is in force, and the origins it dropped get nothing more.
    let before = origins.request_counts();
    let mut allowed: Vec<&str> = Vec::new();
    for path in ["/", "/b"] {
        let expected = in_force
            .expected(path)
            .unwrap_or_else(|| panic!("{path} goes to an origin"));
        for _ in 0..10 {
            assert_served_by(&gh, path, expected, "after the sequence");
        }
        allowed.extend(expected);
    }
    let after = origins.request_counts();
    for ((name, was), (_, now)) in before.iter().zip(&after) {
        assert!(
            allowed.contains(name) || now == was,
            "{name} is in no pool of the last config taken ({in_force:?}), yet got {} request(s)",
            now - was
        );
    }
    let new_requests: usize =
        after.iter().map(|(_, n)| n).sum::<usize>() - before.iter().map(|(_, n)| n).sum::<usize>();
    assert_eq!(new_requests, 20, "one origin request per client request");

    // Nothing failed inside gatehouse either, not even an attempt that a retry then hid.
    let failure_lines: Vec<_> = gh
        .logs()
        .into_iter()
        .filter(|line| line["target"] == "gatehouse::failure")
        .collect();
    assert!(
        failure_lines.is_empty(),
        "gatehouse logged failures: {failure_lines:#?}"
    );
    println!("reload under load: whole test {:?}", started.elapsed());
}
