//! One request on an [`H1Conn`]: the head written (with a body read beforehand in the same
//! write), the body streamed, and the response head read meanwhile, so that a server that
//! answers before the body is complete (a 413, say) is heard at once. Interim (1xx) responses
//! on the way are relayed to the client and skipped.

use std::io;
use std::task::Poll;

use http::{Method, Request, Response, StatusCode};

use super::body::ResponseBody;
use super::head::{self, ParseError, RequestFraming};
use super::{H1Conn, SendError, Sending};
use crate::client_body::Interim;
use crate::client_body::RequestBody;
use crate::failure::Failure;
use crate::failure::classify::{self, HeadError, HeadFacts};

/// A request that did not get a response head.
#[derive(Debug)]
pub struct SendFailed {
    pub failure: Failure,
    /// The request, when not a byte of it was written: it may go elsewhere. Boxed: it is rare,
    /// and a large error would be copied with every response.
    pub unsent: Option<Box<Request<RequestBody>>>,
}

/// What ended the wait for the head.
enum Ended {
    Head(Response<()>),
    /// The client's body failed: its own failure, already classified.
    Client(Failure),
    NoHead(Why),
}

/// Sends `request` on `conn` and reads the response head. The connection travels on in the
/// response's body (and back to the pool once that ended well); on failure it is closed.
/// Interim responses go to `interim`, when the client can take them.
pub async fn send(
    mut conn: Box<H1Conn>,
    mut request: Request<RequestBody>,
    interim: Option<Interim>,
) -> Result<Response<ResponseBody>, SendFailed> {
    let started = start(&mut conn, &mut request);
    send_started(conn, started, request, interim).await
}

/// What [`start`] learnt of a request whose head it encoded.
#[derive(Debug)]
pub struct Started {
    head_request: bool,
    close_asked: bool,
    framing: RequestFraming,
}

/// The first step of [`send`], done at once: the request's framing settled and its head
/// encoded into the connection's output. The request's header fields are not read after this.
pub fn start(conn: &mut H1Conn, request: &mut Request<RequestBody>) -> Started {
    let head_request = request.method() == Method::HEAD;
    let close_asked = head::asks_close(request);
    let framing = head::request_framing(request);
    conn.out.clear();
    head::encode_request(&mut conn.out.head, request);
    Started {
        head_request,
        close_asked,
        framing,
    }
}

