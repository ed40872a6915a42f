//! Tests of what may be stored (`storable.rs`).

use super::*;

// --- storable ---

#[test]
fn storable_plain_max_age() {
    assert_eq!(
        get_storable(&[], 200, &[("cache-control", "max-age=60")]),
        Ok(())
    );
}

#[test]
fn not_storable_method() {
    for method in [Method::HEAD, Method::POST, Method::PUT] {
        let result = storable(
            &method,
            &HeaderMap::new(),
            StatusCode::OK,
            &headers(&[("cache-control", "max-age=60")]),
            true,
            &[],
        );
        assert_eq!(result, Err(NotStorable::Method), "{method}");
    }
}

#[test]
fn not_storable_no_store() {
    assert_eq!(
        get_storable(
            &[("cache-control", "no-store")],
            200,
            &[("cache-control", "max-age=60")]
        ),
        Err(NotStorable::NoStore)
    );
    assert_eq!(
        get_storable(&[], 200, &[("cache-control", "max-age=60, no-store")]),
        Err(NotStorable::NoStore)
    );
}

#[test]
fn must_understand_overrides_no_store_for_understood_status() {
    assert_eq!(
        get_storable(
            &[],
            200,
            &[("cache-control", "max-age=60, no-store, must-understand")]
        ),
        Ok(())
    );
    // Not for an unknown status.
    assert_eq!(
        get_storable(
            &[],
            299,
            &[("cache-control", "max-age=60, no-store, must-understand")]
        ),
        Err(NotStorable::NoStore)
    );
    assert_eq!(
        get_storable(
            &[],
            299,
            &[("cache-control", "max-age=60, must-understand")]
        ),
        Err(NotStorable::Status)
    );
    // The request's no-store is never overridden.
    assert_eq!(
        get_storable(
            &[("cache-control", "no-store")],
            200,
            &[("cache-control", "max-age=60, no-store, must-understand")]
        ),
        Err(NotStorable::NoStore)
    );
}

