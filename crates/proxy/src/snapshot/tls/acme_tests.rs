//! The SNI resolver of an `acme = true` listener: a file certificate naming the host exactly
//! first, then the certificate obtained through ACME, and the TLS-ALPN-01 validation
//! certificate only for a client offering ALPN `acme-tls/1`.

use std::sync::Arc;
use std::time::SystemTime;

use gatehouse_config::{Http2Config, TlsListener, TlsVersion};
use gatehouse_testkit::tls::{TestCa, TestCert, client_config};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::sign::CertifiedKey;

use super::server_config;
use crate::acme::{AcmeState, Obtained};

fn key(cert: &TestCert) -> Arc<CertifiedKey> {
    let provider = rustls::crypto::ring::default_provider();
    Arc::new(CertifiedKey::from_der(cert.chain(), cert.key(), &provider).unwrap())
}

/// The leaf a client offering `alpn` and asking for `name` is shown, and the ALPN chosen.
async fn shown(
    server: Arc<rustls::ServerConfig>,
    ca: &TestCa,
    name: &str,
    alpn: &[&[u8]],
) -> (CertificateDer<'static>, Option<Vec<u8>>) {
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    let accept = tokio::spawn(tokio_rustls::TlsAcceptor::from(server).accept(server_io));
    let tls = tokio_rustls::TlsConnector::from(client_config(&ca.cert_der(), alpn))
        .connect(ServerName::try_from(name.to_owned()).unwrap(), client_io)
        .await
        .unwrap();
    let _ = accept.await;
    let (_, conn) = tls.get_ref();
    (
        conn.peer_certificates().unwrap()[0].clone(),
        conn.alpn_protocol().map(<[u8]>::to_vec),
    )
}

#[tokio::test]
async fn files_for_exact_names_then_acme_and_the_validation_certificate_for_acme_tls() {
    let ca = TestCa::new("acme SNI test CA");
    let file = ca.leaf(&["a.test"]);
    let obtained = ca.leaf(&["a.test", "b.test"]);
    let validation = ca.leaf(&["b.test"]);
    let state = Arc::new(AcmeState::default());
    state.install(Obtained {
        key: key(&obtained),
        names: vec!["a.test".to_owned(), "b.test".to_owned()],
        not_before: SystemTime::now(),
        not_after: SystemTime::now(),
    });
    state.set_tls_alpn01("b.test", key(&validation));
    let listener = TlsListener {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        certificates: vec![super::tests::Ca::from_test_cert(&file, &["a.test"])],
        acme: true,
        min_version: TlsVersion::Tls12,
        proxy_protocol: false,
    };
    let http2 = Http2Config {
        enabled: true,
        max_concurrent_streams: 128,
        stream_window: 1 << 20,
        connection_window: 2 << 20,
    };
    let server = server_config(&listener, &http2, &state).unwrap();
    assert_eq!(
        server.alpn_protocols.last().map(Vec::as_slice),
        Some(&b"acme-tls/1"[..])
    );
    let h2: &[&[u8]] = &[b"h2", b"http/1.1"];
    let (leaf, alpn) = shown(Arc::clone(&server), &ca, "a.test", h2).await;
    assert_eq!(leaf, file.der, "the file certificate names a.test exactly");
    assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
    let (leaf, _) = shown(Arc::clone(&server), &ca, "b.test", h2).await;
    assert_eq!(
        leaf, obtained.der,
        "no file certificate names b.test: ACME's"
    );
    let (leaf, alpn) = shown(Arc::clone(&server), &ca, "b.test", &[b"acme-tls/1"]).await;
    assert_eq!(leaf, validation.der, "RFC 8737: the validation certificate");
    assert_eq!(alpn.as_deref(), Some(&b"acme-tls/1"[..]));
    state.clear_tls_alpn01("b.test");
    let (leaf, _) = shown(server, &ca, "b.test", h2).await;
    assert_eq!(leaf, obtained.der);
}
