//! What the cache keeps of one response: the head as it was received (hop-by-hop fields
//! removed), the whole body, the times RFC 9111 §4.2.3 needs to compute its age, and the
//! request header values its `Vary` names (to select it for later requests).

use std::time::SystemTime;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

/// One stored response (one variant of a cache key).
#[derive(Debug, Clone)]
pub struct StoredResponse {
    pub status: StatusCode,
    /// The response's header fields, without hop-by-hop fields and without gatehouse's own
    /// (`Proxy-Status`, `X-Request-Id`, `Cache-Status` are added when it is served). The
    /// origin's `Age` and `Date` are kept: the age calculation reads them; the served copy
    /// gets its own `Age`.
    pub headers: HeaderMap,
    pub body: Bytes,
    /// When the request that fetched it was sent (`request_time` of RFC 9111 §4.2.3).
    pub request_time: SystemTime,
    /// When its response head arrived (`response_time`).
    pub response_time: SystemTime,
    /// For each field name the response's `Vary` lists, the value the storing request had
    /// (`None` when it had no such field). Empty when the response has no `Vary`.
    pub varied: Vec<(HeaderName, Option<HeaderValue>)>,
}

impl StoredResponse {
    /// Bytes this entry takes, roughly: what the memory and disk bounds count.
    pub fn weight(&self) -> u64 {
        let headers: usize = self
            .headers
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 32)
            .sum();
        let varied: usize = self
            .varied
            .iter()
            .map(|(name, value)| name.as_str().len() + value.as_ref().map_or(0, HeaderValue::len))
            .sum();
        (self.body.len() + headers + varied + 128) as u64
    }
}
