//! Reading a plain TCP socket without the wasted system call after a short read.
//!
//! tokio learns that a socket has nothing more to read only from a read that fails with
//! `WouldBlock`. After a request (or a response head) has been read whole, the next read
//! would be that failing `recvfrom`: one system call per message that reads nothing. A read
//! that returns fewer bytes than it had room for has emptied the socket's queue, so the
//! readiness can be cleared then, as tokio's own `AsyncRead` does for a short read. It is
//! cleared only if no new readiness event arrived since the read began (tokio compares the
//! event's tick), so bytes that came in meanwhile still wake the reader. This relies on
//! edge-triggered epoll (or kqueue) reporting bytes that arrive later as a new event, as
//! tokio's own short-read clearing does; gatehouse runs on Linux.
//!
//! A check that must see a close the event loop may not have polled for yet (a pooled
//! connection's, before it is used again) asks the kernel instead: see
//! `upstream::io::UpstreamIo::nothing_to_read`.

use std::io;
use std::task::{Context, Poll, ready};

use bytes::BytesMut;
use tokio::io::Interest;
use tokio::net::TcpStream;

/// Reads into `buf`'s spare capacity (reserve first): the bytes read, `Ok(0)` at the end of
/// the stream.
pub fn poll_read_buf(
    stream: &TcpStream,
    cx: &mut Context<'_>,
    buf: &mut BytesMut,
) -> Poll<io::Result<usize>> {
    loop {
        ready!(stream.poll_read_ready(cx))?;
        let room = buf.capacity() - buf.len();
        if let Some(result) = read_once(stream, room, |s| s.try_read_buf(buf)) {
            return Poll::Ready(result);
        }
    }
}

/// Reads into `dst`: the bytes read, `Ok(0)` at the end of the stream (or for an empty
/// `dst`).
pub fn poll_read(
    stream: &TcpStream,
    cx: &mut Context<'_>,
    dst: &mut [u8],
) -> Poll<io::Result<usize>> {
    loop {
        ready!(stream.poll_read_ready(cx))?;
        let room = dst.len();
        if let Some(result) = read_once(stream, room, |s| s.try_read(dst)) {
            return Poll::Ready(result);
        }
    }
}

/// One read of at most `room` bytes by `read`; `None` when the socket had nothing (its
/// readiness is cleared: wait for it again). A short read clears the readiness too, and is
/// returned.
fn read_once(
    stream: &TcpStream,
    room: usize,
    read: impl FnOnce(&TcpStream) -> io::Result<usize>,
) -> Option<io::Result<usize>> {
    let mut short = None;
    // `try_io` takes the readiness event before the read and clears that event (not a newer
    // one) when the closure says `WouldBlock`: a short read says so, and hands its count out
    // through `short`.
    let result = stream.try_io(Interest::READABLE, || match read(stream) {
        Ok(n) if n > 0 && n < room => {
            short = Some(n);
            Err(io::ErrorKind::WouldBlock.into())
        }
        other => other,
    });
    match (result, short) {
        (_, Some(n)) => Some(Ok(n)),
        (Err(err), None) if err.kind() == io::ErrorKind::WouldBlock => None,
        (result, None) => Some(result),
    }
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;
    use std::time::Duration;

    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    use super::*;

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let client = TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let (server, _) = listener.accept().await.unwrap_or_else(|e| panic!("{e}"));
        (client, server)
    }

    /// One [`poll_read`] of `server` into `dst`, which must end within 5 s (else `stalled`
    /// says what was lost).
    async fn read_within(server: &TcpStream, dst: &mut [u8], stalled: &str) -> usize {
        tokio::time::timeout(
            Duration::from_secs(5),
            poll_fn(|cx| poll_read(server, cx, dst)),
        )
        .await
        .unwrap_or_else(|_| panic!("{stalled}"))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    /// A short read is returned whole, and bytes that arrive after it still wake the reader
    /// (the readiness it cleared does not hide them).
    #[tokio::test]
    async fn a_short_read_then_more_bytes_wake_the_reader() {
        let (mut client, server) = pair().await;
        client
            .write_all(b"first")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut buf = BytesMut::with_capacity(1024);
        let n = poll_fn(|cx| poll_read_buf(&server, cx, &mut buf))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(&buf[..n], b"first");
        let writer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            client
                .write_all(b"second")
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            client
        });
        let mut dst = [0u8; 64];
        let n = read_within(
            &server,
            &mut dst,
            "the bytes written after a short read never woke the reader",
        )
        .await;
        assert_eq!(&dst[..n], b"second");
        let client = writer.await.unwrap_or_else(|e| panic!("{e}"));
        drop(client);
        let n = read_within(
            &server,
            &mut dst,
            "the end of the stream never woke the reader",
        )
        .await;
        assert_eq!(n, 0, "the end of the stream");
    }

    /// The end of the stream that arrived with the last bytes (before the short read that
    /// took them) is still seen: a cleared readiness keeps the "closed" part.
    #[tokio::test]
    async fn the_end_that_came_with_the_bytes_is_seen() {
        let (mut client, server) = pair().await;
        client
            .write_all(b"last")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        drop(client);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut dst = [0u8; 64];
        let n = poll_fn(|cx| poll_read(&server, cx, &mut dst))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(&dst[..n], b"last");
        let n = read_within(
            &server,
            &mut dst,
            "the end of the stream was lost with the cleared readiness",
        )
        .await;
        assert_eq!(n, 0);
    }

    /// A read that fills the room it had leaves the readiness set: the rest follows without
    /// waiting for a new event.
    #[tokio::test]
    async fn a_full_read_leaves_the_rest_readable() {
        let (mut client, server) = pair().await;
        client
            .write_all(b"0123456789")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut dst = [0u8; 4];
        let mut got = Vec::new();
        while got.len() < 10 {
            let n = read_within(
                &server,
                &mut dst,
                &format!("stalled after {} bytes", got.len()),
            )
            .await;
            got.extend_from_slice(&dst[..n]);
        }
        assert_eq!(got, b"0123456789");
    }
}
