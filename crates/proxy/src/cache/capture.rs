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
        if self.body.len() + bytes.len() > self.limit {
            self.overflowed = true;
            self.body = BytesMut::new();
            return;
        }
        self.body.extend_from_slice(bytes);
    }

    /// The body ended completely: store it.
    pub fn complete(mut self) {
        if self.overflowed {
            return;
        }
        let mut entry = self.head;
        entry.body = std::mem::take(&mut self.body).freeze();
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
