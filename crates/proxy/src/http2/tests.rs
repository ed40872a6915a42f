//! The HTTP/2 engine against a real HTTP/2 client (the `h2` crate) over loopback: response
//! heads, bodies and their failures, client resets, flow control on uploads, interim
//! responses, graceful shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, oneshot};

use super::{Connection, Handler, RequestBody, Settings};

type TestBody = BoxBody<Bytes, std::io::Error>;
type Answer = Pin<Box<dyn Future<Output = Response<TestBody>> + Send>>;

/// A handler made of a closure.
struct Answering<F>(F);

impl<F> Handler for Answering<F>
where
    F: Fn(Request<RequestBody>) -> Answer + Send + Sync + Unpin + 'static,
{
    type RequestBody = RequestBody;
    type Body = TestBody;

    fn call(
        &self,
        request: Request<RequestBody>,
    ) -> impl Future<Output = Response<TestBody>> + Send + 'static {
        (self.0)(request)
    }
}

fn full(text: &'static str) -> TestBody {
    Full::new(Bytes::from_static(text.as_bytes()))
        .map_err(|never: Infallible| match never {})
        .boxed()
}

const SETTINGS: Settings = Settings {
    max_concurrent_streams: 16,
    stream_window: 65_535,
    connection_window: 65_535,
    max_header_list_size: 16 * 1024,
    max_pending_accept_reset_streams: 20,
    max_local_error_reset_streams: 1024,
    stream_write_timeout: Some(Duration::from_secs(60)),
};

/// Serves one connection with `answer`; the sender asks for a graceful shutdown; the receiver
/// hears how the connection ended.
async fn serve<F>(
    answer: F,
) -> (
    SocketAddr,
    oneshot::Sender<()>,
    oneshot::Receiver<Result<(), h2::Error>>,
)
where
    F: Fn(Request<RequestBody>) -> Answer + Send + Sync + Unpin + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel();
    let (ended, end) = oneshot::channel();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        stream.set_nodelay(true).unwrap();
        let mut conn = std::pin::pin!(Connection::new(stream, Answering(answer), SETTINGS));
        tokio::select! {
            result = conn.as_mut() => {
                let _ = ended.send(result);
                return;
            }
            _ = stopped => conn.as_mut().graceful_shutdown(),
        }
        let _ = ended.send(conn.await);
    });
    (addr, stop, end)
}

async fn client(addr: SocketAddr) -> h2::client::SendRequest<Bytes> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let (client, conn) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

fn get(path: &str) -> Request<()> {
    Request::get(format!("http://test{path}")).body(()).unwrap()
}

