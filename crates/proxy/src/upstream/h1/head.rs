//! Request heads as HTTP/1.1 bytes, response heads parsed with `httparse`, and how the bodies
//! on both sides are framed (RFC 9112 §6).

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Version};
use http_body::Body as _;

use crate::client_body::RequestBody;

/// Response header fields kept (hyper's default, kept for the same reason: more would put the
/// parse arrays on the heap); a head with more fails as too large.
pub const MAX_FIELDS: usize = 100;

/// Fields whose positions fit on the stack while a head is parsed (more take a `Vec`).
const FEW_FIELDS: usize = 32;
/// Room for the fields gatehouse adds to a forwarded response (Cache-Status, Proxy-Status,
/// X-Request-Id, Via).
const ADDED_FIELDS: usize = 4;

/// How the request's body goes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestFraming {
    /// No body.
    None,
    Length,
    Chunked,
}

/// Chooses the request body's framing, and makes the framing fields say it: no body when the
/// body is empty (or a CONNECT's, whose bytes after the head are a tunnel's, or an HTTP/2
/// GET's or HEAD's of unknown length, which is most often no body at all: HEADERS that did not
/// end the stream); a Transfer-Encoding given is kept and made to end in `chunked`; then the
/// Content-Length given; then the body's exact length; else chunked. An HTTP/1.1 GET or HEAD
/// that came with a chunked body keeps it: the client framed one, and dropping it would lose
/// what it sent.
pub fn request_framing(request: &mut Request<RequestBody>) -> RequestFraming {
    if request.body().is_end_stream() {
        request.headers_mut().remove(header::TRANSFER_ENCODING);
        return RequestFraming::None;
    }
    let exact = request.body().size_hint().exact();
    let method_has_no_body = match *request.method() {
        Method::CONNECT => true,
        Method::GET | Method::HEAD => request.body().is_unframed_http2(),
        _ => false,
    };
    let headers = request.headers_mut();
    if let Some(te) = headers.get(header::TRANSFER_ENCODING) {
        if !ends_in_chunked(te) {
            let mut value = te.as_bytes().to_vec();
            value.extend_from_slice(b", chunked");
            if let Ok(value) = HeaderValue::from_bytes(&value) {
                headers.insert(header::TRANSFER_ENCODING, value);
            }
        }
        headers.remove(header::CONTENT_LENGTH);
        return RequestFraming::Chunked;
    }
    if let Ok(Some(length)) = content_length(headers) {
        // A length the client repeated ("5, 5", or two fields: RFC 9110 §8.6 lets a recipient
        // take that as one) goes on as one value, leaving the next hop no list to read its
        // own way.
        if is_list(headers.get_all(header::CONTENT_LENGTH)) {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
        }
        return RequestFraming::Length;
    }
    if let Some(length) = exact {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
        return RequestFraming::Length;
    }
    if method_has_no_body {
        return RequestFraming::None;
    }
    headers.remove(header::CONTENT_LENGTH);
    headers.insert(
        header::TRANSFER_ENCODING,
        HeaderValue::from_static("chunked"),
    );
    RequestFraming::Chunked
}

/// Whether [`request_framing`] will leave the request's header fields as they are, known
/// before it runs: a request without a body and without Transfer-Encoding (most GETs).
pub fn framing_keeps_fields(request: &Request<RequestBody>) -> bool {
    request.body().is_end_stream() && !request.headers().contains_key(header::TRANSFER_ENCODING)
}

/// Whether a field's values are more than one: several lines, or a comma-separated list.
fn is_list(values: header::GetAll<'_, HeaderValue>) -> bool {
    let mut values = values.iter();
    let first = values.next();
    values.next().is_some() || first.is_some_and(|v| v.as_bytes().contains(&b','))
}

fn ends_in_chunked(value: &HeaderValue) -> bool {
    value
        .as_bytes()
        .rsplit(|&b| b == b',')
        .next()
        .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"))
}

