//! Downstream connections: the accept loop and serving one HTTP/1.1 connection.
//!
//! Owns keep-alive, the header read timeout (408), request-parsing limits, panic isolation
//! (a panic in one request is answered 500 `proxy_internal_error` and touches no other
//! connection) and graceful drain on shutdown.

use std::convert::Infallible;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures_util::FutureExt as _;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};

use crate::body::ProxyBody;
use crate::client_io::{ClientActivity, ClientIo};
use crate::failure::{Failure, FailureKind, Phase};
use crate::observe::access_log::{AccessRecord, AttemptContext};
use crate::respond::{self, ErrorContext};
use crate::service;
use crate::snapshot::{Current, Snapshot};

/// Connections currently open, so shutdown can wait for them to drain.
#[derive(Debug, Default)]
pub struct ConnTracker {
    open: AtomicUsize,
    idle: Notify,
}

impl ConnTracker {
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Resolves once no connection is open.
    pub async fn drained(&self) {
        loop {
            let notified = self.idle.notified();
            if self.open() == 0 {
                return;
            }
            notified.await;
        }
    }
}

struct ConnGuard(Arc<ConnTracker>);

impl ConnGuard {
    fn new(tracker: &Arc<ConnTracker>) -> Self {
        tracker.open.fetch_add(1, Ordering::AcqRel);
        Self(Arc::clone(tracker))
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        if self.0.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// Accepts connections until `shutdown` turns true (gatehouse stops) or `close` does (a reload
/// removed this listener; its open connections carry on).
pub async fn accept_loop(
    listener: TcpListener,
    current: Current,
    tracker: Arc<ConnTracker>,
    mut shutdown: watch::Receiver<bool>,
    mut close: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.changed() => return,
            _ = close.changed() => return,
        };
        match accepted {
            Ok((stream, client)) => {
                current.load().observer.metrics.connection_accepted();
                let guard = ConnGuard::new(&tracker);
                let current = Arc::clone(&current);
                let shutdown = shutdown.clone();
                tokio::spawn(async move {
                    serve_connection(stream, client, current, shutdown).await;
                    drop(guard);
                });
            }
            Err(err) => {
                // EMFILE and friends: back off briefly instead of spinning.
                tracing::error!(error = %err, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

async fn serve_connection(
    stream: TcpStream,
    client: SocketAddr,
    current: Current,
    mut shutdown: watch::Receiver<bool>,
) {
    // Connection-level settings come from the snapshot in force when the connection opened;
    // each request loads the snapshot in force when it arrives.
    let snapshot = current.load_full();
    let _ = stream.set_nodelay(true);
    // A second handle on the socket, to answer 408 after hyper gave up on the connection.
    let spare = stream_spare(&stream);
    let server = &snapshot.config.server;
    // hyper's own limits sit above gatehouse's, so that requests between the two get
    // gatehouse's full 414/431 answer; only far larger ones get hyper's bare one.
    let max_buf = (server.max_request_header_size * 2)
        .max(server.max_uri_length * 2)
        .max(16 * 1024);
    let activity = Arc::new(ClientActivity::new(client, max_buf, false));
    let io = TokioIo::new(ClientIo::new(stream, Arc::clone(&activity)));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .keep_alive(true)
        .header_read_timeout(server.client_header_timeout)
        // hyper's buffer limit sits above gatehouse's own limits, so that requests between
        // the two get gatehouse's full 414/431 answer; only far larger ones get hyper's bare
        // one. hyper's default of 100 header fields is kept (above 100 it heap-allocates its
        // parse arrays for every request).
        .max_buf_size(max_buf);
    let service_activity = Arc::clone(&activity);
    let service = service_fn(move |req: Request<Incoming>| {
        let snapshot = current.load_full();
        let activity = Arc::clone(&service_activity);
        async move { Ok::<_, Infallible>(handle_isolated(snapshot, client, activity, req).await) }
    });
    let conn = builder.serve_connection(io, service);
    let mut conn = std::pin::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = async { let _ = shutdown.wait_for(|stop| *stop).await; } => {
            conn.as_mut().graceful_shutdown();
            conn.as_mut().await
        }
    };
    if let Err(err) = result {
        on_connection_error(&err, client, &snapshot, &activity, spare);
    }
}

/// Runs the pipeline, answering a panic with 500 `proxy_internal_error`.
async fn handle_isolated(
    snapshot: Arc<Snapshot>,
    client: SocketAddr,
    activity: Arc<ClientActivity>,
    req: Request<Incoming>,
) -> Response<ProxyBody> {
    let head_only = req.method() == http::Method::HEAD;
    let accept = req.headers().get(http::header::ACCEPT).cloned();
    let handled = std::panic::AssertUnwindSafe(service::handle(
        Arc::clone(&snapshot),
        client,
        &activity,
        req,
    ))
    .catch_unwind()
    .await;
    match handled {
        Ok(response) => response,
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(ToString::to_string)
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            let failure = Failure::new(
                FailureKind::ProxyInternalError,
                Phase::Internal,
                format!("panic: {message}"),
            );
            let request_id = service::new_request_id();
            snapshot
                .observer
                .failure(&failure, &AttemptContext::before_any_attempt(&request_id));
            respond::render(
                &failure,
                &ErrorContext {
                    request_id: &request_id,
                    accept: accept.as_ref(),
                    head_only,
                    next_hop: None,
                    proxy_status: &snapshot.proxy_status,
                },
            )
        }
    }
}

/// hyper ended the connection with an error: log it, and answer 408 when the client stalled
/// part-way through a request head (hyper closes without a response there).
fn on_connection_error(
    err: &hyper::Error,
    client: SocketAddr,
    snapshot: &Snapshot,
    activity: &ClientActivity,
    spare: Option<std::net::TcpStream>,
) {
    if err.is_timeout() {
        if !activity.request_in_progress() {
            return; // an idle keep-alive connection: closing it is normal
        }
        let failure = Failure::client(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "client did not send a complete request header section within client_header_timeout ({:?})",
                snapshot.config.server.client_header_timeout
            ),
        );
        let request_id = log_unparsed_request(&failure, client, snapshot);
        let response = respond::render(
            &failure,
            &ErrorContext {
                request_id: &request_id,
                accept: None,
                head_only: false,
                next_hop: None,
                proxy_status: &snapshot.proxy_status,
            },
        );
        if let Some(mut spare) = spare {
            let _ = spare.write_all(&serialize_small_response(response));
            let _ = spare.shutdown(std::net::Shutdown::Both);
        }
        return;
    }
    if err.is_parse() || err.is_parse_too_large() {
        // hyper has answered 400/414/431 itself (a bare response); the log lines are ours.
        let status = if err.is_parse_too_large() {
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        } else {
            StatusCode::BAD_REQUEST
        };
        let failure = Failure::client(
            status,
            format!(
                "unparseable request: {}",
                crate::failure::classify::describe(err)
            ),
        );
        log_unparsed_request(&failure, client, snapshot);
        return;
    }
    tracing::debug!(%client, error = %crate::failure::classify::describe(err), "client connection ended with an error");
}

/// The failure warning and access record for a request that never became a `Request`
/// (method and target unknown, logged as `-`). Returns the request id used.
fn log_unparsed_request(failure: &Failure, client: SocketAddr, snapshot: &Snapshot) -> String {
    let request_id = service::new_request_id();
    snapshot
        .observer
        .failure(failure, &AttemptContext::before_any_attempt(&request_id));
    let method = http::Method::from_bytes(b"-").unwrap_or_default();
    let mut record = AccessRecord::new(
        snapshot.config.server.access_log,
        client,
        request_id.as_str().into(),
        method,
        "-".to_owned(),
    );
    record.status = failure.status().as_u16();
    record.failure = Some(failure.kind.token());
    snapshot.observer.finished(record);
    request_id
}

/// Writes a generated response as HTTP/1.1 bytes (used only where hyper no longer owns the
/// connection).
fn serialize_small_response(response: Response<ProxyBody>) -> Vec<u8> {
    let (parts, body) = response.into_parts();
    let mut out = format!(
        "HTTP/1.1 {} {}\r\n",
        parts.status.as_u16(),
        parts.status.canonical_reason().unwrap_or("")
    )
    .into_bytes();
    for (name, value) in &parts.headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"connection: close\r\n\r\n");
    if let ProxyBody::Full(Some(bytes)) = body {
        out.extend_from_slice(&bytes);
    }
    out
}

fn stream_spare(stream: &TcpStream) -> Option<std::net::TcpStream> {
    let sock = socket2::SockRef::from(stream);
    sock.try_clone().ok().map(std::net::TcpStream::from)
}
