//! The HTTP cache of a route with `[route.cache]` (RFC 9111), through the real binary: what is
//! stored and what never is, fresh hits with `Age` and `Cache-Status`, `Vary` variants,
//! conditional revalidation, request coalescing, HEAD from a stored GET, `Authorization`, and
//! invalidation by unsafe methods. Each test counts the requests the origin received, so a copy
//! served (or not) from the cache shows.

use std::path::Path;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use gatehouse_testkit::{Behavior, Config, Gatehouse, RawResponse, Reply, Req, Upstream};

fn start(config: Config) -> Gatehouse {
    Gatehouse::start(Path::new(env!("CARGO_BIN_EXE_gatehouse")), &config.toml())
}

/// One route, `/` to `origin`, caching in full mode.
fn caching(origin: &Upstream) -> Config {
    Config::proxy_to([origin.addr()]).route_section("cache", "mode", "full")
}

/// A complete response to `req`.
fn send(gh: &Gatehouse, req: &Req) -> RawResponse {
    let response = req.send(gh.addr());
    assert!(response.complete, "{req:?}: {response:#?}");
    response
}

fn get(gh: &Gatehouse, target: &str) -> RawResponse {
    send(gh, &Req::get(target))
}

/// The access record's `cache` field for this response.
fn cache_field(gh: &Gatehouse, response: &RawResponse) -> String {
    let record = gh.access_log(response.request_id());
    record["cache"]
        .as_str()
        .unwrap_or_else(|| panic!("no cache field in {record}"))
        .to_owned()
}

#[test]
fn a_fresh_copy_is_served_without_the_origin_with_age_and_cache_status() {
    let origin = Upstream::serve(
        Reply::ok("fresh body")
            .header("Cache-Control", "max-age=60")
            .header("ETag", "\"v1\""),
    );
    let gh = start(caching(&origin).server("name", "edge"));

    let first = get(&gh, "/page");
    assert_eq!((first.status, first.text().as_str()), (200, "fresh body"));
    assert_eq!(
        first.cache_status(),
        "edge; fwd=miss; fwd-status=200; stored"
    );
    assert_eq!(cache_field(&gh, &first), "miss");

    let hit = get(&gh, "/page");
    assert_eq!((hit.status, hit.text().as_str()), (200, "fresh body"));
    assert!(
        hit.cache_status().starts_with("edge; hit; ttl="),
        "{hit:#?}"
    );
    let ttl = hit.cache_status_param("ttl");
    assert!((55..=60).contains(&ttl), "ttl {ttl} for max-age=60");
    assert!(hit.age() <= 5, "{hit:#?}");
    assert_eq!(hit.header("etag"), Some("\"v1\""));
    assert_eq!(hit.header("content-length"), Some("10"));
    assert_eq!(cache_field(&gh, &hit), "hit");
    assert_eq!(origin.requests_to("/page").len(), 1, "a hit went upstream");

    // The client's own conditional is answered from the copy.
    let not_modified = send(&gh, &Req::get("/page").header("If-None-Match", "\"v1\""));
    assert_eq!(not_modified.status, 304, "{not_modified:#?}");
    assert!(not_modified.body.is_empty());
    assert_eq!(not_modified.header("etag"), Some("\"v1\""));
    assert!(not_modified.cache_status().starts_with("edge; hit"));
    let other_tag = send(&gh, &Req::get("/page").header("If-None-Match", "\"v0\""));
    assert_eq!(
        (other_tag.status, other_tag.text().as_str()),
        (200, "fresh body")
    );
    assert_eq!(
        origin.requests_to("/page").len(),
        1,
        "{:#?}",
        origin.requests()
    );
}

#[test]
fn the_key_is_the_host_and_the_target_with_its_query() {
    let origin = Upstream::serve(Reply::ok("keyed").header("Cache-Control", "max-age=60"));
    let gh = start(caching(&origin));
    let on = |host: &str, target: &str| send(&gh, &Req::get(target).host(host));

    assert!(on("a.test", "/k?a=1").cache_status().contains("fwd=miss"));
    assert!(on("a.test", "/k?a=1").cache_status().contains("hit"));
    assert!(on("a.test", "/k?a=2").cache_status().contains("fwd=miss"));
    assert!(on("b.test", "/k?a=1").cache_status().contains("fwd=miss"));
    assert!(on("b.test", "/k?a=1").cache_status().contains("hit"));
    let targets: Vec<String> = origin
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.header("host").unwrap_or("-"), r.target))
        .collect();
    assert_eq!(
        targets,
        ["a.test /k?a=1", "a.test /k?a=2", "b.test /k?a=1"],
        "one origin request per host + target"
    );
}

