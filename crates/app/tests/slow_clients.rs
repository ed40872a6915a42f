//! Slow drips: a request body trickled below `min_request_body_rate` gets 408 and its
//! connection closed; a client reading a response below `min_response_rate` is disconnected.
//! Both only after `min_rate_grace`, and both logged with their own reason. A client that takes
//! nothing for `client_write_timeout` is disconnected, rate or not.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use gatehouse_testkit::{Config, Gatehouse, Reply, Upstream};

fn start(config: &Config) -> Gatehouse {
    Gatehouse::start(Path::new(env!("CARGO_BIN_EXE_gatehouse")), &config.toml())
}

fn paced(upstream: &Upstream) -> Config {
    Config::proxy_to([upstream.addr()])
        .server("min_request_body_rate", 100)
        // High enough that a client taking nothing is below it once the bytes the socket
        // buffers took at once (a few MB over loopback) no longer cover the wait.
        .server("min_response_rate", 10_000_000)
        .server("min_rate_grace", "1s")
}

/// Sends a POST head announcing `len` body bytes, then `chunk` bytes every `every` until the
/// body is sent or the connection ends; returns what came back.
fn trickle(gh: &Gatehouse, len: usize, chunk: usize, every: Duration) -> (String, Duration) {
    let mut stream = TcpStream::connect(gh.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let head = format!(
        "POST /upload HTTP/1.1\r\nHost: pace.test\r\nConnection: close\r\nContent-Length: {len}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).unwrap();
    let started = Instant::now();
    let mut sent = 0;
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    while started.elapsed() < Duration::from_secs(20) {
        if sent < len {
            let n = chunk.min(len - sent);
            if stream.write_all(&vec![b'x'; n]).is_err() {
                break;
            }
            sent += n;
        }
        let wait_until = Instant::now() + every;
        while Instant::now() < wait_until {
            match stream.read(&mut buf) {
                Ok(0) => return (String::from_utf8_lossy(&response).into(), started.elapsed()),
                Ok(n) => response.extend_from_slice(&buf[..n]),
                Err(_) => {}
            }
        }
    }
    (String::from_utf8_lossy(&response).into(), started.elapsed())
}

#[test]
fn a_request_body_trickled_below_the_rate_gets_408_and_the_connection_closes() {
    let upstream = Upstream::hello();
    let gh = start(&paced(&upstream));
    // 5 bytes every 250 ms: 20 B/s against a minimum of 100.
    let (response, took) = trickle(&gh, 10_000, 5, Duration::from_millis(250));
    assert!(response.starts_with("HTTP/1.1 408 "), "{response}");
    assert!(
        response.to_ascii_lowercase().contains("connection: close"),
        "{response}"
    );
    assert!(
        took < Duration::from_secs(5),
        "stopped soon after the grace: {took:?}"
    );
    let warning = gh.wait_for_log(
        |l| l["target"] == "gatehouse::failure" && l["kind"] == "http_request_error",
        Duration::from_secs(5),
    );
    let message = warning["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("below min_request_body_rate (100 B/s)"),
        "{warning}"
    );
    assert!(
        upstream.requests().iter().all(|r| !r.complete),
        "the upstream never got a complete request"
    );
}

#[test]
fn a_request_body_above_the_rate_goes_through() {
    let upstream = Upstream::hello();
    let gh = start(&paced(&upstream));
    // 50 bytes every 200 ms: 250 B/s, for 1.6 s (past the grace).
    let (response, _) = trickle(&gh, 400, 50, Duration::from_millis(200));
    assert!(response.starts_with("HTTP/1.1 200 "), "{response}");
    let got = upstream.requests();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body.len(), 400);
}

/// Reads what is left until the connection ends (or stays silent for 10 s); the byte count.
fn drain(stream: &mut TcpStream) -> usize {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut received = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return received,
            Ok(n) => received += n,
        }
    }
}

/// The response was cut short, with a log line of `reason` saying `why`, and the access record
/// of `request_id` says the client went away.
fn assert_cut_off(
    gh: &Gatehouse,
    (received, size): (usize, usize),
    reason: &str,
    why: &str,
    request_id: &str,
) {
    assert!(received < size, "the whole body arrived: {received} bytes");
    let line = gh.wait_for_log(
        |l| l["fields"]["reason"] == reason || l["reason"] == reason,
        Duration::from_secs(5),
    );
    assert!(line.to_string().contains(why), "{line}");
    let record = gh.access_log(request_id);
    assert_eq!(record["client_aborted"], true, "{record}");
}

