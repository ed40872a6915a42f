//! Interim (1xx) responses relayed to an HTTP/2 client before the final one (RFC 9110 §15.2: a
//! proxy MUST forward them; RFC 9113 §8.1: each is a HEADERS frame without END_STREAM before the
//! final response's). Browsers act on `103 Early Hints` over HTTP/2.
//!
//! The handle shares the stream's `SendResponse` with the stream's task: a 1xx goes out at once
//! from whichever task received it from the upstream, and the task takes the `SendResponse` for
//! the final response, after which the handle sends nothing.

use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::Bytes;
use h2::server::SendResponse;
use http::{HeaderMap, Response, StatusCode};

use super::stream::strip_connection_fields;

/// Sends 1xx responses to the client of one HTTP/2 stream.
#[derive(Debug, Clone)]
pub struct Interim(Arc<Mutex<Option<SendResponse<Bytes>>>>);

impl Interim {
    pub(super) fn new(respond: SendResponse<Bytes>) -> Self {
        Self(Arc::new(Mutex::new(Some(respond))))
    }

    fn lock(&self) -> MutexGuard<'_, Option<SendResponse<Bytes>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends `status` (102, 103, ...; 100 and 101 are not relayed: `100 Continue` is the
    /// business of each hop, and HTTP/2 has no `101`) with `headers`, connection-specific
    /// fields removed. Nothing once the final response went out or the stream was reset.
    pub fn send(&self, status: StatusCode, headers: &HeaderMap) {
        if !status.is_informational()
            || status == StatusCode::CONTINUE
            || status == StatusCode::SWITCHING_PROTOCOLS
        {
            return;
        }
        let mut response = Response::new(());
        *response.status_mut() = status;
        *response.headers_mut() = headers.clone();
        strip_connection_fields(response.headers_mut());
        if let Some(respond) = self.lock().as_mut() {
            // Fails only when the stream is already gone; the final response will see that.
            let _ = respond.send_informational(response);
        }
    }

    /// `100 Continue`: the client waits for it before it sends a body it announced with
    /// `Expect: 100-continue` (RFC 9110 §10.1.1); sent when the body is first asked for.
    pub(super) fn send_continue(&self) {
        let mut response = Response::new(());
        *response.status_mut() = StatusCode::CONTINUE;
        if let Some(respond) = self.lock().as_mut() {
            let _ = respond.send_informational(response);
        }
    }

    /// The `SendResponse` for the final response; `None` if it was already taken.
    pub(super) fn take(&self) -> Option<SendResponse<Bytes>> {
        self.lock().take()
    }

    /// Ready with the reason once the client reset the stream (RST_STREAM).
    pub(super) fn poll_reset(&self, cx: &mut Context<'_>) -> Poll<h2::Reason> {
        match self.lock().as_mut() {
            Some(respond) => match respond.poll_reset(cx) {
                Poll::Ready(Ok(reason)) => Poll::Ready(reason),
                // The connection is gone: nobody is left to answer.
                Poll::Ready(Err(_)) => Poll::Ready(h2::Reason::CANCEL),
                Poll::Pending => Poll::Pending,
            },
            None => Poll::Pending,
        }
    }
}
