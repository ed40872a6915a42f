//! What each listening address serves ([`Listeners`], part of every snapshot): plain HTTP, TLS
//! (its rustls configuration built here, at config load, so that a reload with a broken
//! certificate is refused whole), or the redirect to HTTPS. The accept loops
//! ([`crate::listener`]) look here on every accept.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use gatehouse_config::ServerConfig;

use crate::acme::AcmeState;

use super::tls::{self, TlsSetupError};

/// What one listening address serves.
#[derive(Debug, Clone)]
pub enum ListenerKind {
    /// `server.listen`: HTTP/1.1, and HTTP/2 with prior knowledge (h2c) when enabled.
    Plain,
    /// `[[server.tls]]`: HTTPS, HTTP/2 by ALPN when enabled.
    Tls(Arc<rustls::ServerConfig>),
    /// `redirect_https`: every request answered with a 308 to `https://`.
    RedirectHttps,
}

impl ListenerKind {
    /// The `protocol` field of the "listening" log line.
    pub fn protocol(&self) -> &'static str {
        match self {
            Self::Plain => "http",
            Self::Tls(_) => "https",
            Self::RedirectHttps => "redirect-https",
        }
    }
}

/// A listening socket's identity across reloads: its configured address, and which occurrence
/// of that address it is. Addresses with port 0 may be configured more than once (each gets a
/// port of its own), so the address alone does not name a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListenerKey {
    pub addr: SocketAddr,
    pub nth: usize,
}

impl fmt::Display for ListenerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.nth {
            0 => write!(f, "{}", self.addr),
            n => write!(f, "{} (#{})", self.addr, n + 1),
        }
    }
}

/// Why the listeners of a config cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum ListenerError {
    #[error("[[server.tls]] listening on {addr}: {source}")]
    Tls {
        addr: String,
        /// Boxed: rustls's errors are large, and this one is rare.
        source: Box<TlsSetupError>,
    },
}

/// What every configured address serves, in config order: `listen`, each `[[server.tls]]`'s
/// `listen`, then `redirect_https`.
#[derive(Debug, Default)]
pub struct Listeners {
    entries: Vec<(ListenerKey, ListenerKind)>,
    /// The listeners that expect a PROXY protocol header first (`proxy_protocol`).
    proxy_protocol: Vec<ListenerKey>,
    /// The first TLS listener, whose port redirects name.
    first_tls: Option<ListenerKey>,
    /// Its port once bound (so that a configured port 0 becomes the real one).
    https_port: Option<u16>,
}

