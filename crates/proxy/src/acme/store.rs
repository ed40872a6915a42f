//! What ACME keeps in `state_dir/acme/`: the account (its key and URL, one file per directory
//! URL) and each certificate with its key (one file: the chain, then the key, so that a reader
//! never pairs a new certificate with an old key). Files are written to a temporary name, synced
//! and renamed over the old one, mode 0600 in a 0700 directory.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

use super::Obtained;

/// A certificate file is a few KiB.
const MAX_FILE: u64 = 1024 * 1024;

/// `state_dir/acme`, created (0700) when missing.
pub fn acme_dir(state_dir: &Path) -> io::Result<PathBuf> {
    let dir = state_dir.join("acme");
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)?;
    Ok(dir)
}

/// The account file for one directory URL.
pub fn account_path(dir: &Path, directory: &str) -> PathBuf {
    dir.join(format!("account-{:016x}.json", fnv1a(directory.as_bytes())))
}

/// The certificate file of the names ordered together (named after the first).
pub fn cert_path(dir: &Path, domains: &[String]) -> PathBuf {
    let first = domains.first().map_or("certificate", String::as_str);
    dir.join(format!("{first}.pem"))
}

/// Writes `bytes` to `path` atomically, readable by the owner only.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

/// Reads a file of at most 1 MiB; `Ok(None)` when it does not exist.
pub fn read_small(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match fs::metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
        Ok(meta) if meta.len() > MAX_FILE => Err(io::Error::other(format!(
            "{} is {} bytes, too large for a certificate",
            path.display(),
            meta.len()
        ))),
        Ok(_) => fs::read(path).map(Some),
    }
}

/// The certificate file's contents: the chain, then the key (both PEM).
pub fn cert_file(chain_pem: &str, key_pem: &str) -> String {
    let mut text = chain_pem.trim_end().to_owned();
    text.push('\n');
    text.push_str(key_pem.trim_end());
    text.push('\n');
    text
}

/// Parses a certificate file into what is served. Errors say what is wrong with it.
pub fn parse(bytes: &[u8]) -> Result<Obtained, String> {
    let chain = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not valid PEM: {e}"))?;
    let key = PrivateKeyDer::from_pem_slice(bytes).map_err(|e| format!("no private key: {e}"))?;
    let leaf = chain.first().ok_or("no certificate")?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref())
        .map_err(|e| format!("the certificate cannot be parsed: {e}"))?;
    let names = match cert.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                x509_parser::extensions::GeneralName::DNSName(name) => {
                    Some(name.to_ascii_lowercase())
                }
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    let validity = cert.validity();
    let not_before = unix(validity.not_before.timestamp());
    let not_after = unix(validity.not_after.timestamp());
    let provider = rustls::crypto::ring::default_provider();
    let key = CertifiedKey::from_der(chain, key, &provider).map_err(|e| e.to_string())?;
    Ok(Obtained {
        key: Arc::new(key),
        names,
        not_before,
        not_after,
    })
}

/// The certificate kept for `domains`, when there is one that covers them all and has not
/// expired. `Err` for a file that exists but cannot be used (logged by the caller; a new
/// order replaces it).
pub fn load(dir: &Path, domains: &[String]) -> Result<Option<Obtained>, String> {
    let path = cert_path(dir, domains);
    let Some(bytes) = read_small(&path).map_err(|e| format!("{}: {e}", path.display()))? else {
        return Ok(None);
    };
    let obtained = parse(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    if let Some(missing) = domains.iter().find(|d| !obtained.names.contains(d)) {
        return Err(format!(
            "{} does not cover {missing} (the domains changed)",
            path.display()
        ));
    }
    if obtained.not_after <= SystemTime::now() {
        return Err(format!("{} has expired", path.display()));
    }
    Ok(Some(obtained))
}

/// When a certificate is due for renewal: once a third of its lifetime is left.
pub fn renew_at(obtained: &Obtained) -> SystemTime {
    let lifetime = obtained
        .not_after
        .duration_since(obtained.not_before)
        .unwrap_or(Duration::ZERO);
    obtained.not_after - lifetime / 3
}

fn unix(secs: i64) -> SystemTime {
    let magnitude = Duration::from_secs(secs.unsigned_abs());
    if secs >= 0 {
        SystemTime::UNIX_EPOCH + magnitude
    } else {
        SystemTime::UNIX_EPOCH - magnitude
    }
}

/// FNV-1a: a stable, dependency-free name for a directory URL's account file.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_written_certificate_loads_back_private_and_renews_at_two_thirds() {
        let dir = tempfile::tempdir().unwrap();
        let dir = acme_dir(dir.path()).unwrap();
        let ca = gatehouse_testkit::tls::TestCa::new("store test CA");
        let leaf = ca.leaf(&["a.test", "b.test"]);
        let (chain_pem, key_pem) = (leaf.chain_pem.clone(), leaf.key_pem.clone());
        let domains = vec!["a.test".to_owned(), "b.test".to_owned()];
        let path = cert_path(&dir, &domains);
        write_atomic(&path, cert_file(&chain_pem, &key_pem).as_bytes()).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let loaded = load(&dir, &domains).unwrap().expect("kept");
        assert_eq!(loaded.names, domains);
        let lifetime = loaded.not_after.duration_since(loaded.not_before).unwrap();
        let left = loaded.not_after.duration_since(renew_at(&loaded)).unwrap();
        assert!(left.as_secs().abs_diff(lifetime.as_secs() / 3) <= 1);
        assert!(
            matches!(load(&dir, &["c.test".to_owned()]), Ok(None)),
            "another first name, another file"
        );
        let more = vec!["a.test".to_owned(), "c.test".to_owned()];
        let err = load(&dir, &more).unwrap_err();
        assert!(err.contains("does not cover c.test"), "{err}");
    }
}
