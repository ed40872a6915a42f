//! The `Proxy-Status` (RFC 9209) and `Cache-Status` (RFC 9211) decoders, and the writers whose
//! output they read back.

use arbitrary::Unstructured;
use gatehouse_config::ProxyStatusMode;
use gatehouse_proxy::cache::serve::CacheStatus;
use gatehouse_proxy::failure::decode::{
    CacheStatusEntry, ProxyStatusEntry, parse_cache_status, parse_proxy_status,
};
use gatehouse_proxy::failure::proxy_status::ProxyStatusWriter;
use gatehouse_proxy::failure::{Failure, FailureKind, Phase};
use gatehouse_testkit::ProxyStatus;
use http::{HeaderValue, StatusCode};

use crate::header_values;

/// Names a gatehouse could be given (`server.name`); arbitrary strings are tried too.
const NAMES: &[&str] = &["gatehouse", "edge", "cdn.example", "a-b_c:1/2", "X*"];
/// The largest magnitude of an sf-integer (RFC 8941 §3.3.1).
const SF_INTEGER_MAX: i64 = 999_999_999_999_999;

// === Proxy-Status ===

/// The input is read twice: as `Proxy-Status` field lines (one per line), and as the facts of a
/// failure that gatehouse writes a member for.
///
/// Decoding, checked: field lines decode to the members of each line in order (one list, RFC
/// 9110 §5.3), and fail exactly when one line fails; each member's `kind` is the one its
/// `error` names, `received_status` is a status code, `words` is `describe()`, and it serialises
/// to JSON; the test kit's independent parser accepts the same lines and finds the same names
/// and parameter keys.
///
/// Round trip, checked: what the writer emits for any failure, in each mode, decodes to the
/// name, error, kind, parameters, next hop, details and received status that were written
/// (details and hops with the characters a structured string cannot carry replaced by `?`).
pub fn proxy_status(data: &[u8]) {
    if let Some(values) = header_values(data) {
        decode_proxy_status(&values);
    }
    let _ = proxy_status_round_trip(&mut Unstructured::new(data));
}

fn decode_proxy_status(values: &[HeaderValue]) {
    let all = parse_proxy_status(values);
    let each: Vec<_> = values.iter().map(|v| parse_proxy_status([v])).collect();
    match &all {
        Ok(entries) => {
            let joined: Vec<ProxyStatusEntry> = each
                .iter()
                .flat_map(|one| one.clone().expect("a line of a valid field is valid"))
                .collect();
            assert_eq!(entries, &joined);
            for entry in entries {
                check_proxy_entry(entry);
            }
        }
        Err(reason) => {
            assert!(each.iter().any(Result::is_err), "{reason}");
            assert!(reason.starts_with("Proxy-Status value #"), "{reason}");
        }
    }
    for (value, ours) in values.iter().zip(&each) {
        let Ok(text) = value.to_str() else {
            continue;
        };
        let kit = ProxyStatus::parse(text);
        assert_eq!(kit.is_ok(), ours.is_ok(), "{text:?}: {kit:?} / {ours:?}");
        let (Ok(kit), Ok(ours)) = (kit, ours) else {
            continue;
        };
        assert_eq!(kit.members.len(), ours.len(), "{text:?}");
        for (member, entry) in kit.members.iter().zip(ours) {
            assert_eq!(member.name, entry.proxy);
            let mut kit_keys = member.keys();
            kit_keys.sort_unstable();
            let known = [
                ("error", entry.error.is_some()),
                ("next-hop", entry.next_hop.is_some()),
                ("next-protocol", entry.next_protocol.is_some()),
                ("received-status", entry.received_status.is_some()),
                ("details", entry.details.is_some()),
            ];
            let mut our_keys: Vec<&str> = entry
                .params
                .iter()
                .map(|(key, _)| key.as_str())
                .chain(known.iter().filter(|(_, set)| *set).map(|(key, _)| *key))
                .collect();
            our_keys.sort_unstable();
            assert_eq!(kit_keys, our_keys, "{text:?}");
        }
    }
}

fn check_proxy_entry(entry: &ProxyStatusEntry) {
    assert_eq!(entry.words, entry.describe());
    assert!(entry.words.starts_with("gateway `"), "{}", entry.words);
    assert_eq!(
        entry.kind,
        entry.error.as_deref().and_then(FailureKind::from_token)
    );
    if let Some(status) = entry.received_status {
        assert!((100..=999).contains(&status));
    }
    let json = serde_json::to_value(entry).expect("a decoded member serialises");
    assert_eq!(json["words"], entry.words.as_str());
}

