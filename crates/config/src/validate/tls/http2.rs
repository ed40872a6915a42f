//! The HTTP/2 keys of `[server]`: `http2`, `http2_max_concurrent_streams` and the flow-control
//! windows.

use super::super::fields::{human_size, int_in, size_within};
use super::super::{KIB, MIB};
use toml::Spanned;

use crate::diag::Sink;
use crate::model::Http2Config;
use crate::raw::RawServer;

const DEFAULT_MAX_CONCURRENT_STREAMS: u32 = 128;
const MAX_CONCURRENT_STREAMS: u32 = 10_000;
const DEFAULT_STREAM_WINDOW: u64 = MIB;
/// The HTTP/2 initial window (RFC 9113 §6.9.2) is 64 KiB - 1; less would only slow streams.
const MIN_WINDOW: u64 = 64 * KIB;
const MAX_STREAM_WINDOW: u64 = 16 * MIB;
const DEFAULT_CONNECTION_WINDOW: u64 = 2 * MIB;
const MAX_CONNECTION_WINDOW: u64 = 64 * MIB;

pub(in crate::validate) fn http2(raw: &RawServer, sink: &mut Sink<'_>) -> Http2Config {
    let enabled = raw.http2.as_ref().is_none_or(|b| *b.get_ref());
    let max_concurrent_streams = int_in(
        sink,
        raw.http2_max_concurrent_streams.as_ref(),
        "server.http2_max_concurrent_streams",
        DEFAULT_MAX_CONCURRENT_STREAMS,
        1,
        MAX_CONCURRENT_STREAMS,
    );
    // Compared with the connection window below only when valid: a bad one is reported already
    // and replaced by the default, which the connection window was not written against.
    let reported_before = sink.diagnostics.len();
    let stream_window = size_within(
        sink,
        raw.http2_stream_window.clone(),
        "server.http2_stream_window",
        DEFAULT_STREAM_WINDOW,
        MIN_WINDOW,
        MAX_STREAM_WINDOW,
    );
    let stream_window_valid = sink.diagnostics.len() == reported_before;
    // Without its own value the connection window grows with a large stream window, rather
    // than making a config that sets only the stream window an error.
    let connection_default = DEFAULT_CONNECTION_WINDOW.max(stream_window);
    let mut connection_window = size_within(
        sink,
        raw.http2_connection_window.clone(),
        "server.http2_connection_window",
        connection_default,
        MIN_WINDOW,
        MAX_CONNECTION_WINDOW,
    );
    if let Some(raw_window) = &raw.http2_connection_window
        && stream_window_valid
        && connection_window < stream_window
    {
        sink.error(
            Some(raw_window.span()),
            "server.http2_connection_window",
            format!(
                "the connection window ({}) is smaller than http2_stream_window ({}): one stream could use up the whole connection's window",
                human_size(connection_window),
                human_size(stream_window)
            ),
            "make it at least the stream window, e.g. twice it, or remove it (the default is 2MiB or the stream window, whichever is larger)",
        );
        connection_window = connection_default;
    }
    if !enabled {
        let unused = [
            (
                raw.http2_max_concurrent_streams.as_ref().map(Spanned::span),
                "http2_max_concurrent_streams",
            ),
            (
                raw.http2_stream_window.as_ref().map(Spanned::span),
                "http2_stream_window",
            ),
            (
                raw.http2_connection_window.as_ref().map(Spanned::span),
                "http2_connection_window",
            ),
        ];
        for (span, name) in unused {
            if let Some(span) = span {
                sink.warning(
                    Some(span),
                    format!("server.{name}"),
                    format!("{name} has no effect: http2 = false"),
                    format!("remove {name}, or set http2 = true"),
                );
            }
        }
    }
    Http2Config {
        enabled,
        max_concurrent_streams,
        // Both are at most 64 MiB (checked above), far below u32::MAX.
        stream_window: u32::try_from(stream_window).unwrap_or(u32::MAX),
        connection_window: u32::try_from(connection_window).unwrap_or(u32::MAX),
    }
}