#[test]
fn no_store_private_set_cookie_and_vary_star_are_never_stored() {
    let origin = Upstream::hello();
    let gh = start(caching(&origin));
    let cases = [
        (
            "/no-store",
            Reply::ok("a").header("Cache-Control", "no-store, max-age=60"),
            None,
            "no-store",
        ),
        (
            "/private",
            Reply::ok("b").header("Cache-Control", "private, max-age=60"),
            None,
            "private",
        ),
        (
            "/cookie",
            Reply::ok("c")
                .header("Cache-Control", "max-age=60")
                .header("Set-Cookie", "session=s3cret"),
            None,
            "set-cookie",
        ),
        (
            "/vary-star",
            Reply::ok("d")
                .header("Cache-Control", "max-age=60")
                .header("Vary", "*"),
            None,
            "vary-star",
        ),
        (
            "/request-no-store",
            Reply::ok("e").header("Cache-Control", "max-age=60"),
            Some(("Cache-Control", "no-store")),
            "no-store",
        ),
    ];
    for (path, reply, request_header, detail) in cases {
        origin.set_route(path, Behavior::Serve(reply.clone()));
        for _ in 0..2 {
            let mut req = Req::get(path);
            if let Some((name, value)) = request_header {
                req = req.header(name, value);
            }
            let response = send(&gh, &req);
            assert_eq!(response.body, reply.body, "{path}");
            assert_eq!(
                response.cache_status(),
                format!("gatehouse; fwd=miss; fwd-status=200; detail=\"{detail}\""),
                "{path}"
            );
            assert_eq!(cache_field(&gh, &response), "uncacheable", "{path}");
        }
        assert_eq!(
            origin.requests_to(path).len(),
            2,
            "{path}: the second request must reach the origin"
        );
    }
}

#[test]
fn bodies_over_max_object_size_pass_through_unstored() {
    let origin = Upstream::hello();
    let big = vec![b'x'; 2048];
    origin.set_route(
        "/big",
        Behavior::Serve(Reply::ok(big.clone()).header("Cache-Control", "max-age=60")),
    );
    origin.set_route(
        "/big-chunked",
        Behavior::Serve(
            Reply::ok(big.clone())
                .header("Cache-Control", "max-age=60")
                .header("Transfer-Encoding", "chunked"),
        ),
    );
    origin.set_route(
        "/small",
        Behavior::Serve(Reply::ok("small").header("Cache-Control", "max-age=60")),
    );
    let gh = start(caching(&origin).section("cache", "max_object_size", "1KiB"));

    for _ in 0..2 {
        let response = get(&gh, "/big");
        assert_eq!(response.body, big);
        assert_eq!(
            response.cache_status(),
            "gatehouse; fwd=miss; fwd-status=200; detail=\"too-large\""
        );
        // Without a Content-Length the size shows only while streaming: still not kept.
        let chunked = get(&gh, "/big-chunked");
        assert_eq!(chunked.body, big);
        assert!(!chunked.cache_status().contains("hit"), "{chunked:#?}");
        assert_eq!(get(&gh, "/small").text(), "small");
    }
    assert_eq!(origin.requests_to("/big").len(), 2);
    assert_eq!(origin.requests_to("/big-chunked").len(), 2);
    assert_eq!(
        origin.requests_to("/small").len(),
        1,
        "a small body is kept"
    );
}

