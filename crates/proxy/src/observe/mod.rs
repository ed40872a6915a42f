//! What gatehouse tells operators: one access record per request, one warning per failure.

pub mod access_log;
pub mod admin;
