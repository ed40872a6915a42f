//! The certificate a TLS listener presents, chosen by the name the client asks for (SNI), and
//! for an `acme = true` listener also among the certificates obtained through ACME, read on
//! every handshake, and the TLS-ALPN-01 validation certificates (RFC 8737).

use std::collections::HashMap;
use std::sync::Arc;

use gatehouse_config::TlsCertificate;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::tls::TlsSetupError;
use crate::acme::{ALPN_ACME_TLS, AcmeState};

/// Picks a listener's certificate by the client's SNI name: an exact name first, then a
/// `*.suffix` wildcard covering one label (RFC 6125 §6.4.3), else the first certificate (also
/// for clients that send no name, e.g. those connecting by IP address).
#[derive(Debug)]
pub(super) struct SniResolver {
    keys: Vec<Arc<CertifiedKey>>,
    /// Lowercase name → index in `keys`; the first certificate naming it wins.
    exact: HashMap<String, usize>,
    /// Lowercase suffix of `*.suffix` → index in `keys`.
    wildcard: HashMap<String, usize>,
    /// With `acme = true`: the certificates obtained through ACME and open TLS-ALPN-01
    /// challenges.
    pub(super) acme: Option<Arc<AcmeState>>,
}

impl SniResolver {
    pub(super) fn new(
        certificates: &[TlsCertificate],
        provider: &CryptoProvider,
    ) -> Result<Self, TlsSetupError> {
        let mut resolver = Self {
            keys: Vec::with_capacity(certificates.len()),
            exact: HashMap::new(),
            wildcard: HashMap::new(),
            acme: None,
        };
        for (index, certificate) in certificates.iter().enumerate() {
            let key = CertifiedKey::from_der(
                certificate.chain.clone(),
                certificate.key.clone_key(),
                provider,
            )
            .map_err(|source| TlsSetupError::Certificate {
                cert: certificate.cert_path.clone(),
                key: certificate.key_path.clone(),
                source,
            })?;
            resolver.keys.push(Arc::new(key));
            for name in &certificate.names {
                let name = name.to_ascii_lowercase();
                match name.strip_prefix("*.") {
                    Some(suffix) => resolver.wildcard.entry(suffix.to_owned()),
                    None => resolver.exact.entry(name),
                }
                .or_insert(index);
            }
        }
        // A listener without certificate files (acme = true) serves only what ACME obtains.
        Ok(resolver)
    }

    /// The index of the file certificate for `name`.
    pub(super) fn pick(&self, name: Option<&str>) -> usize {
        self.pick_named(name).unwrap_or(0)
    }

    /// The index of the file certificate covering `name`, exactly or by wildcard.
    fn pick_named(&self, name: Option<&str>) -> Option<usize> {
        let name = name?.trim_end_matches('.').to_ascii_lowercase();
        if let Some(&index) = self.exact.get(&name) {
            return Some(index);
        }
        name.split_once('.')
            .and_then(|(_, suffix)| self.wildcard.get(suffix))
            .copied()
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = hello.server_name();
        let Some(acme) = &self.acme else {
            return self.keys.get(self.pick(name)).cloned();
        };
        // RFC 8737 §3: a validation handshake offers `acme-tls/1` alone and gets the
        // challenge certificate, or no handshake at all.
        let validating = hello
            .alpn()
            .is_some_and(|mut offered| offered.any(|p| p == ALPN_ACME_TLS));
        if validating {
            return name.and_then(|n| acme.tls_alpn01(n));
        }
        // A file certificate naming the host exactly wins, then ACME's, then a file wildcard.
        let lower = name.map(|n| n.trim_end_matches('.').to_ascii_lowercase());
        if let Some(index) = lower.as_ref().and_then(|n| self.exact.get(n)) {
            return self.keys.get(*index).cloned();
        }
        if let Some(key) = name.and_then(|n| acme.cert_for(n)) {
            return Some(key);
        }
        if let Some(index) = self.pick_named(name) {
            return self.keys.get(index).cloned();
        }
        self.keys.first().cloned().or_else(|| acme.any_cert())
    }
}
