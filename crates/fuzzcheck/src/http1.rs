//! gatehouse's HTTP/1.1 engine: request heads, chunked request bodies, response heads.

use arbitrary::Unstructured;
use bytes::BytesMut;
use gatehouse_proxy::http1::chunked::{ChunkError, ChunkedDecoder, Step};
use gatehouse_proxy::http1::head::{self, Framing, Head, MAX_HEADERS};
use gatehouse_proxy::http1::write::{self, BodyFraming, RequestFacts};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode, Version};

// === Request heads ===

/// The input is what a client sent on a connection, parsed with the server's usual head limit
/// and with a small one.
///
/// Checked: an incomplete head consumes nothing, a refused one at most itself; a parsed one consumes at most the
/// limit, ends at a line end, leaves exactly what follows it; every prefix of it is
/// incomplete (the server parses again as bytes arrive); its field count is within
/// `MAX_HEADERS`; its framing is unambiguous (never both Transfer-Encoding and Content-Length,
/// no Transfer-Encoding in HTTP/1.0, chunked last, equal Content-Length values) and matches
/// the fields; keep-alive, 100-continue and upgrade follow the fields; and the head written out
/// again parses to the same head.
pub fn http1_request_head(data: &[u8]) {
    for limit in [8192, 64] {
        request_head(data, limit);
    }
}

fn request_head(input: &[u8], limit: usize) {
    let mut buf = BytesMut::from(input);
    let head = match head::parse(&mut buf, limit) {
        Ok(None) => {
            assert_eq!(&buf[..], input, "an incomplete head consumed bytes");
            assert!(input.len() < limit, "incomplete past the limit {limit}");
            return;
        }
        Err(error) => {
            // Refused before or after the head was split off: the connection closes either way.
            assert!(input.ends_with(&buf), "a refused head left other bytes");
            assert!(input.len() - buf.len() <= limit, "refused past the limit");
            assert!(
                matches!(error.status.as_u16(), 400 | 414 | 431 | 505),
                "refused with {}",
                error.status
            );
            assert!(!error.reason.is_empty());
            return;
        }
        Ok(Some(head)) => head,
    };
    let used = input.len() - buf.len();
    assert!(
        used > 0 && used <= limit,
        "head of {used} bytes, limit {limit}"
    );
    assert_eq!(&buf[..], &input[used..], "what follows the head changed");
    assert!(input[..used].ends_with(b"\n"), "head does not end a line");
    for cut in [1, used / 2, used - 1] {
        if cut > 0 && cut < used {
            let mut prefix = BytesMut::from(&input[..cut]);
            let parsed = head::parse(&mut prefix, limit);
            assert!(
                matches!(parsed, Ok(None)),
                "prefix of {cut} of a {used}-byte head: {parsed:?}"
            );
        }
    }
    check_head(&head);
    let target = head.parts.uri.to_string();

    // Written out again, it parses to the same head.
    let again = write_request_head(&head);
    let mut buf = BytesMut::from(&again[..]);
    let reparsed = match head::parse(&mut buf, again.len() + 1) {
        Ok(Some(reparsed)) => reparsed,
        other => panic!(
            "{:?} written out again does not parse: {other:?}",
            String::from_utf8_lossy(&again)
        ),
    };
    assert!(buf.is_empty());
    assert_eq!(reparsed.parts.method, head.parts.method);
    assert_eq!(reparsed.parts.uri.to_string(), target);
    assert_eq!(reparsed.parts.version, head.parts.version);
    assert_eq!(reparsed.parts.headers, head.parts.headers);
    assert_eq!(reparsed.framing, head.framing);
    assert_eq!(reparsed.keep_alive, head.keep_alive);
    assert_eq!(reparsed.expect_continue, head.expect_continue);
    assert_eq!(reparsed.upgrade, head.upgrade);
}

