//! The fix for a group of failures, in the terms of the program that wrote the log: nginx and
//! HAProxy directives, or gatehouse config keys (the words `gatehouse doctor` uses, from
//! `crate::advice`). The root cause is the kind's own hint, the same for every source.

use gatehouse_proxy::failure::FailureKind;

use super::record::Source;

/// What to change, and the directives (or config keys) it names.
#[derive(Debug, Clone)]
pub(crate) struct Advice {
    pub(crate) directives: Vec<&'static str>,
    pub(crate) fix: String,
}

pub(crate) fn advise(source: Source, kind: FailureKind, server: &str) -> Advice {
    let (directives, fix) = match source {
        Source::Nginx => nginx(kind),
        Source::Haproxy => haproxy(kind),
        Source::Gatehouse => {
            let pool = server.split('/').next().unwrap_or(server);
            return Advice {
                directives: gatehouse_keys(kind),
                fix: crate::advice::fix(kind, pool, &crate::naming::Naming::Gatehouse),
            };
        }
    };
    Advice {
        directives: directives.to_vec(),
        fix: fix.map_or_else(|| cause(source, kind), str::to_owned),
    }
}

fn nginx(kind: FailureKind) -> (&'static [&'static str], Option<&'static str>) {
    match kind {
        FailureKind::ConnectionRefused => (
            &["server", "max_fails", "fail_timeout"],
            Some(
                "nothing listens there: start the backend, or correct the address in proxy_pass or in the `server` line of the upstream block; with several servers, `max_fails` and `fail_timeout` decide how long nginx skips a dead one",
            ),
        ),
        FailureKind::ConnectionTimeout => (
            &["proxy_connect_timeout"],
            Some(
                "check that the host is up and that no firewall drops traffic to it; raise `proxy_connect_timeout` only if the network is merely slow",
            ),
        ),
        FailureKind::DestinationIpUnroutable => (
            &["server"],
            Some(
                "no route to the backend: check the address in proxy_pass / `server` and this host's network and routes",
            ),
        ),
        FailureKind::DestinationIpProhibited => (
            &["server"],
            Some(
                "the connect was not permitted (errno 13): a local policy (SELinux `httpd_can_network_connect`, a firewall owner rule) forbids it",
            ),
        ),
        FailureKind::ConnectionTerminated => (
            &["keepalive_timeout", "proxy_next_upstream"],
            Some(
                "the backend closed the connection without answering: it crashed on the request (see its logs), or it closed an idle keep-alive connection nginx reused; keep the upstream block's `keepalive_timeout` shorter than the backend's own keep-alive timeout, and let `proxy_next_upstream` retry idempotent requests",
            ),
        ),
        FailureKind::HttpResponseIncomplete => (
            &["proxy_read_timeout"],
            Some(
                "the backend closed the connection partway through its response body: see its logs for a crash or restart (`proxy_read_timeout` matters only if it stalled first)",
            ),
        ),
        FailureKind::HttpResponseTimeout => (
            &["proxy_read_timeout"],
            Some(
                "the backend did not send its response header within `proxy_read_timeout`: raise it, or speed up the handler (if it is hung, see its logs, its worker pool, its own upstreams)",
            ),
        ),
        FailureKind::ConnectionReadTimeout => (
            &["proxy_read_timeout"],
            Some(
                "the backend stalled mid-response for longer than `proxy_read_timeout`: raise it, or find why the backend stalls",
            ),
        ),
        FailureKind::ConnectionWriteTimeout => (
            &["proxy_send_timeout"],
            Some(
                "the backend stopped reading the request for longer than `proxy_send_timeout`: raise it, or fix the backend",
            ),
        ),
        FailureKind::HttpResponseHeaderSectionSize => (
            &["proxy_buffer_size", "proxy_buffers"],
            Some(
                "the response headers do not fit `proxy_buffer_size` (one memory page, 4k or 8k, by default): raise `proxy_buffer_size` (and `proxy_buffers` to match, e.g. `proxy_buffer_size 16k; proxy_buffers 8 16k;`), or make the app send smaller headers (often a large Set-Cookie)",
            ),
        ),
        FailureKind::HttpProtocolError => (
            &["proxy_pass"],
            Some(
                "the backend does not answer valid HTTP/1.x: check that proxy_pass points at its HTTP port (not TLS, a database or another service), and fix the header the app sends",
            ),
        ),
        FailureKind::HttpResponseTransferCoding => (
            &["proxy_http_version"],
            Some(
                "the backend sent broken chunked encoding: fix the app (or its framework) that writes the body",
            ),
        ),
        FailureKind::DestinationUnavailable => (
            &["max_fails", "fail_timeout"],
            Some(
                "every server of the upstream block is marked failed (`max_fails` failures within `fail_timeout`): the failures logged before this one say why; fix those, and tune `max_fails`/`fail_timeout` (or add servers)",
            ),
        ),
        FailureKind::DnsError => (
            &["resolver"],
            Some(
                "the host name does not resolve through `resolver`: correct it in proxy_pass or the upstream block, or add it to DNS",
            ),
        ),
        FailureKind::DnsTimeout => (
            &["resolver", "resolver_timeout"],
            Some(
                "the DNS server of the `resolver` directive did not answer within `resolver_timeout`: check that it is reachable, or point `resolver` at one that is",
            ),
        ),
        FailureKind::TlsProtocolError => (
            &[
                "proxy_ssl_protocols",
                "proxy_ssl_ciphers",
                "proxy_ssl_server_name",
            ],
            Some(
                "the backend does not complete a TLS handshake: check that proxy_pass https:// points at its TLS port (use http:// if it speaks plain HTTP), that `proxy_ssl_protocols`/`proxy_ssl_ciphers` overlap with its own, and `proxy_ssl_server_name on` if it needs SNI",
            ),
        ),
        FailureKind::TlsCertificateError => (
            &[
                "proxy_ssl_trusted_certificate",
                "proxy_ssl_name",
                "proxy_ssl_verify",
            ],
            Some(
                "the backend's certificate does not verify: renew it if expired, put its CA in `proxy_ssl_trusted_certificate`, and set `proxy_ssl_name` to a name it covers",
            ),
        ),
        FailureKind::TlsAlertReceived => (
            &[
                "proxy_ssl_certificate",
                "proxy_ssl_certificate_key",
                "proxy_ssl_protocols",
            ],
            Some(
                "the backend refused the handshake with an alert: if it requires a client certificate, set `proxy_ssl_certificate` and `proxy_ssl_certificate_key`; otherwise align `proxy_ssl_protocols` with what it accepts",
            ),
        ),
        FailureKind::ConnectionLimitReached => (
            &["max_conns", "queue"],
            Some(
                "the servers are at `max_conns`: raise it, add servers, or (NGINX Plus) give the upstream a `queue`",
            ),
        ),
        _ => (&[], None),
    }
}

