//! Classifying errors that come out of hyper into failure kinds.
//!
//! Where gatehouse itself detects a failure (connect, DNS, its own timeouts) the kind is set at
//! the detection site. What hyper reports is classified here, from hyper's predicates
//! (`is_parse`, `is_incomplete_message`, ...) and by walking `source()` for the I/O error or for
//! gatehouse's own marker errors ([`WriteStalled`], [`DownstreamBodyError`]), never from message
//! strings. The byte counts of the connection decide what the predicates cannot: a close before
//! any response byte is `connection_terminated`, after some is `http_response_incomplete`.

use std::error::Error as StdError;
use std::io;

use http::{StatusCode, header};

use super::marker::{DownstreamBodyError, WriteStalled};
use super::{Failure, FailureKind, Phase};

/// The first error of type `T` in the `source()` chain of `err` (including `err`).
pub fn find_cause<'a, T: StdError + 'static>(err: &'a (dyn StdError + 'static)) -> Option<&'a T> {
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<T>() {
            return Some(found);
        }
        // `io::Error::source()` skips the error it wraps (it returns the wrapped error's
        // source), so a marker like `WriteStalled` inside an io::Error is looked at here.
        if let Some(found) = e
            .downcast_ref::<io::Error>()
            .and_then(io::Error::get_ref)
            .and_then(|inner| inner.downcast_ref::<T>())
        {
            return Some(found);
        }
        current = e.source();
    }
    None
}

/// The deepest I/O error in the chain, if any.
fn io_error<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a io::Error> {
    find_cause::<io::Error>(err)
}

/// What was known about the connection when the response head failed.
#[derive(Debug, Clone, Copy)]
pub struct HeadFacts {
    /// Response bytes received on this request before the error.
    pub response_bytes: u64,
    /// Whether the connection had served earlier requests.
    pub reused: bool,
}

