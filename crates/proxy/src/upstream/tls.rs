//! TLS towards an upstream (or any server `gatehouse probe` checks): the rustls client
//! configuration, the handshake within a deadline, and its failures classified into the three
//! RFC 9209 kinds.
//!
//! rustls reports handshake failures as an `io::Error` wrapping a [`rustls::Error`]; the variant
//! tells the kinds apart: a certificate that does not verify is `tls_certificate_error` (the reason,
//! e.g. "expired" or "not valid for name", goes in `details`), an alert from the peer is
//! `tls_alert_received` with its id and name, and everything else, including a peer that answers in
//! plain HTTP or hangs up mid-handshake, is `tls_protocol_error`.
//!
//! In TLS 1.3 the server judges a client certificate only after the client's last handshake
//! message, so from the client's side the handshake "succeeds" and the rejection (an alert such
//! as `certificate_required`) arrives with the first read. When the server asked for a client
//! certificate, [`handshake`] therefore waits briefly for the server's verdict (its session
//! tickets, first bytes, or the alert), so that a rejected certificate is a `tls_alert_received`
//! while connecting (retryable, nothing sent) rather than a connection closed mid-request.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rustls::client::ResolvesClientCert;
use rustls::pki_types::ServerName;
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, ProtocolVersion, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;
use tokio::time::Instant;
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

/// ALPN protocol ids.
pub const ALPN_H2: &[u8] = b"h2";
pub const ALPN_HTTP11: &[u8] = b"http/1.1";

/// The client configurations of one upstream pool, built once per pool (per config snapshot):
/// loading roots and keys per connection would cost more than the handshake.
#[derive(Debug)]
pub struct TlsClients {
    /// Offers ALPN `http/1.1` only: HTTP/1.1 pools and upgrade (WebSocket) connections.
    pub http1: Arc<ClientConfig>,
    /// Offers ALPN `h2`, then `http/1.1`: pooled connections of an `http2` upstream.
    pub http2: Option<Arc<ClientConfig>>,
}

impl TlsClients {
    pub fn new(tls: &gatehouse_config::UpstreamTls, http2: bool) -> Result<Self, String> {
        let http1 = upstream_client_config(tls, &[ALPN_HTTP11])?;
        let http2 = http2.then(|| {
            // Same roots and key, another ALPN list: a clone shares the verifier and the
            // session cache.
            let mut config = (*http1).clone();
            config.alpn_protocols = vec![ALPN_H2.to_vec(), ALPN_HTTP11.to_vec()];
            Arc::new(config)
        });
        Ok(Self { http1, http2 })
    }

    /// The configuration for a connection that may (`want_h2`) or may not speak HTTP/2.
    pub fn config(&self, want_h2: bool) -> &Arc<ClientConfig> {
        match (&self.http2, want_h2) {
            (Some(http2), true) => http2,
            _ => &self.http1,
        }
    }
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

/// The TLS handshake over a connected stream, within `timeout`. `server_name` is sent as SNI
/// and verified against the certificate; an IP literal is verified as an address (no SNI).
pub async fn handshake(
    stream: TcpStream,
    server_name: &str,
    config: Arc<ClientConfig>,
    timeout: Duration,
) -> Result<(TlsStream<TcpStream>, TlsFacts), Failure> {
    let started = Instant::now();
    let name = ServerName::try_from(server_name.to_owned()).map_err(|err| {
        Failure::new(
            FailureKind::TlsProtocolError,
            Phase::Connecting,
            format!("{server_name:?} cannot be sent as a TLS server name: {err}"),
        )
    })?;
    // A per-connection view of the configuration that notes whether this server asks for a
    // client certificate (see the module docs). The clone shares roots and session cache.
    let asked = Arc::new(AtomicBool::new(false));
    let mut watched = (*config).clone();
    watched.client_auth_cert_resolver = Arc::new(WatchingResolver {
        inner: Arc::clone(&config.client_auth_cert_resolver),
        asked: Arc::clone(&asked),
    });
    let connector = TlsConnector::from(Arc::new(watched));
    let mut stream = match tokio::time::timeout(timeout, connector.connect(name, stream)).await {
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
    let tls13 = stream.get_ref().1.protocol_version() == Some(ProtocolVersion::TLSv1_3);
    if tls13 && asked.load(Ordering::Relaxed) {
        // The verdict takes about one more round trip (our Finished out, its answer back);
        // the handshake itself took about one, plus the server's work.
        let wait = (started.elapsed() * 2).max(VERDICT_WAIT_MIN).min(timeout);
        await_verdict(&mut stream, server_name, wait).await?;
    }
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
        // rustls names versions `TLSv1_3`; people and the docs write `TLSv1.3`.
        protocol: session
            .protocol_version()
            .and_then(|v| v.as_str())
            .unwrap_or("unknown")
            .replace('_', "."),
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

/// The least time given to a server to judge our client certificate (a loopback handshake takes
/// a millisecond or two; the server may be busy).
const VERDICT_WAIT_MIN: Duration = Duration::from_millis(25);

/// The configured client-certificate resolver, noting that the server asked for a certificate.
#[derive(Debug)]
struct WatchingResolver {
    inner: Arc<dyn ResolvesClientCert>,
    asked: Arc<AtomicBool>,
}

impl ResolvesClientCert for WatchingResolver {
    fn resolve(
        &self,
        root_hint_subjects: &[&[u8]],
        sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.asked.store(true, Ordering::Relaxed);
        self.inner.resolve(root_hint_subjects, sigschemes)
    }

    fn only_raw_public_keys(&self) -> bool {
        self.inner.only_raw_public_keys()
    }

    fn has_certs(&self) -> bool {
        self.inner.has_certs()
    }
}

/// Waits up to `wait` for the server's first records after a TLS 1.3 handshake in which it
/// asked for a client certificate: an alert (the certificate was refused) fails the connect;
/// anything else, or nothing in time, lets it proceed. Records are fed to the session directly,
/// so application data that arrives (an HTTP/2 server's SETTINGS) stays buffered in the session
/// for the connection to read.
async fn await_verdict(
    stream: &mut TlsStream<TcpStream>,
    server_name: &str,
    wait: Duration,
) -> Result<(), Failure> {
    let deadline = Instant::now() + wait;
    loop {
        let (tcp, session) = stream.get_mut();
        match tokio::time::timeout_at(deadline, tcp.readable()).await {
            Err(_) => return Ok(()),
            Ok(Err(err)) => return Err(classify_handshake_error(server_name, &err)),
            Ok(Ok(())) => {}
        }
        match session.read_tls(&mut NonBlocking(tcp)) {
            Ok(0) => {
                return Err(Failure::new(
                    FailureKind::TlsProtocolError,
                    Phase::Connecting,
                    format!(
                        "{server_name} closed the connection right after the TLS handshake (it may have refused the client certificate)"
                    ),
                ));
            }
            Ok(_) => {}
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => continue,
            Err(err) => return Err(classify_handshake_error(server_name, &err)),
        }
        return match session.process_new_packets() {
            Ok(_) => Ok(()),
            Err(err) => Err(classify_handshake_error(
                server_name,
                &io::Error::new(io::ErrorKind::InvalidData, err),
            )),
        };
    }
}

/// `std::io::Read` over a tokio TCP stream without blocking (`WouldBlock` when nothing is there).
struct NonBlocking<'a>(&'a TcpStream);

impl io::Read for NonBlocking<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.try_read(buf)
    }
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
