//! Test support for gatehouse's integration tests. Everything is blocking (std threads and
//! sockets on `127.0.0.1:0`), so a test is a plain `#[test]` function.
//!
//! - [`Gatehouse`]: the real binary under a harness (config file, JSON logs, address, stop);
//!   [`Config`] builds its TOML ([`Server`] for table entries of `servers`).
//! - [`Upstream`]: origin servers that answer well or break HTTP on purpose ([`Behavior`],
//!   switchable at runtime and per path), recording what they received; they can be killed like
//!   a crashed process and restarted; [`FullBacklog`] for connect timeouts.
//! - [`MockDns`]: a UDP name server answering NXDOMAIN, SERVFAIL, nothing, or A/AAAA records
//!   (changeable at runtime).
//! - [`Req`], [`RawConn`], [`RawResponse`]: a raw HTTP/1.1 client that tells a complete response
//!   from a truncated one; [`curl()`] runs the real `curl`.
//! - [`TempFile`]: a unique temp file, removed on drop.
//! - [`pebble`]: a real ACME server (Debian's pebble) with its DNS server, for automatic HTTPS.
//! - [`peers`]: real nginx and HAProxy started by a test (logs to explain, configs to check).
//! - [`RedisServer`]: a real `redis-server` on a free loopback port, stopped and restarted by
//!   the test (the store of shared rate limits).
//! - [`metrics`]: samples of a Prometheus text-format scrape.
//! - [`tls`]: a CA and certificates made for a test (rcgen), and rustls configurations using them.
//! - [`ProxyStatus`]: an RFC 9209 `Proxy-Status` parser (RFC 8941 list via `sfv`).

mod client;
mod curl;
mod dns;
mod gatehouse;
mod http1;
pub mod https;
pub mod metrics;
pub mod pebble;
pub mod peers;
mod ports;
mod proxy_status;
mod record;
mod redis;
mod temp;
pub mod tls;
pub mod tls_origin;
mod upstream;
pub mod ws_origin;

pub use client::{NoResponse, RawConn, RawResponse, Req, connect_from, send_raw};
pub use curl::{CurlResult, curl};
pub use dns::{DnsAnswer, MockDns};
pub use gatehouse::{Config, Gatehouse, Observed, Server};
pub use http1::{Framing, Headers};
pub use ports::{closed_port, free_addr, free_port};
pub use proxy_status::{Member, Param, ProxyStatus};
pub use redis::RedisServer;
pub use temp::TempFile;
pub use upstream::{Behavior, FullBacklog, RecordedRequest, Reply, Upstream, big_header_response};

use std::time::Duration;

/// How long a test waits for anything that should happen promptly (a response, a log line).
pub const PATIENCE: Duration = Duration::from_secs(10);
