//! Copies a response body as it streams to the client, to store it once it is complete.
//!
//! The client never waits for the copy: bytes are appended as they pass. A body that grows past
//! the limit is given up (the response goes on streaming); a body that fails midway is never
//! stored. The fill guard (request coalescing) is released after the store, so requests waiting
//! for this response find it.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use super::entry::StoredResponse;
use super::robots::RobotsGuard;
use super::store::{Cache, FillGuard};

/// Where a complete body goes.
#[derive(Debug)]
pub struct Capture {
    /// The response as it will be stored, without its body.
    head: StoredResponse,
    body: BytesMut,
    limit: usize,
    overflowed: bool,
    cache: Option<(Arc<Cache>, Arc<str>)>,
    robots: Option<(Arc<RobotsGuard>, String)>,
    fill: Option<FillGuard>,
    /// Bytes reserved from the cache's budget for copies in flight.
    reserved: u64,
}

impl Capture {
    /// Captures up to `limit` body bytes for `head`.
    pub fn new(head: StoredResponse, limit: usize) -> Self {
        Self {
            head,
            body: BytesMut::new(),
            limit,
            overflowed: false,
            cache: None,
            robots: None,
            fill: None,
            reserved: 0,
        }
    }

    /// Also stores the complete response in `cache` under `key`.
    pub fn into_cache(mut self, cache: Arc<Cache>, key: Arc<str>) -> Self {
        self.cache = Some((cache, key));
        self
    }

    /// Also remembers it as the robots.txt of `host`.
    pub fn into_robots_guard(mut self, guard: Arc<RobotsGuard>, host: String) -> Self {
        self.robots = Some((guard, host));
        self
    }

    /// Releases `fill` (waking coalesced requests) when the capture ends.
    pub fn releasing(mut self, fill: Option<FillGuard>) -> Self {
        self.fill = fill;
        self
    }

    pub fn data(&mut self, bytes: &Bytes) {
        if self.overflowed {
            return;
        }
        let within_budget = match &self.cache {
            Some((cache, _)) => cache.reserve_capture(bytes.len() as u64),
            None => true,
        };
        if within_budget {
            self.reserved += bytes.len() as u64;
        }
        if !within_budget || self.body.len() + bytes.len() > self.limit {
            self.give_up();
            return;
        }
        self.body.extend_from_slice(bytes);
    }

    /// Stops copying (too large, or too many copies in flight) and frees what was held.
    fn give_up(&mut self) {
        self.overflowed = true;
        self.body = BytesMut::new();
        self.release();
    }

    fn release(&mut self) {
        if let Some((cache, _)) = &self.cache {
            cache.release_capture(std::mem::take(&mut self.reserved));
        }
    }

    /// The body ended completely: store it.
    pub fn complete(mut self) {
        if self.overflowed {
            return;
        }
        let mut entry = std::mem::replace(&mut self.head, empty_head());
        entry.body = std::mem::take(&mut self.body).freeze();
        self.release();
        if let Some((guard, host)) = self.robots.take() {
            if self.cache.is_some() {
                guard.remember(&host, entry.clone());
            } else {
                guard.remember(&host, entry);
                return;
            }
        }
        if let Some((cache, key)) = self.cache.take() {
            cache.insert(&key, entry);
        }
        // `self.fill` drops last, after the store.
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.release();
    }
}

fn empty_head() -> StoredResponse {
    StoredResponse {
        status: http::StatusCode::OK,
        headers: http::HeaderMap::new(),
        body: Bytes::new(),
        request_time: std::time::UNIX_EPOCH,
        response_time: std::time::UNIX_EPOCH,
        varied: Vec::new(),
    }
}
