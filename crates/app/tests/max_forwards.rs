//! Max-Forwards (RFC 9110 §7.6.2): a TRACE or OPTIONS request whose count is 0 is answered by
//! gatehouse as its final recipient and never forwarded; a higher count is lowered by one on
//! the way; other methods and values that are not a count pass as they came.

use std::path::Path;

use gatehouse_testkit::{Config, Gatehouse, RawResponse, Upstream, send_raw};

fn start(upstream: &Upstream) -> Gatehouse {
    Gatehouse::start(
        Path::new(env!("CARGO_BIN_EXE_gatehouse")),
        &Config::proxy_to([upstream.addr()]).toml(),
    )
}

fn send(gh: &Gatehouse, method: &str, max_forwards: &str) -> RawResponse {
    let request = format!(
        "{method} /res HTTP/1.1\r\nHost: app.test\r\nMax-Forwards: {max_forwards}\r\n\
         Cookie: s=secret\r\nUser-Agent: probe/1\r\nConnection: close\r\n\r\n"
    );
    send_raw(gh.addr(), request.as_bytes()).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn a_count_of_zero_is_answered_here_and_never_forwarded() {
    let upstream = Upstream::hello();
    let gh = start(&upstream);

    let trace = send(&gh, "TRACE", "0");
    assert_eq!(
        (trace.status, trace.header("content-type")),
        (200, Some("message/http")),
        "{trace:#?}"
    );
    let echoed = trace.text();
    assert!(
        echoed.starts_with("TRACE /res HTTP/1.1\r\n") && echoed.contains("user-agent: probe/1\r\n"),
        "{echoed}"
    );
    assert!(
        !echoed.contains("secret"),
        "credentials reflected: {echoed}"
    );
    assert!(trace.header("x-request-id").is_some(), "{trace:#?}");

    let options = send(&gh, "OPTIONS", "0");
    assert_eq!(
        (options.status, options.header("content-length")),
        (200, Some("0")),
        "{options:#?}"
    );
    assert!(
        upstream.requests().is_empty(),
        "forwarded: {:#?}",
        upstream.requests()
    );
}

#[test]
fn a_higher_count_is_lowered_and_other_requests_pass_as_they_came() {
    let upstream = Upstream::hello();
    let gh = start(&upstream);
    for (method, value) in [
        ("OPTIONS", "3"),
        ("TRACE", "1"),
        ("GET", "0"),
        ("OPTIONS", "x"),
    ] {
        assert_eq!(send(&gh, method, value).status, 200, "{method} {value}");
    }
    let seen: Vec<(String, Option<String>)> = upstream
        .requests()
        .iter()
        .map(|r| {
            (
                r.method.clone(),
                r.header("max-forwards").map(str::to_owned),
            )
        })
        .collect();
    let expected = [
        ("OPTIONS", "2"),
        ("TRACE", "0"),
        ("GET", "0"),
        ("OPTIONS", "x"),
    ]
    .map(|(m, v)| (m.to_owned(), Some(v.to_owned())));
    assert_eq!(seen, expected);
}
