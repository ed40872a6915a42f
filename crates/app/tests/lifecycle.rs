//! The process as an operator meets it: startup errors, graceful shutdown, and bodies far
//! larger than memory streamed through without buffering.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::Duration;

use gatehouse_testkit::{Config, Gatehouse};

const BIN: &str = env!("CARGO_BIN_EXE_gatehouse");

fn write_config(name: &str, body: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!(
        "gatehouse-lifecycle-{}-{name}.toml",
        std::process::id()
    ));
    std::fs::write(&path, body).unwrap();
    path
}

fn bin() -> &'static Path {
    Path::new(BIN)
}

/// A config with generous body timeouts (the streaming test moves 2 GiB).
fn config(upstream: SocketAddr) -> Config {
    Config::proxy_to([upstream])
        .upstream_setting("app", "read_timeout", "60s")
        .upstream_setting("app", "send_timeout", "60s")
}

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Reads an HTTP/1.1 message head from `stream`; returns it and any body bytes read past it.
fn read_head(stream: &mut TcpStream) -> (String, Vec<u8>) {
    let mut data = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "peer closed before the end of the head");
        data.extend_from_slice(&buf[..n]);
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = data.split_off(end + 4);
            return (String::from_utf8_lossy(&data).to_string(), rest);
        }
    }
}

/// Writes `len` copies of `byte` in 64 KiB chunks.
fn write_bulk(stream: &mut TcpStream, len: u64, byte: u8) {
    let chunk = vec![byte; 1 << 16];
    let mut sent = 0;
    while sent < len {
        stream.write_all(&chunk).unwrap();
        sent += chunk.len() as u64;
    }
}

fn content_length(head: &str) -> Option<u64> {
    head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse().ok())?
    })
}

#[test]
fn port_in_use_is_one_clear_line_and_exit_1() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let path = write_config(
        "taken",
        &format!(
            "[server]\nlisten = [\"127.0.0.1:{port}\"]\n[[route]]\nupstream = \"app\"\n[upstream.app]\nservers = [\"127.0.0.1:9\"]\n"
        ),
    );
    let output = Command::new(BIN)
        .args(["run", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{stderr}"
    );
    assert!(stderr.contains("in use"), "{stderr}");
}

#[test]
fn bad_config_refuses_to_start_and_check_agrees() {
    let path = write_config(
        "bad",
        "[server]\nlisten = [\"127.0.0.1:0\"]\nlisten_typo = 1\n",
    );
    let run = Command::new(BIN)
        .args(["run", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(1));
    let check = Command::new(BIN)
        .args(["check", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert!(
        stderr.contains(&format!(
            "{}:3:1: error: server.listen_typo",
            path.display()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("route"),
        "every problem at once, the missing routes too: {stderr}"
    );

    let good = Command::new(BIN).arg("check").output().unwrap();
    assert_eq!(good.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&good.stdout).starts_with("ok: <embedded default> is valid"));
}

#[test]
fn sigterm_lets_the_request_in_flight_finish_then_exits_0() {
    let upstream = TcpListener::bind("127.0.0.1:0").unwrap();
    let upstream_addr = upstream.local_addr().unwrap();
    thread::spawn(move || {
        for stream in upstream.incoming() {
            let mut stream = stream.unwrap();
            thread::spawn(move || {
                let _ = read_head(&mut stream);
                thread::sleep(Duration::from_millis(800));
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nslow");
            });
        }
    });
    let proxy = Gatehouse::start(
        bin(),
        &config(upstream_addr).server("drain_timeout", "10s").toml(),
    );
    let addr = proxy.addr();
    let mut client = TcpStream::connect(addr).unwrap();
    client
        .write_all(b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\n")
        .unwrap();
    thread::sleep(Duration::from_millis(200));
    let stopping = thread::spawn(move || proxy.stop());
    thread::sleep(Duration::from_millis(100));
    assert!(
        TcpStream::connect(addr).is_err(),
        "no new connections after SIGTERM"
    );
    let mut response = String::new();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    client.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    assert!(response.ends_with("slow"), "{response}");
    assert!(stopping.join().unwrap().success());
}

#[test]
fn gigabyte_bodies_stream_both_ways_with_flat_memory() {
    const SIZE: u64 = 1 << 30;
    let upstream = TcpListener::bind("127.0.0.1:0").unwrap();
    let upstream_addr = upstream.local_addr().unwrap();
    // Upstream: POST -> reads the whole body and answers its length; GET -> sends SIZE bytes.
    thread::spawn(move || {
        for stream in upstream.incoming() {
            let mut stream = stream.unwrap();
            thread::spawn(move || {
                loop {
                    let (head, rest) = read_head(&mut stream);
                    if head.starts_with("POST") {
                        let mut received = rest.len() as u64;
                        let expected = content_length(&head).unwrap();
                        let mut buf = vec![0u8; 1 << 16];
                        while received < expected {
                            let n = stream.read(&mut buf).unwrap();
                            assert!(n > 0);
                            received += n as u64;
                        }
                        let body = received.to_string();
                        let reply = format!(
                            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        stream.write_all(reply.as_bytes()).unwrap();
                    } else {
                        stream
                            .write_all(
                                format!("HTTP/1.1 200 OK\r\ncontent-length: {SIZE}\r\n\r\n")
                                    .as_bytes(),
                            )
                            .unwrap();
                        write_bulk(&mut stream, SIZE, b'x');
                    }
                }
            });
        }
    });
    let proxy = Gatehouse::start(
        bin(),
        &config(upstream_addr).server("access_log", false).toml(),
    );

    // Upload 1 GiB.
    let mut client = TcpStream::connect(proxy.addr()).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    client
        .write_all(
            format!("POST /upload HTTP/1.1\r\nhost: x\r\ncontent-length: {SIZE}\r\n\r\n")
                .as_bytes(),
        )
        .unwrap();
    write_bulk(&mut client, SIZE, b'y');
    let (head, mut body) = read_head(&mut client);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let length = usize::try_from(content_length(&head).unwrap()).unwrap();
    while body.len() < length {
        let mut buf = [0u8; 64];
        let n = client.read(&mut buf).unwrap();
        body.extend_from_slice(&buf[..n]);
    }
    assert_eq!(String::from_utf8_lossy(&body), SIZE.to_string());

    // Download 1 GiB on the same connection.
    client
        .write_all(b"GET /download HTTP/1.1\r\nhost: x\r\n\r\n")
        .unwrap();
    let (head, rest) = read_head(&mut client);
    assert_eq!(content_length(&head), Some(SIZE));
    let mut received = rest.len() as u64;
    let mut buf = vec![0u8; 1 << 16];
    while received < SIZE {
        let n = client.read(&mut buf).unwrap();
        assert!(n > 0, "download cut short at {received}");
        received += n as u64;
    }
    assert_eq!(received, SIZE);

    let peak = peak_rss_kib(proxy.pid());
    eprintln!("gatehouse peak RSS after 2 GiB streamed: {peak} KiB");
    assert!(
        peak < 64 * 1024,
        "gatehouse peak RSS {peak} KiB while 2 GiB passed: bodies are being buffered"
    );
}
