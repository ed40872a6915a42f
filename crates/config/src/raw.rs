//! The raw TOML schema: what the file says, before anything is checked.
//!
//! Keys are snake_case, exactly as in the config reference. Every optional key is an `Option`, so
//! `validate` can tell "absent" (use the default) from "present" and point at the value's position
//! through [`Spanned`]. Durations, sizes, addresses and enumerations are kept as strings here and
//! parsed in `validate`, so a bad one becomes a diagnostic instead of stopping deserialization.
//!
//! `deny_unknown_fields` is a safety net only: `schema` has already reported and removed unknown
//! keys and ill-typed values (serde would stop at the first one).

use std::collections::BTreeMap;

use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use toml::Spanned;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    #[serde(default)]
    pub(crate) server: RawServer,
    #[serde(default)]
    pub(crate) dns: RawDns,
    #[serde(default)]
    pub(crate) cache: RawCache,
    #[serde(default)]
    pub(crate) robots: RawRobots,
    pub(crate) maintenance: Option<Spanned<RawMaintenance>>,
    #[serde(default)]
    pub(crate) limits: RawLimits,
    pub(crate) compress: Option<Spanned<RawCompress>>,
    pub(crate) acme: Option<Spanned<RawAcme>>,
    /// `[[route]]` tables in file order.
    #[serde(default)]
    pub(crate) route: Vec<Spanned<RawRoute>>,
    /// `[upstream.NAME]` tables by name.
    #[serde(default)]
    pub(crate) upstream: BTreeMap<String, Spanned<RawUpstream>>,
}

/// `[server]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawServer {
    pub(crate) name: Option<Spanned<String>>,
    pub(crate) listen: Option<Spanned<Vec<Spanned<String>>>>,
    pub(crate) admin: Option<Spanned<String>>,
    pub(crate) admin_token: Option<Spanned<String>>,
    pub(crate) proxy_status: Option<Spanned<String>>,
    pub(crate) proxy_status_full_for: Option<Vec<Spanned<String>>>,
    pub(crate) trusted_proxies: Option<Vec<Spanned<String>>>,
    pub(crate) proxy_protocol: Option<Spanned<bool>>,
    pub(crate) forwarded: Option<Spanned<bool>>,
    pub(crate) drain_timeout: Option<Spanned<String>>,
    pub(crate) workers: Option<Spanned<i64>>,
    pub(crate) work_stealing: Option<Spanned<bool>>,
    pub(crate) client_header_timeout: Option<Spanned<String>>,
    pub(crate) min_request_body_rate: Option<Spanned<i64>>,
    pub(crate) min_response_rate: Option<Spanned<i64>>,
    pub(crate) min_rate_grace: Option<Spanned<String>>,
    pub(crate) client_write_timeout: Option<Spanned<String>>,
    pub(crate) max_request_header_size: Option<Spanned<RawSize>>,
    pub(crate) max_request_body_size: Option<Spanned<RawSize>>,
    pub(crate) max_uri_length: Option<Spanned<RawSize>>,
    pub(crate) log_format: Option<Spanned<String>>,
    pub(crate) log_level: Option<Spanned<String>>,
    pub(crate) access_log: Option<Spanned<bool>>,
    pub(crate) log_file: Option<Spanned<String>>,
    pub(crate) access_log_format: Option<Spanned<String>>,
    pub(crate) access_log_file: Option<Spanned<String>>,
    pub(crate) state_dir: Option<Spanned<String>>,
    /// `[[server.tls]]` tables in file order.
    pub(crate) tls: Option<Vec<Spanned<RawTlsListener>>>,
    pub(crate) redirect_https: Option<Spanned<Vec<Spanned<String>>>>,
    pub(crate) http2: Option<Spanned<bool>>,
    pub(crate) http2_max_concurrent_streams: Option<Spanned<i64>>,
    pub(crate) http2_stream_window: Option<Spanned<RawSize>>,
    pub(crate) http2_connection_window: Option<Spanned<RawSize>>,
}

/// One `[[server.tls]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTlsListener {
    /// Required; `Option` so a missing one is a diagnostic, not a serde error.
    pub(crate) listen: Option<Spanned<Vec<Spanned<String>>>>,
    pub(crate) cert: Option<Spanned<String>>,
    pub(crate) key: Option<Spanned<String>>,
    pub(crate) certificates: Option<Vec<Spanned<RawCertPair>>>,
    pub(crate) min_version: Option<Spanned<String>>,
    pub(crate) proxy_protocol: Option<Spanned<bool>>,
    pub(crate) acme: Option<Spanned<bool>>,
}