/// The request line and fields of a parsed head, as a client would send them.
fn write_request_head(head: &Head) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(head.parts.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(head.parts.uri.to_string().as_bytes());
    out.extend_from_slice(if head.parts.version == Version::HTTP_10 {
        b" HTTP/1.0\r\n"
    } else {
        b" HTTP/1.1\r\n"
    });
    for (name, value) in &head.parts.headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// What a parsed head says about framing and the connection agrees with its fields.
fn check_head(head: &Head) {
    let parts = &head.parts;
    let headers = &parts.headers;
    let http11 = parts.version == Version::HTTP_11;
    assert!(parts.version == Version::HTTP_10 || http11);
    assert!(headers.len() <= MAX_HEADERS, "{} fields", headers.len());
    let lengths: Vec<u64> = headers
        .get_all(header::CONTENT_LENGTH)
        .iter()
        .flat_map(|value| list(value.as_bytes()))
        .map(|item| {
            assert!(
                !item.is_empty() && item.len() <= 19 && item.iter().all(u8::is_ascii_digit),
                "Content-Length item {item:?} accepted"
            );
            item.iter().fold(0u64, |n, &d| n * 10 + u64::from(d - b'0'))
        })
        .collect();
    assert!(
        lengths.windows(2).all(|w| w[0] == w[1]),
        "differing Content-Length values {lengths:?} accepted"
    );
    let te = headers
        .get_all(header::TRANSFER_ENCODING)
        .iter()
        .next_back();
    if te.is_some() {
        assert!(
            headers.get(header::CONTENT_LENGTH).is_none(),
            "Transfer-Encoding with Content-Length accepted"
        );
        assert!(http11, "HTTP/1.0 with Transfer-Encoding accepted");
    }
    match head.framing {
        Framing::Chunked => {
            let last = te
                .and_then(|value| list(value.as_bytes()).last().copied())
                .unwrap_or_default();
            assert!(
                last.eq_ignore_ascii_case(b"chunked"),
                "chunked framing, TE {te:?}"
            );
        }
        Framing::Length(n) => {
            assert!(te.is_none() && n > 0);
            assert_eq!(lengths.first(), Some(&n));
        }
        Framing::Empty => {
            assert!(te.is_none(), "a Transfer-Encoding body read as empty");
            assert!(
                lengths.iter().all(|&n| n == 0),
                "a Content-Length body read as empty"
            );
        }
    }
    let options: Vec<&[u8]> = headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|value| value.as_bytes().split(|&b| b == b','))
        .map(trim)
        .collect();
    let has = |option: &[u8]| options.iter().any(|o| o.eq_ignore_ascii_case(option));
    let keep_alive = if http11 {
        !has(b"close")
    } else {
        has(b"keep-alive") && !has(b"close")
    };
    assert_eq!(head.keep_alive, keep_alive, "keep-alive for {options:?}");
    let expect = headers
        .get_all(header::EXPECT)
        .iter()
        .any(|value| trim(value.as_bytes()).eq_ignore_ascii_case(b"100-continue"));
    assert_eq!(head.expect_continue, http11 && expect);
    assert_eq!(
        head.upgrade,
        http11 && has(b"upgrade") && headers.contains_key(header::UPGRADE)
    );
}

/// The non-empty elements of a comma-separated list, trimmed.
fn list(value: &[u8]) -> Vec<&[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim)
        .filter(|item| !item.is_empty())
        .collect()
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

// === Chunked bodies ===

/// What decoding one input gave.
#[derive(Debug, PartialEq, Eq)]
enum Decoded {
    /// The body ended after `used` bytes of the input.
    End {
        body: Vec<u8>,
        used: usize,
    },
    /// The input ended inside the body.
    Incomplete {
        body: Vec<u8>,
    },
    Error {
        body: Vec<u8>,
        error: ChunkError,
    },
}

/// The input is a chunked body and what follows it on the connection.
///
/// Checked: whatever pieces the bytes arrive in (all at once, one by one, seven at a time),
/// the outcome is the same body, end position or error; the decoder asks for more only when it
/// has consumed everything; it never yields more bytes than it was given, nor an empty data
/// piece; once done it stays done without consuming; what follows the body is left untouched;
/// and a decoded body encoded again (the way `http1::write` frames chunks, with extensions and
/// a trailer) decodes to the same bytes.
pub fn http1_chunked(data: &[u8]) {
    let whole = decode_chunked(data, data.len().max(1));
    assert_eq!(decode_chunked(data, 1), whole, "one byte at a time");
    assert_eq!(decode_chunked(data, 7), whole, "seven bytes at a time");
    if let Decoded::End { body, used } = &whole {
        assert!(
            body.len() < *used,
            "body of {} from {used} bytes",
            body.len()
        );
        let seed = data.first().copied().unwrap_or(0);
        let encoded = encode_chunked(body, seed);
        assert_eq!(
            decode_chunked(&encoded, encoded.len()),
            Decoded::End {
                body: body.clone(),
                used: encoded.len()
            },
            "{:?} re-encoded",
            String::from_utf8_lossy(body)
        );
    }
}

