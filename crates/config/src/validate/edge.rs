//! What gatehouse believes about who is in front of it: `trusted_proxies`, the PROXY protocol
//! on listeners, the `Forwarded` field and who gets the full Proxy-Status.

use crate::diag::Sink;
use crate::model::IpNet;
use toml::Spanned;

use crate::raw::{RawServer, RawTlsListener};

use super::upstream::ip_nets;

pub(super) struct Edge {
    pub(super) trusted_proxies: Vec<IpNet>,
    pub(super) proxy_status_full_for: Vec<IpNet>,
    pub(super) proxy_protocol: bool,
    pub(super) forwarded: bool,
}

pub(super) fn edge(
    raw: &RawServer,
    raw_tls: Option<&[Spanned<RawTlsListener>]>,
    sink: &mut Sink<'_>,
) -> Edge {
    let trusted_proxies = ip_nets(
        raw.trusted_proxies.as_deref(),
        "server.trusted_proxies",
        sink,
    );
    if let Some(items) = &raw.trusted_proxies {
        for (i, item) in items.iter().enumerate() {
            if trusted_proxies.get(i).is_some_and(|net| net.prefix == 0) {
                sink.warning(
                    Some(item.span()),
                    format!("server.trusted_proxies[{i}]"),
                    format!(
                        "{:?} trusts every address: any client can then choose the address gatehouse logs, limits and forwards for it",
                        item.get_ref()
                    ),
                    "list only the addresses of your load balancers or CDN",
                );
            }
        }
    }
    let proxy_status_full_for = ip_nets(
        raw.proxy_status_full_for.as_deref(),
        "server.proxy_status_full_for",
        sink,
    );
    let proxy_protocol = raw.proxy_protocol.as_ref().is_some_and(|on| *on.get_ref());
    // A PROXY header is accepted only from a trusted peer: without any, every connection to
    // such a listener would be refused.
    if trusted_proxies.is_empty() {
        let plain = raw.proxy_protocol.as_ref().filter(|on| *on.get_ref());
        let tls = raw_tls
            .into_iter()
            .flatten()
            .enumerate()
            .filter_map(|(i, t)| {
                t.get_ref()
                    .proxy_protocol
                    .as_ref()
                    .filter(|on| *on.get_ref())
                    .map(|on| (format!("server.tls[{i}].proxy_protocol"), on.span()))
            });
        let listeners = plain
            .map(|on| ("server.proxy_protocol".to_owned(), on.span()))
            .into_iter()
            .chain(tls);
        for (key, span) in listeners {
            sink.error(
                Some(span),
                key,
                "proxy_protocol is on but server.trusted_proxies is empty: gatehouse accepts a PROXY header only from a trusted peer, so every connection would be refused",
                "list the load balancers that send the header in server.trusted_proxies, e.g. trusted_proxies = [\"10.0.0.0/8\"]",
            );
        }
    }
    Edge {
        trusted_proxies,
        proxy_status_full_for,
        proxy_protocol,
        forwarded: raw.forwarded.as_ref().is_some_and(|on| *on.get_ref()),
    }
}
