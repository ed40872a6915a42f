//! Just enough HTTP/1.1 message parsing for the test client and the mock upstreams: heads via
//! `httparse`, bodies by their framing, with a strict eye on whether a message is complete.

/// A header section as received, in order, names as sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(pub Vec<(String, String)>);

impl Headers {
    fn from_httparse(headers: &[httparse::Header<'_>]) -> Self {
        Self(
            headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_owned(),
                        String::from_utf8_lossy(h.value).into_owned(),
                    )
                })
                .collect(),
        )
    }

    /// The first value of `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.get_all(name).into_iter().next()
    }

    /// Every value of `name`, in order.
    pub fn get_all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// The names, lowercased, in order.
    pub fn names(&self) -> Vec<String> {
        self.0.iter().map(|(n, _)| n.to_ascii_lowercase()).collect()
    }
}

/// How a message's body is delimited (RFC 9112 §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body at all (HEAD responses, 1xx, 204, 304, requests without length).
    None,
    Length(u64),
    Chunked,
    /// A response without length: the body runs until the connection closes.
    UntilClose,
}

impl Framing {
    fn from_headers(headers: &Headers, until_close_default: bool) -> Self {
        let te = headers.get_all("transfer-encoding").join(",");
        if !te.trim().is_empty() {
            let last = te.rsplit(',').next().unwrap_or("").trim();
            return if last.eq_ignore_ascii_case("chunked") {
                Self::Chunked
            } else {
                Self::UntilClose
            };
        }
        match headers
            .get("content-length")
            .and_then(|v| v.trim().parse().ok())
        {
            Some(n) => Self::Length(n),
            None if until_close_default => Self::UntilClose,
            None => Self::None,
        }
    }

    /// The framing of a response to a request with `method`.
    pub(crate) fn of_response(status: u16, headers: &Headers, head_request: bool) -> Self {
        if head_request || (100..200).contains(&status) || status == 204 || status == 304 {
            Self::None
        } else {
            Self::from_headers(headers, true)
        }
    }

    pub(crate) fn of_request(headers: &Headers) -> Self {
        Self::from_headers(headers, false)
    }
}

/// A parsed message head and where its body starts in the buffer.
#[derive(Debug)]
pub(crate) struct ResponseHead {
    pub(crate) status: u16,
    pub(crate) reason: String,
    pub(crate) headers: Headers,
    pub(crate) len: usize,
}

#[derive(Debug)]
pub(crate) struct RequestHead {
    pub(crate) method: String,
    pub(crate) target: String,
    pub(crate) version: u8,
    pub(crate) headers: Headers,
    pub(crate) len: usize,
}

/// `Ok(None)` while the head is incomplete.
pub(crate) fn parse_response_head(buf: &[u8]) -> Result<Option<ResponseHead>, String> {
    let mut storage = vec![httparse::EMPTY_HEADER; 1024];
    let mut response = httparse::Response::new(&mut storage);
    match response.parse(buf) {
        Ok(httparse::Status::Complete(len)) => Ok(Some(ResponseHead {
            status: response.code.unwrap_or(0),
            reason: response.reason.unwrap_or("").to_owned(),
            headers: Headers::from_httparse(response.headers),
            len,
        })),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(e) => Err(format!("invalid response head: {e}")),
    }
}

pub(crate) fn parse_request_head(buf: &[u8]) -> Result<Option<RequestHead>, String> {
    let mut storage = vec![httparse::EMPTY_HEADER; 1024];
    let mut request = httparse::Request::new(&mut storage);
    match request.parse(buf) {
        Ok(httparse::Status::Complete(len)) => Ok(Some(RequestHead {
            method: request.method.unwrap_or("").to_owned(),
            target: request.path.unwrap_or("").to_owned(),
            version: request.version.unwrap_or(1),
            headers: Headers::from_httparse(request.headers),
            len,
        })),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(e) => Err(format!("invalid request head: {e}")),
    }
}

/// How far a body has arrived.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum BodyState {
    /// The whole body, and how many buffer bytes it took (framing included).
    Complete { body: Vec<u8>, consumed: usize },
    /// Not all of it yet; what was decoded so far.
    Partial { body: Vec<u8> },
    /// The framing itself is broken (e.g. an invalid chunk size line).
    Invalid { body: Vec<u8>, why: String },
}

