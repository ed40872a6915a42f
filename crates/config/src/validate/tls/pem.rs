//! Certificates, keys and CA bundles read from PEM files: a chain and its key checked to belong
//! together, expiry warnings, each problem at the line that names the file.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::crypto::ring::sign::any_supported_type;
use rustls::sign::CertifiedKey;
use rustls::{Error as TlsError, InconsistentKeys};
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use toml::Spanned;

use super::super::MIB;
use crate::diag::Sink;
use crate::model::TlsCertificate;

/// A certificate that ends within this time is a warning, so `check` (or a reload) in a renewal
/// job says so while there is still time.
const EXPIRY_WARNING: Duration = Duration::from_secs(14 * 24 * 3600);
/// PEM files of certificates and keys are a few KiB; a larger file is certainly the wrong one,
/// and is not read whole into memory.
const MAX_PEM_SIZE: u64 = MIB;

/// Loads a certificate chain and its key from PEM files and checks that they belong together;
/// warns when the leaf has expired or expires within 14 days. `None` when anything is wrong
/// (each problem reported at the line of the file it concerns).
pub(in crate::validate) fn certificate(
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
pub(super) fn read_pem(path: &Path) -> Result<Vec<u8>, String> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => Err(format!("{} is a directory, not a file", path.display())),
        Ok(meta) if meta.len() > MAX_PEM_SIZE => Err(format!(
            "{} is {} bytes; a PEM file of certificates or keys is a few KiB",
            path.display(),
            meta.len()
        )),
        Ok(_) => match super::super::read_bounded(path, MAX_PEM_SIZE) {
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
pub(super) fn certificates_in(
    bytes: &[u8],
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, String> {
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

pub(super) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