fn proxy_status_round_trip(u: &mut Unstructured<'_>) -> arbitrary::Result<()> {
    let name = pick_name(u)?;
    let mode = *u.choose(&[
        ProxyStatusMode::Full,
        ProxyStatusMode::Minimal,
        ProxyStatusMode::Off,
    ])?;
    let writer = ProxyStatusWriter::new(&name, mode);
    let written_name = if sfv::TokenRef::from_str(&name).is_ok() {
        name.as_str()
    } else {
        "gatehouse"
    };
    let full = mode == ProxyStatusMode::Full;

    let kind = *u.choose(&FailureKind::ALL)?;
    let details: String = u.arbitrary()?;
    let hop: Option<String> = u.arbitrary()?;
    let mut failure = Failure::new(kind, Phase::Internal, details.clone());
    let params = &mut failure.params;
    params.rcode = if u.arbitrary()? {
        Some(*u.choose(&["NXDOMAIN", "SERVFAIL", "REFUSED"])?)
    } else {
        None
    };
    params.status_code = if u.arbitrary()? {
        StatusCode::from_u16(u.int_in_range(400..=499)?).ok()
    } else {
        None
    };
    params.header_section_size = u.arbitrary()?;
    params.coding = u.arbitrary()?;
    params.alert_id = u.arbitrary()?;
    params.alert_message = u.arbitrary()?;
    let params = failure.params.clone();

    let value = writer.for_failure(&failure, hop.as_deref());
    if mode == ProxyStatusMode::Off {
        assert!(value.is_none());
    } else {
        let value = value.expect("a member for every failure");
        let entry = one(parse_proxy_status([&value]), &value);
        assert_eq!(entry.proxy, written_name);
        assert_eq!(entry.error.as_deref(), Some(kind.token()));
        assert_eq!(entry.kind, Some(kind));
        assert_eq!(entry.next_hop, hop.filter(|_| full).map(|h| sanitize(&h)));
        assert_eq!(
            entry.details,
            (full && !details.is_empty()).then(|| sanitize(&details))
        );
        assert_eq!(entry.received_status, None);
        let mut want: Vec<(String, String)> = Vec::new();
        let mut add = |key: &str, value: String| want.push((key.to_owned(), value));
        if let Some(rcode) = params.rcode {
            add("rcode", rcode.to_owned());
        }
        if let Some(status) = params.status_code {
            add("status-code", status.as_u16().to_string());
        }
        if let Some(size) = params.header_section_size {
            add(
                "header-section-size",
                size.min(SF_INTEGER_MAX as u64).to_string(),
            );
        }
        if let Some(coding) = &params.coding {
            add("coding", sanitize(coding));
        }
        if let Some(id) = params.alert_id {
            add("alert-id", id.to_string());
        }
        if let Some(message) = &params.alert_message {
            add("alert-message", sanitize(message));
        }
        assert_eq!(entry.params, want, "{value:?}");
    }

    let status = u.int_in_range(100u16..=999)?;
    let hop: String = u.arbitrary()?;
    let protocol: String = if u.arbitrary()? {
        (*u.choose(&["http/1.1", "h2", "h2c"])?).to_owned()
    } else {
        u.arbitrary()?
    };
    let value = writer.for_received_status(status, &hop, &protocol);
    let valid_protocol = sfv::TokenRef::from_str(&protocol).is_ok();
    match mode {
        ProxyStatusMode::Off => assert!(value.is_none()),
        ProxyStatusMode::Full if !valid_protocol => assert!(value.is_none()),
        ProxyStatusMode::Full | ProxyStatusMode::Minimal => {
            let value = value.expect("a member for a received status");
            let entry = one(parse_proxy_status([&value]), &value);
            assert_eq!(entry.proxy, written_name);
            assert_eq!(entry.received_status, Some(status));
            assert_eq!((entry.error.as_deref(), entry.kind), (None, None));
            assert_eq!(entry.next_hop, full.then(|| sanitize(&hop)));
            assert_eq!(entry.next_protocol, full.then_some(protocol));
            assert!(entry.params.is_empty(), "{value:?}");
        }
    }
    Ok(())
}

// === Cache-Status ===

/// `fwd` values gatehouse writes (RFC 9211 §2.2), and a few it does not.
const FWD: &[&str] = &[
    "miss",
    "uri-miss",
    "vary-miss",
    "stale",
    "bypass",
    "method",
    "request",
    "partial",
];
/// `detail` values gatehouse writes.
const DETAILS: &[&str] = &[
    "stale-if-error",
    "robots-guard",
    "maintenance",
    // `cache::policy::NotStorable::as_str`
    "method",
    "status",
    "no-store",
    "private",
    "authorization",
    "set-cookie",
    "vary-star",
    "no-freshness",
    "partial",
];

