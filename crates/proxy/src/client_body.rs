//! What the pipeline receives from a client, whichever engine read it: gatehouse's own
//! HTTP/1.1 engine (plain listeners) or hyper (TLS listeners, HTTP/2).
//!
//! - [`ClientBody`]: the request body, with client-side errors already turned into [`Failure`]s;
//! - [`ClientUpgrade`]: the client's connection after a `101`, for the tunnel.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::failure::{Failure, classify};
use crate::http1;

/// A request body from a client.
#[derive(Debug)]
pub enum ClientBody {
    Hyper(Incoming),
    Http1(http1::RequestBody),
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = Failure;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Failure>>> {
        match self.get_mut() {
            Self::Hyper(body) => Pin::new(body)
                .poll_frame(cx)
                .map_err(|err| classify::request_body_error(&err)),
            Self::Http1(body) => Pin::new(body)
                .poll_frame(cx)
                .map_err(|err| Failure::client(StatusCode::BAD_REQUEST, err.to_string())),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Hyper(body) => body.is_end_stream(),
            Self::Http1(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Hyper(body) => body.size_hint(),
            Self::Http1(body) => body.size_hint(),
        }
    }
}

/// The handle on a client connection that may switch protocols.
#[derive(Debug)]
pub enum ClientUpgrade {
    Hyper(hyper::upgrade::OnUpgrade),
    Http1(http1::OnUpgrade),
}

impl ClientUpgrade {
    /// Takes the handle out of a request, when its engine put one there.
    pub fn take<B>(req: &mut Request<B>) -> Option<Self> {
        if let Some(upgrade) = req.extensions_mut().remove::<http1::OnUpgrade>() {
            return Some(Self::Http1(upgrade));
        }
        req.extensions()
            .get::<hyper::upgrade::OnUpgrade>()
            .is_some()
            .then(|| Self::Hyper(hyper::upgrade::on(req)))
    }

    /// Resolves once the `101` went out, with the client's connection.
    pub async fn wait(self) -> Result<ClientStream, String> {
        match self {
            Self::Hyper(upgrade) => upgrade
                .await
                .map(|upgraded| ClientStream::Hyper(TokioIo::new(upgraded)))
                .map_err(|err| err.to_string()),
            Self::Http1(upgrade) => upgrade
                .wait()
                .await
                .map(ClientStream::Http1)
                .map_err(ToOwned::to_owned),
        }
    }
}

/// A client connection after `101 Switching Protocols`.
#[derive(Debug)]
pub enum ClientStream {
    Hyper(TokioIo<hyper::upgrade::Upgraded>),
    Http1(http1::Upgraded),
}

impl AsyncRead for ClientStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Hyper(io) => Pin::new(io).poll_read(cx, buf),
            Self::Http1(io) => Pin::new(io).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ClientStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Hyper(io) => Pin::new(io).poll_write(cx, buf),
            Self::Http1(io) => Pin::new(io).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Hyper(io) => Pin::new(io).poll_write_vectored(cx, bufs),
            Self::Http1(io) => Pin::new(io).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Hyper(io) => io.is_write_vectored(),
            Self::Http1(io) => io.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Hyper(io) => Pin::new(io).poll_flush(cx),
            Self::Http1(io) => Pin::new(io).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Hyper(io) => Pin::new(io).poll_shutdown(cx),
            Self::Http1(io) => Pin::new(io).poll_shutdown(cx),
        }
    }
}
