//! A response body from upstream, whichever client read its head: gatehouse's own HTTP/1.1
//! client ([`h1::ResponseBody`]) or hyper's (HTTP/2, upgrades).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use super::h1::{self, H1Conn};
use crate::failure::{Failure, classify};

/// The body of an upstream response.
#[derive(Debug)]
pub enum UpstreamIncoming {
    Own(h1::ResponseBody),
    Hyper(Incoming),
}

/// Why an upstream body broke off.
#[derive(Debug)]
pub enum IncomingError {
    /// Already classified by the own client.
    Own(Failure),
    Hyper(hyper::Error),
}

impl IncomingError {
    /// The failure, classified; `chunked`: the body was chunked (a decode error is then a
    /// transfer-coding failure).
    pub fn into_failure(self, chunked: bool) -> Failure {
        match self {
            Self::Own(failure) => failure,
            Self::Hyper(err) => classify::response_body_error(&err, chunked),
        }
    }
}

impl UpstreamIncoming {
    /// The own client's connection, once the body ended well and it may be reused.
    pub fn reusable_conn(&mut self) -> Option<Box<H1Conn>> {
        match self {
            Self::Own(body) => body.reusable_conn(),
            Self::Hyper(_) => None,
        }
    }
}

impl Body for UpstreamIncoming {
    type Data = Bytes;
    type Error = IncomingError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, IncomingError>>> {
        match self.get_mut() {
            Self::Own(body) => Pin::new(body).poll_frame(cx).map_err(IncomingError::Own),
            Self::Hyper(body) => Pin::new(body).poll_frame(cx).map_err(IncomingError::Hyper),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Own(body) => body.is_end_stream(),
            Self::Hyper(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Own(body) => body.size_hint(),
            Self::Hyper(body) => body.size_hint(),
        }
    }
}