fn haproxy(kind: FailureKind) -> (&'static [&'static str], Option<&'static str>) {
    match kind {
        FailureKind::ConnectionRefused => (
            &["server", "check", "retries", "option redispatch"],
            Some(
                "nothing listens there: start the backend or correct the `server` line's address; add `check` to the `server` line so HAProxy takes a dead server out of rotation, and `option redispatch` so a retry (`retries`) goes to another server",
            ),
        ),
        FailureKind::DestinationUnavailable => (
            &["check", "inter", "fall", "rise"],
            Some(
                "no server of the backend was available (<NOSRV>): all are down by their health checks (`check`, `inter`, `fall`, `rise`) or in maintenance; the server state changes in the log say why",
            ),
        ),
        FailureKind::ConnectionTimeout => (
            &["timeout connect"],
            Some(
                "the connection to the server did not complete within `timeout connect`: check that the host is up and that no firewall drops traffic; raise `timeout connect` only if the network is merely slow",
            ),
        ),
        FailureKind::ConnectionTerminated => (
            &["option http-server-close", "http-reuse", "retry-on"],
            Some(
                "the server closed the connection before a complete response header: it crashed on the request (see its logs), or it closed an idle keep-alive connection HAProxy reused; give the server a keep-alive timeout longer than HAProxy's, keep `http-reuse safe` (or use `option http-server-close`), and `retry-on empty-response conn-failure` for idempotent requests",
            ),
        ),
        FailureKind::HttpResponseTimeout => (
            &["timeout server"],
            Some(
                "the server did not send its response header within `timeout server`: raise it, or speed up the handler (if it is hung, see its logs)",
            ),
        ),
        FailureKind::ConnectionReadTimeout => (
            &["timeout server"],
            Some(
                "the server stalled mid-response for longer than `timeout server`: raise it, or find why the server stalls",
            ),
        ),
        FailureKind::ConnectionWriteTimeout => (
            &["timeout server"],
            Some(
                "the server stopped reading the request body for longer than `timeout server`: raise it, or fix the server",
            ),
        ),
        FailureKind::HttpResponseIncomplete => (
            &["option http-server-close", "http-reuse"],
            Some(
                "the server broke the connection during the response body (SD): see its logs for a crash or restart; HAProxy cannot retry once data flowed; if it happens on reused connections, `http-reuse safe` or `option http-server-close`",
            ),
        ),
        FailureKind::HttpProtocolError => (
            &[
                "tune.bufsize",
                "tune.http.maxhdr",
                "option accept-invalid-http-response",
            ],
            Some(
                "HAProxy refused the server's response header (PH): too big for `tune.bufsize` (raise it, default 16384; `tune.http.maxhdr` for more than 101 header lines), or invalid (fix the app; `option accept-invalid-http-response` lets it through); `show errors` on the stats socket shows the response",
            ),
        ),
        FailureKind::HttpResponseTransferCoding => (
            &["option accept-invalid-http-response"],
            Some(
                "the server's response body framing was invalid (PD): fix the app's chunked encoding; `show errors` on the stats socket shows it",
            ),
        ),
        FailureKind::ConnectionLimitReached => (
            &["maxconn", "timeout queue"],
            Some(
                "requests waited in the queue longer than `timeout queue`: the servers are at their `maxconn`; raise it, add servers, or raise `timeout queue`",
            ),
        ),
        FailureKind::DnsError | FailureKind::DnsTimeout => (
            &["resolvers"],
            Some(
                "the server's name does not resolve: check the `resolvers` section and the name on the `server` line",
            ),
        ),
        FailureKind::TlsProtocolError
        | FailureKind::TlsCertificateError
        | FailureKind::TlsAlertReceived => (
            &["ssl", "verify", "ca-file", "sni"],
            Some(
                "the TLS connection to the server failed: check `ssl`, `verify`, `ca-file` and `sni` on the `server` line",
            ),
        ),
        _ => (&[], None),
    }
}

