//! Prepare the upstream request: the forwarding header fields, origin-form, HTTP/1.1, and the
//! body, kept ([`Outgoing`]) so that a retry can send the request to another server.

use bytes::Bytes;
use gatehouse_config::RetryPolicy;
use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Request, StatusCode, Uri, Version};
use tokio::sync::oneshot;

use super::{Pipeline, UpgradeRequest};
use crate::client_body::{ClientBody, RequestBody};
use crate::client_io::ClientActivity;
use crate::client_pace::ClientPace;
use crate::failure::Failure;
use crate::forward;

/// Request bodies up to this size (declared by Content-Length) are read before the first
/// attempt when the request may be retried, so that another server can get them too.
const REPLAY_BUFFER: u64 = 64 * 1024;

/// The request as it is forwarded, kept so that it can be sent to another server.
///
/// Each attempt takes the header fields; one that fails gives them back (see
/// [`Taken::keep_head`]), so a request is not copied for every attempt.
pub(super) struct Outgoing {
    parts: http::request::Parts,
    body: OutgoingBody,
    /// Whether a later attempt may need the head again after one sent it.
    keep_copy: bool,
    /// Whether the request may be sent again after it may have reached a server.
    pub(super) replayable: bool,
}

// Both variants live inside the request's own future; boxing the larger one would only add an
// allocation per request with a body.
#[allow(clippy::large_enum_variant)]
enum OutgoingBody {
    /// No body, or one read completely: it can be sent any number of times.
    Full(Bytes),
    /// The client's body streams through; it can be sent once, unless it comes back unsent.
    Streaming(Option<(RequestBody, oneshot::Receiver<()>)>),
}

impl Outgoing {
    /// Whether another attempt can have the request.
    pub(super) fn can_take(&self) -> bool {
        match &self.body {
            OutgoingBody::Full(_) => true,
            OutgoingBody::Streaming(body) => body.is_some(),
        }
    }

    /// The request for the next attempt, or `None` when its body was spent on an earlier one.
    pub(super) fn take(&mut self) -> Option<Taken> {
        let (body, sent) = match &mut self.body {
            OutgoingBody::Full(bytes) => (RequestBody::full(bytes.clone()), None),
            OutgoingBody::Streaming(body) => {
                let (body, sent) = body.take()?;
                (body, Some(sent))
            }
        };
        let mut request = Request::new(body);
        *request.method_mut() = self.parts.method.clone();
        *request.uri_mut() = self.parts.uri.clone();
        *request.version_mut() = self.parts.version;
        *request.headers_mut() = std::mem::take(&mut self.parts.headers);
        Some(Taken {
            request,
            sent,
            keep_head: self.keep_copy,
        })
    }

    /// A request that was never sent comes back for the next attempt.
    pub(super) fn give_back(
        &mut self,
        (request, sent): (Request<RequestBody>, Option<oneshot::Receiver<()>>),
    ) {
        let (parts, body) = request.into_parts();
        self.parts.headers = parts.headers;
        if let (OutgoingBody::Streaming(slot @ None), Some(sent)) = (&mut self.body, sent) {
            *slot = Some((body, sent));
        }
    }

    /// The header fields of a request that was sent, kept by its attempt (`keep_head`), come
    /// back for the next attempt.
    pub(super) fn give_back_head(&mut self, head: http::HeaderMap) {
        self.parts.headers = head;
    }
}

/// A request taken for an attempt.
pub(super) struct Taken {
    pub(super) request: Request<RequestBody>,
    /// Fires once the whole body was handed over (a streamed body).
    pub(super) sent: Option<oneshot::Receiver<()>>,
    /// A later attempt may need the request again even after this one sent it: the attempt
    /// keeps its header fields as they were taken and hands them back if it fails (unsent, in
    /// the request; sent, with [`Outgoing::give_back_head`]).
    pub(super) keep_head: bool,
}

