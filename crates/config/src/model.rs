//! The validated configuration model: what the proxy runs on.
//!
//! Every value here has already been checked (addresses parse, durations are positive, routes name
//! existing upstreams). The proxy never sees raw TOML; `check`, `run` and reload all go through
//! [`crate::parse`] to obtain this model.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// A PROXY protocol version sent to upstreams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyProtocolVersion {
    V1,
    V2,
}

/// A whole, validated gatehouse configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Where the config came from: a file path, or `<embedded default>`.
    pub source: String,
    pub server: ServerConfig,
    pub dns: DnsConfig,
    /// `[cache]`: the response store caching routes share.
    pub cache: CacheConfig,
    /// `[robots]`: the robots.txt guard.
    pub robots: RobotsConfig,
    /// `[maintenance]`: maintenance mode for every route (a route's own table overrides it).
    pub maintenance: MaintenanceConfig,
    /// `[limits]`: where the counters of `[route.limit]` live.
    pub limits: LimitsConfig,
    /// `[compress]`: response compression for every route (a route's own table overrides it).
    pub compress: CompressConfig,
    /// `[acme]`: automatic certificates. `Some` exactly when a `[[server.tls]]` has `acme = true`.
    pub acme: Option<AcmeConfig>,
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
    /// Plain listeners: HTTP/1.1, and HTTP/2 with prior knowledge (h2c) unless `http2` is off.
    /// Default `["127.0.0.1:8080"]`. Empty only when `tls` or `redirect_https` has a listener.
    /// No two addresses of `listen`, `tls`, `redirect_https` and `admin` clash (checked).
    pub listen: Vec<SocketAddr>,
    /// `[[server.tls]]`: HTTPS listeners. Default none.
    pub tls: Vec<TlsListener>,
    /// `redirect_https`: plain listeners that answer every request with `308 Permanent Redirect`
    /// to the same URL over `https://`. Default none.
    pub redirect_https: Vec<SocketAddr>,
    /// HTTP/2 towards clients.
    pub http2: Http2Config,
    /// Admin listener (`/live`, `/ready`, ...). `None` = no admin listener.
    pub admin: Option<SocketAddr>,
    /// When set, admin endpoints other than `/live` and `/ready` want
    /// `Authorization: Bearer <token>`. Default none.
    pub admin_token: Option<String>,
    /// How much the Proxy-Status header tells. Default `minimal`.
    pub proxy_status: ProxyStatusMode,
    /// `proxy_status_full_for`: clients (by their real address, see `trusted_proxies`) whose
    /// responses carry the `full` Proxy-Status whatever `proxy_status` says: the operators'
    /// own networks. Default none.
    pub proxy_status_full_for: Vec<IpNet>,
    /// `trusted_proxies`: the load balancers and proxies in front of gatehouse. Only a peer in
    /// these blocks may send a PROXY protocol header, and only a client in them has its
    /// `X-Forwarded-For` (walked from the right past trusted hops), `X-Forwarded-Proto`,
    /// `X-Forwarded-Host` and `Forwarded` believed and passed on; from anyone else they are
    /// replaced. Default none.
    pub trusted_proxies: Vec<IpNet>,
    /// `proxy_protocol`: the plain listeners (`listen` and `redirect_https`) expect a PROXY
    /// protocol header (v1 or v2) before anything else, from a peer in `trusted_proxies`.
    /// Default false.
    pub proxy_protocol: bool,
    /// `forwarded`: add an RFC 7239 `Forwarded` element (`for`, `proto`, `host`) to the request.
    /// Default false.
    pub forwarded: bool,
    /// How long in-flight requests may take to finish after SIGTERM. Default 30s.
    pub drain_timeout: Duration,
    /// Worker threads. `None` = one per CPU core.
    pub workers: Option<usize>,
    /// `false` (default): each worker is a thread with a runtime of its own and its own
    /// `SO_REUSEPORT` socket per listener. `true`: one multi-thread runtime whose threads steal
    /// each other's tasks.
    pub work_stealing: bool,
    /// A request body arriving slower than this many bytes per second (averaged over the time
    /// gatehouse waited for it, after `min_rate_grace`) gets 408 and its connection closed.
    /// Default 240; 0 = off.
    pub min_request_body_rate: u32,
    /// A client reading a response slower than this many bytes per second (in windows of the
    /// time gatehouse waited to write, after `min_rate_grace`) is disconnected. Default 0 (off).
    pub min_response_rate: u32,
    /// How long a body may trickle before the minimum rates apply. Default 5s.
    pub min_rate_grace: Duration,
    /// `client_write_timeout`: a client that takes no byte of a response for this long (one
    /// write waiting the whole time, like nginx's `send_timeout`) is disconnected. Default 60s.
    pub client_write_timeout: Duration,
    /// A client must send a complete request header section within this time (408 otherwise);
    /// also how long an idle keep-alive connection is kept. Default 30s.
    pub client_header_timeout: Duration,
    /// `max_request_body_size`: a request body larger than this gets 413 (from its
    /// `Content-Length` before anything is forwarded, or once a chunked body passes it). A
    /// route's own value overrides it. Default 0 = no limit.
    pub max_request_body_size: u64,
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
    /// The file log lines are appended to (created if missing; SIGUSR1 reopens it, for
    /// logrotate). `None` = stdout, the default. A relative path in the file is resolved against
    /// the config file's directory; its directory exists (checked). Taken at start only.
    pub log_file: Option<PathBuf>,
    /// How access records are written. Default [`AccessLogFormat::Log`]. Taken at start only.
    pub access_log_format: AccessLogFormat,
    /// Where `combined` and `json` access lines go (like `log_file`). `None` = stdout, the
    /// default. Only with a format other than `log`. Taken at start only.
    pub access_log_file: Option<PathBuf>,
    /// Where gatehouse keeps what must survive a restart (the robots.txt guard's copies, the
    /// ACME account and certificates under `acme/`).
    /// `None` = the default location, chosen at start: `$STATE_DIRECTORY` (systemd's
    /// `StateDirectory=`), else `$XDG_STATE_HOME/gatehouse`, else `~/.local/state/gatehouse`.
    /// A relative path is resolved against the config file's directory. Taken at start only.
    pub state_dir: Option<PathBuf>,
}

