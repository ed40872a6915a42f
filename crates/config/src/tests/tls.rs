//! TLS and HTTP/2: `[[server.tls]]` listeners and their certificates (loaded, key-matched,
//! expiry warnings), `redirect_https`, listener clashes, the `http2*` keys, and upstream TLS
//! (`https://` servers, `tls = true`, the `tls_*` keys, `http2`, `tunnel_idle_timeout`).
//! Certificates are made for each test with rcgen and written to a temporary directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rcgen::{CertificateParams, DistinguishedName, DnType, IsCa, KeyPair};
use time::OffsetDateTime;

use super::{TAIL, at, diags, ok, one_error};
use crate::*;

const DAY: Duration = Duration::from_secs(24 * 3600);

/// A directory of PEM files for one test, removed when dropped.
struct Dir(PathBuf);

impl Dir {
    fn new(test: &str) -> Dir {
        let path = std::env::temp_dir().join(format!(
            "gatehouse-config-tls-{}-{test}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        Dir(path)
    }

    /// Writes `contents` to `name` in the directory; returns the full path as TOML-ready text.
    fn write(&self, name: &str, contents: &str) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path.display().to_string()
    }

    /// Writes `cert` as NAME.pem and its key as NAME.key; returns both paths.
    fn pair(&self, name: &str, cert: &Cert) -> (String, String) {
        (
            self.write(&format!("{name}.pem"), &cert.cert_pem),
            self.write(&format!("{name}.key"), &cert.key_pem),
        )
    }

    fn path(&self, name: &str) -> String {
        self.0.join(name).display().to_string()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A self-signed certificate and its key, PEM.
struct Cert {
    cert_pem: String,
    key_pem: String,
}

/// A certificate for `names` (subjectAltName DNS names; none = no SAN at all) with
/// `CN=<cn>`, valid from yesterday until `not_after`.
fn make_cert(cn: &str, names: &[&str], not_after: OffsetDateTime) -> Cert {
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let mut params = CertificateParams::new(names).unwrap_or_else(|e| panic!("params: {e}"));
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    params.distinguished_name = dn;
    params.not_before = OffsetDateTime::now_utc() - DAY;
    params.not_after = not_after;
    let key = KeyPair::generate().unwrap_or_else(|e| panic!("key: {e}"));
    let cert = params
        .self_signed(&key)
        .unwrap_or_else(|e| panic!("certificate: {e}"));
    Cert {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

/// A certificate for `names`, valid for a year.
fn valid(names: &[&str]) -> Cert {
    make_cert(names[0], names, OffsetDateTime::now_utc() + DAY * 365)
}

/// A CA certificate (for `tls_ca_file`), PEM.
fn ca_pem() -> String {
    let mut params =
        CertificateParams::new(Vec::<String>::new()).unwrap_or_else(|e| panic!("params: {e}"));
    params
        .distinguished_name
        .push(DnType::CommonName, "test internal CA");
    params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let key = KeyPair::generate().unwrap_or_else(|e| panic!("key: {e}"));
    params
        .self_signed(&key)
        .unwrap_or_else(|e| panic!("CA: {e}"))
        .pem()
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

/// A `[[server.tls]]` on 127.0.0.1:8443 with one certificate, then [`TAIL`].
fn one_listener(cert: &str, key: &str) -> String {
    format!(
        "[[server.tls]]\nlisten = [\"127.0.0.1:8443\"]\ncert = \"{cert}\"\nkey = \"{key}\"\n{TAIL}"
    )
}

// === [[server.tls]]: certificates loaded ===

#[test]
fn a_listener_with_two_certificates_loads_names_subjects_and_dates() {
    let dir = Dir::new("two");
    // 2031-01-01T00:00:00Z: a fixed notAfter to compare with.
    let end =
        OffsetDateTime::from_unix_timestamp(1_924_992_000).unwrap_or_else(|e| panic!("date: {e}"));
    let (a_cert, a_key) = dir.pair(
        "a",
        &make_cert("a.example.com", &["A.example.com", "*.a.example.com"], end),
    );
    // No subjectAltName: the CN is the name SNI selects it by.
    let (b_cert, b_key) = dir.pair("b", &make_cert("b.example.com", &[], end));
    let loaded = ok(&format!(
        "[server]\nlisten = [\"127.0.0.1:8080\"]\nredirect_https = [\"127.0.0.1:8081\"]\n\
         [[server.tls]]\nlisten = [\"127.0.0.1:8443\", \"[::1]:8443\"]\ncert = \"{a_cert}\"\nkey = \"{a_key}\"\n\
         certificates = [{{ cert = \"{b_cert}\", key = \"{b_key}\" }}]\n{TAIL}"
    ));
    assert!(loaded.warnings.is_empty(), "{:#?}", loaded.warnings);
    let s = &loaded.config.server;
    assert_eq!(s.redirect_https, vec![addr("127.0.0.1:8081")]);
    assert_eq!(s.tls.len(), 1);
    let l = &s.tls[0];
    assert_eq!(l.listen, vec![addr("127.0.0.1:8443"), addr("[::1]:8443")]);
    assert_eq!(l.min_version, TlsVersion::Tls12);
    assert_eq!(l.certificates.len(), 2);
    let (a, b) = (&l.certificates[0], &l.certificates[1]);
    assert_eq!(a.names, ["a.example.com", "*.a.example.com"]);
    assert_eq!(a.subject, "CN=a.example.com");
    assert_eq!(
        a.not_after,
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_924_992_000)
    );
    assert_eq!(a.cert_path, PathBuf::from(&a_cert));
    assert_eq!(a.key_path, PathBuf::from(&a_key));
    assert_eq!(a.chain.len(), 1);
    assert_eq!(b.names, ["b.example.com"]);
    assert_eq!(b.subject, "CN=b.example.com");
    assert_eq!(b.cert_path, PathBuf::from(&b_cert));
}

#[test]
fn the_long_form_of_certificates_and_min_version_1_3() {
    let dir = Dir::new("long");
    let (a_cert, a_key) = dir.pair("a", &valid(&["a.example.com"]));
    let (b_cert, b_key) = dir.pair("b", &valid(&["b.example.com"]));
    // Only `certificates`, written as an array of tables.
    let c = ok(&format!(
        "[[server.tls]]\nlisten = [\"127.0.0.1:8443\"]\nmin_version = \"1.3\"\n\
         [[server.tls.certificates]]\ncert = \"{a_cert}\"\nkey = \"{a_key}\"\n\
         [[server.tls.certificates]]\ncert = \"{b_cert}\"\nkey = \"{b_key}\"\n{TAIL}"
    ))
    .config;
    let l = &c.server.tls[0];
    assert_eq!(l.min_version, TlsVersion::Tls13);
    let names: Vec<_> = l.certificates.iter().map(|c| c.names[0].as_str()).collect();
    assert_eq!(names, ["a.example.com", "b.example.com"]);
}

#[test]
fn relative_paths_are_relative_to_the_config_file() {
    let dir = Dir::new("relative");
    dir.pair("site", &valid(&["example.com"]));
    let config = dir.write("gatehouse.toml", &one_listener("site.pem", "site.key"));
    let loaded = load(Path::new(&config)).unwrap_or_else(|e| panic!("{e}"));
    let cert = &loaded.config.server.tls[0].certificates[0];
    assert_eq!(cert.cert_path, dir.0.join("site.pem"));
    assert_eq!(cert.key_path, dir.0.join("site.key"));
}

#[test]
fn one_file_may_hold_the_chain_and_the_key() {
    let dir = Dir::new("combined");
    let c = valid(&["example.com"]);
    let both = dir.write("both.pem", &format!("{}{}", c.cert_pem, c.key_pem));
    let loaded = ok(&one_listener(&both, &both));
    assert_eq!(
        loaded.config.server.tls[0].certificates[0].names,
        ["example.com"]
    );
}

#[test]
fn min_version_must_be_1_2_or_1_3() {
    let dir = Dir::new("minversion");
    let (cert, key) = dir.pair("a", &valid(&["example.com"]));
    let d = one_error(&format!(
        "[[server.tls]]\nlisten = [\"127.0.0.1:8443\"]\ncert = \"{cert}\"\nkey = \"{key}\"\nmin_version = \"1.1\"\n{TAIL}"
    ));
    at(
        &d,
        5,
        15,
        "server.tls[0].min_version",
        "\"1.1\" is not one of \"1.2\", \"1.3\"",
    );
}

// === [[server.tls]]: certificate problems, each at its line ===

#[test]
fn a_missing_certificate_file_names_the_file_at_its_line() {
    let dir = Dir::new("missing");
    let (_, key) = dir.pair("a", &valid(&["example.com"]));
    let missing = dir.path("nope.pem");
    let d = one_error(&one_listener(&missing, &key));
    at(
        &d,
        3,
        8,
        "server.tls[0].cert",
        &format!("cannot read {missing}"),
    );
    assert!(d.message.contains("No such file"), "{d}");
    assert!(d.fix.contains("relative to the config file"), "{d}");
}

#[test]
fn a_device_without_end_is_refused_not_read_forever() {
    // Its metadata says 0 bytes; only a bounded read can tell it is too large.
    let dir = Dir::new("device");
    let (_, key) = dir.pair("a", &valid(&["example.com"]));
    let d = one_error(&one_listener("/dev/zero", &key));
    at(
        &d,
        3,
        8,
        "server.tls[0].cert",
        "/dev/zero is more than 1048576 bytes",
    );
}

#[test]
fn a_key_that_does_not_match_the_certificate_is_an_error_at_the_key_line() {
    let dir = Dir::new("mismatch");
    let (cert, _) = dir.pair("a", &valid(&["example.com"]));
    let (_, other_key) = dir.pair("b", &valid(&["example.com"]));
    let d = one_error(&one_listener(&cert, &other_key));
    at(
        &d,
        4,
        7,
        "server.tls[0].key",
        &format!("the key in {other_key} does not match the certificate in {cert}"),
    );
    assert!(d.fix.contains("openssl x509"), "{d}");
}

#[test]
fn a_key_file_without_a_key_is_an_error() {
    let dir = Dir::new("nokey");
    let (cert, _) = dir.pair("a", &valid(&["example.com"]));
    // The certificate given as the key: a common slip.
    let d = one_error(&one_listener(&cert, &cert));
    at(
        &d,
        4,
        7,
        "server.tls[0].key",
        &format!("no private key in {cert}"),
    );
    assert!(d.fix.contains("it holds a certificate"), "{d}");

    let encrypted = dir.write(
        "enc.key",
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
    );
    let d = one_error(&one_listener(&cert, &encrypted));
    at(&d, 4, 7, "server.tls[0].key", "no private key in");
    assert!(d.fix.contains("passphrase"), "{d}");
}

#[test]
fn a_certificate_file_without_a_certificate_is_an_error() {
    let dir = Dir::new("nocert");
    let (_, key) = dir.pair("a", &valid(&["example.com"]));
    let d = one_error(&one_listener(&key, &key));
    at(
        &d,
        3,
        8,
        "server.tls[0].cert",
        &format!("no certificate in {key}"),
    );
    assert!(d.fix.contains("holds a private key"), "{d}");

    let garbage = dir.write(
        "bad.pem",
        "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
    );
    let d = one_error(&one_listener(&garbage, &key));
    at(&d, 3, 8, "server.tls[0].cert", "is not valid PEM");
}

#[test]
fn both_files_broken_are_both_reported() {
    let dir = Dir::new("bothbroken");
    let all = diags(&one_listener(&dir.path("x.pem"), &dir.path("x.key")));
    assert_eq!(all.len(), 2, "{all:#?}");
    at(&all[0], 3, 8, "server.tls[0].cert", "cannot read");
    at(&all[1], 4, 7, "server.tls[0].key", "cannot read");
}

#[test]
fn cert_without_key_and_key_without_cert() {
    let dir = Dir::new("halfpair");
    let (cert, key) = dir.pair("a", &valid(&["example.com"]));
    let d = one_error(&format!(
        "[[server.tls]]\nlisten = [\"127.0.0.1:8443\"]\ncert = \"{cert}\"\n{TAIL}"
    ));
    at(&d, 3, 8, "server.tls[0].cert", "cert without key");
    let d = one_error(&format!(
        "[[server.tls]]\nlisten = [\"127.0.0.1:8443\"]\nkey = \"{key}\"\n{TAIL}"
    ));
    at(&d, 3, 7, "server.tls[0].key", "key without cert");
    // In `certificates` too, with the entry's own key path.
    let d = one_error(&format!(
        "[[server.tls]]\nlisten = [\"127.0.0.1:8443\"]\ncert = \"{cert}\"\nkey = \"{key}\"\n\
         certificates = [{{ cert = \"{cert}\" }}]\n{TAIL}"
    ));
    at(
        &d,
        5,
        26,
        "server.tls[0].certificates[0].cert",
        "cert without key",
    );
}

#[test]
fn a_listener_needs_a_certificate_and_a_listen_address() {
    let d = one_error(&format!(
        "[[server.tls]]\nlisten = [\"127.0.0.1:8443\"]\nmin_version = \"1.3\"\n{TAIL}"
    ));
    assert_eq!((d.line, d.key.as_str()), (1, "server.tls[0].cert"), "{d}");
    assert!(d.message.contains("has no certificate"), "{d}");

    let dir = Dir::new("nolisten");
    let (cert, key) = dir.pair("a", &valid(&["example.com"]));
    let d = one_error(&format!(
        "[[server.tls]]\ncert = \"{cert}\"\nkey = \"{key}\"\n{TAIL}"
    ));
    assert_eq!((d.line, d.key.as_str()), (1, "server.tls[0].listen"), "{d}");
    assert!(d.message.contains("has no `listen`"), "{d}");
    let d = one_error(&format!(
        "[[server.tls]]\nlisten = []\ncert = \"{cert}\"\nkey = \"{key}\"\n{TAIL}"
    ));
    at(&d, 2, 10, "server.tls[0].listen", "no listen address");
}

#[test]
fn server_tls_written_as_one_table_is_refused() {
    let d = one_error(&format!("[server]\ntls = {{ cert = \"a.pem\" }}\n{TAIL}"));
    at(
        &d,
        2,
        7,
        "server.tls",
        "expected an array of tables, found a table",
    );
    assert!(d.fix.contains("[[server.tls]]"), "{d}");
    let dir = Dir::new("unknownkey");
    let (cert, key) = dir.pair("a", &valid(&["example.com"]));
    let d = one_error(&format!(
        "[[server.tls]]\nlisten = [\"127.0.0.1:8443\"]\ncrt = \"a.pem\"\ncert = \"{cert}\"\nkey = \"{key}\"\n{TAIL}"
    ));
    at(&d, 3, 1, "server.tls[0].crt", "unknown key `crt`");
    assert_eq!(d.fix, "did you mean `cert`?");
}

// === expiry ===

#[test]
fn a_certificate_ending_within_14_days_is_a_warning() {
    let dir = Dir::new("soon");
    let (cert, key) = dir.pair(
        "a",
        &make_cert(
            "soon.example.com",
            &["soon.example.com"],
            OffsetDateTime::now_utc() + DAY * 5,
        ),
    );
    let loaded = ok(&one_listener(&cert, &key));
    assert_eq!(loaded.warnings.len(), 1, "{:#?}", loaded.warnings);
    let w = &loaded.warnings[0];
    assert_eq!(w.severity, Severity::Warning);
    at(
        w,
        3,
        8,
        "server.tls[0].cert",
        &format!("the certificate in {cert} (CN=soon.example.com) expires on "),
    );
    assert!(w.message.ends_with(", in 5 days"), "{w}");
    assert!(w.message.contains(" UTC"), "{w}");
    assert!(w.fix.contains("renew"), "{w}");
    // Still taken: the listener serves it.
    assert_eq!(loaded.config.server.tls[0].certificates.len(), 1);
}

#[test]
fn an_expired_certificate_is_a_warning_not_an_error() {
    let dir = Dir::new("expired");
    let (cert, key) = dir.pair(
        "a",
        &make_cert(
            "old.example.com",
            &["old.example.com"],
            OffsetDateTime::now_utc() - DAY * 3,
        ),
    );
    let loaded = ok(&one_listener(&cert, &key));
    assert_eq!(loaded.warnings.len(), 1, "{:#?}", loaded.warnings);
    let w = &loaded.warnings[0];
    at(w, 3, 8, "server.tls[0].cert", "expired on ");
    assert!(w.message.ends_with("; clients will refuse it"), "{w}");
    assert_eq!(loaded.config.server.tls[0].certificates.len(), 1);
}

#[test]
fn a_certificate_valid_for_60_days_is_not_warned_about() {
    let dir = Dir::new("sixty");
    let (cert, key) = dir.pair(
        "a",
        &make_cert(
            "ok.example.com",
            &["ok.example.com"],
            OffsetDateTime::now_utc() + DAY * 60,
        ),
    );
    let loaded = ok(&one_listener(&cert, &key));
    assert!(loaded.warnings.is_empty(), "{:#?}", loaded.warnings);
}

// === names and addresses across listeners ===

#[test]
fn a_name_in_two_certificates_of_one_listener_is_a_warning() {
    let dir = Dir::new("dupname");
    let (a_cert, a_key) = dir.pair("a", &valid(&["example.com", "www.example.com"]));
    let (b_cert, b_key) = dir.pair("b", &valid(&["WWW.example.com"]));
    let loaded = ok(&format!(
        "[[server.tls]]\nlisten = [\"127.0.0.1:8443\"]\ncert = \"{a_cert}\"\nkey = \"{a_key}\"\n\
         certificates = [{{ cert = \"{b_cert}\", key = \"{b_key}\" }}]\n{TAIL}"
    ));
    assert_eq!(loaded.warnings.len(), 1, "{:#?}", loaded.warnings);
    at(
        &loaded.warnings[0],
        5,
        26,
        "server.tls[0].certificates[0].cert",
        &format!(
            "www.example.com is also covered by the certificate in {a_cert} (server.tls[0].cert)"
        ),
    );
}

#[test]
fn listener_addresses_must_not_clash() {
    let dir = Dir::new("clash");
    let (cert, key) = dir.pair("a", &valid(&["example.com"]));
    let pair = format!("cert = \"{cert}\"\nkey = \"{key}\"\n");
    // TLS on the plain listener's address.
    let d = one_error(&format!(
        "[server]\nlisten = [\"127.0.0.1:8080\"]\n[[server.tls]]\nlisten = [\"127.0.0.1:8080\"]\n{pair}{TAIL}"
    ));
    at(
        &d,
        4,
        11,
        "server.tls[0].listen[0]",
        "127.0.0.1:8080 is listed twice (also server.listen[0])",
    );
    // Against the default listen address, which is not written.
    let d = one_error(&format!(
        "[[server.tls]]\nlisten = [\"0.0.0.0:8080\"]\n{pair}{TAIL}"
    ));
    at(
        &d,
        2,
        11,
        "server.tls[0].listen[0]",
        "overlaps the default server.listen (127.0.0.1:8080)",
    );
    // Two TLS listeners on one port.
    let d = one_error(&format!(
        "[[server.tls]]\nlisten = [\"0.0.0.0:443\"]\n{pair}[[server.tls]]\nlisten = [\"127.0.0.1:443\"]\n{pair}{TAIL}"
    ));
    at(
        &d,
        6,
        11,
        "server.tls[1].listen[0]",
        "overlaps server.tls[0].listen[0] (0.0.0.0:443)",
    );
    // A redirect listener on the HTTPS port.
    let d = one_error(&format!(
        "[server]\nredirect_https = [\"127.0.0.1:443\"]\n[[server.tls]]\nlisten = [\"127.0.0.1:443\"]\n{pair}{TAIL}"
    ));
    at(
        &d,
        2,
        19,
        "server.redirect_https[0]",
        "is listed twice (also server.tls[0].listen[0])",
    );
    // The admin listener on a redirect address.
    let d = one_error(&format!(
        "[server]\nredirect_https = [\"127.0.0.1:80\"]\nadmin = \"127.0.0.1:80\"\n{TAIL}"
    ));
    at(
        &d,
        3,
        9,
        "server.admin",
        "clashes with the listen address 127.0.0.1:80 (server.redirect_https[0])",
    );
}

#[test]
fn an_empty_listen_is_fine_when_https_listens() {
    let dir = Dir::new("onlyhttps");
    let (cert, key) = dir.pair("a", &valid(&["example.com"]));
    let c = ok(&format!(
        "[server]\nlisten = []\nredirect_https = [\"0.0.0.0:80\"]\n[[server.tls]]\nlisten = [\"0.0.0.0:443\"]\ncert = \"{cert}\"\nkey = \"{key}\"\n{TAIL}"
    ))
    .config;
    assert!(c.server.listen.is_empty());
    assert_eq!(c.server.redirect_https, vec![addr("0.0.0.0:80")]);
    assert_eq!(c.server.tls[0].listen, vec![addr("0.0.0.0:443")]);
    // A bad redirect address is reported like a listen address.
    let d = one_error(&format!(
        "[server]\nredirect_https = [\"localhost:80\"]\n{TAIL}"
    ));
    at(
        &d,
        2,
        19,
        "server.redirect_https[0]",
        "not an IP address and port",
    );
}

// === [server] http2 ===

#[test]
fn http2_defaults_and_values() {
    let h = ok(TAIL).config.server.http2;
    assert_eq!(
        h,
        Http2Config {
            enabled: true,
            max_concurrent_streams: 128,
            stream_window: 1 << 20,
            connection_window: 2 << 20,
        }
    );
    let h = ok(&format!(
        "[server]\nhttp2_max_concurrent_streams = 10000\nhttp2_stream_window = \"64KiB\"\nhttp2_connection_window = \"64MiB\"\n{TAIL}"
    ))
    .config
    .server
    .http2;
    assert_eq!(
        (
            h.max_concurrent_streams,
            h.stream_window,
            h.connection_window
        ),
        (10000, 64 << 10, 64 << 20)
    );
    // A stream window above 2MiB without a connection window: the connection window follows.
    let h = ok(&format!("[server]\nhttp2_stream_window = \"4MiB\"\n{TAIL}"))
        .config
        .server
        .http2;
    assert_eq!((h.stream_window, h.connection_window), (4 << 20, 4 << 20));
    let loaded = ok(&format!("[server]\nhttp2 = false\n{TAIL}"));
    assert!(!loaded.config.server.http2.enabled);
    assert!(loaded.warnings.is_empty(), "{:#?}", loaded.warnings);
}

#[test]
fn http2_limits_out_of_range_are_refused() {
    for (line, key, part) in [
        (
            "http2_max_concurrent_streams = 0",
            "server.http2_max_concurrent_streams",
            "0 is outside the allowed range 1 to 10000",
        ),
        (
            "http2_max_concurrent_streams = 10001",
            "server.http2_max_concurrent_streams",
            "10001 is outside the allowed range 1 to 10000",
        ),
        (
            "http2_stream_window = \"32KiB\"",
            "server.http2_stream_window",
            "\"32KiB\" is outside the allowed range 64KiB to 16MiB",
        ),
        (
            "http2_stream_window = \"17MiB\"",
            "server.http2_stream_window",
            "outside the allowed range 64KiB to 16MiB",
        ),
        (
            "http2_connection_window = \"65MiB\"",
            "server.http2_connection_window",
            "outside the allowed range 64KiB to 64MiB",
        ),
    ] {
        let d = one_error(&format!("[server]\n{line}\n{TAIL}"));
        let column = line.find('=').unwrap_or_else(|| unreachable!()) + 3;
        at(&d, 2, column, key, part);
    }
    let d = one_error(&format!(
        "[server]\nhttp2_stream_window = \"8MiB\"\nhttp2_connection_window = \"4MiB\"\n{TAIL}"
    ));
    at(
        &d,
        3,
        27,
        "server.http2_connection_window",
        "the connection window (4MiB) is smaller than http2_stream_window (8MiB)",
    );
    // An invalid stream window is reported once, not also compared with the connection window.
    let d = one_error(&format!(
        "[server]\nhttp2_stream_window = \"32MiB\"\nhttp2_connection_window = \"512KiB\"\n{TAIL}"
    ));
    at(
        &d,
        2,
        23,
        "server.http2_stream_window",
        "outside the allowed range",
    );
}

#[test]
fn http2_keys_with_http2_off_are_a_warning() {
    let loaded = ok(&format!(
        "[server]\nhttp2 = false\nhttp2_max_concurrent_streams = 64\n{TAIL}"
    ));
    assert_eq!(loaded.warnings.len(), 1, "{:#?}", loaded.warnings);
    at(
        &loaded.warnings[0],
        3,
        32,
        "server.http2_max_concurrent_streams",
        "has no effect: http2 = false",
    );
}

// === upstream servers over TLS ===

/// One upstream `api` with these lines, routed to.
fn upstream(lines: &str) -> String {
    format!("[[route]]\nupstream = \"api\"\n[upstream.api]\n{lines}")
}

#[test]
fn https_and_http_servers_and_their_default_ports() {
    let c = ok(&upstream(
        "servers = [\"https://API.internal\", \"http://web.internal\", \"https://10.0.0.5:8443\", \"https://[::1]\", \"app.internal:3000\", { address = \"HTTPS://table.internal\", weight = 2 }]\n",
    ))
    .config;
    let got: Vec<(String, bool)> = c.upstreams[0]
        .servers
        .iter()
        .map(|s| (s.address.authority(), s.tls))
        .collect();
    assert_eq!(
        got,
        [
            ("api.internal:443".to_owned(), true),
            ("web.internal:80".to_owned(), false),
            ("10.0.0.5:8443".to_owned(), true),
            ("[::1]:443".to_owned(), true),
            ("app.internal:3000".to_owned(), false),
            ("table.internal:443".to_owned(), true),
        ]
    );
    assert_eq!(c.upstreams[0].servers[5].weight, 2);
    // Nothing about TLS set: verify against the system roots, by each server's host.
    assert_eq!(c.upstreams[0].tls, UpstreamTls::default());
}

#[test]
fn a_server_url_with_a_path_or_another_scheme_is_refused() {
    let d = one_error(&upstream("servers = [\"https://api.internal/v1\"]\n"));
    at(
        &d,
        4,
        12,
        "upstream.api.servers[0]",
        "\"https://api.internal/v1\" has \"/v1\" after the host and port",
    );
    assert!(d.fix.starts_with("write \"https://api.internal\""), "{d}");
    let d = one_error(&upstream(
        "servers = [{ address = \"http://a.internal:80?x=1\" }]\n",
    ));
    at(
        &d,
        4,
        24,
        "upstream.api.servers[0].address",
        "has \"?x=1\" after the host and port",
    );
    let d = one_error(&upstream("servers = [\"ftp://api.internal\"]\n"));
    at(
        &d,
        4,
        12,
        "upstream.api.servers[0]",
        "has the scheme \"ftp\"",
    );
    let d = one_error(&upstream("servers = [\"https://api.internal:0\"]\n"));
    at(
        &d,
        4,
        12,
        "upstream.api.servers[0]",
        "\"https://api.internal:0\" has port 0",
    );
    let d = one_error(&upstream("servers = [\"https://::1\"]\n"));
    assert_eq!(d.fix, "write \"https://[::1]\"", "{d}");
}

#[test]
fn tls_true_puts_every_server_on_tls() {
    let c = ok(&upstream(
        "servers = [\"10.0.0.5:8443\", \"https://b.internal\"]\ntls = true\n",
    ))
    .config;
    assert!(c.upstreams[0].servers.iter().all(|s| s.tls));
    // A server written http:// contradicts it.
    let d = one_error(&upstream(
        "servers = [\"10.0.0.5:8443\", \"http://b.internal:8080\"]\ntls = true\n",
    ));
    at(
        &d,
        4,
        29,
        "upstream.api.servers[1]",
        "http://b.internal:8080 asks for plain HTTP, but this upstream has tls = true",
    );
    let d = one_error(&upstream("servers = [\"http://b.internal\"]\ntls = true\n"));
    assert!(d.message.starts_with("http://b.internal asks"), "{d}");
    assert!(d.fix.starts_with("write \"https://b.internal\""), "{d}");
}

#[test]
fn tls_keys_without_a_tls_server_are_a_warning() {
    let loaded = ok(&upstream(
        "servers = [\"10.0.0.5:3000\"]\ntls_server_name = \"api.internal\"\n",
    ));
    assert_eq!(loaded.warnings.len(), 1, "{:#?}", loaded.warnings);
    let w = &loaded.warnings[0];
    at(
        w,
        5,
        19,
        "upstream.api.tls_server_name",
        "tls_server_name has no effect: no server of this upstream uses TLS",
    );
    assert_eq!(w.fix, "write servers as https://… or set tls = true");
    // tls = false is the same as leaving it out.
    let loaded = ok(&upstream(
        "servers = [\"http://a.internal\"]\ntls = false\ntls_server_name = \"api.internal\"\n",
    ));
    assert_eq!(loaded.warnings.len(), 1, "{:#?}", loaded.warnings);
    // With a TLS server, no warning.
    let loaded = ok(&upstream(
        "servers = [\"10.0.0.5:3000\", \"https://a.internal\"]\ntls_server_name = \"API.internal\"\n",
    ));
    assert!(loaded.warnings.is_empty(), "{:#?}", loaded.warnings);
    assert_eq!(
        loaded.config.upstreams[0].tls.server_name.as_deref(),
        Some("api.internal")
    );
}

#[test]
fn tls_server_name_must_be_a_name_or_an_ip() {
    for (value, part) in [
        ("*.internal", "is a wildcard"),
        ("api.internal:443", "has a port"),
        ("api internal", "is not a DNS name or IP address"),
        ("", "the server name is empty"),
    ] {
        let d = one_error(&upstream(&format!(
            "servers = [\"https://a.internal\"]\ntls_server_name = \"{value}\"\n"
        )));
        at(&d, 5, 19, "upstream.api.tls_server_name", part);
    }
    let c = ok(&upstream(
        "servers = [\"https://a.internal\"]\ntls_server_name = \"[::1]\"\n",
    ))
    .config;
    assert_eq!(c.upstreams[0].tls.server_name.as_deref(), Some("::1"));
}

#[test]
fn tls_ca_file_is_read_at_load() {
    let dir = Dir::new("ca");
    let ca = dir.write("ca.pem", &format!("{}{}", ca_pem(), ca_pem()));
    let c = ok(&upstream(&format!(
        "servers = [\"https://a.internal\"]\ntls_ca_file = \"{ca}\"\n"
    )))
    .config;
    let bundle = c.upstreams[0]
        .tls
        .ca
        .as_ref()
        .unwrap_or_else(|| panic!("no CA bundle"));
    assert_eq!(bundle.path, PathBuf::from(&ca));
    assert_eq!(bundle.certs.len(), 2);

    let missing = dir.path("missing.pem");
    let d = one_error(&upstream(&format!(
        "servers = [\"https://a.internal\"]\ntls_ca_file = \"{missing}\"\n"
    )));
    at(
        &d,
        5,
        15,
        "upstream.api.tls_ca_file",
        &format!("cannot read {missing}"),
    );
    let empty = dir.write("empty.pem", "");
    let d = one_error(&upstream(&format!(
        "servers = [\"https://a.internal\"]\ntls_ca_file = \"{empty}\"\n"
    )));
    at(
        &d,
        5,
        15,
        "upstream.api.tls_ca_file",
        &format!("no certificate in {empty}"),
    );
    let key_only = dir.write("key.pem", &valid(&["a.internal"]).key_pem);
    let d = one_error(&upstream(&format!(
        "servers = [\"https://a.internal\"]\ntls_ca_file = \"{key_only}\"\n"
    )));
    at(
        &d,
        5,
        15,
        "upstream.api.tls_ca_file",
        "(it holds a private key)",
    );
}

#[test]
fn a_client_certificate_is_loaded_and_checked_like_a_listener_certificate() {
    let dir = Dir::new("client");
    let (cert, key) = dir.pair("client", &valid(&["gatehouse.client"]));
    let c = ok(&upstream(&format!(
        "servers = [\"https://a.internal\"]\ntls_client_cert = \"{cert}\"\ntls_client_key = \"{key}\"\n"
    )))
    .config;
    let client = c.upstreams[0]
        .tls
        .client_cert
        .as_ref()
        .unwrap_or_else(|| panic!("no client certificate"));
    assert_eq!(client.names, ["gatehouse.client"]);
    assert_eq!(client.key_path, PathBuf::from(&key));

    let d = one_error(&upstream(&format!(
        "servers = [\"https://a.internal\"]\ntls_client_cert = \"{cert}\"\n"
    )));
    at(
        &d,
        5,
        19,
        "upstream.api.tls_client_cert",
        "tls_client_cert without tls_client_key",
    );
    let d = one_error(&upstream(&format!(
        "servers = [\"https://a.internal\"]\ntls_client_key = \"{key}\"\n"
    )));
    at(
        &d,
        5,
        18,
        "upstream.api.tls_client_key",
        "tls_client_key without tls_client_cert",
    );
    let (_, other_key) = dir.pair("other", &valid(&["other.client"]));
    let d = one_error(&upstream(&format!(
        "servers = [\"https://a.internal\"]\ntls_client_cert = \"{cert}\"\ntls_client_key = \"{other_key}\"\n"
    )));
    at(
        &d,
        6,
        18,
        "upstream.api.tls_client_key",
        &format!("the key in {other_key} does not match the certificate in {cert}"),
    );
    // An expiring client certificate is warned about like a listener's.
    let (soon_cert, soon_key) = dir.pair(
        "soon",
        &make_cert(
            "soon.client",
            &["soon.client"],
            OffsetDateTime::now_utc() + DAY * 3,
        ),
    );
    let loaded = ok(&upstream(&format!(
        "servers = [\"https://a.internal\"]\ntls_client_cert = \"{soon_cert}\"\ntls_client_key = \"{soon_key}\"\n"
    )));
    assert_eq!(loaded.warnings.len(), 1, "{:#?}", loaded.warnings);
    at(
        &loaded.warnings[0],
        5,
        19,
        "upstream.api.tls_client_cert",
        "expires on",
    );
    assert!(
        loaded.warnings[0].message.ends_with("in 3 days"),
        "{}",
        loaded.warnings[0]
    );
}

#[test]
fn upstream_http2_and_tunnel_idle_timeout() {
    let u = &ok(TAIL).config.upstreams[0];
    assert!(!u.http2);
    assert_eq!(u.tunnel_idle_timeout, Duration::from_secs(300));
    let u = &ok(&upstream(
        "servers = [\"https://a.internal\"]\nhttp2 = true\ntunnel_idle_timeout = \"1h\"\n",
    ))
    .config
    .upstreams[0];
    assert!(u.http2);
    assert_eq!(u.tunnel_idle_timeout, Duration::from_secs(3600));
    let d = one_error(&upstream(
        "servers = [\"a.internal:80\"]\ntunnel_idle_timeout = \"0s\"\n",
    ));
    at(&d, 5, 23, "upstream.api.tunnel_idle_timeout", "is zero");
}

// === the documentation ===

#[test]
fn the_documented_tls_examples_use_only_known_keys() {
    // docs/configuration.md's TLS examples name files that do not exist here: not being able to
    // read them must be the only problem, so every key and value in them is right.
    const DOC: &str = include_str!("../../../../docs/configuration.md");
    let routes = "[[route]]\npath = \"/pay\"\nupstream = \"payments\"\n\
                  [[route]]\npath = \"/ledger\"\nupstream = \"ledger\"\n";
    for (heading, tail, unreadable) in [
        ("## `[[server.tls]]`", TAIL, 4),
        ("### TLS to servers", routes, 3),
    ] {
        let block = DOC
            .split(heading)
            .nth(1)
            .and_then(|rest| rest.split("```toml\n").nth(1))
            .and_then(|block| block.split("```").next())
            .unwrap_or_else(|| panic!("docs/configuration.md has no toml block under {heading}"));
        let all = diags(&format!("{block}{tail}"));
        assert_eq!(all.len(), unreadable, "{heading}: {all:#?}");
        for d in &all {
            assert!(
                d.is_error() && d.message.starts_with("cannot read /etc/gatehouse/"),
                "{heading}: {d}"
            );
        }
    }
}
