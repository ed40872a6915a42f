//! TLS origin servers on `127.0.0.1:0` for the upstream-TLS tests: blocking rustls servers (one
//! std thread per connection) that present a given [`TestCert`], optionally require a client
//! certificate signed by a given CA, offer ALPN protocols, and record every handshake (the SNI
//! received, the protocol chosen, whether a client certificate came, or why it failed).
//!
//! After the handshake an origin either answers HTTP/1.1 requests itself with a fixed [`Reply`]
//! (recording them, as [`crate::Upstream`] does), or relays the decrypted bytes to another
//! address ([`TlsOriginBuilder::relay_to`]): e.g. an HTTP/2 server in the test, so that one
//! origin can speak h2 over TLS without an HTTP/2 implementation here.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustls::ServerConnection;
use rustls::pki_types::CertificateDer;
use rustls::server::WebPkiClientVerifier;

use crate::http1::{self, BodyState, Framing};
use crate::record::Recorder;
use crate::tls::TestCert;
use crate::{RecordedRequest, Reply};

/// How often blocked threads look at the stop flag.
const TICK: Duration = Duration::from_millis(50);
/// Longest a handshake may take before the origin gives up on the connection.
const HANDSHAKE_LIMIT: Duration = Duration::from_secs(10);

/// One TLS handshake as the origin saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    /// Which accepted connection (0, 1, ...).
    pub conn: usize,
    /// The server name the client sent (SNI); `None` for none (a client verifying an IP address
    /// sends none).
    pub sni: Option<String>,
    /// The ALPN protocol agreed, e.g. `h2`.
    pub alpn: Option<String>,
    /// The client presented a certificate (that verified).
    pub client_cert: bool,
    /// Why the handshake failed, in rustls' words; `None` when it completed.
    pub error: Option<String>,
}

/// How a [`TlsOrigin`] behaves; see [`TlsOrigin::builder`].
#[derive(Debug, Clone)]
pub struct TlsOriginBuilder {
    cert: TestCert,
    client_ca: Option<CertificateDer<'static>>,
    alpn: Vec<Vec<u8>>,
    reply: Reply,
    relay: Option<SocketAddr>,
}

impl TlsOriginBuilder {
    /// Requires a client certificate signed by `ca` (the CA's DER certificate). A client
    /// without one gets an alert (`certificate_required` in TLS 1.3).
    #[must_use]
    pub fn require_client_cert(mut self, ca: CertificateDer<'static>) -> Self {
        self.client_ca = Some(ca);
        self
    }

    /// Offers these ALPN protocols, in preference order (default: none, so no ALPN).
    #[must_use]
    pub fn alpn(mut self, protocols: &[&[u8]]) -> Self {
        self.alpn = protocols.iter().map(|p| p.to_vec()).collect();
        self
    }

    /// Answers every HTTP/1.1 request with `reply` (default `200` with `hello tls`).
    #[must_use]
    pub fn reply(mut self, reply: Reply) -> Self {
        self.reply = reply;
        self
    }

    /// After the handshake, relays the decrypted bytes both ways to a new connection to `addr`
    /// instead of answering requests.
    #[must_use]
    pub fn relay_to(mut self, addr: SocketAddr) -> Self {
        self.relay = Some(addr);
        self
    }

    pub fn start(self) -> TlsOrigin {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .unwrap_or_else(|e| panic!("TLS versions: {e}"));
        let builder = match &self.client_ca {
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                roots
                    .add(ca.clone())
                    .unwrap_or_else(|e| panic!("client CA: {e}"));
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .unwrap_or_else(|e| panic!("client verifier: {e}"));
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder
            .with_single_cert(self.cert.chain(), self.cert.key())
            .unwrap_or_else(|e| panic!("server certificate: {e}"));
        config.alpn_protocols = self.alpn.clone();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("local_addr: {e}"));
        let shared = Arc::new(Shared {
            config: Arc::new(config),
            reply: self.reply,
            relay: self.relay,
            stop: AtomicBool::new(false),
            connections: AtomicUsize::new(0),
            handshakes: Recorder::default(),
            requests: Recorder::default(),
            open: Mutex::new(HashMap::new()),
        });
        let accept_shared = Arc::clone(&shared);
        let acceptor = std::thread::spawn(move || accept(&listener, &accept_shared));
        TlsOrigin {
            addr,
            shared,
            acceptor: Mutex::new(Some(acceptor)),
        }
    }
}

/// A TLS origin server; stops (and releases its port) when dropped.
#[derive(Debug)]
pub struct TlsOrigin {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Debug)]
struct Shared {
    config: Arc<rustls::ServerConfig>,
    reply: Reply,
    relay: Option<SocketAddr>,
    stop: AtomicBool,
    connections: AtomicUsize,
    handshakes: Recorder<Handshake>,
    requests: Recorder<RecordedRequest>,
    /// Every open socket (client side and relay side) by connection, so `kill` can close them.
    open: Mutex<HashMap<usize, Vec<TcpStream>>>,
}

