//! The cache's completion, through the real binary, with origins that send the fields:
//! targeted cache control (RFC 9213), `Age` validity (RFC 9111 §5.1), stale-while-revalidate
//! (RFC 5861 §3), `Range` requests answered from a stored copy (RFC 9110 §14, §13.1.5), `Vary`
//! normalisation of `Accept-Encoding` / `Accept-Language`, purging on the admin listener and
//! with `gatehouse purge`, and interim responses never stored. Each test counts the requests
//! the origin received, so a copy served (or not) from the cache shows.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use gatehouse_testkit::free_port;
use gatehouse_testkit::{Behavior, Config, Gatehouse, RawResponse, Reply, Req, Upstream};

fn start(config: &Config) -> Gatehouse {
    Gatehouse::start(Path::new(env!("CARGO_BIN_EXE_gatehouse")), &config.toml())
}

fn caching(origin: &Upstream) -> Config {
    Config::proxy_to([origin.addr()]).route_section("cache", "mode", "full")
}

fn send(gh: &Gatehouse, req: &Req) -> RawResponse {
    let response = req.send(gh.addr());
    assert!(response.complete, "{req:?}: {response:#?}");
    response
}

fn get(gh: &Gatehouse, target: &str) -> RawResponse {
    send(gh, &Req::get(target))
}

// --- RFC 9213: targeted cache control ---

#[test]
fn cdn_cache_control_outranks_cache_control_and_is_forwarded() {
    let origin = Upstream::serve(
        Reply::ok("cdn")
            .header("Cache-Control", "no-store")
            .header("CDN-Cache-Control", "max-age=60"),
    );
    let gh = start(&caching(&origin));
    let first = get(&gh, "/cdn");
    assert_eq!(
        first.cache_status(),
        "gatehouse; fwd=miss; fwd-status=200; stored; detail=\"cdn-cache-control\""
    );
    // It targets every CDN on the way: the next one may need it.
    assert_eq!(first.header("cdn-cache-control"), Some("max-age=60"));
    assert_eq!(first.header("cache-control"), Some("no-store"));
    let hit = get(&gh, "/cdn");
    assert!(
        hit.cache_status().starts_with("gatehouse; hit; ttl="),
        "{hit:#?}"
    );
    assert_eq!(
        hit.header("cache-control"),
        Some("no-store"),
        "browsers still obey it"
    );
    assert_eq!(origin.requests().len(), 1);
}

#[test]
fn cdn_cache_control_forbids_what_cache_control_allows() {
    for (cdn, detail) in [("no-store", "no-store"), ("private", "private")] {
        let origin = Upstream::serve(
            Reply::ok("x")
                .header("Cache-Control", "public, max-age=600")
                .header("CDN-Cache-Control", cdn),
        );
        let gh = start(&caching(&origin));
        let first = get(&gh, "/x");
        assert_eq!(
            first.cache_status(),
            format!("gatehouse; fwd=miss; fwd-status=200; detail=\"{detail}\"")
        );
        get(&gh, "/x");
        assert_eq!(origin.requests().len(), 2, "{cdn}: stored anyway");
    }
    // max-age=0 in the targeted field: stored, but stale at once (no hit).
    let origin = Upstream::serve(
        Reply::ok("x")
            .header("Cache-Control", "max-age=600")
            .header("CDN-Cache-Control", "max-age=0"),
    );
    let gh = start(&caching(&origin));
    get(&gh, "/x");
    let second = get(&gh, "/x");
    assert!(second.cache_status().contains("fwd=stale"), "{second:#?}");
    assert_eq!(origin.requests().len(), 2);
}

