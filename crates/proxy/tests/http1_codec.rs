//! Round-trip properties of the HTTP/1.1 engine's codec: a request head written by a client
//! parses back to what was written; a body chunked any way decodes back to itself, however the
//! bytes arrive; a response head gatehouse writes reads back (with httparse, as a client would)
//! to the status and fields it was given.

use bytes::BytesMut;
use gatehouse_proxy::http1::chunked::{ChunkedDecoder, Step};
use gatehouse_proxy::http1::head::{self, Framing};
use gatehouse_proxy::http1::write::{self, BodyFraming};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode, Version};
use proptest::prelude::*;

/// Field names the framing and connection rules read; the generated fields avoid them (the
/// properties add the framing they test on purpose).
const SPECIAL: &[&str] = &[
    "content-length",
    "transfer-encoding",
    "connection",
    "expect",
    "upgrade",
    "date",
    "keep-alive",
];

fn field_name() -> impl Strategy<Value = String> {
    "[a-zA-Z][a-zA-Z0-9!#$%&'*+.^_`|~-]{0,20}".prop_filter(
        "framing and connection fields are added on purpose",
        |name| !SPECIAL.contains(&name.to_ascii_lowercase().as_str()),
    )
}

/// A field value without surrounding whitespace (which is not part of the value, RFC 9110
/// §5.5), with inner spaces and tabs and obs-text bytes.
fn field_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(Vec::new()),
        (
            visible(),
            proptest::collection::vec(prop_oneof![visible(), Just(b' '), Just(b'\t')], 0..40),
            visible()
        )
            .prop_map(|(first, middle, last)| {
                let mut value = vec![first];
                value.extend(middle);
                value.push(last);
                value
            }),
    ]
}

fn visible() -> impl Strategy<Value = u8> {
    prop_oneof![0x21u8..=0x7e, 0x80u8..=0xff]
}

fn fields() -> impl Strategy<Value = Vec<(String, Vec<u8>)>> {
    proptest::collection::vec((field_name(), field_value()), 0..30)
}

fn method() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("GET".to_owned()),
        Just("POST".to_owned()),
        Just("PUT".to_owned()),
        Just("DELETE".to_owned()),
        Just("HEAD".to_owned()),
        Just("OPTIONS".to_owned()),
        Just("PATCH".to_owned()),
        "[A-Z][A-Z0-9!#$%&'*+.^_`|~-]{0,12}",
    ]
}

fn target() -> impl Strategy<Value = String> {
    prop_oneof![
        "(/[a-zA-Z0-9._~%!$&'()*+,;=:@-]{0,12}){1,5}(\\?[a-zA-Z0-9._~%!$&'()*+,;=:@/?-]{0,20})?",
        Just("/".to_owned()),
        "http://[a-z]{1,10}\\.example(:[0-9]{1,4})?(/[a-z0-9]{0,8}){1,3}",
    ]
}

#[derive(Debug, Clone)]
enum BodyKind {
    None,
    Length(u64),
    Chunked,
}

fn body_kind() -> impl Strategy<Value = BodyKind> {
    prop_oneof![
        Just(BodyKind::None),
        any::<u64>().prop_map(|n| BodyKind::Length(n % 10_000_000_000_000_000_000)),
        Just(BodyKind::Chunked),
    ]
}

