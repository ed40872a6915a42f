//! Request heads: bytes to an `http::request::Parts`, with the framing of the body that follows
//! and what the connection must do after the response (RFC 9112 §§2-3, 6, 9).
//!
//! Header names and values and the target are slices of the received head (no copy per field).
//! What hyper resolved silently is refused here with 400, because two readers of the same bytes
//! may frame them differently (request smuggling): `Transfer-Encoding` with `Content-Length`,
//! `Transfer-Encoding` whose last coding is not `chunked`, `Transfer-Encoding` in HTTP/1.0,
//! differing or malformed `Content-Length` values.

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Method, StatusCode, Uri, Version};

/// How many fields `forward::request_headers` may add.
const FORWARDING_FIELDS: usize = 8;

/// Fields accepted in one head (hyper's default; nginx and HAProxy allow about as many).
pub const MAX_HEADERS: usize = 100;

/// Fields whose positions fit on the stack while a head is parsed (more take a `Vec`).
const FEW_HEADERS: usize = 32;

/// `http::Uri` cannot hold a longer target.
const MAX_URI: usize = u16::MAX as usize - 1;

/// How the request's body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    Empty,
    Length(u64),
    Chunked,
}

/// A parsed request head.
#[derive(Debug)]
pub struct Head {
    pub parts: http::request::Parts,
    pub framing: Framing,
    /// The client allows the connection to stay open after the response (RFC 9112 §9.3).
    pub keep_alive: bool,
    /// HTTP/1.1 `Expect: 100-continue`.
    pub expect_continue: bool,
    /// HTTP/1.1 with `Upgrade` and `Connection: upgrade`: a 101 may take the connection over.
    pub upgrade: bool,
}

/// A head that cannot be served, with the status it gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadError {
    pub status: StatusCode,
    pub reason: String,
    /// The bytes are not HTTP/1.x at all (no `HTTP/` version on the first line, or an HTTP/2
    /// connection preface gone wrong): the refusal is logged, and the connection closed without
    /// an HTTP/1.1 answer, which a client of another protocol would read as garbage.
    pub unanswered: bool,
}

impl HeadError {
    pub fn bad(reason: impl Into<String>) -> Self {
        Self::with_status(StatusCode::BAD_REQUEST, reason)
    }

    pub fn with_status(status: StatusCode, reason: impl Into<String>) -> Self {
        Self {
            status,
            reason: reason.into(),
            unanswered: false,
        }
    }
}

/// The refusal for a first line whose HTTP version httparse does not take: 505 for an
/// `HTTP/2` or later version written as HTTP/1.x text (RFC 9110 §15.6.6), unanswered when the
/// line ends in no version at all (no `/` in its last word: another protocol, not HTTP/1.x) or
/// is a broken HTTP/2 preface, else 400.
fn bad_version(buf: &[u8]) -> HeadError {
    // Blank lines before the request line are skipped, as httparse skips them (RFC 9112 §2.2).
    let start = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    let line = buf[start..]
        .split(|&b| b == b'\n')
        .next()
        .unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let version = line.rsplit(|&b| b == b' ').next().unwrap_or_default();
    let shown = String::from_utf8_lossy(&version[..version.len().min(16)]).into_owned();
    // A version is `name/x.y`: a last word without `/` is no attempt at one.
    if line.starts_with(b"PRI * HTTP/2.0") || !version.contains(&b'/') {
        let mut error = HeadError::bad(
            "not an HTTP/1.x request (its first line ends in no HTTP version): closed unanswered",
        );
        error.unanswered = true;
        return error;
    }
    match version {
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() && *major >= b'2' =>
        {
            HeadError::with_status(
                StatusCode::HTTP_VERSION_NOT_SUPPORTED,
                format!(
                    "request line says {shown}; HTTP/2 and later are not spoken in HTTP/1.x text"
                ),
            )
        }
        _ => HeadError::bad(format!(
            "malformed request head: invalid HTTP version {shown:?}"
        )),
    }
}

