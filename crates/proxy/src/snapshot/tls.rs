//! TLS towards clients: the rustls server configuration of one `[[server.tls]]` entry, with
//! the certificate it presents chosen by the name the client asks for (SNI, see `sni`).
//!
//! The certificates arrive loaded and checked (the config crate reads the PEM files and refuses a
//! key that is not its certificate's); this module only turns them into rustls objects. It does
//! not accept connections (see `crate::listener`) and does not decide what an address serves
//! (see [`Listeners`](super::listeners::Listeners)).

use std::sync::Arc;

#[cfg(test)]
use gatehouse_config::TlsCertificate;
use gatehouse_config::{Http2Config, TlsListener, TlsVersion};
use rustls::ServerConfig;

use super::sni::SniResolver;
use crate::acme::{ALPN_ACME_TLS, AcmeState};

/// ALPN protocol ids (RFC 7301; "h2" from RFC 9113 §3.2).
const ALPN_H2: &[u8] = b"h2";
const ALPN_HTTP11: &[u8] = b"http/1.1";

/// Why a TLS listener's configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error(
        "certificate {cert} with key {key}: {source} (ring signs with RSA of 2048 bits or more, ECDSA P-256/P-384 and Ed25519 keys)"
    )]
    Certificate {
        cert: std::path::PathBuf,
        key: std::path::PathBuf,
        source: rustls::Error,
    },
    #[error("TLS setup: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The server configuration of one `[[server.tls]]`: its certificates chosen by SNI, the TLS
/// versions from `min_version`, ALPN `h2` (when HTTP/2 is on) and `http/1.1`, and TLS 1.3
/// session tickets plus the session cache for resumption.
///
/// Each call makes a new ticket key, so tickets issued before a reload are not accepted after it
/// (those clients do one full handshake): a resumed session never outlives the certificate
/// that authenticated it.
///
/// With `acme = true` the certificates obtained through ACME (read from `acme` on every
/// handshake) serve the names no file certificate covers, and ALPN `acme-tls/1` is offered for
/// TLS-ALPN-01 (RFC 8737).
pub fn server_config(
    listener: &TlsListener,
    http2: &Http2Config,
    acme: &Arc<AcmeState>,
) -> Result<Arc<ServerConfig>, TlsSetupError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut resolver = SniResolver::new(&listener.certificates, &provider)?;
    if listener.acme {
        resolver.acme = Some(Arc::clone(acme));
    }
    let versions: &[&'static rustls::SupportedProtocolVersion] = match listener.min_version {
        TlsVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::Tls13 => &[&rustls::version::TLS13],
    };
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = alpn(http2.enabled);
    if listener.acme {
        config.alpn_protocols.push(ALPN_ACME_TLS.to_vec());
    }
    // The session cache (TLS 1.2 session ids) is rustls's default in-memory one.
    config.ticketer = rustls::crypto::ring::Ticketer::new()?;
    Ok(Arc::new(config))
}

/// The ALPN ids offered, in the server's order of preference.
fn alpn(http2: bool) -> Vec<Vec<u8>> {
    if http2 {
        vec![ALPN_H2.to_vec(), ALPN_HTTP11.to_vec()]
    } else {
        vec![ALPN_HTTP11.to_vec()]
    }
}

