//! HTTP/2 to upstream servers: one connection shared by a server's requests
//! ([`Multiplexed`]), each request a stream on it ([`Stream`]), with what hyper's HTTP/2 client
//! needs of a request (an absolute URI) and what retry safety needs to know of a failed stream
//! (whether the server refused it unprocessed).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Uri, Version, header};
use hyper::client::conn::http2;
use tokio::time::Instant;

use super::conn::{Conn, Protocol, SendFailed, SendResult, Sender};
use super::connect::H2Driver;
use super::idle::POOL_IDLE_TIMEOUT as IDLE_TIMEOUT;
use super::incoming::UpstreamIncoming;
use super::io::ConnStats;
use crate::client_body::RequestBody;

/// An HTTP/2 connection shared by the requests of one server.
#[derive(Debug)]
pub struct Multiplexed {
    sender: http2::SendRequest<RequestBody>,
    peer: SocketAddr,
    protocol: Protocol,
    /// `https` or `http`: HTTP/2 requests carry it (`:scheme`).
    scheme: Scheme,
    /// The `:authority` of a request without `Host`.
    authority: Authority,
    /// Streams open now (checked-out [`Conn`]s).
    streams: AtomicUsize,
    /// The connection object, which knows how many streams the server allows at once.
    driver: Arc<H2Driver>,
    /// When its last stream ended: an unused connection ages out like an idle HTTP/1.1 one.
    idle_since: Mutex<Instant>,
    tls_handshake: Option<Duration>,
}

impl Multiplexed {
    pub fn new(
        sender: http2::SendRequest<RequestBody>,
        peer: SocketAddr,
        tls: bool,
        authority: Authority,
        driver: Arc<H2Driver>,
        tls_handshake: Option<Duration>,
    ) -> Arc<Self> {
        Arc::new(Self {
            sender,
            peer,
            protocol: if tls { Protocol::H2 } else { Protocol::H2c },
            scheme: if tls { Scheme::HTTPS } else { Scheme::HTTP },
            authority,
            streams: AtomicUsize::new(0),
            driver,
            idle_since: Mutex::new(Instant::now()),
            tls_handshake,
        })
    }

    /// A stream for one request (the first one on a new connection is not `reused`).
    pub fn stream(self: &Arc<Self>, reused: bool) -> Conn {
        self.streams.fetch_add(1, Ordering::AcqRel);
        let stats = Arc::new(ConnStats::default());
        Conn {
            sender: Sender::Http2(Stream {
                sender: self.sender.clone(),
                conn: Arc::clone(self),
                stats: Arc::clone(&stats),
            }),
            stats,
            peer: self.peer,
            reused,
            protocol: self.protocol,
            tls_handshake: if reused { None } else { self.tls_handshake },
            keep_alive: None,
        }
    }

    pub(super) fn has_room(&self) -> bool {
        self.streams.load(Ordering::Acquire) < self.driver.max_send_streams()
    }

    /// Closed by either side, or unused for longer than idle connections are kept.
    pub(super) fn is_spent(&self, now: Instant) -> bool {
        if self.sender.is_closed() {
            return true;
        }
        let idle_since = *self.idle_since.lock().unwrap_or_else(|e| e.into_inner());
        self.streams.load(Ordering::Acquire) == 0 && now.duration_since(idle_since) > IDLE_TIMEOUT
    }
}

/// One request's stream on a [`Multiplexed`] connection. Dropping it ends the request's use of
/// the connection (hyper resets a stream whose response is dropped unread).
#[derive(Debug)]
pub struct Stream {
    pub(super) sender: http2::SendRequest<RequestBody>,
    conn: Arc<Multiplexed>,
    stats: Arc<ConnStats>,
}

impl Stream {
    /// The connection this stream is on.
    pub fn connection(&self) -> &Arc<Multiplexed> {
        &self.conn
    }