/// Writes the request line and the fields.
pub fn encode_request(dst: &mut Vec<u8>, request: &Request<RequestBody>) {
    let method = request.method();
    dst.extend_from_slice(method.as_str().as_bytes());
    dst.push(b' ');
    let uri = request.uri();
    if uri.scheme().is_some() {
        dst.extend_from_slice(uri.to_string().as_bytes());
    } else if *method == Method::CONNECT
        && let Some(authority) = uri.authority()
    {
        dst.extend_from_slice(authority.as_str().as_bytes());
    } else {
        dst.extend_from_slice(
            uri.path_and_query()
                .map_or("/", |pq| pq.as_str())
                .as_bytes(),
        );
    }
    dst.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in request.headers() {
        dst.extend_from_slice(name.as_str().as_bytes());
        dst.extend_from_slice(b": ");
        dst.extend_from_slice(value.as_bytes());
        dst.extend_from_slice(b"\r\n");
    }
    dst.extend_from_slice(b"\r\n");
}

/// Why a response head could not be parsed.
#[derive(Debug, PartialEq, Eq)]
pub enum ParseError {
    Invalid(String),
    /// More fields than [`MAX_FIELDS`].
    TooManyFields,
}

/// Parses a response head at the start of `buf`. `Ok(None)`: not complete yet. A complete head
/// is split off `buf`; the field values share its bytes (no copy).
pub fn parse_response(buf: &mut BytesMut) -> Result<Option<Response<()>>, ParseError> {
    // Left uninitialised: zeroing 100 fields for every response costs more than parsing one.
    let mut fields =
        [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_FIELDS];
    let mut parsed = httparse::Response::new(&mut []);
    let parsing = httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut parsed,
        buf,
        &mut fields,
    );
    let len = match parsing {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(ParseError::TooManyFields),
        Err(err) => return Err(ParseError::Invalid(err.to_string())),
    };
    let code = parsed.code.unwrap_or(0);
    // RFC 9110 §15: a status code is 100 to 599; `http` would take up to 999.
    let status = StatusCode::from_u16(code)
        .ok()
        .filter(|_| code <= 599)
        .ok_or_else(|| ParseError::Invalid(format!("invalid status code {code}")))?;
    let version = if parsed.version == Some(0) {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    // Where each field's name and value sit in the head, to slice them out once it is frozen.
    let base = buf.as_ptr() as usize;
    let count = parsed.headers.len();
    // The usual few on the stack, without clearing room for the most a head may have.
    let mut few = [(0u32, 0u32, 0u32, 0u32); FEW_FIELDS];
    let mut many = Vec::new();
    let spans: &mut [(u32, u32, u32, u32)] = if count <= FEW_FIELDS {
        &mut few[..count]
    } else {
        many.resize(count, (0, 0, 0, 0));
        &mut many
    };
    for (span, field) in spans.iter_mut().zip(parsed.headers.iter()) {
        let at = |part: &[u8]| (part.as_ptr() as usize - base) as u32;
        *span = (
            at(field.name.as_bytes()),
            field.name.len() as u32,
            at(field.value),
            field.value.len() as u32,
        );
    }
    let head: Bytes = buf.split_to(len).freeze();
    let mut headers = HeaderMap::with_capacity(count + ADDED_FIELDS);
    for &(name_at, name_len, value_at, value_len) in &*spans {
        let (name_at, name_len) = (name_at as usize, name_len as usize);
        let (value_at, value_len) = (value_at as usize, value_len as usize);
        let name = HeaderName::from_bytes(&head[name_at..name_at + name_len])
            .map_err(|_| ParseError::Invalid("invalid header name".to_owned()))?;
        let value = HeaderValue::from_maybe_shared(head.slice(value_at..value_at + value_len))
            .map_err(|_| ParseError::Invalid("invalid header value".to_owned()))?;
        headers.append(name, value);
    }
    let mut response = Response::new(());
    *response.status_mut() = status;
    *response.version_mut() = version;
    *response.headers_mut() = headers;
    Ok(Some(response))
}

/// How a response's body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseFraming {
    /// No body (HEAD, 1xx, 204, 304).
    None,
    Length(u64),
    Chunked,
    /// Until the server closes the connection.
    UntilClose,
}

