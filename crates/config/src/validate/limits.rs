//! `[limits]` and `[route.limit]`: rate and concurrency limits, and the store their counters
//! live in (this process's memory, or Redis/Valkey shared by several instances).
//!
//! Only syntax here: whether the Redis server answers is found out at run time (a store that
//! cannot be reached makes requests fail open or closed, see `limits.fail`).

use std::time::Duration;

use toml::Spanned;

use super::fields::{choice, int_in, parse_at, timeout};
use crate::diag::Sink;
use crate::model::{
    LimitFail, LimitKey, LimitStore, LimitsConfig, RateLimit, RedisAddress, RouteLimit,
};
use crate::raw::{RawLimits, RawRouteLimit};
use crate::values::Bad;

const DEFAULT_STORE_TIMEOUT: Duration = Duration::from_millis(50);
const DEFAULT_MAX_KEYS: usize = 100_000;
const DEFAULT_PERIOD: Duration = Duration::from_secs(1);
const DEFAULT_REDIS_PORT: u16 = 6379;

pub(super) fn limits(raw: RawLimits, sink: &mut Sink<'_>) -> LimitsConfig {
    let store = raw
        .store
        .as_ref()
        .and_then(|s| parse_at(sink, s, "limits.store", store))
        .unwrap_or(LimitStore::Memory);
    let max_keys = int_in(
        sink,
        raw.max_keys.as_ref(),
        "limits.max_keys",
        u32::try_from(DEFAULT_MAX_KEYS).unwrap_or(u32::MAX),
        100,
        u32::MAX,
    );
    LimitsConfig {
        store,
        timeout: timeout(sink, raw.timeout, "limits.timeout", DEFAULT_STORE_TIMEOUT),
        fail: choice(
            sink,
            raw.fail,
            "limits.fail",
            LimitFail::Open,
            &[("open", LimitFail::Open), ("closed", LimitFail::Closed)],
        ),
        max_keys: usize::try_from(max_keys).unwrap_or(DEFAULT_MAX_KEYS),
    }
}

pub(super) fn route_limit(
    raw: &Spanned<RawRouteLimit>,
    key: &str,
    sink: &mut Sink<'_>,
) -> Option<RouteLimit> {
    let table = raw.get_ref();
    let requests = table
        .rate
        .as_ref()
        .map(|r| positive(r, &format!("{key}.rate"), 100, sink));
    let burst = table
        .burst
        .as_ref()
        .map(|b| positive(b, &format!("{key}.burst"), 20, sink));
    let period = timeout(
        sink,
        table.period.clone(),
        &format!("{key}.period"),
        DEFAULT_PERIOD,
    );
    let max_concurrent = table
        .max_concurrent
        .as_ref()
        .map(|m| positive(m, &format!("{key}.max_concurrent"), 10, sink));
    let limit_key = table
        .key
        .as_ref()
        .and_then(|k| parse_at(sink, k, &format!("{key}.key"), limit_key))
        .unwrap_or(LimitKey::Client);
    if requests.is_none() {
        for (name, given) in [
            ("burst", table.burst.as_ref().map(Spanned::span)),
            ("period", table.period.as_ref().map(Spanned::span)),
        ] {
            if let Some(span) = given {
                sink.error(
                    Some(span),
                    format!("{key}.{name}"),
                    format!("{name} is set but rate is not, so there is no rate for it to shape"),
                    "add rate = N (requests per period), or remove it",
                );
            }
        }
    }
    if requests.is_none() && max_concurrent.is_none() {
        sink.error(
            Some(raw.span()),
            key,
            "the limit table sets neither rate nor max_concurrent, so it limits nothing",
            "add rate = N (requests per period, e.g. rate = 100 and period = \"1m\"), or max_concurrent = N",
        );
        return None;
    }
    if let (LimitKey::Header(_) | LimitKey::Cookie(_), None) = (&limit_key, requests)
        && let Some(k) = &table.key
    {
        sink.warning(
            Some(k.span()),
            format!("{key}.key"),
            "key applies to rate only; max_concurrent always counts per client address",
            "remove key, or add rate = N",
        );
    }
    let rate = requests.flatten().map(|requests| RateLimit {
        requests,
        period,
        burst: burst.flatten().unwrap_or(requests),
    });
    Some(RouteLimit {
        rate,
        key: limit_key,
        max_concurrent: max_concurrent.flatten(),
    })
}

/// A count of at least 1; `None` (reported) when zero, negative or too large.
fn positive(raw: &Spanned<i64>, key: &str, example: u32, sink: &mut Sink<'_>) -> Option<u32> {
    let n = *raw.get_ref();
    match u32::try_from(n) {
        Ok(v) if v > 0 && v <= 1_000_000_000 => Some(v),
        _ => {
            let message = if n == 0 {
                "0 would refuse every request".to_owned()
            } else if n < 0 {
                format!("{n} is negative")
            } else {
                format!("{n} is too large (at most 1000000000)")
            };
            sink.error(
                Some(raw.span()),
                key,
                message,
                format!("use a positive number, e.g. {example}; remove [route.limit] to not limit the route"),
            );
            None
        }
    }
}

