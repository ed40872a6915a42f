//! A real ACME server for tests: Debian's `pebble`, with `pebble-challtestsrv` as its DNS
//! server (every name resolves to 127.0.0.1), on free loopback ports.
//!
//! Pebble's own HTTPS certificate is made here by a [`TestCa`] (its Debian package ships no
//! test certificate), so gatehouse trusts the directory through `[acme] ca_file`. Pebble
//! validates challenges by connecting to 127.0.0.1 on the `http_port` and `tls_port` given,
//! which a test points at gatehouse's listeners. It issues with a fresh root on every start;
//! [`Pebble::root`] fetches it from the management interface (`/roots/0`). Both processes are
//! stopped by their PID when the value is dropped.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::free_addr;
use crate::https::Https;
use crate::tls::{TestCa, TestCert};
use crate::{Req, TempFile};

/// How a test wants pebble.
#[derive(Debug, Clone, Copy)]
pub struct PebbleOptions {
    /// Where HTTP-01 validations connect (on 127.0.0.1).
    pub http_port: u16,
    /// Where TLS-ALPN-01 validations connect (on 127.0.0.1).
    pub tls_port: u16,
    /// The lifetime of issued certificates (`certificateValidityPeriod`); pebble's default
    /// (about 5 years) when `None`.
    pub validity: Option<Duration>,
}

/// A running pebble and its DNS server.
#[derive(Debug)]
pub struct Pebble {
    options: PebbleOptions,
    listen: SocketAddr,
    management: SocketAddr,
    dns: SocketAddr,
    _ca: TestCa,
    ca_file: TempFile,
    _https: (TempFile, TempFile),
    config: TempFile,
    pebble: Option<Child>,
    challtestsrv: Option<Child>,
    log: Arc<Mutex<Vec<String>>>,
}

impl Pebble {
    /// Starts both processes and waits until the directory is served.
    pub fn start(options: PebbleOptions) -> Self {
        let ca = TestCa::new("pebble test CA");
        let leaf: TestCert = ca.leaf(&["localhost", "127.0.0.1"]);
        let https = leaf.write_pem();
        let ca_file = TempFile::with_contents("pebble-ca", ".pem", ca.cert_pem().as_bytes());
        let (listen, management, dns) = (free_addr(), free_addr(), free_addr());
        let mut pebble = serde_json::json!({
            "listenAddress": listen.to_string(),
            "managementListenAddress": management.to_string(),
            "certificate": https.0.path().display().to_string(),
            "privateKey": https.1.path().display().to_string(),
            "httpPort": options.http_port,
            "tlsPort": options.tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
        });
        if let Some(validity) = options.validity {
            pebble["certificateValidityPeriod"] = validity.as_secs().into();
        }
        let text = serde_json::json!({ "pebble": pebble }).to_string();
        let config = TempFile::with_contents("pebble", ".json", text.as_bytes());
        let mut this = Self {
            options,
            listen,
            management,
            dns,
            _ca: ca,
            ca_file,
            _https: https,
            config,
            pebble: None,
            challtestsrv: None,
            log: Arc::default(),
        };
        this.start_dns();
        this.start_pebble();
        this
    }

    fn start_dns(&mut self) {
        let child = Command::new("pebble-challtestsrv")
            .args(["-dns01", &self.dns.to_string()])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-management", &free_addr().to_string()])
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start pebble-challtestsrv (apt-get install pebble): {e}")
            });
        self.challtestsrv = Some(child);
    }

    /// Starts pebble (again, after [`Pebble::stop`]: same ports, a new root, no accounts).
    pub fn start_pebble(&mut self) {
        let mut child = Command::new("pebble")
            .arg("-config")
            .arg(self.config.path())
            .args(["-dnsserver", &self.dns.to_string()])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start pebble (apt-get install pebble): {e}"));
        let before = self.lines().len();
        for out in [
            child
                .stdout
                .take()
                .map(|o| Box::new(o) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|e| Box::new(e) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let log = Arc::clone(&self.log);
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    log.lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(line);
                }
            });
        }
        self.pebble = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.lines()[before..]
            .iter()
            .any(|l| l.contains("ACME directory available"))
        {
            assert!(
                Instant::now() < deadline,
                "pebble did not start: {:#?}",
                self.lines()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops pebble (by its PID), as a CA that went away mid-order.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.pebble.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The directory URL, for `[acme] directory`.
    pub fn directory(&self) -> String {
        format!("https://127.0.0.1:{}/dir", self.listen.port())
    }

    /// The roots pebble's HTTPS certificate chains to, for `[acme] ca_file`.
    pub fn ca_file(&self) -> &Path {
        self.ca_file.path()
    }

    pub fn options(&self) -> PebbleOptions {
        self.options
    }

    /// The root that signs what pebble issues now (`/roots/0` on the management port).
    pub fn root(&self) -> CertificateDer<'static> {
        let ca = CertificateDer::from_pem_file(self.ca_file.path())
            .unwrap_or_else(|e| panic!("pebble CA file: {e}"));
        let response = Https::new(&ca, "127.0.0.1").send(self.management, &Req::get("/roots/0"));
        assert_eq!(response.response.status, 200, "GET /roots/0");
        CertificateDer::from_pem_slice(&response.response.body)
            .unwrap_or_else(|e| panic!("pebble root: {e}"))
    }

    /// Orders placed at pebble since it (first) started, from its log.
    pub fn orders(&self) -> usize {
        self.lines()
            .iter()
            .filter(|l| l.contains("Added order"))
            .count()
    }

    /// Everything pebble logged.
    pub fn lines(&self) -> Vec<String> {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        self.stop();
        if let Some(mut child) = self.challtestsrv.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