/// Decodes `input` arriving `step` bytes at a time.
fn decode_chunked(input: &[u8], step: usize) -> Decoded {
    let mut decoder = ChunkedDecoder::default();
    let mut buf = BytesMut::new();
    let mut body = Vec::new();
    let mut fed = 0;
    loop {
        let before = buf.len();
        let step_result = decoder.decode(&mut buf);
        assert!(buf.len() <= before, "the decoder grew its buffer");
        match step_result {
            Ok(Step::Data(data)) => {
                assert!(!data.is_empty(), "an empty data piece");
                assert!(data.len() <= before - buf.len());
                body.extend_from_slice(&data);
                assert!(body.len() <= fed, "{} body bytes from {fed}", body.len());
            }
            Ok(Step::End) => {
                assert!(decoder.is_done());
                let used = fed - buf.len();
                assert_eq!(&buf[..], &input[used..fed], "bytes after the body changed");
                let left = buf.len();
                assert_eq!(decoder.decode(&mut buf), Ok(Step::End), "not done twice");
                assert_eq!(buf.len(), left, "consumed after the end");
                return Decoded::End { body, used };
            }
            Ok(Step::NeedMore) => {
                assert!(
                    buf.is_empty(),
                    "asked for more with {} bytes left",
                    buf.len()
                );
                assert!(!decoder.is_done());
                if fed == input.len() {
                    return Decoded::Incomplete { body };
                }
                let end = (fed + step).min(input.len());
                buf.extend_from_slice(&input[fed..end]);
                fed = end;
            }
            Err(error) => {
                assert!(!decoder.is_done());
                return Decoded::Error { body, error };
            }
        }
    }
}

