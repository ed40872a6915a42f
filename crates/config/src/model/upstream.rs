//! `[upstream.NAME]`: servers, balancing, health, retries, TLS and the address types they use.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::*;

/// A PROXY protocol version sent to upstreams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyProtocolVersion {
    V1,
    V2,
}

/// Trust anchors from a PEM file (`tls_ca_file`).
#[derive(Debug, Clone, PartialEq)]
pub struct CaBundle {
    pub path: PathBuf,
    /// DER certificates, at least one.
    pub certs: Vec<rustls_pki_types::CertificateDer<'static>>,
}

/// TLS towards an upstream's servers: those written `https://host:port`, or all of them with
/// `tls = true`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct UpstreamTls {
    /// `tls_server_name`: the SNI name sent and the name the certificate must be valid for.
    /// A DNS name (lowercase) or an IP literal (IPv6 without brackets); rustls' `ServerName`
    /// accepts it. `None` = each server's host as written (an IP literal is verified as an IP
    /// address and sends no SNI).
    pub server_name: Option<String>,
    /// `tls_ca_file`: trust these CAs instead of the system's roots. `None` = system roots.
    pub ca: Option<CaBundle>,
    /// `tls_client_cert` + `tls_client_key`: a client certificate (mutual TLS). `None` = none.
    pub client_cert: Option<TlsCertificate>,
}

/// One `[upstream.NAME]`.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamConfig {
    pub name: String,
    /// `send_proxy_protocol`: each connection to a server starts with a PROXY protocol header
    /// naming the client (`"v1"` or `"v2"`); health checks send v1 `UNKNOWN` / v2 `LOCAL`.
    /// Such connections carry one client's address, so each request gets a connection of its
    /// own. Default none.
    pub send_proxy_protocol: Option<ProxyProtocolVersion>,
    /// In file order. May be empty: `check` warns, and requests routed here get
    /// `proxy_configuration_error`.
    pub servers: Vec<UpstreamServer>,
    /// How a server is chosen. Default round_robin.
    pub balance: Balance,
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
    /// Requests a server may have in flight at once (one connection each), for servers whose
    /// entry sets no `max_connections` of its own. `None` (key absent or 0) = unlimited.
    pub max_connections: Option<u32>,
    /// Requests that may wait for a connection slot when every server is at its limit. Default 100.
    pub queue_size: u32,
    /// How long a request waits in that queue before `connection_limit_reached`. Default 5s.
    pub queue_timeout: Duration,
    /// Upper bound on how long a resolved host name is trusted before it is resolved again (the
    /// record's TTL is used when shorter). Default 30s; at least 1s.
    pub resolve_interval: Duration,
    /// Addresses servers may never have (literal or resolved): `destination_ip_prohibited`.
    /// Default empty.
    pub deny_addresses: Vec<IpNet>,
    /// `[upstream.NAME.health]`: active checks. `None` = no active checks (servers are healthy
    /// unless passive health ejects them).
    pub health: Option<HealthCheck>,
    /// `[upstream.NAME.passive]`: outlier detection from real traffic. Always present (defaults).
    pub passive: PassiveHealth,
    /// `[upstream.NAME.retry]`: always present (defaults).
    pub retry: RetryPolicy,
    /// `tls_*`: how servers reached over TLS are verified and what client certificate is shown.
    pub tls: UpstreamTls,
    /// `http2`: speak HTTP/2 to the servers (ALPN `h2` over TLS, falling back to HTTP/1.1 when
    /// the server does not choose it; prior knowledge on cleartext). Upgrade requests (WebSocket)
    /// always use an HTTP/1.1 connection. Default false.
    pub http2: bool,
    /// `tunnel_idle_timeout`: an upgraded connection (WebSocket) with no bytes either way for
    /// this long is closed. Default 5m.
    pub tunnel_idle_timeout: Duration,
}

/// One entry of `servers`: a plain `"host:port"` string or a table.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamServer {
    pub address: ServerAddress,
    /// Relative share of requests for round_robin / least_requests / hash. Default 1; 1..=1000.
    pub weight: u32,
    /// Overrides the upstream's `max_connections` for this server. `None` (key absent) = the
    /// upstream's. A server entry cannot be made unlimited when the upstream has a limit:
    /// `max_connections = 0` in a server entry is refused.
    pub max_connections: Option<u32>,
    /// Used only when no primary (non-backup) server is available. Default false.
    pub backup: bool,
    /// Reached over TLS: written `https://host[:port]` (port 443 when left out), or the upstream
    /// has `tls = true`. `http://host[:port]` (port 80 when left out) and a bare `host:port` are
    /// plain; `http://` with `tls = true` is refused.
    pub tls: bool,
}

/// `balance`
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Balance {
    /// Smooth weighted round robin (nginx's algorithm).
    RoundRobin,
    /// Power of two choices: of two random servers, the one with fewer requests in flight per
    /// unit of weight.
    LeastRequests,
    /// Consistent (rendezvous) hashing on `hash_key`.
    Hash(HashKey),
}

/// `hash_key`: `"client_ip"` (the default), `"header:NAME"` or `"cookie:NAME"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashKey {
    ClientIp,
    /// Lowercased header name.
    Header(String),
    Cookie(String),
}

