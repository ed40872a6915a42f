//! HTTP-01 answers (RFC 8555 §8.3): `GET /.well-known/acme-challenge/TOKEN` is answered with
//! the key authorization while the ACME task has that challenge open, on every listener and
//! before anything else: before the HTTPS redirect and before routing, so that neither a
//! redirect listener nor a route to an upstream stands between the CA and gatehouse. Any other
//! request, and a token nobody opened, goes on as usual (an upstream may answer its own
//! challenges).

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};

use crate::acme::HTTP01_PREFIX;
use crate::body::ProxyBody;
use crate::snapshot::Snapshot;

/// The answer to `req` when it fetches an open HTTP-01 challenge.
pub(super) fn http01<B>(snapshot: &Snapshot, req: &Request<B>) -> Option<Response<ProxyBody>> {
    let token = req.uri().path().strip_prefix(HTTP01_PREFIX)?;
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return None;
    }
    let key_authorization = snapshot.acme.http01(token)?;
    tracing::info!(token, "answering an ACME HTTP-01 challenge");
    let length = key_authorization.len();
    let body = if req.method() == Method::HEAD {
        ProxyBody::empty()
    } else {
        ProxyBody::full(key_authorization)
    };
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Some(response)
}