impl Listeners {
    /// Builds each TLS listener's rustls configuration (shared by the addresses of one
    /// `[[server.tls]]`). Fails without side effects, so a reload can be refused whole.
    pub fn build(server: &ServerConfig, acme: &Arc<AcmeState>) -> Result<Self, ListenerError> {
        let mut listeners = Self::default();
        for addr in &server.listen {
            let key = listeners.push(*addr, ListenerKind::Plain);
            listeners.expect_proxy_header(key, server.proxy_protocol);
        }
        for entry in &server.tls {
            let config = tls::server_config(entry, &server.http2, acme).map_err(|source| {
                ListenerError::Tls {
                    source: Box::new(source),
                    addr: entry
                        .listen
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", "),
                }
            })?;
            for addr in &entry.listen {
                let key = listeners.push(*addr, ListenerKind::Tls(Arc::clone(&config)));
                listeners.first_tls.get_or_insert(key);
                listeners.expect_proxy_header(key, entry.proxy_protocol);
            }
        }
        for addr in &server.redirect_https {
            let key = listeners.push(*addr, ListenerKind::RedirectHttps);
            listeners.expect_proxy_header(key, server.proxy_protocol);
        }
        listeners.https_port = listeners.first_tls.map(|key| key.addr.port());
        Ok(listeners)
    }

    fn push(&mut self, addr: SocketAddr, kind: ListenerKind) -> ListenerKey {
        let nth = self.entries.iter().filter(|(k, _)| k.addr == addr).count();
        let key = ListenerKey { addr, nth };
        self.entries.push((key, kind));
        key
    }

    fn expect_proxy_header(&mut self, key: ListenerKey, on: bool) {
        if on {
            self.proxy_protocol.push(key);
        }
    }

    /// Whether connections to the socket `key` start with a PROXY protocol header.
    pub fn expects_proxy_header(&self, key: ListenerKey) -> bool {
        self.proxy_protocol.contains(&key)
    }

    /// Learns the addresses the sockets were bound to (see [`Listeners::https_port`]).
    pub fn bound(&mut self, actual: impl Fn(ListenerKey) -> Option<SocketAddr>) {
        if let Some(bound) = self.first_tls.and_then(actual) {
            self.https_port = Some(bound.port());
        }
    }

    /// What the socket `key` serves; `None` when the config has no such listener (a reload
    /// removed it and its accept loop is stopping).
    pub fn kind(&self, key: ListenerKey) -> Option<&ListenerKind> {
        // A handful of entries: a scan beats hashing.
        self.entries
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, kind)| kind)
    }

    /// Every listener, in config order.
    pub fn iter(&self) -> impl Iterator<Item = (ListenerKey, &ListenerKind)> {
        self.entries.iter().map(|(key, kind)| (*key, kind))
    }

    /// The port of the first TLS listener, which redirects send clients to; `None` without
    /// a TLS listener (443 is then implied).
    pub fn https_port(&self) -> Option<u16> {
        self.https_port
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_config::{TlsListener, TlsVersion};

    fn server(listen: &str) -> ServerConfig {
        let text = format!(
            "[server]\nlisten = {listen}\n[[route]]\nupstream = \"app\"\n[upstream.app]\nservers = [\"127.0.0.1:1\"]\n"
        );
        gatehouse_config::parse("test.toml", &text)
            .unwrap_or_else(|e| panic!("config: {e:?}"))
            .config
            .server
    }

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    fn tls_on(listen: &[&str]) -> TlsListener {
        TlsListener {
            listen: listen.iter().map(|a| addr(a)).collect(),
            certificates: vec![tls::tests::Ca::new().leaf(&["a.test"])],
            acme: false,
            min_version: TlsVersion::Tls12,
            proxy_protocol: false,
        }
    }

    #[test]
    fn listeners_are_keyed_by_address_and_occurrence() {
        let mut server = server(r#"["127.0.0.1:0", "127.0.0.1:8080"]"#);
        server.tls = vec![tls_on(&["127.0.0.1:0"])];
        server.redirect_https = vec![addr("127.0.0.1:0")];
        let listeners = Listeners::build(&server, &Arc::default()).unwrap();
        let kinds: Vec<(String, &str)> = listeners
            .iter()
            .map(|(key, kind)| (key.to_string(), kind.protocol()))
            .collect();
        assert_eq!(
            kinds,
            [
                ("127.0.0.1:0".to_owned(), "http"),
                ("127.0.0.1:8080".to_owned(), "http"),
                ("127.0.0.1:0 (#2)".to_owned(), "https"),
                ("127.0.0.1:0 (#3)".to_owned(), "redirect-https"),
            ]
        );
        let third_zero = ListenerKey {
            addr: addr("127.0.0.1:0"),
            nth: 2,
        };
        assert!(matches!(
            listeners.kind(third_zero),
            Some(ListenerKind::RedirectHttps)
        ));
        let absent = ListenerKey {
            addr: addr("127.0.0.1:0"),
            nth: 3,
        };
        assert!(listeners.kind(absent).is_none());
    }

    #[test]
    fn redirects_name_the_bound_port_of_the_first_tls_listener() {
        let mut server = server(r#"["127.0.0.1:0"]"#);
        server.tls = vec![
            tls_on(&["127.0.0.1:8443", "127.0.0.1:9443"]),
            tls_on(&["127.0.0.1:0"]),
        ];
        let listeners = Listeners::build(&server, &Arc::default()).unwrap();
        assert_eq!(listeners.https_port(), Some(8443), "as configured");

        server.tls = vec![tls_on(&["127.0.0.1:0"])];
        let mut listeners = Listeners::build(&server, &Arc::default()).unwrap();
        assert_eq!(listeners.https_port(), Some(0), "not bound yet");
        listeners.bound(|key| (key.nth == 1).then(|| addr("127.0.0.1:40443")));
        assert_eq!(
            listeners.https_port(),
            Some(40443),
            "port 0 becomes the bound one"
        );

        server.tls = Vec::new();
        assert_eq!(
            Listeners::build(&server, &Arc::default())
                .unwrap()
                .https_port(),
            None
        );
    }

    #[test]
    fn a_tls_listener_that_cannot_be_built_names_its_addresses() {
        let mut server = server(r#"["127.0.0.1:0"]"#);
        let mut broken = tls_on(&["127.0.0.1:8443"]);
        broken.certificates[0].key = tls_on(&["127.0.0.1:1"]).certificates[0].key.clone();
        server.tls = vec![broken];
        let err = Listeners::build(&server, &Arc::default()).unwrap_err();
        assert!(err.to_string().contains("127.0.0.1:8443"), "{err}");
    }
}
