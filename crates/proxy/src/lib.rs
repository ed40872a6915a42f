//! gatehouse's request path: listeners, routing, upstream connections, failure
//! classification, error responses and logs.
//!
//! Start with [`server::Running`] (lifecycle) and [`service`] (the request pipeline, one file
//! per phase); [`failure`] is the one place where failures become statuses, headers and log
//! lines.
//!
//! The modules form layers, and a module imports only from layers below its own (bottom
//! first):
//!
//! 0. [`http1`] and [`http2`] (the client-side HTTP engines), [`date`], [`tcp_read`],
//!    [`boxed`] (futures boxed where they are built), [`failure`] and [`workers`] (per-core
//!    runtimes): nothing of the pipeline;
//! 1. [`acme`] (certificates obtained through ACME, and the task obtaining them), [`observe`]
//!    (logs, metrics, recent failures; fed plain records), [`client_pace`], [`client_body`],
//!    [`client_io`], [`cache`], [`router`], [`forward`], [`maintenance`], [`limit`];
//! 2. [`upstream`]: pools, connections, health;
//! 3. [`body`] (the response body), [`compress`] (its coding on the way out) and [`tunnel`];
//! 4. [`respond`] (error pages) and [`snapshot`] (the config in force);
//! 5. [`service`]: the pipeline;
//! 6. [`listener`], then [`admin`], then [`server`].

pub mod acme;
pub mod admin;
pub mod body;
pub mod boxed;
pub mod cache;
pub mod client_addr;
pub mod client_body;
pub mod client_io;
pub mod client_pace;
pub mod compress;
pub mod date;
pub mod failure;
pub mod forward;
pub mod http1;
pub mod http2;
pub mod limit;
pub mod listener;
pub mod maintenance;
pub mod observe;
pub mod proxy_protocol;
pub mod respond;
pub mod router;
pub mod server;
pub mod service;
pub mod snapshot;
pub mod tcp_read;
pub mod tunnel;
pub mod upstream;
pub mod workers;

pub use server::{Running, StartupError};