impl Shared {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn track(&self, id: usize, stream: &TcpStream) {
        if let Ok(handle) = stream.try_clone() {
            lock(&self.open).entry(id).or_default().push(handle);
        }
    }
}

impl TlsOrigin {
    /// Presents `cert` and answers every request with `200 hello tls`.
    pub fn start(cert: &TestCert) -> Self {
        Self::builder(cert).start()
    }

    /// Presents `cert`, offers ALPN `http/1.1` (as an HTTP/1.1 web server does) and answers
    /// every request with `200 hello tls`.
    pub fn http1(cert: &TestCert) -> Self {
        Self::builder(cert).alpn(&[b"http/1.1"]).start()
    }

    pub fn builder(cert: &TestCert) -> TlsOriginBuilder {
        TlsOriginBuilder {
            cert: cert.clone(),
            client_ca: None,
            alpn: Vec::new(),
            reply: Reply::ok("hello tls"),
            relay: None,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://127.0.0.1:PORT`, as an upstream `servers` entry.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::Relaxed)
    }

    /// Handshakes so far, completed or failed.
    pub fn handshakes(&self) -> Vec<Handshake> {
        self.shared.handshakes.snapshot()
    }

    /// Waits until `n` handshakes (completed or failed) were recorded; panics after `timeout`.
    pub fn wait_for_handshakes(&self, n: usize, timeout: Duration) -> Vec<Handshake> {
        let found = self
            .shared
            .handshakes
            .wait_until(timeout, |all| (all.len() >= n).then(|| all.to_vec()));
        found.unwrap_or_else(|| {
            panic!(
                "expected {n} handshake(s) within {timeout:?}, got {:#?}",
                self.handshakes()
            )
        })
    }

    /// Requests answered so far (not those relayed).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests.snapshot()
    }

    /// Waits until `n` requests were recorded; panics after `timeout`.
    pub fn wait_for_requests(&self, n: usize, timeout: Duration) -> Vec<RecordedRequest> {
        let found = self
            .shared
            .requests
            .wait_until(timeout, |all| (all.len() >= n).then(|| all.to_vec()));
        found.unwrap_or_else(|| {
            panic!(
                "expected {n} request(s) within {timeout:?}, got {:#?}",
                self.requests()
            )
        })
    }

    /// Stops like a crashed process: the listener and every open connection are closed.
    pub fn kill(&self) {
        let Some(acceptor) = lock(&self.acceptor).take() else {
            return;
        };
        self.shared.stop.store(true, Ordering::Relaxed);
        // Wake the acceptor so it sees the flag and drops the listener.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        let _ = acceptor.join();
        for streams in lock(&self.shared.open).values() {
            for stream in streams {
                let _ = stream.shutdown(Shutdown::Both);
            }
        }
    }
}