#[test]
fn gatehouse_cache_control_outranks_both_and_is_not_forwarded() {
    let origin = Upstream::serve(
        Reply::ok("own")
            .header("Cache-Control", "max-age=600")
            .header("CDN-Cache-Control", "max-age=600")
            .header("Gatehouse-Cache-Control", "no-store"),
    );
    let gh = start(&caching(&origin));
    let first = get(&gh, "/own");
    assert_eq!(
        first.cache_status(),
        "gatehouse; fwd=miss; fwd-status=200; detail=\"no-store\""
    );
    assert_eq!(first.header("gatehouse-cache-control"), None, "{first:#?}");
    assert_eq!(first.header("cdn-cache-control"), Some("max-age=600"));
    get(&gh, "/own");
    assert_eq!(origin.requests().len(), 2);

    // The other way round: only gatehouse keeps it, and hits do not show the field either.
    let origin = Upstream::serve(
        Reply::ok("own")
            .header("Cache-Control", "no-store")
            .header("Gatehouse-Cache-Control", "max-age=60"),
    );
    let gh = start(&caching(&origin));
    let first = get(&gh, "/own");
    assert_eq!(
        first.cache_status(),
        "gatehouse; fwd=miss; fwd-status=200; stored; detail=\"targeted-field\""
    );
    let hit = get(&gh, "/own");
    assert!(hit.cache_status().starts_with("gatehouse; hit"), "{hit:#?}");
    assert_eq!(hit.header("gatehouse-cache-control"), None, "{hit:#?}");
    assert_eq!(origin.requests().len(), 1);
}

#[test]
fn the_targeted_field_is_configurable_and_can_be_forwarded() {
    let origin = Upstream::serve(
        Reply::ok("edge")
            .header("Cache-Control", "no-store")
            .header("CDN-Cache-Control", "no-store")
            .header("Edge-Control", "max-age=60"),
    );
    let gh = start(
        &caching(&origin)
            .section("cache", "targeted_field", "Edge-Control")
            .section("cache", "forward_targeted_field", true),
    );
    let first = get(&gh, "/e");
    assert!(
        first
            .cache_status()
            .ends_with("stored; detail=\"targeted-field\""),
        "{first:#?}"
    );
    assert_eq!(first.header("edge-control"), Some("max-age=60"));
    let hit = get(&gh, "/e");
    assert!(hit.cache_status().contains("hit"));
    assert_eq!(hit.header("edge-control"), Some("max-age=60"));
    assert_eq!(origin.requests().len(), 1);
}

#[test]
fn with_targets_off_or_invalid_cache_control_decides() {
    let origin = Upstream::serve(
        Reply::ok("cc")
            .header("Cache-Control", "no-store")
            .header("CDN-Cache-Control", "max-age=60")
            .header("Gatehouse-Cache-Control", "max-age=60"),
    );
    let gh = start(
        &caching(&origin)
            .section("cache", "targeted_field", "")
            .section("cache", "cdn_cache_control", false),
    );
    let first = get(&gh, "/cc");
    assert!(
        first.cache_status().contains("detail=\"no-store\""),
        "{first:#?}"
    );
    assert_eq!(first.header("gatehouse-cache-control"), Some("max-age=60"));

    // An invalid targeted field (not a Structured Field Dictionary) is ignored (RFC 9213 §2.1).
    let origin = Upstream::serve(
        Reply::ok("cc")
            .header("Cache-Control", "no-store")
            .header("CDN-Cache-Control", "Max-Age=60"),
    );
    let gh = start(&caching(&origin));
    let first = get(&gh, "/cc");
    assert!(
        first.cache_status().contains("detail=\"no-store\""),
        "{first:#?}"
    );
}

// --- RFC 9111 §5.1: Age ---

#[test]
fn a_response_with_an_invalid_age_is_not_reused() {
    for age in ["1a", "-1", "1.5", ""] {
        let origin = Upstream::serve(
            Reply::ok("aged")
                .header("Cache-Control", "max-age=60")
                .header("Age", age),
        );
        let gh = start(&caching(&origin));
        let first = get(&gh, "/aged");
        assert_eq!(
            first.cache_status(),
            "gatehouse; fwd=miss; fwd-status=200; detail=\"invalid-age\"",
            "Age: {age:?}"
        );
        get(&gh, "/aged");
        assert_eq!(origin.requests().len(), 2, "Age: {age:?} was reused");
    }
}

