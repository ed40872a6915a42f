//! Panic isolation for one request (answered 500 `proxy_internal_error`), and logging of
//! requests that never parsed.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use futures_util::FutureExt as _;
use http::{Request, Response};

use crate::body::ProxyBody;
use crate::client_body::ClientBody;
use crate::client_io::ClientActivity;
use crate::failure::{Failure, FailureKind, Phase};
use crate::observe::access_log::{AccessRecord, AttemptContext};
use crate::respond::{self, ErrorContext};
use crate::service;
use crate::snapshot::Snapshot;

/// Runs the pipeline, answering a panic with 500 `proxy_internal_error`.
///
/// Not an `async fn`: one would move the request (a few hundred bytes) once more, from its
/// arguments into its body, for every request.
#[allow(
    clippy::manual_async_fn,
    reason = "an async fn would move the request once more for every request"
)]
pub(super) fn handle_isolated(
    snapshot: Arc<Snapshot>,
    client: SocketAddr,
    activity: Arc<ClientActivity>,
    req: Request<ClientBody>,
) -> impl Future<Output = Response<ProxyBody>> + Send {
    async move {
        let head_only = req.method() == http::Method::HEAD;
        let accept = req.headers().get(http::header::ACCEPT).cloned();
        let handled = std::panic::AssertUnwindSafe(service::handle(
            Arc::clone(&snapshot),
            client,
            &activity,
            req,
        ))
        .catch_unwind()
        .await;
        match handled {
            Ok(response) => response,
            Err(panic) => {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(ToString::to_string)
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".to_owned());
                let failure = Failure::new(
                    FailureKind::ProxyInternalError,
                    Phase::Internal,
                    format!("panic: {message}"),
                );
                let request_id = service::new_request_id();
                snapshot
                    .observer
                    .failure(&failure, &AttemptContext::before_any_attempt(&request_id));
                respond::render(
                    &failure,
                    &ErrorContext {
                        request_id: &request_id,
                        accept: accept.as_ref(),
                        head_only,
                        next_hop: None,
                        proxy_status: &snapshot.proxy_status,
                    },
                )
            }
        }
    }
}

/// The failure warning and access record for a request that never became a `Request`
/// (method and target unknown, logged as `-`). Returns the request id used.
pub(super) fn log_unparsed_request(
    failure: &Failure,
    client: SocketAddr,
    snapshot: &Snapshot,
) -> String {
    let request_id = service::new_request_id();
    snapshot
        .observer
        .failure(failure, &AttemptContext::before_any_attempt(&request_id));
    let method = http::Method::from_bytes(b"-").unwrap_or_default();
    let mut record = AccessRecord::new(
        snapshot.config.server.access_log,
        client,
        request_id.as_str().into(),
        method,
        "-".to_owned(),
    );
    record.status = failure.status().as_u16();
    record.failure = Some(failure.kind.token());
    snapshot.observer.finished(record);
    request_id
}