/// Decodes the body at the start of `buf` according to `framing`. `eof` says the connection
/// closed after `buf` (which completes an until-close body and nothing else).
pub(crate) fn body_state(framing: Framing, buf: &[u8], eof: bool) -> BodyState {
    match framing {
        Framing::None => BodyState::Complete {
            body: Vec::new(),
            consumed: 0,
        },
        Framing::Length(n) => {
            let n = usize::try_from(n).unwrap_or(usize::MAX);
            if buf.len() >= n {
                BodyState::Complete {
                    body: buf[..n].to_vec(),
                    consumed: n,
                }
            } else {
                BodyState::Partial { body: buf.to_vec() }
            }
        }
        Framing::UntilClose if eof => BodyState::Complete {
            body: buf.to_vec(),
            consumed: buf.len(),
        },
        Framing::UntilClose => BodyState::Partial { body: buf.to_vec() },
        Framing::Chunked => dechunk(buf),
    }
}

fn find_crlf(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}

/// Decodes a chunked body (RFC 9112 §7.1), trailers skipped.
fn dechunk(buf: &[u8]) -> BodyState {
    let mut body = Vec::new();
    let mut pos = 0;
    loop {
        let Some(line_len) = find_crlf(&buf[pos..]) else {
            return BodyState::Partial { body };
        };
        let line = String::from_utf8_lossy(&buf[pos..pos + line_len]).into_owned();
        let size_text = line.split(';').next().unwrap_or("").trim();
        let Ok(size) = usize::from_str_radix(size_text, 16) else {
            return BodyState::Invalid {
                body,
                why: format!("invalid chunk size line {line:?}"),
            };
        };
        pos += line_len + 2;
        if size == 0 {
            // Trailer fields, then the empty line.
            loop {
                let Some(len) = find_crlf(&buf[pos..]) else {
                    return BodyState::Partial { body };
                };
                pos += len + 2;
                if len == 0 {
                    return BodyState::Complete {
                        body,
                        consumed: pos,
                    };
                }
            }
        }
        if buf.len() < pos + size + 2 {
            body.extend_from_slice(&buf[pos..buf.len().min(pos + size)]);
            return BodyState::Partial { body };
        }
        body.extend_from_slice(&buf[pos..pos + size]);
        if &buf[pos + size..pos + size + 2] != b"\r\n" {
            return BodyState::Invalid {
                body,
                why: "chunk data not followed by CRLF".to_owned(),
            };
        }
        pos += size + 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_complete_partial_invalid() {
        assert_eq!(
            body_state(Framing::Chunked, b"5\r\nhello\r\n0\r\n\r\nNEXT", false),
            BodyState::Complete {
                body: b"hello".to_vec(),
                consumed: 15
            }
        );
        assert_eq!(
            body_state(
                Framing::Chunked,
                b"5\r\nhello\r\n0\r\nx-t: 1\r\n\r\n",
                false
            ),
            BodyState::Complete {
                body: b"hello".to_vec(),
                consumed: 23
            }
        );
        assert_eq!(
            body_state(Framing::Chunked, b"5\r\nhello\r\n3\r\nab", true),
            BodyState::Partial {
                body: b"helloab".to_vec()
            }
        );
        assert!(matches!(
            body_state(Framing::Chunked, b"zz\r\n", false),
            BodyState::Invalid { .. }
        ));
    }

    #[test]
    fn length_and_close_delimited() {
        assert_eq!(
            body_state(Framing::Length(3), b"ab", true),
            BodyState::Partial {
                body: b"ab".to_vec()
            }
        );
        assert_eq!(
            body_state(Framing::Length(2), b"abc", false),
            BodyState::Complete {
                body: b"ab".to_vec(),
                consumed: 2
            }
        );
        assert_eq!(
            body_state(Framing::UntilClose, b"abc", true),
            BodyState::Complete {
                body: b"abc".to_vec(),
                consumed: 3
            }
        );
    }

    #[test]
    fn framing_rules() {
        let h = |pairs: &[(&str, &str)]| {
            Headers(
                pairs
                    .iter()
                    .map(|(n, v)| ((*n).into(), (*v).into()))
                    .collect(),
            )
        };
        assert_eq!(
            Framing::of_response(200, &h(&[("Content-Length", "5")]), true),
            Framing::None
        );
        assert_eq!(
            Framing::of_response(200, &h(&[("Transfer-Encoding", "chunked")]), false),
            Framing::Chunked
        );
        assert_eq!(
            Framing::of_response(200, &h(&[]), false),
            Framing::UntilClose
        );
        assert_eq!(Framing::of_request(&h(&[])), Framing::None);
    }
}
