//! The doctor against real TLS servers on loopback, with the config model set by hand (so that
//! these run whatever the config parser accepts): a healthy server with its certificate, an
//! expired one, one close to its end, a wrong CA, a wrong name, plain HTTP behind TLS, a server
//! that wants a client certificate, and a CA file that cannot be used.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use gatehouse_config::{CaBundle, Loaded};
use gatehouse_testkit::tls::{TestCa, TestCert, Validity};
use gatehouse_testkit::tls_origin::TlsOrigin;
use rustls::pki_types::CertificateDer;

use super::check::ServerReport;
use super::{DoctorReport, examine, report};

/// A plain HTTP server: answers anything with 400, as a web server does to a ClientHello.
fn plain_http() -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let thread = std::thread::spawn(move || {
        // The doctor connects twice: the handshake, then the plain HTTP check.
        for stream in listener.incoming().take(2) {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut buf = [0u8; 2048];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(
                b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            );
        }
    });
    (addr, thread)
}

/// A config with one upstream `app` whose server `addr` is reached over TLS, trusting `ca`.
fn config(addr: SocketAddr, ca: Option<&TestCa>, edit: impl FnOnce(&mut Loaded)) -> Loaded {
    let text = format!(
        "[[route]]\nupstream = \"app\"\n[upstream.app]\nservers = [\"{addr}\"]\nconnect_timeout = \"2s\"\nresponse_timeout = \"2s\"\n[upstream.app.health]\npath = \"/ping\"\n"
    );
    let mut loaded =
        gatehouse_config::parse("test.toml", &text).unwrap_or_else(|e| panic!("{e:?}"));
    let upstream = &mut loaded.config.upstreams[0];
    upstream.servers[0].tls = true;
    if let Some(ca) = ca {
        upstream.tls.ca = Some(CaBundle {
            path: "/etc/gatehouse/upstream-ca.pem".into(),
            certs: vec![ca.cert_der()],
        });
    }
    edit(&mut loaded);
    loaded
}

async fn doctor(loaded: &Loaded) -> DoctorReport {
    examine(
        loaded,
        &[],
        Duration::from_secs(3),
        std::sync::Arc::default(),
    )
    .await
}

fn only_server(report: &DoctorReport) -> &ServerReport {
    &report.upstreams[0].servers[0]
}

fn leaf(ca: &TestCa, validity: Validity) -> TestCert {
    ca.leaf_with(&["127.0.0.1"], validity)
}

#[tokio::test]
async fn healthy_tls_server_reports_the_handshake_and_certificate() {
    let ca = TestCa::new("Doctor Test CA");
    let server = TlsOrigin::http1(&leaf(&ca, Validity::Current));
    let report = doctor(&config(server.addr(), Some(&ca), |_| {})).await;
    let checked = only_server(&report);
    assert!(checked.verdict.healthy, "{checked:#?}");
    assert_eq!(checked.warnings, Vec::<String>::new());
    let tls = checked.tls.as_ref().unwrap();
    assert_eq!(tls.server_name, "127.0.0.1");
    assert_eq!(tls.alpn_offered, ["http/1.1"]);
    let negotiated = tls.negotiated.as_ref().unwrap();
    assert_eq!(negotiated.facts.protocol, "TLSv1.3");
    assert_eq!(negotiated.facts.alpn.as_deref(), Some("http/1.1"));
    assert_eq!(negotiated.facts.subject.as_deref(), Some("CN=127.0.0.1"));
    assert_eq!(
        negotiated.facts.issuer.as_deref(),
        Some("CN=Doctor Test CA")
    );
    assert!(
        (364..=366).contains(&negotiated.days_left.unwrap()),
        "{negotiated:?}"
    );
    assert_eq!(checked.http.as_ref().and_then(|h| h.status), Some(200));

    let json = serde_json::to_value(checked).unwrap();
    for field in [
        "protocol",
        "cipher",
        "alpn",
        "subject",
        "issuer",
        "not_after",
        "expires",
        "days_left",
        "server_name",
        "handshake_ms",
    ] {
        assert!(!json["tls"][field].is_null(), "no tls.{field}: {json:#}");
    }

    let text = report::text(&report);
    assert!(text.contains("      tls      TLSv1.3 "), "{text}");
    assert!(text.contains("(name 127.0.0.1)"), "{text}");
    assert!(
        text.contains("      cert     CN=127.0.0.1, issued by CN=Doctor Test CA"),
        "{text}"
    );
    assert!(text.contains("      expires  "), "{text}");
    assert!(text.contains("days)"), "{text}");
}

