//! A raw HTTP/1.1 client: exact bytes out, the response parsed strictly, and a verdict on
//! whether the message arrived complete (Content-Length reached, final chunk seen), so a
//! truncated body can never pass for a complete one.

use std::fmt;
use std::io::{self, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::PATIENCE;
use crate::http1::{self, BodyState, Framing, Headers};
use crate::proxy_status::ProxyStatus;

/// One response as the client saw it.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    pub reason: String,
    pub headers: Headers,
    /// The body, de-chunked; for an incomplete message, what arrived.
    pub body: Vec<u8>,
    pub framing: Framing,
    /// Whether the whole message arrived as its framing promised.
    pub complete: bool,
    /// Why an incomplete message is incomplete: `"closed"`, `"timed out"`, or the framing error.
    pub incomplete_because: Option<String>,
    /// Statuses of interim (1xx) responses received before this one.
    pub interim: Vec<u16>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON; panics if it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text()))
    }

    /// Every `Proxy-Status` line, parsed as one list (RFC 9110 §5.3 combination).
    pub fn proxy_status(&self) -> ProxyStatus {
        ProxyStatus::from_lines(&self.headers.get_all("proxy-status")).unwrap_or_else(|e| {
            panic!(
                "invalid Proxy-Status {:?}: {e}",
                self.headers.get_all("proxy-status")
            )
        })
    }

    /// Asserts the exact `Content-Type` and that the body contains each of `needles`.
    pub fn assert_body(&self, content_type: &str, needles: &[&str]) {
        assert_eq!(self.header("content-type"), Some(content_type), "{self:#?}");
        let text = self.text();
        for needle in needles {
            assert!(text.contains(needle), "body lacks {needle:?}: {text}");
        }
    }

    /// The `Cache-Status` response header (RFC 9211); panics without one.
    pub fn cache_status(&self) -> &str {
        self.header("cache-status")
            .unwrap_or_else(|| panic!("no Cache-Status in {self:#?}"))
    }

    /// The integer value of `key=N` in the `Cache-Status` member (`ttl`, `fwd-status`);
    /// panics without one.
    pub fn cache_status_param(&self, key: &str) -> i64 {
        let status = self.cache_status();
        status
            .split(';')
            .filter_map(|param| param.trim().split_once('='))
            .find(|(k, _)| *k == key)
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or_else(|| panic!("no integer {key} in Cache-Status {status:?}"))
    }

    /// The `Age` response header in seconds; panics without one.
    pub fn age(&self) -> u64 {
        self.header("age")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no Age in {self:#?}"))
    }

    /// The `X-Request-Id` response header; panics without one.
    pub fn request_id(&self) -> &str {
        self.header("x-request-id")
            .unwrap_or_else(|| panic!("no X-Request-Id in {:?}", self.headers))
    }
}

/// No response head arrived (or it did not parse).
#[derive(Debug, Clone)]
pub struct NoResponse {
    /// Every byte received.
    pub raw: Vec<u8>,
    pub why: String,
}

impl fmt::Display for NoResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "no response: {} (received {:?})",
            self.why,
            String::from_utf8_lossy(&self.raw)
        )
    }
}

enum Fill {
    Data,
    Eof,
    Timeout,
}

/// A client connection to send exact bytes on and read responses from.
#[derive(Debug)]
pub struct RawConn {
    stream: TcpStream,
    buf: Vec<u8>,
    eof: bool,
}

