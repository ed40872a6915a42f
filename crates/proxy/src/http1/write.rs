//! Response heads as HTTP/1.1 bytes, and how the body after them is framed (RFC 9112 §6).

use http::header::{self, HeaderMap};
use http::{Method, StatusCode, Version};

use crate::date::with_date;

/// How a response's body goes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// Nothing after the head (HEAD, 1xx, 204, 304).
    None,
    Length(u64),
    Chunked,
    /// An HTTP/1.0 client and a body of unknown length: it ends when the connection closes.
    UntilClose,
}

/// What the framing decision needs to know about the request.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    pub method: &'a Method,
    pub version: Version,
}

/// Chooses the framing: the response's own Content-Length when it has one, else the body's
/// exact length, else chunked (HTTP/1.1) or until-close (HTTP/1.0).
pub fn framing(
    request: RequestFacts<'_>,
    status: StatusCode,
    headers: &HeaderMap,
    exact_length: Option<u64>,
) -> BodyFraming {
    if status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
        || request.method == Method::HEAD
    {
        return BodyFraming::None;
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match (declared, exact_length) {
        (Some(length), _) | (None, Some(length)) => BodyFraming::Length(length),
        (None, None) if request.version == Version::HTTP_10 => BodyFraming::UntilClose,
        (None, None) => BodyFraming::Chunked,
    }
}

/// Writes the status line and the fields. Framing and connection fields are this hop's own:
/// any in `headers` are replaced by what `framing` and `keep_alive` say (a `101` keeps its
/// `Connection: upgrade`; a HEAD or 304 keeps the Content-Length it was given, a 1xx or 204
/// has none).
pub fn encode_head(
    dst: &mut Vec<u8>,
    status: StatusCode,
    headers: &HeaderMap,
    framing: BodyFraming,
    keep_alive: bool,
    client_version: Version,
) {
    dst.extend_from_slice(b"HTTP/1.1 ");
    dst.extend_from_slice(status.as_str().as_bytes());
    dst.push(b' ');
    dst.extend_from_slice(status.canonical_reason().unwrap_or("Unknown").as_bytes());
    dst.extend_from_slice(b"\r\n");
    let switching = status == StatusCode::SWITCHING_PROTOCOLS;
    // A 1xx or 204 never carries Content-Length (RFC 9110 §8.6), whatever the upstream sent.
    let no_length = status.is_informational() || status == StatusCode::NO_CONTENT;
    let mut has_date = false;
    for (name, value) in headers {
        if *name == header::TRANSFER_ENCODING
            || (*name == header::CONTENT_LENGTH && (framing != BodyFraming::None || no_length))
            || (*name == header::CONNECTION && !switching)
        {
            continue;
        }
        has_date |= *name == header::DATE;
        dst.extend_from_slice(name.as_str().as_bytes());
        dst.extend_from_slice(b": ");
        dst.extend_from_slice(value.as_bytes());
        dst.extend_from_slice(b"\r\n");
    }
    match framing {
        BodyFraming::Length(length) => {
            dst.extend_from_slice(b"content-length: ");
            let mut digits = itoa_buf(length);
            dst.extend_from_slice(digits.as_mut());
            dst.extend_from_slice(b"\r\n");
        }
        BodyFraming::Chunked => dst.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        BodyFraming::None | BodyFraming::UntilClose => {}
    }
    if !switching && !status.is_informational() {
        if !keep_alive {
            dst.extend_from_slice(b"connection: close\r\n");
        } else if client_version == Version::HTTP_10 {
            dst.extend_from_slice(b"connection: keep-alive\r\n");
        }
    }
    if !has_date {
        dst.extend_from_slice(b"date: ");
        with_date(|date| dst.extend_from_slice(date));
        dst.extend_from_slice(b"\r\n");
    }
    dst.extend_from_slice(b"\r\n");
}

/// Whether the response asks for its connection to be closed (gatehouse's own error pages do,
/// for failures that leave the client connection unframed).
pub fn asks_close(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .any(|option| option.trim_ascii().eq_ignore_ascii_case(b"close"))
}

/// A chunk-size line: hex length and CRLF.
pub fn chunk_line(length: usize) -> ([u8; 18], usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut line = [0u8; 18];
    let digits = ((usize::BITS - length.leading_zeros()).div_ceil(4) as usize).max(1);
    for (i, slot) in line[..digits].iter_mut().enumerate() {
        *slot = HEX[(length >> (4 * (digits - 1 - i))) & 0xf];
    }
    line[digits] = b'\r';
    line[digits + 1] = b'\n';
    (line, digits + 2)
}

struct Digits {
    buf: [u8; 20],
    start: usize,
}

impl AsMut<[u8]> for Digits {
    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..]
    }
}

