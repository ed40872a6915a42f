//! TLS towards an upstream (or any server `gatehouse probe` checks): the rustls client
//! configuration, the handshake within a deadline, and its failures classified into the three
//! RFC 9209 kinds.
//!
//! rustls reports handshake failures as an `io::Error` wrapping a [`rustls::Error`]; the variant
//! tells the kinds apart: a certificate that does not verify is `tls_certificate_error` (the reason,
//! e.g. "expired" or "not valid for name", goes in `details`), an alert from the peer is
//! `tls_alert_received` with its id and name, and everything else, including a peer that answers in
//! plain HTTP or hangs up mid-handshake, is `tls_protocol_error`.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::failure::classify::find_cause;
use crate::failure::{Failure, FailureKind, Phase};

/// What a completed handshake negotiated.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TlsFacts {
    /// e.g. `TLSv1.3`.
    pub protocol: String,
    /// e.g. `TLS13_AES_256_GCM_SHA384`.
    pub cipher: String,
    /// The ALPN protocol the server chose, if any.
    pub alpn: Option<String>,
    /// The server certificate's subject, e.g. `CN=example.com`.
    pub subject: Option<String>,
    /// The server certificate's issuer.
    pub issuer: Option<String>,
    /// The server certificate's notAfter, in Unix seconds.
    pub not_after: Option<i64>,
}

/// Subject, issuer and notAfter (Unix seconds) of a DER certificate, when it parses.
pub fn certificate_facts(der: &[u8]) -> Option<(String, String, i64)> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some((
        cert.subject().to_string(),
        cert.issuer().to_string(),
        cert.validity().not_after.timestamp(),
    ))
}

/// The system's trust roots (`/etc/ssl/certs` and friends), plus a description of every
/// certificate that could not be loaded.
pub fn system_roots() -> (RootCertStore, Vec<String>) {
    let found = rustls_native_certs::load_native_certs();
    let mut problems: Vec<String> = found.errors.iter().map(ToString::to_string).collect();
    let mut roots = RootCertStore::empty();
    let (_, ignored) = roots.add_parsable_certificates(found.certs);
    if ignored > 0 {
        problems.push(format!(
            "{ignored} system certificate(s) could not be parsed"
        ));
    }
    (roots, problems)
}

/// The system's trust roots, loaded once per process (reading `/etc/ssl/certs` takes a while).
pub fn cached_system_roots() -> &'static RootCertStore {
    static ROOTS: std::sync::OnceLock<RootCertStore> = std::sync::OnceLock::new();
    ROOTS.get_or_init(|| {
        let (roots, problems) = system_roots();
        for problem in problems {
            tracing::debug!(%problem, "a system trust root could not be loaded");
        }
        roots
    })
}

