//! RFC 9111 (HTTP caching) rules for gatehouse's shared cache, as pure functions over `http`
//! types: which responses may be stored (§3), their freshness lifetime (§4.2.1, §4.2.2) and
//! current age (§4.2.3), which stored variant a request selects (§4.1), revalidation with
//! conditional requests (§4.3), stale-if-error (RFC 5861), and answering a client's own
//! conditional request from a stored response (RFC 9110 §13.2.2).
//!
//! Nothing here does I/O or reads the clock: callers pass the times in.
//!
//! - `directives.rs`: `Cache-Control` parsing ([`CacheControl`]);
//! - `targeted.rs`: targeted cache-control fields such as `CDN-Cache-Control` (RFC 9213);
//! - `storable.rs`: whether a response may be stored (§3);
//! - `age.rs`: the `Age` field (§5.1) and current age (§4.2.3);
//! - `freshness.rs`: freshness lifetime and whether a copy is fresh (§4.2);
//! - `stale.rs`: stale-if-error and stale-while-revalidate (RFC 5861);
//! - `vary.rs`: variant selection with `Vary` (§4.1);
//! - `conditional.rs`: revalidation (§4.3) and the client's conditional requests;
//! - `field.rs`: field syntax the others share.

mod age;
mod conditional;
mod directives;
mod field;
mod freshness;
mod stale;
mod storable;
mod targeted;
mod vary;

pub use age::{InvalidAge, age_field, current_age};
pub use conditional::{
    conditional_headers, freshen, has_validator, not_modified_for, not_modified_headers,
};
pub use directives::CacheControl;
pub use freshness::{Freshness, freshness, freshness_lifetime, must_revalidate_each_use};
pub use stale::{stale_if_error_allows, stale_while_revalidate_allows};
pub use storable::{NotStorable, storable};
pub use targeted::{governing_target, response_directives, targeted_directives};
pub use vary::{normalised_preferences, selects, varied_values};

#[cfg(test)]
mod tests;