/// The response body's framing. A Transfer-Encoding ending in `chunked` wins over
/// Content-Length (the pipeline refuses a response with both); any other transfer coding
/// reads until the close (the pipeline refuses it too). An invalid Content-Length is an error.
pub fn response_framing(
    head_request: bool,
    status: StatusCode,
    headers: &HeaderMap,
) -> Result<ResponseFraming, String> {
    if head_request
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok(ResponseFraming::None);
    }
    if let Some(te) = headers.get(header::TRANSFER_ENCODING) {
        return Ok(if ends_in_chunked(te) {
            ResponseFraming::Chunked
        } else {
            ResponseFraming::UntilClose
        });
    }
    match content_length(headers) {
        Ok(Some(length)) => Ok(ResponseFraming::Length(length)),
        Ok(None) => Ok(ResponseFraming::UntilClose),
        Err(()) => Err("invalid content-length".to_owned()),
    }
}

/// The Content-Length: `Ok(None)` when absent; an error when a value is not a number or the
/// values differ (the same value repeated is accepted, RFC 9110 §8.6).
fn content_length(headers: &HeaderMap) -> Result<Option<u64>, ()> {
    let mut length = None;
    for value in headers.get_all(header::CONTENT_LENGTH) {
        for part in value.as_bytes().split(|&b| b == b',') {
            let part = part.trim_ascii();
            if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
                return Err(());
            }
            let n: u64 = std::str::from_utf8(part)
                .ok()
                .and_then(|text| text.parse().ok())
                .ok_or(())?;
            if length.is_some_and(|seen| seen != n) {
                return Err(());
            }
            length = Some(n);
        }
    }
    Ok(length)
}

/// Whether the server lets the connection carry another request after this response.
pub fn keeps_alive(response: &Response<()>) -> bool {
    let mut close = false;
    let mut keep_alive = false;
    for value in response.headers().get_all(header::CONNECTION) {
        for option in value.as_bytes().split(|&b| b == b',') {
            let option = option.trim_ascii();
            close |= option.eq_ignore_ascii_case(b"close");
            keep_alive |= option.eq_ignore_ascii_case(b"keep-alive");
        }
    }
    if close || response.status() == StatusCode::SWITCHING_PROTOCOLS {
        return false;
    }
    response.version() == Version::HTTP_11 || keep_alive
}