    /// Sends the request on its own stream.
    ///
    /// Retry safety: the connection's byte counters are shared by every stream (and carry
    /// SETTINGS, PING and WINDOW_UPDATE frames), so they cannot tell whether this request went
    /// out. Each stream has its own counters instead: "written" as soon as hyper takes the
    /// request (from then on its HEADERS may be on the wire, and a request timed out by the
    /// caller counts as sent), "read" never (an HTTP/2 response head arrives whole: a stream
    /// fails before it or not at all). So a request hyper gives back (the connection was not
    /// ready) is unsent and may go anywhere, and so is one the server refused with
    /// REFUSED_STREAM, which RFC 9113 §8.7 guarantees was not processed. Any other failure
    /// counts as sent: retried only for idempotent (or opted-in) methods, as failures.md allows
    /// when no response byte arrived. That includes a GOAWAY below this stream's id, which
    /// would prove the same, because h2 reports it with the same error as a connection that
    /// ended after processing the stream.
    // The error is hyper's own type, passed on as hyper returns it (hyper allows the lint too).
    #[allow(clippy::result_large_err)]
    pub fn try_send_request(
        &mut self,
        request: Request<RequestBody>,
    ) -> impl Future<Output = SendResult> + use<> {
        let request = self.prepare(request);
        let stats = Arc::clone(&self.stats);
        stats.add_written(1);
        self.sender.try_send_request(request).map(move |result| {
            if let Err(err) = &result
                && refused_stream(err.error())
            {
                stats.unwrite(1);
            }
            result
                .map(|response| response.map(UpstreamIncoming::Hyper))
                .map_err(SendFailed::from_hyper)
        })
    }

    /// hyper's HTTP/2 client needs an absolute URI (`:scheme` and `:authority`): the authority is
    /// the request's `Host` (the `Host` field stays, as RFC 9113 §8.3.1 lets an intermediary
    /// keep it, and matches). Only the URI changes, which the request path never takes back
    /// from a request returned unsent, so a retry on HTTP/1.1 still sends origin-form.
    pub(super) fn prepare(&self, mut request: Request<RequestBody>) -> Request<RequestBody> {
        http2_form(&mut request, &self.conn.scheme, &self.conn.authority);
        request
    }
}

/// Makes a request ready for hyper's HTTP/2 client: version 2, and an absolute URI whose
/// authority is the `Host` field (else `fallback`). An absolute URI is kept as it is.
fn http2_form<B>(request: &mut Request<B>, scheme: &Scheme, fallback: &Authority) {
    *request.version_mut() = Version::HTTP_2;
    if request.uri().scheme().is_some() {
        return;
    }
    let authority = request
        .headers()
        .get(header::HOST)
        .and_then(|host| Authority::try_from(host.as_bytes()).ok())
        .unwrap_or_else(|| fallback.clone());
    let mut parts = request.uri().clone().into_parts();
    parts.scheme = Some(scheme.clone());
    parts.authority = Some(authority);
    if parts.path_and_query.is_none() {
        parts.path_and_query = Some(PathAndQuery::from_static("/"));
    }
    // Cannot fail with a scheme, an authority and a path; were it to, h2 refuses the
    // relative URI and the request fails cleanly.
    if let Ok(uri) = Uri::from_parts(parts) {
        *request.uri_mut() = uri;
    }
}

/// h2's words for a stream the server reset with REFUSED_STREAM. hyper keeps h2's typed error
/// reason to itself (and `h2` is not a direct dependency), so this one fact is read from h2's
/// `Display`, exactly: if the wording ever changes, refused streams count as sent again
/// (conservative), never the reverse. `refused_streams_are_unsent` pins it.
const H2_REFUSED_STREAM: &str =
    "stream error received: refused stream before processing any application logic";

/// Whether the server refused the request's stream before processing it.
fn refused_stream(err: &hyper::Error) -> bool {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = current {
        if e.to_string() == H2_REFUSED_STREAM {
            return true;
        }
        current = e.source();
    }
    false
}

