//! Interim (1xx) responses relayed to an HTTP/1.1 client before the final one (RFC 9110 §15.2:
//! a proxy MUST forward them; `103 Early Hints` lets a browser start fetching early).
//!
//! Whoever forwards the request gets an [`Interim`] handle from the request's body (for
//! HTTP/1.1 requests only: HTTP/1.0 has no 1xx, and a server MUST NOT send one to it). What is
//! queued through it is written by the connection's loop while the request is in progress, and
//! what is queued when the final response is ready goes just before it; nothing is written after
//! it (the handle of a finished request writes into a queue the next request starts by emptying).

use std::sync::Arc;

use http::{HeaderMap, StatusCode};

use super::io::Shared;

/// Queues 1xx responses for the client of one request.
#[derive(Debug, Clone)]
pub struct Interim(pub(super) Arc<Shared>);

impl Interim {
    /// Queues `status` (102, 103, ...; 100 and 101 are the engine's own business and ignored)
    /// with `headers`, written as they are.
    pub fn send(&self, status: StatusCode, headers: &HeaderMap) {
        if !status.is_informational()
            || status == StatusCode::CONTINUE
            || status == StatusCode::SWITCHING_PROTOCOLS
        {
            return;
        }
        let mut queued = self.0.lock_interim();
        encode(&mut queued, status, headers);
        drop(queued);
        self.0.interim_ready.raise();
    }
}

/// `HTTP/1.1 103 Early Hints` and its fields.
fn encode(dst: &mut Vec<u8>, status: StatusCode, headers: &HeaderMap) {
    dst.extend_from_slice(b"HTTP/1.1 ");
    dst.extend_from_slice(status.as_str().as_bytes());
    dst.push(b' ');
    dst.extend_from_slice(
        status
            .canonical_reason()
            .unwrap_or("Informational")
            .as_bytes(),
    );
    dst.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        dst.extend_from_slice(name.as_str().as_bytes());
        dst.extend_from_slice(b": ");
        dst.extend_from_slice(value.as_bytes());
        dst.extend_from_slice(b"\r\n");
    }
    dst.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_early_hint_is_encoded_with_its_fields() {
        let mut headers = HeaderMap::new();
        headers.append(
            "link",
            "</style.css>; rel=preload; as=style".parse().unwrap(),
        );
        headers.append("link", "</app.js>; rel=preload; as=script".parse().unwrap());
        let mut out = Vec::new();
        encode(&mut out, StatusCode::EARLY_HINTS, &headers);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload; as=style\r\nlink: </app.js>; rel=preload; as=script\r\n\r\n"
        );
    }
}
