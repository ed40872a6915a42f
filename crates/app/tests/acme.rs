//! Automatic HTTPS against a real ACME server (pebble): certificates obtained with HTTP-01 and
//! TLS-ALPN-01, served and checked against pebble's root; renewal of a short-lived
//! certificate without a restart; a CA that goes away mid-order (backoff, the old certificate
//! keeps serving) and comes back; two instances sharing `state_dir` ordering once; a kept
//! certificate loaded at start without a new order.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use gatehouse_testkit::free_addr;
use gatehouse_testkit::https::{Https, TlsListener, tls_listeners};
use gatehouse_testkit::pebble::{Pebble, PebbleOptions};
use gatehouse_testkit::{Config, Gatehouse, Req, TempFile, Upstream};
use rustls::pki_types::CertificateDer;

/// Pebble validates and issues in well under a second; a first order takes a few.
const ISSUANCE: Duration = Duration::from_secs(60);

fn start(config: &Config) -> Gatehouse {
    Gatehouse::start(Path::new(env!("CARGO_BIN_EXE_gatehouse")), &config.toml())
}

/// One test at a time: pebble needs fixed ports, picked free and released before pebble and
/// gatehouse bind them, and tests picking ports side by side could pick the same one (a test
/// then talks to another test's pebble). A failed test must not block the others: the lock
/// is taken back from a poisoned mutex.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
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
    loop {
        let last = match Https::new(root, name).connect(addr) {
            Ok(conn) => {
                let leaf = conn.peer_certificate();
                if other_than != Some(&leaf) {
                    return leaf;
                }
                "still the previous certificate".to_owned()
            }
            Err(e) => e.to_string(),
        };
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
    let _serial = serial();
    let upstream = Upstream::hello();
    let ports = Ports::new();
    let pebble = ports.pebble(None);
    let gatehouse =
        start(&config(&ports, &pebble, &upstream, "http-01").server("admin", "127.0.0.1:0"));
    let root = pebble.root();
    wait_for_certificate(&gatehouse, ports.https, &root, "a.test", None, ISSUANCE);
    assert_eq!(get(ports.https, &root, "a.test"), 200);
    assert_eq!(pebble.orders(), 1);
    // Its expiry is a metric and a row of the status page.
    let admin = gatehouse.admin_addr();
    let metrics = gatehouse_testkit::send_raw(
        admin,
        b"GET /metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .unwrap_or_else(|e| panic!("/metrics: {e:?}"));
    let samples = gatehouse_testkit::metrics::parse_samples(&metrics.text());
    let (left, count) = gatehouse_testkit::metrics::sum(
        &samples,
        "gatehouse_certificate_expiry_seconds",
        &[("name", "a.test"), ("source", "acme")],
    );
    assert_eq!(count, 1, "{}", metrics.text());
    assert!(
        left > 86_400.0,
        "pebble's default lifetime is years: {left}"
    );
    let status = gatehouse_testkit::send_raw(
        admin,
        b"GET /status.json HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .unwrap_or_else(|e| panic!("/status.json: {e:?}"));
    let report = status.json();
    assert_eq!(report["certificates"][0]["name"], "a.test", "{report}");
    assert_eq!(report["certificates"][0]["source"], "acme");
    let answered = gatehouse
        .logs()
        .iter()
        .any(|l| l["message"] == "answering an ACME HTTP-01 challenge");
    assert!(answered, "the redirect listener answered the challenge");
}

#[test]
fn tls_alpn01_issuance_serves_a_chain_pebbles_root_verifies() {
    let _serial = serial();
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

/// `gatehouse doctor --json`'s config findings for `config`, as one text.
fn doctor_smells(config: &Config) -> String {
    let file = TempFile::with_contents("gatehouse-acme-doctor", ".toml", config.toml().as_bytes());
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .arg("-c")
        .arg(file.path())
        .args(["doctor", "--json"])
        .output()
        .unwrap_or_else(|e| panic!("gatehouse doctor: {e}"));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "doctor --json: {e}: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    report["smells"].to_string()
}

/// Whether gatehouse logged `message` (exactly).
fn logged(gatehouse: &Gatehouse, message: &str) -> bool {
    gatehouse.logs().iter().any(|l| l["message"] == message)
}

fn wait_for_log(gatehouse: &Gatehouse, message: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while !logged(gatehouse, message) {
        assert!(
            Instant::now() < deadline,
            "{message:?} not logged within {timeout:?}: {:#?}",
            acme_logs(gatehouse)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_short_lived_certificate_is_renewed_without_a_restart_or_a_failed_request() {
    let _serial = serial();
    let upstream = Upstream::hello();
    let ports = Ports::new();
    // Renewed once a third is left: about 8 s after issuance.
    let pebble = ports.pebble(Some(Duration::from_secs(12)));
    let gatehouse = start(&config(&ports, &pebble, &upstream, "tls-alpn-01"));
    let root = pebble.root();
    let first = wait_for_certificate(&gatehouse, ports.https, &root, "a.test", None, ISSUANCE);
    let issued = Instant::now();
    // Requests keep being answered while the certificate is swapped.
    let https = ports.https;
    let load_root = root.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = Arc::clone(&stop);
    let load = std::thread::spawn(move || {
        let mut statuses = Vec::new();
        while !stopped.load(Ordering::Relaxed) {
            statuses.push(get(https, &load_root, "a.test"));
            std::thread::sleep(Duration::from_millis(50));
        }
        statuses
    });
    let second = wait_for_certificate(
        &gatehouse,
        ports.https,
        &root,
        "a.test",
        Some(&first),
        Duration::from_secs(30),
    );
    stop.store(true, Ordering::Relaxed);
    let statuses = load.join().unwrap_or_default();
    assert_ne!(first, second);
    assert!(
        issued.elapsed() >= Duration::from_secs(5),
        "renewed after {:?}, not at two thirds of 12 s",
        issued.elapsed()
    );
    assert!(
        !statuses.is_empty() && statuses.iter().all(|s| *s == 200),
        "{statuses:?}"
    );
    assert_eq!(pebble.orders(), 2);
}

/// A TCP relay in front of gatehouse's redirect listener for pebble's HTTP-01 validations:
/// while `hold` is set, a validation's connection is accepted and left waiting, so the order
/// stays in flight at the CA for as long as the test wants.
struct Relay {
    addr: SocketAddr,
    hold: Arc<AtomicBool>,
    held: Arc<AtomicUsize>,
}

impl Relay {
    fn start(to: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("addr: {e}"));
        let (hold, held) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicUsize::new(0)),
        );
        let (hold_flag, held_count) = (Arc::clone(&hold), Arc::clone(&held));
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (hold, held) = (Arc::clone(&hold_flag), Arc::clone(&held_count));
                std::thread::spawn(move || {
                    if hold.load(Ordering::SeqCst) {
                        held.fetch_add(1, Ordering::SeqCst);
                        while hold.load(Ordering::SeqCst) {
                            std::thread::sleep(Duration::from_millis(20));
                        }
                        return;
                    }
                    let Ok(server) = TcpStream::connect(to) else {
                        return;
                    };
                    let (Ok(mut client_read), Ok(mut server_write)) =
                        (client.try_clone(), server.try_clone())
                    else {
                        return;
                    };
                    let up = std::thread::spawn(move || {
                        let _ = std::io::copy(&mut client_read, &mut server_write);
                    });
                    let (mut server_read, mut client_write) = (server, client);
                    let _ = std::io::copy(&mut server_read, &mut client_write);
                    let _ = up.join();
                });
            }
        });
        Self { addr, hold, held }
    }
}