/// `[upstream.NAME.health]`
#[derive(Debug, Clone, PartialEq)]
pub struct HealthCheck {
    /// `GET` this path (starting with `/`); `None` = a plain TCP connect is the check.
    pub path: Option<String>,
    /// Time between checks of one server. Default 5s.
    pub interval: Duration,
    /// How long one check may take. Default 2s.
    pub timeout: Duration,
    /// Consecutive failed checks before a healthy server is marked down. Default 2; ≥ 1.
    pub unhealthy_threshold: u32,
    /// Consecutive passed checks before a down server is marked up. Default 2; ≥ 1.
    pub healthy_threshold: u32,
    /// Statuses that pass. Default `200-399`.
    pub expect_status: Vec<StatusRange>,
    /// `Host` header of the check request. `None` = the server's host as written.
    pub host: Option<String>,
}

/// An inclusive range of status codes, `200-399` or a single `204`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusRange {
    pub low: u16,
    pub high: u16,
}

impl StatusRange {
    pub fn contains(self, status: u16) -> bool {
        (self.low..=self.high).contains(&status)
    }
}

/// `[upstream.NAME.passive]`: outlier detection.
#[derive(Debug, Clone, PartialEq)]
pub struct PassiveHealth {
    /// Consecutive upstream-side failures that eject a server. Default 5; 0 = passive health off.
    pub consecutive_failures: u32,
    /// Consecutive timeouts (`connection_timeout`, `http_response_timeout`) that eject a server
    /// sooner: a server that accepts but never answers holds each request for the whole
    /// timeout. Default 1; 0 = timeouts count only as failures.
    pub consecutive_timeouts: u32,
    /// First ejection; doubles with each ejection that follows without a success between. Default 10s.
    pub ejection: Duration,
    /// Longest ejection. Default 5m, or `ejection` when that is longer; ≥ `ejection`.
    pub max_ejection: Duration,
    /// At most this share of a pool may be ejected at once. Default 50; 0..=100.
    pub max_ejected_percent: u8,
}

/// `[upstream.NAME.retry]`
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Tries per request, the first included (1 = never retry). Default 3; 1..=10.
    pub attempts: u32,
    /// No new try starts once the request is this old. Default 60s.
    pub deadline: Duration,
    /// Retries may add at most this fraction of the pool's requests (over 10 s). Default 0.2; 0.0..=1.0.
    pub budget: f64,
    /// Retries allowed per second whatever the budget, so a quiet pool can still retry. Default 10.
    pub min_retries_per_second: u32,
}

/// A CIDR block, e.g. `169.254.0.0/16` or `fd00::/8`; a bare address is a /32 or /128.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl IpNet {
    /// The longest prefix of `addr`'s family: 32 for IPv4, 128 for IPv6.
    pub fn max_prefix(addr: IpAddr) -> u8 {
        match addr {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        }
    }

    /// The same block with the host bits (those after the prefix) cleared:
    /// `10.1.2.3/8` → `10.0.0.0/8`. Validation stores only truncated blocks.
    pub fn trunc(&self) -> IpNet {
        let addr = match self.addr {
            IpAddr::V4(a) => IpAddr::V4((u32::from(a) & mask_v4(self.prefix)).into()),
            IpAddr::V6(a) => IpAddr::V6((u128::from(a) & mask_v6(self.prefix)).into()),
        };
        IpNet {
            addr,
            prefix: self.prefix,
        }
    }

    /// Whether `ip` is inside this block. An IPv4 block also contains the IPv4-mapped IPv6 form
    /// of its addresses (`::ffff:10.0.0.1` is in `10.0.0.0/8`), and an IPv6 block inside
    /// `::ffff:0:0/96` contains the plain IPv4 addresses it maps (`::ffff:10.0.0.0/104` contains
    /// `10.0.0.1`), so an address written in either form cannot slip past a deny list. Other IPv6
    /// blocks, even `::/0`, contain no IPv4 address. A prefix longer than the family allows
    /// (never produced by validation) counts as the full length.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = mask_v4(self.prefix);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = mask_v6(self.prefix);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            (IpAddr::V4(_), IpAddr::V6(v6)) => v6
                .to_ipv4_mapped()
                .is_some_and(|v4| self.contains(IpAddr::V4(v4))),
            (IpAddr::V6(net), IpAddr::V4(_)) => match net.to_ipv4_mapped() {
                Some(net) if self.prefix >= 96 => IpNet {
                    addr: IpAddr::V4(net),
                    prefix: self.prefix - 96,
                }
                .contains(ip),
                _ => false,
            },
        }
    }
}

/// The network mask of an IPv4 prefix (0..=32; longer counts as 32).
fn mask_v4(prefix: u8) -> u32 {
    u32::MAX
        .checked_shl(32_u32.saturating_sub(u32::from(prefix)))
        .unwrap_or(0)
}

/// The network mask of an IPv6 prefix (0..=128; longer counts as 128).
fn mask_v6(prefix: u8) -> u128 {
    u128::MAX
        .checked_shl(128_u32.saturating_sub(u32::from(prefix)))
        .unwrap_or(0)
}

impl std::fmt::Display for IpNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
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
