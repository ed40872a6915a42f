//! Maintenance mode: the robots.txt copy for `/robots.txt`, else a 503 with `Retry-After`.

use std::sync::Arc;

use gatehouse_config::MaintenanceConfig;
use http::Response;
use http::header::{self, HeaderValue};

use super::super::Pipeline;
use crate::body::ProxyBody;
use crate::failure::{Failure, FailureKind, Phase};
use crate::respond::{self, ErrorContext};

impl Pipeline<'_> {
    /// Maintenance mode: the robots.txt copy for `/robots.txt`, else a 503 with `Retry-After`.
    pub(in crate::service) fn maintenance_response(
        &mut self,
        settings: &MaintenanceConfig,
        head_only: bool,
    ) -> Response<ProxyBody> {
        // The maintenance page is gatehouse's own answer: sent as it is.
        self.compress = None;
        if let Some(response) = self.robots_copy(None, head_only, "maintenance") {
            return response;
        }
        let mut failure = Failure::new(
            FailureKind::ProxyInternalResponse,
            Phase::Routing,
            "the route is in maintenance mode",
        );
        failure.params.retry_after = Some(settings.retry_after.as_secs());
        let mut response = respond::render(
            &failure,
            &ErrorContext {
                request_id: &self.request_id,
                accept: self.accept.as_ref(),
                head_only,
                next_hop: None,
                proxy_status: self.proxy_status(),
            },
        );
        if let Some(page) = &settings.page {
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(page.content_type),
            );
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(page.body.len()));
            if !head_only {
                *response.body_mut() =
                    ProxyBody::full(bytes::Bytes::from_owner(Arc::clone(&page.body)));
            }
        }
        let mut record = self.take_record();
        record.status = response.status().as_u16();
        record.failure = Some(failure.kind.token());
        record.cache = Some("maintenance");
        self.snapshot.observer.finished(record);
        response
    }
}
