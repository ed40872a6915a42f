//! gatehouse's own HTTP/1.1 upstream client: response heads as a server sends them, and the
//! framing and keep-alive decisions taken from them (`upstream::h1::head`).

use bytes::BytesMut;
use gatehouse_proxy::upstream::h1::head::{self, MAX_FIELDS, ParseError, ResponseFraming};
use http::{StatusCode, Version, header};

/// The input is what an upstream sent in answer to a request: the first byte chooses a GET or
/// a HEAD, the rest are the bytes, parsed head after head as the client does (1xx first).
///
/// Checked: an incomplete head consumes nothing; a parsed one is a prefix ending at a line end,
/// every shorter prefix of it incomplete; at most `MAX_FIELDS` fields; every field kept as
/// received; the framing agrees with the fields (no body for HEAD, 1xx, 204 and 304; a
/// Content-Length body only with equal valid values; chunked only when Transfer-Encoding ends in
/// it) and an invalid Content-Length is refused; keep-alive never after `Connection: close`,
/// nor for HTTP/1.0 without keep-alive.
pub fn upstream_response(data: &[u8]) {
    let Some((&choice, rest)) = data.split_first() else {
        return;
    };
    let head_request = choice & 1 == 1;
    let mut input = rest;
    // At most a few interim heads before the final one, as a server might send.
    for _ in 0..4 {
        let mut buf = BytesMut::from(input);
        let response = match head::parse_response(&mut buf) {
            Ok(None) => {
                assert_eq!(&buf[..], input, "an incomplete head consumed bytes");
                return;
            }
            Err(ParseError::TooManyFields) => {
                let lines = input.iter().filter(|&&b| b == b'\n').count();
                assert!(lines > MAX_FIELDS, "too many fields in {lines} lines");
                return;
            }
            Err(ParseError::Invalid(why)) => {
                assert!(!why.is_empty());
                return;
            }
            Ok(Some(response)) => response,
        };
        let used = input.len() - buf.len();
        assert!(
            used > 0 && input[..used].ends_with(b"\n"),
            "head does not end a line"
        );
        assert_eq!(&buf[..], &input[used..], "what follows the head changed");
        for cut in [1, used / 2, used - 1] {
            if cut > 0 && cut < used {
                let mut prefix = BytesMut::from(&input[..cut]);
                assert!(
                    matches!(head::parse_response(&mut prefix), Ok(None)),
                    "a prefix of {cut} of a {used}-byte head parsed"
                );
            }
        }
        check_response(head_request, &response, &input[..used]);
        if !response.status().is_informational()
            || response.status() == StatusCode::SWITCHING_PROTOCOLS
        {
            return;
        }
        input = &input[used..];
    }
}

fn check_response(head_request: bool, response: &http::Response<()>, raw: &[u8]) {
    let headers = response.headers();
    assert!(headers.len() <= MAX_FIELDS);
    assert!(matches!(
        response.version(),
        Version::HTTP_10 | Version::HTTP_11
    ));
    // Every field value is in the head as received.
    for value in headers.values() {
        assert!(
            value.is_empty() || raw.windows(value.len()).any(|w| w == value.as_bytes()),
            "a field value that was not received"
        );
    }
    let status = response.status();
    let framing = head::response_framing(head_request, status, headers);
    let bodiless = head_request
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    match framing {
        Ok(ResponseFraming::None) => assert!(bodiless),
        Ok(ResponseFraming::Length(n)) => {
            assert!(!bodiless && !headers.contains_key(header::TRANSFER_ENCODING));
            for value in headers.get_all(header::CONTENT_LENGTH) {
                for item in value.as_bytes().split(|&b| b == b',') {
                    assert_eq!(
                        std::str::from_utf8(item.trim_ascii())
                            .ok()
                            .and_then(|t| t.parse().ok()),
                        Some(n)
                    );
                }
            }
        }
        Ok(ResponseFraming::Chunked) => {
            let te = headers
                .get(header::TRANSFER_ENCODING)
                .map(|v| v.as_bytes().to_ascii_lowercase());
            assert!(te.is_some_and(|te| te.trim_ascii_end().ends_with(b"chunked")));
        }
        Ok(ResponseFraming::UntilClose) => assert!(!bodiless),
        Err(_) => assert!(headers.contains_key(header::CONTENT_LENGTH)),
    }
    if head::keeps_alive(response) {
        let connection: Vec<Vec<u8>> = headers
            .get_all(header::CONNECTION)
            .iter()
            .map(|v| v.as_bytes().to_ascii_lowercase())
            .collect();
        assert!(
            !connection
                .iter()
                .any(|v| v.split(|&b| b == b',').any(|o| o.trim_ascii() == b"close"))
        );
        if response.version() == Version::HTTP_10 {
            assert!(connection.iter().any(|v| {
                v.split(|&b| b == b',')
                    .any(|o| o.trim_ascii() == b"keep-alive")
            }));
        }
    }
}