#[cfg(test)]
#[path = "tls/acme_tests.rs"]
mod acme_tests;

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use gatehouse_testkit::tls::TestCa;
    use rustls::pki_types::{CertificateDer, ServerName};

    /// A CA for one test (the test kit's) and the leaf certificates it signs, as the config
    /// model holds them once loaded.
    pub(in crate::snapshot) struct Ca(TestCa);

    impl Ca {
        pub(in crate::snapshot) fn new() -> Self {
            Self(TestCa::new("listener test CA"))
        }

        pub(in crate::snapshot) fn leaf(&self, names: &[&str]) -> TlsCertificate {
            Self::from_test_cert(&self.0.leaf(names), names)
        }

        /// `cert` as the config model holds a loaded certificate file for `names`.
        pub(in crate::snapshot) fn from_test_cert(
            cert: &gatehouse_testkit::tls::TestCert,
            names: &[&str],
        ) -> TlsCertificate {
            TlsCertificate {
                cert_path: format!("{}.pem", names[0]).into(),
                key_path: format!("{}.key", names[0]).into(),
                chain: cert.chain(),
                key: Arc::new(cert.key()),
                names: names.iter().map(|n| n.to_ascii_lowercase()).collect(),
                subject: format!("CN={}", names[0]),
                not_after: std::time::SystemTime::now(),
            }
        }

        fn client(
            &self,
            alpn: &[&[u8]],
            versions: &[&'static rustls::SupportedProtocolVersion],
        ) -> Arc<rustls::ClientConfig> {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(self.0.cert_der()).unwrap();
            let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
            config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
            Arc::new(config)
        }
    }

    fn resolver(certificates: &[TlsCertificate]) -> SniResolver {
        SniResolver::new(certificates, &rustls::crypto::ring::default_provider()).unwrap()
    }

    fn no_acme() -> Arc<AcmeState> {
        Arc::new(AcmeState::default())
    }

    fn listener(certificates: Vec<TlsCertificate>, min_version: TlsVersion) -> TlsListener {
        TlsListener {
            listen: vec!["127.0.0.1:0".parse().unwrap()],
            certificates,
            acme: false,
            min_version,
            proxy_protocol: false,
        }
    }

    fn http2(enabled: bool) -> Http2Config {
        Http2Config {
            enabled,
            max_concurrent_streams: 128,
            stream_window: 1 << 20,
            connection_window: 2 << 20,
        }
    }

    /// What a client saw of a handshake over an in-memory pipe.
    #[derive(Debug)]
    struct Seen {
        leaf: CertificateDer<'static>,
        alpn: Option<Vec<u8>>,
        version: Option<rustls::ProtocolVersion>,
    }

    async fn handshake(
        server: Arc<ServerConfig>,
        client: Arc<rustls::ClientConfig>,
        name: &str,
    ) -> Result<Seen, std::io::Error> {
        let (client_io, server_io) = tokio::io::duplex(64 * 1024);
        let accept = tokio::spawn(tokio_rustls::TlsAcceptor::from(server).accept(server_io));
        let name = ServerName::try_from(name.to_owned()).unwrap();
        let tls = tokio_rustls::TlsConnector::from(client)
            .connect(name, client_io)
            .await;
        let _ = accept.await;
        let tls = tls?;
        let (_, conn) = tls.get_ref();
        Ok(Seen {
            leaf: conn.peer_certificates().unwrap()[0].clone(),
            alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
            version: conn.protocol_version(),
        })
    }

    #[test]
    fn exact_names_then_one_label_wildcards_then_the_first() {
        let ca = Ca::new();
        let r = resolver(&[
            ca.leaf(&["a.test"]),
            ca.leaf(&["*.b.test"]),
            ca.leaf(&["x.b.test", "C.test"]),
        ]);
        assert_eq!(r.pick(Some("a.test")), 0);
        assert_eq!(r.pick(Some("y.b.test")), 1, "the wildcard covers one label");
        assert_eq!(
            r.pick(Some("x.b.test")),
            2,
            "an exact name beats a wildcard"
        );
        assert_eq!(
            r.pick(Some("c.TEST.")),
            2,
            "names compare without case or root dot"
        );
        assert_eq!(r.pick(Some("b.test")), 0, "*.b.test does not cover b.test");
        assert_eq!(r.pick(Some("z.y.b.test")), 0, "nor two labels");
        assert_eq!(r.pick(Some("unknown.test")), 0);
        assert_eq!(r.pick(None), 0);
    }

    #[test]
    fn the_first_certificate_naming_a_name_serves_it() {
        let ca = Ca::new();
        let r = resolver(&[
            ca.leaf(&["a.test"]),
            ca.leaf(&["a.test", "*.a.test"]),
            ca.leaf(&["*.a.test"]),
        ]);
        assert_eq!(r.pick(Some("a.test")), 0);
        assert_eq!(r.pick(Some("w.a.test")), 1);
    }

    #[tokio::test]
    async fn a_handshake_presents_the_certificate_for_the_sni_name() {
        let ca = Ca::new();
        let (a, b) = (ca.leaf(&["a.test"]), ca.leaf(&["*.b.test"]));
        let server = server_config(
            &listener(vec![a.clone(), b.clone()], TlsVersion::Tls12),
            &http2(true),
            &no_acme(),
        )
        .unwrap();
        let client = ca.client(&[b"h2", b"http/1.1"], rustls::DEFAULT_VERSIONS);
        let seen = handshake(Arc::clone(&server), Arc::clone(&client), "x.b.test")
            .await
            .unwrap();
        assert_eq!(seen.leaf, b.chain[0]);
        assert_eq!(seen.alpn.as_deref(), Some(&b"h2"[..]));
        assert_eq!(seen.version, Some(rustls::ProtocolVersion::TLSv1_3));
        let seen = handshake(server, client, "a.test").await.unwrap();
        assert_eq!(seen.leaf, a.chain[0]);
    }

    #[tokio::test]
    async fn alpn_offers_http11_alone_without_http2() {
        let ca = Ca::new();
        let server = server_config(
            &listener(vec![ca.leaf(&["a.test"])], TlsVersion::Tls12),
            &http2(false),
            &no_acme(),
        )
        .unwrap();
        assert_eq!(server.alpn_protocols, [b"http/1.1".to_vec()]);
        let client = ca.client(&[b"h2", b"http/1.1"], rustls::DEFAULT_VERSIONS);
        let seen = handshake(server, client, "a.test").await.unwrap();
        assert_eq!(seen.alpn.as_deref(), Some(&b"http/1.1"[..]));
    }

    #[tokio::test]
    async fn min_version_decides_whether_tls12_is_spoken() {
        let ca = Ca::new();
        let tls12_only = ca.client(&[], &[&rustls::version::TLS12]);
        let lenient = server_config(
            &listener(vec![ca.leaf(&["a.test"])], TlsVersion::Tls12),
            &http2(true),
            &no_acme(),
        )
        .unwrap();
        assert!(lenient.ticketer.enabled(), "TLS 1.3 tickets are issued");
        let seen = handshake(lenient, Arc::clone(&tls12_only), "a.test")
            .await
            .unwrap();
        assert_eq!(seen.version, Some(rustls::ProtocolVersion::TLSv1_2));

        let strict = server_config(
            &listener(vec![ca.leaf(&["a.test"])], TlsVersion::Tls13),
            &http2(true),
            &no_acme(),
        )
        .unwrap();
        handshake(strict, tls12_only, "a.test")
            .await
            .expect_err("a TLS 1.2 client is refused with min_version 1.3");
    }

    #[test]
    fn a_key_that_is_not_the_certificates_is_an_error_not_a_panic() {
        let ca = Ca::new();
        let mut broken = ca.leaf(&["a.test"]);
        broken.key = ca.leaf(&["other.test"]).key;
        let err = server_config(
            &listener(vec![broken], TlsVersion::Tls12),
            &http2(true),
            &no_acme(),
        )
        .unwrap_err();
        assert!(matches!(err, TlsSetupError::Certificate { .. }), "{err}");
        assert!(err.to_string().contains("a.test.pem"), "{err}");
    }
}