/// The rest of [`send`], for a request [`start`] began on `conn`. A request that comes back
/// unsent has the header fields it has now.
pub async fn send_started(
    mut conn: Box<H1Conn>,
    started: Started,
    request: Request<RequestBody>,
    interim: Option<Interim>,
) -> Result<Response<ResponseBody>, SendFailed> {
    let Started {
        head_request,
        close_asked,
        framing,
    } = started;
    let before = Before {
        read: conn.stats.read(),
        written: conn.stats.written(),
        reused: conn.reused(),
    };
    let (parts, mut body) = request.into_parts();
    conn.sending = match framing {
        RequestFraming::None => Sending::Done,
        RequestFraming::Length | RequestFraming::Chunked => {
            // A body read beforehand goes out with the head, in one write.
            if framing == RequestFraming::Length
                && let Some(bytes) = body.take_buffered()
            {
                conn.out.data = bytes;
            }
            Sending::Body {
                body,
                chunked: framing == RequestFraming::Chunked,
            }
        }
    };
    let mut write_error: Option<io::Error> = None;
    let mut relayed = 0;
    let ended = std::future::poll_fn(|cx| {
        if conn.is_sending() && write_error.is_none() {
            match conn.poll_send(cx) {
                Poll::Ready(Err(SendError::Body(failure))) => {
                    return Poll::Ready(Ended::Client(failure));
                }
                Poll::Ready(Err(SendError::Io(err))) => write_error = Some(err),
                Poll::Ready(Ok(())) | Poll::Pending => {}
            }
        }
        if let Some(stalled) = write_error.take_if(|err| {
            err.get_ref()
                .is_some_and(|e| e.is::<crate::failure::marker::WriteStalled>())
        }) {
            return Poll::Ready(Ended::NoHead(Why::Write(stalled)));
        }
        loop {
            if !conn.buf.is_empty() {
                let buffered = conn.buf.len();
                match head::parse_response(&mut conn.buf) {
                    // A head that arrived whole is held to the limit too, not only one still
                    // arriving.
                    Ok(Some(_)) if buffered - conn.buf.len() > conn.max_head => {
                        return Poll::Ready(Ended::NoHead(Why::TooLarge));
                    }
                    Ok(Some(response)) if is_interim(response.status()) => {
                        if relayed < crate::forward::MAX_INTERIM_RELAYED {
                            relayed += 1;
                            relay(interim.as_ref(), response);
                        }
                        continue;
                    }
                    Ok(Some(response)) => return Poll::Ready(Ended::Head(response)),
                    Ok(None) if conn.buf.len() >= conn.max_head => {
                        return Poll::Ready(Ended::NoHead(Why::TooLarge));
                    }
                    Ok(None) => {}
                    Err(ParseError::TooManyFields) => {
                        return Poll::Ready(Ended::NoHead(Why::TooManyFields));
                    }
                    Err(ParseError::Invalid(why)) => {
                        return Poll::Ready(Ended::NoHead(Why::Parse(why)));
                    }
                }
            }
            match conn.poll_fill(cx) {
                Poll::Ready(Ok(0)) => {
                    let why = write_error.take().map_or(Why::Closed, Why::Write);
                    return Poll::Ready(Ended::NoHead(why));
                }
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(err)) => return Poll::Ready(Ended::NoHead(Why::Read(err))),
                // The request could not be written and nothing is there to read: the
                // connection is gone.
                Poll::Pending => {
                    return match write_error.take() {
                        Some(err) => Poll::Ready(Ended::NoHead(Why::Write(err))),
                        None => Poll::Pending,
                    };
                }
            }
        }
    })
    .await;
    let failure = match ended {
        Ended::Head(response) => {
            let status = response.status();
            match head::response_framing(head_request, status, response.headers()) {
                Ok(framing) => {
                    let keep_alive = head::keeps_alive(&response) && !close_asked;
                    let (parts, ()) = response.into_parts();
                    return Ok(Response::from_parts(
                        parts,
                        ResponseBody::new(conn, framing, keep_alive),
                    ));
                }
                Err(why) => classify::head_error(HeadError::Parse(&why), before.facts(&conn)),
            }
        }
        Ended::Client(failure) => failure,
        Ended::NoHead(why) => classify::head_error(why.as_head_error(), before.facts(&conn)),
    };
    // Not a byte written: the request goes back whole (its body was never polled, or was read
    // beforehand and is kept by the caller).
    let unsent = (conn.stats.written() == before.written).then(|| {
        let body = match std::mem::replace(&mut conn.sending, Sending::Broken) {
            Sending::Body { body, .. } => body,
            Sending::Done | Sending::Broken => RequestBody::empty(),
        };
        Box::new(Request::from_parts(parts, body))
    });
    Err(SendFailed { failure, unsent })
}

/// The connection's counters before the request, and whether it had served others.
#[derive(Clone, Copy)]
struct Before {
    read: u64,
    written: u64,
    reused: bool,
}

impl Before {
    /// What the classifier needs to know now.
    fn facts(&self, conn: &H1Conn) -> HeadFacts {
        HeadFacts {
            response_bytes: conn.stats.read() - self.read,
            reused: self.reused,
        }
    }
}

/// Why no response head came, until it is classified.
enum Why {
    Closed,
    Read(io::Error),
    Write(io::Error),
    Parse(String),
    TooLarge,
    TooManyFields,
}

impl Why {
    fn as_head_error(&self) -> HeadError<'_> {
        match self {
            Self::Closed => HeadError::Closed,
            Self::Read(err) => HeadError::Read(err),
            Self::Write(err) => HeadError::Write(err),
            Self::Parse(why) => HeadError::Parse(why),
            Self::TooLarge => HeadError::TooLarge,
            Self::TooManyFields => HeadError::TooManyFields(head::MAX_FIELDS),
        }
    }
}

/// A 1xx other than `101` (which is final: the connection switches protocols).
fn is_interim(status: StatusCode) -> bool {
    status.is_informational() && status != StatusCode::SWITCHING_PROTOCOLS
}

/// Relays an interim response to the client, hop-by-hop fields removed (RFC 9110 §15.2).
fn relay(interim: Option<&Interim>, response: Response<()>) {
    if let Some(interim) = interim {
        let (mut parts, ()) = response.into_parts();
        crate::forward::interim_fields(&mut parts.headers);
        interim.send(parts.status, &parts.headers);
    }
}
