//! Whose names `doctor`'s verdicts (and `advice`) use for the limits they talk about: gatehouse's own keys
//! (`upstream.app.response_timeout`), or, for `doctor --nginx` / `--haproxy`, the directive of
//! that proxy that sets the same limit, with the file and line it was set at, or the proxy's
//! default when it is not set (`proxy_read_timeout (not set: nginx's default 60s)`).
//!
//! The checks themselves are the same either way: a foreign config is imported into a gatehouse
//! config in memory with the foreign limits (`crate::import`), and only the words change.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// A limit of the foreign proxy: the directive that sets it and where, or its default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Setting {
    /// e.g. `proxy_read_timeout`, `timeout server`, `tune.bufsize`.
    pub(crate) directive: String,
    /// `file:line` where it was set; `None` = not set (the default applies).
    pub(crate) at: Option<String>,
    /// The value as the proxy's config writes it: `60s`, `4k`, `16384`.
    pub(crate) value: String,
}

impl fmt::Display for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.at {
            Some(at) => write!(f, "{} (set to {} at {at})", self.directive, self.value),
            None => write!(f, "{} (not set: default {})", self.directive, self.value),
        }
    }
}

/// A foreign limit's value as gatehouse applies it, and its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Limit<T> {
    pub(crate) value: T,
    pub(crate) setting: Setting,
}

/// The limits of one upstream (nginx `upstream`/`proxy_pass` target, HAProxy backend).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PoolLimits {
    pub(crate) connect_timeout: Limit<Duration>,
    /// Waiting for the response head (nginx: `proxy_read_timeout`; HAProxy: `timeout server`).
    pub(crate) response_timeout: Limit<Duration>,
    /// Between two reads of the body (the same directives).
    pub(crate) read_timeout: Limit<Duration>,
    pub(crate) send_timeout: Limit<Duration>,
    /// The largest response head the proxy takes.
    pub(crate) max_response_header_size: Limit<usize>,
    /// Where the servers are written, e.g. `upstream app (site.conf:3)`.
    pub(crate) servers: String,
    /// How a header size is written as a fix: `bytes` → the value to set.
    pub(crate) header_fix: HeaderFix,
}

/// How the fix for a response head of some size is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeaderFix {
    /// nginx: the buffer in `k` (`proxy_buffer_size 8k`).
    Kilobytes,
    /// HAProxy: `tune.bufsize` in bytes, which must hold the head plus `tune.maxrewrite`.
    BufsizePlus(usize),
}

/// The names verdicts use.
#[derive(Debug, Clone, Default)]
pub(crate) enum Naming {
    /// gatehouse's own keys.
    #[default]
    Gatehouse,
    /// Another proxy's directives, per upstream.
    Foreign {
        /// `nginx` or `HAProxy`.
        proxy: &'static str,
        pools: BTreeMap<String, PoolLimits>,
    },
}

/// The gatehouse keys a verdict can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Key {
    ConnectTimeout,
    ResponseTimeout,
    ReadTimeout,
    MaxResponseHeaderSize,
}

impl Key {
    fn gatehouse(self) -> &'static str {
        match self {
            Self::ConnectTimeout => "connect_timeout",
            Self::ResponseTimeout => "response_timeout",
            Self::ReadTimeout => "read_timeout",
            Self::MaxResponseHeaderSize => "max_response_header_size",
        }
    }
}

impl Naming {
    fn pool(&self, pool: &str) -> Option<&PoolLimits> {
        match self {
            Self::Gatehouse => None,
            Self::Foreign { pools, .. } => pools.get(pool),
        }
    }

    fn setting(limits: &PoolLimits, key: Key) -> &Setting {
        match key {
            Key::ConnectTimeout => &limits.connect_timeout.setting,
            Key::ResponseTimeout => &limits.response_timeout.setting,
            Key::ReadTimeout => &limits.read_timeout.setting,
            Key::MaxResponseHeaderSize => &limits.max_response_header_size.setting,
        }
    }

    /// The name of a limit in a fix: `upstream.app.response_timeout`, or the directive with
    /// where it was set (or its default).
    pub(crate) fn key(&self, pool: &str, key: Key) -> String {
        match self.pool(pool) {
            Some(limits) => Self::setting(limits, key).to_string(),
            None => format!("upstream.{pool}.{}", key.gatehouse()),
        }
    }

