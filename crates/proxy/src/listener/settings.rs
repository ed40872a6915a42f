//! A connection's limits as read from `[server]`: the request head and response write limits,
//! and the HTTP/2 engine's settings.

use crate::{http1, http2};
use gatehouse_config::ServerConfig;

/// Streams a client may open and cancel before gatehouse has accepted them (the "rapid reset"
/// attack, CVE-2023-44487); beyond this the connection gets GOAWAY. h2's default.
const MAX_PENDING_ACCEPT_RESETS: usize = 20;
/// Streams gatehouse may have to reset because the client broke the protocol on them, before
/// the connection gets GOAWAY: a client provoking resets on purpose cannot make the server do
/// unbounded work either. (hyper's default.)
const MAX_LOCAL_ERROR_RESETS: usize = 1024;

/// What a write to the client must achieve (`min_response_rate`, `client_write_timeout`).
pub(super) fn response_write(server: &ServerConfig) -> http1::pace::WriteLimit {
    http1::pace::WriteLimit {
        rate: http1::pace::MinRate {
            bytes_per_second: server.min_response_rate,
            grace: server.min_rate_grace,
        },
        stall: server.client_write_timeout,
    }
}

/// The largest request head read. It sits above gatehouse's own limits, so that requests
/// between the two get the pipeline's 414/431 with the limit's name; only far larger ones are
/// refused while reading.
pub(super) fn head_limit(server: &ServerConfig) -> usize {
    (server.max_request_header_size * 2)
        .max(server.max_uri_length * 2)
        .max(16 * 1024)
}

pub(super) fn http2_settings(server: &ServerConfig) -> http2::Settings {
    let settings = &server.http2;
    http2::Settings {
        max_concurrent_streams: settings.max_concurrent_streams,
        stream_window: settings.stream_window,
        connection_window: settings.connection_window,
        // Announced in SETTINGS (RFC 9113 §6.5.2). Twice gatehouse's own limit, as the HTTP/1.1
        // engines' head limit is: a header section between the two gets gatehouse's full 431
        // (with its body and access record) from the service's check; only far larger ones get
        // the h2 layer's bare 431 (h2 also counts 32 bytes per field, gatehouse 4).
        max_header_list_size: u32::try_from(server.max_request_header_size.saturating_mul(2))
            .unwrap_or(u32::MAX),
        max_pending_accept_reset_streams: MAX_PENDING_ACCEPT_RESETS,
        max_local_error_reset_streams: MAX_LOCAL_ERROR_RESETS,
        // A client can stop taking one stream by never opening its window while the
        // connection goes on, and so hold that stream's upstream connection: the write timeout
        // applies to each stream too.
        stream_write_timeout: (!server.client_write_timeout.is_zero())
            .then_some(server.client_write_timeout),
    }
}
