//! Marker errors: gatehouse's own error types that travel inside hyper's error chains, so that
//! [`classify`](super::classify) can tell what happened by type instead of by message.
//!
//! They live here, below the bodies and the upstream I/O that raise them, because the classifier
//! must name them and the failure layer knows nothing of the pipeline.

use std::time::Duration;

use super::Failure;

/// The error type of the bodies gatehouse streams (what hyper's `Body::Error` boxes).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A client-side failure while reading the request body; carried through hyper's client error
/// chain so the attempt can tell "the client broke" from "the upstream broke".
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DownstreamBodyError(pub Failure);

/// The error a write to an upstream fails with once it has been stalled for `send_timeout`.
#[derive(Debug, thiserror::Error)]
#[error("upstream accepted no request bytes for {0:?}")]
pub struct WriteStalled(pub Duration);
