//! `[upstream.NAME]` validation: the servers (plain strings or tables, `https://` or `http://`
//! or no scheme; duplicates, all-backup pools, literal IPs inside `deny_addresses`, `http://`
//! under `tls = true`), the balancing policy and its `hash_key`, the connection limits and
//! queue, DNS re-resolution and the deny list, and the timeouts. The three sub-tables
//! (`health`, `passive`, `retry`) are in `health`; the `tls_*` keys in `tls`.

use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use toml::Spanned;

use super::fields::{checked_timeout, choice, int_in, parse_at, size, timeout};
use super::health::{health, passive, retry};
use super::tls::upstream_tls;
use super::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_RESPONSE_HEADER_SIZE, DEFAULT_READ_TIMEOUT,
    DEFAULT_RESPONSE_TIMEOUT, DEFAULT_SEND_TIMEOUT, MIN_HEADER_SIZE,
};
use crate::diag::Sink;
use crate::model::{Balance, HashKey, IpNet, ProxyProtocolVersion, UpstreamConfig, UpstreamServer};
use crate::raw::{RawServerEntry, RawUpstream};
use crate::values::{self, Scheme};

// Defaults. Each is also documented on the model field and in docs/configuration.md.
const DEFAULT_WEIGHT: u32 = 1;
const MAX_WEIGHT: u32 = 1000;
const DEFAULT_QUEUE_SIZE: u32 = 100;
const DEFAULT_QUEUE_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_RESOLVE_INTERVAL: Duration = Duration::from_secs(30);
/// Re-resolving more often than this is a DNS load problem, not freshness.
const MIN_RESOLVE_INTERVAL: Duration = Duration::from_secs(1);
const DEFAULT_TUNNEL_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

pub(super) fn upstream(
    name: &str,
    raw: &Spanned<RawUpstream>,
    base: &Path,
    sink: &mut Sink<'_>,
) -> UpstreamConfig {
    let prefix = format!("upstream.{name}");
    let key = |field: &str| format!("{prefix}.{field}");
    if !values::is_upstream_name(name) {
        sink.error(
            Some(raw.span()),
            &prefix,
            format!("{name:?} is not a valid upstream name"),
            "use letters, digits, '-' and '_' only, e.g. [upstream.api]",
        );
    }
    let up = raw.get_ref();
    let deny_addresses = ip_nets(up.deny_addresses.as_deref(), &key("deny_addresses"), sink);
    let tls_all = up.tls.as_ref().is_some_and(|t| *t.get_ref());
    let servers = servers(name, raw, &deny_addresses, tls_all, sink);
    let tls = upstream_tls(up, &prefix, tls_all || writes_https(up), base, sink);
    let max_connections = up.max_connections.as_ref().and_then(|m| {
        // 0 is "unlimited", like leaving the key out.
        let n = int_in(sink, Some(m), &key("max_connections"), 0, 0, u32::MAX);
        (n > 0).then_some(n)
    });
    let send_proxy_protocol = up.send_proxy_protocol.clone().and_then(|raw| {
        choice(
            sink,
            Some(raw),
            &key("send_proxy_protocol"),
            None,
            &[
                ("v1", Some(ProxyProtocolVersion::V1)),
                ("v2", Some(ProxyProtocolVersion::V2)),
            ],
        )
    });
    UpstreamConfig {
        send_proxy_protocol,
        name: name.to_owned(),
        servers,
        balance: balance(up, &key, sink),
        connect_timeout: timeout(
            sink,
            up.connect_timeout.clone(),
            &key("connect_timeout"),
            DEFAULT_CONNECT_TIMEOUT,
        ),
        response_timeout: timeout(
            sink,
            up.response_timeout.clone(),
            &key("response_timeout"),
            DEFAULT_RESPONSE_TIMEOUT,
        ),
        read_timeout: timeout(
            sink,
            up.read_timeout.clone(),
            &key("read_timeout"),
            DEFAULT_READ_TIMEOUT,
        ),
        send_timeout: timeout(
            sink,
            up.send_timeout.clone(),
            &key("send_timeout"),
            DEFAULT_SEND_TIMEOUT,
        ),
        max_response_header_size: size(
            sink,
            up.max_response_header_size.clone(),
            &key("max_response_header_size"),
            DEFAULT_MAX_RESPONSE_HEADER_SIZE,
            MIN_HEADER_SIZE,
        ),
        max_connections,
        queue_size: int_in(
            sink,
            up.queue_size.as_ref(),
            &key("queue_size"),
            DEFAULT_QUEUE_SIZE,
            0,
            u32::MAX,
        ),
        queue_timeout: timeout(
            sink,
            up.queue_timeout.clone(),
            &key("queue_timeout"),
            DEFAULT_QUEUE_TIMEOUT,
        ),
        resolve_interval: resolve_interval(
            up.resolve_interval.as_ref(),
            &key("resolve_interval"),
            sink,
        ),
        deny_addresses,
        health: health(up.health.as_ref(), &prefix, sink),
        passive: passive(up.passive.as_ref(), &prefix, sink),
        retry: retry(up.retry.as_ref(), &prefix, sink),
        tls,
        http2: up.http2.as_ref().is_some_and(|h| *h.get_ref()),
        tunnel_idle_timeout: timeout(
            sink,
            up.tunnel_idle_timeout.clone(),
            &key("tunnel_idle_timeout"),
            DEFAULT_TUNNEL_IDLE_TIMEOUT,
        ),
    }
}