#[test]
fn vary_keeps_variants_apart() {
    let origin = Upstream::hello();
    let gh = start(caching(&origin));
    let variant = |body: &str| {
        Behavior::Serve(
            Reply::ok(body)
                .header("Cache-Control", "max-age=60")
                .header("Vary", "Accept-Encoding"),
        )
    };
    let with = |encoding: Option<&str>| {
        let req = Req::get("/v");
        send(
            &gh,
            &match encoding {
                Some(encoding) => req.header("Accept-Encoding", encoding),
                None => req,
            },
        )
    };

    origin.set_behavior(variant("for gzip"));
    let gzip = with(Some("gzip"));
    assert_eq!(gzip.text(), "for gzip");
    assert!(gzip.cache_status().ends_with("stored"), "{gzip:#?}");
    origin.set_behavior(variant("for identity"));
    let identity = with(Some("identity"));
    assert_eq!(
        identity.text(),
        "for identity",
        "the gzip variant was served"
    );
    assert!(identity.cache_status().ends_with("stored"));
    origin.set_behavior(variant("for none"));
    assert_eq!(with(None).text(), "for none");
    assert_eq!(origin.requests_to("/v").len(), 3);

    // Each variant is now a hit of its own.
    origin.set_behavior(variant("from the origin"));
    for (encoding, body) in [
        (Some("gzip"), "for gzip"),
        (Some("identity"), "for identity"),
        (None, "for none"),
        (Some("gzip"), "for gzip"),
    ] {
        let response = with(encoding);
        assert_eq!(response.text(), body, "{encoding:?}");
        assert!(response.cache_status().contains("hit"), "{response:#?}");
    }
    assert_eq!(origin.requests_to("/v").len(), 3);
}

#[test]
fn stale_copies_are_revalidated_with_conditional_requests() {
    const LAST_MODIFIED: &str = "Wed, 01 Jan 2025 00:00:00 GMT";
    let origin = Upstream::hello();
    origin.set_route(
        "/etag",
        Behavior::Serve(
            Reply::ok("original")
                .header("Cache-Control", "max-age=1")
                .header("ETag", "\"v1\"")
                .header("Last-Modified", LAST_MODIFIED),
        ),
    );
    origin.set_route(
        "/changed",
        Behavior::Serve(
            Reply::ok("old")
                .header("Cache-Control", "max-age=1")
                .header("ETag", "\"c1\""),
        ),
    );
    origin.set_route(
        "/no-freshness",
        Behavior::Serve(Reply::ok("validated").header("ETag", "\"n1\"")),
    );
    let gh = start(caching(&origin));
    for path in ["/etag", "/changed", "/no-freshness"] {
        let response = get(&gh, path);
        assert!(
            response.cache_status().ends_with("stored"),
            "{path}: {response:#?}"
        );
        let sent = &origin.requests_to(path)[0];
        assert_eq!(sent.header("if-none-match"), None, "{sent:?}");
    }

    // Stored without explicit freshness: the next request goes to the origin, conditionally.
    origin.set_route(
        "/no-freshness",
        Behavior::Serve(Reply::new(304, "").header("ETag", "\"n1\"")),
    );
    let revalidated = get(&gh, "/no-freshness");
    assert_eq!(
        (revalidated.status, revalidated.text().as_str()),
        (200, "validated"),
        "the stored body answers a 304"
    );
    assert!(
        revalidated
            .cache_status()
            .starts_with("gatehouse; fwd=stale; fwd-status=304"),
        "{revalidated:#?}"
    );
    assert_eq!(cache_field(&gh, &revalidated), "revalidated");
    let conditional = &origin.requests_to("/no-freshness")[1];
    assert_eq!(conditional.header("if-none-match"), Some("\"n1\""));
    // The client's own conditional is answered from the revalidated copy: 304 when it matches,
    // the whole body when it does not (the origin sees gatehouse's validator, not the client's).
    let matching = send(
        &gh,
        &Req::get("/no-freshness").header("If-None-Match", "\"n1\""),
    );
    assert_eq!(matching.status, 304, "{matching:#?}");
    assert!(matching.body.is_empty());
    let other = send(
        &gh,
        &Req::get("/no-freshness").header("If-None-Match", "\"old\""),
    );
    assert_eq!(
        (other.status, other.text().as_str()),
        (200, "validated"),
        "{other:#?}"
    );
    let sent = origin.requests_to("/no-freshness");
    assert_eq!(sent.len(), 4);
    assert_eq!(sent[3].header("if-none-match"), Some("\"n1\""));

    std::thread::sleep(Duration::from_millis(1300));
    origin.set_route(
        "/etag",
        Behavior::Serve(
            Reply::new(304, "")
                .header("ETag", "\"v1\"")
                .header("Cache-Control", "max-age=60"),
        ),
    );
    origin.set_route(
        "/changed",
        Behavior::Serve(
            Reply::ok("new")
                .header("Cache-Control", "max-age=60")
                .header("ETag", "\"c2\""),
        ),
    );

    // 304: the stored body, freshened by the 304's max-age.
    let fresh_again = get(&gh, "/etag");
    assert_eq!(
        (fresh_again.status, fresh_again.text().as_str()),
        (200, "original")
    );
    assert_eq!(fresh_again.header("content-length"), Some("8"));
    assert!(
        fresh_again
            .cache_status()
            .starts_with("gatehouse; fwd=stale; fwd-status=304; ttl="),
        "{fresh_again:#?}"
    );
    let ttl = fresh_again.cache_status_param("ttl");
    assert!(
        (55..=60).contains(&ttl),
        "ttl {ttl} after a 304 with max-age=60"
    );
    assert_eq!(cache_field(&gh, &fresh_again), "revalidated");
    let conditional = &origin.requests_to("/etag")[1];
    assert_eq!(conditional.header("if-none-match"), Some("\"v1\""));
    assert_eq!(conditional.header("if-modified-since"), Some(LAST_MODIFIED));
    let hit = get(&gh, "/etag");
    assert_eq!(hit.text(), "original");
    assert!(hit.cache_status().starts_with("gatehouse; hit"), "{hit:#?}");
    assert_eq!(
        origin.requests_to("/etag").len(),
        2,
        "freshened, yet not a hit"
    );

    // 200: the new response replaces the copy.
    let replaced = get(&gh, "/changed");
    assert_eq!(replaced.text(), "new");
    assert_eq!(
        replaced.cache_status(),
        "gatehouse; fwd=stale; fwd-status=200; stored"
    );
    assert_eq!(cache_field(&gh, &replaced), "expired");
    assert_eq!(
        origin.requests_to("/changed")[1].header("if-none-match"),
        Some("\"c1\"")
    );
    let hit = get(&gh, "/changed");
    assert_eq!(hit.text(), "new");
    assert!(hit.cache_status().starts_with("gatehouse; hit"), "{hit:#?}");
    assert_eq!(origin.requests_to("/changed").len(), 2);
}

