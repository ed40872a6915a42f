//! Checking one `servers` entry the way the proxy would use it: resolve its name with the
//! proxy's resolver, open a connection with the proxy's own steps and the server's
//! `ServerSettings` as the pool builds them (TCP connect, TLS handshake with the pool's client
//! configuration, then HTTP/1.1, or HTTP/2 over ALPN `h2` or cleartext prior knowledge for an
//! `http2` upstream; same timeouts, same header-size limit), send one request to the health
//! path on it, and classify every failure with the proxy's own code.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use gatehouse_config::UpstreamServer;
use gatehouse_proxy::failure::{Failure, FailureKind, Phase};
use gatehouse_proxy::upstream::server::{self, ConnSettings, ServerSettings};
use gatehouse_proxy::upstream::tls;
use rustls::RootCertStore;
use tokio::time::Instant;

use super::ports;
use super::verdict::{self, Verdict};
use crate::probe::millis;
use crate::probe::tlsdiag::{self, TlsReport};

mod conn;
mod facts;

use conn::{exchange, measure_headers, open};
use facts::DnsStep;
pub(crate) use facts::{Context, Facts, HttpStep, ServerReport, TlsDiagnosis, TlsStep};

/// Checks one `servers` entry: one report per address its name resolves to (one for a literal).
pub(crate) async fn check_entry(entry: &UpstreamServer, cx: &Context<'_>) -> Vec<ServerReport> {
    let address = &entry.address;
    let written = address.authority();
    let (addrs, dns) = match address.ip {
        Some(ip) => (vec![ip], None),
        None => {
            let started = Instant::now();
            match cx.dns.resolve(&address.host).await {
                Ok(resolved) => {
                    let step = DnsStep {
                        ms: millis(started.elapsed()),
                        addresses: resolved.addrs.clone(),
                    };
                    (resolved.addrs, Some(step))
                }
                Err(failure) => {
                    let label = format!("{}/{written}", cx.upstream.name);
                    let verdict = verdict::failed(&failure, &Facts::for_entry(cx, &written));
                    return vec![ServerReport {
                        server: written,
                        label,
                        address: None,
                        dns: None,
                        connect_ms: None,
                        tls: None,
                        http: None,
                        verdict,
                        warnings: Vec::new(),
                    }];
                }
            }
        }
    };
    let checks = addrs.into_iter().map(|ip| {
        let addr = SocketAddr::new(ip, address.port);
        let report = ServerReport {
            label: server::label(&cx.upstream.name, &address.host, address.ip.is_none(), addr),
            server: written.clone(),
            address: Some(addr),
            dns: dns.clone(),
            connect_ms: None,
            tls: None,
            http: None,
            verdict: Verdict::healthy(String::new()),
            warnings: Vec::new(),
        };
        check_address(report, entry, addr, cx)
    });
    futures_util::future::join_all(checks).await
}

