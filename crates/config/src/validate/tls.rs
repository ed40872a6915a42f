//! TLS: `[[server.tls]]` listeners, the `http2*` keys of `[server]`, and the `tls_*` keys of
//! `[upstream.NAME]`.
//!
//! Certificates, keys and CA bundles are read here, when the config is loaded, like a maintenance
//! page: `check` then reports a missing file, a file with no certificate or key in it, or a key
//! that is not the certificate's, each at the line that names the file; and a reload reads them
//! again, so renewed certificates are picked up, while a reload with a broken pair is refused and
//! the running certificates keep serving. A certificate that has expired or expires soon is only
//! a warning: refusing it would turn a renewal that is late into an outage.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::crypto::ring::sign::any_supported_type;
use rustls::sign::CertifiedKey;
use rustls::{Error as TlsError, InconsistentKeys};
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use toml::Spanned;

use super::fields::{choice, human_size, int_in, size_within};
use super::{KIB, Listeners, MIB};
use crate::diag::Sink;
use crate::model::{CaBundle, Http2Config, TlsCertificate, TlsListener, TlsVersion, UpstreamTls};
use crate::raw::{RawServer, RawTlsListener, RawUpstream};

/// A certificate that ends within this time is a warning, so `check` (or a reload) in a renewal
/// job says so while there is still time.
const EXPIRY_WARNING: Duration = Duration::from_secs(14 * 24 * 3600);
/// PEM files of certificates and keys are a few KiB; a larger file is certainly the wrong one,
/// and is not read whole into memory.
const MAX_PEM_SIZE: u64 = MIB;

const DEFAULT_MAX_CONCURRENT_STREAMS: u32 = 128;
const MAX_CONCURRENT_STREAMS: u32 = 10_000;
const DEFAULT_STREAM_WINDOW: u64 = MIB;
/// The HTTP/2 initial window (RFC 9113 §6.9.2) is 64 KiB - 1; less would only slow streams.
const MIN_WINDOW: u64 = 64 * KIB;
const MAX_STREAM_WINDOW: u64 = 16 * MIB;
const DEFAULT_CONNECTION_WINDOW: u64 = 2 * MIB;
const MAX_CONNECTION_WINDOW: u64 = 64 * MIB;

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

// === [server] http2 ===

pub(super) fn http2(raw: &RawServer, sink: &mut Sink<'_>) -> Http2Config {
    let enabled = raw.http2.as_ref().is_none_or(|b| *b.get_ref());
    let max_concurrent_streams = int_in(
        sink,
        raw.http2_max_concurrent_streams.as_ref(),
        "server.http2_max_concurrent_streams",
        DEFAULT_MAX_CONCURRENT_STREAMS,
        1,
        MAX_CONCURRENT_STREAMS,
    );
    // Compared with the connection window below only when valid: a bad one is reported already
    // and replaced by the default, which the connection window was not written against.
    let reported_before = sink.diagnostics.len();
    let stream_window = size_within(
        sink,
        raw.http2_stream_window.clone(),
        "server.http2_stream_window",
        DEFAULT_STREAM_WINDOW,
        MIN_WINDOW,
        MAX_STREAM_WINDOW,
    );
    let stream_window_valid = sink.diagnostics.len() == reported_before;
    // Without its own value the connection window grows with a large stream window, rather
    // than making a config that sets only the stream window an error.
    let connection_default = DEFAULT_CONNECTION_WINDOW.max(stream_window);
    let mut connection_window = size_within(
        sink,
        raw.http2_connection_window.clone(),
        "server.http2_connection_window",
        connection_default,
        MIN_WINDOW,
        MAX_CONNECTION_WINDOW,
    );
    if let Some(raw_window) = &raw.http2_connection_window
        && stream_window_valid
        && connection_window < stream_window
    {
        sink.error(
            Some(raw_window.span()),
            "server.http2_connection_window",
            format!(
                "the connection window ({}) is smaller than http2_stream_window ({}): one stream could use up the whole connection's window",
                human_size(connection_window),
                human_size(stream_window)
            ),
            "make it at least the stream window, e.g. twice it, or remove it (the default is 2MiB or the stream window, whichever is larger)",
        );
        connection_window = connection_default;
    }
    if !enabled {
        let unused = [
            (
                raw.http2_max_concurrent_streams.as_ref().map(Spanned::span),
                "http2_max_concurrent_streams",
            ),
            (
                raw.http2_stream_window.as_ref().map(Spanned::span),
                "http2_stream_window",
            ),
            (
                raw.http2_connection_window.as_ref().map(Spanned::span),
                "http2_connection_window",
            ),
        ];
        for (span, name) in unused {
            if let Some(span) = span {
                sink.warning(
                    Some(span),
                    format!("server.{name}"),
                    format!("{name} has no effect: http2 = false"),
                    format!("remove {name}, or set http2 = true"),
                );
            }
        }
    }
    Http2Config {
        enabled,
        max_concurrent_streams,
        // Both are at most 64 MiB (checked above), far below u32::MAX.
        stream_window: u32::try_from(stream_window).unwrap_or(u32::MAX),
        connection_window: u32::try_from(connection_window).unwrap_or(u32::MAX),
    }
}

