//! `[acme]` and the `acme` key of `[[server.tls]]`: automatic certificates (RFC 8555).
//!
//! Checks the directory URL, the contact, the CA file, the challenge types and the names to
//! order, and warns where the CA could not reach gatehouse: a route with a wildcard host (which
//! would need DNS-01, not offered), HTTP-01 without a plain listener on port 80, TLS-ALPN-01
//! without an `acme` TLS listener on port 443. It does not talk to the CA; that is the proxy's
//! `acme` module, which also decides when to renew.

use std::path::Path;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use toml::Spanned;

use crate::diag::Sink;
use crate::model::{AcmeChallenge, AcmeConfig, HostMatch, RouteConfig, ServerConfig};
use crate::raw::{RawAcme, RawRoute, RawTlsListener};

/// Let's Encrypt's production directory, the default.
pub(super) const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";
/// Let's Encrypt's staging directory (`directory = "letsencrypt-staging"`).
pub(super) const LETS_ENCRYPT_STAGING: &str =
    "https://acme-staging-v02.api.letsencrypt.org/directory";
/// A CA file of roots is a few KiB.
const MAX_CA_FILE: u64 = 1024 * 1024;

/// The `[acme]` settings when a TLS listener has `acme = true`; else `None` (and a warning for
/// an `[acme]` table that would do nothing).
pub(super) fn acme(
    raw: Option<&Spanned<RawAcme>>,
    raw_tls: Option<&[Spanned<RawTlsListener>]>,
    raw_routes: &[Spanned<RawRoute>],
    server: &ServerConfig,
    routes: &[RouteConfig],
    base: &Path,
    sink: &mut Sink<'_>,
) -> Option<AcmeConfig> {
    let on = raw_tls
        .unwrap_or_default()
        .iter()
        .enumerate()
        .find(|(_, t)| t.get_ref().acme.as_ref().is_some_and(|a| *a.get_ref()));
    let Some((index, listener)) = on else {
        if let Some(raw) = raw {
            sink.warning(
                Some(raw.span()),
                "acme",
                "[acme] has no effect: no [[server.tls]] has acme = true",
                "add acme = true to the [[server.tls]] that should serve the certificates, or remove [acme]",
            );
        }
        return None;
    };
    let empty = RawAcme::default();
    let table = raw.map_or(&empty, Spanned::get_ref);
    let directory = directory(table.directory.as_ref(), sink);
    let email = table.email.as_ref().and_then(|e| email(e, sink));
    let ca_file = table.ca_file.as_ref().and_then(|c| ca_file(c, base, sink));
    let challenges = challenges(table.challenges.as_ref(), sink);
    let domains = match &table.domains {
        Some(list) => listed_domains(list, sink),
        None => {
            wildcard_route_warnings(raw_routes, sink);
            route_domains(routes)
        }
    };
    // Listed names that were all refused are reported each at its own line already.
    let listed = table
        .domains
        .as_ref()
        .is_some_and(|l| !l.get_ref().is_empty());
    if domains.is_empty() && !listed {
        sink.error(
            Some(listener.span()),
            format!("server.tls[{index}].acme"),
            "acme = true, but there is no name to order a certificate for: no route has an exact host and [acme] lists no domains",
            "give the routes exact hosts (host = \"example.com\"), or list them: [acme] domains = [\"example.com\"]",
        );
    }
    reachability_warnings(&challenges, server, listener, index, sink);
    Some(AcmeConfig {
        directory,
        email,
        ca_file,
        challenges,
        domains,
    })
}