async fn check_address(
    mut report: ServerReport,
    entry: &UpstreamServer,
    addr: SocketAddr,
    cx: &Context<'_>,
) -> ServerReport {
    let mut facts = Facts::for_entry(cx, &report.server);
    facts.address = Some(addr);
    if let Some(net) = cx
        .upstream
        .deny_addresses
        .iter()
        .find(|n| n.contains(addr.ip()))
    {
        let failure = Failure::new(
            FailureKind::DestinationIpProhibited,
            Phase::Selecting,
            format!("{} is in deny_addresses ({net})", addr.ip()),
        );
        report.verdict = verdict::failed(&failure, &facts);
        return report;
    }
    // What the pool would use for this server: TLS target and client configurations (ALPN
    // `h2` offered when `http2`), HTTP/2 prior knowledge on cleartext.
    let settings = ServerSettings::for_server(cx.upstream, entry);
    if let Some(target) = &settings.tls {
        let mut diagnosis = TlsDiagnosis::new(cx.upstream, &entry.address.host);
        diagnosis.server_name = target.server_name.to_string();
        match &target.clients {
            Ok(clients) => {
                diagnosis.alpn_offered = clients
                    .config(settings.http2)
                    .alpn_protocols
                    .iter()
                    .map(|p| String::from_utf8_lossy(p).into_owned())
                    .collect();
            }
            Err(why) => {
                diagnosis.config_error = Some(why.to_string());
                facts.tls = Some(diagnosis);
                report.verdict = verdict::failed(&tls_config_failure(cx, why), &facts);
                return report;
            }
        }
        report.tls = Some(TlsStep {
            server_name: diagnosis.server_name.clone(),
            alpn_offered: diagnosis.alpn_offered.clone(),
            handshake_ms: None,
            negotiated: None,
            certificate: None,
        });
        facts.tls = Some(diagnosis);
    }
    let (path, host) = match &cx.upstream.health {
        Some(health) => (
            health.path.clone().unwrap_or_else(|| "/".to_owned()),
            health.host.clone(),
        ),
        None => ("/".to_owned(), None),
    };
    let host = host.unwrap_or_else(|| report.server.clone());
    facts.request = format!("GET {path}");
    let mut step = HttpStep {
        request: facts.request.clone(),
        response_timeout_ms: millis(settings.response_timeout),
        header_limit: settings.max_response_header_size as u64,
        ..HttpStep::default()
    };

    let mut conn = match open(addr, &settings).await {
        Ok(opened) => {
            report.connect_ms = Some(millis(opened.connect_time));
            if let (Some(step), Some((negotiated, took))) = (&mut report.tls, opened.tls) {
                let now = SystemTime::now();
                let negotiated = TlsReport::new(negotiated, now);
                // A certificate close to its end is worth a warning whatever the verdict.
                report.warnings.extend(negotiated.expiry_warning(now));
                step.handshake_ms = Some(millis(took));
                step.negotiated = Some(negotiated);
            }
            step.protocol = Some(opened.conn.protocol.alpn());
            facts.protocol = Some(opened.conn.protocol);
            opened.conn
        }
        Err(failed) => {
            report.connect_ms = failed.connect_time.map(millis);
            if failed.connect_time.is_none() {
                // No TCP connection, so no handshake to report.
                report.tls = None;
            }
            let failure = failed.failure;
            if matches!(
                failure.kind,
                FailureKind::ConnectionRefused | FailureKind::ConnectionTimeout
            ) {
                facts.port_hints = ports::hints_for(addr, cx.listeners);
            }
            if let Some(diagnosis) = &mut facts.tls {
                diagnosis.timed_out = failed.tls_timed_out;
                diagnose_tls(&failure, addr, &host, cx, &settings, diagnosis).await;
                if let Some(step) = &mut report.tls {
                    step.certificate = diagnosis
                        .inspection
                        .as_ref()
                        .and_then(|i| i.certificate.clone());
                }
            }
            report.verdict = verdict::failed(&failure, &facts);
            return report;
        }
    };

    let tls_name = facts.tls.as_ref().map(|t| t.server_name.clone());
    let outcome = exchange(
        &mut conn,
        &path,
        &host,
        tls_name.as_deref(),
        &settings,
        cx.wait,
        &mut step,
    )
    .await;
    let result = match outcome {
        Err(failure) if failure.kind == FailureKind::HttpResponseHeaderSectionSize => {
            // Ask again with room to spare, to tell the operator how big the headers really are.
            step.header_bytes = measure_headers(addr, &path, &host, &settings).await;
            facts.header_bytes = step.header_bytes;
            Err(failure)
        }
        // A limit below hyper's smallest buffer (8 KiB), e.g. nginx's 4k proxy_buffer_size, is
        // checked on the size received.
        Ok(_)
            if step
                .header_bytes
                .is_some_and(|bytes| bytes > settings.max_response_header_size as u64) =>
        {
            facts.header_bytes = step.header_bytes;
            let mut failure = Failure::new(
                FailureKind::HttpResponseHeaderSectionSize,
                Phase::ReadingResponseHeaders,
                format!(
                    "response header section exceeds {} ({} bytes)",
                    cx.naming
                        .short(&cx.upstream.name, crate::naming::Key::MaxResponseHeaderSize),
                    settings.max_response_header_size
                ),
            );
            failure.params.header_section_size = step.header_bytes;
            Err(failure)
        }
        other => other,
    };
    facts.late_first_byte = step
        .late_first_byte_ms
        .map(|ms| Duration::from_secs_f64(ms / 1000.0));
    report.verdict = match result {
        Err(failure) => verdict::failed(&failure, &facts),
        // A health check without a path is a TCP connect: the status does not judge it.
        Ok(status) => verdict::answered(
            status,
            cx.upstream.health.as_ref().filter(|h| h.path.is_some()),
            &facts,
        ),
    };
    if report.verdict.healthy {
        report
            .warnings
            .extend(verdict::latency_warnings(&step, &settings, &facts));
    }
    report.http = Some(step);
    report
}

/// The pool's TLS client configuration cannot be built (a CA file that holds no usable CA, a
/// client key that does not fit): every request routed here would fail before connecting.
fn tls_config_failure(cx: &Context<'_>, why: &str) -> Failure {
    Failure::new(
        FailureKind::ProxyConfigurationError,
        Phase::Connecting,
        format!(
            "the TLS client configuration of upstream {} cannot be built: {why}",
            cx.upstream.name
        ),
    )
}

/// Learns more about a failed TLS handshake, for the verdict's words: the certificate and why
/// it failed (a second handshake that records it), or whether the port speaks plain HTTP.
async fn diagnose_tls(
    failure: &Failure,
    addr: SocketAddr,
    host: &str,
    cx: &Context<'_>,
    settings: &ConnSettings,
    diagnosis: &mut TlsDiagnosis,
) {
    // A second connection for a diagnosis gets the connect timeout, but at least a second: it
    // explains a failure already seen, and a loaded server should not make it fail as well.
    let patience = settings.connect_timeout.max(Duration::from_secs(1));
    match failure.kind {
        FailureKind::TlsCertificateError => {
            let roots = match &cx.upstream.tls.ca {
                Some(bundle) => {
                    let mut roots = RootCertStore::empty();
                    // The pool's configuration was built from the same certificates, so they
                    // are all usable; one that is not would only narrow the diagnosis.
                    let _ = roots.add_parsable_certificates(bundle.certs.iter().cloned());
                    roots
                }
                None => tls::cached_system_roots().clone(),
            };
            diagnosis.inspection =
                tlsdiag::inspect(addr, &diagnosis.server_name, Arc::new(roots), patience).await;
        }
        FailureKind::TlsProtocolError if !diagnosis.timed_out => {
            diagnosis.plain_http_status = tlsdiag::plain_http_status(addr, host, patience).await;
        }
        _ => {}
    }
}
