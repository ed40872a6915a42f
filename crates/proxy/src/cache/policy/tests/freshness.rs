//! Tests of freshness lifetime, current age and freshness (`freshness.rs`, `age.rs`).

use super::*;

// --- freshness_lifetime ---

#[test]
fn lifetime_precedence() {
    let expires = date(1000);
    let now = date(0);
    let all = [
        ("cache-control", "max-age=60, s-maxage=30"),
        ("date", now.as_str()),
        ("expires", expires.as_str()),
    ];
    assert_eq!(lifetime(200, &all, 0), secs(30));
    assert_eq!(lifetime(200, &all[1..], 0), secs(1000));
    let max_age_and_expires = [
        ("cache-control", "max-age=60"),
        ("date", now.as_str()),
        ("expires", expires.as_str()),
    ];
    assert_eq!(lifetime(200, &max_age_and_expires, 0), secs(60));
    assert_eq!(lifetime(200, &[("cache-control", "max-age=0")], 0), secs(0));
}

#[test]
fn lifetime_from_expires_and_date() {
    let response = [("date", date(100)), ("expires", date(400))];
    let response: Vec<_> = response.iter().map(|(n, v)| (*n, v.as_str())).collect();
    // The Date field counts, not response_time.
    assert_eq!(lifetime(200, &response, 150), secs(300));
}

#[test]
fn lifetime_from_expires_without_date_uses_response_time() {
    let expires = date(400);
    assert_eq!(lifetime(200, &[("expires", &expires)], 150), secs(250));
    // An invalid Date is like no Date.
    assert_eq!(
        lifetime(200, &[("expires", &expires), ("date", "garbage")], 150),
        secs(250)
    );
}

#[test]
fn lifetime_invalid_or_past_expires_is_zero() {
    let last_modified = date(0);
    let response = [("expires", "0"), ("last-modified", last_modified.as_str())];
    // Invalid Expires: 0, and no heuristic.
    assert_eq!(lifetime(200, &response, 100_000), secs(0));
    let past = [("date", date(500)), ("expires", date(100))];
    let past: Vec<_> = past.iter().map(|(n, v)| (*n, v.as_str())).collect();
    assert_eq!(lifetime(200, &past, 500), secs(0));
}

#[test]
fn lifetime_heuristic_is_ten_percent() {
    let response = [("date", date(10_000)), ("last-modified", date(0))];
    let response: Vec<_> = response.iter().map(|(n, v)| (*n, v.as_str())).collect();
    assert_eq!(lifetime(200, &response, 10_000), secs(1_000));
    assert_eq!(lifetime(404, &response, 10_000), secs(1_000));
    // Without Date: response_time.
    let last_modified = date(0);
    assert_eq!(
        lifetime(200, &[("last-modified", &last_modified)], 5_000),
        secs(500)
    );
}

#[test]
fn lifetime_heuristic_is_capped() {
    let response = [("date", date(100 * 86_400)), ("last-modified", date(0))];
    let response: Vec<_> = response.iter().map(|(n, v)| (*n, v.as_str())).collect();
    assert_eq!(lifetime(200, &response, 100 * 86_400), CAP);
}

#[test]
fn lifetime_heuristic_only_for_heuristic_statuses() {
    let response = [("date", date(10_000)), ("last-modified", date(0))];
    let response: Vec<_> = response.iter().map(|(n, v)| (*n, v.as_str())).collect();
    assert_eq!(lifetime(500, &response, 10_000), secs(0));
    assert_eq!(lifetime(302, &response, 10_000), secs(0));
}

#[test]
fn lifetime_heuristic_future_last_modified_or_none_is_zero() {
    let response = [("date", date(100)), ("last-modified", date(200))];
    let response: Vec<_> = response.iter().map(|(n, v)| (*n, v.as_str())).collect();
    assert_eq!(lifetime(200, &response, 100), secs(0));
    assert_eq!(lifetime(200, &[], 100), secs(0));
}

// --- current_age and freshness ---

#[test]
fn age_is_resident_time_without_date_or_age() {
    let stored = entry(&[], 100, 100);
    assert_eq!(current_age(&stored, at(130)), secs(30));
}

#[test]
fn age_adds_received_age_and_response_delay() {
    let response_date = date(102);
    // Sent at 100, head at 102, Age 100: corrected initial age 102; 10 s resident.
    let stored = entry(&[("age", "100"), ("date", &response_date)], 100, 102);
    assert_eq!(current_age(&stored, at(112)), secs(112));
}

#[test]
fn age_uses_apparent_age_when_larger() {
    let response_date = date(50);
    let stored = entry(&[("age", "10"), ("date", &response_date)], 99, 100);
    // apparent 50 > 10 + 1; resident 5.
    assert_eq!(current_age(&stored, at(105)), secs(55));
}

#[test]
fn age_tolerates_clock_skew() {
    // Upstream clock ahead: the Date is after response_time.
    let future = date(1_000);
    let stored = entry(&[("date", &future)], 100, 100);
    assert_eq!(current_age(&stored, at(110)), secs(10));
    // Our clock went backwards: no negative resident time.
    assert_eq!(current_age(&stored, at(50)), secs(0));
    // request_time after response_time: no negative delay.
    let odd = entry(&[], 200, 100);
    assert_eq!(current_age(&odd, at(100)), secs(0));
}

#[test]
fn age_ignores_invalid_age_field() {
    let stored = entry(&[("age", "ten")], 100, 100);
    assert_eq!(current_age(&stored, at(100)), secs(0));
    let clamped = entry(&[("age", "99999999999999")], 100, 100);
    assert_eq!(current_age(&clamped, at(100)), secs(1 << 31));
}

#[test]
fn freshness_fresh_and_stale() {
    let stored = entry(&[("age", "10")], 100, 100);
    assert_eq!(
        freshness(&stored, secs(60), at(120)),
        Freshness::Fresh { ttl: secs(30) }
    );
    assert_eq!(
        freshness(&stored, secs(60), at(150)),
        Freshness::Stale { stale_for: secs(0) }
    );
    assert_eq!(
        freshness(&stored, secs(60), at(175)),
        Freshness::Stale {
            stale_for: secs(25)
        }
    );
    assert_eq!(
        freshness(&stored, secs(0), at(100)),
        Freshness::Stale {
            stale_for: secs(10)
        }
    );
}
