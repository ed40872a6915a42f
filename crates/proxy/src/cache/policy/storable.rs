//! Whether a response may be stored (RFC 9111 §3), and why not ([`NotStorable`]).

use std::fmt;

use http::header::{self, HeaderMap, HeaderName};
use http::{Method, StatusCode};

use super::age::age_field;
use super::directives::CacheControl;
use super::field::http_date;
use super::targeted::response_directives;
use super::vary::vary_names;

/// Why a response is not stored (for logs and the `Cache-Status` `detail`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotStorable {
    /// The request method is not GET.
    Method,
    /// The status is not final, not understood, or not cacheable without explicit freshness.
    Status,
    /// `no-store` in the request or the response.
    NoStore,
    /// `private` in the response.
    Private,
    /// The request carries `Authorization` and the response does not allow shared caching.
    Authorization,
    /// The response sets a cookie.
    SetCookie,
    /// `Vary: *`.
    VaryStar,
    /// No explicit freshness and no way to compute a heuristic one.
    NoFreshness,
    /// A partial response (206, or a `Content-Range` field).
    Partial,
    /// An `Age` field that is not a non-negative integer (RFC 9111 §5.1: ignore the response).
    InvalidAge,
}

impl NotStorable {
    /// The reason as a short lowercase token.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Method => "method",
            Self::Status => "status",
            Self::NoStore => "no-store",
            Self::Private => "private",
            Self::Authorization => "authorization",
            Self::SetCookie => "set-cookie",
            Self::VaryStar => "vary-star",
            Self::NoFreshness => "no-freshness",
            Self::Partial => "partial",
            Self::InvalidAge => "invalid-age",
        }
    }
}

impl fmt::Display for NotStorable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a response may be stored by gatehouse's shared cache (RFC 9111 §3).
///
/// `method` is the request's method (only GET is stored; HEAD never stores a body), `request`
/// and `response` the header fields, `status` the response's status. The response's directives
/// come from the first of `targets` it carries validly (RFC 9213), else its `Cache-Control`
/// (see [`response_directives`]). Checked in this order:
///
/// - method other than GET => [`NotStorable::Method`];
/// - `no-store` in the request, or in the response => [`NotStorable::NoStore`] (a response's
///   `no-store` is ignored when it also has `must-understand` and gatehouse understands the
///   status, RFC 9111 §5.2.2.3);
/// - response `private`, with or without field names => [`NotStorable::Private`];
/// - request `Authorization` and none of `public`, `s-maxage`, `must-revalidate` in the
///   response => [`NotStorable::Authorization`] (§3.5);
/// - response `Set-Cookie` => [`NotStorable::SetCookie`]. This is gatehouse's own rule (Varnish
///   has the same one): RFC 9111 lets a shared cache store such a response, but a cookie is
///   almost always meant for one user, and serving it to others leaks sessions;
/// - `Vary: *` => [`NotStorable::VaryStar`];
/// - 206 or a `Content-Range` field => [`NotStorable::Partial`] (ranges are not combined);
/// - an `Age` whose first member is not a non-negative integer => [`NotStorable::InvalidAge`]
///   (RFC 9111 §5.1: "a cache SHOULD ignore the response");
/// - 1xx, 304, 600 and above, or `must-understand` with a status gatehouse does not know the
///   caching rules of => [`NotStorable::Status`];
/// - then a response with explicit freshness (`max-age`, `s-maxage`, `Expires`) is storable;
///   without it, the status must be heuristically cacheable (RFC 9110 §15.1) or the response
///   `public`, else [`NotStorable::Status`];
/// - a heuristically cacheable response with a valid `Last-Modified` is storable (heuristic
///   freshness); one without (or a `public` one whose status is not heuristically cacheable)
///   has a freshness lifetime of 0 and is stored only when `keep_without_freshness`, else
///   [`NotStorable::NoFreshness`].
pub fn storable(
    method: &Method,
    request: &HeaderMap,
    status: StatusCode,
    response: &HeaderMap,
    keep_without_freshness: bool,
    targets: &[HeaderName],
) -> Result<(), NotStorable> {
    if method != Method::GET {
        return Err(NotStorable::Method);
    }
    let request_cc = CacheControl::parse(request);
    let cc = response_directives(response, targets);
    if request_cc.no_store || (cc.no_store && !(cc.must_understand && understood(status))) {
        return Err(NotStorable::NoStore);
    }
    if cc.private {
        return Err(NotStorable::Private);
    }
    if request.contains_key(header::AUTHORIZATION)
        && !(cc.public || cc.s_maxage.is_some() || cc.must_revalidate)
    {
        return Err(NotStorable::Authorization);
    }
    if response.contains_key(header::SET_COOKIE) {
        return Err(NotStorable::SetCookie);
    }
    if vary_names(response).is_none() {
        return Err(NotStorable::VaryStar);
    }
    if status == StatusCode::PARTIAL_CONTENT || response.contains_key(header::CONTENT_RANGE) {
        return Err(NotStorable::Partial);
    }
    if age_field(response).is_err() {
        return Err(NotStorable::InvalidAge);
    }
    if status.is_informational()
        || status == StatusCode::NOT_MODIFIED
        || status.as_u16() >= 600
        || (cc.must_understand && !understood(status))
    {
        return Err(NotStorable::Status);
    }
    if cc.max_age.is_some() || cc.s_maxage.is_some() || response.contains_key(header::EXPIRES) {
        return Ok(());
    }
    let heuristic = heuristically_cacheable(status);
    if !heuristic && !cc.public {
        return Err(NotStorable::Status);
    }
    if heuristic && http_date(response, &header::LAST_MODIFIED).is_some() {
        return Ok(());
    }
    if keep_without_freshness {
        Ok(())
    } else {
        Err(NotStorable::NoFreshness)
    }
}

/// Statuses RFC 9110 §15.1 defines as heuristically cacheable.
pub(super) fn heuristically_cacheable(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        200 | 203 | 204 | 206 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// Statuses whose caching requirements gatehouse implements, for `must-understand`
/// (RFC 9111 §5.2.2.3): the heuristically cacheable ones except 206, and the redirects that
/// follow the general rules.
fn understood(status: StatusCode) -> bool {
    status != StatusCode::PARTIAL_CONTENT
        && (heuristically_cacheable(status) || matches!(status.as_u16(), 302 | 303 | 307))
}
