//! gatehouse's request path: listeners, routing, upstream connections, failure
//! classification, error responses and logs.
//!
//! Start with [`server::Running`] (lifecycle) and [`service`] (the request pipeline);
//! [`failure`] is the one place where failures become statuses, headers and log lines.

pub mod admin;
pub mod body;
pub mod cache;
pub mod client_body;
pub mod client_io;
pub mod failure;
pub mod forward;
pub mod http1;
pub mod listener;
pub mod maintenance;
pub mod observe;
pub mod respond;
pub mod router;
pub mod server;
pub mod service;
pub mod snapshot;
pub mod tunnel;
pub mod upstream;

pub use server::{Running, StartupError};