/// Whether the request asked the server to close the connection after it.
pub fn asks_close(request: &Request<RequestBody>) -> bool {
    crate::http1::write::asks_close(request.headers())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &[u8]) -> Result<Option<Response<()>>, ParseError> {
        let mut buf = BytesMut::from(raw);
        parse_response(&mut buf)
    }

    /// Heads with the usual few fields, with more than the stack holds, and with the most
    /// allowed: every field kept, in order, with its value; one more is refused.
    #[test]
    fn every_field_is_kept_however_many_there_are() {
        for count in [1, FEW_FIELDS, FEW_FIELDS + 1, MAX_FIELDS] {
            let mut raw = "HTTP/1.1 200 OK\r\n".to_owned();
            for i in 1..count {
                raw.push_str(&format!("X-{i}: v{i}\r\n"));
            }
            raw.push_str("Content-Length: 0\r\n\r\n");
            let response = parse(raw.as_bytes())
                .unwrap_or_else(|e| panic!("{count}: {e:?}"))
                .unwrap_or_else(|| panic!("{count}: incomplete"));
            let fields = response.headers();
            assert_eq!(fields.len(), count);
            for i in 1..count {
                assert_eq!(fields[format!("x-{i}").as_str()], format!("v{i}").as_str());
            }
            assert_eq!(fields["content-length"], "0");
        }
        let mut raw = "HTTP/1.1 200 OK\r\n".to_owned();
        for i in 0..=MAX_FIELDS {
            raw.push_str(&format!("X-{i}: v\r\n"));
        }
        raw.push_str("\r\n");
        assert!(matches!(
            parse(raw.as_bytes()),
            Err(ParseError::TooManyFields)
        ));
    }

    #[test]
    fn a_response_head_is_split_off_with_its_fields() {
        let mut buf =
            BytesMut::from(&b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello"[..]);
        let response = parse_response(&mut buf).unwrap().unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-length"], "5");
        assert_eq!(response.headers()["x-a"], "b");
        assert_eq!(&buf[..], b"hello");
    }

    #[test]
    fn partial_invalid_and_oversized_heads() {
        assert!(matches!(parse(b"HTTP/1.1 200 OK\r\nX-A: b\r\n"), Ok(None)));
        assert!(matches!(
            parse(b"HTTP/1.1 2x0 OK\r\n\r\n"),
            Err(ParseError::Invalid(_))
        ));
        // RFC 9110 §15: 100 to 599 only.
        for code in ["600", "999", "099"] {
            let raw = format!("HTTP/1.1 {code} X\r\n\r\n");
            assert!(
                matches!(parse(raw.as_bytes()), Err(ParseError::Invalid(_))),
                "{code} accepted"
            );
        }
        assert!(matches!(parse(b"HTTP/1.1 599 X\r\n\r\n"), Ok(Some(_))));
        assert!(matches!(
            parse(b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n"),
            Err(ParseError::Invalid(_))
        ));
        let mut many = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..=MAX_FIELDS {
            many.extend_from_slice(format!("x-{i}: v\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert!(matches!(parse(&many), Err(ParseError::TooManyFields)));
    }

    #[test]
    fn framing_of_responses() {
        let headers = |raw: &[u8]| parse(raw).unwrap().unwrap().headers().clone();
        let cl = headers(b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\nContent-Length: 7\r\n\r\n");
        assert_eq!(
            response_framing(false, StatusCode::OK, &cl),
            Ok(ResponseFraming::Length(7))
        );
        assert_eq!(
            response_framing(true, StatusCode::OK, &cl),
            Ok(ResponseFraming::None)
        );
        assert_eq!(
            response_framing(false, StatusCode::NOT_MODIFIED, &cl),
            Ok(ResponseFraming::None)
        );
        let differ = headers(b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\nContent-Length: 8\r\n\r\n");
        assert!(response_framing(false, StatusCode::OK, &differ).is_err());
        let signed = headers(b"HTTP/1.1 200 OK\r\nContent-Length: +7\r\n\r\n");
        assert!(response_framing(false, StatusCode::OK, &signed).is_err());
        let chunked = headers(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
        assert_eq!(
            response_framing(false, StatusCode::OK, &chunked),
            Ok(ResponseFraming::Chunked)
        );
        let gzip = headers(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n");
        assert_eq!(
            response_framing(false, StatusCode::OK, &gzip),
            Ok(ResponseFraming::UntilClose)
        );
        let none = headers(b"HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!(
            response_framing(false, StatusCode::OK, &none),
            Ok(ResponseFraming::UntilClose)
        );
    }

    #[test]
    fn keep_alive_follows_the_version_and_connection_options() {
        let response = |raw: &[u8]| parse(raw).unwrap().unwrap();
        assert!(keeps_alive(&response(b"HTTP/1.1 200 OK\r\n\r\n")));
        assert!(!keeps_alive(&response(
            b"HTTP/1.1 200 OK\r\nConnection: Close\r\n\r\n"
        )));
        assert!(!keeps_alive(&response(b"HTTP/1.0 200 OK\r\n\r\n")));
        assert!(keeps_alive(&response(
            b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n"
        )));
    }

    #[test]
    fn request_framing_follows_hyper() {
        let mut get = Request::new(RequestBody::empty());
        assert_eq!(request_framing(&mut get), RequestFraming::None);
        let mut full = Request::new(RequestBody::full(Bytes::from_static(b"abc")));
        *full.method_mut() = Method::POST;
        assert_eq!(request_framing(&mut full), RequestFraming::Length);
        assert_eq!(full.headers()["content-length"], "3");
        let mut out = Vec::new();
        encode_request(&mut out, &full);
        assert_eq!(out, b"POST / HTTP/1.1\r\ncontent-length: 3\r\n\r\n");
        // A repeated length goes on as one value.
        for repeated in [&["3, 3"][..], &["3", "3"]] {
            let mut post = Request::new(RequestBody::full(Bytes::from_static(b"abc")));
            *post.method_mut() = Method::POST;
            for value in repeated {
                post.headers_mut()
                    .append(header::CONTENT_LENGTH, HeaderValue::from_static(value));
            }
            assert_eq!(request_framing(&mut post), RequestFraming::Length);
            let lengths: Vec<_> = post
                .headers()
                .get_all(header::CONTENT_LENGTH)
                .iter()
                .collect();
            assert_eq!(lengths, ["3"], "{repeated:?}");
        }
    }
}