impl Outgoing {
    /// The request as it will be forwarded. A small body is read first when the request may be
    /// retried, so that a retry can send it again; any other streams through once.
    pub(super) async fn prepare(
        parts: Parts,
        body: ClientBody,
        policy: &RetryPolicy,
        replayable: bool,
        pace: ClientPace,
    ) -> Result<Self, Failure> {
        let body = if body_is_empty(&body) {
            OutgoingBody::Full(Bytes::new())
        } else if replayable
            && policy.attempts > 1
            && declared_length(&parts.headers).is_some_and(|n| n <= REPLAY_BUFFER)
        {
            // Small bodies are read first so that a retry can send them again.
            OutgoingBody::Full(Box::pin(read_body(body, pace)).await?)
        } else {
            let (body, sent) = RequestBody::streaming(body, pace);
            OutgoingBody::Streaming(Some((body, sent)))
        };
        Ok(Self {
            parts,
            body,
            // A request that may be replayed after it was sent needs its head kept: with
            // `attempts > 1` for a retry, and with any `attempts` for the keep-alive race (a
            // kept-alive connection the server closed just as the request was written, which
            // sends it again without using up an attempt). Any other comes back from the
            // connection when it was not sent.
            keep_copy: replayable,
            replayable,
        })
    }
}

impl Pipeline<'_> {
    /// The header fields a proxy adds or removes (RFC 9110 §7.6: hop-by-hop fields out; Via,
    /// X-Forwarded-*, X-Request-Id in), then origin-form and HTTP/1.1 towards the upstream.
    pub(super) fn forward_headers(
        &self,
        parts: &mut Parts,
        upgrade: Option<&UpgradeRequest>,
        activity: &ClientActivity,
    ) {
        let no_id = HeaderValue::from_static("-");
        let request_id = self.request_id_header.as_ref().unwrap_or(&no_id);
        // The check phase made Host the target's authority (absolute-form, `:authority`).
        let host_header = parts.headers.get(header::HOST).cloned();
        // The client is the peer unless a trusted peer forwarded for someone else.
        let forwarded_client = self
            .peer_trusted
            .then(|| HeaderValue::from_str(&self.client.ip().to_string()).ok())
            .flatten();
        forward::request_headers(
            &mut parts.headers,
            &forward::Hop {
                peer_ip: &activity.client_ip,
                trusted: self.peer_trusted,
                client_ip: forwarded_client.as_ref().unwrap_or(&activity.client_ip),
                forwarded: self.snapshot.config.server.forwarded,
                via: &self.snapshot.via,
                request_id,
                host: host_header.as_ref(),
                proto: if activity.https { "https" } else { "http" },
            },
        );
        if let Some(upgrade) = upgrade {
            forward::keep_upgrade(&mut parts.headers, &upgrade.protocols);
        }
        if parts.version == Version::HTTP_2 {
            forward::join_cookies(&mut parts.headers);
        }
        if parts.uri.authority().is_some() {
            // Absolute-form (RFC 9112 §3.2.2) is for proxies; origin servers get origin-form.
            let origin_form = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
            parts.uri = Uri::try_from(origin_form).unwrap_or_else(|_| Uri::from_static("/"));
        }
        parts.version = Version::HTTP_11;
    }
}

/// The request's Content-Length, when it declares one.
pub(super) fn declared_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// Reads a (small) request body completely, with the client timeouts of a streaming one.
async fn read_body(body: ClientBody, pace: ClientPace) -> Result<Bytes, Failure> {
    use http_body_util::BodyExt;
    let (body, _sent) = RequestBody::streaming(body, pace);
    match body.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) => Err(
            match err.downcast::<crate::failure::marker::DownstreamBodyError>() {
                Ok(failed) => failed.0,
                Err(other) => Failure::client(
                    StatusCode::BAD_REQUEST,
                    format!("could not read the request body: {other}"),
                ),
            },
        ),
    }
}

fn body_is_empty(body: &ClientBody) -> bool {
    http_body::Body::is_end_stream(body)
}
