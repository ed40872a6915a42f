//! `[acme]`: certificates obtained from an ACME certificate authority.

use std::path::PathBuf;

/// `[acme]`: certificates obtained and renewed from an ACME (RFC 8555) certificate authority.
#[derive(Debug, Clone, PartialEq)]
pub struct AcmeConfig {
    /// `directory`: the CA's directory URL. Default Let's Encrypt production;
    /// `"letsencrypt-staging"` names its staging directory.
    pub directory: String,
    /// `email`: the account's contact (`mailto:`), for the CA's expiry notices. Default none.
    pub email: Option<String>,
    /// `ca_file`: PEM roots the directory's HTTPS certificate is checked against (a private CA
    /// such as a test one). Default: the system's roots.
    pub ca_file: Option<PathBuf>,
    /// `challenges`: the challenge types tried, in order. Default `tls-alpn-01`, `http-01`.
    pub challenges: Vec<AcmeChallenge>,
    /// `domains`: the names one certificate is ordered for, lowercase. Default: every route's
    /// exact `host`, in file order. Never empty.
    pub domains: Vec<String>,
}

/// An ACME challenge type gatehouse answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcmeChallenge {
    /// RFC 8737: a self-signed certificate on the TLS listeners (ALPN `acme-tls/1`).
    TlsAlpn01,
    /// RFC 8555 §8.3: `/.well-known/acme-challenge/TOKEN` on the plain and redirect listeners.
    Http01,
}

impl AcmeChallenge {
    /// The name in the config and in RFC 8555's registry.
    pub const fn name(self) -> &'static str {
        match self {
            AcmeChallenge::TlsAlpn01 => "tls-alpn-01",
            AcmeChallenge::Http01 => "http-01",
        }
    }
}
