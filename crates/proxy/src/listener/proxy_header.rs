//! Taking the PROXY protocol header off a new connection on a `proxy_protocol` listener: only
//! from a trusted peer, within `client_header_timeout`, reading exactly the header's bytes so
//! that what follows (HTTP, or a TLS handshake) stays in the socket for the next layer.

use std::net::SocketAddr;
use std::time::Duration;

use gatehouse_config::IpNet;
use tokio::io::AsyncReadExt as _;
use tokio::net::TcpStream;

use crate::client_addr::is_trusted;
use crate::proxy_protocol::{self, Parsed};

/// How long to wait before looking again when only part of the header has arrived.
const PEEK_PAUSE: Duration = Duration::from_millis(5);

/// Why a connection was closed before HTTP; the metric's `reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Refused {
    Untrusted,
    Invalid(&'static str),
    Timeout,
}

impl Refused {
    pub(super) fn reason(&self) -> &'static str {
        match self {
            Self::Untrusted => "untrusted",
            Self::Invalid(_) => "invalid",
            Self::Timeout => "timeout",
        }
    }
}

/// Reads the header from `peer`'s connection and returns the client's address: the one the
/// header names, or `peer` itself for the balancer's own connections (v2 `LOCAL`, v1
/// `UNKNOWN`).
pub(super) async fn take(
    stream: &mut TcpStream,
    peer: SocketAddr,
    trusted: &[IpNet],
    timeout: Duration,
) -> Result<SocketAddr, Refused> {
    if !is_trusted(trusted, peer.ip()) {
        return Err(Refused::Untrusted);
    }
    match tokio::time::timeout(timeout, read(stream)).await {
        Err(_) => Err(Refused::Timeout),
        Ok(Err(refused)) => Err(refused),
        Ok(Ok(source)) => Ok(source.unwrap_or(peer)),
    }
}

async fn read(stream: &mut TcpStream) -> Result<Option<SocketAddr>, Refused> {
    // On the heap and only while the header is read: the connection's future stays small.
    let mut buf = vec![0u8; proxy_protocol::V2_MAX];
    let mut wanted = proxy_protocol::V1_MAX;
    loop {
        let seen = stream
            .peek(&mut buf[..wanted])
            .await
            .map_err(|_| Refused::Invalid("the connection failed before its PROXY header"))?;
        if seen == 0 {
            return Err(Refused::Invalid(
                "the connection closed before its PROXY header",
            ));
        }
        match proxy_protocol::parse(&buf[..seen]) {
            Parsed::Header { len, source, .. } => {
                stream
                    .read_exact(&mut buf[..len])
                    .await
                    .map_err(|_| Refused::Invalid("the connection failed in its PROXY header"))?;
                return Ok(source);
            }
            Parsed::Invalid(why) => return Err(Refused::Invalid(why)),
            Parsed::Incomplete(need) => {
                wanted = need.clamp(proxy_protocol::V1_MAX, proxy_protocol::V2_MAX);
                if seen >= wanted {
                    // Everything asked for is there and still not enough: cannot happen with
                    // a well-behaved parser; refuse rather than spin.
                    return Err(Refused::Invalid("PROXY header longer than accepted"));
                }
                // `peek` returns at once while any byte is buffered: wait for more to arrive.
                tokio::time::sleep(PEEK_PAUSE).await;
            }
        }
    }
}
