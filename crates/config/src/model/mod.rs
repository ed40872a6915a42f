//! The validated configuration model: what the proxy runs on.
//!
//! Every value here has already been checked (addresses parse, durations are positive, routes name
//! existing upstreams). The proxy never sees raw TOML; `check`, `run` and reload all go through
//! [`crate::parse`] to obtain this model.

//!
//! One file per part of the config file; every type is re-exported here.

mod acme;
mod cache;
mod limits;
mod route;
mod server;
mod upstream;

pub use acme::*;
pub use cache::*;
pub use limits::*;
pub use route::*;
pub use server::*;
pub use upstream::*;
