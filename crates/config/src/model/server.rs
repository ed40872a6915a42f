//! The whole config and `[server]`: listeners, TLS listeners, HTTP/2, logs; and `[dns]`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::*;

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