/// HTTP/2 towards clients (`server.http2*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Http2Config {
    /// `http2`: offer HTTP/2: ALPN `h2` on TLS listeners, prior knowledge (h2c) on plain ones.
    /// Default true.
    pub enabled: bool,
    /// `http2_max_concurrent_streams`: streams one client connection may have open at once.
    /// Default 128; 1..=10000.
    pub max_concurrent_streams: u32,
    /// `http2_stream_window`: the flow-control window of each stream, in bytes. Default 1 MiB;
    /// 64 KiB..=16 MiB.
    pub stream_window: u32,
    /// `http2_connection_window`: the flow-control window of a whole connection. Default 2 MiB,
    /// or `stream_window` when that is larger; at least `stream_window`, at most 64 MiB.
    pub connection_window: u32,
}

/// One `[[server.tls]]`: HTTPS listeners sharing certificates and settings.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsListener {
    /// `listen`: addresses, like `server.listen`; none may be another listener's.
    pub listen: Vec<SocketAddr>,
    /// `cert`/`key` first, then each `certificates` entry, in file order. Chosen by the SNI name
    /// the client sends (exact names before wildcards); the first when it sends none or one no
    /// certificate covers. Never empty unless `acme` is on.
    pub certificates: Vec<TlsCertificate>,
    /// `acme`: also serve the certificates obtained through ACME (see [`AcmeConfig`]); a file
    /// certificate naming the same host is preferred. Default false.
    pub acme: bool,
    /// `min_version`: the oldest TLS version accepted, `"1.2"` (the default) or `"1.3"`.
    pub min_version: TlsVersion,
    /// `proxy_protocol`: a PROXY protocol header (v1 or v2) comes before the TLS handshake, from
    /// a peer in `server.trusted_proxies`. Default false.
    pub proxy_protocol: bool,
}