#[test]
fn several_age_lines_use_the_first() {
    let origin = Upstream::serve(
        Reply::ok("aged")
            .header("Cache-Control", "max-age=60")
            .header("Age", "20")
            .header("Age", "5"),
    );
    let gh = start(&caching(&origin));
    get(&gh, "/aged");
    let hit = get(&gh, "/aged");
    assert!(hit.cache_status().contains("hit"), "{hit:#?}");
    assert!((20..=25).contains(&hit.age()), "{hit:#?}");
    let ttl = hit.cache_status_param("ttl");
    assert!((35..=40).contains(&ttl), "ttl {ttl}");
}

// --- RFC 5861 §3: stale-while-revalidate ---

#[test]
fn inside_the_window_the_stale_copy_answers_at_once_and_one_request_revalidates() {
    let origin = Upstream::serve(
        Reply::ok("v1")
            .header("Cache-Control", "max-age=1, stale-while-revalidate=30")
            .header("ETag", "\"v1\""),
    );
    let gh = start(&caching(&origin));
    assert_eq!(get(&gh, "/swr").text(), "v1");
    std::thread::sleep(Duration::from_millis(2100));
    // The origin is slow now: the revalidation is still in flight while the others come.
    origin.set_behavior(Behavior::Delay(
        Duration::from_millis(1500),
        Reply::ok("v2")
            .header("Cache-Control", "max-age=60, stale-while-revalidate=30")
            .header("ETag", "\"v2\""),
    ));
    let began = Instant::now();
    for _ in 0..5 {
        let stale = send(&gh, &Req::get("/swr").header("If-None-Match", "\"v0\""));
        assert_eq!((stale.status, stale.text().as_str()), (200, "v1"));
        let status = stale.cache_status();
        assert!(
            status.starts_with("gatehouse; hit; ttl=-")
                && status.ends_with("detail=\"stale-while-revalidate\""),
            "{status}"
        );
        assert!(stale.age() >= 1, "visibly stale: {stale:#?}");
        let record = gh.access_log(stale.request_id());
        assert_eq!(record["cache"], "stale-revalidate", "{record}");
    }
    assert!(
        began.elapsed() < Duration::from_millis(1200),
        "the stale copy waited for the origin: {:?}",
        began.elapsed()
    );
    let requests = origin.wait_for_requests(2, Duration::from_secs(5));
    let revalidation = &requests[1];
    assert_eq!(
        revalidation.header("if-none-match"),
        Some("\"v1\""),
        "{revalidation:?}"
    );
    // The new copy replaces the stale one; nothing else went upstream.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let response = get(&gh, "/swr");
        if response.text() == "v2" {
            assert!(
                response.cache_status().starts_with("gatehouse; hit"),
                "{response:#?}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never revalidated: {response:#?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(origin.requests().len(), 2, "{:#?}", origin.requests());
    let background = gh.wait_for_log(
        |l| l["cache"] == "background" && l["status"] == 200,
        Duration::from_secs(5),
    );
    assert_eq!(background["upstream_status"], 200, "{background}");
}

#[test]
fn a_stale_hit_adds_no_request_while_another_fetch_of_the_key_is_in_flight() {
    let origin = Upstream::serve(
        Reply::ok("en-1")
            .header("Cache-Control", "max-age=1, stale-while-revalidate=30")
            .header("Vary", "Accept-Language"),
    );
    let gh = start(&caching(&origin));
    let in_language =
        |language: &str| send(&gh, &Req::get("/lang").header("Accept-Language", language));
    assert_eq!(in_language("en").text(), "en-1");
    std::thread::sleep(Duration::from_millis(2100));
    origin.set_behavior(Behavior::Delay(
        Duration::from_millis(1500),
        Reply::ok("any-2")
            .header("Cache-Control", "max-age=60")
            .header("Vary", "Accept-Language"),
    ));
    let addr = gh.addr();
    // A miss for another variant fetches the key (it holds the key's fill) ...
    let miss =
        std::thread::spawn(move || Req::get("/lang").header("Accept-Language", "de").send(addr));
    origin.wait_for_requests(2, Duration::from_secs(5));
    // ... so the stale English copy answers at once and starts no revalidation of its own.
    let stale = in_language("en");
    assert_eq!(stale.text(), "en-1");
    assert!(
        stale.cache_status().contains("stale-while-revalidate"),
        "{stale:#?}"
    );
    let miss = miss.join().unwrap_or_else(|_| panic!("the miss panicked"));
    assert_eq!(miss.text(), "any-2");
    assert_eq!(origin.requests().len(), 2, "{:#?}", origin.requests());
    // Once it is done, the next stale hit revalidates.
    let stale = in_language("en");
    assert_eq!(stale.text(), "en-1");
    origin.wait_for_requests(3, Duration::from_secs(5));
}

#[test]
fn outside_the_window_a_stale_copy_is_a_normal_miss() {
    let origin = Upstream::serve(
        Reply::ok("v1").header("Cache-Control", "max-age=1, stale-while-revalidate=1"),
    );
    let gh = start(&caching(&origin));
    get(&gh, "/late");
    std::thread::sleep(Duration::from_millis(3100));
    origin.set_behavior(Behavior::Serve(
        Reply::ok("v2").header("Cache-Control", "max-age=60"),
    ));
    let late = get(&gh, "/late");
    assert_eq!(late.text(), "v2", "{late:#?}");
    assert_eq!(
        late.cache_status(),
        "gatehouse; fwd=stale; fwd-status=200; stored"
    );
    assert_eq!(origin.requests().len(), 2);
}

#[test]
fn a_revalidation_answered_with_no_store_drops_the_stale_copy() {
    let origin = Upstream::serve(
        Reply::ok("v1").header("Cache-Control", "max-age=1, stale-while-revalidate=30"),
    );
    let gh = start(&caching(&origin));
    get(&gh, "/gone");
    std::thread::sleep(Duration::from_millis(2100));
    origin.set_behavior(Behavior::Serve(
        Reply::ok("v2").header("Cache-Control", "no-store"),
    ));
    // The client's own no-store does not travel with the background request.
    let stale = send(&gh, &Req::get("/gone").header("Cache-Control", "no-store"));
    assert_eq!(stale.text(), "v1");
    let revalidation = &origin.wait_for_requests(2, Duration::from_secs(5))[1];
    assert_eq!(
        revalidation.header("cache-control"),
        None,
        "{revalidation:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let response = get(&gh, "/gone");
        if response.text() == "v2" {
            assert!(
                response.cache_status().contains("fwd=miss"),
                "{response:#?}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the stale copy stayed: {response:#?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn must_revalidate_forbids_stale_while_revalidate() {
    let origin = Upstream::serve(Reply::ok("v1").header(
        "Cache-Control",
        "max-age=1, stale-while-revalidate=30, must-revalidate",
    ));
    let gh = start(&caching(&origin));
    get(&gh, "/mr");
    std::thread::sleep(Duration::from_millis(2100));
    let second = get(&gh, "/mr");
    assert!(
        second.cache_status().contains("fwd=stale; fwd-status=200"),
        "{second:#?}"
    );
    assert_eq!(origin.requests().len(), 2);
}

// --- RFC 9110 §14: Range requests from a stored copy ---

const BODY: &str = "0123456789abcdefghij";
const LAST_MODIFIED: &str = "Mon, 01 Jan 2024 00:00:00 GMT";

fn ranged_origin() -> Upstream {
    Upstream::serve(
        Reply::ok(BODY)
            .header("Cache-Control", "max-age=60")
            .header("Content-Type", "text/plain")
            .header("ETag", "\"r1\"")
            .header("Last-Modified", LAST_MODIFIED),
    )
}

fn ranged(gh: &Gatehouse, range: &str) -> RawResponse {
    send(gh, &Req::get("/r").header("Range", range))
}

#[test]
fn a_stored_response_answers_single_suffix_and_open_ended_ranges() {
    let origin = ranged_origin();
    let gh = start(&caching(&origin));
    let full = get(&gh, "/r");
    assert_eq!(full.text(), BODY);
    for (range, content_range, body) in [
        ("bytes=0-4", "bytes 0-4/20", "01234"),
        ("bytes=-3", "bytes 17-19/20", "hij"),
        ("bytes=15-", "bytes 15-19/20", "fghij"),
        ("bytes=18-99", "bytes 18-19/20", "ij"),
    ] {
        let partial = ranged(&gh, range);
        assert_eq!(partial.status, 206, "{range}: {partial:#?}");
        assert_eq!(partial.header("content-range"), Some(content_range));
        assert_eq!(partial.text(), body);
        assert_eq!(
            partial.header("content-length"),
            Some(body.len().to_string().as_str())
        );
        assert!(partial.cache_status().starts_with("gatehouse; hit"));
    }
    let hit = get(&gh, "/r");
    assert_eq!(hit.header("accept-ranges"), Some("bytes"));
    assert_eq!(origin.requests().len(), 1);
}

#[test]
fn several_ranges_are_multipart_byteranges() {
    let origin = ranged_origin();
    let gh = start(&caching(&origin));
    get(&gh, "/r");
    let multi = ranged(&gh, "bytes=0-1, 10-12");
    assert_eq!(multi.status, 206, "{multi:#?}");
    let content_type = multi.header("content-type").unwrap_or_default().to_owned();
    let boundary = content_type
        .strip_prefix("multipart/byteranges; boundary=")
        .unwrap_or_else(|| panic!("{content_type}"));
    assert_eq!(multi.header("content-range"), None);
    let text = multi.text();
    let want = format!(
        "\r\n--{boundary}\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-1/20\r\n\r\n01\
         \r\n--{boundary}\r\nContent-Type: text/plain\r\nContent-Range: bytes 10-12/20\r\n\r\nabc\
         \r\n--{boundary}--\r\n"
    );
    assert_eq!(text, want);
    assert_eq!(origin.requests().len(), 1);
}

#[test]
fn an_unsatisfiable_range_is_416_with_the_length() {
    let origin = ranged_origin();
    let gh = start(&caching(&origin));
    get(&gh, "/r");
    for range in ["bytes=20-", "bytes=50-60", "bytes=-0"] {
        let refused = ranged(&gh, range);
        assert_eq!(refused.status, 416, "{range}: {refused:#?}");
        assert_eq!(refused.header("content-range"), Some("bytes */20"));
        assert!(refused.body.is_empty());
    }
    // Invalid or foreign ranges are ignored: the whole response.
    for range in ["bytes=5-1", "items=0-1", "bytes=x-"] {
        let whole = ranged(&gh, range);
        assert_eq!(
            (whole.status, whole.text().as_str()),
            (200, BODY),
            "{range}"
        );
    }
    assert_eq!(origin.requests().len(), 1);
}

#[test]
fn if_range_needs_a_strong_matching_validator() {
    let origin = Upstream::serve(
        Reply::ok(BODY)
            .header("Cache-Control", "max-age=60")
            .header("ETag", "\"r1\"")
            .header("Last-Modified", LAST_MODIFIED),
    );
    let gh = start(&caching(&origin));
    get(&gh, "/r");
    let with = |if_range: &str| {
        send(
            &gh,
            &Req::get("/r")
                .header("Range", "bytes=0-1")
                .header("If-Range", if_range),
        )
    };
    assert_eq!(with("\"r1\"").status, 206);
    assert_eq!(with(LAST_MODIFIED).status, 206);
    for stale in [
        "\"r0\"",
        "W/\"r1\"",
        "Mon, 01 Jan 2024 00:00:01 GMT",
        "junk",
    ] {
        let whole = with(stale);
        assert_eq!(
            (whole.status, whole.text().as_str()),
            (200, BODY),
            "{stale}"
        );
    }
    assert_eq!(origin.requests().len(), 1);
}

#[test]
fn a_partial_response_from_the_origin_is_passed_through_uncached() {
    let origin = Upstream::serve(
        Reply::new(206, "01")
            .header("Cache-Control", "max-age=60")
            .header("Content-Range", "bytes 0-1/20"),
    );
    let gh = start(&caching(&origin));
    for _ in 0..2 {
        let partial = ranged(&gh, "bytes=0-1");
        assert_eq!((partial.status, partial.text().as_str()), (206, "01"));
        assert_eq!(
            partial.cache_status(),
            "gatehouse; fwd=miss; fwd-status=206; detail=\"partial\""
        );
    }
    assert_eq!(origin.requests().len(), 2);
    assert_eq!(origin.requests()[0].header("range"), Some("bytes=0-1"));
}

// --- Vary normalisation ---

#[test]
fn equivalent_accept_encoding_and_accept_language_share_a_variant() {
    let origin = Upstream::serve(
        Reply::ok("varied")
            .header("Cache-Control", "max-age=60")
            .header("Vary", "Accept-Encoding, Accept-Language"),
    );
    let gh = start(&caching(&origin));
    let ask = |encoding: &str, language: &str| {
        send(
            &gh,
            &Req::get("/v")
                .header("Accept-Encoding", encoding)
                .header("Accept-Language", language),
        )
    };
    assert!(
        ask("gzip, br", "en-US,de;q=0.5")
            .cache_status()
            .contains("fwd=miss")
    );
    for (encoding, language) in [
        ("br,gzip", "de;q=0.5, en-US"),
        ("GZIP , BR", "EN-us , de;q=0.500"),
        ("gzip;q=1.0, br", "en-US;q=1, de;q=0.50"),
    ] {
        let hit = ask(encoding, language);
        assert!(
            hit.cache_status().contains("hit"),
            "{encoding} / {language}: {hit:#?}"
        );
    }
    // Other weights are another preference: another variant.
    assert!(
        ask("gzip, br", "en-US;q=0.5,de")
            .cache_status()
            .contains("fwd=miss")
    );
    assert!(
        ask("gzip;q=0.5, br", "en-US,de;q=0.5")
            .cache_status()
            .contains("fwd=miss")
    );
    assert_eq!(origin.requests().len(), 3);
}

// --- Purge and ban ---

const TOKEN: &str = "purge-secret";

fn admin_config(origin: &Upstream) -> (Config, SocketAddr) {
    let admin: SocketAddr = format!("127.0.0.1:{}", free_port())
        .parse()
        .unwrap_or_else(|e| panic!("{e}"));
    let config = caching(origin)
        .server("admin", admin.to_string())
        .server("admin_token", TOKEN);
    (config, admin)
}

fn purge(admin: SocketAddr, query: &str, token: Option<&str>) -> RawResponse {
    let mut req = Req::new("POST", &format!("/cache/purge?{query}")).body("");
    if let Some(token) = token {
        req = req.header("Authorization", &format!("Bearer {token}"));
    }
    req.send(admin)
}

fn tagged_origin() -> Upstream {
    let origin = Upstream::serve(Reply::ok("plain").header("Cache-Control", "max-age=600"));
    origin.set_route(
        "/a",
        Behavior::Serve(
            Reply::ok("a")
                .header("Cache-Control", "max-age=600")
                .header("Surrogate-Key", "red  green"),
        ),
    );
    origin.set_route(
        "/b",
        Behavior::Serve(
            Reply::ok("b")
                .header("Cache-Control", "max-age=600")
                .header("Cache-Tag", "blue,red"),
        ),
    );
    origin
}

fn is_hit(gh: &Gatehouse, target: &str) -> bool {
    get(gh, target).cache_status().contains("hit")
}

#[test]
fn purge_by_url_prefix_and_tag_on_the_admin_listener() {
    let origin = tagged_origin();
    let (config, admin) = admin_config(&origin);
    let gh = start(&config);
    for target in ["/a", "/b", "/static/1", "/static/2", "/other?q=1"] {
        get(&gh, target);
        assert!(is_hit(&gh, target), "{target}");
    }

    let refused = purge(admin, "tag=red", None);
    assert_eq!(refused.status, 401, "{refused:#?}");
    let wrong = Req::get("/cache/purge?tag=red")
        .header("Authorization", &format!("Bearer {TOKEN}"))
        .send(admin);
    assert_eq!(wrong.status, 405);
    for bad in [
        "",
        "url=",
        "colour=red",
        "tag=red&url=app.test/a",
        "tag=%zz",
    ] {
        assert_eq!(purge(admin, bad, Some(TOKEN)).status, 400, "{bad:?}");
    }
    assert!(is_hit(&gh, "/a"), "a refused purge dropped something");

    let one = purge(
        admin,
        "url=http%3A%2F%2Fapp.test%2Fother%3Fq%3D1",
        Some(TOKEN),
    );
    assert_eq!(one.status, 200, "{one:#?}");
    assert_eq!(one.json()["purged"], 1, "{}", one.text());
    assert!(!is_hit(&gh, "/other?q=1"));

    let prefix = purge(admin, "prefix=app.test/static/", Some(TOKEN));
    assert_eq!(prefix.json()["purged"], 2, "{}", prefix.text());
    assert!(!is_hit(&gh, "/static/1"));
    assert!(!is_hit(&gh, "/static/2"));

    let tag = purge(admin, "tag=red", Some(TOKEN));
    assert_eq!(tag.json()["purged"], 2, "{}", tag.text());
    assert!(!is_hit(&gh, "/a"));
    assert!(!is_hit(&gh, "/b"));
    assert_eq!(purge(admin, "tag=re", Some(TOKEN)).json()["purged"], 0);

    let logged = gh.wait_for_log(|l| l["message"] == "cache purged", Duration::from_secs(5));
    assert_eq!(logged["purged"], 1, "{logged}");
}

#[test]
fn the_purge_command_reads_the_admin_address_and_token_from_the_config() {
    let origin = tagged_origin();
    let (config, _) = admin_config(&origin);
    let gh = start(&config);
    get(&gh, "/b");
    get(&gh, "/static/1");
    assert!(is_hit(&gh, "/b"));
    let run = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
            .arg("-c")
            .arg(gh.config_path())
            .arg("purge")
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("gatehouse purge: {e}"));
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
        )
    };
    let (code, stdout) = run(&["--tag", "blue"]);
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.contains("\"purged\":1"), "{stdout}");
    assert!(!is_hit(&gh, "/b"));
    let (code, stdout) = run(&["--url", "http://app.test/static/1"]);
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.contains("\"purged\":1"), "{stdout}");
    assert!(!is_hit(&gh, "/static/1"));
    // Exactly one of the three is required.
    assert_eq!(run(&[]).0, Some(2));
    assert_eq!(run(&["--tag", "a", "--url", "b"]).0, Some(2));
}

#[test]
fn a_purge_reaches_the_disk_store() {
    let origin = tagged_origin();
    let dir = std::env::temp_dir().join(format!("gatehouse-purge-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let file = dir.join("cache.redb");
    let _ = std::fs::remove_file(&file);
    let (config, admin) = admin_config(&origin);
    let config = config.section("cache", "disk_path", file.to_string_lossy().into_owned());
    let gh = start(&config);
    get(&gh, "/a");
    get(&gh, "/static/1");
    // The disk write is not awaited by the response: give it a moment.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(purge(admin, "tag=green", Some(TOKEN)).json()["purged"], 1);
    let _stopped = gh.stop();
    // A new process reads the file: the purged key is gone, the other is still there.
    let gh = start(&config);
    assert!(
        is_hit(&gh, "/static/1"),
        "the disk store lost an unpurged key"
    );
    assert!(!is_hit(&gh, "/a"), "the purged key came back from the disk");
    let _stopped = gh.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

// --- Interim responses ---

const HINTS_THEN_OK: &[u8] = b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\nCache-Control: max-age=60\r\n\r\nok";

#[test]
fn interim_responses_are_never_stored_as_the_final_one() {
    let origin = Upstream::start(Behavior::RawThenClose(HINTS_THEN_OK.to_vec()));
    let gh = start(&caching(&origin));
    let first = get(&gh, "/hints");
    assert_eq!((first.status, first.text().as_str()), (200, "ok"));
    assert_eq!(first.interim, vec![103]);
    assert!(first.cache_status().ends_with("stored"), "{first:#?}");
    let hit = get(&gh, "/hints");
    assert_eq!((hit.status, hit.text().as_str()), (200, "ok"));
    assert!(hit.interim.is_empty(), "a hit replayed an interim response");
    assert!(hit.cache_status().contains("hit"));
    assert_eq!(hit.header("link"), None);
    assert_eq!(origin.requests().len(), 1);
}
