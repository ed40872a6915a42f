//! The words of the TLS verdicts: which certificate failed and why, which alert the server
//! sent and what it means, a port that speaks plain HTTP, and a TLS client configuration that
//! cannot be built; each fix names the `tls_*` key (or the server) to change.

use std::time::SystemTime;

use gatehouse_proxy::failure::{Failure, FailureKind};

use crate::doctor::check::{Facts, TlsDiagnosis};
use crate::probe::tlsdiag::{self, CertProblem};

/// The three TLS kinds: which certificate and why, which alert and what it means, or that the
/// port speaks plain HTTP; each fix names the `tls_*` key (or the server) to change.
pub(super) fn tls_explain(
    failure: &Failure,
    facts: &Facts,
    tls: &TlsDiagnosis,
    at: &str,
) -> (String, String) {
    let pool = &facts.pool;
    let name = &tls.server_name;
    let name_source = if tls.name_configured {
        format!("upstream.{pool}.tls_server_name")
    } else {
        "the server's host as written; tls_server_name is not set".to_owned()
    };
    match failure.kind {
        FailureKind::TlsCertificateError => {
            let Some(inspection) = &tls.inspection else {
                return (
                    failure.details.clone(),
                    format!(
                        "check the certificate of {at}: it must be current, issued by a CA in upstream.{pool}.tls_ca_file (or the system's roots), and valid for {name} (upstream.{pool}.tls_server_name)"
                    ),
                );
            };
            let cert = inspection.certificate.as_ref();
            let Some(problem) = &inspection.problem else {
                // It verified the second time: the first failure came and went.
                return (
                    format!(
                        "{} (a second handshake verified the certificate: it may have just been replaced)",
                        failure.details
                    ),
                    "run the doctor again; if it comes back, compare the certificates of the backend's instances".to_owned(),
                );
            };
            let words = problem.words(cert, SystemTime::now());
            match problem {
                CertProblem::Expired { .. } => (
                    words,
                    format!(
                        "renew the certificate on the server at {at} (and have the renewal reload it); until then every request routed here gets 502"
                    ),
                ),
                CertProblem::NotYetValid { .. } => (
                    words,
                    "check the clocks of this host and the server (NTP), or reissue the certificate with a start date in the past".to_owned(),
                ),
                CertProblem::UnknownIssuer => {
                    let issuer = cert.map_or_else(
                        || "the CA that issued it".to_owned(),
                        |c| format!("the CA that issued it ({})", c.issuer),
                    );
                    let cause = match &tls.ca_file {
                        Some(path) => format!(
                            "{words}: upstream.{pool}.tls_ca_file ({}) does not hold it",
                            path.display()
                        ),
                        None => format!(
                            "{words}: without tls_ca_file gatehouse trusts the system's roots only"
                        ),
                    };
                    let fix = match &tls.ca_file {
                        Some(path) => format!(
                            "put {issuer} in upstream.{pool}.tls_ca_file ({}), or point tls_ca_file at the bundle that has it",
                            path.display()
                        ),
                        None => format!(
                            "set upstream.{pool}.tls_ca_file to a PEM file with {issuer}"
                        ),
                    };
                    (cause, fix)
                }
                CertProblem::WrongName { presented, .. } => {
                    let cause = format!("{words} ({name_source})");
                    let fix = match presented.first() {
                        Some(covered) => format!(
                            "set upstream.{pool}.tls_server_name to a name the certificate covers (e.g. {covered}), or reissue the certificate for {name}"
                        ),
                        None => format!(
                            "set upstream.{pool}.tls_server_name to the name the certificate was issued for, or reissue it for {name}"
                        ),
                    };
                    (cause, fix)
                }
                CertProblem::WrongPurpose | CertProblem::Revoked | CertProblem::Other(_) => (
                    words,
                    format!("replace the certificate on the server at {at}"),
                ),
            }
        }
        FailureKind::TlsAlertReceived => {
            let alert = failure
                .params
                .alert_message
                .as_deref()
                .unwrap_or("an alert");
            let meaning = tlsdiag::alert_meaning(alert);
            let cause = match meaning {
                Some(meaning) => format!("{at} sent the TLS alert {alert}: {meaning}"),
                None => failure.details.clone(),
            };
            let client_cert = tls.client_cert.as_ref().map(|p| p.display().to_string());
            let fix = match (alert, &client_cert) {
                ("certificate_required", None) => format!(
                    "set upstream.{pool}.tls_client_cert and tls_client_key to a certificate the server trusts"
                ),
                ("handshake_failure", None) => format!(
                    "if the server requires a client certificate, set upstream.{pool}.tls_client_cert and tls_client_key; otherwise enable TLS 1.2 or 1.3 with current cipher suites on the server"
                ),
                (
                    "certificate_required"
                    | "handshake_failure"
                    | "bad_certificate"
                    | "unsupported_certificate"
                    | "certificate_unknown"
                    | "unknown_ca"
                    | "certificate_expired"
                    | "certificate_revoked"
                    | "access_denied",
                    Some(path),
                ) => format!(
                    "check upstream.{pool}.tls_client_cert ({path}): the server must trust its CA, and it must be current"
                ),
                ("unrecognized_name", _) => format!(
                    "set upstream.{pool}.tls_server_name to a name the server has a certificate for ({name} is not one)"
                ),
                ("no_application_protocol", _) => format!(
                    "the server accepts none of {}: enable HTTP/1.1 on it, or set upstream.{pool}.http2 to match what it speaks",
                    tls.alpn_offered.join(", ")
                ),
                ("protocol_version" | "insufficient_security", _) => {
                    "enable TLS 1.2 or 1.3 with current cipher suites on the server".to_owned()
                }
                _ => format!("see the server's TLS logs for why it sent {alert}"),
            };
            (cause, fix)
        }
        _ => {
            let servers_key = format!("upstream.{pool}.servers");
            if let Some(status) = tls.plain_http_status {
                (
                    format!(
                        "{at} speaks plain HTTP, not TLS: it answered a plain HTTP request with {status}"
                    ),
                    format!(
                        "the port speaks plain HTTP: write the server as host:port without https:// in {servers_key} (and without tls = true), or fix the port"
                    ),
                )
            } else if tls.timed_out {
                (
                    format!(
                        "{at} accepted the connection but did not complete a TLS handshake within connect_timeout: {}",
                        failure.details
                    ),
                    format!(
                        "check that the port in {servers_key} is the backend's TLS port and that the backend is not hung; raise upstream.{pool}.connect_timeout only if it is merely slow"
                    ),
                )
            } else {
                (
                    format!(
                        "{at} does not complete a TLS handshake: {}",
                        failure.details
                    ),
                    format!(
                        "check that the port in {servers_key} is the backend's TLS port (drop https:// if it speaks plain HTTP) and that it speaks TLS 1.2 or 1.3"
                    ),
                )
            }
        }
    }
}

/// The pool's TLS client configuration cannot be built: the fix is in the config.
pub(super) fn tls_config_explain(facts: &Facts) -> (String, String) {
    let pool = &facts.pool;
    let why = facts
        .tls
        .as_ref()
        .and_then(|t| t.config_error.as_deref())
        .unwrap_or("unknown");
    let keys = match &facts.tls {
        Some(TlsDiagnosis {
            ca_file: Some(path),
            ..
        }) if why.contains(&path.display().to_string()) => format!(
            "replace upstream.{pool}.tls_ca_file ({}) with a PEM file of CA certificates",
            path.display()
        ),
        Some(TlsDiagnosis {
            client_cert: Some(path),
            ..
        }) if why.contains(&path.display().to_string()) => format!(
            "fix upstream.{pool}.tls_client_cert ({}) and tls_client_key: a certificate chain and its own private key",
            path.display()
        ),
        _ => format!("fix upstream.{pool}'s tls_ca_file, tls_client_cert and tls_client_key"),
    };
    (
        format!(
            "the TLS settings of upstream {pool} are unusable, so no request routed here can connect: {why}"
        ),
        keys,
    )
}