/// `body` as chunks of sizes drawn from `seed`, some with extensions, then the last chunk, a
/// trailer field on odd seeds, and the final CRLF.
fn encode_chunked(body: &[u8], seed: u8) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = body;
    let mut size = usize::from(seed % 13) + 1;
    while !rest.is_empty() {
        let take = size.min(rest.len());
        let (line, n) = write::chunk_line(take);
        if size % 3 == 0 {
            // An extension before the CRLF: `<hex>;name=value\r\n`.
            out.extend_from_slice(&line[..n - 2]);
            out.extend_from_slice(b" ; ext=\"v\"\r\n");
        } else {
            out.extend_from_slice(&line[..n]);
        }
        out.extend_from_slice(&rest[..take]);
        out.extend_from_slice(b"\r\n");
        rest = &rest[take..];
        size = size * 7 % 4099 + 1;
    }
    out.extend_from_slice(b"0\r\n");
    if seed % 2 == 1 {
        out.extend_from_slice(b"X-Trailer: t\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

// === Response heads ===

/// Field names a response head treats specially, and some it does not.
const RESPONSE_NAMES: &[&str] = &[
    "content-length",
    "transfer-encoding",
    "connection",
    "date",
    "upgrade",
    "keep-alive",
    "content-type",
    "set-cookie",
    "x-a",
];

/// The input describes a response (status, fields, the request's method and version, the
/// body's length, keep-alive) that gatehouse writes with `http1::write`; httparse reads it back.
///
/// Checked: the framing chosen follows its rules; the head is one complete HTTP/1.1 head; the
/// status and reason come back; the fields come back in order with this hop's framing and
/// connection fields replacing the given ones; it is never framed ambiguously (one
/// Content-Length or one `Transfer-Encoding: chunked`, never both).
pub fn http1_response_head(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(code) = u.int_in_range(100u16..=999) else {
        return;
    };
    let Ok(status) = StatusCode::from_u16(code) else {
        return;
    };
    let method = match u.int_in_range(0u8..=3).unwrap_or(0) {
        0 => Method::GET,
        1 => Method::HEAD,
        2 => Method::POST,
        _ => Method::CONNECT,
    };
    let version = if u.arbitrary().unwrap_or(false) {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    let keep_alive: bool = u.arbitrary().unwrap_or(true);
    let exact_length: Option<u64> = u.arbitrary().unwrap_or(None);
    let mut headers = HeaderMap::new();
    while headers.len() < 32 && u.arbitrary().unwrap_or(false) {
        let name = if u.arbitrary().unwrap_or(true) {
            u.choose(RESPONSE_NAMES)
                .ok()
                .and_then(|name| HeaderName::from_bytes(name.as_bytes()).ok())
        } else {
            u.arbitrary::<&[u8]>()
                .ok()
                .and_then(|name| HeaderName::from_bytes(name).ok())
        };
        let value = u
            .arbitrary::<&[u8]>()
            .ok()
            .and_then(|value| HeaderValue::from_bytes(value).ok());
        if let (Some(name), Some(value)) = (name, value) {
            headers.append(name, value);
        }
    }

    let facts = RequestFacts {
        method: &method,
        version,
    };
    let framing = write::framing(facts, status, &headers, exact_length);
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let expected = if status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
        || method == Method::HEAD
    {
        BodyFraming::None
    } else if let Some(length) = declared.or(exact_length) {
        BodyFraming::Length(length)
    } else if version == Version::HTTP_10 {
        BodyFraming::UntilClose
    } else {
        BodyFraming::Chunked
    };
    assert_eq!(framing, expected);

    let mut out = Vec::new();
    write::encode_head(&mut out, status, &headers, framing, keep_alive, version);
    let mut fields = vec![httparse::EMPTY_HEADER; headers.len() + 8];
    let mut response = httparse::Response::new(&mut fields);
    let text = String::from_utf8_lossy(&out);
    match response.parse(&out) {
        Ok(httparse::Status::Complete(len)) => assert_eq!(len, out.len(), "{text:?}"),
        other => panic!("{text:?} does not parse: {other:?}"),
    }
    assert_eq!(response.version, Some(1));
    assert_eq!(response.code, Some(code));
    assert_eq!(
        response.reason,
        Some(status.canonical_reason().unwrap_or("Unknown"))
    );

    // The fields expected back, in order.
    let switching = status == StatusCode::SWITCHING_PROTOCOLS;
    // A 1xx or 204 never carries Content-Length (RFC 9110 §8.6).
    let no_length = status.is_informational() || status == StatusCode::NO_CONTENT;
    let mut want: Vec<(String, Vec<u8>)> = headers
        .iter()
        .filter(|(name, _)| {
            **name != header::TRANSFER_ENCODING
                && !(**name == header::CONTENT_LENGTH
                    && (framing != BodyFraming::None || no_length))
                && (**name != header::CONNECTION || switching)
        })
        .map(|(name, value)| (name.to_string(), trim(value.as_bytes()).to_vec()))
        .collect();
    match framing {
        BodyFraming::Length(n) => want.push(("content-length".into(), n.to_string().into())),
        BodyFraming::Chunked => want.push(("transfer-encoding".into(), b"chunked".to_vec())),
        BodyFraming::None | BodyFraming::UntilClose => {}
    }
    if !switching && !status.is_informational() {
        if !keep_alive {
            want.push(("connection".into(), b"close".to_vec()));
        } else if version == Version::HTTP_10 {
            want.push(("connection".into(), b"keep-alive".to_vec()));
        }
    }
    let got: Vec<(String, Vec<u8>)> = response
        .headers
        .iter()
        .map(|h| (h.name.to_owned(), trim(h.value).to_vec()))
        .collect();
    let (got, date) = if headers.contains_key(header::DATE) {
        (got, None)
    } else {
        let mut got = got;
        let date = got.pop();
        (got, date)
    };
    assert_eq!(got, want, "{text:?}");
    if let Some((name, value)) = date {
        assert_eq!(name, "date", "{text:?}");
        let value = String::from_utf8_lossy(&value).into_owned();
        assert!(httpdate::parse_http_date(&value).is_ok(), "Date {value:?}");
    }

    // Never framed two ways at once.
    if framing != BodyFraming::None {
        let count = |name: &str| {
            response
                .headers
                .iter()
                .filter(|h| h.name.eq_ignore_ascii_case(name))
                .count()
        };
        let lengths = count("content-length");
        let codings = count("transfer-encoding");
        match framing {
            BodyFraming::Length(_) => assert_eq!((lengths, codings), (1, 0), "{text:?}"),
            BodyFraming::Chunked => assert_eq!((lengths, codings), (0, 1), "{text:?}"),
            _ => assert_eq!((lengths, codings), (0, 0), "{text:?}"),
        }
    }
}
