//! `soak --mode backend`: one upstream server of the soak pool, HTTP/1.1 keep-alive, one thread
//! per connection. Every response carries `X-Backend: <listen address>`.
//!
//! - `GET /health`: `200 ok`.
//! - `GET /get?size=N[&delay=MS]`: `200` with N bytes of the body pattern, after MS ms.
//! - `POST /upload[?delay=MS]`: reads the body (`Content-Length` or chunked), checks every byte
//!   against the pattern and answers `200 ok N` (N bytes received), or `422 corrupt at byte I`.
//! - `GET /ws` with `Upgrade: websocket`: `101`, then echoes every data frame back, answers
//!   pings, and a close with a close.

use std::io::{self, ErrorKind, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use gatehouse_bench::{content_length, fail, has_token, header_value};

use crate::PROGRAM;
use crate::wire::{
    Conn, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, PatternCheck, read_frame, write_frame,
    write_pattern, ws_accept,
};

pub(crate) fn run(listen: &str) {
    // std sets SO_REUSEADDR, so a restarted backend binds its port again at once.
    let listener = TcpListener::bind(listen)
        .unwrap_or_else(|e| fail(PROGRAM, &format!("cannot listen on {listen}: {e}")));
    let name: &'static str = Box::leak(listen.to_owned().into_boxed_str());
    for stream in listener.incoming() {
        match stream {
            Ok(stream) => {
                let spawned = std::thread::Builder::new()
                    .stack_size(256 * 1024)
                    .spawn(move || {
                        if let Err(e) = serve(stream, name) {
                            // The proxy closing an idle pooled connection is routine; anything
                            // else is worth a line in the backend's log.
                            if !matches!(
                                e.kind(),
                                ErrorKind::UnexpectedEof
                                    | ErrorKind::ConnectionReset
                                    | ErrorKind::BrokenPipe
                            ) {
                                eprintln!("{PROGRAM} backend {name}: {e}");
                            }
                        }
                    });
                if let Err(e) = spawned {
                    eprintln!("{PROGRAM} backend {name}: cannot start a thread: {e}");
                }
            }
            Err(e) => {
                eprintln!("{PROGRAM} backend {name}: accept: {e}");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// The value of query parameter `name` in a request target.
pub(crate) fn query_param<'a>(target: &'a str, name: &str) -> Option<&'a str> {
    let query = target.split_once('?')?.1;
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
}

fn serve(stream: TcpStream, name: &str) -> io::Result<()> {
    let mut conn = Conn::new(stream);
    while let Some(head) = conn.read_head()? {
        let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
        let line = String::from_utf8_lossy(line).into_owned();
        let mut parts = line.split(' ');
        let method = parts.next().unwrap_or_default().to_owned();
        let target = parts.next().unwrap_or("/").to_owned();
        let path = target.split('?').next().unwrap_or_default();

        if header_value(&head, "upgrade").is_some_and(|v| has_token(v, "websocket")) {
            return websocket(conn, &head, name);
        }

        let mut check = PatternCheck::default();
        let chunked =
            header_value(&head, "transfer-encoding").is_some_and(|v| has_token(v, "chunked"));
        if chunked {
            conn.read_chunked(256 * 1024, &mut |b| check.feed(b))?;
        } else if let Some(n) = content_length(&head) {
            conn.read_body(n as u64, 256 * 1024, &mut |b| check.feed(b))?;
        }
        if let Some(ms) = query_param(&target, "delay").and_then(|v| v.parse().ok()) {
            std::thread::sleep(Duration::from_millis(ms));
        }
        let close = header_value(&head, "connection").is_some_and(|v| has_token(v, "close"));
        let (status, body, size): (&str, String, u64) = match (method.as_str(), path) {
            ("GET", "/health") => ("200 OK", "ok\n".into(), 0),
            ("GET", "/get") => {
                let size = query_param(&target, "size")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                ("200 OK", String::new(), size)
            }
            ("POST", "/upload") => match check.bad_at {
                None => ("200 OK", format!("ok {}\n", check.len), 0),
                Some(at) => (
                    "422 Unprocessable Content",
                    format!("corrupt at byte {at} of {}\n", check.len),
                    0,
                ),
            },
            _ => ("404 Not Found", "no such path\n".into(), 0),
        };
        let length = if body.is_empty() {
            size
        } else {
            body.len() as u64
        };
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/octet-stream\r\nContent-Length: \
             {length}\r\nCache-Control: no-store\r\nX-Backend: {name}\r\n{}\r\n{body}",
            if close { "Connection: close\r\n" } else { "" },
        );
        if size == 0 {
            conn.stream.write_all(head.as_bytes())?;
        } else {
            conn.stream.write_all(head.as_bytes())?;
            write_pattern(&mut conn.stream, size, 1 << 20)?;
        }
        if close {
            return Ok(());
        }
    }
    Ok(())
}

fn websocket(mut conn: Conn, head: &[u8], name: &str) -> io::Result<()> {
    let key = header_value(head, "sec-websocket-key").unwrap_or_default();
    let accept = ws_accept(&String::from_utf8_lossy(key));
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\nX-Backend: {name}\r\n\r\n"
    );
    conn.stream.write_all(response.as_bytes())?;
    loop {
        let frame = read_frame(&mut conn)?;
        match frame.opcode {
            OP_TEXT | OP_BINARY | 0 => {
                write_frame(&mut conn.stream, frame.opcode, &frame.payload, None)?
            }
            OP_PING => write_frame(&mut conn.stream, OP_PONG, &frame.payload, None)?,
            OP_CLOSE => {
                write_frame(&mut conn.stream, OP_CLOSE, &frame.payload, None)?;
                let _ = conn.stream.shutdown(std::net::Shutdown::Write);
                return Ok(());
            }
            _ => {}
        }
        let _ = frame.fin;
    }
}
