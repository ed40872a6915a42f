//! The fix for a failure kind in gatehouse's own terms: the config key to change or what to
//! check, for a server of upstream `pool`. Shared by `gatehouse doctor` (when it has no more
//! specific facts about the server) and `gatehouse explain` (reading gatehouse's own logs), so
//! both say the same thing in the same words.
//!
//! The generic root cause of a kind is `FailureKind::hint`; this adds where to act.

use gatehouse_proxy::failure::FailureKind;

use crate::naming::{Key, Naming};

/// What to do about `kind` on a server of upstream `pool`, naming the limits as `naming` says
/// (gatehouse's keys, or the directives of the nginx or HAProxy config `doctor` was given).
pub(crate) fn fix(kind: FailureKind, pool: &str, naming: &Naming) -> String {
    let servers_key = naming.servers(pool);
    match kind {
        FailureKind::DnsError => {
            format!("correct the host name in {servers_key}, or add it to DNS or /etc/hosts")
        }
        FailureKind::DnsTimeout => "check [dns] nameservers (or /etc/resolv.conf) and raise dns.timeout if the resolver is merely slow".to_owned(),
        FailureKind::DestinationIpProhibited => format!(
            "fix the server's address (or its DNS record); if it is meant, remove the range from upstream.{pool}.deny_addresses"
        ),
        FailureKind::DestinationIpUnroutable => {
            format!("check the address in {servers_key} and this host's network and routes")
        }
        FailureKind::ConnectionRefused => {
            format!("start the backend, or correct the address in {servers_key}")
        }
        FailureKind::ConnectionTimeout => format!(
            "check that the host is up and that no firewall drops traffic to it; raise {} only if the network is merely slow",
            naming.key(pool, Key::ConnectTimeout)
        ),
        FailureKind::ConnectionTerminated => "see the backend's logs: it may be crashing on the request, or expect another protocol (TLS?) on this port".to_owned(),
        FailureKind::HttpProtocolError => format!(
            "check that the port in {servers_key} is the backend's HTTP port, not a database, TLS or other service"
        ),
        FailureKind::HttpResponseHeaderSectionSize => format!(
            "raise {}, or make the app send smaller headers (often a large Set-Cookie)",
            naming.key(pool, Key::MaxResponseHeaderSize)
        ),
        FailureKind::HttpResponseTimeout => format!(
            "raise {} or speed up the handler; if the backend is hung or overloaded, see its logs, its worker pool, its own upstreams (database?)",
            naming.key(pool, Key::ResponseTimeout)
        ),
        FailureKind::ConnectionReadTimeout => format!(
            "raise {}, or find why the backend stalls mid-response",
            naming.key(pool, Key::ReadTimeout)
        ),
        FailureKind::DestinationNotFound
        | FailureKind::DestinationUnavailable
        | FailureKind::ConnectionWriteTimeout
        | FailureKind::ConnectionLimitReached
        | FailureKind::TlsProtocolError
        | FailureKind::TlsCertificateError
        | FailureKind::TlsAlertReceived
        | FailureKind::HttpRequestError
        | FailureKind::HttpRequestDenied
        | FailureKind::HttpResponseIncomplete
        | FailureKind::HttpResponseHeaderSize
        | FailureKind::HttpResponseBodySize
        | FailureKind::HttpResponseTransferCoding
        | FailureKind::HttpResponseContentCoding
        | FailureKind::HttpUpgradeFailed
        | FailureKind::ProxyInternalResponse
        | FailureKind::ProxyInternalError
        | FailureKind::ProxyConfigurationError
        | FailureKind::ProxyLoopDetected => kind.hint().to_owned(),
    }
}
