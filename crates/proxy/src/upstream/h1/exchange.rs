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
use crate::client_body::RequestBody;
use crate::failure::Failure;
use crate::failure::classify::{self, HeadError, HeadFacts};
use crate::http1::Interim;

/// A request that did not get a response head.
#[derive(Debug)]
pub struct SendFailed {
    pub failure: Failure,
    /// The request, when not a byte of it was written: it may go elsewhere.
    pub unsent: Option<Request<RequestBody>>,
}

/// What ended the wait for the head.
enum Ended {
    Head(Response<()>),
    Failed(Failure),
}

/// Sends `request` on `conn` and reads the response head. The connection travels on in the
/// response's body (and back to the pool once that ended well); on failure it is closed.
/// Interim responses go to `interim`, when the client can take them.
pub async fn send(
    mut conn: Box<H1Conn>,
    mut request: Request<RequestBody>,
    interim: Option<Interim>,
) -> Result<Response<ResponseBody>, SendFailed> {
    let head_request = request.method() == Method::HEAD;
    let close_asked = head::asks_close(&request);
    let framing = head::request_framing(&mut request);
    conn.out.clear();
    head::encode_request(&mut conn.out.head, &request);
    let facts_base = (conn.stats.read(), conn.stats.written(), conn.reused());
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
    let ended = std::future::poll_fn(|cx| {
        if conn.is_sending() && write_error.is_none() {
            match conn.poll_send(cx) {
                Poll::Ready(Err(SendError::Body(failure))) => {
                    return Poll::Ready(Ended::Failed(failure));
                }
                Poll::Ready(Err(SendError::Io(err))) => write_error = Some(err),
                Poll::Ready(Ok(())) | Poll::Pending => {}
            }
        }
        let facts = HeadFacts {
            response_bytes: conn.stats.read() - facts_base.0,
            reused: facts_base.2,
        };
        if let Some(err) = &write_error
            && err
                .get_ref()
                .is_some_and(|e| e.is::<crate::failure::marker::WriteStalled>())
        {
            return Poll::Ready(Ended::Failed(classify::head_error(
                HeadError::Write(err),
                facts,
            )));
        }
        loop {
            if !conn.buf.is_empty() {
                match head::parse_response(&mut conn.buf) {
                    Ok(Some(response)) if is_interim(response.status()) => {
                        relay(interim.as_ref(), response);
                        continue;
                    }
                    Ok(Some(response)) => return Poll::Ready(Ended::Head(response)),
                    Ok(None) if conn.buf.len() >= conn.max_head => {
                        return Poll::Ready(Ended::Failed(classify::head_error(
                            HeadError::TooLarge,
                            facts_now(&conn, facts_base),
                        )));
                    }
                    Ok(None) => {}
                    Err(ParseError::TooManyFields) => {
                        return Poll::Ready(Ended::Failed(classify::head_error(
                            HeadError::TooLarge,
                            facts_now(&conn, facts_base),
                        )));
                    }
                    Err(ParseError::Invalid(why)) => {
                        return Poll::Ready(Ended::Failed(classify::head_error(
                            HeadError::Parse(&why),
                            facts,
                        )));
                    }
                }
            }
            match conn.poll_fill(cx) {
                Poll::Ready(Ok(0)) => {
                    let facts = facts_now(&conn, facts_base);
                    let err = match &write_error {
                        Some(err) => HeadError::Write(err),
                        None => HeadError::Closed,
                    };
                    return Poll::Ready(Ended::Failed(classify::head_error(err, facts)));
                }
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(err)) => {
                    let facts = facts_now(&conn, facts_base);
                    return Poll::Ready(Ended::Failed(classify::head_error(
                        HeadError::Read(&err),
                        facts,
                    )));
                }
                Poll::Pending => {
                    // The request could not be written and nothing is there to read: the
                    // connection is gone.
                    if let Some(err) = &write_error {
                        let facts = facts_now(&conn, facts_base);
                        return Poll::Ready(Ended::Failed(classify::head_error(
                            HeadError::Write(err),
                            facts,
                        )));
                    }
                    return Poll::Pending;
                }
            }
        }
    })
    .await;
    match ended {
        Ended::Head(response) => {
            let status = response.status();
            let framing = match head::response_framing(head_request, status, response.headers()) {
                Ok(framing) => framing,
                Err(why) => {
                    return Err(SendFailed {
                        failure: classify::head_error(
                            HeadError::Parse(&why),
                            facts_now(&conn, facts_base),
                        ),
                        unsent: None,
                    });
                }
            };
            let keep_alive = head::keeps_alive(&response) && !close_asked;
            let (parts, ()) = response.into_parts();
            Ok(Response::from_parts(
                parts,
                ResponseBody::new(conn, framing, keep_alive),
            ))
        }
        Ended::Failed(failure) => {
            // Not a byte written: the request goes back whole (its body was never polled,
            // or was read beforehand and is kept by the caller).
            let unsent = (conn.stats.written() == facts_base.1).then(|| {
                let body = match std::mem::replace(&mut conn.sending, Sending::Broken) {
                    Sending::Body { body, .. } => body,
                    Sending::Done | Sending::Broken => RequestBody::empty(),
                };
                Request::from_parts(parts, body)
            });
            Err(SendFailed { failure, unsent })
        }
    }
}

fn facts_now(conn: &H1Conn, base: (u64, u64, bool)) -> HeadFacts {
    HeadFacts {
        response_bytes: conn.stats.read() - base.0,
        reused: base.2,
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
        crate::forward::strip_hop_by_hop(&mut parts.headers);
        interim.send(parts.status, &parts.headers);
    }
}