// === servers ===

/// One parsed server with the key and position its address was written at (for the
/// diagnostics that compare servers).
struct Parsed {
    server: UpstreamServer,
    /// `http://` or `https://` as written, `None` without a scheme.
    scheme: Option<Scheme>,
    key: String,
    span: Range<usize>,
}

/// Whether a server is written `https://…` (even one that is otherwise invalid, so the `tls_*`
/// keys are not also called useless when that server has an error of its own).
fn writes_https(up: &RawUpstream) -> bool {
    let Some(list) = &up.servers else {
        return false;
    };
    list.get_ref().iter().any(|entry| {
        let address = match entry.get_ref() {
            RawServerEntry::Address(a) => Some(a.as_str()),
            RawServerEntry::Table(t) => t.address.as_ref().map(|a| a.get_ref().as_str()),
        };
        address.is_some_and(|a| {
            a.get(..8)
                .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"))
        })
    })
}

/// The servers; `tls_all` (`tls = true`) puts every one of them on TLS.
fn servers(
    name: &str,
    raw: &Spanned<RawUpstream>,
    deny: &[IpNet],
    tls_all: bool,
    sink: &mut Sink<'_>,
) -> Vec<UpstreamServer> {
    let key = format!("upstream.{name}.servers");
    let Some(list) = &raw.get_ref().servers else {
        sink.error(
            Some(raw.span()),
            key,
            format!("upstream {name:?} has no `servers`"),
            "add servers = [\"127.0.0.1:3000\"] (host:port of each backend)",
        );
        return Vec::new();
    };
    if list.get_ref().is_empty() {
        sink.warning(
            Some(list.span()),
            &key,
            "servers is empty: requests routed here will get 500 proxy_configuration_error",
            "add at least one \"host:port\"",
        );
    }
    let mut out: Vec<Parsed> = Vec::new();
    for (i, entry) in list.get_ref().iter().enumerate() {
        let Some(mut parsed) = server_entry(entry, &format!("{key}[{i}]"), sink) else {
            continue;
        };
        if tls_all && parsed.scheme == Some(Scheme::Http) {
            // As written: `http://x` means port 80, which is left out again.
            let authority = parsed.server.address.authority();
            let written = authority.strip_suffix(":80").unwrap_or(&authority);
            sink.error(
                Some(parsed.span),
                parsed.key,
                format!("http://{written} asks for plain HTTP, but this upstream has tls = true"),
                format!(
                    "write \"https://{written}\" (with the port the server speaks TLS on), or remove tls = true and write each TLS server as https://"
                ),
            );
            continue;
        }
        parsed.server.tls = tls_all || parsed.scheme == Some(Scheme::Https);
        let address = &parsed.server.address;
        if let Some(earlier) = out.iter().find(|p| p.server.address == *address) {
            sink.error(
                Some(parsed.span),
                parsed.key,
                format!(
                    "{} is listed twice (also {})",
                    address.authority(),
                    earlier.key
                ),
                "remove one of them; to send a server more traffic, give it a higher weight",
            );
            continue;
        }
        if let Some(ip) = address.ip
            && let Some(net) = deny.iter().find(|net| net.contains(ip))
        {
            sink.warning(
                Some(parsed.span.clone()),
                &parsed.key,
                format!(
                    "{ip} is inside deny_addresses entry {net}: every request to this server will fail with destination_ip_prohibited"
                ),
                "remove the server, or remove or narrow that deny_addresses entry",
            );
        }
        out.push(parsed);
    }
    if !out.is_empty() && out.iter().all(|p| p.server.backup) {
        sink.warning(
            Some(list.span()),
            key,
            "every server has backup = true: backups only take requests when no primary server is available, and there is no primary",
            "remove `backup` (or set it to false) on the servers that should take requests normally",
        );
    }
    out.into_iter().map(|p| p.server).collect()
}

