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

use serde::Deserialize;
use toml::Spanned;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    #[serde(default)]
    pub(crate) server: RawServer,
    #[serde(default)]
    pub(crate) dns: RawDns,
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
    pub(crate) proxy_status: Option<Spanned<String>>,
    pub(crate) drain_timeout: Option<Spanned<String>>,
    pub(crate) workers: Option<Spanned<i64>>,
    pub(crate) client_header_timeout: Option<Spanned<String>>,
    pub(crate) max_request_header_size: Option<Spanned<RawSize>>,
    pub(crate) max_uri_length: Option<Spanned<RawSize>>,
    pub(crate) log_format: Option<Spanned<String>>,
    pub(crate) log_level: Option<Spanned<String>>,
    pub(crate) access_log: Option<Spanned<bool>>,
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
}

/// One `[upstream.NAME]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawUpstream {
    /// Required; `Option` so a missing one is a diagnostic, not a serde error.
    pub(crate) servers: Option<Spanned<Vec<Spanned<String>>>>,
    pub(crate) connect_timeout: Option<Spanned<String>>,
    pub(crate) response_timeout: Option<Spanned<String>>,
    pub(crate) read_timeout: Option<Spanned<String>>,
    pub(crate) send_timeout: Option<Spanned<String>>,
    pub(crate) max_response_header_size: Option<Spanned<RawSize>>,
}

/// A size: a bare integer (bytes) or a string with a unit (`"64KiB"`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub(crate) enum RawSize {
    Bytes(i64),
    Text(String),
}
