//! Upstream host name resolution with hickory: NXDOMAIN, SERVFAIL and timeouts told apart.
//!
//! getaddrinfo folds every DNS failure into one opaque error; hickory reports the response code,
//! which becomes the `rcode` parameter of `dns_error`, and its own timeout, which becomes
//! `dns_timeout`. IP literals never come here.

use std::net::IpAddr;
use std::time::Duration;

use gatehouse_config::DnsConfig;
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;

use crate::failure::{Failure, FailureKind, Phase};

/// The addresses of a name and how long they may be trusted (the records' TTL).
#[derive(Debug, Clone)]
pub struct Resolved {
    pub addrs: Vec<IpAddr>,
    pub ttl: Duration,
}

/// The resolver of one config snapshot.
#[derive(Debug)]
pub struct Dns {
    resolver: Result<TokioResolver, String>,
    timeout: Duration,
}

impl Dns {
    pub fn new(config: &DnsConfig) -> Self {
        let resolver = build(config).map_err(|e| e.to_string());
        if let Err(error) = &resolver {
            tracing::warn!(%error, "no DNS resolver available; upstream host names will fail with dns_error");
        }
        Self {
            resolver,
            timeout: config.timeout,
        }
    }

    /// Resolves `host` to its addresses (A and AAAA), or a classified failure.
    pub async fn resolve(&self, host: &str) -> Result<Resolved, Failure> {
        let resolver = match &self.resolver {
            Ok(resolver) => resolver,
            Err(why) => {
                return Err(Failure::new(
                    FailureKind::DnsError,
                    Phase::Resolving,
                    format!("cannot resolve {host}: no resolver ({why})"),
                ));
            }
        };
        // hickory has its own per-query timeout; this outer one bounds retries and search lists.
        let lookup = tokio::time::timeout(self.timeout, resolver.lookup_ip(host)).await;
        match lookup {
            Err(_) => Err(timeout_failure(host, self.timeout)),
            Ok(Ok(found)) => {
                let addrs: Vec<IpAddr> = found.iter().collect();
                if addrs.is_empty() {
                    let mut failure = Failure::new(
                        FailureKind::DnsError,
                        Phase::Resolving,
                        format!("{host} has no A or AAAA records"),
                    );
                    failure.params.rcode = Some("NOERROR");
                    Err(failure)
                } else {
                    let ttl = found
                        .valid_until()
                        .saturating_duration_since(std::time::Instant::now());
                    Ok(Resolved { addrs, ttl })
                }
            }
            Ok(Err(err)) => Err(classify(host, &err, self.timeout)),
        }
    }
}

fn build(config: &DnsConfig) -> Result<TokioResolver, NetError> {
    let mut builder = if config.nameservers.is_empty() {
        TokioResolver::builder_tokio()?
    } else {
        let servers = config
            .nameservers
            .iter()
            .map(|addr| {
                let mut udp = ConnectionConfig::udp();
                udp.port = addr.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = addr.port();
                NameServerConfig::new(addr.ip(), true, vec![udp, tcp])
            })
            .collect();
        TokioResolver::builder_with_config(
            ResolverConfig::from_name_servers(servers),
            TokioRuntimeProvider::default(),
        )
    };
    let opts: &mut ResolverOpts = builder.options_mut();
    opts.timeout = config.timeout;
    opts.attempts = 1;
    builder.build()
}

fn timeout_failure(host: &str, timeout: Duration) -> Failure {
    Failure::new(
        FailureKind::DnsTimeout,
        Phase::Resolving,
        format!("no DNS answer for {host} within {timeout:?}"),
    )
}

fn classify(host: &str, err: &NetError, timeout: Duration) -> Failure {
    let rcode = match err {
        NetError::Timeout => return timeout_failure(host, timeout),
        NetError::Dns(DnsError::NoRecordsFound(none)) => Some(none.response_code),
        NetError::Dns(DnsError::ResponseCode(code)) => Some(*code),
        _ => None,
    };
    let Some(rcode) = rcode else {
        // No response code: the resolver could not be reached at all (no connections, I/O errors).
        return Failure::new(
            FailureKind::DnsTimeout,
            Phase::Resolving,
            format!("no DNS answer for {host}: {err}"),
        );
    };
    let mut failure = Failure::new(
        FailureKind::DnsError,
        Phase::Resolving,
        match rcode {
            ResponseCode::NXDomain => format!("{host} does not exist (NXDOMAIN)"),
            ResponseCode::NoError => format!("{host} has no A or AAAA records"),
            other => format!("DNS lookup of {host} failed: {other}"),
        },
    );
    failure.params.rcode = Some(rcode_name(rcode));
    failure
}

fn rcode_name(code: ResponseCode) -> &'static str {
    match code {
        ResponseCode::NoError => "NOERROR",
        ResponseCode::FormErr => "FORMERR",
        ResponseCode::ServFail => "SERVFAIL",
        ResponseCode::NXDomain => "NXDOMAIN",
        ResponseCode::NotImp => "NOTIMP",
        ResponseCode::Refused => "REFUSED",
        _ => "OTHER",
    }
}
