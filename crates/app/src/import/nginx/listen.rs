//! Reading nginx's `listen` and `server_name` values: listen addresses as gatehouse takes
//! them, the default server per address, and the route hosts of a server name.

use std::collections::{BTreeMap, HashSet};

use super::Listen;
use crate::foreign::nginx::Directive;

/// The server blocks (by origin) nginx answers with when no `server_name` matches: per
/// address, the one whose `listen` says `default_server`, else the first listening there.
pub(super) fn default_servers<'d>(servers: impl Iterator<Item = &'d Directive>) -> HashSet<String> {
    let mut by_addr: BTreeMap<String, (String, bool)> = BTreeMap::new();
    for server in servers {
        let origin = server.origin.to_string();
        let mut listens: Vec<Listen> = server
            .children()
            .iter()
            .filter(|c| c.name == "listen")
            .filter_map(listen)
            .collect();
        if listens.is_empty() {
            listens.push(Listen {
                addr: "0.0.0.0:80".to_owned(),
                ssl: false,
                default: false,
            });
        }
        for l in listens {
            let entry = by_addr
                .entry(l.addr)
                .or_insert_with(|| (origin.clone(), l.default));
            if l.default && !entry.1 {
                *entry = (origin.clone(), true);
            }
        }
    }
    by_addr.into_values().map(|(origin, _)| origin).collect()
}

/// A `listen` directive as gatehouse takes it.
pub(super) fn listen(d: &Directive) -> Option<Listen> {
    let spec = d.arg(0);
    if spec.starts_with("unix:") {
        return None;
    }
    let addr = if spec.chars().all(|c| c.is_ascii_digit()) {
        format!("0.0.0.0:{spec}")
    } else if let Some(port) = spec.strip_prefix("*:") {
        format!("0.0.0.0:{port}")
    } else if let Some(port) = spec.strip_prefix("localhost:") {
        format!("127.0.0.1:{port}")
    } else if spec == "localhost" {
        "127.0.0.1:80".to_owned()
    } else if (spec.starts_with('[') && !spec.contains("]:"))
        || (!spec.starts_with('[') && !spec.contains(':'))
    {
        format!("{spec}:80")
    } else {
        spec.to_owned()
    };
    addr.parse::<std::net::SocketAddr>().ok()?;
    Some(Listen {
        addr,
        ssl: d.args[1..].iter().any(|a| a == "ssl"),
        default: d.args[1..]
            .iter()
            .any(|a| a == "default_server" || a == "default"),
    })
}

/// The route hosts of one `server_name` value (`None` = any host).
pub(super) fn server_name(name: &str) -> Result<Vec<Option<String>>, &'static str> {
    let lower = name.to_ascii_lowercase();
    if lower.is_empty() || lower == "_" {
        return Ok(vec![None]);
    }
    if lower.starts_with('~') {
        return Err("regular-expression server names have no gatehouse equivalent");
    }
    if let Some(rest) = lower.strip_prefix('.') {
        if !is_host(rest) {
            return Err("not a host name gatehouse can match");
        }
        return Ok(vec![Some(rest.to_owned()), Some(format!("*.{rest}"))]);
    }
    let bare = lower.strip_prefix("*.").unwrap_or(&lower);
    if !is_host(bare) {
        return Err("gatehouse hosts are exact names or start with \"*.\"");
    }
    Ok(vec![Some(lower)])
}

/// A DNS name (or IPv4 address) gatehouse's `route.host` takes.
fn is_host(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}
