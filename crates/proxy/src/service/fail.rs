//! Log and fail: the one place a failure becomes a response, and where the access record of a
//! generated response is emitted.

use http::Response;

use super::Pipeline;
use super::caching::OriginFailed;
use crate::body::ProxyBody;
use crate::failure::{Failure, FailureKind, Phase};
use crate::observe::access_log::{AccessRecord, AttemptContext};
use crate::respond::{self, ErrorContext};

impl Pipeline<'_> {
    /// No attempt produced a response: the last failure is the answer, or a stale copy stands
    /// in for it.
    pub(super) async fn give_up(
        &mut self,
        last: Option<(Failure, String)>,
        head_only: bool,
    ) -> Response<ProxyBody> {
        match last {
            Some((failure, next_hop)) => {
                let failed = OriginFailed::Failure(&failure, Some(&next_hop));
                match Box::pin(self.stale_copy(failed, head_only)).await {
                    Some(stale) => stale,
                    None => self.fail(&failure, head_only, Some(&next_hop)),
                }
            }
            None => {
                let failure = Failure::new(
                    FailureKind::ProxyInternalError,
                    Phase::Selecting,
                    "no attempt was made",
                );
                self.fail(&failure, head_only, None)
            }
        }
    }

    /// Takes the access record out of the pipeline, to be emitted by whoever finishes the response.
    pub(super) fn take_record(&mut self) -> AccessRecord {
        let placeholder = self.record.stand_in();
        self.recorded = true;
        std::mem::replace(&mut self.record, placeholder)
    }

    /// The one place a failure becomes a response (and, for generated responses, the access
    /// record is written).
    pub(super) fn fail(
        &mut self,
        failure: &Failure,
        head_only: bool,
        next_hop: Option<&str>,
    ) -> Response<ProxyBody> {
        // gatehouse's own error pages are sent as they are (see `compress`).
        self.compress = None;
        if self.record.attempts == 0 && failure.params.reason.is_none() {
            // Failures before any attempt (routing, request checks) have not been logged yet.
            self.snapshot.observer.failure(
                failure,
                &AttemptContext {
                    route: self.record.route.as_deref(),
                    ..AttemptContext::before_any_attempt(&self.request_id)
                },
            );
        }
        let response = respond::render(
            failure,
            &ErrorContext {
                request_id: &self.request_id,
                accept: self.accept.as_ref(),
                head_only,
                next_hop,
                proxy_status: self.proxy_status(),
            },
        );
        let mut record = self.take_record();
        record.status = response.status().as_u16();
        if failure.params.client_gone {
            record.status = super::CLIENT_CLOSED_REQUEST;
            record.client_aborted = true;
        }
        record.failure = Some(failure.log_name());
        self.snapshot.observer.finished(record);
        response
    }
}
