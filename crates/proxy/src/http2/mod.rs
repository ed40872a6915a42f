//! gatehouse's HTTP/2 server connection (h2c and TLS with ALPN `h2`), on the `h2` crate: the
//! connection's loop accepts streams and spawns one task per stream, which calls the handler,
//! sends the response head and pipes the body under flow control. It knows nothing of the
//! proxy pipeline: a [`Handler`] answers the requests.
//!
//! Laid out like hyper's HTTP/2 server (the same connection-specific fields stripped, the same
//! `Date` and `Content-Length` added, a client's RST_STREAM cancelling the request in progress,
//! a body that fails after the head resetting the stream with `INTERNAL_ERROR`), with what
//! hyper's cannot do: interim responses (1xx, such as `103 Early Hints`) relayed to the client
//! before the final one (RFC 9110 §15.2, RFC 9113 §8.1).
//!
//! - [`body`]: the request body, its flow-control capacity given back as it is read;
//! - [`interim`]: the handle through which 1xx responses reach the client;
//! - [`stream`]: one stream, from the request to the last frame of the response;
//! - [`server`]: the connection (handshake, accept loop, graceful shutdown).

pub mod body;
pub mod interim;
pub mod server;
mod stream;

pub use body::RequestBody;
pub use interim::Interim;
pub use server::{Connection, Handler, Settings};

#[cfg(test)]
mod tests;