impl RawConn {
    pub fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect_timeout(&addr, PATIENCE)
            .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        let _ = stream.set_nodelay(true);
        Self {
            stream,
            buf: Vec::new(),
            eof: false,
        }
    }

    /// Writes `bytes` (an error means the peer closed or reset the connection).
    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Writes `len` bytes of `x` from a background thread, 64 KiB at a time, until done or
    /// the connection fails; the thread returns how many bytes were written.
    pub fn send_in_background(&self, len: u64) -> JoinHandle<u64> {
        let mut writer = self
            .stream
            .try_clone()
            .unwrap_or_else(|e| panic!("clone socket: {e}"));
        std::thread::spawn(move || {
            let block = vec![b'x'; 64 * 1024];
            let mut written = 0u64;
            while written < len {
                let n =
                    usize::try_from((len - written).min(block.len() as u64)).unwrap_or(block.len());
                if writer.write_all(&block[..n]).is_err() {
                    break;
                }
                written += n as u64;
            }
            written
        })
    }

    fn fill(&mut self, deadline: Instant) -> Fill {
        if self.eof {
            return Fill::Eof;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Fill::Timeout;
        }
        let _ = self.stream.set_read_timeout(Some(left));
        let mut chunk = [0u8; 64 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(0) => {
                self.eof = true;
                Fill::Eof
            }
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Fill::Data
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Fill::Timeout
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Fill::Data,
            // A reset ends the stream like a close, for what the client can observe.
            Err(_) => {
                self.eof = true;
                Fill::Eof
            }
        }
    }

    /// Reads one response; panics when no response head arrives within [`PATIENCE`].
    pub fn read_response(&mut self, head_request: bool) -> RawResponse {
        self.try_read_response(head_request, PATIENCE)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Reads one response (skipping 1xx interim ones) within `timeout`. A response whose body
    /// is cut short comes back with `complete == false`.
    pub fn try_read_response(
        &mut self,
        head_request: bool,
        timeout: Duration,
    ) -> Result<RawResponse, NoResponse> {
        let deadline = Instant::now() + timeout;
        let mut interim = Vec::new();
        loop {
            let head = match http1::parse_response_head(&self.buf) {
                Ok(Some(head)) => head,
                Ok(None) => match self.fill(deadline) {
                    Fill::Data => continue,
                    Fill::Eof => {
                        return Err(
                            self.no_response("connection closed before a complete response head")
                        );
                    }
                    Fill::Timeout => {
                        return Err(self.no_response("timed out waiting for a response head"));
                    }
                },
                Err(why) => return Err(self.no_response(&why)),
            };
            if (100..200).contains(&head.status) && head.status != 101 {
                interim.push(head.status);
                self.buf.drain(..head.len);
                continue;
            }
            let framing = Framing::of_response(head.status, &head.headers, head_request);
            let mut response = RawResponse {
                status: head.status,
                reason: head.reason,
                headers: head.headers,
                body: Vec::new(),
                framing,
                complete: false,
                incomplete_because: None,
                interim,
            };
            loop {
                let because = match http1::body_state(framing, &self.buf[head.len..], self.eof) {
                    BodyState::Complete { body, consumed } => {
                        self.buf.drain(..head.len + consumed);
                        response.body = body;
                        response.complete = true;
                        return Ok(response);
                    }
                    BodyState::Invalid { body, why } => {
                        response.body = body;
                        why
                    }
                    BodyState::Partial { body } => match self.fill(deadline) {
                        Fill::Data => continue,
                        Fill::Eof => {
                            response.body = body;
                            "closed".to_owned()
                        }
                        Fill::Timeout => {
                            response.body = body;
                            "timed out".to_owned()
                        }
                    },
                };
                self.buf.clear();
                response.incomplete_because = Some(because);
                return Ok(response);
            }
        }
    }

    /// Reads one interim (1xx) response head within `timeout` and returns its status, without
    /// waiting for a final response: e.g. the `100 Continue` a client waits for before it sends
    /// its body. A final response head arriving instead is an error (and is left unread).
    pub fn read_interim(&mut self, timeout: Duration) -> Result<u16, NoResponse> {
        let deadline = Instant::now() + timeout;
        loop {
            match http1::parse_response_head(&self.buf) {
                Ok(Some(head)) if (100..200).contains(&head.status) && head.status != 101 => {
                    self.buf.drain(..head.len);
                    return Ok(head.status);
                }
                Ok(Some(head)) => {
                    return Err(NoResponse {
                        raw: self.buf.clone(),
                        why: format!(
                            "a final {} came instead of an interim response",
                            head.status
                        ),
                    });
                }
                Ok(None) => match self.fill(deadline) {
                    Fill::Data => {}
                    Fill::Eof => {
                        return Err(
                            self.no_response("connection closed before an interim response")
                        );
                    }
                    Fill::Timeout => {
                        return Err(self.no_response("timed out waiting for an interim response"));
                    }
                },
                Err(why) => return Err(self.no_response(&why)),
            }
        }
    }

    fn no_response(&mut self, why: &str) -> NoResponse {
        NoResponse {
            raw: std::mem::take(&mut self.buf),
            why: why.to_owned(),
        }
    }

    /// Whether the peer closes the connection within `timeout` (bytes that arrive meanwhile
    /// are kept for the next read).
    pub fn closes_within(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            match self.fill(deadline) {
                Fill::Data => {}
                Fill::Eof => return true,
                Fill::Timeout => return false,
            }
        }
    }
}

