//! `server.admin_token`: read into the model, refused when it is not a bearer token, and the
//! warning for an admin listener off loopback without one.

use super::{TAIL, at, ok, one_error};
use crate::Severity;

#[test]
fn a_bearer_token_is_read() {
    let loaded = ok(&format!(
        "[server]\nadmin = \"127.0.0.1:9901\"\nadmin_token = \"c2VjcmV0-0123_abc.~+/=\"\n{TAIL}"
    ));
    assert_eq!(
        loaded.config.server.admin_token.as_deref(),
        Some("c2VjcmV0-0123_abc.~+/=")
    );
    assert!(loaded.warnings.is_empty(), "{:#?}", loaded.warnings);
}

#[test]
fn a_token_with_a_space_or_an_empty_token_is_an_error() {
    for token in ["two words", ""] {
        let d = one_error(&format!(
            "[server]\nadmin = \"127.0.0.1:9901\"\nadmin_token = \"{token}\"\n{TAIL}"
        ));
        at(&d, 3, 15, "server.admin_token", "non-empty bearer token");
    }
}

#[test]
fn an_admin_listener_off_loopback_without_a_token_is_a_warning() {
    let loaded = ok(&format!("[server]\nadmin = \"0.0.0.0:9901\"\n{TAIL}"));
    assert_eq!(loaded.warnings.len(), 1, "{:#?}", loaded.warnings);
    let w = &loaded.warnings[0];
    assert_eq!(w.severity, Severity::Warning);
    assert_eq!(w.key, "server.admin");
    assert!(w.message.contains("without a token"), "{w}");
    assert!(w.fix.contains("admin_token"), "{w}");

    // With a token, or on loopback, nothing to warn about.
    let with_token = ok(&format!(
        "[server]\nadmin = \"0.0.0.0:9901\"\nadmin_token = \"s3cret\"\n{TAIL}"
    ));
    assert!(with_token.warnings.is_empty(), "{:#?}", with_token.warnings);
    let loopback = ok(&format!("[server]\nadmin = \"[::1]:9901\"\n{TAIL}"));
    assert!(loopback.warnings.is_empty(), "{:#?}", loopback.warnings);
}