#[test]
fn a_client_reading_the_response_too_slowly_is_disconnected() {
    // More than the socket buffers on both sides hold, so writing it has to wait for the client.
    let size = 48 << 20;
    let upstream = Upstream::serve(Reply::ok(vec![b'y'; size]));
    let gh = start(&paced(&upstream));
    let mut stream = TcpStream::connect(gh.addr()).unwrap();
    stream
        .write_all(b"GET /big HTTP/1.1\r\nHost: pace.test\r\nX-Request-Id: slow-reader\r\n\r\n")
        .unwrap();
    // Read nothing for a while, then drain what is left: the connection must have been cut.
    std::thread::sleep(Duration::from_secs(4));
    let received = drain(&mut stream);
    assert_cut_off(
        &gh,
        (received, size),
        "slow_reader",
        "below min_response_rate (10000000 B/s)",
        "slow-reader",
    );
}

#[test]
fn a_tls_client_reading_the_response_too_slowly_is_disconnected() {
    use gatehouse_testkit::https::{Https, TlsListener, tls_listeners};
    use gatehouse_testkit::tls::TestCa;

    let size = 48 << 20;
    let upstream = Upstream::serve(Reply::ok(vec![b'y'; size]));
    let ca = TestCa::new("pace test CA");
    let cert = ca.leaf(&["pace.test"]);
    let (cert_pem, key_pem) = cert.write_pem();
    let listener = TlsListener::new(["127.0.0.1:0"]).certificate(cert_pem.path(), key_pem.path());
    let gh = start(&paced(&upstream).server("tls", tls_listeners([listener])));
    let mut conn = Https::new(&ca.cert_der(), "pace.test")
        .alpn(&["http/1.1"])
        .connect(gh.https_addr())
        .unwrap();
    conn.write_raw(
        b"GET /big HTTP/1.1\r\nHost: pace.test\r\nX-Request-Id: slow-tls-reader\r\n\r\n",
    )
    .unwrap();
    std::thread::sleep(Duration::from_secs(4));
    let received = conn.drain(Duration::from_secs(10));
    assert_cut_off(
        &gh,
        (received, size),
        "slow_reader",
        "below min_response_rate (10000000 B/s)",
        "slow-tls-reader",
    );
}

#[test]
fn a_client_that_takes_nothing_for_client_write_timeout_is_disconnected() {
    // No minimum rate: only the stall timeout (nginx's send_timeout) applies.
    let size = 48 << 20;
    let upstream = Upstream::serve(Reply::ok(vec![b'y'; size]));
    let gh = start(&Config::proxy_to([upstream.addr()]).server("client_write_timeout", "2s"));
    let mut stream = TcpStream::connect(gh.addr()).unwrap();
    stream
        .write_all(b"GET /big HTTP/1.1\r\nHost: pace.test\r\nX-Request-Id: stalled-reader\r\n\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_secs(5));
    let received = drain(&mut stream);
    assert_cut_off(
        &gh,
        (received, size),
        "write_timeout",
        "client took no byte of the response for 2s (client_write_timeout)",
        "stalled-reader",
    );
}

#[test]
fn a_client_reading_in_bursts_above_the_rate_is_never_cut_off() {
    // The defaults (240 B/s after 5 s). TCP shows a slowly reading client's progress in bursts
    // (its receive window reopens in steps), with silences longer than the grace; a client
    // reading 32 KB/s is far above the rate and must keep its response.
    let size = 48 << 20;
    let upstream = Upstream::serve(Reply::ok(vec![b'y'; size]));
    let gh = start(
        &Config::proxy_to([upstream.addr()])
            .server("min_response_rate", 240)
            .server("min_rate_grace", "5s"),
    );
    let mut stream = TcpStream::connect(gh.addr()).unwrap();
    stream
        .write_all(b"GET /big HTTP/1.1\r\nHost: pace.test\r\nX-Request-Id: bursty-reader\r\n\r\n")
        .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let started = Instant::now();
    let mut received = 0usize;
    let mut buf = vec![0u8; 32 * 1024];
    while started.elapsed() < Duration::from_secs(14) {
        // 32 KiB a second, read at once then nothing.
        let mut second = 0;
        while second < buf.len() {
            match stream.read(&mut buf[second..]) {
                Ok(0) => panic!("cut off after {received} bytes, {:?}", started.elapsed()),
                Ok(n) => second += n,
                Err(err) => panic!("read failed after {received} bytes: {err}"),
            }
        }
        received += second;
        std::thread::sleep(Duration::from_secs(1));
    }
    assert!(
        !gh.logs()
            .iter()
            .any(|l| l.to_string().contains("slow_reader")),
        "a client far above the rate was taken for a slow reader"
    );
    assert!(received >= 12 * 32 * 1024, "{received}");
}
