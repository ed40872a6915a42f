//! The checks behind gatehouse's fuzz targets: one function per parser that takes outside
//! bytes, which feeds it one input and panics when an invariant does not hold.
//!
//! The cargo-fuzz targets in `fuzz/` call these under libFuzzer; `tests/corpus.rs` replays
//! every file of `fuzz/corpus/<target>/` through the same functions in `cargo test`, so what a
//! campaign found stays checked without libFuzzer.
//!
//! | target | parser |
//! |---|---|
//! | `http1_request_head` | request heads of gatehouse's HTTP/1.1 engine (`http1::head`) |
//! | `http1_chunked` | the chunked request body decoder (`http1::chunked`) |
//! | `http1_response_head` | response heads written by `http1::write`, read back by httparse |
//! | `config` | the config loader (`gatehouse_config::parse`) |
//! | `accept` | `Accept` negotiation of error pages (`respond::negotiate`) |
//! | `proxy_status` | the `Proxy-Status` decoder and writer (`failure::decode`, `failure::proxy_status`) |
//! | `cache_status` | the `Cache-Status` decoder and writer (`failure::decode`, `cache::serve`) |
//! | `cache_control` | `Cache-Control` parsing (`cache::policy::CacheControl`) |
//! | `cache_policy` | RFC 9111 rules over received fields (`cache::policy`, `cache::serve`) |
//! | `router` | host and path matching (`router`) |
//! | `proxy_protocol` | PROXY protocol v1/v2 headers of `proxy_protocol` listeners (`proxy_protocol`) |
//! | `redis_reply` | replies of the rate limits' Redis store (`limit::resp`, `limit::redis`) |
//! | `upstream_response` | response heads read by the own upstream client, their framing (`upstream::h1::head`) |

mod cache;
mod config;
mod http1;
mod negotiate;
mod proxy_protocol;
mod redis;
mod router;
mod status;
mod upstream;

pub use cache::{cache_control, cache_policy};
pub use config::config;
pub use http1::{http1_chunked, http1_request_head, http1_response_head};
pub use negotiate::{accept, accept_encoding};
pub use proxy_protocol::proxy_protocol;
pub use redis::redis_reply;
pub use router::router;
pub use status::{cache_status, proxy_status};
pub use upstream::upstream_response;

/// A target's check: feeds it one input, panics when an invariant does not hold.
pub type Check = fn(&[u8]);

/// Every target: its name (also its fuzz target's and corpus directory's) and its check.
pub const TARGETS: &[(&str, Check)] = &[
    ("http1_request_head", http1_request_head),
    ("http1_chunked", http1_chunked),
    ("http1_response_head", http1_response_head),
    ("config", config),
    ("accept", accept),
    ("accept_encoding", accept_encoding),
    ("proxy_status", proxy_status),
    ("cache_status", cache_status),
    ("cache_control", cache_control),
    ("cache_policy", cache_policy),
    ("router", router),
    ("proxy_protocol", proxy_protocol),
    ("redis_reply", redis_reply),
    ("upstream_response", upstream_response),
];

/// The check of the target named `name`.
pub fn check(name: &str) -> Option<Check> {
    TARGETS
        .iter()
        .find(|(target, _)| *target == name)
        .map(|(_, check)| *check)
}

/// Header values from fuzz input: one per line (`\n`), at most 8; `None` when a line is not a
/// valid field value (the peer's HTTP parser would have refused it before us).
fn header_values(data: &[u8]) -> Option<Vec<http::HeaderValue>> {
    data.split(|&b| b == b'\n')
        .take(8)
        .map(|line| http::HeaderValue::from_bytes(line).ok())
        .collect()
}