/// `[acme]`: certificates obtained and renewed from an ACME (RFC 8555) certificate authority.
#[derive(Debug, Clone, PartialEq)]
pub struct AcmeConfig {
    /// `directory`: the CA's directory URL. Default Let's Encrypt production;
    /// `"letsencrypt-staging"` names its staging directory.
    pub directory: String,
    /// `email`: the account's contact (`mailto:`), for the CA's expiry notices. Default none.
    pub email: Option<String>,
    /// `ca_file`: PEM roots the directory's HTTPS certificate is checked against (a private CA
    /// such as a test one). Default: the system's roots.
    pub ca_file: Option<PathBuf>,
    /// `challenges`: the challenge types tried, in order. Default `tls-alpn-01`, `http-01`.
    pub challenges: Vec<AcmeChallenge>,
    /// `domains`: the names one certificate is ordered for, lowercase. Default: every route's
    /// exact `host`, in file order. Never empty.
    pub domains: Vec<String>,
}

/// An ACME challenge type gatehouse answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcmeChallenge {
    /// RFC 8737: a self-signed certificate on the TLS listeners (ALPN `acme-tls/1`).
    TlsAlpn01,
    /// RFC 8555 §8.3: `/.well-known/acme-challenge/TOKEN` on the plain and redirect listeners.
    Http01,
}

impl AcmeChallenge {
    /// The name in the config and in RFC 8555's registry.
    pub const fn name(self) -> &'static str {
        match self {
            AcmeChallenge::TlsAlpn01 => "tls-alpn-01",
            AcmeChallenge::Http01 => "http-01",
        }
    }
}

/// A TLS protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

/// A certificate chain and its private key (PEM files), read and checked when the config is
/// loaded: the key matches the leaf certificate, so a reload with a broken pair is refused.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsCertificate {
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
    /// DER certificates, leaf first.
    pub chain: Vec<rustls_pki_types::CertificateDer<'static>>,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: std::sync::Arc<rustls_pki_types::PrivateKeyDer<'static>>,
    /// DNS names the leaf covers (subjectAltName; `*.example.com` wildcards kept as written),
    /// lowercase. The subject's CN when the leaf has no subjectAltName extension. May be empty
    /// (a certificate for IP addresses only).
    pub names: Vec<String>,
    /// The leaf's subject, e.g. `CN=example.com`.
    pub subject: String,
    /// The leaf's notAfter. Already past is allowed (a warning at load: clients will refuse it,
    /// but refusing the config would be an outage), and so is a date within 14 days (a warning).
    pub not_after: std::time::SystemTime,
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

/// `[cache]`
#[derive(Debug, Clone, PartialEq)]
pub struct CacheConfig {
    /// Bytes of stored responses kept in memory, across all routes. Default 64 MiB.
    pub memory: u64,
    /// Responses with a larger body are passed through and not stored. Default 8 MiB.
    pub max_object_size: u64,
    /// The on-disk store (a redb file), which survives a restart. `None` (the default) = memory
    /// only. Its directory exists (checked). Taken at start only.
    pub disk_path: Option<PathBuf>,
    /// Bound on the on-disk store; the least recently written entries go first. Default 1 GiB.
    pub disk_size: u64,
    /// How long requests for a key whose response is being fetched wait for it (request
    /// coalescing) before going to the upstream themselves. Default 5s.
    pub lock_timeout: Duration,
    /// gatehouse's own targeted cache-control field (RFC 9213), lowercase; it outranks
    /// `CDN-Cache-Control` and `Cache-Control`. Default `gatehouse-cache-control`; `None`
    /// (`targeted_field = ""`) = none.
    pub targeted_field: Option<String>,
    /// Obey `CDN-Cache-Control` (RFC 9213 §3) over `Cache-Control`. Default true.
    pub cdn_cache_control: bool,
    /// Send `targeted_field` on to the client. Default false: it is addressed to this cache
    /// alone, and no cache downstream obeys it. (`CDN-Cache-Control` is always forwarded: it
    /// addresses every CDN on the way, and another may follow.)
    pub forward_targeted_field: bool,
}

