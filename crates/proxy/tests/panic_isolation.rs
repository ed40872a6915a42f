//! A panic while handling one request is answered 500 `proxy_internal_error` and touches no
//! other connection. Runs gatehouse in-process: the panic is triggered through the
//! `test-hooks` feature (a request header), which the shipped binary does not have.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// An upstream that answers every request on a connection with `200 ok`.
async fn ok_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut pending = Vec::new();
                loop {
                    let Ok(n) = stream.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    pending.extend_from_slice(&buf[..n]);
                    while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                        pending.drain(..end + 4);
                        if stream
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                }
            });
        }
    });
    addr
}

/// Sends one request on `stream` and reads one response with a Content-Length body.
async fn exchange(stream: &mut TcpStream, extra_header: &str) -> (u16, String, String) {
    let request =
        format!("GET / HTTP/1.1\r\nhost: test\r\naccept: application/json\r\n{extra_header}\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(
            n > 0,
            "connection closed early: {}",
            String::from_utf8_lossy(&response)
        );
        response.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&response).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap();
            if body.len() >= length {
                let status = head[9..12].parse().unwrap();
                return (status, head.to_owned(), body.to_owned());
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panic_is_answered_500_and_other_connections_keep_working() {
    let upstream = ok_upstream().await;
    let toml = format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\naccess_log = false\n[robots]\nguard = false\n[[route]]\nupstream = \"app\"\n[upstream.app]\nservers = [\"{upstream}\"]\n"
    );
    let config = gatehouse_config::parse("test.toml", &toml).unwrap().config;
    let running = gatehouse_proxy::Running::start(config).await.unwrap();
    let addr = running.listen[0];

    let mut bystander = TcpStream::connect(addr).await.unwrap();
    assert_eq!(exchange(&mut bystander, "").await.0, 200);

    let mut victim = TcpStream::connect(addr).await.unwrap();
    let (status, head, body) = exchange(&mut victim, "x-gatehouse-test-panic: 1\r\n").await;
    assert_eq!(status, 500);
    assert!(
        head.to_ascii_lowercase()
            .contains("proxy-status: gatehouse;error=proxy_internal_error"),
        "{head}"
    );
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["error"], "proxy_internal_error");

    // The other keep-alive connection is untouched, and so is the panicking one.
    assert_eq!(exchange(&mut bystander, "").await.0, 200);
    assert_eq!(exchange(&mut victim, "").await.0, 200);
    running.shutdown().await;
}
