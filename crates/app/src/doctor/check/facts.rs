//! What the check of one entry works with and learns: its context, the report's steps (DNS,
//! TLS, HTTP) as the JSON shows them, and the facts a verdict's words draw on.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use gatehouse_config::UpstreamConfig;
use gatehouse_proxy::upstream::conn::Protocol;
use gatehouse_proxy::upstream::dns::Dns;
use gatehouse_proxy::upstream::server::ConnSettings;
use gatehouse_proxy::upstream::tls;
use serde::Serialize;

use crate::doctor::ports::{self, Listener};
use crate::doctor::verdict::Verdict;
use crate::naming::Naming;
use crate::probe::tlsdiag::{CertificateInfo, Inspection, TlsReport};

/// Everything learned about one server address (or about an entry whose name did not resolve).
#[derive(Debug, Serialize)]
pub(crate) struct ServerReport {
    /// The entry as written in `servers`.
    pub(crate) server: String,
    /// The proxy's name for it (`pool/host:port (ip)`), as logs and `next-hop` show it.
    pub(crate) label: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) address: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) dns: Option<DnsStep>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) connect_ms: Option<f64>,
    /// For a server reached over TLS: the handshake.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) tls: Option<TlsStep>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) http: Option<HttpStep>,
    pub(crate) verdict: Verdict,
    /// Healthy-but-worrying facts, e.g. latency close to `response_timeout`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct DnsStep {
    pub(crate) ms: f64,
    pub(crate) addresses: Vec<IpAddr>,
}

/// The TLS handshake with a server (JSON `tls`).
#[derive(Debug, Serialize)]
pub(crate) struct TlsStep {
    /// Sent as SNI and verified against the certificate: `tls_server_name`, else the host.
    pub(crate) server_name: String,
    /// The ALPN protocols offered (`h2` too when the upstream has `http2`).
    pub(crate) alpn_offered: Vec<String>,
    /// How long the handshake took, when it completed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) handshake_ms: Option<f64>,
    /// When it completed: `protocol`, `cipher`, `alpn`, the certificate's `subject`, `issuer`,
    /// `not_after` (Unix seconds), `expires` (RFC 3339) and `days_left`.
    #[serde(flatten)]
    pub(crate) negotiated: Option<TlsReport>,
    /// When the certificate failed verification: the one presented (`subject`, `issuer`,
    /// `not_after`, `expires`, `days_left`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) certificate: Option<CertificateInfo>,
}

#[derive(Debug, Default, Serialize)]
pub(crate) struct HttpStep {
    /// e.g. `GET /ping`.
    pub(crate) request: String,
    /// The protocol the request went over, as the proxy's would: `http/1.1`, `h2` (HTTP/2 over
    /// TLS) or `h2c` (HTTP/2 over cleartext, prior knowledge).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) protocol: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) status: Option<u16>,
    /// From sending the request to the complete response header section.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) first_byte_ms: Option<f64>,
    /// When the headers came after `response_timeout`: how long they took in the end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) late_first_byte_ms: Option<f64>,
    pub(crate) response_timeout_ms: f64,
    /// The size of the response header section (status line and fields).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) header_bytes: Option<u64>,
    pub(crate) header_limit: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) body_bytes: Option<u64>,
    /// The idle timeout the server announced (`Keep-Alive: timeout=N`), in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) keep_alive_timeout_s: Option<u64>,
}

/// What the check of one entry needs besides the entry.
#[derive(Debug)]
pub(crate) struct Context<'a> {
    pub(crate) upstream: &'a UpstreamConfig,
    pub(crate) dns: &'a Dns,
    pub(crate) listeners: &'a [Listener],
    /// How long to keep waiting for a server slower than `response_timeout`, to measure it.
    pub(crate) wait: Duration,
    /// Whose names the verdicts use for the limits.
    pub(crate) naming: Arc<Naming>,
}

/// The ALPN protocols the pool offers: `h2` first when the upstream speaks HTTP/2 (the
/// proxy's `TlsClients`; used for the report's words when they cannot be built).
fn alpn_offered(upstream: &UpstreamConfig) -> Vec<&'static [u8]> {
    if upstream.http2 {
        vec![tls::ALPN_H2, tls::ALPN_HTTP11]
    } else {
        vec![tls::ALPN_HTTP11]
    }
}

/// The facts a verdict's words draw on.
#[derive(Debug, Default)]
pub(crate) struct Facts {
    pub(crate) pool: String,
    pub(crate) server: String,
    pub(crate) address: Option<SocketAddr>,
    pub(crate) port_hints: Vec<ports::PortHint>,
    pub(crate) settings: Option<ConnSettings>,
    pub(crate) request: String,
    /// The protocol the connection spoke (known once the connection was opened).
    pub(crate) protocol: Option<Protocol>,
    pub(crate) header_bytes: Option<u64>,
    pub(crate) late_first_byte: Option<Duration>,
    pub(crate) waited: Duration,
    /// For a server reached over TLS: what the TLS verdicts' words draw on.
    pub(crate) tls: Option<TlsDiagnosis>,
    /// Whose names the verdict uses for the limits.
    pub(crate) naming: Arc<Naming>,
}

/// What the doctor knows about a TLS server besides the failure.
#[derive(Debug, Default)]
pub(crate) struct TlsDiagnosis {
    /// The name sent as SNI and verified.
    pub(crate) server_name: String,
    /// Whether `tls_server_name` set it (else it is the server's host).
    pub(crate) name_configured: bool,
    /// `tls_ca_file`; `None` = the system's trust roots.
    pub(crate) ca_file: Option<PathBuf>,
    /// `tls_client_cert`, if any.
    pub(crate) client_cert: Option<PathBuf>,
    pub(crate) alpn_offered: Vec<String>,
    /// The handshake ran into its timeout (rather than failing).
    pub(crate) timed_out: bool,
    /// A certificate that failed verification, looked at again.
    pub(crate) inspection: Option<Inspection>,
    /// After a protocol error: the status the port answered a plain HTTP request with.
    pub(crate) plain_http_status: Option<u16>,
    /// The pool's client configuration could not be built: why.
    pub(crate) config_error: Option<String>,
}

impl TlsDiagnosis {
    pub(super) fn new(upstream: &UpstreamConfig, host: &str) -> Self {
        let tls = &upstream.tls;
        Self {
            server_name: tls.server_name.clone().unwrap_or_else(|| host.to_owned()),
            name_configured: tls.server_name.is_some(),
            ca_file: tls.ca.as_ref().map(|ca| ca.path.clone()),
            client_cert: tls.client_cert.as_ref().map(|c| c.cert_path.clone()),
            alpn_offered: alpn_offered(upstream)
                .iter()
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .collect(),
            ..Self::default()
        }
    }
}

impl Facts {
    pub(super) fn for_entry(cx: &Context<'_>, server: &str) -> Self {
        Self {
            pool: cx.upstream.name.clone(),
            server: server.to_owned(),
            settings: Some(ConnSettings::from(cx.upstream)),
            // A server is waited for `--wait`, but never less than its response_timeout.
            waited: cx.wait.max(cx.upstream.response_timeout),
            naming: Arc::clone(&cx.naming),
            ..Self::default()
        }
    }
}