fn gatehouse_keys(kind: FailureKind) -> Vec<&'static str> {
    let keys: &[&str] = match kind {
        FailureKind::DnsError
        | FailureKind::ConnectionRefused
        | FailureKind::DestinationIpUnroutable => &["servers"],
        FailureKind::DnsTimeout => &["dns.timeout"],
        FailureKind::ConnectionTimeout => &["connect_timeout"],
        FailureKind::HttpResponseTimeout => &["response_timeout"],
        FailureKind::ConnectionReadTimeout => &["read_timeout"],
        FailureKind::ConnectionWriteTimeout => &["send_timeout"],
        FailureKind::HttpResponseHeaderSectionSize => &["max_response_header_size"],
        FailureKind::DestinationUnavailable => &["health"],
        _ => &[],
    };
    keys.to_vec()
}

/// The usual root cause of `kind`: its hint, as gatehouse's own log line says it; for nginx
/// and HAProxy only the cause part of it (before `; `), since the rest names gatehouse's keys.
pub(crate) fn cause(source: Source, kind: FailureKind) -> String {
    let hint = kind.hint();
    match source {
        Source::Gatehouse => hint.to_owned(),
        Source::Nginx | Source::Haproxy => hint.split("; ").next().unwrap_or(hint).to_owned(),
    }
}

/// What a client-side HAProxy termination state means, and the directive that decides it.
pub(crate) fn client_side(state: &str) -> (&'static str, Option<&'static str>) {
    match state {
        "cD" | "cL" => (
            "the client stopped reading the response for longer than `timeout client`",
            Some("timeout client"),
        ),
        "cR" => (
            "the client did not send a complete request within `timeout http-request`",
            Some("timeout http-request"),
        ),
        "cH" | "cC" | "cQ" => (
            "the client timed out while HAProxy waited on the server",
            Some("timeout client"),
        ),
        _ => (
            "the client closed the connection first (a user gave up, or a client timeout shorter than the server's answer)",
            None,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_source_names_its_own_directive() {
        let big = FailureKind::HttpResponseHeaderSectionSize;
        assert!(
            advise(Source::Nginx, big, "x")
                .directives
                .contains(&"proxy_buffer_size")
        );
        let ph = advise(Source::Haproxy, FailureKind::HttpProtocolError, "b/s");
        assert!(ph.fix.contains("tune.bufsize"));
        let g = advise(
            Source::Gatehouse,
            FailureKind::ConnectionRefused,
            "app/127.0.0.1:1",
        );
        assert_eq!(
            g.fix,
            "start the backend, or correct the address in upstream.app.servers"
        );
        let timeout = advise(Source::Haproxy, FailureKind::HttpResponseTimeout, "b/s");
        assert_eq!(timeout.directives, ["timeout server"]);
        assert!(
            !advise(Source::Nginx, FailureKind::HttpResponseTimeout, "s")
                .fix
                .contains("timeout server")
        );
    }

    /// A peer's report never names a gatehouse config key.
    #[test]
    fn peers_get_no_gatehouse_keys() {
        let keys = [
            "response_timeout",
            "read_timeout",
            "send_timeout",
            "max_response_header_size",
            "upstream.",
            "[dns]",
        ];
        for source in [Source::Nginx, Source::Haproxy] {
            for kind in FailureKind::ALL {
                let text = format!("{} {}", cause(source, kind), advise(source, kind, "s").fix)
                    // nginx's own directives that end like gatehouse keys.
                    .replace("proxy_send_timeout", "")
                    .replace("proxy_read_timeout", "");
                for key in keys {
                    assert!(!text.contains(key), "{source:?} {kind}: {text}");
                }
            }
        }
    }

    /// nginx's advice never names HAProxy's directives, nor the other way round.
    #[test]
    fn each_peer_only_its_own_directives() {
        for kind in FailureKind::ALL {
            let nginx = advise(Source::Nginx, kind, "s");
            let text = format!("{} {:?}", nginx.fix, nginx.directives);
            for foreign in [
                "timeout server",
                "timeout connect",
                "tune.",
                "http-reuse",
                "option ",
            ] {
                assert!(!text.contains(foreign), "nginx {kind}: {text}");
            }
            let haproxy = advise(Source::Haproxy, kind, "b/s");
            let text = format!("{} {:?}", haproxy.fix, haproxy.directives);
            assert!(!text.contains("proxy_"), "haproxy {kind}: {text}");
        }
    }
}
