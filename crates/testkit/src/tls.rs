//! Certificates made for a test (rcgen): a private CA and leaf certificates it signs, valid,
//! expired or about to expire, written to PEM files for gatehouse's config, and rustls
//! configurations for in-process TLS servers and clients that use them.

use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::OffsetDateTime;

use crate::TempFile;

/// A certificate authority that exists only for one test.
#[derive(Debug)]
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate chain (leaf, then the CA) and its private key.
#[derive(Debug, Clone)]
pub struct TestCert {
    /// The leaf, DER.
    pub der: CertificateDer<'static>,
    /// The CA's certificate, DER.
    pub ca_der: CertificateDer<'static>,
    /// Leaf then CA, PEM.
    pub chain_pem: String,
    /// PKCS#8 PEM.
    pub key_pem: String,
    key_der: Vec<u8>,
}

/// When a leaf certificate is valid.
#[derive(Debug, Clone, Copy)]
pub enum Validity {
    /// From yesterday until next year.
    Current,
    /// Ended yesterday.
    Expired,
    /// Ends in this many days.
    EndsIn(u32),
}

impl TestCa {
    /// A new CA whose certificate says `CN=<name>`.
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new())
            .unwrap_or_else(|e| panic!("CA params: {e}"));
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().unwrap_or_else(|e| panic!("CA key: {e}"));
        let issuer = CertifiedIssuer::self_signed(params, key)
            .unwrap_or_else(|e| panic!("CA certificate: {e}"));
        Self { issuer }
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> String {
        self.issuer.pem()
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> CertificateDer<'static> {
        self.issuer.der().clone()
    }

    /// The CA certificate in a PEM file (for `tls_ca_file`).
    pub fn write_pem(&self) -> TempFile {
        TempFile::with_contents("gatehouse-test-ca", ".pem", self.cert_pem().as_bytes())
    }

    /// A server (and client) certificate for `names` (DNS names, `*.` wildcards, or IP
    /// addresses), valid now.
    pub fn leaf(&self, names: &[&str]) -> TestCert {
        self.leaf_with(names, Validity::Current)
    }

    /// A certificate for `names` with the given validity.
    pub fn leaf_with(&self, names: &[&str], validity: Validity) -> TestCert {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params =
            CertificateParams::new(names.clone()).unwrap_or_else(|e| panic!("leaf params: {e}"));
        if let Some(first) = names.first() {
            params.distinguished_name.push(DnType::CommonName, first);
        }
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let now = OffsetDateTime::now_utc();
        let day = Duration::from_secs(24 * 3600);
        let (not_before, not_after) = match validity {
            Validity::Current => (now - day, now + day * 365),
            Validity::Expired => (now - day * 30, now - day),
            Validity::EndsIn(days) => (now - day, now + day * days),
        };
        params.not_before = not_before;
        params.not_after = not_after;
        let key = KeyPair::generate().unwrap_or_else(|e| panic!("leaf key: {e}"));
        let cert = params
            .signed_by(&key, &self.issuer)
            .unwrap_or_else(|e| panic!("leaf certificate: {e}"));
        TestCert {
            der: cert.der().clone(),
            ca_der: self.cert_der(),
            chain_pem: format!("{}{}", cert.pem(), self.cert_pem()),
            key_pem: key.serialize_pem(),
            key_der: key.serialize_der(),
        }
    }
}

impl TestCert {
    /// The chain and the key in two PEM files (for `cert`/`key`, `tls_client_cert`/`tls_client_key`).
    pub fn write_pem(&self) -> (TempFile, TempFile) {
        (
            TempFile::with_contents("gatehouse-test-cert", ".pem", self.chain_pem.as_bytes()),
            TempFile::with_contents("gatehouse-test-key", ".pem", self.key_pem.as_bytes()),
        )
    }

    /// The chain, DER, leaf first.
    pub fn chain(&self) -> Vec<CertificateDer<'static>> {
        vec![self.der.clone(), self.ca_der.clone()]
    }

    /// The private key, DER.
    pub fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()))
    }

    /// A rustls server configuration presenting this certificate, offering `alpn`.
    pub fn server_config(&self, alpn: &[&[u8]]) -> Arc<rustls::ServerConfig> {
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap_or_else(|e| panic!("TLS versions: {e}"))
            .with_no_client_auth()
            .with_single_cert(self.chain(), self.key())
            .unwrap_or_else(|e| panic!("server certificate: {e}"));
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }
}

/// A rustls client configuration trusting only `ca`, offering `alpn`.
pub fn client_config(ca: &CertificateDer<'static>, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(ca.clone())
        .unwrap_or_else(|e| panic!("CA certificate: {e}"));
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap_or_else(|e| panic!("TLS versions: {e}"))
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}
