//! Response compression: gzip, brotli and zstd, applied on the way out, after everything else.
//!
//! The pipeline (and the cache) deal in the upstream's own response; [`apply`] is the last step
//! before it goes to the client, so one stored copy serves every coding a client accepts and a
//! compressed body is never stored as if it were the upstream's. It owns the decision (which
//! coding, or why none: [`Decision`]), the header fields that go with it (`Content-Encoding`,
//! `Vary: Accept-Encoding`, a weak `ETag`, no `Content-Length`), and the metrics. The coding of
//! the body is [`body::CodedBody`]; the codings themselves are in `coder`.
//!
//! The codings are the codec crates driven directly, one body frame at a time: flate2 (gzip on
//! miniz_oxide, pure Rust), brotli (pure Rust) and zstd (the C library, built by `cc`); 14 small
//! crates in all. `async-compression` would wrap the same codecs behind `AsyncRead`/`AsyncWrite`,
//! which needs stream adapters around a body and hides the two things this module must control:
//! a flush exactly when the upstream pauses (so events are not held back), and decoding into a
//! fixed buffer (so a small compressed frame cannot expand into memory all at once).
//!
//! What it does not own: gatehouse's own error pages are never compressed (the pipeline does
//! not ask for them: they are small and a failure path stays simple), and it never touches
//! the request that goes upstream (its `Accept-Encoding` is forwarded as the client sent it).

pub mod body;
mod coder;
pub mod negotiate;
mod types;

use gatehouse_config::{CompressConfig, Encoding};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode};

use crate::body::ProxyBody;
use crate::observe::metrics::Metrics;
use body::{CodedBody, Coder, Counters};
use coder::{Decoder, Encoder};
pub use negotiate::Accepted;
pub use types::type_matches;

/// What compression needs to know about the request.
#[derive(Debug, Clone)]
pub struct CompressRequest {
    /// A HEAD request: its response has no body to code.
    pub head: bool,
    /// The request says `Cache-Control: no-transform` (RFC 9111 §5.2.1.6).
    pub no_transform: bool,
    pub accepted: Accepted,
}

impl CompressRequest {
    pub fn new(method: &http::Method, headers: &HeaderMap) -> Self {
        Self {
            head: method == http::Method::HEAD,
            no_transform: no_transform(headers),
            accepted: Accepted::from_headers(headers),
        }
    }
}

/// Why a response went out as it came: the `reason` label of the skipped-responses metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// A response to HEAD.
    Head,
    /// 1xx (a 101 included), 204 or 304: no body.
    Status,
    /// 206, or a `Content-Range`: the bytes are a range of the unencoded representation.
    Partial,
    /// `Cache-Control: no-transform` in the response or the request (RFC 9110 §7.7; RFC 9111
    /// §5.2.1.6 and §5.2.2.6).
    NoTransform,
    /// Already has a `Content-Encoding` (and it is not decoded for this client).
    Encoded,
    /// The media type is not in `types`, or there is no `Content-Type`.
    Type,
    /// `Content-Length` below `min_size`.
    Small,
    /// The client accepts none of the codings offered (or no `Accept-Encoding`).
    NotAccepted,
}

impl Skip {
    pub const fn label(self) -> &'static str {
        match self {
            Self::Head => "head",
            Self::Status => "status",
            Self::Partial => "partial",
            Self::NoTransform => "no_transform",
            Self::Encoded => "encoded",
            Self::Type => "type",
            Self::Small => "small",
            Self::NotAccepted => "not_accepted",
        }
    }
}

/// What happens to one response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Encode(Encoding),
    /// The upstream's coding, which this client does not take, is removed (`decompress`).
    Decode(Encoding),
    /// Sent as it is; `vary` when another client could have had it coded (then the response
    /// still says `Vary: Accept-Encoding`, for caches between gatehouse and the client).
    Skip {
        reason: Skip,
        vary: bool,
    },
}

/// Decides what to do with a response of `status` with `headers` for `request`.
pub fn decide(
    config: &CompressConfig,
    request: &CompressRequest,
    status: StatusCode,
    headers: &HeaderMap,
) -> Decision {
    let skip = |reason, vary| Decision::Skip { reason, vary };
    if request.head {
        return skip(Skip::Head, false);
    }
    if status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return skip(Skip::Status, false);
    }
    if status == StatusCode::PARTIAL_CONTENT || headers.contains_key(header::CONTENT_RANGE) {
        return skip(Skip::Partial, false);
    }
    if request.no_transform || no_transform(headers) {
        return skip(Skip::NoTransform, false);
    }
    if let Some(coding) = content_coding(headers) {
        return match coding {
            Coding::Identity => decide_plain(config, request, headers),
            Coding::Known(encoding) if config.decompress => {
                if request.accepted.weight(encoding) > 0 {
                    skip(Skip::Encoded, true)
                } else {
                    Decision::Decode(encoding)
                }
            }
            Coding::Known(_) | Coding::Other => skip(Skip::Encoded, false),
        };
    }
    decide_plain(config, request, headers)
}

/// The decision for a response without a content coding.
fn decide_plain(
    config: &CompressConfig,
    request: &CompressRequest,
    headers: &HeaderMap,
) -> Decision {
    let compressible = headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| type_matches(&config.types, value));
    if !compressible {
        return Decision::Skip {
            reason: Skip::Type,
            vary: false,
        };
    }
    // An empty body stays empty, whatever `min_size` says.
    if declared_length(headers).is_some_and(|length| length < config.min_size.max(1)) {
        return Decision::Skip {
            reason: Skip::Small,
            vary: false,
        };
    }
    match request.accepted.choose(&config.encodings) {
        Some(encoding) => Decision::Encode(encoding),
        None => Decision::Skip {
            reason: Skip::NotAccepted,
            vary: true,
        },
    }
}

