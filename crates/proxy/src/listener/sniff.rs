//! Telling an h2c connection (HTTP/2 with prior knowledge, RFC 9113 §3.3) from HTTP/1.1 on a
//! plain listener, by peeking at the client's first bytes.

use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::Instant;

use super::conn::Protocol;

/// The HTTP/2 connection preface (RFC 9113 §3.4) an h2c client with prior knowledge opens with.
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// How long to wait before looking again when only part of the preface has arrived.
const PEEK_PAUSE: Duration = Duration::from_millis(5);

/// Waits for the client's first bytes and tells an HTTP/2 connection preface from anything
/// else, which is served as HTTP/1.1. It peeks, so the bytes stay for hyper. `None` when the
/// client sent nothing within `timeout` (or closed): such a connection is closed silently, as
/// an idle keep-alive one would be.
pub(super) async fn sniff(stream: &TcpStream, timeout: Duration) -> Option<Protocol> {
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; H2_PREFACE.len()];
    loop {
        let n = match tokio::time::timeout_at(deadline, stream.peek(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => n,
            Ok(_) | Err(_) => return None,
        };
        if buf[..n] != H2_PREFACE[..n] {
            return Some(Protocol::Http1);
        }
        if n == H2_PREFACE.len() {
            return Some(Protocol::Http2);
        }
        // Only part of the preface so far. A peek would return the same bytes at once (the
        // socket stays readable), so pause before looking again.
        if Instant::now() + PEEK_PAUSE >= deadline {
            return None;
        }
        tokio::time::sleep(PEEK_PAUSE).await;
    }
}