/// Parses the head at the start of `buf` when it is complete: the head is split off `buf`
/// (which keeps what follows it). `Ok(None)`: read more, unless `buf` already holds
/// `max_head` bytes, which is an error.
pub fn parse(buf: &mut BytesMut, max_head: usize) -> Result<Option<Head>, HeadError> {
    // Left uninitialised: zeroing the fields for every request costs more than parsing one.
    let mut fields =
        [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut []);
    let parsing = request.parse_with_uninit_headers(buf, &mut fields);
    let len = match parsing {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => {
            if buf.len() >= max_head {
                return Err(too_large(buf, max_head));
            }
            return Ok(None);
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Err(HeadError::with_status(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                format!("request has more than {MAX_HEADERS} header fields"),
            ));
        }
        Err(httparse::Error::Version) => return Err(bad_version(buf)),
        Err(err) => return Err(HeadError::bad(format!("malformed request head: {err}"))),
    };
    if len > max_head {
        return Err(too_large(buf, max_head));
    }
    // The positions of what is kept, so that it can be sliced out of the head once split off.
    let base = buf.as_ptr() as usize;
    let at = |part: &[u8]| (part.as_ptr() as usize - base, part.len());
    let method = request.method.unwrap_or_default();
    let method = Method::from_bytes(method.as_bytes())
        .map_err(|_| HeadError::bad("invalid request method"))?;
    let target = at(request.path.unwrap_or_default().as_bytes());
    let version = match request.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    let count = request.headers.len();
    // Positions as u32 (a head is far below 4 GiB); the usual few on the stack, without
    // clearing room for the most a head may have.
    let mut few = [(0u32, 0u32, 0u32, 0u32); FEW_HEADERS];
    let mut many = Vec::new();
    let spans: &mut [(u32, u32, u32, u32)] = if count <= FEW_HEADERS {
        &mut few[..count]
    } else {
        many.resize(count, (0, 0, 0, 0));
        &mut many
    };
    for (span, field) in spans.iter_mut().zip(request.headers.iter()) {
        let (name, name_len) = at(field.name.as_bytes());
        let (value, value_len) = at(field.value);
        *span = (name as u32, name_len as u32, value as u32, value_len as u32);
    }
    let head = buf.split_to(len).freeze();
    build(&head, method, target, version, spans)
}

/// The status for a head that outgrew the buffer: 414 while the request line is still
/// incomplete (the target is what is long), else 431.
fn too_large(buf: &[u8], max_head: usize) -> HeadError {
    let line_done = buf.iter().take(max_head).any(|&b| b == b'\n');
    if line_done {
        HeadError::with_status(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!("request header section exceeds {max_head} bytes"),
        )
    } else {
        HeadError::with_status(
            StatusCode::URI_TOO_LONG,
            format!("request line exceeds {max_head} bytes"),
        )
    }
}

fn build(
    head: &Bytes,
    method: Method,
    (target_at, target_len): (usize, usize),
    version: Version,
    spans: &[(u32, u32, u32, u32)],
) -> Result<Option<Head>, HeadError> {
    if target_len > MAX_URI {
        return Err(HeadError::with_status(
            StatusCode::URI_TOO_LONG,
            format!("request target is {target_len} bytes"),
        ));
    }
    let uri = Uri::from_maybe_shared(head.slice(target_at..target_at + target_len))
        .map_err(|err| HeadError::bad(format!("invalid request target: {err}")))?;
    // Room for the fields a forwarded request gains (X-Forwarded-*, X-Real-IP, Via,
    // X-Request-Id): else the map grows, and rehashes, on the way upstream.
    let mut headers = HeaderMap::with_capacity(spans.len() + FORWARDING_FIELDS);
    let mut framing = Framing::Empty;
    let mut content_length: Option<u64> = None;
    let mut chunked_last = None;
    let mut chunked_count = 0usize;
    let mut close = false;
    let mut keep_alive = false;
    let mut connection_upgrade = false;
    let mut expect_continue = false;
    for &(name_at, name_len, value_at, value_len) in spans {
        let (name_at, name_len) = (name_at as usize, name_len as usize);
        let (value_at, value_len) = (value_at as usize, value_len as usize);
        let name = HeaderName::from_bytes(&head[name_at..name_at + name_len])
            .map_err(|_| HeadError::bad("invalid header field name"))?;
        let value = HeaderValue::from_maybe_shared(head.slice(value_at..value_at + value_len))
            .map_err(|_| HeadError::bad(format!("invalid value in header field {name}")))?;
        if name == header::CONTENT_LENGTH {
            let length = parse_content_length(value.as_bytes())?;
            if content_length.is_some_and(|seen| seen != length) {
                return Err(HeadError::bad(
                    "request has differing Content-Length values",
                ));
            }
            content_length = Some(length);
        } else if name == header::TRANSFER_ENCODING {
            // Only the last coding of the last field line counts: `chunked` must be final.
            let last = value
                .as_bytes()
                .rsplit(|&b| b == b',')
                .map(trim)
                .find(|coding| !coding.is_empty());
            chunked_last = Some(last.is_some_and(|c| c.eq_ignore_ascii_case(b"chunked")));
            chunked_count += value
                .as_bytes()
                .split(|&b| b == b',')
                .filter(|coding| trim(coding).eq_ignore_ascii_case(b"chunked"))
                .count();
        } else if name == header::CONNECTION {
            for option in value.as_bytes().split(|&b| b == b',').map(trim) {
                close |= option.eq_ignore_ascii_case(b"close");
                keep_alive |= option.eq_ignore_ascii_case(b"keep-alive");
                connection_upgrade |= option.eq_ignore_ascii_case(b"upgrade");
            }
        } else if name == header::EXPECT {
            expect_continue |= trim(value.as_bytes()).eq_ignore_ascii_case(b"100-continue");
        }
        headers.append(name, value);
    }
    if let Some(chunked) = chunked_last {
        if version == Version::HTTP_10 {
            return Err(HeadError::bad(
                "HTTP/1.0 request with Transfer-Encoding (RFC 9112 §6.1)",
            ));
        }
        if content_length.is_some() {
            return Err(HeadError::bad(
                "request has both Transfer-Encoding and Content-Length (RFC 9112 §6.1)",
            ));
        }
        if !chunked {
            return Err(HeadError::bad(
                "request's Transfer-Encoding does not end with chunked (RFC 9112 §6.3)",
            ));
        }
        if chunked_count > 1 {
            return Err(HeadError::bad(
                "request's Transfer-Encoding applies chunked more than once (RFC 9112 §6.1)",
            ));
        }
        framing = Framing::Chunked;
    } else if let Some(length) = content_length.filter(|&n| n > 0) {
        framing = Framing::Length(length);
    }
    let keep_alive = match version {
        Version::HTTP_10 => keep_alive && !close,
        _ => !close,
    };
    let upgrade =
        version == Version::HTTP_11 && connection_upgrade && headers.contains_key(header::UPGRADE);
    let mut builder = http::Request::builder()
        .method(method)
        .uri(uri)
        .version(version);
    if let Some(map) = builder.headers_mut() {
        *map = headers;
    }
    let (parts, ()) = builder
        .body(())
        .map_err(|err| HeadError::bad(format!("invalid request: {err}")))?
        .into_parts();
    Ok(Some(Head {
        parts,
        framing,
        keep_alive,
        expect_continue: expect_continue && version == Version::HTTP_11,
        upgrade,
    }))
}

