//! TLS: `[[server.tls]]` listeners, the `http2*` keys of `[server]`, and the `tls_*` keys of
//! `[upstream.NAME]`.
//!
//! Certificates, keys and CA bundles are read here, when the config is loaded, like a maintenance
//! page: `check` then reports a missing file, a file with no certificate or key in it, or a key
//! that is not the certificate's, each at the line that names the file; and a reload reads them
//! again, so renewed certificates are picked up, while a reload with a broken pair is refused and
//! the running certificates keep serving. A certificate that has expired or expires soon is only
//! a warning: refusing it would turn a renewal that is late into an outage.
//!
//! Here the listeners; `http2` the HTTP/2 keys, `upstream` the `tls_*` keys of an upstream,
//! `pem` reading and checking certificates, keys and CA bundles.

mod http2;
mod pem;
mod upstream;

pub(super) use http2::http2;
pub(super) use pem::certificate;
pub(super) use upstream::upstream_tls;

use std::path::Path;

use toml::Spanned;

use super::Listeners;
use super::fields::choice;
use crate::diag::Sink;
use crate::model::{TlsCertificate, TlsListener, TlsVersion};
use crate::raw::RawTlsListener;

// === [[server.tls]] ===

/// Every `[[server.tls]]`, its certificates loaded; each listen address is checked against every
/// other listener through `claimed`.
pub(super) fn listeners(
    raw: Option<&[Spanned<RawTlsListener>]>,
    base: &Path,
    sink: &mut Sink<'_>,
    claimed: &mut Listeners,
) -> Vec<TlsListener> {
    let mut out = Vec::new();
    for (i, entry) in raw.unwrap_or_default().iter().enumerate() {
        let prefix = format!("server.tls[{i}]");
        if let Some(listener) = listener(entry, &prefix, base, sink, claimed) {
            out.push(listener);
        }
    }
    out
}

fn listener(
    raw: &Spanned<RawTlsListener>,
    prefix: &str,
    base: &Path,
    sink: &mut Sink<'_>,
    claimed: &mut Listeners,
) -> Option<TlsListener> {
    let entry = raw.get_ref();
    let mut listen = Vec::new();
    match &entry.listen {
        None => sink.error(
            Some(raw.span()),
            format!("{prefix}.listen"),
            "this [[server.tls]] has no `listen`",
            "add the addresses to accept HTTPS on, e.g. listen = [\"0.0.0.0:443\"]",
        ),
        Some(list) if list.get_ref().is_empty() => sink.error(
            Some(list.span()),
            format!("{prefix}.listen"),
            "no listen address",
            "add one, e.g. listen = [\"0.0.0.0:443\"], or remove this [[server.tls]]",
        ),
        Some(list) => {
            for (j, item) in list.get_ref().iter().enumerate() {
                if let Some(addr) = claimed.claim(sink, item, &format!("{prefix}.listen[{j}]")) {
                    listen.push(addr);
                }
            }
        }
    }

    let mut certificates = Vec::new();
    // Whether a certificate was written at all (even a broken one), so "no certificate" is said
    // only when none is.
    let mut written = false;
    // Each loaded certificate's `cert` key path and value, for the duplicate-name warning.
    let mut loaded: Vec<(String, Spanned<String>)> = Vec::new();
    for pair in written_pairs(raw, prefix) {
        let at = &pair.at;
        match (pair.cert, pair.key) {
            (None, None) if pair.top_level => continue,
            (None, None) => {
                written = true;
                sink.error(
                    Some(pair.span),
                    format!("{at}.cert"),
                    "this certificate entry has no `cert` and no `key`",
                    "write it like { cert = \"other.example.pem\", key = \"other.example.key\" }, or remove it",
                );
            }
            (Some(cert), None) => {
                written = true;
                sink.error(
                    Some(cert.span()),
                    format!("{at}.cert"),
                    "cert without key: a certificate needs its private key",
                    format!(
                        "add key = \"...\" next to it (the PEM file with the private key of {})",
                        cert.get_ref()
                    ),
                );
            }
            (None, Some(key)) => {
                written = true;
                sink.error(
                    Some(key.span()),
                    format!("{at}.key"),
                    "key without cert: a private key needs its certificate",
                    format!(
                        "add cert = \"...\" next to it (the PEM file with the certificate chain for {})",
                        key.get_ref()
                    ),
                );
            }
            (Some(cert), Some(key)) => {
                written = true;
                let cert_key = format!("{at}.cert");
                let key_key = format!("{at}.key");
                if let Some(c) = certificate(cert, &cert_key, key, &key_key, base, sink) {
                    loaded.push((cert_key, cert.clone()));
                    certificates.push(c);
                }
            }
        }
    }
    let acme = entry.acme.as_ref().is_some_and(|on| *on.get_ref());
    if !written && !acme {
        sink.error(
            Some(raw.span()),
            format!("{prefix}.cert"),
            "this [[server.tls]] has no certificate",
            "add cert = \"/etc/gatehouse/example.com.pem\" and key = \"/etc/gatehouse/example.com.key\" (PEM files), or certificates = [{ cert = \"...\", key = \"...\" }], or acme = true to obtain them automatically",
        );
    }
    duplicate_names(&certificates, &loaded, sink);

    let min_version = choice(
        sink,
        entry.min_version.clone(),
        &format!("{prefix}.min_version"),
        TlsVersion::Tls12,
        &[("1.2", TlsVersion::Tls12), ("1.3", TlsVersion::Tls13)],
    );
    if certificates.is_empty() && (written || !acme) {
        // Reported above: a broken or missing certificate.
        return None;
    }
    Some(TlsListener {
        listen,
        certificates,
        acme,
        min_version,
        proxy_protocol: entry
            .proxy_protocol
            .as_ref()
            .is_some_and(|on| *on.get_ref()),
    })
}

