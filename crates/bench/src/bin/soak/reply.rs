//! Reading a response in the soak load: to its end, at a given pace, checked against what was
//! expected (status, length, content); and [`Failed`], what went wrong with one exchange.

use std::io::{self, ErrorKind};
use std::time::{Duration, Instant};

use gatehouse_bench::{content_length, has_token, header_value};

use crate::wire::{Conn, PatternCheck, status_of};

/// What went wrong with one exchange.
#[derive(Debug)]
pub(crate) struct Failed {
    pub(crate) result: &'static str,
    pub(crate) status: u16,
    pub(crate) backend: String,
    pub(crate) detail: String,
}

impl Failed {
    pub(crate) fn io(stage: &str, e: &io::Error) -> Self {
        let result = match e.kind() {
            ErrorKind::ConnectionReset => "reset",
            ErrorKind::ConnectionAborted => "aborted",
            ErrorKind::BrokenPipe => "broken_pipe",
            ErrorKind::UnexpectedEof => "closed",
            ErrorKind::WouldBlock | ErrorKind::TimedOut => "timeout",
            ErrorKind::ConnectionRefused => "refused",
            ErrorKind::InvalidData => "bad_response",
            _ => "io_error",
        };
        Self {
            result,
            status: 0,
            backend: String::new(),
            detail: format!("{stage}: {e}"),
        }
    }
}

/// A response, read to its end.
#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) backend: String,
    pub(crate) proxy_status: String,
    pub(crate) close: bool,
    /// The body: its length and whether it follows the pattern; the first bytes kept as text.
    pub(crate) check: PatternCheck,
    pub(crate) text: String,
}

pub(crate) fn text(value: Option<&[u8]>) -> String {
    value.map_or_else(String::new, |v| String::from_utf8_lossy(v).into_owned())
}

/// Reads one response (head and body). With `rate`, the body is read at about that many bytes
/// a second, in eighths of a second.
pub(crate) fn read_response(
    conn: &mut Conn,
    rate: Option<u64>,
    stage: &str,
) -> Result<Response, Failed> {
    let head = conn
        .read_head()
        .map_err(|e| Failed::io(&format!("{stage}: head"), &e))?
        .ok_or_else(|| {
            Failed::io(
                &format!("{stage}: head"),
                &crate::wire::eof("before a response"),
            )
        })?;
    finish_response(conn, head, rate, stage)
}

pub(crate) fn finish_response(
    conn: &mut Conn,
    head: Vec<u8>,
    rate: Option<u64>,
    stage: &str,
) -> Result<Response, Failed> {
    let status = status_of(&head).ok_or_else(|| Failed {
        result: "bad_response",
        status: 0,
        backend: String::new(),
        detail: format!("{stage}: not an HTTP/1.x response"),
    })?;
    let mut r = Response {
        status,
        backend: text(header_value(&head, "x-backend")),
        proxy_status: text(header_value(&head, "proxy-status")),
        close: header_value(&head, "connection").is_some_and(|v| has_token(v, "close")),
        check: PatternCheck::default(),
        text: String::new(),
    };
    let began = Instant::now();
    let max_read = rate.map_or(256 * 1024, |r| (r / 8).max(1) as usize);
    let mut feed = |b: &[u8]| {
        if r.text.len() < 200 {
            r.text
                .push_str(&String::from_utf8_lossy(&b[..b.len().min(200)]));
        }
        r.check.feed(b);
        if let Some(rate) = rate {
            // Sleep until the bytes read so far are on schedule for `rate`.
            let due = Duration::from_secs_f64(r.check.len as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(began.elapsed()) {
                std::thread::sleep(wait);
            }
        }
    };
    let body = if header_value(&head, "transfer-encoding").is_some_and(|v| has_token(v, "chunked"))
    {
        conn.read_chunked(max_read, &mut feed).map(|_| ())
    } else if let Some(n) = content_length(&head) {
        conn.read_body(n as u64, max_read, &mut feed)
    } else if status == 204 || status == 304 || status == 101 {
        Ok(())
    } else {
        r.close = true;
        conn.read_to_close(max_read, &mut feed).map(|_| ())
    };
    body.map_err(|e| {
        let mut f = Failed::io(&format!("{stage}: body after {} bytes", r.check.len), &e);
        f.status = status;
        f.backend.clone_from(&r.backend);
        f
    })?;
    Ok(r)
}

/// A 200 whose body must be `size` bytes of the pattern.
pub(crate) fn expect_len(r: Response, size: u64) -> Result<Response, Failed> {
    if r.status == 200 && r.check.len != size {
        return Err(Failed {
            result: "bad_body",
            status: r.status,
            backend: r.backend,
            detail: format!("{} bytes instead of {size}", r.check.len),
        });
    }
    Ok(r)
}

/// A 200 whose body must be `want`: the backend's receipt for an upload.
pub(crate) fn expect_text(mut r: Response, want: &str) -> Result<Response, Failed> {
    if r.status == 200 {
        if r.text != want {
            return Err(Failed {
                result: "bad_body",
                status: r.status,
                backend: r.backend,
                detail: format!("receipt {:?} instead of {want:?}", r.text),
            });
        }
        r.check = PatternCheck::default(); // the receipt is text, not the pattern
    }
    Ok(r)
}
