//! The validated configuration model: what the proxy runs on.
//!
//! Every value here has already been checked (addresses parse, durations are positive, routes name
//! existing upstreams). The proxy never sees raw TOML; `check`, `run` and reload all go through
//! [`crate::parse`] to obtain this model.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// A whole, validated gatehouse configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Where the config came from: a file path, or `<embedded default>`.
    pub source: String,
    pub server: ServerConfig,
    pub dns: DnsConfig,
    /// Routes in file order. The router picks the most specific match (see `proxy::router`).
    pub routes: Vec<RouteConfig>,
    /// Upstream pools, sorted by name.
    pub upstreams: Vec<UpstreamConfig>,
}

/// `[server]`
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// Proxy-Status member name and `Via` pseudonym. Default `gatehouse`.
    pub name: String,
    /// Plain HTTP/1.1 listeners. Default `["127.0.0.1:8080"]`.
    pub listen: Vec<SocketAddr>,
    /// Admin listener (`/live`, `/ready`, ...). `None` = no admin listener.
    pub admin: Option<SocketAddr>,
    /// How much the Proxy-Status header tells. Default `minimal`.
    pub proxy_status: ProxyStatusMode,
    /// How long in-flight requests may take to finish after SIGTERM. Default 30s.
    pub drain_timeout: Duration,
    /// Worker threads. `None` = one per CPU core.
    pub workers: Option<usize>,
    /// A client must send a complete request header section within this time (408 otherwise);
    /// also how long an idle keep-alive connection is kept. Default 30s.
    pub client_header_timeout: Duration,
    /// Largest request header section accepted (431 above). Default 64 KiB; between 8 KiB (hyper's
    /// smallest buffer) and 1 MiB.
    pub max_request_header_size: usize,
    /// Longest request target accepted (414 above). Default 8 KiB; at most 1 MiB.
    pub max_uri_length: usize,
    /// Log line format. Default text.
    pub log_format: LogFormat,
    /// Log level filter (`error`, `warn`, `info`, `debug`, `trace`, or an EnvFilter directive).
    /// `RUST_LOG` overrides it. Default `info`.
    pub log_level: String,
    /// Whether one access record per request is logged (at info, target `access`). Default true.
    pub access_log: bool,
}

/// `server.proxy_status`: how much the `Proxy-Status` header reveals (RFC 9209 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyStatusMode {
    /// No Proxy-Status header at all.
    Off,
    /// Only `error` and the kind's own parameters.
    Minimal,
    /// Adds `next-hop`, `next-protocol`, `received-status` and `details`.
    Full,
}

/// `server.log_format`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// `[dns]`: how upstream host names are resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct DnsConfig {
    /// Name servers to ask (UDP then TCP). Empty = the system's (`/etc/resolv.conf`).
    pub nameservers: Vec<SocketAddr>,
    /// How long one lookup may take before it is a `dns_timeout`. Default 2s.
    pub timeout: Duration,
}

/// One `[[route]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteConfig {
    /// `None` = any host.
    pub host: Option<HostMatch>,
    /// Path prefix, always starting with `/`. Default `/`.
    pub path: String,
    /// Name of the upstream pool; guaranteed to exist in [`Config::upstreams`].
    pub upstream: String,
}

/// `route.host`: exact, or a `*.suffix` wildcard. Both lowercase, without port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostMatch {
    /// `example.com`
    Exact(String),
    /// `*.example.com`, stored as `.example.com` (matches `a.example.com`, not `example.com`).
    Suffix(String),
}

/// One `[upstream.NAME]`.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamConfig {
    pub name: String,
    /// May be empty: `check` warns, and requests routed here get `proxy_configuration_error`.
    pub servers: Vec<ServerAddress>,
    /// TCP connect (after DNS). Default 2s.
    pub connect_timeout: Duration,
    /// Request fully sent → complete response header section. Default 30s.
    pub response_timeout: Duration,
    /// Longest idle gap while reading the response body. Default 30s.
    pub read_timeout: Duration,
    /// Longest stall while writing the request to the upstream. Default 30s.
    pub send_timeout: Duration,
    /// Largest response header section accepted. Default 64 KiB; between 8 KiB and 1 MiB.
    pub max_response_header_size: usize,
}

/// A server of an upstream pool: `host:port`, where host is an IP literal or a DNS name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServerAddress {
    /// As written, without brackets for IPv6 (`10.0.0.5`, `::1`, `app.internal`).
    pub host: String,
    pub port: u16,
    /// `Some` when `host` is an IP literal (no DNS needed).
    pub ip: Option<IpAddr>,
}

impl ServerAddress {
    /// The address as written in the config, e.g. `app.internal:3000` or `[::1]:3000`.
    pub fn authority(&self) -> String {
        match self.ip {
            Some(IpAddr::V6(_)) => format!("[{}]:{}", self.host, self.port),
            _ => format!("{}:{}", self.host, self.port),
        }
    }
}