#[test]
fn a_burst_for_one_uncached_key_sends_one_upstream_request() {
    const CLIENTS: usize = 10;
    let origin = Upstream::start(Behavior::Delay(
        Duration::from_millis(800),
        Reply::ok("worth the wait").header("Cache-Control", "max-age=60"),
    ));
    let gh = start(caching(&origin));
    let addr = gh.addr();
    let barrier = Arc::new(Barrier::new(CLIENTS));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                Req::get("/burst").send(addr)
            })
        })
        .collect();
    let responses: Vec<RawResponse> = clients
        .into_iter()
        .map(|client| client.join().unwrap_or_else(|_| panic!("client panicked")))
        .collect();
    for response in &responses {
        assert_eq!(
            (response.status, response.text().as_str(), response.complete),
            (200, "worth the wait", true),
            "{response:#?}"
        );
    }
    assert_eq!(
        origin.requests_to("/burst").len(),
        1,
        "a burst of {CLIENTS} must send one upstream request"
    );
    let statuses: Vec<&str> = responses.iter().map(RawResponse::cache_status).collect();
    let leaders = statuses.iter().filter(|s| s.contains("fwd=miss")).count();
    let collapsed = statuses.iter().filter(|s| s.contains("collapsed")).count();
    assert_eq!((leaders, collapsed), (1, CLIENTS - 1), "{statuses:#?}");
    for status in statuses.iter().filter(|s| s.contains("collapsed")) {
        assert!(status.starts_with("gatehouse; hit"), "{status}");
    }
}

#[test]
fn head_is_answered_from_a_stored_get() {
    let origin = Upstream::serve(Reply::ok("hello head").header("Cache-Control", "max-age=60"));
    let gh = start(caching(&origin));

    assert!(get(&gh, "/h").cache_status().ends_with("stored"));
    let head = send(&gh, &Req::new("HEAD", "/h"));
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(head.header("content-length"), Some("10"));
    assert!(
        head.cache_status().starts_with("gatehouse; hit"),
        "{head:#?}"
    );
    assert_eq!(origin.requests_to("/h").len(), 1, "HEAD went upstream");

    // A HEAD of an unstored key goes upstream and stores nothing: the GET after it is a miss.
    let head = send(&gh, &Req::new("HEAD", "/h2"));
    assert_eq!(head.status, 200);
    assert!(!head.cache_status().contains("stored"), "{head:#?}");
    let after = get(&gh, "/h2");
    assert_eq!(after.text(), "hello head");
    assert!(after.cache_status().contains("fwd=miss"), "{after:#?}");
    let methods: Vec<String> = origin
        .requests_to("/h2")
        .iter()
        .map(|r| r.method.clone())
        .collect();
    assert_eq!(methods, ["HEAD", "GET"]);
}