/// The client configuration for an upstream's TLS servers: its CA file or the system roots,
/// its client certificate (mutual TLS) if any, offering `alpn`.
pub fn upstream_client_config(
    tls: &gatehouse_config::UpstreamTls,
    alpn: &[&[u8]],
) -> Result<Arc<ClientConfig>, String> {
    let roots = match &tls.ca {
        Some(bundle) => {
            let mut roots = RootCertStore::empty();
            for cert in &bundle.certs {
                roots.add(cert.clone()).map_err(|err| {
                    format!(
                        "{}: a certificate is not a usable CA: {err}",
                        bundle.path.display()
                    )
                })?;
            }
            roots
        }
        None => cached_system_roots().clone(),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    let mut config = match &tls.client_cert {
        Some(cert) => builder
            .with_client_auth_cert(cert.chain.clone(), cert.key.clone_key())
            .map_err(|err| format!("{}: {err}", cert.cert_path.display()))?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// A client configuration with safe defaults (TLS 1.2 and 1.3, ring's cipher suites) offering
/// the given ALPN protocols.
pub fn client_config(roots: RootCertStore, alpn: &[&[u8]]) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// The TLS handshake over a connected stream, within `timeout`.
pub async fn handshake(
    stream: TcpStream,
    server_name: &str,
    config: Arc<ClientConfig>,
    timeout: Duration,
) -> Result<(TlsStream<TcpStream>, TlsFacts), Failure> {
    let name = ServerName::try_from(server_name.to_owned()).map_err(|err| {
        Failure::new(
            FailureKind::TlsProtocolError,
            Phase::Connecting,
            format!("{server_name:?} cannot be sent as a TLS server name: {err}"),
        )
    })?;
    let connector = TlsConnector::from(config);
    let stream = match tokio::time::timeout(timeout, connector.connect(name, stream)).await {
        Err(_) => {
            return Err(Failure::new(
                FailureKind::TlsProtocolError,
                Phase::Connecting,
                format!("the TLS handshake with {server_name} did not complete within {timeout:?}"),
            ));
        }
        Ok(Err(err)) => return Err(classify_handshake_error(server_name, &err)),
        Ok(Ok(stream)) => stream,
    };
    let (_, session) = stream.get_ref();
    let leaf = session
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(|der| certificate_facts(der));
    let (subject, issuer, not_after) = match leaf {
        Some((subject, issuer, not_after)) => (Some(subject), Some(issuer), Some(not_after)),
        None => (None, None, None),
    };
    let facts = TlsFacts {
        subject,
        issuer,
        not_after,
        protocol: session
            .protocol_version()
            .and_then(|v| v.as_str())
            .unwrap_or("unknown")
            .to_owned(),
        cipher: session
            .negotiated_cipher_suite()
            .and_then(|s| s.suite().as_str())
            .unwrap_or("unknown")
            .to_owned(),
        alpn: session
            .alpn_protocol()
            .map(|p| String::from_utf8_lossy(p).into_owned()),
    };
    Ok((stream, facts))
}

/// A failed handshake as one of the TLS kinds.
pub fn classify_handshake_error(server_name: &str, err: &io::Error) -> Failure {
    let Some(tls) = find_cause::<rustls::Error>(err) else {
        // Not a TLS-level error: the peer closed or reset the connection mid-handshake, which is
        // what a server that does not speak TLS usually does.
        let why = match err.kind() {
            io::ErrorKind::UnexpectedEof => {
                "the server closed the connection during the TLS handshake".to_owned()
            }
            _ => format!("the TLS handshake failed: {err}"),
        };
        return Failure::new(
            FailureKind::TlsProtocolError,
            Phase::Connecting,
            format!("{why} ({server_name})"),
        )
        .with_os_error(err);
    };
    match tls {
        rustls::Error::InvalidCertificate(reason) => Failure::new(
            FailureKind::TlsCertificateError,
            Phase::Connecting,
            format!("the certificate of {server_name} does not verify: {reason}"),
        ),
        rustls::Error::AlertReceived(alert) => {
            let mut failure = Failure::new(
                FailureKind::TlsAlertReceived,
                Phase::Connecting,
                format!("{server_name} sent the TLS alert {alert:?}"),
            );
            failure.params.alert_id = Some(u8::from(*alert));
            failure.params.alert_message = Some(snake_case(&format!("{alert:?}")));
            failure
        }
        rustls::Error::InvalidMessage(_) => Failure::new(
            FailureKind::TlsProtocolError,
            Phase::Connecting,
            format!(
                "{server_name} did not answer with TLS ({tls}): the port probably speaks plain HTTP"
            ),
        ),
        other => Failure::new(
            FailureKind::TlsProtocolError,
            Phase::Connecting,
            format!("the TLS handshake with {server_name} failed: {other}"),
        ),
    }
}

/// `HandshakeFailure` → `handshake_failure`, the alert's name in RFC 8446 §6.
fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_names_are_rfc_style() {
        assert_eq!(snake_case("HandshakeFailure"), "handshake_failure");
        assert_eq!(snake_case("BadCertificate"), "bad_certificate");
    }

    #[test]
    fn rustls_errors_map_to_the_three_kinds() {
        let wrap = |e: rustls::Error| io::Error::new(io::ErrorKind::InvalidData, e);
        let expired = wrap(rustls::Error::InvalidCertificate(
            rustls::CertificateError::Expired,
        ));
        assert_eq!(
            classify_handshake_error("a", &expired).kind,
            FailureKind::TlsCertificateError
        );
        let alert = classify_handshake_error(
            "a",
            &wrap(rustls::Error::AlertReceived(
                rustls::AlertDescription::HandshakeFailure,
            )),
        );
        assert_eq!(alert.kind, FailureKind::TlsAlertReceived);
        assert_eq!(alert.params.alert_id, Some(40));
        assert_eq!(
            alert.params.alert_message.as_deref(),
            Some("handshake_failure")
        );
        let eof = io::Error::new(io::ErrorKind::UnexpectedEof, "eof");
        assert_eq!(
            classify_handshake_error("a", &eof).kind,
            FailureKind::TlsProtocolError
        );
    }

    /// A plain-HTTP server behind an https URL: the handshake fails as tls_protocol_error.
    #[tokio::test]
    async fn plain_http_port_is_a_protocol_error() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("bind: {e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        tokio::spawn(async move {
            if let Ok((mut stream, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let _ = stream.read(&mut buf).await;
                let _ = stream
                    .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                    .await;
            }
        });
        let stream = TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let config =
            client_config(RootCertStore::empty(), &[b"http/1.1"]).unwrap_or_else(|e| panic!("{e}"));
        let failure = handshake(stream, "localhost", config, Duration::from_secs(5))
            .await
            .err()
            .unwrap_or_else(|| panic!("a plain HTTP server cannot complete a handshake"));
        assert_eq!(failure.kind, FailureKind::TlsProtocolError, "{failure}");
    }
}