/// The values of each field name, in order.
fn by_name(fields: &[(String, Vec<u8>)]) -> Vec<(String, Vec<Vec<u8>>)> {
    let mut out: Vec<(String, Vec<Vec<u8>>)> = Vec::new();
    for (name, value) in fields {
        let name = name.to_ascii_lowercase();
        match out.iter_mut().find(|(n, _)| *n == name) {
            Some((_, values)) => values.push(value.clone()),
            None => out.push((name, vec![value.clone()])),
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any valid request head, written out, parses back to the same method, target, version
    /// and fields, with the framing it declares; the bytes after it stay in the buffer; and
    /// every prefix of it asks for more.
    #[test]
    fn request_heads_round_trip(
        method in method(),
        target in target(),
        http10 in any::<bool>(),
        fields in fields(),
        body in body_kind(),
        close in any::<bool>(),
        after in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let version = if http10 && !matches!(body, BodyKind::Chunked) { "HTTP/1.0" } else { "HTTP/1.1" };
        let mut fields = fields;
        match body {
            BodyKind::None => {}
            BodyKind::Length(n) => fields.push(("Content-Length".into(), n.to_string().into_bytes())),
            BodyKind::Chunked => fields.push(("Transfer-Encoding".into(), b"chunked".to_vec())),
        }
        if close {
            fields.push(("Connection".into(), b"close".to_vec()));
        }
        let mut text = format!("{method} {target} {version}\r\n").into_bytes();
        for (name, value) in &fields {
            text.extend_from_slice(name.as_bytes());
            text.extend_from_slice(b": ");
            text.extend_from_slice(value);
            text.extend_from_slice(b"\r\n");
        }
        text.extend_from_slice(b"\r\n");
        let head_len = text.len();
        text.extend_from_slice(&after);

        for cut in [1, head_len / 2, head_len - 1] {
            let mut prefix = BytesMut::from(&text[..cut]);
            prop_assert!(matches!(head::parse(&mut prefix, 1 << 20), Ok(None)), "prefix of {cut}");
        }
        let mut buf = BytesMut::from(&text[..]);
        let parsed = head::parse(&mut buf, 1 << 20);
        let parsed = match parsed {
            Ok(Some(parsed)) => parsed,
            other => return Err(TestCaseError::fail(format!(
                "{:?}: {other:?}", String::from_utf8_lossy(&text[..head_len])
            ))),
        };
        prop_assert_eq!(&buf[..], &after[..]);
        prop_assert_eq!(parsed.parts.method.as_str(), method.as_str());
        prop_assert_eq!(parsed.parts.uri.to_string(), target);
        prop_assert_eq!(
            parsed.parts.version,
            if version == "HTTP/1.0" { Version::HTTP_10 } else { Version::HTTP_11 }
        );
        let got: Vec<(String, Vec<Vec<u8>>)> = parsed
            .parts
            .headers
            .keys()
            .map(|name| (
                name.to_string(),
                parsed.parts.headers.get_all(name).iter().map(|v| v.as_bytes().to_vec()).collect(),
            ))
            .collect();
        prop_assert_eq!(got, by_name(&fields));
        let framing = match body {
            BodyKind::None | BodyKind::Length(0) => Framing::Empty,
            BodyKind::Length(n) => Framing::Length(n),
            BodyKind::Chunked => Framing::Chunked,
        };
        prop_assert_eq!(parsed.framing, framing);
        prop_assert_eq!(parsed.keep_alive, !close && version == "HTTP/1.1");
    }

    /// Any body, chunked with any chunk sizes (upper- or lower-case hex, leading zeros,
    /// extensions) and any trailer fields, decodes to itself however the bytes arrive; what
    /// follows the body stays in the buffer.
    #[test]
    fn chunked_bodies_round_trip(
        body in proptest::collection::vec(any::<u8>(), 0..3000),
        sizes in proptest::collection::vec(1usize..700, 1..20),
        styles in proptest::collection::vec(0u8..4, 1..20),
        trailers in proptest::collection::vec(("[A-Za-z][A-Za-z0-9-]{0,10}", "[ -~]{0,20}"), 0..3),
        reads in proptest::collection::vec(1usize..300, 1..40),
        after in proptest::collection::vec(any::<u8>(), 0..32),
    ) {
        let mut wire = Vec::new();
        let mut rest = &body[..];
        let mut i = 0;
        while !rest.is_empty() {
            let take = sizes[i % sizes.len()].min(rest.len());
            let (line, n) = write::chunk_line(take);
            let hex = &line[..n - 2];
            match styles[i % styles.len()] {
                0 => wire.extend_from_slice(hex),
                1 => wire.extend_from_slice(hex.to_ascii_uppercase().as_slice()),
                2 => {
                    wire.extend_from_slice(b"00");
                    wire.extend_from_slice(hex);
                }
                _ => {
                    wire.extend_from_slice(hex);
                    wire.extend_from_slice(b" ;name=value;q=\"a b\"");
                }
            }
            wire.extend_from_slice(b"\r\n");
            wire.extend_from_slice(&rest[..take]);
            wire.extend_from_slice(b"\r\n");
            rest = &rest[take..];
            i += 1;
        }
        wire.extend_from_slice(b"0\r\n");
        for (name, value) in &trailers {
            wire.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        wire.extend_from_slice(b"\r\n");
        let body_end = wire.len();
        wire.extend_from_slice(&after);

        let mut decoder = ChunkedDecoder::default();
        let mut buf = BytesMut::new();
        let mut decoded = Vec::new();
        let mut fed = 0;
        let mut read = 0;
        loop {
            match decoder.decode(&mut buf) {
                Ok(Step::Data(data)) => decoded.extend_from_slice(&data),
                Ok(Step::End) => break,
                Ok(Step::NeedMore) => {
                    prop_assert!(fed < wire.len(), "input ended inside the body");
                    let end = (fed + reads[read % reads.len()]).min(wire.len());
                    read += 1;
                    buf.extend_from_slice(&wire[fed..end]);
                    fed = end;
                }
                Err(error) => return Err(TestCaseError::fail(format!("{error} at {fed}"))),
            }
        }
        prop_assert_eq!(decoded, body);
        prop_assert_eq!(fed - buf.len(), body_end);
        prop_assert_eq!(&buf[..], &wire[body_end..fed]);
    }

    /// Any response head gatehouse writes reads back with httparse to its status, reason and
    /// fields (in order), followed by this hop's framing and connection fields and a Date.
    #[test]
    fn response_heads_round_trip(
        code in 100u16..=999,
        fields in fields(),
        length in proptest::option::of(any::<u64>()),
        head_request in any::<bool>(),
        keep_alive in any::<bool>(),
        http10 in any::<bool>(),
    ) {
        let status = StatusCode::from_u16(code).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut headers = HeaderMap::new();
        for (name, value) in &fields {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let value = HeaderValue::from_bytes(value)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            headers.append(name, value);
        }
        let method = if head_request { Method::HEAD } else { Method::GET };
        let version = if http10 { Version::HTTP_10 } else { Version::HTTP_11 };
        let facts = write::RequestFacts { method: &method, version };
        let framing = write::framing(facts, status, &headers, length);
        let mut out = Vec::new();
        write::encode_head(&mut out, status, &headers, framing, keep_alive, version);

        let mut parsed = vec![httparse::EMPTY_HEADER; fields.len() + 4];
        let mut response = httparse::Response::new(&mut parsed);
        let complete = response.parse(&out);
        prop_assert!(
            matches!(complete, Ok(httparse::Status::Complete(n)) if n == out.len()),
            "{:?}: {complete:?}", String::from_utf8_lossy(&out)
        );
        prop_assert_eq!(response.code, Some(code));
        prop_assert_eq!(response.reason, Some(status.canonical_reason().unwrap_or("Unknown")));
        let got: Vec<(String, Vec<u8>)> = response
            .headers
            .iter()
            .map(|h| (h.name.to_owned(), h.value.to_vec()))
            .collect();
        let mut want: Vec<(String, Vec<u8>)> = headers
            .iter()
            .map(|(name, value)| (name.to_string(), value.as_bytes().to_vec()))
            .collect();
        match framing {
            BodyFraming::Length(n) => want.push(("content-length".into(), n.to_string().into_bytes())),
            BodyFraming::Chunked => want.push(("transfer-encoding".into(), b"chunked".to_vec())),
            BodyFraming::None | BodyFraming::UntilClose => {}
        }
        if !status.is_informational() {
            if !keep_alive {
                want.push(("connection".into(), b"close".to_vec()));
            } else if http10 {
                want.push(("connection".into(), b"keep-alive".to_vec()));
            }
        }
        prop_assert_eq!(&got[..got.len() - 1], &want[..]);
        let (date_name, date) = &got[got.len() - 1];
        prop_assert_eq!(date_name.as_str(), "date");
        let date = String::from_utf8_lossy(date).into_owned();
        prop_assert!(httpdate::parse_http_date(&date).is_ok(), "Date {date:?}");
    }
}