#[tokio::test]
async fn expired_certificate_names_the_expiry_and_renewal() {
    let ca = TestCa::new("Doctor Test CA");
    let server = TlsOrigin::http1(&leaf(&ca, Validity::Expired));
    let report = doctor(&config(server.addr(), Some(&ca), |_| {})).await;
    let checked = only_server(&report);
    let verdict = &checked.verdict;
    assert_eq!(verdict.kind, Some("tls_certificate_error"), "{checked:#?}");
    assert_eq!(verdict.status, Some(502));
    let cause = verdict.cause.as_deref().unwrap_or_default();
    assert!(cause.contains("EXPIRED 1 day ago"), "{cause}");
    assert!(cause.contains("CN=127.0.0.1"), "{cause}");
    let fix = verdict.fix.as_deref().unwrap_or_default();
    assert!(fix.starts_with("renew the certificate"), "{fix}");
    let certificate = checked
        .tls
        .as_ref()
        .and_then(|t| t.certificate.as_ref())
        .unwrap();
    assert_eq!(certificate.days_left, -1);
    assert!(checked.connect_ms.is_some(), "the TCP connect worked");
    let text = report::text(&report);
    assert!(text.contains("FAIL  tls_certificate_error"), "{text}");
    assert!(text.contains("      expires  EXPIRED 1 day ago"), "{text}");
}

#[tokio::test]
async fn certificate_close_to_its_end_is_a_warning() {
    let ca = TestCa::new("Doctor Test CA");
    let server = TlsOrigin::http1(&leaf(&ca, Validity::EndsIn(5)));
    let report = doctor(&config(server.addr(), Some(&ca), |_| {})).await;
    let checked = only_server(&report);
    assert!(checked.verdict.healthy, "{checked:#?}");
    assert_eq!(checked.warnings.len(), 1, "{checked:#?}");
    assert!(
        checked.warnings[0].contains("expires in 5 days"),
        "{:?}",
        checked.warnings
    );
    assert_eq!(report.summary.warnings, 1);
    assert_eq!(report.summary.failing, 0);
}

#[tokio::test]
async fn certificate_from_another_ca_points_at_tls_ca_file() {
    let ca = TestCa::new("Doctor Test CA");
    let other = TestCa::new("Someone Else's CA");
    let server = TlsOrigin::http1(&leaf(&other, Validity::Current));
    let report = doctor(&config(server.addr(), Some(&ca), |_| {})).await;
    let verdict = &only_server(&report).verdict;
    assert_eq!(verdict.kind, Some("tls_certificate_error"));
    let cause = verdict.cause.as_deref().unwrap_or_default();
    assert!(cause.contains("issued by CN=Someone Else's CA"), "{cause}");
    assert!(cause.contains("/etc/gatehouse/upstream-ca.pem"), "{cause}");
    let fix = verdict.fix.as_deref().unwrap_or_default();
    assert!(fix.contains("upstream.app.tls_ca_file"), "{fix}");
}

#[tokio::test]
async fn wrong_name_points_at_tls_server_name() {
    let ca = TestCa::new("Doctor Test CA");
    let cert = ca.leaf(&["app.internal"]);
    let server = TlsOrigin::http1(&cert);
    let report = doctor(&config(server.addr(), Some(&ca), |_| {})).await;
    let verdict = &only_server(&report).verdict;
    assert_eq!(verdict.kind, Some("tls_certificate_error"), "{verdict:#?}");
    let cause = verdict.cause.as_deref().unwrap_or_default();
    assert!(
        cause.contains("valid for app.internal, not for 127.0.0.1"),
        "{cause}"
    );
    let fix = verdict.fix.as_deref().unwrap_or_default();
    assert!(
        fix.contains("upstream.app.tls_server_name") && fix.contains("app.internal"),
        "{fix}"
    );

    // With tls_server_name set to the certificate's name, the same server is healthy.
    let report = doctor(&config(server.addr(), Some(&ca), |loaded| {
        loaded.config.upstreams[0].tls.server_name = Some("app.internal".to_owned());
    }))
    .await;
    let checked = only_server(&report);
    assert!(checked.verdict.healthy, "{checked:#?}");
    assert_eq!(
        checked.tls.as_ref().map(|t| t.server_name.as_str()),
        Some("app.internal")
    );
}

#[tokio::test]
async fn plain_http_behind_tls_is_a_protocol_error() {
    let (addr, thread) = plain_http();
    let report = doctor(&config(addr, None, |_| {})).await;
    let verdict = &only_server(&report).verdict;
    assert_eq!(verdict.kind, Some("tls_protocol_error"), "{verdict:#?}");
    let cause = verdict.cause.as_deref().unwrap_or_default();
    assert!(cause.contains("speaks plain HTTP"), "{cause}");
    assert!(cause.contains("400"), "{cause}");
    let fix = verdict.fix.as_deref().unwrap_or_default();
    assert!(
        fix.starts_with(
            "the port speaks plain HTTP: write the server as host:port without https://"
        ),
        "{fix}"
    );
    let _ = thread.join();
}

