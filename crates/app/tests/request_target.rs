//! The request target names the host (RFC 9112 §3.2.2): for an absolute-form target the received
//! Host is ignored, so routing, the cache key, X-Forwarded-Host and the upstream's Host all
//! name the target's authority.

use std::path::Path;
use std::time::Duration;

use gatehouse_testkit::{Config, Gatehouse, Reply, Upstream, send_raw};

fn start(config: &Config) -> Gatehouse {
    Gatehouse::start(Path::new(env!("CARGO_BIN_EXE_gatehouse")), &config.toml())
}

#[test]
fn absolute_form_routes_and_forwards_by_the_targets_host_not_the_host_field() {
    let a = Upstream::hello();
    let b = Upstream::hello();
    let gh = start(
        &Config::new()
            .upstream("a", [a.addr()])
            .upstream("b", [b.addr()])
            .route(Some("a.example"), "/", "a")
            .route(Some("b.example"), "/", "b"),
    );
    let resp = send_raw(
        gh.addr(),
        b"GET http://a.example/x?q=1 HTTP/1.1\r\nHost: b.example\r\nConnection: close\r\n\r\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status, 200, "{resp:#?}");
    let got = a.requests();
    assert_eq!(got.len(), 1, "the route of the target's host: {got:#?}");
    assert_eq!(got[0].target, "/x?q=1", "origin-form upstream");
    assert_eq!(got[0].header("host"), Some("a.example"));
    assert_eq!(got[0].header("x-forwarded-host"), Some("a.example"));
    assert!(
        b.requests().is_empty(),
        "the Host field's route got nothing"
    );
}

#[test]
fn absolute_form_keys_the_cache_by_the_targets_host() {
    let origin = Upstream::serve(Reply::ok("copy").header("cache-control", "max-age=60"));
    let gh = start(&Config::proxy_to([origin.addr()]).route_section("cache", "mode", "full"));
    let first = send_raw(
        gh.addr(),
        b"GET http://a.example/page HTTP/1.1\r\nHost: b.example\r\nConnection: close\r\n\r\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(first.status, 200);
    std::thread::sleep(Duration::from_millis(100));
    // b.example/page was never asked for by its URL: a miss, not the copy stored above.
    let b = send_raw(
        gh.addr(),
        b"GET /page HTTP/1.1\r\nHost: b.example\r\nConnection: close\r\n\r\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(b.status, 200);
    assert_eq!(
        origin.requests().len(),
        2,
        "b.example/page went to the origin"
    );
    assert_eq!(origin.requests()[1].header("host"), Some("b.example"));
    // a.example/page is the stored copy.
    let a = send_raw(
        gh.addr(),
        b"GET /page HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(a.status, 200);
    assert!(
        a.header("cache-status").is_some_and(|s| s.contains("hit")),
        "{a:#?}"
    );
    assert_eq!(origin.requests().len(), 2);
}

#[test]
fn a_target_with_userinfo_is_400_and_never_forwarded() {
    let upstream = Upstream::hello();
    let gh = start(&Config::proxy_to([upstream.addr()]));
    let resp = send_raw(
        gh.addr(),
        b"GET http://user:pw@a.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    gh.expect_failure(&resp, 400, "http_request_error");
    assert!(upstream.requests().is_empty());
}

/// The usual other spellings of `/admin` (encoded letters, doubled slashes) take `/admin`'s
/// route, not a laxer one beside it, and go upstream as they came; a path with a dot segment,
/// which servers read differently (is `/admin/..` under `/admin`?), is refused.
#[test]
fn every_spelling_of_a_path_takes_that_paths_route() {
    let public = Upstream::hello();
    let admin = Upstream::hello();
    let gh = start(
        &Config::new()
            .upstream("public", [public.addr()])
            .upstream("admin", [admin.addr()])
            .route(None, "/", "public")
            .route(None, "/admin", "admin"),
    );
    let spellings = ["/%61dmin/x", "//admin/x", "/admin//x", "/%61%64min"];
    for target in spellings {
        let request =
            format!("GET {target} HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n");
        let resp = send_raw(gh.addr(), request.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(resp.status, 200, "{target}: {resp:#?}");
    }
    let seen: Vec<_> = admin.requests().into_iter().map(|r| r.target).collect();
    assert_eq!(
        seen, spellings,
        "each went to /admin's upstream, as it came"
    );
    for target in [
        "/public/../admin/x",
        "/admin/..",
        "/admin/%2e%2e",
        "/./admin",
        "/a%zz",
    ] {
        let request = format!("GET {target} HTTP/1.1\r\nHost: a.example\r\n\r\n");
        let resp = send_raw(gh.addr(), request.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        gh.expect_failure(&resp, 400, "http_request_error");
    }
    assert!(public.requests().is_empty(), "{:#?}", public.requests());
    assert_eq!(admin.requests().len(), spellings.len());
}
