//! Upstream side: pools of servers (DNS discovery, balancing, health, limits, retry budget),
//! connecting (TCP, TLS), pooled HTTP/1.1 keep-alive connections (gatehouse's own client, `h1`)
//! and shared HTTP/2 connections.

pub mod balance;
pub mod budget;
pub mod checker;
pub mod conn;
pub mod connect;
pub mod dns;
pub mod h1;
pub mod h2;
pub mod health;
pub mod idle;
pub mod incoming;
pub mod io;
pub mod pool;
pub mod server;
pub mod tls;