#[tokio::test]
async fn required_client_certificate_points_at_tls_client_cert() {
    let ca = TestCa::new("Doctor Test CA");
    let cert = leaf(&ca, Validity::Current);
    let server = TlsOrigin::builder(&cert)
        .require_client_cert(ca.cert_der())
        .start();
    let report = doctor(&config(server.addr(), Some(&ca), |_| {})).await;
    let verdict = &only_server(&report).verdict;
    assert_eq!(verdict.kind, Some("tls_alert_received"), "{verdict:#?}");
    let cause = verdict.cause.as_deref().unwrap_or_default();
    assert!(cause.contains("certificate_required"), "{cause}");
    let fix = verdict.fix.as_deref().unwrap_or_default();
    assert!(fix.contains("upstream.app.tls_client_cert"), "{fix}");
}

#[tokio::test]
async fn unusable_ca_file_is_a_configuration_problem() {
    let report = doctor(&config("127.0.0.1:9".parse().unwrap(), None, |loaded| {
        loaded.config.upstreams[0].tls.ca = Some(CaBundle {
            path: "/etc/gatehouse/broken-ca.pem".into(),
            certs: vec![CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x01])],
        });
    }))
    .await;
    let verdict = &only_server(&report).verdict;
    assert_eq!(
        verdict.kind,
        Some("proxy_configuration_error"),
        "{verdict:#?}"
    );
    let fix = verdict.fix.as_deref().unwrap_or_default();
    assert!(
        fix.contains("upstream.app.tls_ca_file (/etc/gatehouse/broken-ca.pem)"),
        "{fix}"
    );
}

/// An `http2` upstream offers `h2`; a server that chooses it is asked over HTTP/2 (here the
/// test kit's TLS origin relays the decrypted bytes to an h2c server in the test).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_upstream_speaks_h2_when_the_server_chooses_it() {
    use http_body_util::Full;
    use hyper::body::{Bytes, Incoming};
    use hyper_util::rt::{TokioExecutor, TokioIo};

    let seen = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let h2c = listener.local_addr().unwrap();
    let recorded = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let recorded = Arc::clone(&recorded);
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |request: http::Request<Incoming>| {
                        recorded.lock().unwrap().push(format!(
                            "{:?} {} {}",
                            request.version(),
                            request.method(),
                            request.uri()
                        ));
                        async {
                            Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                                Bytes::from_static(b"pong"),
                            )))
                        }
                    });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    let ca = TestCa::new("Doctor Test CA");
    let origin = TlsOrigin::builder(&leaf(&ca, Validity::Current))
        .alpn(&[b"h2", b"http/1.1"])
        .relay_to(h2c)
        .start();
    let loaded = config(origin.addr(), Some(&ca), |loaded| {
        loaded.config.upstreams[0].http2 = true;
    });
    let report = doctor(&loaded).await;
    let checked = only_server(&report);
    assert!(checked.verdict.healthy, "{checked:#?}");
    let tls = checked.tls.as_ref().unwrap();
    assert_eq!(tls.alpn_offered, ["h2", "http/1.1"]);
    assert_eq!(
        tls.negotiated
            .as_ref()
            .and_then(|n| n.facts.alpn.as_deref()),
        Some("h2")
    );
    assert_eq!(checked.http.as_ref().and_then(|h| h.status), Some(200));
    let requests = seen.lock().unwrap().clone();
    assert_eq!(
        requests,
        [format!("HTTP/2.0 GET https://{}/ping", origin.addr())]
    );
}

/// An `http2` upstream whose server picks `http/1.1` is asked over HTTP/1.1.
#[tokio::test]
async fn http2_upstream_falls_back_to_http1_when_the_server_chooses_it() {
    let ca = TestCa::new("Doctor Test CA");
    let server = TlsOrigin::http1(&leaf(&ca, Validity::Current));
    let loaded = config(server.addr(), Some(&ca), |loaded| {
        loaded.config.upstreams[0].http2 = true;
    });
    let report = doctor(&loaded).await;
    let checked = only_server(&report);
    assert!(checked.verdict.healthy, "{checked:#?}");
    let tls = checked.tls.as_ref().unwrap();
    assert_eq!(tls.alpn_offered, ["h2", "http/1.1"]);
    assert_eq!(
        tls.negotiated
            .as_ref()
            .and_then(|n| n.facts.alpn.as_deref()),
        Some("http/1.1")
    );
}