fn directory(raw: Option<&Spanned<String>>, sink: &mut Sink<'_>) -> String {
    let Some(raw) = raw else {
        return LETS_ENCRYPT.to_owned();
    };
    match raw.get_ref().as_str() {
        "letsencrypt" => return LETS_ENCRYPT.to_owned(),
        "letsencrypt-staging" => return LETS_ENCRYPT_STAGING.to_owned(),
        _ => {}
    }
    let text = raw.get_ref();
    let host = text
        .strip_prefix("https://")
        .map(|rest| rest.split(['/', '?']).next().unwrap_or_default());
    match host {
        Some(host) if !host.is_empty() && !host.contains(char::is_whitespace) => text.clone(),
        _ => {
            sink.error(
                Some(raw.span()),
                "acme.directory",
                format!("{text:?} is not an https:// URL (RFC 8555 §6.1 wants HTTPS)"),
                format!(
                    "write the CA's directory URL, e.g. \"{LETS_ENCRYPT}\", or \"letsencrypt-staging\" while testing"
                ),
            );
            LETS_ENCRYPT.to_owned()
        }
    }
}

fn email(raw: &Spanned<String>, sink: &mut Sink<'_>) -> Option<String> {
    let text = raw.get_ref().trim();
    let text = text.strip_prefix("mailto:").unwrap_or(text);
    let valid = text
        .split_once('@')
        .is_some_and(|(user, domain)| !user.is_empty() && domain.contains('.'))
        && !text.contains(char::is_whitespace);
    if valid {
        return Some(text.to_owned());
    }
    sink.error(
        Some(raw.span()),
        "acme.email",
        format!("{:?} is not an e-mail address", raw.get_ref()),
        "write the address the CA may send expiry notices to, e.g. \"ops@example.com\", or remove `email`",
    );
    None
}

fn ca_file(raw: &Spanned<String>, base: &Path, sink: &mut Sink<'_>) -> Option<std::path::PathBuf> {
    let path = base.join(raw.get_ref());
    let problem = match super::read_bounded(&path, MAX_CA_FILE) {
        Err(e) => format!("cannot read {}: {e}", path.display()),
        Ok(bytes) => match CertificateDer::pem_slice_iter(&bytes).collect::<Result<Vec<_>, _>>() {
            Ok(certs) if !certs.is_empty() => return Some(path),
            Ok(_) => format!("no certificate in {}", path.display()),
            Err(e) => format!("{} is not valid PEM: {e}", path.display()),
        },
    };
    sink.error(
        Some(raw.span()),
        "acme.ca_file",
        problem,
        "point ca_file at a PEM file with the root certificates of the ACME server's HTTPS certificate, or remove it to trust the system's roots",
    );
    None
}

fn challenges(
    raw: Option<&Spanned<Vec<Spanned<String>>>>,
    sink: &mut Sink<'_>,
) -> Vec<AcmeChallenge> {
    const ALL: [AcmeChallenge; 2] = [AcmeChallenge::TlsAlpn01, AcmeChallenge::Http01];
    let Some(raw) = raw else {
        return ALL.to_vec();
    };
    let mut out = Vec::new();
    for (i, item) in raw.get_ref().iter().enumerate() {
        let key = format!("acme.challenges[{i}]");
        let name = item.get_ref().to_ascii_lowercase();
        match ALL.iter().find(|c| c.name() == name) {
            Some(c) if out.contains(c) => sink.warning(
                Some(item.span()),
                key,
                format!("{name} is listed twice"),
                "remove the second one",
            ),
            Some(c) => out.push(*c),
            None if name == "dns-01" => sink.error(
                Some(item.span()),
                key,
                "dns-01 is not offered: gatehouse cannot publish DNS records",
                "use \"tls-alpn-01\" and/or \"http-01\"; for wildcard names use a certificate from files",
            ),
            None => sink.error(
                Some(item.span()),
                key,
                format!("{:?} is not a challenge type gatehouse answers", item.get_ref()),
                "use \"tls-alpn-01\" and/or \"http-01\"",
            ),
        }
    }
    if out.is_empty() && raw.get_ref().is_empty() {
        sink.error(
            Some(raw.span()),
            "acme.challenges",
            "no challenge type: the CA could not validate any name",
            "write challenges = [\"tls-alpn-01\", \"http-01\"], or remove the key for that default",
        );
    }
    if out.is_empty() {
        return ALL.to_vec();
    }
    out
}

