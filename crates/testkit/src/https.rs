//! Clients for gatehouse's TLS and HTTP/2 listeners.
//!
//! - [`Https`]: a blocking HTTPS/1.1 client (rustls over a std socket) that reports what the
//!   handshake chose: the certificate the server presented, the ALPN protocol, the TLS version.
//! - [`curl_any`]: the real `curl`, read for any HTTP version (`HTTP/2 200` heads, which
//!   [`crate::curl()`] does not parse), with `-w %{http_version}`.
//! - [`TlsListener`]: a `[[server.tls]]` entry for a test config; [`free_addr`] for listeners
//!   that must be known before gatehouse starts.

use std::io::{self, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme, StreamOwned};

use crate::PATIENCE;
use crate::client::{RawResponse, Req};
use crate::http1::{self, BodyState, Framing, Headers};
use crate::temp::TempFile;

// === Https ===

/// How to reach an HTTPS listener: the name to ask for, the CA to trust, the ALPN protocols to
/// offer. Offers `http/1.1` only, sends SNI and verifies the certificate unless told otherwise.
#[derive(Debug, Clone)]
pub struct Https {
    ca: CertificateDer<'static>,
    server_name: String,
    alpn: Vec<Vec<u8>>,
    sni: bool,
    verify: bool,
    tls12_only: bool,
}

/// A handshake's outcome and one response.
#[derive(Debug, Clone)]
pub struct HttpsResponse {
    pub response: RawResponse,
    /// The leaf certificate the server presented, DER.
    pub peer_certificate: CertificateDer<'static>,
    /// The ALPN protocol the server chose.
    pub alpn: Option<String>,
    pub version: Option<rustls::ProtocolVersion>,
}

impl Https {
    /// Trusts only `ca`; asks for (and verifies) `server_name`.
    pub fn new(ca: &CertificateDer<'static>, server_name: &str) -> Self {
        Self {
            ca: ca.clone(),
            server_name: server_name.to_owned(),
            alpn: vec![b"http/1.1".to_vec()],
            sni: true,
            verify: true,
            tls12_only: false,
        }
    }

    /// Offers these ALPN protocols instead (none for an empty list).
    #[must_use]
    pub fn alpn(mut self, protocols: &[&str]) -> Self {
        self.alpn = protocols.iter().map(|p| p.as_bytes().to_vec()).collect();
        self
    }

    /// Sends no SNI (the certificate is still verified for the server name).
    #[must_use]
    pub fn without_sni(mut self) -> Self {
        self.sni = false;
        self
    }

    /// Accepts whatever certificate the server presents (it is still reported): for a name no
    /// certificate of the server covers.
    #[must_use]
    pub fn any_certificate(mut self) -> Self {
        self.verify = false;
        self
    }

    /// Speaks TLS 1.2 only.
    #[must_use]
    pub fn tls12_only(mut self) -> Self {
        self.tls12_only = true;
        self
    }

    fn config(&self) -> Arc<ClientConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let versions: &[&'static rustls::SupportedProtocolVersion] = if self.tls12_only {
            &[&rustls::version::TLS12]
        } else {
            rustls::DEFAULT_VERSIONS
        };
        let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(versions)
            .unwrap_or_else(|e| panic!("TLS versions: {e}"));
        let mut config = if self.verify {
            let mut roots = rustls::RootCertStore::empty();
            roots
                .add(self.ca.clone())
                .unwrap_or_else(|e| panic!("CA certificate: {e}"));
            builder.with_root_certificates(roots).with_no_client_auth()
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
                .with_no_client_auth()
        };
        config.alpn_protocols = self.alpn.clone();
        config.enable_sni = self.sni;
        Arc::new(config)
    }

    /// Connects and completes the handshake; the error says why it failed.
    pub fn connect(&self, addr: SocketAddr) -> io::Result<HttpsConn> {
        let name = ServerName::try_from(self.server_name.clone())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let conn = ClientConnection::new(self.config(), name).map_err(io::Error::other)?;
        let sock = TcpStream::connect_timeout(&addr, PATIENCE)?;
        sock.set_read_timeout(Some(PATIENCE))?;
        sock.set_nodelay(true)?;
        let mut stream = StreamOwned::new(conn, sock);
        while stream.conn.is_handshaking() {
            stream.conn.complete_io(&mut stream.sock)?;
        }
        Ok(HttpsConn {
            stream,
            buf: Vec::new(),
        })
    }

    /// One request on a new connection; panics if the handshake fails or no response head
    /// arrives.
    pub fn send(&self, addr: SocketAddr, req: &Req) -> HttpsResponse {
        let mut conn = self
            .connect(addr)
            .unwrap_or_else(|e| panic!("TLS handshake with {addr} failed: {e}"));
        let response = conn.send(req);
        HttpsResponse {
            response,
            peer_certificate: conn.peer_certificate(),
            alpn: conn.alpn(),
            version: conn.version(),
        }
    }
}

/// An established HTTPS connection, for several requests.
#[derive(Debug)]
pub struct HttpsConn {
    stream: StreamOwned<ClientConnection, TcpStream>,
    buf: Vec<u8>,
}