// === [upstream.NAME] tls_* ===

/// The `tls_*` keys of one upstream. `uses_tls`: whether any of its servers is reached over TLS
/// (else each key set is a warning: it would silently do nothing).
pub(super) fn upstream_tls(
    up: &RawUpstream,
    prefix: &str,
    uses_tls: bool,
    base: &Path,
    sink: &mut Sink<'_>,
) -> UpstreamTls {
    let key = |field: &str| format!("{prefix}.{field}");
    if !uses_tls {
        let set = [
            (up.tls_server_name.as_ref(), "tls_server_name"),
            (up.tls_ca_file.as_ref(), "tls_ca_file"),
            (up.tls_client_cert.as_ref(), "tls_client_cert"),
            (up.tls_client_key.as_ref(), "tls_client_key"),
        ];
        for (raw, name) in set {
            if let Some(raw) = raw {
                sink.warning(
                    Some(raw.span()),
                    key(name),
                    format!("{name} has no effect: no server of this upstream uses TLS"),
                    "write servers as https://… or set tls = true",
                );
            }
        }
    }
    let server_name = up.tls_server_name.as_ref().and_then(|raw| {
        super::fields::parse_at(
            sink,
            raw,
            &key("tls_server_name"),
            crate::values::tls_server_name,
        )
    });
    let ca = up
        .tls_ca_file
        .as_ref()
        .and_then(|raw| ca_bundle(raw, &key("tls_ca_file"), base, sink));
    let client_cert = match (&up.tls_client_cert, &up.tls_client_key) {
        (None, None) => None,
        (Some(cert), None) => {
            sink.error(
                Some(cert.span()),
                key("tls_client_cert"),
                "tls_client_cert without tls_client_key: a client certificate needs its private key",
                "add tls_client_key = \"...\" (the PEM file with the certificate's private key), or remove tls_client_cert",
            );
            None
        }
        (None, Some(k)) => {
            sink.error(
                Some(k.span()),
                key("tls_client_key"),
                "tls_client_key without tls_client_cert: a private key needs its certificate",
                "add tls_client_cert = \"...\" (the PEM file with the client certificate), or remove tls_client_key",
            );
            None
        }
        (Some(cert), Some(k)) => certificate(
            cert,
            &key("tls_client_cert"),
            k,
            &key("tls_client_key"),
            base,
            sink,
        ),
    };
    UpstreamTls {
        server_name,
        ca,
        client_cert,
    }
}

/// `tls_ca_file`: at least one certificate, each parseable.
fn ca_bundle(
    raw: &Spanned<String>,
    key: &str,
    base: &Path,
    sink: &mut Sink<'_>,
) -> Option<CaBundle> {
    const FIX: &str = "point tls_ca_file at a PEM file with the CA certificates (-----BEGIN CERTIFICATE-----) that issued the servers' certificates, or remove it to trust the system's roots";
    let path = base.join(raw.get_ref());
    let problem = match read_pem(&path) {
        Err(problem) => problem,
        Ok(bytes) => match certificates_in(&bytes, &path) {
            Err(problem) => problem,
            Ok(certs) if certs.is_empty() => {
                let hint = if contains(&bytes, b"PRIVATE KEY") {
                    " (it holds a private key)"
                } else {
                    ""
                };
                format!("no certificate in {}{hint}", path.display())
            }
            Ok(certs) => {
                let bad = certs.iter().enumerate().find_map(|(i, c)| {
                    x509_parser::parse_x509_certificate(c.as_ref())
                        .err()
                        .map(|e| (i, e))
                });
                match bad {
                    Some((i, e)) => format!(
                        "certificate {} in {} cannot be parsed: {e}",
                        i + 1,
                        path.display()
                    ),
                    None => return Some(CaBundle { path, certs }),
                }
            }
        },
    };
    sink.error(Some(raw.span()), key, problem, FIX);
    None
}

// === certificates ===

