//! gatehouse's HTTP/1.1 server engine, for client connections plain and TLS: heads parsed with
//! `httparse`, bodies framed and streamed on the request's own task, responses written with
//! vectored writes. It knows nothing of the proxy pipeline: a [`server::Handler`] answers the
//! requests and renders the refusals.
//!
//! - [`head`]: request heads, with the framing checks that stop request smuggling;
//! - [`chunked`]: the chunked request body decoder;
//! - [`body`]: the request body, read from the socket by whoever forwards it;
//! - [`write`]: response heads and body framing;
//! - [`socket`]: the transport, a TCP socket or a TLS session over one;
//! - [`io`]: the socket shared by the loop and the body, and the stream after a `101`;
//! - [`server`]: the connection loop (keep-alive, pipelining, 100-continue, 408, upgrades, drain),
//!   with `read_head` (waiting for and reading a head) and `send` (writing a response) beside it.

pub mod body;
pub mod chunked;
pub mod head;
mod interim;
pub mod io;
pub mod pace;
mod read_head;
mod send;
pub mod server;
pub mod socket;
pub mod write;

pub use body::{BodyError, RequestBody};
pub use head::HeadError;
pub use interim::Interim;
pub use io::Upgraded;
pub use server::{Handler, OnUpgrade, Settings, serve};
pub use socket::Socket;
