//! Automatic certificates (RFC 8555): what the request path reads, and the task that fills it.
//!
//! [`AcmeState`] is process-wide (a reload keeps it): the certificates obtained so far, by name,
//! behind one `ArcSwap` that the TLS listeners' SNI resolver reads on every handshake, so a new
//! certificate serves from the next handshake on without a restart or a dropped connection;
//! and the challenges being answered right now, HTTP-01 tokens (read by the plain and redirect
//! listeners before anything else) and TLS-ALPN-01 certificates (RFC 8737, presented when a
//! client offers only ALPN `acme-tls/1`).
//!
//! [`task::run`] obtains and renews: `store` keeps the account key and the certificates in
//! `state_dir`, `lock` lets one of several instances sharing it order, `order` talks to the CA,
//! `challenge` makes the TLS-ALPN-01 certificate. This module does not accept connections and
//! does not build responses (see `crate::listener`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use rustls::sign::CertifiedKey;

pub mod challenge;
pub mod lock;
pub mod order;
pub mod store;
pub mod task;

/// The ALPN protocol id of TLS-ALPN-01 (RFC 8737 §6.2).
pub const ALPN_ACME_TLS: &[u8] = b"acme-tls/1";
/// Where HTTP-01 tokens are fetched (RFC 8555 §8.3).
pub const HTTP01_PREFIX: &str = "/.well-known/acme-challenge/";

/// One certificate obtained through ACME, as served.
#[derive(Debug)]
pub struct Obtained {
    pub key: Arc<CertifiedKey>,
    /// Every DNS name it covers, lowercase.
    pub names: Vec<String>,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

/// How the ACME task stands, for the log, `/status` and metrics.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    /// The names ordered together (the first names the certificate).
    pub domains: Vec<String>,
    /// The certificate's end, once there is one.
    pub not_after: Option<SystemTime>,
    /// When the next order or check is due.
    pub next_attempt: Option<SystemTime>,
    /// The last failure, until an order succeeds.
    pub last_error: Option<String>,
    /// Consecutive failed orders.
    pub failures: u32,
}

/// What the ACME task shares with the request path. Empty (and inert) without `acme = true`.
#[derive(Debug, Default)]
pub struct AcmeState {
    certs: ArcSwap<Vec<Arc<Obtained>>>,
    http01: Mutex<HashMap<String, String>>,
    tls_alpn01: Mutex<HashMap<String, Arc<CertifiedKey>>>,
    progress: Mutex<Progress>,
    /// `state_dir/acme/http-01`: HTTP-01 answers written for every instance sharing the
    /// directory, so the one the CA reaches answers whichever ordered. Set by the task.
    shared_http01: OnceLock<PathBuf>,
}

// === impl AcmeState ===

impl AcmeState {
    /// The certificate for `name` (exact names only: ACME certificates name exact hosts).
    pub fn cert_for(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        self.certs
            .load()
            .iter()
            .find(|c| c.names.contains(&name))
            .map(|c| Arc::clone(&c.key))
    }

    /// Any certificate, for a client that sends no name a file certificate covers.
    pub fn any_cert(&self) -> Option<Arc<CertifiedKey>> {
        self.certs.load().first().map(|c| Arc::clone(&c.key))
    }

    /// The certificates served now.
    pub fn certs(&self) -> Arc<Vec<Arc<Obtained>>> {
        self.certs.load_full()
    }

    /// Serves `obtained` from the next handshake on, in place of any certificate with the same
    /// first name.
    pub fn install(&self, obtained: Obtained) {
        let obtained = Arc::new(obtained);
        self.certs.rcu(|current| {
            let mut next: Vec<Arc<Obtained>> = current
                .iter()
                .filter(|c| c.names.first() != obtained.names.first())
                .cloned()
                .collect();
            next.push(Arc::clone(&obtained));
            next
        });
    }

    /// The key authorization for an HTTP-01 `token`, while its challenge is open here or at
    /// another instance sharing `state_dir`.
    pub fn http01(&self, token: &str) -> Option<String> {
        if let Some(answer) = lock(&self.http01).get(token) {
            return Some(answer.clone());
        }
        // Tokens are base64url (RFC 8555 §8.3); anything else never names a file.
        let valid = !token.is_empty()
            && token.len() <= 128
            && token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        let dir = self.shared_http01.get().filter(|_| valid)?;
        let bytes = store::read_small(&dir.join(token)).ok()??;
        String::from_utf8(bytes).ok()
    }

    pub fn set_http01(&self, token: &str, key_authorization: &str) {
        lock(&self.http01).insert(token.to_owned(), key_authorization.to_owned());
        if let Some(dir) = self.shared_http01.get() {
            let written = std::fs::create_dir_all(dir)
                .and_then(|()| store::write_atomic(&dir.join(token), key_authorization.as_bytes()));
            if let Err(e) = written {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot share an HTTP-01 answer in state_dir; only this instance answers it");
            }
        }
    }

    pub fn clear_http01(&self, token: &str) {
        lock(&self.http01).remove(token);
        if let Some(dir) = self.shared_http01.get() {
            let _ = std::fs::remove_file(dir.join(token));
        }
    }

    /// Where HTTP-01 answers are shared (`state_dir/acme/http-01`); the first call wins.
    pub fn share_http01_in(&self, dir: PathBuf) {
        let _ = self.shared_http01.set(dir);
    }

    /// The TLS-ALPN-01 certificate for `name`, while its challenge is open.
    pub fn tls_alpn01(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        lock(&self.tls_alpn01).get(&name).cloned()
    }

    pub fn set_tls_alpn01(&self, name: &str, key: Arc<CertifiedKey>) {
        lock(&self.tls_alpn01).insert(name.to_ascii_lowercase(), key);
    }

    pub fn clear_tls_alpn01(&self, name: &str) {
        lock(&self.tls_alpn01).remove(&name.to_ascii_lowercase());
    }

    pub fn progress(&self) -> Progress {
        lock(&self.progress).clone()
    }

    pub fn update_progress(&self, f: impl FnOnce(&mut Progress)) {
        f(&mut lock(&self.progress));
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