    /// The short name of a limit in a cause: `response_timeout`, `proxy_read_timeout`.
    pub(crate) fn short(&self, pool: &str, key: Key) -> String {
        match self.pool(pool) {
            Some(limits) => Self::setting(limits, key).directive.clone(),
            None => key.gatehouse().to_owned(),
        }
    }

    /// Where the servers of a pool are written.
    pub(crate) fn servers(&self, pool: &str) -> String {
        match self.pool(pool) {
            Some(limits) => limits.servers.clone(),
            None => format!("upstream.{pool}.servers"),
        }
    }

    /// The fix for a response head of `bytes`: raise the limit to at least this.
    pub(crate) fn header_fix(&self, pool: &str, bytes: u64) -> String {
        let key = self.key(pool, Key::MaxResponseHeaderSize);
        match self.pool(pool).map(|l| l.header_fix) {
            None => format!("raise {key} to at least {}KiB", bytes.div_ceil(1024) + 1),
            Some(HeaderFix::Kilobytes) => {
                format!("raise {key} to at least {}k", bytes.div_ceil(1024) + 1)
            }
            Some(HeaderFix::BufsizePlus(rewrite)) => format!(
                "raise {key} to at least {} (the response head plus tune.maxrewrite {rewrite})",
                (bytes as usize + rewrite).div_ceil(1024) * 1024 + 1024
            ),
        }
    }

    /// The pool as its config names it: `upstream app`, or where the foreign one is written.
    pub(crate) fn pool_name(&self, pool: &str) -> String {
        match self.pool(pool) {
            Some(limits) => limits.servers.clone(),
            None => format!("upstream {pool}"),
        }
    }

    /// The keys of a pool's health check.
    pub(crate) fn health_keys(&self, pool: &str) -> String {
        match self.pool(pool) {
            Some(limits) => format!(
                "the health check of {} (option httpchk, http-check expect)",
                limits.servers
            ),
            None => format!("upstream.{pool}.health.path / expect_status"),
        }
    }

    /// Whose config this is about: `gatehouse`, `nginx`, `HAProxy`.
    pub(crate) fn proxy(&self) -> &'static str {
        match self {
            Self::Gatehouse => "gatehouse",
            Self::Foreign { proxy, .. } => proxy,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit<T>(value: T, directive: &str, at: Option<&str>, text: &str) -> Limit<T> {
        Limit {
            value,
            setting: Setting {
                directive: directive.to_owned(),
                at: at.map(str::to_owned),
                value: text.to_owned(),
            },
        }
    }

    #[test]
    fn foreign_names_say_where_or_the_default() {
        let secs = Duration::from_secs;
        let limits = PoolLimits {
            connect_timeout: limit(secs(60), "proxy_connect_timeout", None, "60s"),
            response_timeout: limit(secs(1), "proxy_read_timeout", Some("a.conf:7"), "1s"),
            read_timeout: limit(secs(1), "proxy_read_timeout", Some("a.conf:7"), "1s"),
            send_timeout: limit(secs(60), "proxy_send_timeout", None, "60s"),
            max_response_header_size: limit(4096, "proxy_buffer_size", None, "4k"),
            servers: "upstream app (a.conf:2)".to_owned(),
            header_fix: HeaderFix::Kilobytes,
        };
        let naming = Naming::Foreign {
            proxy: "nginx",
            pools: BTreeMap::from([("app".to_owned(), limits)]),
        };
        assert_eq!(
            naming.key("app", Key::ResponseTimeout),
            "proxy_read_timeout (set to 1s at a.conf:7)"
        );
        assert_eq!(
            naming.key("app", Key::ConnectTimeout),
            "proxy_connect_timeout (not set: default 60s)"
        );
        assert_eq!(
            naming.short("app", Key::MaxResponseHeaderSize),
            "proxy_buffer_size"
        );
        assert_eq!(
            naming.header_fix("app", 6000),
            "raise proxy_buffer_size (not set: default 4k) to at least 7k"
        );
        assert_eq!(naming.servers("app"), "upstream app (a.conf:2)");
        // Pools it does not know keep gatehouse's names.
        assert_eq!(
            Naming::Gatehouse.key("api", Key::ReadTimeout),
            "upstream.api.read_timeout"
        );
        assert_eq!(Naming::Gatehouse.servers("api"), "upstream.api.servers");
    }
}