/// Compresses (or decompresses) `response` as [`decide`] says, on a route whose compression
/// is `config`; counts what was done under `route`.
pub fn apply(
    config: &CompressConfig,
    request: &CompressRequest,
    response: Response<ProxyBody>,
    metrics: &Metrics,
    route: &str,
) -> Response<ProxyBody> {
    let (mut parts, body) = response.into_parts();
    let decision = decide(config, request, parts.status, &parts.headers);
    let headers = &mut parts.headers;
    let body = match decision {
        Decision::Skip { reason, vary } => {
            if vary {
                add_vary(headers);
            }
            metrics.compress_skipped(route, reason.label());
            body
        }
        Decision::Encode(encoding) => {
            match Encoder::new(encoding, config, declared_length(headers)) {
                Ok(encoder) => {
                    coded_headers(headers);
                    headers.insert(
                        header::CONTENT_ENCODING,
                        HeaderValue::from_static(encoding.token()),
                    );
                    let counters = metrics.compressed(route, encoding.token());
                    ProxyBody::Coded(Box::new(CodedBody::new(
                        body,
                        Coder::encode(encoder),
                        Counters {
                            input: counters.0,
                            output: counters.1,
                        },
                    )))
                }
                Err(err) => {
                    tracing::warn!(
                        encoding = encoding.token(),
                        "could not start the encoder: {err}"
                    );
                    body
                }
            }
        }
        Decision::Decode(encoding) => match Decoder::new(encoding) {
            Ok(decoder) => {
                coded_headers(headers);
                headers.remove(header::CONTENT_ENCODING);
                let counters = metrics.decompressed(route, encoding.token());
                ProxyBody::Coded(Box::new(CodedBody::new(
                    body,
                    Coder::decode(decoder),
                    Counters {
                        input: counters.0,
                        output: counters.1,
                    },
                )))
            }
            Err(err) => {
                tracing::warn!(
                    encoding = encoding.token(),
                    "could not start the decoder: {err}"
                );
                body
            }
        },
    };
    Response::from_parts(parts, body)
}

/// The fields of a response whose body gatehouse codes: its length is unknown now (chunked,
/// or h2 DATA frames), byte ranges of the upstream's form no longer apply, its validator is
/// no longer byte-for-byte (RFC 9110 §8.8.1: a weak `ETag`), and it varies by
/// `Accept-Encoding`.
fn coded_headers(headers: &mut HeaderMap) {
    headers.remove(header::CONTENT_LENGTH);
    headers.remove(header::ACCEPT_RANGES);
    if let Some(etag) = headers.get(header::ETAG)
        && etag.as_bytes().starts_with(b"\"")
    {
        let mut weak = Vec::with_capacity(etag.len() + 2);
        weak.extend_from_slice(b"W/");
        weak.extend_from_slice(etag.as_bytes());
        if let Ok(weak) = HeaderValue::from_bytes(&weak) {
            headers.insert(header::ETAG, weak);
        }
    }
    add_vary(headers);
}

/// Adds `Accept-Encoding` to `Vary`, merged into the existing field (left alone when it is
/// `*` or already names it).
pub fn add_vary(headers: &mut HeaderMap) {
    let mut merged = String::new();
    for value in headers.get_all(header::VARY) {
        let Ok(text) = value.to_str() else {
            continue;
        };
        for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if name == "*" || name.eq_ignore_ascii_case("accept-encoding") {
                return;
            }
            if !merged.is_empty() {
                merged.push_str(", ");
            }
            merged.push_str(name);
        }
    }
    if !merged.is_empty() {
        merged.push_str(", ");
    }
    merged.push_str("Accept-Encoding");
    if let Ok(value) = HeaderValue::from_str(&merged) {
        headers.insert(header::VARY, value);
    }
}

enum Coding {
    Identity,
    Known(Encoding),
    /// Another coding, or several.
    Other,
}

/// The response's `Content-Encoding`, `None` when it has none.
fn content_coding(headers: &HeaderMap) -> Option<Coding> {
    let mut values = headers.get_all(header::CONTENT_ENCODING).iter();
    let first = values.next()?;
    if values.next().is_some() {
        return Some(Coding::Other);
    }
    let text = first.to_str().ok().map(str::trim)?;
    Some(
        if text.eq_ignore_ascii_case("identity") || text.is_empty() {
            Coding::Identity
        } else if text.eq_ignore_ascii_case("gzip") || text.eq_ignore_ascii_case("x-gzip") {
            Coding::Known(Encoding::Gzip)
        } else if text.eq_ignore_ascii_case("br") {
            Coding::Known(Encoding::Brotli)
        } else if text.eq_ignore_ascii_case("zstd") {
            Coding::Known(Encoding::Zstd)
        } else {
            Coding::Other
        },
    )
}

/// `Cache-Control: no-transform` among the directives of a request or a response.
fn no_transform(headers: &HeaderMap) -> bool {
    headers.get_all(header::CACHE_CONTROL).iter().any(|value| {
        value.to_str().is_ok_and(|text| {
            text.split(',')
                .any(|d| d.trim().eq_ignore_ascii_case("no-transform"))
        })
    })
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests;