#[test]
fn requests_with_authorization_bypass_stored_copies() {
    let origin = Upstream::hello();
    origin.set_route(
        "/a",
        Behavior::Serve(Reply::ok("for anyone").header("Cache-Control", "max-age=60")),
    );
    origin.set_route(
        "/pub",
        Behavior::Serve(Reply::ok("public").header("Cache-Control", "public, max-age=60")),
    );
    let gh = start(caching(&origin));
    let authorized =
        |path: &str| send(&gh, &Req::get(path).header("Authorization", "Bearer t0k3n"));

    assert!(get(&gh, "/a").cache_status().ends_with("stored"));
    assert!(get(&gh, "/a").cache_status().contains("hit"));
    let with_auth = authorized("/a");
    assert_eq!(with_auth.text(), "for anyone");
    let status = with_auth.cache_status();
    assert!(
        !status.contains("hit") && status.contains("detail=\"authorization\""),
        "{status}"
    );
    assert_eq!(
        origin.requests_to("/a").len(),
        2,
        "the stored copy served an Authorization request"
    );
    assert!(get(&gh, "/a").cache_status().contains("hit"));
    assert_eq!(origin.requests_to("/a").len(), 2);

    // `public` lets a response to an authorized request be stored for everyone else...
    let first = authorized("/pub");
    assert!(first.cache_status().ends_with("stored"), "{first:#?}");
    let anonymous = get(&gh, "/pub");
    assert!(anonymous.cache_status().contains("hit"), "{anonymous:#?}");
    assert_eq!(origin.requests_to("/pub").len(), 1);
    // ...but an authorized request still never gets a stored copy.
    let again = authorized("/pub");
    assert!(!again.cache_status().contains("hit"), "{again:#?}");
    assert_eq!(origin.requests_to("/pub").len(), 2);
}

#[test]
fn successful_unsafe_methods_invalidate_the_key() {
    let origin = Upstream::serve(Reply::ok("v1").header("Cache-Control", "max-age=60"));
    let gh = start(caching(&origin));
    let gets = || {
        origin
            .requests_to("/i")
            .iter()
            .filter(|r| r.method == "GET")
            .count()
    };

    assert!(get(&gh, "/i").cache_status().ends_with("stored"));
    assert!(get(&gh, "/i").cache_status().contains("hit"));
    assert_eq!(gets(), 1);

    // A failed POST leaves the copy alone.
    origin.set_behavior(Behavior::Serve(Reply::new(404, "no")));
    let refused = send(&gh, &Req::new("POST", "/i").body("x"));
    assert_eq!(refused.status, 404);
    let hit = get(&gh, "/i");
    assert_eq!(hit.text(), "v1");
    assert!(hit.cache_status().contains("hit"), "{hit:#?}");
    assert_eq!(gets(), 1);

    for method in ["POST", "PUT", "DELETE"] {
        origin.set_behavior(Behavior::Serve(Reply::ok("done")));
        let unsafe_response = send(&gh, &Req::new(method, "/i").body("x"));
        assert_eq!(unsafe_response.status, 200, "{method}");
        origin.set_behavior(Behavior::Serve(
            Reply::ok(format!("after {method}")).header("Cache-Control", "max-age=60"),
        ));
        let before = gets();
        let after = get(&gh, "/i");
        assert_eq!(
            after.text(),
            format!("after {method}"),
            "{method} did not invalidate"
        );
        assert!(after.cache_status().contains("fwd=miss"), "{after:#?}");
        assert_eq!(gets(), before + 1);
    }
}