/// `route.limit.key`: `client`, `header:NAME` or `cookie:NAME`.
pub(crate) fn limit_key(text: &str) -> Result<LimitKey, Bad> {
    let fix = "use \"client\", \"header:NAME\" (e.g. \"header:X-Api-Key\") or \"cookie:NAME\" (e.g. \"cookie:session\")";
    let bad = |message: String| Bad {
        message,
        fix: fix.to_owned(),
    };
    if text == "client" {
        return Ok(LimitKey::Client);
    }
    let Some((source, name)) = text.split_once(':') else {
        return Err(bad(format!("{text:?} is not a key source")));
    };
    let token = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    match source {
        "header" if token => Ok(LimitKey::Header(name.to_ascii_lowercase())),
        "cookie" if token => Ok(LimitKey::Cookie(name.to_owned())),
        "header" | "cookie" => Err(bad(format!(
            "{name:?} is not a valid {source} name (letters, digits and !#$%&'*+-.^_`|~)"
        ))),
        _ => Err(bad(format!("{source:?} is not a key source"))),
    }
}

/// `limits.store`: `memory` or `redis://[[user]:password@]host[:port][/db]`.
pub(crate) fn store(text: &str) -> Result<LimitStore, Bad> {
    let fix = "use \"memory\", or \"redis://host:port/db\" (with a password: \"redis://:PASSWORD@host:port/db\")";
    let bad = |message: String| Bad {
        message,
        fix: fix.to_owned(),
    };
    if text == "memory" {
        return Ok(LimitStore::Memory);
    }
    let Some(rest) = text.strip_prefix("redis://") else {
        if text.starts_with("rediss://") {
            return Err(Bad {
                message: "rediss:// (Redis over TLS) is not supported".to_owned(),
                fix: "use redis:// over a trusted network, or a local TLS tunnel".to_owned(),
            });
        }
        return Err(bad(format!(
            "{text:?} is neither \"memory\" nor a redis:// URL"
        )));
    };
    let (authority, path) = match rest.split_once('/') {
        Some((authority, path)) => (authority, path),
        None => (rest, ""),
    };
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((userinfo, hostport)) => (Some(userinfo), hostport),
        None => (None, authority),
    };
    let (username, password) = match userinfo {
        None => (None, None),
        Some(info) => {
            let (user, password) = info.split_once(':').unwrap_or((info, ""));
            let user =
                percent_decode(user).ok_or_else(|| bad("bad %-escape in the user".into()))?;
            let password = percent_decode(password)
                .ok_or_else(|| bad("bad %-escape in the password".into()))?;
            (
                (!user.is_empty()).then_some(user),
                (!password.is_empty()).then_some(password),
            )
        }
    };
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let Some((host, after)) = v6.split_once(']') else {
            return Err(bad("an IPv6 address in [ ] is not closed".into()));
        };
        (host, after.strip_prefix(':'))
    } else {
        match hostport.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (hostport, None),
        }
    };
    if host.is_empty()
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_:".contains(&b))
    {
        return Err(bad(format!("{host:?} is not a host name or IP address")));
    }
    let port = match port {
        None => DEFAULT_REDIS_PORT,
        Some(p) => match p.parse::<u16>() {
            Ok(p) if p > 0 => p,
            _ => return Err(bad(format!("{p:?} is not a port number (1-65535)"))),
        },
    };
    let db = match path {
        "" => 0,
        db => db
            .parse::<u32>()
            .map_err(|_| bad(format!("{db:?} is not a database number")))?,
    };
    Ok(LimitStore::Redis(RedisAddress {
        host: host.to_owned(),
        port,
        db,
        username,
        password,
    }))
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_urls() {
        assert_eq!(store("memory").unwrap(), LimitStore::Memory);
        let LimitStore::Redis(a) = store("redis://10.0.0.5:6380/2").unwrap() else {
            panic!()
        };
        assert_eq!((a.host.as_str(), a.port, a.db), ("10.0.0.5", 6380, 2));
        assert_eq!(a.password, None);
        let LimitStore::Redis(a) = store("redis://:s%40cret@cache.internal").unwrap() else {
            panic!()
        };
        assert_eq!((a.host.as_str(), a.port, a.db), ("cache.internal", 6379, 0));
        assert_eq!(a.password.as_deref(), Some("s@cret"));
        assert_eq!(a.username, None);
        assert!(!format!("{a:?}").contains("s@cret"));
        assert!(!a.to_string().contains("s@cret"));
        let LimitStore::Redis(a) = store("redis://app:pw@[::1]:7000/1").unwrap() else {
            panic!()
        };
        assert_eq!(a.host, "::1");
        assert_eq!(a.username.as_deref(), Some("app"));
        assert_eq!(a.to_string(), "redis://[::1]:7000/1");
        for bad in [
            "redis://",
            "redis://host:0",
            "redis://host:99999",
            "redis://host:6379/x",
            "http://host",
            "rediss://host",
            "redis://ho st",
            "redis://[::1",
            "redis://:%zz@host",
        ] {
            assert!(store(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn key_sources() {
        assert_eq!(limit_key("client").unwrap(), LimitKey::Client);
        assert_eq!(
            limit_key("header:X-Api-Key").unwrap(),
            LimitKey::Header("x-api-key".into())
        );
        assert_eq!(
            limit_key("cookie:session").unwrap(),
            LimitKey::Cookie("session".into())
        );
        for bad in ["ip", "header:", "cookie:a b", "query:k", ""] {
            assert!(limit_key(bad).is_err(), "{bad} accepted");
        }
    }
}