async fn read_body(body: &mut h2::RecvStream) -> Result<Vec<u8>, h2::Error> {
    let mut out = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        let _ = body.flow_control().release_capacity(chunk.len());
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

#[tokio::test]
async fn a_response_gets_date_and_length_and_loses_connection_fields() {
    let (addr, _stop, _end) = serve(|_| {
        Box::pin(async {
            let mut response = Response::new(full("hello"));
            let headers = response.headers_mut();
            for (name, value) in [
                ("connection", "x-hop"),
                ("x-hop", "secret"),
                ("keep-alive", "timeout=5"),
                ("transfer-encoding", "chunked"),
                ("x-kept", "yes"),
            ] {
                headers.insert(name, HeaderValue::from_static(value));
            }
            response
        })
    })
    .await;
    let mut client = client(addr).await;
    let (response, _) = client.send_request(get("/"), true).unwrap();
    let response = response.await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers();
    assert_eq!(headers["content-length"], "5");
    assert_eq!(headers["x-kept"], "yes");
    assert!(headers.contains_key("date"), "{headers:?}");
    for gone in ["connection", "x-hop", "keep-alive", "transfer-encoding"] {
        assert!(!headers.contains_key(gone), "{gone}: {headers:?}");
    }
    let mut body = response.into_body();
    assert_eq!(read_body(&mut body).await.unwrap(), b"hello");
}

#[tokio::test]
async fn a_body_failing_after_the_head_resets_the_stream_with_internal_error() {
    let (addr, _stop, _end) = serve(|_| {
        Box::pin(async {
            // The failure comes a moment after the first frame: a reset while the head is
            // still queued would take the queued head with it (h2 drops a reset stream's
            // frames), and this test is about a body cut short.
            let frames = futures_util::stream::unfold(0, |step| async move {
                match step {
                    0 => Some((Ok(Frame::data(Bytes::from_static(b"part"))), 1)),
                    1 => {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        Some((Err(std::io::Error::other("upstream went away")), 2))
                    }
                    _ => None,
                }
            });
            Response::new(BodyExt::boxed(StreamBody::new(frames)))
        })
    })
    .await;
    let mut client = client(addr).await;
    let (response, _) = client.send_request(get("/"), true).unwrap();
    let response = response.await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    assert_eq!(body.data().await.unwrap().unwrap(), "part");
    let err = read_body(&mut body).await.unwrap_err();
    assert_eq!(err.reason(), Some(h2::Reason::INTERNAL_ERROR), "{err}");
}

#[tokio::test]
async fn a_client_reset_cancels_the_request_in_progress() {
    let (dropped_tx, dropped) = oneshot::channel::<()>();
    let dropped_tx = Arc::new(std::sync::Mutex::new(Some(dropped_tx)));
    let (addr, _stop, _end) = serve(move |_| {
        // Dropped with the handler's future: that is what tells the test it was cancelled.
        let guard = dropped_tx.lock().unwrap().take();
        Box::pin(async move {
            let _guard = guard;
            std::future::pending::<()>().await;
            Response::new(full("never"))
        })
    })
    .await;
    let mut client = client(addr).await;
    let (_response, mut send) = client.send_request(get("/"), false).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    send.send_reset(h2::Reason::CANCEL);
    let cancelled = tokio::time::timeout(Duration::from_secs(5), dropped).await;
    assert!(
        matches!(cancelled, Ok(Err(_))),
        "the handler's future was not dropped"
    );
}

#[tokio::test]
async fn an_upload_larger_than_both_windows_arrives_whole() {
    let (addr, _stop, _end) = serve(|request: Request<RequestBody>| {
        Box::pin(async move {
            let body = request.into_body().collect().await.unwrap().to_bytes();
            let text = format!("{} {}", body.len(), body.iter().all(|b| *b == b'x'));
            Response::new(
                Full::new(Bytes::from(text))
                    .map_err(|never: Infallible| match never {})
                    .boxed(),
            )
        })
    })
    .await;
    let mut client = client(addr).await;
    let request = Request::post("http://test/up")
        .header("content-length", "1048576")
        .body(())
        .unwrap();
    let (response, mut send) = client.send_request(request, false).unwrap();
    let chunk = Bytes::from(vec![b'x'; 16 * 1024]);
    for i in 0..64 {
        send.reserve_capacity(chunk.len());
        while send.capacity() < chunk.len() {
            std::future::poll_fn(|cx| send.poll_capacity(cx))
                .await
                .unwrap()
                .unwrap();
        }
        send.send_data(chunk.clone(), i == 63).unwrap();
    }
    let response = tokio::time::timeout(Duration::from_secs(10), response)
        .await
        .expect("the response")
        .unwrap();
    let mut body = response.into_body();
    assert_eq!(read_body(&mut body).await.unwrap(), b"1048576 true");
}

#[tokio::test]
async fn interim_responses_go_out_before_the_final_one_and_not_after() {
    let (addr, _stop, _end) = serve(|request: Request<RequestBody>| {
        let interim = request.body().interim();
        Box::pin(async move {
            let mut link = http::HeaderMap::new();
            link.insert("link", HeaderValue::from_static("</a.css>; rel=preload"));
            interim.send(StatusCode::from_u16(103).unwrap(), &link);
            // Not relayed: 100 is each hop's own business, and a 2xx is not interim.
            interim.send(StatusCode::CONTINUE, &http::HeaderMap::new());
            interim.send(StatusCode::OK, &http::HeaderMap::new());
            let response = Response::new(full("done"));
            let late = interim.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                late.send(StatusCode::from_u16(103).unwrap(), &http::HeaderMap::new());
            });
            response
        })
    })
    .await;
    let mut client = client(addr).await;
    let (mut response, _) = client.send_request(get("/"), true).unwrap();
    let hint = std::future::poll_fn(|cx| response.poll_informational(cx))
        .await
        .expect("an informational response")
        .unwrap();
    assert_eq!(hint.status(), 103);
    assert_eq!(hint.headers()["link"], "</a.css>; rel=preload");
    let response = response.await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    assert_eq!(read_body(&mut body).await.unwrap(), b"done");
}

#[tokio::test]
async fn graceful_shutdown_lets_the_open_stream_finish_then_ends() {
    let release = Arc::new(Notify::new());
    let held = Arc::clone(&release);
    let (addr, stop, end) = serve(move |_| {
        let held = Arc::clone(&held);
        Box::pin(async move {
            held.notified().await;
            Response::new(full("finished"))
        })
    })
    .await;
    let mut client = client(addr).await;
    let (response, _) = client.send_request(get("/slow"), true).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    release.notify_one();
    let response = tokio::time::timeout(Duration::from_secs(5), response)
        .await
        .expect("the open stream's response")
        .unwrap();
    let mut body = response.into_body();
    assert_eq!(read_body(&mut body).await.unwrap(), b"finished");
    let ended = tokio::time::timeout(Duration::from_secs(5), end)
        .await
        .expect("the connection ends once its stream is done")
        .unwrap();
    assert!(ended.is_ok(), "{ended:?}");
}

#[tokio::test]
async fn expect_continue_gets_its_100_when_the_body_is_first_asked_for() {
    let (addr, _stop, _end) = serve(|request: Request<RequestBody>| {
        Box::pin(async move {
            let body = request.into_body().collect().await.unwrap().to_bytes();
            Response::new(
                Full::new(body)
                    .map_err(|never: Infallible| match never {})
                    .boxed(),
            )
        })
    })
    .await;
    let mut client = client(addr).await;
    let request = Request::post("http://test/up")
        .header("expect", "100-continue")
        .body(())
        .unwrap();
    let (mut response, mut send) = client.send_request(request, false).unwrap();
    let continued = tokio::time::timeout(
        Duration::from_secs(5),
        std::future::poll_fn(|cx| response.poll_informational(cx)),
    )
    .await
    .expect("100 Continue before the body is sent")
    .expect("an informational response")
    .unwrap();
    assert_eq!(continued.status(), StatusCode::CONTINUE);
    send.send_data(Bytes::from_static(b"the body"), true)
        .unwrap();
    let response = response.await.unwrap();
    let mut body = response.into_body();
    assert_eq!(read_body(&mut body).await.unwrap(), b"the body");
}