/// `domains` as written: exact DNS names (not wildcards, not IP addresses), lowercase, once each.
fn listed_domains(raw: &Spanned<Vec<Spanned<String>>>, sink: &mut Sink<'_>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (i, item) in raw.get_ref().iter().enumerate() {
        let key = format!("acme.domains[{i}]");
        let name = item.get_ref().trim_end_matches('.').to_ascii_lowercase();
        if name.starts_with("*.") {
            sink.error(
                Some(item.span()),
                key,
                format!("{name} is a wildcard: a CA issues wildcards only through DNS-01, which gatehouse does not offer"),
                "list the exact names, or serve the wildcard from a certificate file",
            );
        } else if name.parse::<std::net::IpAddr>().is_ok() || !is_dns_name(&name) {
            sink.error(
                Some(item.span()),
                key,
                format!("{:?} is not a DNS name", item.get_ref()),
                "write host names like \"example.com\"",
            );
        } else if !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

fn is_dns_name(name: &str) -> bool {
    name.len() <= 253
        && name.contains('.')
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// The routes' exact hosts, in file order, once each; IP addresses and single labels (like
/// `localhost`) are left out: no public CA issues for them.
fn route_domains(routes: &[RouteConfig]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for route in routes {
        if let Some(HostMatch::Exact(host)) = &route.host
            && host.parse::<std::net::IpAddr>().is_err()
            && is_dns_name(host)
            && !out.contains(host)
        {
            out.push(host.clone());
        }
    }
    out
}

fn wildcard_route_warnings(raw_routes: &[Spanned<RawRoute>], sink: &mut Sink<'_>) {
    for (i, route) in raw_routes.iter().enumerate() {
        if let Some(host) = &route.get_ref().host
            && host.get_ref().starts_with("*.")
        {
            sink.warning(
                Some(host.span()),
                format!("route[{i}].host"),
                format!(
                    "{} is a wildcard: ACME certificates cover exact hosts only (wildcards need DNS-01, which gatehouse does not offer)",
                    host.get_ref()
                ),
                "serve the wildcard from a certificate file (cert/key on the [[server.tls]]), or give the route exact hosts",
            );
        }
    }
}

/// The CA connects to port 80 for HTTP-01 and to port 443 for TLS-ALPN-01 (RFC 8555 §8.3,
/// RFC 8737 §3): a warning when no listener is there, since a port forward may still bring the
/// CA in.
fn reachability_warnings(
    challenges: &[AcmeChallenge],
    server: &ServerConfig,
    listener: &Spanned<RawTlsListener>,
    index: usize,
    sink: &mut Sink<'_>,
) {
    let key = format!("server.tls[{index}].acme");
    let plain_80 = server
        .listen
        .iter()
        .chain(&server.redirect_https)
        .any(|a| a.port() == 80);
    if challenges.contains(&AcmeChallenge::Http01) && !plain_80 {
        sink.warning(
            Some(listener.span()),
            key.clone(),
            "http-01 is validated on port 80, and no plain or redirect_https listener is on port 80",
            "add redirect_https = [\"0.0.0.0:80\"] to [server] (challenges are answered before the redirect), or forward port 80 to a plain listener",
        );
    }
    let tls_443 = server
        .tls
        .iter()
        .filter(|t| t.acme)
        .flat_map(|t| &t.listen)
        .any(|a| a.port() == 443);
    if challenges.contains(&AcmeChallenge::TlsAlpn01) && !tls_443 {
        sink.warning(
            Some(listener.span()),
            key,
            "tls-alpn-01 is validated on port 443, and no acme = true TLS listener is on port 443",
            "listen on \"0.0.0.0:443\" (or forward port 443 to this listener), or use challenges = [\"http-01\"]",
        );
    }
}
