//! Limit: the route's `[route.limit]`, after routing and before the cache and the upstream.
//! Costs one `Option` check on a route without a limit.
//!
//! Order: the concurrency slot first (local and cheap; a refused request spends no rate), then
//! the rate. A refusal is `429 Too Many Requests` (RFC 6585 §4) with `Retry-After` and the
//! `RateLimit` / `RateLimit-Policy` fields, rendered like every gatehouse error but logged and
//! counted as `rate_limited` or `concurrency_limited`; its Proxy-Status is
//! `http_request_error; status-code=429`, a client-side kind, never an upstream's. When the
//! store does not answer, the request goes on (`fail = "open"`, one warning per 10 s) or gets
//! `503` with reason `limit_store_unavailable` (`fail = "closed"`).

use http::StatusCode;
use http::header::HeaderValue;
use http::request::Parts;

use super::Pipeline;
use crate::failure::{Failure, FailureKind, Phase};
use crate::limit::{self, RateOutcome};
use crate::observe::access_log::InFlightHold;
use crate::router::Routed;
use gatehouse_config::LimitFail;

/// What the limit adds to the response: the rate fields of an allowed request.
#[derive(Debug, Default)]
pub(super) struct LimitFields {
    fields: Option<(HeaderValue, HeaderValue)>,
}

/// A request the limit refuses: the failure to answer with and the fields to add to it.
#[derive(Debug)]
pub(super) struct Refusal {
    pub failure: Failure,
    pub fields: LimitFields,
}

impl LimitFields {
    /// Adds `RateLimit-Policy` and `RateLimit` to `headers`, when the route has a rate.
    pub(super) fn apply(&self, headers: &mut http::HeaderMap) {
        if let Some((policy, state)) = &self.fields {
            headers.insert("ratelimit-policy", policy.clone());
            headers.insert("ratelimit", state.clone());
        }
    }
}

impl Pipeline<'_> {
    pub(super) async fn limit(
        &mut self,
        routed: &Routed<'_>,
        parts: &Parts,
    ) -> Result<LimitFields, Box<Refusal>> {
        let Some((limit, id)) = routed.limit else {
            return Ok(LimitFields::default());
        };
        let limits = &self.snapshot.limits;
        let metrics = &self.snapshot.observer.metrics;
        let client = self.client.ip();
        if let Some(max) = limit.max_concurrent {
            let Some(slot) = limits.acquire(*id, client, max) else {
                metrics.rate_limited(routed.label, "concurrency");
                let mut failure = Failure::client(
                    StatusCode::TOO_MANY_REQUESTS,
                    format!(
                        "{client} has {max} requests open on this route; max_concurrent is {max}"
                    ),
                );
                failure.params.reason = Some("concurrency_limited");
                failure.params.retry_after = Some(1);
                return Err(Box::new(Refusal {
                    failure,
                    fields: LimitFields::default(),
                }));
            };
            self.record.in_flight = Some(InFlightHold(Box::new(slot)));
        }
        let Some(rate) = &limit.rate else {
            return Ok(LimitFields::default());
        };
        let key = limit::client_key(&limit.key, &parts.headers, client);
        let policy = limit::policy_header(rate);
        match limits.rate(*id, rate, &key).await {
            RateOutcome::Allowed { remaining, reset } => Ok(LimitFields {
                fields: Some((policy, limit::rate_header(remaining, reset))),
            }),
            RateOutcome::Refused { retry_after } => {
                self.record.in_flight = None;
                metrics.rate_limited(routed.label, "rate");
                let seconds = limit::gcra::ceil_secs(retry_after).max(1);
                let mut failure = Failure::client(
                    StatusCode::TOO_MANY_REQUESTS,
                    format!(
                        "over the rate limit of {} requests per {} (burst {}); next request allowed in {seconds}s",
                        rate.requests,
                        humantime::format_duration(rate.period),
                        rate.burst
                    ),
                );
                failure.params.reason = Some("rate_limited");
                failure.params.retry_after = Some(seconds);
                Err(Box::new(Refusal {
                    failure,
                    fields: LimitFields {
                        fields: Some((policy, limit::rate_header(0, seconds * 1_000_000))),
                    },
                }))
            }
            RateOutcome::StoreFailed(error) => {
                metrics.limit_store_error(error.reason());
                let store = limits
                    .redis()
                    .map(|(address, health)| (address, health.warn_now()));
                let closed = limits.fail == LimitFail::Closed;
                if let Some((address, true)) = &store {
                    tracing::warn!(
                        target: "gatehouse::limit",
                        store = %address,
                        reason = error.reason(),
                        route = &**routed.label,
                        "the limit store did not decide; requests on limited routes {} (at most one such line per 10s; see gatehouse_limit_store_errors_total)",
                        if closed { "get 503 (fail = \"closed\")" } else { "go on unlimited (fail = \"open\")" }
                    );
                }
                if !closed {
                    return Ok(LimitFields::default());
                }
                self.record.in_flight = None;
                let mut failure = Failure::new(
                    FailureKind::ProxyInternalResponse,
                    Phase::Routing,
                    format!(
                        "the rate limit store did not decide ({}) and limits.fail is \"closed\"",
                        error.reason()
                    ),
                );
                failure.params.reason = Some("limit_store_unavailable");
                failure.params.retry_after = Some(1);
                Err(Box::new(Refusal {
                    failure,
                    fields: LimitFields::default(),
                }))
            }
        }
    }
}