/// Loads a certificate chain and its key from PEM files and checks that they belong together;
/// warns when the leaf has expired or expires within 14 days. `None` when anything is wrong
/// (each problem reported at the line of the file it concerns).
pub(super) fn certificate(
    cert: &Spanned<String>,
    cert_key: &str,
    key: &Spanned<String>,
    key_key: &str,
    base: &Path,
    sink: &mut Sink<'_>,
) -> Option<TlsCertificate> {
    let cert_path = base.join(cert.get_ref());
    let key_path = base.join(key.get_ref());
    // Both files are read even when one is broken, so that `check` reports both at once.
    let chain = match read_chain(&cert_path) {
        Ok(chain) => Some(chain),
        Err((problem, fix)) => {
            sink.error(Some(cert.span()), cert_key, problem, fix);
            None
        }
    };
    let private_key = match read_key(&key_path) {
        Ok(k) => Some(k),
        Err((problem, fix)) => {
            sink.error(Some(key.span()), key_key, problem, fix);
            None
        }
    };
    let chain = chain?;
    let leaf = match Leaf::parse(&chain) {
        Ok(leaf) => leaf,
        Err(reason) => {
            sink.error(
                Some(cert.span()),
                cert_key,
                format!(
                    "the first certificate in {} cannot be parsed: {reason}",
                    cert_path.display()
                ),
                "the file must start with the server's own certificate, followed by its intermediates (PEM)",
            );
            return None;
        }
    };
    let private_key = private_key?;
    let signing_key = match any_supported_type(&private_key) {
        Ok(k) => k,
        Err(e) => {
            sink.error(
                Some(key.span()),
                key_key,
                format!(
                    "the private key in {} is of a type gatehouse cannot use ({e})",
                    key_path.display()
                ),
                "use an RSA (2048 bits or more), ECDSA P-256/P-384 or Ed25519 key",
            );
            return None;
        }
    };
    match CertifiedKey::new(chain.clone(), signing_key).keys_match() {
        // Unknown: the key type cannot tell its public key; rustls accepts those too.
        Ok(()) | Err(TlsError::InconsistentKeys(InconsistentKeys::Unknown)) => {}
        Err(TlsError::InconsistentKeys(InconsistentKeys::KeyMismatch)) => {
            sink.error(
                Some(key.span()),
                key_key,
                format!(
                    "the key in {} does not match the certificate in {}",
                    key_path.display(),
                    cert_path.display()
                ),
                format!(
                    "point the key at the private key the certificate was issued for (compare `openssl x509 -in {} -noout -pubkey` with `openssl pkey -in {} -pubout`)",
                    cert_path.display(),
                    key_path.display()
                ),
            );
            return None;
        }
        Err(e) => {
            sink.error(
                Some(cert.span()),
                cert_key,
                format!(
                    "the certificate in {} cannot be used: {e}",
                    cert_path.display()
                ),
                "check that the file starts with the server's own certificate (PEM), followed by its intermediates",
            );
            return None;
        }
    }
    expiry_warnings(&leaf, &cert_path, cert.span(), cert_key, sink);
    Some(TlsCertificate {
        cert_path,
        key_path,
        chain,
        key: Arc::new(private_key),
        names: leaf.names,
        subject: leaf.subject,
        not_after: leaf.not_after,
    })
}

/// What gatehouse needs to know of a leaf certificate.
struct Leaf {
    names: Vec<String>,
    subject: String,
    not_before: SystemTime,
    not_after: SystemTime,
}

impl Leaf {
    fn parse(chain: &[CertificateDer<'static>]) -> Result<Leaf, String> {
        let Some(der) = chain.first() else {
            return Err("there is none".to_owned());
        };
        let (_, cert) =
            x509_parser::parse_x509_certificate(der.as_ref()).map_err(|e| e.to_string())?;
        let san_names = match cert.subject_alternative_name() {
            Ok(Some(san)) => Some(
                san.value
                    .general_names
                    .iter()
                    .filter_map(|n| match n {
                        x509_parser::extensions::GeneralName::DNSName(name) => {
                            Some(name.to_ascii_lowercase())
                        }
                        _ => None,
                    })
                    .collect::<Vec<_>>(),
            ),
            Ok(None) => None,
            Err(e) => return Err(format!("its subjectAltName is invalid: {e}")),
        };
        // Clients have ignored the CN for years when there is a subjectAltName; without one it is
        // all there is to select the certificate by.
        let names = san_names.unwrap_or_else(|| {
            cert.subject()
                .iter_common_name()
                .filter_map(|cn| cn.as_str().ok())
                .map(str::to_ascii_lowercase)
                .collect()
        });
        let validity = cert.validity();
        Ok(Leaf {
            names,
            subject: cert.subject().to_string(),
            not_before: system_time(validity.not_before.timestamp()),
            not_after: system_time(validity.not_after.timestamp()),
        })
    }
}

fn system_time(unix: i64) -> SystemTime {
    let magnitude = Duration::from_secs(unix.unsigned_abs());
    if unix >= 0 {
        SystemTime::UNIX_EPOCH + magnitude
    } else {
        SystemTime::UNIX_EPOCH - magnitude
    }
}

/// Expired, expiring within 14 days, or not valid yet: warnings, never errors.
fn expiry_warnings(
    leaf: &Leaf,
    path: &Path,
    span: std::ops::Range<usize>,
    key: &str,
    sink: &mut Sink<'_>,
) {
    let now = SystemTime::now();
    let what = format!("the certificate in {} ({})", path.display(), leaf.subject);
    match leaf.not_after.duration_since(now) {
        Err(_) => sink.warning(
            Some(span.clone()),
            key,
            format!(
                "{what} expired on {}; clients will refuse it",
                date(leaf.not_after)
            ),
            "renew it and reload; gatehouse keeps serving it until then",
        ),
        Ok(left) if left <= EXPIRY_WARNING => {
            let day = 24 * 3600;
            let days = (left.as_secs() + day / 2) / day;
            let left = match days {
                0 => "in less than a day".to_owned(),
                1 => "in 1 day".to_owned(),
                n => format!("in {n} days"),
            };
            sink.warning(
                Some(span.clone()),
                key,
                format!("{what} expires on {}, {left}", date(leaf.not_after)),
                "renew it and reload before then (certificates are read again on every reload)",
            );
        }
        Ok(_) => {}
    }
    if leaf.not_before > now {
        sink.warning(
            Some(span),
            key,
            format!(
                "{what} is not valid before {}; clients will refuse it until then",
                date(leaf.not_before)
            ),
            "check the clock of this machine, or use the certificate that is valid now",
        );
    }
}

/// `2026-01-02 03:04:05 UTC`.
fn date(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t)
        .to_string()
        .replacen('T', " ", 1)
        .replace('Z', " UTC")
}

