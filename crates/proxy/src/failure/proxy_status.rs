//! RFC 9209 `Proxy-Status` members, serialised as RFC 8941 structured fields with `sfv`.
//!
//! Owns the wire form only; which kind and which parameters apply is decided in `failure`.
//! How much a member reveals follows `server.proxy_status` (RFC 9209 §4: `next-hop` and `details`
//! reveal topology, so `minimal` leaves them out).

use gatehouse_config::ProxyStatusMode;
use http::HeaderValue;
use sfv::{Integer, ItemSerializer, KeyRef, RefBareItem, StringRef, Token, TokenRef};

use super::{Failure, FailureKind, FailureParams};

/// Builds this proxy's Proxy-Status members. Created once per config snapshot.
#[derive(Debug, Clone)]
pub struct ProxyStatusWriter {
    name: Token,
    mode: ProxyStatusMode,
    /// Each kind's member with no parameter but `error`, made once: most failures say no more
    /// (a refused connection, a timeout), and serialising a member costs more than the rest of
    /// the error response.
    bare: Vec<(FailureKind, Option<HeaderValue>)>,
}

impl ProxyStatusWriter {
    /// `name` must be a valid sf-token (config validation guarantees it); an invalid one falls
    /// back to `gatehouse` rather than failing at request time.
    pub fn new(name: &str, mode: ProxyStatusMode) -> Self {
        let name = Token::from_string(name.to_owned())
            .unwrap_or_else(|_| Token::from_string("gatehouse".to_owned()).expect("valid token"));
        let bare = FailureKind::ALL
            .iter()
            .map(|&kind| (kind, bare_member(&name, kind)))
            .collect();
        Self { name, mode, bare }
    }

    pub fn mode(&self) -> ProxyStatusMode {
        self.mode
    }

    /// The member for a failure gatehouse answered (or aborted) itself.
    pub fn for_failure(&self, failure: &Failure, next_hop: Option<&str>) -> Option<HeaderValue> {
        if self.mode == ProxyStatusMode::Off {
            return None;
        }
        let full = self.mode == ProxyStatusMode::Full;
        let params = &failure.params;
        // Named one by one (no `..`): a parameter added later must be told apart here too.
        let FailureParams {
            rcode,
            status_code,
            header_section_size,
            coding,
            alert_id,
            alert_message,
            retry_after: _,
            reason: _,
            client_gone: _,
        } = &**params;
        let says_more = rcode.is_some()
            || status_code.is_some()
            || header_section_size.is_some()
            || coding.is_some()
            || alert_id.is_some()
            || alert_message.is_some()
            || (full && (next_hop.is_some() || !failure.details.is_empty()));
        if !says_more
            && let Some((_, member)) = self.bare.iter().find(|(kind, _)| *kind == failure.kind)
        {
            return member.clone();
        }
        let error = TokenRef::from_str(failure.kind.token()).ok()?;
        let mut ser = ItemSerializer::new()
            .bare_item(&*self.name)
            .parameter(key("error"), error);
        if let Some(rcode) = params.rcode {
            ser = ser.parameter(key("rcode"), string(rcode));
        }
        if let Some(status) = params.status_code {
            ser = ser.parameter(
                key("status-code"),
                Integer::constant(i64::from(status.as_u16())),
            );
        }
        if let Some(size) = params.header_section_size {
            let size = i64::try_from(size)
                .unwrap_or(i64::MAX)
                .min(999_999_999_999_999);
            ser = ser.parameter(key("header-section-size"), Integer::constant(size));
        }
        if let Some(coding) = &params.coding {
            ser = ser.parameter(key("coding"), string(&sanitize(coding)));
        }
        if let Some(id) = params.alert_id {
            ser = ser.parameter(key("alert-id"), Integer::constant(i64::from(id)));
        }
        if let Some(message) = &params.alert_message {
            ser = ser.parameter(key("alert-message"), string(&sanitize(message)));
        }
        if full {
            if let Some(hop) = next_hop {
                ser = ser.parameter(key("next-hop"), string(&sanitize(hop)));
            }
            if !failure.details.is_empty() {
                ser = ser.parameter(key("details"), string(&sanitize(&failure.details)));
            }
        }
        HeaderValue::from_str(&ser.finish()).ok()
    }

