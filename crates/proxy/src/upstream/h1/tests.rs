//! The own client against raw servers on loopback that answer exactly as scripted.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{H1Conn, ResponseBody, SendFailed, send};
use crate::client_body::RequestBody;
use crate::failure::FailureKind;
use crate::upstream::io::Transport;

/// What the server does once its replies are spent.
#[derive(Clone, Copy, PartialEq)]
enum Then {
    Close,
    /// Reads (and drops) whatever comes until the client closes.
    Drain,
    /// Keeps the connection open without reading.
    Hold,
}

/// A server that reads request heads on one connection and answers each with the next of
/// `replies`, then does what `then` says.
async fn server(replies: Vec<&'static [u8]>, then: Then) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut seen = Vec::new();
        for reply in replies {
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                let mut chunk = [0u8; 4096];
                let n = stream.read(&mut chunk).await.unwrap_or(0);
                if n == 0 {
                    return;
                }
                seen.extend_from_slice(&chunk[..n]);
            }
            seen.clear();
            let _ = stream.write_all(reply).await;
        }
        match then {
            Then::Close => {}
            Then::Drain => {
                let mut rest = Vec::new();
                let _ = stream.read_to_end(&mut rest).await;
            }
            Then::Hold => tokio::time::sleep(Duration::from_secs(10)).await,
        }
    });
    addr
}

async fn connect(addr: SocketAddr) -> Box<H1Conn> {
    let stream = TcpStream::connect(addr).await.unwrap();
    H1Conn::new(Transport::Tcp(stream), Duration::from_secs(5), 8192).0
}

fn get(path: &str) -> Request<RequestBody> {
    let mut request = Request::new(RequestBody::empty());
    *request.uri_mut() = path.parse().unwrap();
    request
}

async fn body_of(body: &mut ResponseBody) -> Bytes {
    let mut all = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.unwrap_or_else(|f| panic!("{f}"));
        if let Ok(data) = frame.into_data() {
            all.extend_from_slice(&data);
        }
    }
    Bytes::from(all)
}

fn no_head(result: Result<http::Response<ResponseBody>, SendFailed>) -> SendFailed {
    match result {
        Ok(response) => panic!("a response: {:?}", response.status()),
        Err(failed) => failed,
    }
}

#[tokio::test]
async fn a_kept_alive_connection_carries_the_next_request() {
    let addr = server(
        vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nsec\r\n3\r\nond\r\n0\r\n\r\n",
        ],
        Then::Drain,
    )
    .await;
    let conn = connect(addr).await;
    let mut response = send(conn, get("/a"), None).await.unwrap();
    assert_eq!(body_of(response.body_mut()).await, "first");
    let conn = response.body_mut().reusable_conn().expect("reusable");
    assert!(conn.reused());
    let mut response = send(conn, get("/b"), None).await.unwrap();
    assert_eq!(body_of(response.body_mut()).await, "second");
    assert!(response.body_mut().reusable_conn().is_some());
}

#[tokio::test]
async fn interim_responses_are_skipped_and_the_final_one_returned() {
    let addr = server(
        vec![b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"],
        Then::Drain,
    )
    .await;
    let mut response = send(connect(addr).await, get("/"), None).await.unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(response.body_mut().reusable_conn().is_some());
}

#[tokio::test]
async fn an_answer_before_the_body_was_taken_comes_at_once() {
    // The server answers on the head and never reads the 32 MiB body: the client's writes
    // stall in full socket buffers, and the answer must be heard all the same.
    let addr = server(
        vec![b"HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"],
        Then::Hold,
    )
    .await;
    let mut request = Request::new(RequestBody::full(Bytes::from(vec![b'x'; 32 << 20])));
    *request.method_mut() = Method::POST;
    let answer = tokio::time::timeout(
        Duration::from_secs(5),
        send(connect(addr).await, request, None),
    );
    let mut response = answer.await.expect("answered in time").unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // Neither side lets the connection go on.
    assert!(response.body_mut().reusable_conn().is_none());
}

#[tokio::test]
async fn a_close_before_any_byte_is_connection_terminated_and_the_request_counts_as_sent() {
    let addr = server(vec![b""], Then::Close).await;
    let failed = no_head(send(connect(addr).await, get("/"), None).await);
    assert_eq!(failed.failure.kind, FailureKind::ConnectionTerminated);
    assert!(
        failed
            .failure
            .details
            .contains("before sending any response byte"),
        "{}",
        failed.failure.details
    );
    assert!(failed.unsent.is_none(), "the request was written");
}

#[tokio::test]
async fn a_broken_head_and_an_oversized_one_are_classified() {
    let addr = server(vec![b"HTTP/1.1 2x0 OK\r\n\r\n"], Then::Close).await;
    let failed = no_head(send(connect(addr).await, get("/"), None).await);
    assert_eq!(failed.failure.kind, FailureKind::HttpProtocolError);

    let big: &'static [u8] = Box::leak(
        format!("HTTP/1.1 200 OK\r\nX-Big: {}\r\n\r\n", "a".repeat(10_000))
            .into_bytes()
            .into_boxed_slice(),
    );
    let addr = server(vec![big], Then::Drain).await;
    let failed = no_head(send(connect(addr).await, get("/"), None).await);
    assert_eq!(
        failed.failure.kind,
        FailureKind::HttpResponseHeaderSectionSize
    );

    let addr = server(
        vec![b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"],
        Then::Close,
    )
    .await;
    let mut response = send(connect(addr).await, get("/"), None).await.unwrap();
    let mut error = None;
    while let Some(frame) = response.body_mut().frame().await {
        if let Err(failure) = frame {
            error = Some(failure);
        }
    }
    assert_eq!(
        error.map(|f| f.kind),
        Some(FailureKind::HttpResponseIncomplete)
    );
}

#[tokio::test]
async fn an_idle_connection_the_server_closed_is_not_usable() {
    let addr = server(
        vec![b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"],
        Then::Close,
    )
    .await;
    let mut response = send(connect(addr).await, get("/"), None).await.unwrap();
    let mut conn = response.body_mut().reusable_conn().expect("reusable");
    // The server closes after its reply; once the close reached the socket, the connection
    // must not be offered again.
    let mut usable = true;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        usable = conn.is_idle_usable();
        if !usable {
            break;
        }
    }
    assert!(!usable, "a closed connection was still usable");
}

/// The check asks the kernel, not the event loop: a close that arrived while the runtime had
/// no chance to poll for events (the response's last read came up short and cleared the
/// socket's readiness) is still seen.
#[test]
fn a_close_the_event_loop_has_not_seen_makes_the_connection_unusable() {
    use std::io::{Read as _, Write as _};
    // A server on a thread of its own, which closes a while after its reply.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut seen = Vec::new();
        while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&chunk[..n]),
            }
        }
        stream
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            .unwrap();
        std::thread::sleep(Duration::from_millis(100));
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut response = send(connect(addr).await, get("/"), None).await.unwrap();
        while let Some(frame) = response.body_mut().frame().await {
            frame.unwrap();
        }
        let mut conn = response.body_mut().reusable_conn().expect("reusable");
        // Blocks the runtime's only thread while the server closes: no event is polled.
        std::thread::sleep(Duration::from_millis(400));
        assert!(
            !conn.is_idle_usable(),
            "the server's close was missed by the idle check"
        );
    });
}