/// Like [`proxy_status`], for `Cache-Status`: the input as field lines, and as the facts of a
/// `CacheStatus` that gatehouse writes.
///
/// Decoding, checked: lines decode to the members of each line in order, and fail exactly when
/// one line fails; `words` is `describe()`; `fwd-status` is a status code; JSON serialises.
/// Round trip, checked: every field written (hit, fwd, fwd-status, ttl, stored, collapsed,
/// detail) decodes to what was written, with no stray parameters.
pub fn cache_status(data: &[u8]) {
    if let Some(values) = header_values(data) {
        decode_cache_status(&values);
    }
    let _ = cache_status_round_trip(&mut Unstructured::new(data));
}

fn decode_cache_status(values: &[HeaderValue]) {
    let all = parse_cache_status(values);
    let each: Vec<_> = values.iter().map(|v| parse_cache_status([v])).collect();
    match &all {
        Ok(entries) => {
            let joined: Vec<CacheStatusEntry> = each
                .iter()
                .flat_map(|one| one.clone().expect("a line of a valid field is valid"))
                .collect();
            assert_eq!(entries, &joined);
            for entry in entries {
                assert_eq!(entry.words, entry.describe());
                assert!(entry.words.starts_with("cache `"), "{}", entry.words);
                if let Some(status) = entry.fwd_status {
                    assert!((100..=999).contains(&status));
                }
                if let Some(ttl) = entry.ttl {
                    assert!(ttl.abs() <= SF_INTEGER_MAX);
                }
                let json = serde_json::to_value(entry).expect("a decoded member serialises");
                assert_eq!(json["words"], entry.words.as_str());
            }
        }
        Err(reason) => {
            assert!(each.iter().any(Result::is_err), "{reason}");
            assert!(reason.starts_with("Cache-Status value #"), "{reason}");
        }
    }
}

fn cache_status_round_trip(u: &mut Unstructured<'_>) -> arbitrary::Result<()> {
    let name = pick_name(u)?;
    if sfv::TokenRef::from_str(&name).is_err() {
        // `server.name` is validated as an sf-token before any member is written.
        return Ok(());
    }
    let pick = |u: &mut Unstructured<'_>, from: &[&'static str]| -> arbitrary::Result<_> {
        Ok(if u.arbitrary()? {
            Some(*u.choose(from)?)
        } else {
            None
        })
    };
    let status = CacheStatus {
        hit: u.arbitrary()?,
        fwd: pick(u, FWD)?,
        fwd_status: if u.arbitrary()? {
            Some(u.int_in_range(100..=999)?)
        } else {
            None
        },
        ttl: if u.arbitrary()? {
            Some(u.int_in_range(-SF_INTEGER_MAX..=SF_INTEGER_MAX)?)
        } else {
            None
        },
        stored: u.arbitrary()?,
        collapsed: u.arbitrary()?,
        detail: pick(u, DETAILS)?,
    };
    let value = status.header(&name).expect("a Cache-Status value");
    let entry = one(parse_cache_status([&value]), &value);
    assert_eq!(entry.cache, name);
    assert_eq!(entry.hit, status.hit);
    assert_eq!(entry.fwd.as_deref(), status.fwd);
    assert_eq!(entry.fwd_status, status.fwd_status);
    assert_eq!(entry.ttl, status.ttl);
    assert_eq!(entry.stored, status.stored);
    assert_eq!(entry.collapsed, status.collapsed);
    assert_eq!(entry.key, None);
    assert_eq!(entry.detail.as_deref(), status.detail);
    assert!(entry.params.is_empty(), "{value:?}");
    Ok(())
}

/// Checks a header written by CacheStatus with `ttl` from `cache::serve::ttl_secs` decodes.
pub(crate) fn cache_status_ttl_round_trip(ttl: i64) {
    let status = CacheStatus {
        hit: true,
        ttl: Some(ttl),
        ..CacheStatus::default()
    };
    let value = status.header("gatehouse").expect("a Cache-Status value");
    let entry = one(parse_cache_status([&value]), &value);
    assert_eq!(entry.ttl, Some(ttl), "{value:?}");
}

// === Shared ===

fn pick_name(u: &mut Unstructured<'_>) -> arbitrary::Result<String> {
    Ok(if u.arbitrary()? {
        (*u.choose(NAMES)?).to_owned()
    } else {
        u.arbitrary()?
    })
}

/// The single member a written value decodes to.
fn one<T: std::fmt::Debug>(decoded: Result<Vec<T>, String>, value: &HeaderValue) -> T {
    let mut members = decoded.unwrap_or_else(|e| panic!("{value:?} written, not decoded: {e}"));
    assert_eq!(members.len(), 1, "{value:?}: {members:?}");
    members.pop().expect("one member")
}

/// What `failure::proxy_status` does to text it puts in an sf-string: anything but printable
/// ASCII becomes `?`.
fn sanitize(value: &str) -> String {
    value
        .chars()
        .map(|c| if (' '..='~').contains(&c) { c } else { '?' })
        .collect()
}