/// One Content-Length field value: digits, or a list of equal values (`5, 5`, RFC 9110 §8.6).
fn parse_content_length(value: &[u8]) -> Result<u64, HeadError> {
    let mut length = None;
    for item in value.split(|&b| b == b',').map(trim) {
        if item.is_empty() || item.len() > 19 || !item.iter().all(u8::is_ascii_digit) {
            return Err(HeadError::bad("invalid Content-Length value"));
        }
        let n = item.iter().fold(0u64, |n, &d| n * 10 + u64::from(d - b'0'));
        if length.is_some_and(|seen| seen != n) {
            return Err(HeadError::bad(
                "request has differing Content-Length values",
            ));
        }
        length = Some(n);
    }
    length.ok_or_else(|| HeadError::bad("invalid Content-Length value"))
}

fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'))
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t'))
        .map_or(start, |i| i + 1);
    &bytes[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> Result<Option<Head>, HeadError> {
        let mut buf = BytesMut::from(text.as_bytes());
        parse(&mut buf, 8192)
    }

    fn ok(text: &str) -> Head {
        head(text)
            .unwrap_or_else(|e| panic!("{text:?}: {e:?}"))
            .unwrap_or_else(|| panic!("{text:?}: incomplete"))
    }

    fn refused(text: &str) -> StatusCode {
        match head(text) {
            Err(err) => err.status,
            Ok(parsed) => panic!("{text:?} accepted: {parsed:?}"),
        }
    }

    #[test]
    fn parses_a_head_and_keeps_what_follows() {
        let mut buf = BytesMut::from(&b"POST /a?b=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nX-A: 1\r\nx-a: 2\r\n\r\nabcGET"[..]);
        let head = parse(&mut buf, 8192)
            .unwrap_or_default()
            .unwrap_or_else(|| panic!("incomplete"));
        assert_eq!(head.parts.method, Method::POST);
        assert_eq!(head.parts.uri, "/a?b=1");
        assert_eq!(head.parts.version, Version::HTTP_11);
        assert_eq!(head.parts.headers.get_all("x-a").iter().count(), 2);
        assert_eq!(head.framing, Framing::Length(3));
        assert!(head.keep_alive && !head.expect_continue && !head.upgrade);
        assert_eq!(&buf[..], b"abcGET");
    }

    #[test]
    fn incomplete_heads_ask_for_more_until_the_limit() {
        assert!(head("GET / HTTP/1.1\r\nHost: x\r\n").is_ok_and(|h| h.is_none()));
        let mut buf =
            BytesMut::from(&b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: aaaaaaaaaaaaaaaaaaaaaaa"[..]);
        assert_eq!(
            parse(&mut buf, 30).err().map(|e| e.status),
            Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
        );
        let mut buf = BytesMut::from(&b"GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"[..]);
        assert_eq!(
            parse(&mut buf, 30).err().map(|e| e.status),
            Some(StatusCode::URI_TOO_LONG)
        );
    }

    #[test]
    fn connection_rules() {
        assert!(!ok("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").keep_alive);
        assert!(!ok("GET / HTTP/1.0\r\n\r\n").keep_alive);
        assert!(ok("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
        assert!(ok("GET / HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\n\r\n").expect_continue);
        assert!(!ok("GET / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n").expect_continue);
        let upgrade = "GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n";
        assert!(ok(upgrade).upgrade);
        assert!(!ok("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n").upgrade);
    }

    #[test]
    fn framing() {
        assert_eq!(
            ok("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n").framing,
            Framing::Chunked
        );
        assert_eq!(
            ok("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n").framing,
            Framing::Chunked
        );
        assert_eq!(
            ok("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n").framing,
            Framing::Empty
        );
        assert_eq!(
            ok("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 7, 7\r\nContent-Length: 7\r\n\r\n")
                .framing,
            Framing::Length(7)
        );
    }

    #[test]
    fn refuses_ambiguous_framing() {
        for text in [
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 6\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x5\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n\r\n",
            "GET / HTTP/1.1\r\nHost : x\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\0y\r\n\r\n",
            "GET /a b HTTP/1.1\r\nHost: x\r\n\r\n",
            "G@T / HTTP/1.1\r\nHost: x\r\n\r\n",
            "GET / HTTP/1.2\r\nHost: x\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            assert_eq!(refused(text), StatusCode::BAD_REQUEST, "{text:?}");
        }
    }

    #[test]
    fn a_first_line_that_is_not_http_1_is_refused_unanswered() {
        let answered = |text: &str| match head(text) {
            Err(err) => (err.status, err.unanswered),
            Ok(parsed) => panic!("{text:?} accepted: {parsed:?}"),
        };
        // Another protocol, or an HTTP/2 preface gone wrong: an HTTP/1.1 answer would be
        // garbage to it.
        for text in [
            "INVALID CONNECTION PREFACE\r\n\r\n",
            "PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n",
        ] {
            assert_eq!(answered(text), (StatusCode::BAD_REQUEST, true), "{text:?}");
        }
        // HTTP/1.x text naming a later version: 505, answered (after blank lines too).
        for text in [
            "GET / HTTP/2.0\r\nHost: x\r\n\r\n",
            "\r\n\r\nGET / HTTP/2.0\r\nHost: x\r\n\r\n",
        ] {
            assert_eq!(
                answered(text),
                (StatusCode::HTTP_VERSION_NOT_SUPPORTED, false),
                "{text:?}"
            );
        }
        for text in [
            "GET / HTTP/1.7\r\nHost: x\r\n\r\n",
            "GET / HTTX/1.1\r\nHost: x\r\n\r\n",
            "GET /\r\n\r\n",
        ] {
            assert_eq!(answered(text), (StatusCode::BAD_REQUEST, false), "{text:?}");
        }
    }

    /// Heads with the usual few fields, with more than the stack holds, and with the most
    /// allowed: every field kept, in order, with its value.
    #[test]
    fn every_field_is_kept_however_many_there_are() {
        for count in [1, FEW_HEADERS, FEW_HEADERS + 1, MAX_HEADERS] {
            let mut text = "GET / HTTP/1.1\r\n".to_owned();
            for i in 1..count {
                text.push_str(&format!("X-{i}: v{i}\r\n"));
            }
            text.push_str("Host: a.example\r\n\r\n");
            let mut buf = BytesMut::from(text.as_bytes());
            let head = parse(&mut buf, 64 * 1024)
                .unwrap_or_else(|e| panic!("{count}: {e:?}"))
                .unwrap_or_else(|| panic!("{count}: incomplete"));
            let fields = &head.parts.headers;
            assert_eq!(fields.len(), count);
            for i in 1..count {
                assert_eq!(fields[format!("x-{i}").as_str()], format!("v{i}").as_str());
            }
            assert_eq!(fields["host"], "a.example");
        }
    }

    #[test]
    fn too_many_fields_is_431() {
        let mut text = "GET / HTTP/1.1\r\n".to_owned();
        for i in 0..=MAX_HEADERS {
            text.push_str(&format!("X-{i}: 1\r\n"));
        }
        text.push_str("\r\n");
        assert_eq!(refused(&text), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    }

    #[test]
    fn absolute_and_asterisk_forms() {
        let head = ok("GET http://a.example/x HTTP/1.1\r\nHost: b.example\r\n\r\n");
        assert_eq!(
            head.parts.uri.authority().map(|a| a.as_str()),
            Some("a.example")
        );
        assert_eq!(ok("OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n").parts.uri, "*");
    }
}
