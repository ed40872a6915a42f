//! Tests of the RFC 9111 rules in [`super`], one file per submodule, and the helpers they
//! share.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};

use super::*;
use crate::cache::entry::StoredResponse;

/// A fixed origin for test times (whole seconds: HTTP-dates have no fractions).
fn at(seconds: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000 + seconds)
}

fn date(seconds: u64) -> String {
    httpdate::fmt_http_date(at(seconds))
}

fn secs(seconds: u64) -> Duration {
    Duration::from_secs(seconds)
}

fn headers(fields: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in fields {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).expect("test field name"),
            HeaderValue::from_str(value).expect("test field value"),
        );
    }
    map
}

fn cc(fields: &[(&str, &str)]) -> CacheControl {
    CacheControl::parse(&headers(fields))
}

fn entry(fields: &[(&str, &str)], request_time: u64, response_time: u64) -> StoredResponse {
    StoredResponse {
        status: StatusCode::OK,
        headers: headers(fields),
        body: Bytes::from_static(b"body"),
        request_time: at(request_time),
        response_time: at(response_time),
        varied: Vec::new(),
    }
}

fn get_storable(
    request: &[(&str, &str)],
    status: u16,
    response: &[(&str, &str)],
) -> Result<(), NotStorable> {
    storable(
        &Method::GET,
        &headers(request),
        StatusCode::from_u16(status).expect("test status"),
        &headers(response),
        false,
        &[],
    )
}

const CAP: Duration = Duration::from_secs(86_400);

fn lifetime(status: u16, response: &[(&str, &str)], response_time: u64) -> Duration {
    freshness_lifetime(
        StatusCode::from_u16(status).expect("test status"),
        &headers(response),
        at(response_time),
        CAP,
        &[],
    )
}

fn name(text: &'static str) -> HeaderName {
    HeaderName::from_static(text)
}

fn value(text: &'static str) -> HeaderValue {
    HeaderValue::from_static(text)
}

mod age;
mod conditional;
mod directives;
mod freshness;
mod stale;
mod storable;
mod targeted;
mod vary;