/// One element of `servers`, `None` when it is invalid (reported).
fn server_entry(entry: &Spanned<RawServerEntry>, key: &str, sink: &mut Sink<'_>) -> Option<Parsed> {
    let table = match entry.get_ref() {
        RawServerEntry::Address(address) => {
            let address = Spanned::new(entry.span(), address.clone());
            let (address, scheme) = parse_at(sink, &address, key, values::server_url)?;
            return Some(Parsed {
                scheme,
                server: UpstreamServer {
                    address,
                    weight: DEFAULT_WEIGHT,
                    max_connections: None,
                    backup: false,
                    tls: false,
                },
                key: key.to_owned(),
                span: entry.span(),
            });
        }
        RawServerEntry::Table(table) => table,
    };
    let address_key = format!("{key}.address");
    let address = match &table.address {
        Some(a) => parse_at(sink, a, &address_key, values::server_url),
        None => {
            sink.error(
                Some(entry.span()),
                &address_key,
                "server entry has no `address`",
                "add address = \"host:port\", e.g. { address = \"127.0.0.1:3000\", weight = 2 }",
            );
            None
        }
    };
    // Read the other keys even when the address is bad, so their problems are reported too.
    let weight = int_in(
        sink,
        table.weight.as_ref(),
        &format!("{key}.weight"),
        DEFAULT_WEIGHT,
        1,
        MAX_WEIGHT,
    );
    let max_connections = table.max_connections.as_ref().and_then(|m| {
        let key = format!("{key}.max_connections");
        if *m.get_ref() == 0 {
            sink.error(
                Some(m.span()),
                key,
                "0 is not allowed for one server (a server entry cannot lift the upstream's limit)",
                "use a positive number, or remove the key to use the upstream's max_connections",
            );
            return None;
        }
        Some(int_in(sink, Some(m), &key, 1, 1, u32::MAX))
    });
    let backup = table.backup.as_ref().is_some_and(|b| *b.get_ref());
    let span = table.address.as_ref().map_or(entry.span(), Spanned::span);
    let (address, scheme) = address?;
    Some(Parsed {
        scheme,
        server: UpstreamServer {
            address,
            weight,
            max_connections,
            backup,
            tls: false,
        },
        key: address_key,
        span,
    })
}

// === balance, DNS, deny list ===

fn balance(up: &RawUpstream, key: &impl Fn(&str) -> String, sink: &mut Sink<'_>) -> Balance {
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Word {
        RoundRobin,
        LeastRequests,
        Hash,
    }
    const WORDS: [(&str, Word); 3] = [
        ("round_robin", Word::RoundRobin),
        ("least_requests", Word::LeastRequests),
        ("hash", Word::Hash),
    ];
    let word = choice(
        sink,
        up.balance.clone(),
        &key("balance"),
        Word::RoundRobin,
        &WORDS,
    );
    let hash_key = up.hash_key.as_ref().and_then(|raw| {
        let parsed = parse_at(sink, raw, &key("hash_key"), values::hash_key)?;
        // Only when `balance` is valid: a misspelt "hash" is already an error of its own.
        let balance_valid = up
            .balance
            .as_ref()
            .is_none_or(|b| WORDS.iter().any(|(w, _)| *w == b.get_ref()));
        if word != Word::Hash && balance_valid {
            sink.warning(
                Some(raw.span()),
                key("hash_key"),
                "hash_key has no effect unless balance = \"hash\"",
                "set balance = \"hash\", or remove hash_key",
            );
        }
        Some(parsed)
    });
    match word {
        Word::RoundRobin => Balance::RoundRobin,
        Word::LeastRequests => Balance::LeastRequests,
        Word::Hash => Balance::Hash(hash_key.unwrap_or(HashKey::ClientIp)),
    }
}

fn resolve_interval(raw: Option<&Spanned<String>>, key: &str, sink: &mut Sink<'_>) -> Duration {
    let Some(interval) = checked_timeout(sink, raw, key, DEFAULT_RESOLVE_INTERVAL) else {
        return DEFAULT_RESOLVE_INTERVAL;
    };
    match raw {
        Some(raw) if interval < MIN_RESOLVE_INTERVAL => {
            sink.error(
                Some(raw.span()),
                key,
                format!("{:?} is shorter than 1s", raw.get_ref()),
                "use 1s or more, e.g. \"30s\" (the default); the record's TTL is used when it is shorter",
            );
            DEFAULT_RESOLVE_INTERVAL
        }
        _ => interval,
    }
}

/// The deny list, each block truncated to its prefix (with a warning when that changed it).
/// A list of CIDR blocks (`deny_addresses`, `trusted_proxies`, ...), each stored truncated,
/// with a warning for host bits set after the prefix.
pub(super) fn ip_nets(
    raw: Option<&[Spanned<String>]>,
    key: &str,
    sink: &mut Sink<'_>,
) -> Vec<IpNet> {
    let mut out = Vec::new();
    for (i, item) in raw.unwrap_or_default().iter().enumerate() {
        let key = format!("{key}[{i}]");
        let Some(net) = parse_at(sink, item, &key, values::ip_net) else {
            continue;
        };
        let truncated = net.trunc();
        if truncated != net {
            sink.warning(
                Some(item.span()),
                key,
                format!(
                    "{:?} has address bits set after the /{} prefix, so it means {truncated}",
                    item.get_ref(),
                    net.prefix
                ),
                format!(
                    "write \"{truncated}\", or \"{}\" for that one address",
                    net.addr
                ),
            );
        }
        out.push(truncated);
    }
    out
}