/// A failure while sending the request or waiting for the response head.
pub fn response_head_error(err: &hyper::Error, facts: HeadFacts) -> Failure {
    let chain: &(dyn StdError + 'static) = err;
    if let Some(DownstreamBodyError(failure)) = find_cause::<DownstreamBodyError>(chain) {
        return failure.clone();
    }
    if let Some(stalled) = find_cause::<WriteStalled>(chain) {
        return Failure::new(
            FailureKind::ConnectionWriteTimeout,
            Phase::SendingRequest,
            format!("upstream stopped reading the request: {stalled}"),
        );
    }
    if err.is_parse_too_large() {
        return too_large(facts);
    }
    if err.is_parse() || err.is_parse_status() {
        return Failure::new(
            FailureKind::HttpProtocolError,
            Phase::ReadingResponseHeaders,
            format!("invalid HTTP/1.x response head: {}", describe(err)),
        );
    }
    let closed_early = facts.response_bytes == 0;
    if err.is_incomplete_message() || err.is_closed() || err.is_canceled() || is_reset(chain) {
        let mut failure = closed(facts, &describe(err));
        if closed_early {
            failure.os_error = io_error(chain).and_then(io::Error::raw_os_error);
        }
        return failure;
    }
    let phase = if closed_early {
        Phase::SendingRequest
    } else {
        Phase::ReadingResponseHeaders
    };
    let mut failure = Failure::new(FailureKind::ConnectionTerminated, phase, describe(err));
    failure.os_error = io_error(chain).and_then(io::Error::raw_os_error);
    failure
}

/// What went wrong on gatehouse's own HTTP/1.1 upstream connection before the response head
/// was complete: the same kinds, phases and words as [`response_head_error`] gives hyper's.
#[derive(Debug)]
pub enum HeadError<'a> {
    /// The connection ended (no error: a FIN).
    Closed,
    /// Reading failed.
    Read(&'a io::Error),
    /// Writing the request failed (a stall, a reset).
    Write(&'a io::Error),
    /// The head is not HTTP/1.x.
    Parse(&'a str),
    /// No end of the head within the limit, or a head larger than it.
    TooLarge,
    /// More fields than the given most that are kept, whatever their size.
    TooManyFields(usize),
}

/// A failure of gatehouse's own HTTP/1.1 client before the response head was complete.
pub fn head_error(err: HeadError<'_>, facts: HeadFacts) -> Failure {
    const CLOSED: &str = "connection closed before message completed";
    match err {
        HeadError::Write(io) => {
            if let Some(stalled) = io.get_ref().and_then(|e| e.downcast_ref::<WriteStalled>()) {
                return Failure::new(
                    FailureKind::ConnectionWriteTimeout,
                    Phase::SendingRequest,
                    format!("upstream stopped reading the request: {stalled}"),
                );
            }
            if is_reset(io) {
                return closed(facts, &format!("error writing a body to connection: {io}"))
                    .with_os_error(io);
            }
            let phase = if facts.response_bytes == 0 {
                Phase::SendingRequest
            } else {
                Phase::ReadingResponseHeaders
            };
            Failure::new(FailureKind::ConnectionTerminated, phase, io.to_string()).with_os_error(io)
        }
        HeadError::Read(io) if is_reset(io) => closed(facts, &io.to_string()).with_os_error(io),
        HeadError::Read(io) => {
            let phase = if facts.response_bytes == 0 {
                Phase::SendingRequest
            } else {
                Phase::ReadingResponseHeaders
            };
            Failure::new(FailureKind::ConnectionTerminated, phase, io.to_string()).with_os_error(io)
        }
        HeadError::Closed => closed(facts, CLOSED),
        HeadError::Parse(why) => Failure::new(
            FailureKind::HttpProtocolError,
            Phase::ReadingResponseHeaders,
            format!("invalid HTTP/1.x response head: {why}"),
        ),
        HeadError::TooLarge => too_large(facts),
        HeadError::TooManyFields(most) => {
            let mut failure = Failure::new(
                FailureKind::HttpResponseHeaderSectionSize,
                Phase::ReadingResponseHeaders,
                format!(
                    "response head has more than {most} header fields, the most gatehouse keeps \
                     (a count, not a size: max_response_header_size does not change it)"
                ),
            );
            failure.params.header_section_size = Some(facts.response_bytes);
            failure
        }
    }
}

/// The response head exceeded the size limit.
fn too_large(facts: HeadFacts) -> Failure {
    let mut failure = Failure::new(
        FailureKind::HttpResponseHeaderSectionSize,
        Phase::ReadingResponseHeaders,
        format!(
            "response header section exceeds max_response_header_size ({} bytes received)",
            facts.response_bytes
        ),
    );
    failure.params.header_section_size = Some(facts.response_bytes);
    failure
}

/// The connection closed (or was reset) before the response head was complete: nothing came
/// back (`connection_terminated`), or part of the head did (`http_response_incomplete`).
fn closed(facts: HeadFacts, why: &str) -> Failure {
    if facts.response_bytes == 0 {
        let stale = if facts.reused {
            " (on a reused keep-alive connection)"
        } else {
            ""
        };
        Failure::new(
            FailureKind::ConnectionTerminated,
            Phase::ReadingResponseHeaders,
            format!(
                "upstream closed the connection before sending any response byte{stale}: {why}"
            ),
        )
    } else {
        Failure::new(
            FailureKind::HttpResponseIncomplete,
            Phase::ReadingResponseHeaders,
            format!(
                "upstream closed the connection after {} bytes of the response head: {why}",
                facts.response_bytes
            ),
        )
    }
}

/// A response body that broke off on gatehouse's own HTTP/1.1 client: the connection ended
/// (`None`: a FIN) or failed before the body's end.
pub fn body_ended_early(err: Option<&io::Error>) -> Failure {
    let why = err.map_or_else(
        || "connection closed before message completed".to_owned(),
        ToString::to_string,
    );
    let mut failure = Failure::new(
        FailureKind::HttpResponseIncomplete,
        Phase::ReadingResponseBody,
        format!("upstream closed the connection before the end of the response body: {why}"),
    );
    failure.os_error = err.and_then(io::Error::raw_os_error);
    failure
}

/// A chunked response body that does not decode.
pub fn body_transfer_coding(why: &dyn std::fmt::Display) -> Failure {
    let mut failure = Failure::new(
        FailureKind::HttpResponseTransferCoding,
        Phase::ReadingResponseBody,
        format!("invalid chunked encoding in the response body: {why}"),
    );
    failure.params.coding = Some("chunked".to_owned());
    failure
}

/// No complete response header section within `response_timeout` after the request was sent.
pub fn response_timeout(response_timeout: std::time::Duration) -> Failure {
    Failure::new(
        FailureKind::HttpResponseTimeout,
        Phase::ReadingResponseHeaders,
        format!(
            "no complete response header section within response_timeout ({response_timeout:?})"
        ),
    )
}

/// A final status code is 100 to 599 (RFC 9110 §15); `http` takes up to 999, and an HTTP/2
/// upstream's `:status` is not checked otherwise (the HTTP/1.1 client refuses it as it parses).
pub fn response_status(status: http::StatusCode) -> Result<(), Failure> {
    if status.as_u16() <= 599 {
        return Ok(());
    }
    Err(Failure::new(
        FailureKind::HttpProtocolError,
        Phase::ReadingResponseHeaders,
        format!(
            "response status {} is outside 100-599 (RFC 9110 §15)",
            status.as_u16()
        ),
    ))
}

/// Checks the response's message framing before forwarding it. Returns whether it is chunked.
///
/// RFC 9112 §6.1: gatehouse decodes only `chunked`; any other transfer coding cannot be
/// forwarded faithfully once the hop-by-hop `Transfer-Encoding` is removed. §6.3: a response
/// with both Transfer-Encoding and Content-Length "ought to be handled as an error" (it is a
/// response-splitting vector), so it is refused rather than guessed at.
pub fn response_framing(headers: &http::HeaderMap) -> Result<bool, Failure> {
    let mut chunked = false;
    for value in headers.get_all(header::TRANSFER_ENCODING) {
        for coding in value
            .to_str()
            .unwrap_or("?")
            .split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
        {
            if coding.eq_ignore_ascii_case("chunked") {
                chunked = true;
            } else {
                let mut failure = Failure::new(
                    FailureKind::HttpResponseTransferCoding,
                    Phase::ReadingResponseHeaders,
                    format!(
                        "response uses transfer coding {coding:?}, which gatehouse cannot decode"
                    ),
                );
                failure.params.coding = Some(coding.to_ascii_lowercase());
                return Err(failure);
            }
        }
    }
    if chunked && headers.contains_key(header::CONTENT_LENGTH) {
        return Err(Failure::new(
            FailureKind::HttpProtocolError,
            Phase::ReadingResponseHeaders,
            "response has both Transfer-Encoding and Content-Length (RFC 9112 §6.3)",
        ));
    }
    Ok(chunked)
}

/// A failure while streaming the response body (after the head was received).
pub fn response_body_error(err: &(dyn StdError + 'static), chunked: bool) -> Failure {
    if let Some(io) = io_error(err) {
        match io.kind() {
            io::ErrorKind::InvalidInput | io::ErrorKind::InvalidData if chunked => {
                let mut failure = Failure::new(
                    FailureKind::HttpResponseTransferCoding,
                    Phase::ReadingResponseBody,
                    format!("invalid chunked encoding in the response body: {io}"),
                );
                failure.params.coding = Some("chunked".to_owned());
                return failure;
            }
            _ => {}
        }
    }
    let mut failure = Failure::new(
        FailureKind::HttpResponseIncomplete,
        Phase::ReadingResponseBody,
        format!(
            "upstream closed the connection before the end of the response body: {}",
            describe(err)
        ),
    );
    failure.os_error = io_error(err).and_then(io::Error::raw_os_error);
    failure
}

/// A client's HTTP/2 request body that did not arrive whole: the client reset the stream or
/// sent GOAWAY, or its connection went (it is gone: 499 in the log); or gatehouse ended the
/// stream or the connection itself, for a body that broke HTTP/2's rules (DATA beyond the
/// `Content-Length`, an END_STREAM short of it, flow control) or a client it sent away.
pub fn http2_request_body_error(err: &h2::Error) -> Failure {
    if err.is_io() || err.is_remote() {
        let why = if err.is_reset() {
            "the client reset the stream before sending the whole request body"
        } else {
            "the client closed the connection before sending the whole request body"
        };
        return Failure::client_gone(format!("{why}: {err}"));
    }
    Failure::client(
        StatusCode::BAD_REQUEST,
        format!("the request body's stream was ended by gatehouse (HTTP/2 rules broken): {err}"),
    )
}

fn is_reset(err: &(dyn StdError + 'static)) -> bool {
    io_error(err).is_some_and(|e| {
        matches!(
            e.kind(),
            io::ErrorKind::ConnectionReset
                | io::ErrorKind::BrokenPipe
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::UnexpectedEof
        )
    })
}

/// hyper's Display names only the outermost error; the operator needs the whole chain.
pub fn describe(err: &(dyn StdError + 'static)) -> String {
    let mut text = err.to_string();
    let mut current = err.source();
    while let Some(e) = current {
        let part = e.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        current = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_marker_wrapped_in_an_io_error() {
        let err = io::Error::new(
            io::ErrorKind::TimedOut,
            WriteStalled(std::time::Duration::from_secs(1)),
        );
        let outer: Box<dyn StdError + 'static> = Box::new(err);
        assert!(find_cause::<WriteStalled>(outer.as_ref()).is_some());
        assert!(find_cause::<DownstreamBodyError>(outer.as_ref()).is_none());
    }
}
