//! Variant selection with `Vary` (RFC 9111 §4.1): the request fields a response varies on, and
//! whether a stored variant matches a request, with `Accept-Encoding` and `Accept-Language`
//! put in a canonical form first.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use super::field::{combined, elements, split_list};
use crate::cache::entry::StoredResponse;

/// The request field values a response's `Vary` names, taken from `request`, to keep in
/// [`StoredResponse::varied`]. Names are lowercased and deduplicated (in first-seen order);
/// several field lines of one name are combined with `", "`; `None` as a value means the
/// request had no such field. Returns `None` for `Vary: *` (not storable). Names that are
/// not valid field names are skipped (no request can carry them).
pub fn varied_values(
    response: &HeaderMap,
    request: &HeaderMap,
) -> Option<Vec<(HeaderName, Option<HeaderValue>)>> {
    let names = vary_names(response)?;
    Some(
        names
            .into_iter()
            .map(|name| {
                let value = combined(request, &name);
                (name, value)
            })
            .collect(),
    )
}

/// Whether `entry` may be used for `request` (RFC 9111 §4.1): each field its `Vary` names must
/// have the same value in `request` as in the request that stored it, after removing
/// whitespace around commas and combining field lines (and comparing `Accept-Encoding`
/// case-insensitively). A field absent from both matches; absent from one only does not. An
/// entry whose `Vary` contains `*` never matches.
pub fn selects(entry: &StoredResponse, request: &HeaderMap) -> bool {
    if vary_names(&entry.headers).is_none() {
        return false;
    }
    entry
        .varied
        .iter()
        .all(|(name, stored)| match (stored, combined(request, name)) {
            (None, None) => true,
            (Some(stored), Some(current)) => {
                normalised(name, stored.as_bytes()) == normalised(name, current.as_bytes())
            }
            _ => false,
        })
}

/// The field names a `Vary` lists, lowercased and deduplicated; `None` when it contains `*`.
pub(super) fn vary_names(headers: &HeaderMap) -> Option<Vec<HeaderName>> {
    let mut names: Vec<HeaderName> = Vec::new();
    for element in elements(headers, &header::VARY) {
        if element == b"*" {
            return None;
        }
        if let Ok(name) = HeaderName::from_bytes(element)
            && !names.contains(&name)
        {
            names.push(name);
        }
    }
    Some(names)
}

/// A field value with the whitespace around its list elements removed and empty elements
/// dropped. `Accept-Encoding` and `Accept-Language` are put in a canonical form (see
/// [`normalised_preferences`]), so that equivalent requests select the same variant.
fn normalised(name: &HeaderName, value: &[u8]) -> Vec<u8> {
    if name == header::ACCEPT_ENCODING || name == header::ACCEPT_LANGUAGE {
        return normalised_preferences(value);
    }
    split_list(value).join(&b","[..])
}

/// The most elements a preference list is normalised for; a longer one is compared as written
/// (lowercased), so that a hostile request cannot make every lookup sort a huge list.
const MAX_PREFERENCES: usize = 64;

/// `Accept-Encoding` / `Accept-Language` in canonical form (RFC 9110 §12.5.3, §12.5.4): each
/// element's coding or language range lowercased (both are case-insensitive), whitespace
/// and elements without one dropped, its weight rewritten without trailing zeros (`q=0.50` is `q=0.5`, `q=1.000` is no
/// weight), other parameters dropped (the grammar has none), duplicates dropped (the first
/// wins), then sorted by weight (highest first) and name. An element with an invalid weight is
/// kept as written. Order among elements is not a preference in either field once weights are
/// equal, so `gzip, br` and `br, gzip` are the same request.
pub fn normalised_preferences(value: &[u8]) -> Vec<u8> {
    let elements = split_list(value);
    if elements.len() > MAX_PREFERENCES {
        return value.to_ascii_lowercase();
    }
    let mut parsed: Vec<(u16, Vec<u8>)> = Vec::with_capacity(elements.len());
    for element in elements {
        let mut parts = element.split(|&b| b == b';');
        let name = parts
            .next()
            .unwrap_or_default()
            .trim_ascii()
            .to_ascii_lowercase();
        if name.is_empty() {
            continue;
        }
        let mut weight = Some(1000);
        for param in parts {
            let param = param.trim_ascii();
            if let Some(q) = param
                .strip_prefix(b"q=")
                .or_else(|| param.strip_prefix(b"Q="))
            {
                weight = qvalue(q.trim_ascii());
            }
        }
        let Some(weight) = weight else {
            parsed.push((0, element.to_ascii_lowercase()));
            continue;
        };
        if parsed.iter().any(|(_, seen)| *seen == name) {
            continue;
        }
        parsed.push((weight, name));
    }
    parsed.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    let mut out = Vec::with_capacity(value.len());
    for (i, (weight, name)) in parsed.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(name);
        if *weight < 1000 && !name.contains(&b';') {
            let text = format!("{:.3}", f64::from(*weight) / 1000.0);
            let text = text.trim_end_matches('0').trim_end_matches('.');
            out.extend_from_slice(b";q=");
            out.extend_from_slice(text.as_bytes());
        }
    }
    out
}

/// An RFC 9110 §12.4.2 qvalue in thousandths: `0`, `0.5`, `1`, `1.000`; `None` when invalid.
fn qvalue(text: &[u8]) -> Option<u16> {
    let (whole, fraction) = match text.iter().position(|&b| b == b'.') {
        Some(dot) => (&text[..dot], &text[dot + 1..]),
        None => (text, &b""[..]),
    };
    if fraction.len() > 3 || !fraction.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut thousandths = 0u16;
    for i in 0..3 {
        let digit = fraction.get(i).map_or(0, |d| u16::from(d - b'0'));
        thousandths = thousandths * 10 + digit;
    }
    match whole {
        b"0" => Some(thousandths),
        b"1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}
