//! The HTTP cache a route enables with `[route.cache]` (RFC 9111), stale-if-error (RFC 5861),
//! and the robots.txt guard.
//!
//! - [`entry`]: what is kept of one response.
//! - [`policy`]: RFC 9111's rules: what may be stored, for how long it is fresh, its age, which
//!   stored variant a request selects, conditional revalidation.
//! - [`store`]: the process's store (memory, then the optional [`disk`] file) and request
//!   coalescing.
//! - [`capture`]: copies a response body as it streams, to store it once complete.
//! - [`serve`]: responses made from a stored copy, and the `Cache-Status` header.
//! - [`range`]: `Range` requests answered from a stored copy.
//! - [`robots`]: the robots.txt guard.
//!
//! The request pipeline's use of all this is in `service::caching`.

pub mod capture;
pub mod disk;
pub mod entry;
pub mod policy;
pub mod range;
pub mod robots;
pub mod serve;
pub mod store;
