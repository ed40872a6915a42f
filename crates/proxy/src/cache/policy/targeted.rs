//! Targeted cache-control fields (RFC 9213), such as `CDN-Cache-Control`: which field's
//! directives govern a response, and parsing one as a Structured Field Dictionary.

use http::header::{HeaderMap, HeaderName};

use super::directives::{CacheControl, DELTA_SECONDS_MAX};
use super::field::combined;

/// The cache directives of a response for gatehouse (RFC 9213 §2.2): those of the first of
/// `targets` (in order of precedence) that the response carries with a valid value, else its
/// `Cache-Control`. When a targeted field applies, `Cache-Control` is ignored entirely.
pub fn response_directives(headers: &HeaderMap, targets: &[HeaderName]) -> CacheControl {
    targets
        .iter()
        .find_map(|name| targeted_directives(headers, name))
        .unwrap_or_else(|| CacheControl::parse(headers))
}

/// The first of `targets` whose directives apply to the response (see
/// [`response_directives`]); `None` when `Cache-Control` decides.
pub fn governing_target<'t>(
    headers: &HeaderMap,
    targets: &'t [HeaderName],
) -> Option<&'t HeaderName> {
    targets
        .iter()
        .find(|name| targeted_directives(headers, name).is_some())
}

/// The directives of the targeted field `name` (RFC 9213 §2.1): a Structured Field Dictionary
/// (RFC 8941), all field lines combined. `None` when absent or not a valid Dictionary (the
/// field is then ignored, §2.1). Directive names are the dictionary's keys (lowercase by SF
/// syntax); `max-age` and `s-maxage` need a non-negative Integer (anything else reads as 0,
/// i.e. stale, like a malformed `Cache-Control` `max-age`); the other delta-seconds
/// directives are ignored when not a non-negative Integer; every other directive counts when
/// present with any value but Boolean false.
pub fn targeted_directives(headers: &HeaderMap, name: &HeaderName) -> Option<CacheControl> {
    let value = combined(headers, name)?;
    let dictionary: sfv::Dictionary = sfv::Parser::new(value.as_bytes()).parse().ok()?;
    let mut cc = CacheControl::default();
    for (key, entry) in &dictionary {
        let item = match entry {
            sfv::ListEntry::Item(item) => Some(&item.bare_item),
            sfv::ListEntry::InnerList(_) => None,
        };
        let present = !matches!(item, Some(sfv::BareItem::Boolean(false)));
        let seconds = item
            .and_then(sfv::BareItem::as_integer)
            .map(i64::from)
            .and_then(|n| u64::try_from(n).ok())
            .map(|n| n.min(DELTA_SECONDS_MAX));
        match key.as_str() {
            "no-store" => cc.no_store |= present,
            "no-cache" => cc.no_cache |= present,
            "private" => cc.private |= present,
            "public" => cc.public |= present,
            "must-revalidate" => cc.must_revalidate |= present,
            "proxy-revalidate" => cc.proxy_revalidate |= present,
            "must-understand" => cc.must_understand |= present,
            "max-age" => cc.max_age = Some(seconds.unwrap_or(0)),
            "s-maxage" => cc.s_maxage = Some(seconds.unwrap_or(0)),
            "stale-if-error" => cc.stale_if_error = seconds,
            "stale-while-revalidate" => cc.stale_while_revalidate = seconds,
            _ => {}
        }
    }
    Some(cc)
}