/// One place a certificate may be written: the listener's own `cert`/`key`, or an entry of its
/// `certificates`.
struct WrittenPair<'a> {
    cert: Option<&'a Spanned<String>>,
    key: Option<&'a Spanned<String>>,
    /// The key path both are under: `server.tls[0]` or `server.tls[0].certificates[1]`.
    at: String,
    /// The listener's or the entry's table.
    span: std::ops::Range<usize>,
    /// The listener's own `cert`/`key`, which may both be absent.
    top_level: bool,
}

/// The listener's `cert`/`key` first, then each `certificates` entry: the order SNI falls back
/// in (the first certificate is the default).
fn written_pairs<'a>(raw: &'a Spanned<RawTlsListener>, prefix: &str) -> Vec<WrittenPair<'a>> {
    let entry = raw.get_ref();
    let mut pairs = vec![WrittenPair {
        cert: entry.cert.as_ref(),
        key: entry.key.as_ref(),
        at: prefix.to_owned(),
        span: raw.span(),
        top_level: true,
    }];
    for (j, pair) in entry.certificates.iter().flatten().enumerate() {
        pairs.push(WrittenPair {
            cert: pair.get_ref().cert.as_ref(),
            key: pair.get_ref().key.as_ref(),
            at: format!("{prefix}.certificates[{j}]"),
            span: pair.span(),
            top_level: false,
        });
    }
    pairs
}

/// A name covered by two certificates of one listener: SNI picks the first, so the second never
/// serves it. A warning, since both certificates are still usable.
fn duplicate_names(
    certificates: &[TlsCertificate],
    written: &[(String, Spanned<String>)],
    sink: &mut Sink<'_>,
) {
    for (i, cert) in certificates.iter().enumerate() {
        let (key, raw) = &written[i];
        if i > 0 && cert.names.is_empty() {
            sink.warning(
                Some(raw.span()),
                key,
                format!(
                    "the certificate in {} covers no DNS name, so no client's SNI ever selects it",
                    cert.cert_path.display()
                ),
                "give it a subjectAltName for the host it should serve, or remove it",
            );
        }
        for name in &cert.names {
            let earlier = certificates[..i]
                .iter()
                .zip(written)
                .find(|(c, _)| c.names.contains(name));
            if let Some((earlier, (earlier_key, _))) = earlier {
                sink.warning(
                    Some(raw.span()),
                    key,
                    format!(
                        "{name} is also covered by the certificate in {} ({earlier_key}); that one, the first, is used for it",
                        earlier.cert_path.display()
                    ),
                    "remove the name from one of the certificates, or remove one of them",
                );
            }
        }
    }
}
