//! `acme = true` on `[[server.tls]]` and the `[acme]` table: defaults, the names taken from
//! routes, each error at its line, and the warnings about what the CA could not reach.

use super::{at, diags, ok, one_error};
use crate::*;

/// An `acme = true` listener on 443, a redirect listener on 80 and a route for `example.com`.
const BASE: &str = "[server]\nredirect_https = [\"0.0.0.0:80\"]\n[[server.tls]]\nlisten = [\"0.0.0.0:443\"]\nacme = true\n";
const ROUTES: &str = "[[route]]\nhost = \"example.com\"\nupstream = \"api\"\n[[route]]\nhost = \"www.example.com\"\nupstream = \"api\"\n[[route]]\nhost = \"example.com\"\npath = \"/x\"\nupstream = \"api\"\n[upstream.api]\nservers = [\"127.0.0.1:3000\"]\n";

#[test]
fn acme_alone_is_enough_and_takes_defaults_and_the_routes_exact_hosts() {
    let loaded = ok(&format!("{BASE}{ROUTES}"));
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let tls = &loaded.config.server.tls[0];
    assert!(tls.acme);
    assert!(tls.certificates.is_empty());
    let acme = loaded.config.acme.expect("acme");
    assert_eq!(
        acme.directory,
        "https://acme-v02.api.letsencrypt.org/directory"
    );
    assert_eq!(acme.email, None);
    assert_eq!(acme.ca_file, None);
    assert_eq!(
        acme.challenges,
        [AcmeChallenge::TlsAlpn01, AcmeChallenge::Http01]
    );
    assert_eq!(acme.domains, ["example.com", "www.example.com"]);
}

#[test]
fn the_acme_table_is_read() {
    let text = format!(
        "{BASE}[acme]\ndirectory = \"letsencrypt-staging\"\nemail = \"mailto:ops@example.com\"\nchallenges = [\"http-01\"]\ndomains = [\"A.example.com\", \"b.example.com\", \"a.example.com\"]\n{ROUTES}"
    );
    let acme = ok(&text).config.acme.expect("acme");
    assert_eq!(
        acme.directory,
        "https://acme-staging-v02.api.letsencrypt.org/directory"
    );
    assert_eq!(acme.email.as_deref(), Some("ops@example.com"));
    assert_eq!(acme.challenges, [AcmeChallenge::Http01]);
    assert_eq!(acme.domains, ["a.example.com", "b.example.com"]);
}

#[test]
fn no_name_to_order_is_an_error_at_the_listener() {
    let text = format!(
        "{BASE}[[route]]\nhost = \"*.example.com\"\nupstream = \"api\"\n[upstream.api]\nservers = [\"127.0.0.1:3000\"]\n"
    );
    let all = diags(&text);
    let error = one_error(&text);
    at(&error, 3, 1, "server.tls[0].acme", "no name to order");
    let wildcard = all
        .iter()
        .find(|d| d.key == "route[0].host")
        .expect("the wildcard route is a warning");
    assert_eq!(wildcard.severity, Severity::Warning);
    assert!(wildcard.message.contains("DNS-01"), "{wildcard}");
}

#[test]
fn each_bad_value_is_an_error_at_its_line() {
    let text = format!(
        "{BASE}[acme]\ndirectory = \"http://ca.test/dir\"\nemail = \"nobody\"\nca_file = \"/nonexistent/ca.pem\"\nchallenges = [\"dns-01\", \"smoke-signal\"]\ndomains = [\"*.example.com\", \"10.0.0.1\"]\n{ROUTES}"
    );
    let all = diags(&text);
    let errors: Vec<&Diagnostic> = all.iter().filter(|d| d.is_error()).collect();
    let keys: Vec<&str> = errors.iter().map(|d| d.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "acme.directory",
            "acme.email",
            "acme.ca_file",
            "acme.challenges[0]",
            "acme.challenges[1]",
            "acme.domains[0]",
            "acme.domains[1]",
        ],
        "{all:#?}"
    );
    at(errors[0], 7, 13, "acme.directory", "https://");
    at(
        errors[3],
        10,
        15,
        "acme.challenges[0]",
        "dns-01 is not offered",
    );
    at(errors[5], 11, 12, "acme.domains[0]", "wildcard");
}

#[test]
fn challenges_the_ca_could_not_reach_are_warnings() {
    let text = format!("[[server.tls]]\nlisten = [\"127.0.0.1:8443\"]\nacme = true\n{ROUTES}");
    let warnings = ok(&text).warnings;
    let messages: Vec<&str> = warnings.iter().map(|d| d.message.as_str()).collect();
    assert!(
        messages.iter().any(|m| m.contains("port 80")),
        "{messages:?}"
    );
    assert!(
        messages.iter().any(|m| m.contains("port 443")),
        "{messages:?}"
    );
    assert!(warnings.iter().all(|d| d.key == "server.tls[0].acme"));
}

#[test]
fn an_acme_table_without_an_acme_listener_is_a_warning() {
    let text = format!("[acme]\nemail = \"ops@example.com\"\n{ROUTES}");
    let loaded = ok(&text);
    assert!(loaded.config.acme.is_none());
    assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
    assert_eq!(loaded.warnings[0].key, "acme");
}

#[test]
fn a_listener_with_neither_files_nor_acme_still_needs_a_certificate() {
    let text = format!("[[server.tls]]\nlisten = [\"0.0.0.0:443\"]\n{ROUTES}");
    let error = one_error(&text);
    assert!(error.fix.contains("acme = true"), "{error}");
}