    /// The member appended to an upstream's own 5xx, so "the origin said 502" reads differently
    /// from "the proxy said 502". `received-status` is told even in `minimal` mode: the status is
    /// visible to the client anyway and the distinction is the point of the member.
    /// `next_protocol` is the ALPN token of the connection the response came on (`http/1.1`,
    /// `h2`, `h2c`).
    pub fn for_received_status(
        &self,
        status: u16,
        next_hop: &str,
        next_protocol: &str,
    ) -> Option<HeaderValue> {
        if self.mode == ProxyStatusMode::Off {
            return None;
        }
        let mut ser = ItemSerializer::new()
            .bare_item(&*self.name)
            .parameter(key("received-status"), Integer::constant(i64::from(status)));
        if self.mode == ProxyStatusMode::Full {
            ser = ser
                .parameter(key("next-hop"), string(&sanitize(next_hop)))
                .parameter(
                    key("next-protocol"),
                    TokenRef::from_str(next_protocol).ok()?,
                );
        }
        HeaderValue::from_str(&ser.finish()).ok()
    }
}

/// `kind`'s member with `error` its only parameter, serialised as `for_failure` does.
fn bare_member(name: &Token, kind: FailureKind) -> Option<HeaderValue> {
    let error = TokenRef::from_str(kind.token()).ok()?;
    let ser = ItemSerializer::new()
        .bare_item(&**name)
        .parameter(key("error"), error);
    HeaderValue::from_str(&ser.finish()).ok()
}

fn key(name: &'static str) -> &'static KeyRef {
    KeyRef::from_str(name).expect("parameter names here are valid sf-keys")
}

fn string(value: &str) -> RefBareItem<'_> {
    match StringRef::from_str(value) {
        Ok(s) => RefBareItem::String(s),
        Err(_) => RefBareItem::String(StringRef::from_str("").expect("empty string is valid")),
    }
}

/// sf-strings allow printable ASCII only; anything else becomes `?` so a detail is never lost
/// entirely because of one odd byte.
fn sanitize(value: &str) -> String {
    value
        .chars()
        .map(|c| if (' '..='~').contains(&c) { c } else { '?' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failure::{FailureKind, Phase};

    #[test]
    fn minimal_member_has_error_and_kind_params_only() {
        let writer = ProxyStatusWriter::new("gatehouse", ProxyStatusMode::Minimal);
        let mut failure = Failure::new(FailureKind::DnsError, Phase::Resolving, "no such host");
        failure.params.rcode = Some("NXDOMAIN");
        let value = writer
            .for_failure(&failure, Some("app/10.0.0.5:3000"))
            .unwrap();
        assert_eq!(value, "gatehouse;error=dns_error;rcode=\"NXDOMAIN\"");
    }

    #[test]
    fn full_member_adds_next_hop_and_sanitised_details() {
        let writer = ProxyStatusWriter::new("edge", ProxyStatusMode::Full);
        let failure = Failure::new(
            FailureKind::ConnectionRefused,
            Phase::Connecting,
            "refused \u{e9}\"x\"",
        );
        let value = writer
            .for_failure(&failure, Some("app/10.0.0.5:3000"))
            .unwrap();
        assert_eq!(
            value,
            r#"edge;error=connection_refused;next-hop="app/10.0.0.5:3000";details="refused ?\"x\"""#
        );
    }

    /// The members made ahead are what serialising each gives (minimal mode leaves out what
    /// only full mode tells).
    #[test]
    fn bare_members_are_the_serialised_ones() {
        let cases = [
            (
                ProxyStatusMode::Minimal,
                "details",
                Some("app/10.0.0.5:3000"),
            ),
            (ProxyStatusMode::Full, "", None),
        ];
        for (mode, details, next_hop) in cases {
            let writer = ProxyStatusWriter::new("edge", mode);
            for kind in FailureKind::ALL {
                let failure = Failure::new(kind, Phase::Connecting, details);
                let value = writer.for_failure(&failure, next_hop);
                let expected = format!("edge;error={}", kind.token());
                assert_eq!(
                    value.as_ref().map(HeaderValue::as_bytes),
                    Some(expected.as_bytes())
                );
            }
        }
    }

    #[test]
    fn off_emits_nothing() {
        let writer = ProxyStatusWriter::new("gatehouse", ProxyStatusMode::Off);
        let failure = Failure::new(FailureKind::ConnectionRefused, Phase::Connecting, "x");
        assert!(writer.for_failure(&failure, None).is_none());
        assert!(writer.for_received_status(502, "a", "http/1.1").is_none());
    }

    #[test]
    fn received_status_member() {
        let writer = ProxyStatusWriter::new("gatehouse", ProxyStatusMode::Minimal);
        assert_eq!(
            writer.for_received_status(503, "app/x:1", "h2").unwrap(),
            "gatehouse;received-status=503"
        );
    }
}