impl HttpsConn {
    /// The leaf certificate the server presented.
    pub fn peer_certificate(&self) -> CertificateDer<'static> {
        self.stream
            .conn
            .peer_certificates()
            .and_then(|chain| chain.first())
            .map(|leaf| leaf.clone().into_owned())
            .unwrap_or_else(|| panic!("the server presented no certificate"))
    }

    pub fn alpn(&self) -> Option<String> {
        self.stream
            .conn
            .alpn_protocol()
            .map(|p| String::from_utf8_lossy(p).into_owned())
    }

    pub fn version(&self) -> Option<rustls::ProtocolVersion> {
        self.stream.conn.protocol_version()
    }

    /// The TLS stream itself (for a client that speaks over it, a WebSocket say).
    pub fn into_stream(self) -> StreamOwned<ClientConnection, TcpStream> {
        self.stream
    }

    /// Writes raw bytes (a request head, say) without reading anything.
    pub fn write_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)?;
        self.stream.flush()
    }

    /// Reads everything until the server closes or `timeout` passes without a byte; the
    /// plaintext read.
    pub fn read_to_close(&mut self, timeout: Duration) -> Vec<u8> {
        let _ = self.stream.sock.set_read_timeout(Some(timeout));
        let mut out = std::mem::take(&mut self.buf);
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) | Err(_) => return out,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    }

    /// Reads until the server ends the session; an error unless it ended with `close_notify`
    /// (rustls reports a close without it as `UnexpectedEof`: a truncation attack looks so).
    pub fn read_to_close_notify(&mut self, timeout: Duration) -> io::Result<Vec<u8>> {
        self.stream.sock.set_read_timeout(Some(timeout))?;
        let mut out = std::mem::take(&mut self.buf);
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match self.stream.read(&mut buf)? {
                0 => return Ok(out),
                n => out.extend_from_slice(&buf[..n]),
            }
        }
    }

    /// Reads and drops everything until the server closes or `timeout` passes without a byte;
    /// the number of plaintext bytes read.
    pub fn drain(&mut self, timeout: Duration) -> usize {
        let _ = self.stream.sock.set_read_timeout(Some(timeout));
        let mut total = 0;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) | Err(_) => return total,
                Ok(n) => total += n,
            }
        }
    }

    /// Sends `req` and reads its response (HTTP/1.1); a body cut short comes back with
    /// `complete == false`. Panics when no response head arrives within [`PATIENCE`].
    pub fn send(&mut self, req: &Req) -> RawResponse {
        self.stream
            .write_all(&req.to_bytes())
            .and_then(|()| self.stream.flush())
            .unwrap_or_else(|e| panic!("send request: {e}"));
        self.read_response()
    }

    fn read_response(&mut self) -> RawResponse {
        let deadline = Instant::now() + PATIENCE;
        let mut eof = false;
        let head = loop {
            match http1::parse_response_head(&self.buf) {
                Ok(Some(head)) => break head,
                Ok(None) if !eof && Instant::now() < deadline => eof = self.fill(),
                Ok(None) => panic!(
                    "no complete response head (received {:?})",
                    String::from_utf8_lossy(&self.buf)
                ),
                Err(why) => panic!("{why}"),
            }
        };
        let framing = Framing::of_response(head.status, &head.headers, false);
        let mut response = RawResponse {
            status: head.status,
            reason: head.reason,
            headers: head.headers,
            body: Vec::new(),
            framing,
            complete: false,
            incomplete_because: None,
            interim: Vec::new(),
        };
        loop {
            match http1::body_state(framing, &self.buf[head.len..], eof) {
                BodyState::Complete { body, consumed } => {
                    self.buf.drain(..head.len + consumed);
                    response.body = body;
                    response.complete = true;
                    return response;
                }
                BodyState::Partial { body } if eof || Instant::now() >= deadline => {
                    response.body = body;
                    response.incomplete_because = Some("closed".to_owned());
                    self.buf.clear();
                    return response;
                }
                BodyState::Partial { .. } => eof = self.fill(),
                BodyState::Invalid { body, why } => {
                    response.body = body;
                    response.incomplete_because = Some(why);
                    self.buf.clear();
                    return response;
                }
            }
        }
    }

    /// Reads more; returns whether the connection ended (closed, reset or timed out).
    fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 16 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(0) | Err(_) => true,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                false
            }
        }
    }
}

/// Accepts any server certificate; the handshake signatures are still checked.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

// === curl ===

/// What one `curl` run saw, whatever the HTTP version.
#[derive(Debug, Clone)]
pub struct CurlRun {
    /// 0 on success; e.g. 35 for a failed TLS handshake, 92 for an HTTP/2 stream reset
    /// (`HTTP/2 stream N was not closed cleanly`), 18 for a body cut short.
    pub exit_code: Option<i32>,
    /// `%{http_version}`: "1.1", "2", or "0" when no response came.
    pub http_version: String,
    /// The final status (0 when no response came).
    pub status: u16,
    /// The final response's headers (names lowercase under HTTP/2, as sent).
    pub headers: Headers,
    pub body: Vec<u8>,
    pub stderr: String,
}