// === PEM files ===

/// A PEM file's bytes; the problem (naming the file) when it cannot be read.
fn read_pem(path: &Path) -> Result<Vec<u8>, String> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => Err(format!("{} is a directory, not a file", path.display())),
        Ok(meta) if meta.len() > MAX_PEM_SIZE => Err(format!(
            "{} is {} bytes; a PEM file of certificates or keys is a few KiB",
            path.display(),
            meta.len()
        )),
        Ok(_) => match super::read_bounded(path, MAX_PEM_SIZE) {
            Ok(bytes) if bytes.len() as u64 > MAX_PEM_SIZE => Err(format!(
                "{} is more than {MAX_PEM_SIZE} bytes; a PEM file of certificates or keys is a few KiB",
                path.display()
            )),
            Ok(bytes) => Ok(bytes),
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        },
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Every certificate in a PEM text (none is not an error here).
fn certificates_in(bytes: &[u8], path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| not_pem(path, &e))
}

fn not_pem(path: &Path, e: &pem::Error) -> String {
    format!("{} is not valid PEM: {e}", path.display())
}

/// `(problem, fix)`
type Problem = (String, String);

const PATH_FIX: &str = "check the path (a relative path is relative to the config file's directory) and that the user gatehouse runs as can read the file";

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, Problem> {
    let bytes = read_pem(path).map_err(|p| (p, PATH_FIX.to_owned()))?;
    let chain = certificates_in(&bytes, path).map_err(|p| {
        (
            p,
            "the file must hold PEM certificates (-----BEGIN CERTIFICATE-----)".to_owned(),
        )
    })?;
    if chain.is_empty() {
        let fix = if contains(&bytes, b"PRIVATE KEY") {
            "it holds a private key: point cert at the certificate chain and key at this file"
        } else {
            "point cert at a PEM file with the certificate (-----BEGIN CERTIFICATE-----), then its intermediates"
        };
        return Err((
            format!("no certificate in {}", path.display()),
            fix.to_owned(),
        ));
    }
    Ok(chain)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, Problem> {
    let bytes = read_pem(path).map_err(|p| (p, PATH_FIX.to_owned()))?;
    match PrivateKeyDer::from_pem_slice(&bytes) {
        Ok(key) => Ok(key),
        Err(pem::Error::NoItemsFound) => {
            let fix = if contains(&bytes, b"ENCRYPTED PRIVATE KEY") {
                format!(
                    "the key is encrypted with a passphrase, which gatehouse cannot ask for: decrypt it (openssl pkey -in {p} -out {p}.plain) and keep the result readable by gatehouse only",
                    p = path.display()
                )
            } else if contains(&bytes, b"CERTIFICATE") {
                "it holds a certificate: point key at the private key file (-----BEGIN PRIVATE KEY-----)".to_owned()
            } else {
                "point key at a PEM file with the private key (-----BEGIN PRIVATE KEY-----, RSA PRIVATE KEY or EC PRIVATE KEY)".to_owned()
            };
            Err((format!("no private key in {}", path.display()), fix))
        }
        Err(e) => Err((
            not_pem(path, &e),
            "the file must hold a PEM private key (-----BEGIN PRIVATE KEY-----)".to_owned(),
        )),
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
