//! The `tls_*` keys of `[upstream.NAME]`: the server name, the CA bundle, the client certificate.

use std::path::Path;
use toml::Spanned;

use super::pem::{certificate, certificates_in, contains, read_pem};
use crate::diag::Sink;
use crate::model::{CaBundle, UpstreamTls};
use crate::raw::RawUpstream;

/// The `tls_*` keys of one upstream. `uses_tls`: whether any of its servers is reached over TLS
/// (else each key set is a warning: it would silently do nothing).
pub(in crate::validate) fn upstream_tls(
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
        super::super::fields::parse_at(
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