fn itoa_buf(mut n: u64) -> Digits {
    let mut buf = [0u8; 20];
    let mut start = buf.len();
    loop {
        start -= 1;
        buf[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    Digits { buf, start }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    const GET11: RequestFacts<'static> = RequestFacts {
        method: &Method::GET,
        version: Version::HTTP_11,
    };

    fn head(
        status: StatusCode,
        headers: &HeaderMap,
        framing: BodyFraming,
        keep_alive: bool,
        version: Version,
    ) -> String {
        let mut out = Vec::new();
        encode_head(&mut out, status, headers, framing, keep_alive, version);
        String::from_utf8(out).unwrap_or_default()
    }

    #[test]
    fn framing_choices() {
        let mut with_length = HeaderMap::new();
        with_length.insert(header::CONTENT_LENGTH, HeaderValue::from_static("12"));
        let none = HeaderMap::new();
        assert_eq!(
            framing(GET11, StatusCode::OK, &with_length, None),
            BodyFraming::Length(12)
        );
        assert_eq!(
            framing(GET11, StatusCode::OK, &none, Some(3)),
            BodyFraming::Length(3)
        );
        assert_eq!(
            framing(GET11, StatusCode::OK, &none, None),
            BodyFraming::Chunked
        );
        let get10 = RequestFacts {
            version: Version::HTTP_10,
            ..GET11
        };
        assert_eq!(
            framing(get10, StatusCode::OK, &none, None),
            BodyFraming::UntilClose
        );
        let head_req = RequestFacts {
            method: &Method::HEAD,
            ..GET11
        };
        assert_eq!(
            framing(head_req, StatusCode::OK, &with_length, None),
            BodyFraming::None
        );
        for status in [
            StatusCode::NO_CONTENT,
            StatusCode::NOT_MODIFIED,
            StatusCode::SWITCHING_PROTOCOLS,
        ] {
            assert_eq!(
                framing(GET11, status, &with_length, Some(1)),
                BodyFraming::None
            );
        }
    }

    #[test]
    fn heads_carry_this_hops_framing_and_connection() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("99"));
        headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        headers.insert("x-a", HeaderValue::from_static("b"));
        let text = head(
            StatusCode::OK,
            &headers,
            BodyFraming::Length(5),
            true,
            Version::HTTP_11,
        );
        assert!(
            text.starts_with("HTTP/1.1 200 OK\r\nx-a: b\r\ncontent-length: 5\r\ndate: "),
            "{text}"
        );
        assert!(text.ends_with(" GMT\r\n\r\n"), "{text}");
        let text = head(
            StatusCode::BAD_GATEWAY,
            &HeaderMap::new(),
            BodyFraming::Chunked,
            false,
            Version::HTTP_11,
        );
        assert!(
            text.contains("transfer-encoding: chunked\r\nconnection: close\r\n"),
            "{text}"
        );
        let text = head(
            StatusCode::OK,
            &HeaderMap::new(),
            BodyFraming::Length(0),
            true,
            Version::HTTP_10,
        );
        assert!(
            text.contains("content-length: 0\r\nconnection: keep-alive\r\n"),
            "{text}"
        );
    }

    #[test]
    fn head_and_upgrade_keep_their_fields() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("99"));
        let text = head(
            StatusCode::OK,
            &headers,
            BodyFraming::None,
            true,
            Version::HTTP_11,
        );
        assert!(text.contains("content-length: 99\r\n"), "{text}");
        // RFC 9110 §8.6: never on a 1xx or 204.
        for status in [StatusCode::NO_CONTENT, StatusCode::EARLY_HINTS] {
            let text = head(status, &headers, BodyFraming::None, true, Version::HTTP_11);
            assert!(!text.contains("content-length"), "{text}");
        }
        let mut headers = HeaderMap::new();
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        let text = head(
            StatusCode::SWITCHING_PROTOCOLS,
            &headers,
            BodyFraming::None,
            true,
            Version::HTTP_11,
        );
        assert!(
            text.starts_with(
                "HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: websocket\r\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn chunk_lines_and_digits() {
        let (line, n) = chunk_line(255);
        assert_eq!(&line[..n], b"ff\r\n");
        assert_eq!(itoa_buf(0).as_mut(), b"0");
        assert_eq!(itoa_buf(1_234_567_890).as_mut(), b"1234567890");
    }
}