#[test]
fn not_storable_private() {
    assert_eq!(
        get_storable(&[], 200, &[("cache-control", "private, max-age=60")]),
        Err(NotStorable::Private)
    );
    assert_eq!(
        get_storable(
            &[],
            200,
            &[("cache-control", r#"private="x-user", max-age=60"#)]
        ),
        Err(NotStorable::Private)
    );
}

#[test]
fn not_storable_authorization_without_exception() {
    let auth = [("authorization", "Bearer t")];
    assert_eq!(
        get_storable(&auth, 200, &[("cache-control", "max-age=60")]),
        Err(NotStorable::Authorization)
    );
    assert_eq!(
        get_storable(
            &auth,
            200,
            &[("cache-control", "max-age=60, proxy-revalidate")]
        ),
        Err(NotStorable::Authorization)
    );
}

#[test]
fn authorization_exceptions() {
    let auth = [("authorization", "Bearer t")];
    assert_eq!(
        get_storable(&auth, 200, &[("cache-control", "public, max-age=60")]),
        Ok(())
    );
    assert_eq!(
        get_storable(&auth, 200, &[("cache-control", "s-maxage=60")]),
        Ok(())
    );
    assert_eq!(
        get_storable(
            &auth,
            200,
            &[("cache-control", "must-revalidate, max-age=60")]
        ),
        Ok(())
    );
    // private still wins over public.
    assert_eq!(
        get_storable(
            &auth,
            200,
            &[("cache-control", "public, private, max-age=60")]
        ),
        Err(NotStorable::Private)
    );
}

#[test]
fn not_storable_set_cookie() {
    assert_eq!(
        get_storable(
            &[],
            200,
            &[
                ("cache-control", "public, max-age=60"),
                ("set-cookie", "a=b")
            ]
        ),
        Err(NotStorable::SetCookie)
    );
}

#[test]
fn not_storable_vary_star() {
    assert_eq!(
        get_storable(&[], 200, &[("cache-control", "max-age=60"), ("vary", "*")]),
        Err(NotStorable::VaryStar)
    );
    assert_eq!(
        get_storable(
            &[],
            200,
            &[
                ("cache-control", "max-age=60"),
                ("vary", "accept"),
                ("vary", "Accept-Language , *")
            ]
        ),
        Err(NotStorable::VaryStar)
    );
    assert_eq!(
        get_storable(
            &[],
            200,
            &[("cache-control", "max-age=60"), ("vary", "accept")]
        ),
        Ok(())
    );
}

#[test]
fn not_storable_partial() {
    assert_eq!(
        get_storable(&[], 206, &[("cache-control", "max-age=60")]),
        Err(NotStorable::Partial)
    );
    assert_eq!(
        get_storable(
            &[],
            200,
            &[
                ("cache-control", "max-age=60"),
                ("content-range", "bytes 0-9/100")
            ]
        ),
        Err(NotStorable::Partial)
    );
}

#[test]
fn not_storable_status() {
    // Never: informational, 304.
    assert_eq!(
        get_storable(&[], 103, &[("cache-control", "max-age=60")]),
        Err(NotStorable::Status)
    );
    assert_eq!(
        get_storable(&[], 304, &[("cache-control", "max-age=60")]),
        Err(NotStorable::Status)
    );
    // Not heuristically cacheable without explicit freshness.
    let last_modified = date(0);
    for status in [302, 307, 400, 403, 500, 503] {
        assert_eq!(
            get_storable(&[], status, &[("last-modified", &last_modified)]),
            Err(NotStorable::Status),
            "{status}"
        );
    }
}

#[test]
fn explicit_freshness_makes_any_final_status_storable() {
    assert_eq!(
        get_storable(&[], 500, &[("cache-control", "max-age=5")]),
        Ok(())
    );
    assert_eq!(
        get_storable(&[], 302, &[("cache-control", "s-maxage=5")]),
        Ok(())
    );
    assert_eq!(get_storable(&[], 503, &[("expires", &date(100))]), Ok(()));
    // Even an invalid Expires (it means "already stale").
    assert_eq!(get_storable(&[], 200, &[("expires", "0")]), Ok(()));
}

#[test]
fn heuristically_cacheable_statuses_with_last_modified() {
    let last_modified = date(0);
    for status in [200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501] {
        assert_eq!(
            get_storable(&[], status, &[("last-modified", &last_modified)]),
            Ok(()),
            "{status}"
        );
    }
}

#[test]
fn no_freshness_unless_kept() {
    assert_eq!(get_storable(&[], 200, &[]), Err(NotStorable::NoFreshness));
    assert_eq!(
        get_storable(&[], 200, &[("last-modified", "yesterday")]),
        Err(NotStorable::NoFreshness)
    );
    assert_eq!(
        get_storable(&[], 302, &[("cache-control", "public")]),
        Err(NotStorable::NoFreshness)
    );
    let keep = |status: u16, response: &[(&str, &str)]| {
        storable(
            &Method::GET,
            &HeaderMap::new(),
            StatusCode::from_u16(status).expect("test status"),
            &headers(response),
            true,
            &[],
        )
    };
    assert_eq!(keep(200, &[("etag", "\"a\"")]), Ok(()));
    assert_eq!(keep(302, &[("cache-control", "public")]), Ok(()));
    // keep_without_freshness does not make other statuses storable.
    assert_eq!(keep(500, &[]), Err(NotStorable::Status));
}

#[test]
fn not_storable_as_str() {
    let all = [
        (NotStorable::Method, "method"),
        (NotStorable::Status, "status"),
        (NotStorable::NoStore, "no-store"),
        (NotStorable::Private, "private"),
        (NotStorable::Authorization, "authorization"),
        (NotStorable::SetCookie, "set-cookie"),
        (NotStorable::VaryStar, "vary-star"),
        (NotStorable::NoFreshness, "no-freshness"),
        (NotStorable::Partial, "partial"),
    ];
    for (reason, text) in all {
        assert_eq!(reason.as_str(), text);
        assert_eq!(reason.to_string(), text);
    }
}