#[test]
fn without_explicit_freshness_last_modified_gives_a_heuristic_lifetime() {
    let origin = Upstream::hello();
    // More than ten days old: 10 % of its age is past the one-day cap.
    origin.set_route(
        "/old",
        Behavior::Serve(
            Reply::ok("old page").header("Last-Modified", "Wed, 01 Jan 2025 00:00:00 GMT"),
        ),
    );
    // Neither freshness nor a validator: kept, but every request goes to the origin.
    origin.set_route("/bare", Behavior::Serve(Reply::ok("bare")));
    let gh = start(caching(&origin));

    assert!(get(&gh, "/old").cache_status().ends_with("stored"));
    let hit = get(&gh, "/old");
    assert!(hit.cache_status().starts_with("gatehouse; hit"), "{hit:#?}");
    let ttl = hit.cache_status_param("ttl");
    assert!(
        (86_000..=86_400).contains(&ttl),
        "heuristic ttl {ttl}, capped at a day"
    );
    assert_eq!(origin.requests_to("/old").len(), 1);

    assert!(get(&gh, "/bare").cache_status().ends_with("stored"));
    let again = get(&gh, "/bare");
    assert_eq!(again.text(), "bare");
    assert!(!again.cache_status().contains("hit"), "{again:#?}");
    let sent = origin.requests_to("/bare");
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[1].header("if-none-match"), None);
    assert_eq!(sent[1].header("if-modified-since"), None);
}

#[test]
fn requests_waiting_for_an_uncacheable_response_go_upstream_without_waiting_it_out() {
    const CLIENTS: usize = 5;
    let origin = Upstream::start(Behavior::Delay(
        Duration::from_millis(500),
        Reply::ok("not for keeping").header("Cache-Control", "no-store"),
    ));
    // A lock timeout far beyond the test: waiters must be released when the leader's response
    // turns out not storable, not when the lock times out.
    let gh = start(caching(&origin).section("cache", "lock_timeout", "30s"));
    let addr = gh.addr();
    let barrier = Arc::new(Barrier::new(CLIENTS));
    let started = std::time::Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                Req::get("/uncacheable").send(addr)
            })
        })
        .collect();
    for client in clients {
        let response = client.join().unwrap_or_else(|_| panic!("client panicked"));
        assert_eq!(
            (response.status, response.text().as_str()),
            (200, "not for keeping")
        );
    }
    let elapsed = started.elapsed();
    assert_eq!(origin.requests_to("/uncacheable").len(), CLIENTS);
    assert!(
        elapsed < Duration::from_secs(3),
        "the burst took {elapsed:?} for a 500 ms origin"
    );
}

#[test]
fn a_304_carrying_a_cookie_answers_its_client_but_is_never_shared() {
    let origin = Upstream::hello();
    origin.set_route(
        "/session",
        Behavior::Serve(
            Reply::ok("page")
                .header("Cache-Control", "max-age=0")
                .header("ETag", "\"v1\""),
        ),
    );
    let gh = start(caching(&origin));
    assert!(get(&gh, "/session").cache_status().ends_with("stored"));

    // Alice's revalidation: the origin's 304 sets her cookie and makes the copy private.
    origin.set_route(
        "/session",
        Behavior::Serve(
            Reply::new(304, "")
                .header("ETag", "\"v1\"")
                .header("Set-Cookie", "session=alice")
                .header("Cache-Control", "private, max-age=60"),
        ),
    );
    let alice = get(&gh, "/session");
    assert_eq!((alice.status, alice.text().as_str()), (200, "page"));
    assert_eq!(alice.header("set-cookie"), Some("session=alice"));

    // Bob must not get Alice's cookie from the cache: his request goes to the origin.
    origin.set_route("/session", Behavior::Serve(Reply::ok("bob's page")));
    let bob = get(&gh, "/session");
    assert_eq!(bob.text(), "bob's page", "{bob:#?}");
    assert_eq!(bob.header("set-cookie"), None, "{bob:#?}");
    assert!(!bob.cache_status().contains("hit"), "{bob:#?}");
}

#[test]
fn a_clients_no_cache_does_not_bypass_a_fresh_copy() {
    let origin = Upstream::serve(Reply::ok("shared").header("Cache-Control", "max-age=60"));
    let gh = start(caching(&origin));
    assert!(get(&gh, "/p").cache_status().ends_with("stored"));
    // A browser's reload sends these; like nginx and Varnish, the cache still answers.
    for directive in ["no-cache", "max-age=0"] {
        let reload = send(&gh, &Req::get("/p").header("Cache-Control", directive));
        assert!(
            reload.cache_status().contains("hit"),
            "{directive}: {reload:#?}"
        );
    }
    assert_eq!(origin.requests_to("/p").len(), 1);
}