impl Drop for Stream {
    fn drop(&mut self) {
        if self.conn.streams.fetch_sub(1, Ordering::AcqRel) == 1 {
            *self
                .conn
                .idle_since
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Instant::now();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;
    use crate::upstream::conn::SendError;
    use crate::upstream::connect::{self, ConnMode};
    use crate::upstream::server::{ConnSettings, ServerSettings};

    #[test]
    fn http2_requests_get_an_absolute_uri_from_host() {
        let fallback = Authority::from_static("10.0.0.5:8443");
        let mut request = Request::new(());
        *request.uri_mut() = Uri::from_static("/a/b?c=d");
        request.headers_mut().insert(
            header::HOST,
            "app.test".parse().unwrap_or_else(|e| panic!("{e}")),
        );
        http2_form(&mut request, &Scheme::HTTPS, &fallback);
        assert_eq!(request.uri(), "https://app.test/a/b?c=d");
        assert_eq!(request.version(), Version::HTTP_2);

        // No Host: the server's own authority.
        let mut request = Request::new(());
        *request.uri_mut() = Uri::from_static("/");
        http2_form(&mut request, &Scheme::HTTP, &fallback);
        assert_eq!(request.uri(), "http://10.0.0.5:8443/");
    }

    /// One HTTP/2 frame.
    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = u32::try_from(payload.len()).unwrap_or(0).to_be_bytes();
        let mut out = vec![len[1], len[2], len[3], kind, flags];
        out.extend_from_slice(&stream.to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    /// A bare HTTP/2 server (prior knowledge) that resets every stream it is sent with
    /// RST_STREAM `code`: hyper's server cannot be made to refuse a stream on purpose.
    fn resetting_server(code: u32) -> SocketAddr {
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        std::thread::spawn(move || {
            let Ok((mut stream, _)) = listener.accept() else {
                return;
            };
            let mut preface = [0u8; 24];
            if stream.read_exact(&mut preface).is_err() {
                return;
            }
            let _ = stream.write_all(&frame(4, 0, 0, &[]));
            loop {
                let mut head = [0u8; 9];
                if stream.read_exact(&mut head).is_err() {
                    return;
                }
                let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
                let (kind, flags) = (head[3], head[4]);
                let id = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
                let mut payload = vec![0u8; len];
                if stream.read_exact(&mut payload).is_err() {
                    return;
                }
                let reply = match kind {
                    // SETTINGS (not an ACK): acknowledge.
                    4 if flags & 1 == 0 => frame(4, 1, 0, &[]),
                    // HEADERS: reset the stream.
                    1 => frame(3, 0, id, &code.to_be_bytes()),
                    _ => continue,
                };
                if stream.write_all(&reply).is_err() {
                    return;
                }
            }
        });
        addr
    }

    /// Sends a GET over a new h2c connection to `addr`; returns whether the request counted as
    /// sent and the error.
    async fn reset_request(addr: SocketAddr) -> (bool, hyper::Error) {
        let settings = ServerSettings {
            http2: true,
            ..ServerSettings::plain(ConnSettings {
                connect_timeout: Duration::from_secs(1),
                response_timeout: Duration::from_secs(1),
                read_timeout: Duration::from_secs(1),
                send_timeout: Duration::from_secs(1),
                max_response_header_size: 8192,
                proxy_protocol: None,
            })
        };
        let (mut conn, _) = connect::connect(addr, &settings, ConnMode::Pooled)
            .await
            .unwrap_or_else(|f| panic!("connect: {f}"));
        assert_eq!(conn.protocol, Protocol::H2c);
        let mut request = Request::new(RequestBody::empty());
        request.headers_mut().insert(
            header::HOST,
            "app.test".parse().unwrap_or_else(|e| panic!("{e}")),
        );
        let before = conn.stats.written();
        let sent = tokio::time::timeout(
            Duration::from_secs(5),
            conn.sender.try_send_request(request, None),
        );
        let Ok(result) = sent.await else {
            panic!("no answer");
        };
        let Err(err) = result else {
            panic!("the stream was reset, yet a response came");
        };
        let SendError::Hyper(err) = err.error else {
            panic!("an HTTP/2 stream failed outside hyper: {err:?}");
        };
        (conn.stats.written() > before, err)
    }

    #[tokio::test]
    async fn refused_streams_are_unsent_other_resets_are_sent() {
        // REFUSED_STREAM (7): never processed (RFC 9113 §8.7), so any method may be retried.
        let (sent, err) = reset_request(resetting_server(7)).await;
        assert!(refused_stream(&err), "{err:?}");
        assert!(!sent, "a refused stream counted as sent");
        // INTERNAL_ERROR (2): the server may have acted on it.
        let (sent, err) = reset_request(resetting_server(2)).await;
        assert!(!refused_stream(&err), "{err:?}");
        assert!(sent, "a reset stream counted as unsent");
    }
}