/// `[robots]`
#[derive(Debug, Clone, PartialEq)]
pub struct RobotsConfig {
    /// Keep each host's last good `/robots.txt` (on disk, in `server.state_dir`) and serve it
    /// when the origin fails. Default true.
    pub guard: bool,
    /// How old a kept copy may be and still be served. Default 30 days.
    pub max_age: Duration,
}

/// `[maintenance]`, or a route's `[route.maintenance]` resolved against it.
#[derive(Debug, Clone, PartialEq)]
pub struct MaintenanceConfig {
    /// Answer every request with 503 (`/robots.txt` is still served from the guard).
    /// Default false.
    pub enabled: bool,
    /// The `Retry-After` of the 503. Default 5 minutes.
    pub retry_after: Duration,
    /// The body of the 503; `None` = gatehouse's own negotiated error page.
    pub page: Option<MaintenancePage>,
}

/// A maintenance page, read when the config is loaded (so a reload picks up an edited page).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaintenancePage {
    pub path: PathBuf,
    /// From the file name's extension: `.html`/`.htm`, `.json`, `.txt`; HTML otherwise.
    pub content_type: &'static str,
    /// Shared, so that serving it copies nothing.
    pub body: std::sync::Arc<[u8]>,
}

/// `[route.cache]`
#[derive(Debug, Clone, PartialEq)]
pub struct RouteCache {
    pub mode: CacheMode,
    /// How long past its freshness a stored response may be served when the origin fails, for
    /// responses without a `stale-if-error` directive of their own. Default 1 day.
    pub stale_if_error: Duration,
}

/// `route.cache.mode`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheMode {
    /// Serve fresh copies, revalidate stale ones, serve stale on error.
    Full,
    /// Keep copies only to serve them when the origin fails; every request goes upstream.
    StaleIfError,
}

/// `[limits]`: the store every `[route.limit]` keeps its counters in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitsConfig {
    /// `store`: `"memory"` (the default: one set of counters per gatehouse instance, shared by
    /// its workers) or a `redis://` URL (one set shared by every instance using it).
    pub store: LimitStore,
    /// How long one decision may wait for the store before it counts as failed. Default 50ms.
    pub timeout: Duration,
    /// What a failed store decision does: let the request through (`open`, the default) or
    /// answer 503 (`closed`).
    pub fail: LimitFail,
    /// Bound on the keys the memory store tracks (the expired ones are swept first, then the
    /// closest to a full refill go). Default 100000.
    pub max_keys: usize,
}

/// `limits.store`
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitStore {
    Memory,
    /// `redis://[[user]:password@]host[:port][/db]`: Redis or Valkey, plain TCP.
    Redis(RedisAddress),
}

/// A parsed `redis://` URL.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisAddress {
    /// Host name or IP literal (IPv6 without brackets).
    pub host: String,
    /// Default 6379.
    pub port: u16,
    /// `SELECT`ed after connecting. Default 0.
    pub db: u32,
    /// For `AUTH` (Redis 6 ACL user); `None` = the default user.
    pub username: Option<String>,
    /// For `AUTH`; `None` = no AUTH.
    pub password: Option<String>,
}

impl std::fmt::Debug for RedisAddress {
    /// Never shows the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisAddress")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("db", &self.db)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

impl std::fmt::Display for RedisAddress {
    /// `redis://host:port/db`, without the credentials: for logs and the status page.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "redis://[{}]:{}/{}", self.host, self.port, self.db)
        } else {
            write!(f, "redis://{}:{}/{}", self.host, self.port, self.db)
        }
    }
}