#[test]
fn a_ca_that_goes_away_mid_order_is_retried_with_backoff_while_the_old_certificate_serves() {
    let _serial = serial();
    let upstream = Upstream::hello();
    let ports = Ports::new();
    let relay = Relay::start(ports.redirect);
    // Renewal falls due about 20 s after issuance.
    let mut pebble = Pebble::start(PebbleOptions {
        http_port: relay.addr.port(),
        tls_port: ports.https.port(),
        validity: Some(Duration::from_secs(30)),
    });
    let gatehouse = start(&config(&ports, &pebble, &upstream, "http-01"));
    let old_root = pebble.root();
    wait_for_certificate(&gatehouse, ports.https, &old_root, "a.test", None, ISSUANCE);
    // The renewal's validation is held at the relay: the order is in flight when pebble stops.
    relay.hold.store(true, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(40);
    while relay.held.load(Ordering::SeqCst) == 0 {
        assert!(
            Instant::now() < deadline,
            "no renewal validation: {:#?}",
            acme_logs(&gatehouse)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The certificate in service while the order is held (on a loaded machine a renewal may
    // have completed before the hold took effect, so it is read now, not at first issuance).
    let first = wait_for_certificate(&gatehouse, ports.https, &old_root, "a.test", None, ISSUANCE);
    pebble.stop();
    let failed = "ACME order failed; the certificate in service (if any) keeps serving";
    wait_for_log(&gatehouse, failed, Duration::from_secs(40));
    let failure = gatehouse
        .logs()
        .into_iter()
        .find(|l| l["message"] == failed)
        .unwrap_or_default();
    assert!(
        failure["error"]
            .as_str()
            .is_some_and(|e| e.contains("waiting for validation")),
        "the order failed in flight: {failure}"
    );
    assert!(
        failure["retry_in_s"].as_u64().is_some_and(|s| s >= 5),
        "{failure}"
    );
    assert!(
        failure["current_expires_in_s"].as_u64().is_some(),
        "{failure}"
    );
    // Seconds from its end (the last week), so also the near-expiry warning.
    wait_for_log(
        &gatehouse,
        "the ACME certificate expires soon and could not be renewed; clients will refuse it once it has expired",
        Duration::from_secs(5),
    );
    // The old certificate still serves.
    let leaf = wait_for_certificate(&gatehouse, ports.https, &old_root, "a.test", None, ISSUANCE);
    assert_eq!(leaf, first);
    assert_eq!(get(ports.https, &old_root, "a.test"), 200);
    // The CA comes back (with a new root, and without the account): the next try succeeds.
    relay.hold.store(false, Ordering::SeqCst);
    pebble.start_pebble();
    let new_root = pebble.root();
    wait_for_certificate(
        &gatehouse,
        ports.https,
        &new_root,
        "a.test",
        None,
        Duration::from_secs(40),
    );
    assert_eq!(get(ports.https, &new_root, "a.test"), 200);
}

#[test]
fn instances_sharing_state_dir_order_once_and_a_restart_orders_nothing() {
    let _serial = serial();
    let upstream = Upstream::hello();
    let ports = Ports::new();
    let pebble = ports.pebble(None);
    let state = TempFile::dir("gatehouse-acme-shared");
    let state_dir = state.path().display().to_string();
    let first_config =
        config(&ports, &pebble, &upstream, "http-01").server("state_dir", state_dir.clone());
    // The second instance has its own listeners, which pebble never reaches: it must take the
    // first's certificate, or have its HTTP-01 answer served by the first.
    let other = Ports::new();
    let second_config =
        config(&other, &pebble, &upstream, "http-01").server("state_dir", state_dir);
    assert!(
        doctor_smells(&first_config).contains("acme: no certificate for a.test"),
        "doctor tells there is no certificate yet"
    );
    // An instance elsewhere holds the order lock: neither orders, both wait for it.
    let lock_dir = state.path().join("acme");
    std::fs::create_dir_all(&lock_dir).unwrap_or_else(|e| panic!("mkdir: {e}"));
    let lock = std::fs::File::create(lock_dir.join("order.lock"))
        .unwrap_or_else(|e| panic!("lock file: {e}"));
    lock.try_lock().unwrap_or_else(|e| panic!("lock: {e}"));
    let first = start(&first_config);
    let second = start(&second_config);
    let waiting = "another gatehouse sharing state_dir is ordering; waiting for its certificate";
    wait_for_log(&first, waiting, Duration::from_secs(10));
    wait_for_log(&second, waiting, Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(pebble.orders(), 0, "nobody orders while the lock is held");
    // Released: both race for it, one orders.
    drop(lock);
    let root = pebble.root();
    let a = wait_for_certificate(&first, ports.https, &root, "a.test", None, ISSUANCE);
    let b = wait_for_certificate(&second, other.https, &root, "a.test", None, ISSUANCE);
    assert_eq!(a, b, "one certificate for both");
    assert_eq!(pebble.orders(), 1, "{:#?}", pebble.lines());
    let smells = doctor_smells(&first_config);
    assert!(
        !smells.contains("\"acme: "),
        "a fresh certificate is no finding: {smells}"
    );
    drop(second);
    let stopped = first.stop();
    assert!(stopped.success() || stopped.code().is_some());
    // A restart serves the kept certificate: no new order.
    let again = start(&first_config);
    let c = wait_for_certificate(&again, ports.https, &root, "a.test", None, ISSUANCE);
    assert_eq!(c, a);
    wait_for_log(
        &again,
        "ACME certificate loaded from state_dir",
        Duration::from_secs(5),
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(pebble.orders(), 1);
}

#[test]
fn a_reload_turns_acme_on_and_a_new_domain_is_ordered_at_once() {
    let _serial = serial();
    let upstream = Upstream::hello();
    let ports = Ports::new();
    let pebble = ports.pebble(None);
    let ca = gatehouse_testkit::tls::TestCa::new("file certificate CA");
    let file = ca.leaf(&["a.test"]);
    let (cert, key) = file.write_pem();
    let listener = TlsListener::new([ports.https]).certificate(cert.path(), key.path());
    let base = config(&ports, &pebble, &upstream, "tls-alpn-01");
    let gatehouse = start(
        &base
            .clone()
            .server("tls", tls_listeners([listener.clone()])),
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(pebble.orders(), 0, "no acme = true, no order");
    // acme = true by reload: b.test (no file certificate) is ordered with a.test.
    let with_acme = base
        .route(Some("b.test"), "/", "app")
        .server("tls", tls_listeners([listener.acme()]));
    gatehouse.rewrite_config(&with_acme.toml());
    gatehouse
        .reload()
        .unwrap_or_else(|refused| panic!("reload refused: {refused}"));
    let root = pebble.root();
    wait_for_certificate(&gatehouse, ports.https, &root, "b.test", None, ISSUANCE);
    assert_eq!(pebble.orders(), 1);
    // a.test keeps its file certificate: a file certificate naming a host exactly wins.
    let leaf = Https::new(&ca.cert_der(), "a.test")
        .connect(ports.https)
        .unwrap_or_else(|e| panic!("a.test: {e}"))
        .peer_certificate();
    assert_eq!(leaf, file.der);
}
