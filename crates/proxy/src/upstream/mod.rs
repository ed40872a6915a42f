//! Upstream side: resolving server names, connecting, pooled keep-alive connections.

pub mod connect;
pub mod dns;
pub mod io;
pub mod pool;