impl Drop for TlsOrigin {
    fn drop(&mut self) {
        self.kill();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn accept(listener: &TcpListener, shared: &Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stopped() {
            return;
        }
        let Ok(stream) = stream else { continue };
        let id = shared.connections.fetch_add(1, Ordering::Relaxed);
        shared.track(id, &stream);
        let shared = Arc::clone(shared);
        std::thread::spawn(move || {
            serve(stream, id, &shared);
            lock(&shared.open).remove(&id);
        });
    }
}

/// Whether an I/O error only means "nothing yet" (a read timeout).
fn is_tick(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

fn serve(mut tcp: TcpStream, id: usize, shared: &Shared) {
    let _ = tcp.set_nodelay(true);
    let _ = tcp.set_read_timeout(Some(TICK));
    let Ok(mut tls) = ServerConnection::new(Arc::clone(&shared.config)) else {
        return;
    };
    let deadline = Instant::now() + HANDSHAKE_LIMIT;
    while tls.is_handshaking() {
        if shared.stopped() || Instant::now() > deadline {
            return;
        }
        match tls.complete_io(&mut tcp) {
            Ok((0, 0)) if tls.is_handshaking() => {
                // The client closed before the handshake completed.
                record_handshake(shared, id, &tls, Some("closed by the client".to_owned()));
                return;
            }
            Ok(_) => {}
            Err(err) if is_tick(&err) => {}
            Err(err) => {
                // complete_io has already sent the alert describing the error, if there is one.
                record_handshake(shared, id, &tls, Some(err.to_string()));
                return;
            }
        }
    }
    record_handshake(shared, id, &tls, None);
    match shared.relay {
        Some(backend) => relay(tls, tcp, backend, id, shared),
        None => answer(tls, tcp, id, shared),
    }
}

fn record_handshake(shared: &Shared, id: usize, tls: &ServerConnection, error: Option<String>) {
    shared.handshakes.push(Handshake {
        conn: id,
        sni: tls.server_name().map(str::to_owned),
        alpn: tls
            .alpn_protocol()
            .map(|p| String::from_utf8_lossy(p).into_owned()),
        client_cert: tls.peer_certificates().is_some_and(|c| !c.is_empty()),
        error,
    });
}

/// Answers HTTP/1.1 requests with the fixed reply until the client closes.
fn answer(tls: ServerConnection, tcp: TcpStream, id: usize, shared: &Shared) {
    let mut stream = rustls::StreamOwned::new(tls, tcp);
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let mut eof = false;
    loop {
        // Read until a complete request (head and body) is buffered.
        let request = loop {
            if let Ok(Some(head)) = http1::parse_request_head(&buf) {
                let framing = Framing::of_request(&head.headers);
                if let BodyState::Complete { body, consumed } =
                    http1::body_state(framing, &buf[head.len..], eof)
                {
                    buf.drain(..head.len + consumed);
                    break RecordedRequest {
                        conn: id,
                        method: head.method,
                        target: head.target,
                        version: head.version,
                        headers: head.headers,
                        body,
                        framing,
                        complete: true,
                    };
                }
            }
            if eof || shared.stopped() {
                return;
            }
            match stream.read(&mut chunk) {
                Ok(0) => eof = true,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(err) if is_tick(&err) => {}
                Err(_) => return,
            }
        };
        let head_request = request.method == "HEAD";
        shared.requests.push(request);
        if stream
            .write_all(&reply_bytes(&shared.reply, head_request))
            .and_then(|()| stream.flush())
            .is_err()
        {
            return;
        }
    }
}

fn reply_bytes(reply: &Reply, head_request: bool) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {} Whatever\r\n", reply.status).into_bytes();
    for (name, value) in &reply.headers {
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    if !reply
        .headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("content-length"))
    {
        out.extend_from_slice(format!("Content-Length: {}\r\n", reply.body.len()).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    if !head_request {
        out.extend_from_slice(&reply.body);
    }
    out
}

/// Relays decrypted bytes between the TLS client and a new connection to `backend`, one thread
/// each way; the TLS session is shared under a lock.
fn relay(tls: ServerConnection, tcp: TcpStream, backend: SocketAddr, id: usize, shared: &Shared) {
    let Ok(upstream) = TcpStream::connect(backend) else {
        return;
    };
    shared.track(id, &upstream);
    let _ = upstream.set_nodelay(true);
    let _ = upstream.set_read_timeout(Some(TICK));
    let (Ok(mut tcp_out), Ok(mut upstream_in)) = (tcp.try_clone(), upstream.try_clone()) else {
        return;
    };
    let session = Arc::new(Mutex::new(tls));
    let done = Arc::new(AtomicBool::new(false));

    // backend → client, on its own thread.
    let back = {
        let (session, done) = (Arc::clone(&session), Arc::clone(&done));
        std::thread::spawn(move || {
            let mut chunk = [0u8; 16 * 1024];
            while !done.load(Ordering::Relaxed) {
                let n = match upstream_in.read(&mut chunk) {
                    Ok(n) => n,
                    Err(err) if is_tick(&err) => continue,
                    Err(_) => 0,
                };
                let mut tls = lock(&session);
                if n == 0 {
                    tls.send_close_notify();
                }
                if n > 0 && tls.writer().write_all(&chunk[..n]).is_err() {
                    break;
                }
                while tls.wants_write() {
                    if tls.write_tls(&mut tcp_out).is_err() {
                        break;
                    }
                }
                if n == 0 {
                    let _ = tcp_out.shutdown(Shutdown::Write);
                    break;
                }
            }
            done.store(true, Ordering::Relaxed);
        })
    };

    // client → backend, on this thread.
    let mut tcp_in = tcp;
    let mut upstream_out = upstream;
    let mut raw = [0u8; 16 * 1024];
    let mut plain = [0u8; 16 * 1024];
    while !done.load(Ordering::Relaxed) && !shared.stopped() {
        let n = match tcp_in.read(&mut raw) {
            Ok(n) => n,
            Err(err) if is_tick(&err) => continue,
            Err(_) => 0,
        };
        if n == 0 {
            let _ = upstream_out.shutdown(Shutdown::Write);
            break;
        }
        let mut decrypted = Vec::new();
        {
            let mut tls = lock(&session);
            let mut input = &raw[..n];
            while !input.is_empty() {
                if tls.read_tls(&mut input).is_err() || tls.process_new_packets().is_err() {
                    done.store(true, Ordering::Relaxed);
                    break;
                }
                loop {
                    match tls.reader().read(&mut plain) {
                        Ok(0) | Err(_) => break,
                        Ok(got) => decrypted.extend_from_slice(&plain[..got]),
                    }
                }
            }
            // Key updates and the like.
            while tls.wants_write() {
                if tls.write_tls(&mut tcp_in).is_err() {
                    break;
                }
            }
        }
        if !decrypted.is_empty() && upstream_out.write_all(&decrypted).is_err() {
            break;
        }
    }
    done.store(true, Ordering::Relaxed);
    let _ = upstream_out.shutdown(Shutdown::Both);
    let _ = tcp_in.shutdown(Shutdown::Both);
    let _ = back.join();
}