/// `[acme]`: how certificates for `acme = true` listeners are obtained.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAcme {
    pub(crate) directory: Option<Spanned<String>>,
    pub(crate) email: Option<Spanned<String>>,
    pub(crate) ca_file: Option<Spanned<String>>,
    pub(crate) challenges: Option<Spanned<Vec<Spanned<String>>>>,
    pub(crate) domains: Option<Spanned<Vec<Spanned<String>>>>,
}

/// One element of `[[server.tls]]`'s `certificates`: `{ cert = "...", key = "..." }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCertPair {
    /// Both required; `Option` so a missing one is a diagnostic, not a serde error.
    pub(crate) cert: Option<Spanned<String>>,
    pub(crate) key: Option<Spanned<String>>,
}

/// `[cache]`: the store every caching route shares.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCache {
    pub(crate) memory: Option<Spanned<RawSize>>,
    pub(crate) max_object_size: Option<Spanned<RawSize>>,
    pub(crate) disk_path: Option<Spanned<String>>,
    pub(crate) disk_size: Option<Spanned<RawSize>>,
    pub(crate) lock_timeout: Option<Spanned<String>>,
    pub(crate) targeted_field: Option<Spanned<String>>,
    pub(crate) cdn_cache_control: Option<Spanned<bool>>,
    pub(crate) forward_targeted_field: Option<Spanned<bool>>,
}

/// `[robots]`: the robots.txt guard.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRobots {
    pub(crate) guard: Option<Spanned<bool>>,
    pub(crate) max_age: Option<Spanned<String>>,
}

/// `[maintenance]` and `[route.maintenance]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMaintenance {
    pub(crate) enabled: Option<Spanned<bool>>,
    pub(crate) retry_after: Option<Spanned<String>>,
    pub(crate) page: Option<Spanned<String>>,
}

/// `[compress]` and `[route.compress]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCompress {
    pub(crate) enabled: Option<Spanned<bool>>,
    pub(crate) encodings: Option<Spanned<Vec<Spanned<String>>>>,
    pub(crate) min_size: Option<Spanned<RawSize>>,
    pub(crate) types: Option<Spanned<Vec<Spanned<String>>>>,
    pub(crate) gzip_level: Option<Spanned<i64>>,
    pub(crate) brotli_level: Option<Spanned<i64>>,
    pub(crate) zstd_level: Option<Spanned<i64>>,
    pub(crate) decompress: Option<Spanned<bool>>,
}

/// `[route.cache]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRouteCache {
    pub(crate) mode: Option<Spanned<String>>,
    pub(crate) stale_if_error: Option<Spanned<String>>,
}

/// `[limits]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLimits {
    pub(crate) store: Option<Spanned<String>>,
    pub(crate) timeout: Option<Spanned<String>>,
    pub(crate) fail: Option<Spanned<String>>,
    pub(crate) max_keys: Option<Spanned<i64>>,
}

/// `[route.limit]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRouteLimit {
    pub(crate) rate: Option<Spanned<i64>>,
    pub(crate) period: Option<Spanned<String>>,
    pub(crate) burst: Option<Spanned<i64>>,
    pub(crate) key: Option<Spanned<String>>,
    pub(crate) max_concurrent: Option<Spanned<i64>>,
}

/// `[dns]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDns {
    pub(crate) nameservers: Option<Vec<Spanned<String>>>,
    pub(crate) timeout: Option<Spanned<String>>,
}

/// One `[[route]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRoute {
    pub(crate) host: Option<Spanned<String>>,
    pub(crate) path: Option<Spanned<String>>,
    /// Required; `Option` so a missing one is a diagnostic, not a serde error.
    pub(crate) upstream: Option<Spanned<String>>,
    pub(crate) retry_non_idempotent: Option<Spanned<bool>>,
    pub(crate) max_request_body_size: Option<Spanned<RawSize>>,
    pub(crate) cache: Option<Spanned<RawRouteCache>>,
    pub(crate) maintenance: Option<Spanned<RawMaintenance>>,
    pub(crate) limit: Option<Spanned<RawRouteLimit>>,
    pub(crate) compress: Option<Spanned<RawCompress>>,
}

