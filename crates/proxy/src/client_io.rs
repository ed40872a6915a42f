//! What a request knows of its client's connection ([`ClientActivity`]), and the socket
//! wrapper under an HTTP/2 connection ([`ClientIo`]): how fast the client takes what is
//! written; one slower than `min_response_rate`, or taking nothing for `client_write_timeout`,
//! is cut off (the same measure the HTTP/1.1 engine applies, `http1::pace`).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::HeaderValue;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::http1::pace::{WriteLimit, WriteWait};

/// Shared between the socket wrapper and the request handlers of one connection.
#[derive(Debug)]
pub struct ClientActivity {
    /// The client's IP formatted as a header value once per connection (X-Forwarded-For,
    /// X-Real-IP).
    pub client_ip: HeaderValue,
    /// The connection came in over TLS (`X-Forwarded-Proto: https`).
    pub https: bool,
    /// The address the client reached gatehouse on (for a PROXY header sent upstream).
    pub local: SocketAddr,
}

impl ClientActivity {
    pub fn new(client: SocketAddr, local: SocketAddr, https: bool) -> Self {
        Self {
            https,
            local,
            client_ip: HeaderValue::from_str(&client.ip().to_string())
                .unwrap_or_else(|_| HeaderValue::from_static("unknown")),
        }
    }
}

/// The client's connection, its writes held to the minimum rate.
#[derive(Debug)]
pub struct ClientIo<S = TcpStream> {
    inner: S,
    activity: Arc<ClientActivity>,
    /// `min_response_rate` and `client_write_timeout`: a client taking what is written
    /// slower than the rate, or not at all for the timeout, is cut off.
    limit: WriteLimit,
    wait: WriteWait,
}

impl<S> ClientIo<S> {
    pub fn new(inner: S, activity: Arc<ClientActivity>, limit: WriteLimit) -> Self {
        Self {
            inner,
            activity,
            limit,
            wait: WriteWait::default(),
        }
    }

    /// A write under the minimum rate: bytes written after a wait count as taken by the client;
    /// a client too slow for the rate ends the connection (the engine closes it on the error).
    fn paced<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
        written: impl Fn(&T) -> usize,
    ) -> Poll<io::Result<T>> {
        match &polled {
            Poll::Ready(Ok(done)) => {
                self.wait.progress(written(done));
                return polled;
            }
            Poll::Ready(Err(_)) => return polled,
            Poll::Pending => {}
        }
        let error = ready!(self.wait.poll_waiting(cx, &self.limit));
        tracing::info!(client = ?self.activity.client_ip, reason = error.reason(), error = %error, "client disconnected: reading the response too slowly");
        Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, error)))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ClientIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ClientIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.paced(cx, polled, |n| *n)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.paced(cx, polled, |n| *n)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_flush(cx);
        this.paced(cx, polled, |()| 0)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