/// Sends exact bytes on a new connection and reads one response.
pub fn send_raw(addr: SocketAddr, bytes: &[u8]) -> Result<RawResponse, NoResponse> {
    let mut conn = RawConn::connect(addr);
    // A server may answer and close before taking all of a malformed request.
    let _ = conn.send(bytes);
    conn.try_read_response(false, PATIENCE)
}

/// A request to write byte for byte. Starts with `Host: app.test`.
#[derive(Debug, Clone)]
pub struct Req {
    method: String,
    target: String,
    version: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Req {
    pub fn new(method: &str, target: &str) -> Self {
        Self {
            method: method.to_owned(),
            target: target.to_owned(),
            version: "HTTP/1.1".to_owned(),
            headers: vec![("Host".to_owned(), "app.test".to_owned())],
            body: Vec::new(),
        }
    }

    pub fn get(target: &str) -> Self {
        Self::new("GET", target)
    }

    /// Appends a header line (several lines of one name stay separate).
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Replaces the `Host` header.
    #[must_use]
    pub fn host(self, host: &str) -> Self {
        self.without("host").header("Host", host)
    }

    /// Removes every header line of `name`.
    #[must_use]
    pub fn without(mut self, name: &str) -> Self {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self
    }

    /// Sets the body and, unless a framing header is already set, its `Content-Length`.
    #[must_use]
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        let framed = self.headers.iter().any(|(n, _)| {
            n.eq_ignore_ascii_case("content-length") || n.eq_ignore_ascii_case("transfer-encoding")
        });
        if !framed {
            let len = self.body.len().to_string();
            self = self.header("Content-Length", &len);
        }
        self
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!("{} {} {}\r\n", self.method, self.target, self.version).into_bytes();
        for (name, value) in &self.headers {
            out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        out
    }

    /// Sends the request on an open connection and reads its response.
    pub fn send_on(&self, conn: &mut RawConn) -> RawResponse {
        conn.send(&self.to_bytes())
            .unwrap_or_else(|e| panic!("send request: {e}"));
        conn.read_response(self.method == "HEAD")
    }

    /// Sends the request on a new connection and reads its response.
    pub fn send(&self, addr: SocketAddr) -> RawResponse {
        self.send_on(&mut RawConn::connect(addr))
    }
}

/// A TCP connection to `to` from the local address `from` (any address of 127.0.0.0/8 is
/// local), so a test can be a client gatehouse does not trust.
pub fn connect_from(from: std::net::IpAddr, to: SocketAddr) -> TcpStream {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(to), Type::STREAM, None)
        .unwrap_or_else(|e| panic!("socket: {e}"));
    socket
        .bind(&SocketAddr::new(from, 0).into())
        .unwrap_or_else(|e| panic!("bind {from}: {e}"));
    socket
        .connect_timeout(&to.into(), PATIENCE)
        .unwrap_or_else(|e| panic!("connect {from} -> {to}: {e}"));
    socket.into()
}