/// One `[upstream.NAME]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawUpstream {
    /// Required; `Option` so a missing one is a diagnostic, not a serde error.
    pub(crate) servers: Option<Spanned<Vec<Spanned<RawServerEntry>>>>,
    pub(crate) balance: Option<Spanned<String>>,
    pub(crate) hash_key: Option<Spanned<String>>,
    pub(crate) send_proxy_protocol: Option<Spanned<String>>,
    pub(crate) connect_timeout: Option<Spanned<String>>,
    pub(crate) response_timeout: Option<Spanned<String>>,
    pub(crate) read_timeout: Option<Spanned<String>>,
    pub(crate) send_timeout: Option<Spanned<String>>,
    pub(crate) max_response_header_size: Option<Spanned<RawSize>>,
    pub(crate) max_connections: Option<Spanned<i64>>,
    pub(crate) queue_size: Option<Spanned<i64>>,
    pub(crate) queue_timeout: Option<Spanned<String>>,
    pub(crate) resolve_interval: Option<Spanned<String>>,
    pub(crate) deny_addresses: Option<Vec<Spanned<String>>>,
    pub(crate) tls: Option<Spanned<bool>>,
    pub(crate) tls_server_name: Option<Spanned<String>>,
    pub(crate) tls_ca_file: Option<Spanned<String>>,
    pub(crate) tls_client_cert: Option<Spanned<String>>,
    pub(crate) tls_client_key: Option<Spanned<String>>,
    pub(crate) http2: Option<Spanned<bool>>,
    pub(crate) tunnel_idle_timeout: Option<Spanned<String>>,
    pub(crate) health: Option<Spanned<RawHealth>>,
    pub(crate) passive: Option<RawPassive>,
    pub(crate) retry: Option<RawRetry>,
}

/// One element of `servers`: `"host:port"` (optionally `http://` or `https://` before it) or
/// `{ address = "host:port", weight = 3, ... }`.
///
/// Deserialized by hand rather than `#[serde(untagged)]`: an untagged enum buffers its input,
/// which loses the [`Spanned`] positions of the table's values.
#[derive(Debug)]
pub(crate) enum RawServerEntry {
    /// A plain string; its position is the enclosing `Spanned`'s.
    Address(String),
    Table(RawServerTable),
}

/// A server written as a table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawServerTable {
    /// Required; `Option` so a missing one is a diagnostic, not a serde error.
    pub(crate) address: Option<Spanned<String>>,
    pub(crate) weight: Option<Spanned<i64>>,
    pub(crate) max_connections: Option<Spanned<i64>>,
    pub(crate) backup: Option<Spanned<bool>>,
}

/// `[upstream.NAME.health]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHealth {
    pub(crate) path: Option<Spanned<String>>,
    pub(crate) interval: Option<Spanned<String>>,
    pub(crate) timeout: Option<Spanned<String>>,
    pub(crate) unhealthy_threshold: Option<Spanned<i64>>,
    pub(crate) healthy_threshold: Option<Spanned<i64>>,
    pub(crate) expect_status: Option<Spanned<String>>,
    pub(crate) host: Option<Spanned<String>>,
}

/// `[upstream.NAME.passive]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPassive {
    pub(crate) consecutive_failures: Option<Spanned<i64>>,
    pub(crate) consecutive_timeouts: Option<Spanned<i64>>,
    pub(crate) ejection: Option<Spanned<String>>,
    pub(crate) max_ejection: Option<Spanned<String>>,
    pub(crate) max_ejected_percent: Option<Spanned<i64>>,
}

/// `[upstream.NAME.retry]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRetry {
    pub(crate) attempts: Option<Spanned<i64>>,
    pub(crate) deadline: Option<Spanned<String>>,
    /// A TOML float; an integer (`0`, `1`) is read as a float too.
    pub(crate) budget: Option<Spanned<f64>>,
    pub(crate) min_retries_per_second: Option<Spanned<i64>>,
}

/// A size: a bare integer (bytes) or a string with a unit (`"64KiB"`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub(crate) enum RawSize {
    Bytes(i64),
    Text(String),
}

// === impl RawServerEntry ===

impl<'de> Deserialize<'de> for RawServerEntry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntryVisitor;

        impl<'de> Visitor<'de> for EntryVisitor {
            type Value = RawServerEntry;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a \"host:port\" string or a table with `address`")
            }

            fn visit_str<E: de::Error>(self, s: &str) -> Result<RawServerEntry, E> {
                Ok(RawServerEntry::Address(s.to_owned()))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawServerEntry, A::Error> {
                // Hand the map straight on, so each value is still read by toml's deserializer
                // and `Spanned` fields keep their positions.
                RawServerTable::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(RawServerEntry::Table)
            }
        }

        deserializer.deserialize_any(EntryVisitor)
    }
}