impl CurlRun {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Runs `curl -sS --max-time 10 -D HEADERS -o BODY -w '%{http_version} %{http_code}' ARGS...`.
pub fn curl_any(args: &[&str]) -> CurlRun {
    let body_file = TempFile::new("gatehouse-curl-body", ".bin");
    let head_file = TempFile::new("gatehouse-curl-head", ".txt");
    let output = Command::new("curl")
        .args(["-sS", "--max-time", "10", "-D"])
        .arg(head_file.path())
        .arg("-o")
        .arg(body_file.path())
        .args(["-w", "%{http_version} %{http_code}"])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run curl: {e}"));
    let written = String::from_utf8_lossy(&output.stdout).into_owned();
    let mut fields = written.split_whitespace();
    let http_version = fields.next().unwrap_or("0").to_owned();
    let status = fields.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let heads = std::fs::read_to_string(head_file.path()).unwrap_or_default();
    CurlRun {
        exit_code: output.status.code(),
        http_version,
        status,
        headers: last_head(&heads),
        body: std::fs::read(body_file.path()).unwrap_or_default(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// The header fields of the last head in a `-D` dump (interim 1xx heads come first).
fn last_head(dump: &str) -> Headers {
    let mut headers = Vec::new();
    for line in dump.lines() {
        let line = line.trim_end_matches('\r');
        if line.starts_with("HTTP/") {
            headers.clear();
        } else if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    Headers(headers)
}

// === config ===

/// A `[[server.tls]]` entry for a test config: its `listen`, the first certificate as
/// `cert`/`key`, the others in `certificates`.
#[derive(Debug, Clone)]
pub struct TlsListener {
    table: toml::Table,
}

impl TlsListener {
    pub fn new<S: ToString>(listen: impl IntoIterator<Item = S>) -> Self {
        let listen: Vec<toml::Value> = listen.into_iter().map(|a| a.to_string().into()).collect();
        let mut table = toml::Table::new();
        table.insert("listen".to_owned(), listen.into());
        Self { table }
    }

    /// Adds a certificate chain and key (PEM files).
    #[must_use]
    pub fn certificate(mut self, cert: &Path, key: &Path) -> Self {
        let path = |p: &Path| toml::Value::from(p.display().to_string());
        if self.table.contains_key("cert") {
            let mut pair = toml::Table::new();
            pair.insert("cert".to_owned(), path(cert));
            pair.insert("key".to_owned(), path(key));
            let list = self
                .table
                .entry("certificates")
                .or_insert_with(|| toml::Value::Array(Vec::new()));
            if let toml::Value::Array(list) = list {
                list.push(pair.into());
            }
        } else {
            self.table.insert("cert".to_owned(), path(cert));
            self.table.insert("key".to_owned(), path(key));
        }
        self
    }

    /// Expects a PROXY protocol header before the TLS handshake (`proxy_protocol = true`).
    #[must_use]
    pub fn proxy_protocol(mut self) -> Self {
        self.table.insert("proxy_protocol".to_owned(), true.into());
        self
    }

    /// Also serves certificates obtained through ACME (`acme = true`).
    #[must_use]
    pub fn acme(mut self) -> Self {
        self.table.insert("acme".to_owned(), true.into());
        self
    }

    /// Sets `min_version` ("1.2" or "1.3").
    #[must_use]
    pub fn min_version(mut self, version: &str) -> Self {
        self.table
            .insert("min_version".to_owned(), version.to_owned().into());
        self
    }
}

impl From<TlsListener> for toml::Value {
    fn from(listener: TlsListener) -> Self {
        listener.table.into()
    }
}

/// `server.tls = [...]` for [`crate::Config::server`].
pub fn tls_listeners(listeners: impl IntoIterator<Item = TlsListener>) -> toml::Value {
    toml::Value::Array(listeners.into_iter().map(Into::into).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_head_of_a_dump_counts() {
        let headers = last_head(
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/2 502\r\nproxy-status: gatehouse; error=x\r\ncontent-type: text/html\r\n\r\n",
        );
        assert_eq!(headers.get("proxy-status"), Some("gatehouse; error=x"));
        assert_eq!(headers.0.len(), 2);
    }

    #[test]
    fn a_tls_listener_table_names_the_first_certificate_cert() {
        let value: toml::Value = TlsListener::new(["127.0.0.1:0"])
            .certificate(Path::new("/a.pem"), Path::new("/a.key"))
            .certificate(Path::new("/b.pem"), Path::new("/b.key"))
            .min_version("1.3")
            .into();
        assert_eq!(value["cert"].as_str(), Some("/a.pem"));
        assert_eq!(value["key"].as_str(), Some("/a.key"));
        assert_eq!(value["certificates"][0]["cert"].as_str(), Some("/b.pem"));
        assert_eq!(value["min_version"].as_str(), Some("1.3"));
        assert_eq!(value["listen"][0].as_str(), Some("127.0.0.1:0"));
    }
}