/// `limits.fail`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitFail {
    /// The request goes on unlimited (a warning, a metric, the status page tell).
    Open,
    /// The request is answered 503.
    Closed,
}

/// `[route.limit]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteLimit {
    /// `rate`, `period`, `burst`; `None` = no rate limit (only `max_concurrent`).
    pub rate: Option<RateLimit>,
    /// What a client is: `key`. Default the client address.
    pub key: LimitKey,
    /// `max_concurrent`: requests one client address may have in flight on this route.
    pub max_concurrent: Option<u32>,
}

/// A GCRA rate: `requests` per `period`, up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RateLimit {
    pub requests: u32,
    /// Default 1s.
    pub period: Duration,
    /// Default `requests`.
    pub burst: u32,
}

/// `route.limit.key`
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LimitKey {
    /// `"client"`: the client address.
    Client,
    /// `"header:NAME"`: the value of a request header (name lowercase).
    Header(String),
    /// `"cookie:NAME"`: the value of a cookie.
    Cookie(String),
}

/// `server.access_log_format`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessLogFormat {
    /// An event in the log (target `gatehouse::access`), in `log_format`, where the log goes.
    Log,
    /// The Apache/nginx combined format, plus gatehouse's fields, one line per request.
    Combined,
    /// One JSON object per request, one per line.
    Json,
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
    /// Retry non-idempotent requests (POST, PATCH, ...) even after they may have reached the
    /// server. Default false (RFC 9110 §9.2.2).
    pub retry_non_idempotent: bool,
    /// `max_request_body_size` for this route (0 = no limit); `None` = the server's.
    pub max_request_body_size: Option<u64>,
    /// `[route.cache]`; `None` = this route's responses are not stored.
    pub cache: Option<RouteCache>,
    /// `[route.maintenance]` with `[maintenance]`'s values where it sets none. `None` = the route
    /// follows `[maintenance]`.
    pub maintenance: Option<MaintenanceConfig>,
    /// `[route.limit]`; `None` = no rate or concurrency limit on this route.
    pub limit: Option<RouteLimit>,
    /// `[route.compress]` with `[compress]`'s values where it sets none; `None` = the route
    /// follows `[compress]`.
    pub compress: Option<CompressConfig>,
}

/// `[compress]`, or a route's `[route.compress]` resolved against it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompressConfig {
    /// Compress responses. Default: false without a table; a `[compress]` or
    /// `[route.compress]` table switches it on unless it says `enabled = false`.
    pub enabled: bool,
    /// The codings gatehouse produces, in its order of preference among those the client
    /// accepts with equal q. Never empty when `enabled`. Default zstd, br, gzip.
    pub encodings: Vec<Encoding>,
    /// Responses whose `Content-Length` is below this are sent as they are (a response of
    /// unknown length is compressed). Default 1 KiB.
    pub min_size: u64,
    /// Media types to compress: `type/subtype`, `type/*` or `type/*+suffix`, lowercase.
    pub types: Vec<String>,
    /// gzip level, 1 to 9. Default 5.
    pub gzip_level: u32,
    /// brotli quality, 1 to 11. Default 4.
    pub brotli_level: u32,
    /// zstd level, 1 to 19. Default 3.
    pub zstd_level: u32,
    /// Decode an upstream's gzip, br or zstd response for a client that does not accept that
    /// coding. Default false.
    pub decompress: bool,
}

/// A content coding gatehouse can produce and decode (RFC 9110 §8.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    Gzip,
    Brotli,
    Zstd,
}

impl Encoding {
    /// The coding's token in `Accept-Encoding` and `Content-Encoding`.
    pub const fn token(self) -> &'static str {
        match self {
            Self::Gzip => "gzip",
            Self::Brotli => "br",
            Self::Zstd => "zstd",
        }
    }
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
