//! `[cache]`, `[route.cache]`, `[robots]`, `[maintenance]`, `[route.maintenance]` and
//! `server.state_dir`: defaults, values read, and each problem reported at its line.

use std::time::Duration;

use super::{TAIL, at, ok, one_error};
use crate::{CacheMode, Severity};

const ROUTE: &str = "[[route]]\nupstream = \"api\"\n";
const UPSTREAM: &str = "[upstream.api]\nservers = [\"127.0.0.1:3000\"]\n";

fn temp_file(name: &str, contents: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!(
        "gatehouse-config-cache-{}-{name}",
        std::process::id()
    ));
    std::fs::write(&path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    path
}

#[test]
fn defaults_cache_nothing_keep_robots_and_are_not_in_maintenance() {
    let c = ok(TAIL).config;
    assert_eq!(c.cache.memory, 64 << 20);
    assert_eq!(c.cache.max_object_size, 8 << 20);
    assert_eq!(c.cache.disk_path, None);
    assert_eq!(c.cache.lock_timeout, Duration::from_secs(5));
    assert!(c.robots.guard);
    assert_eq!(c.robots.max_age, Duration::from_secs(30 * 24 * 3600));
    assert!(!c.maintenance.enabled);
    assert_eq!(c.maintenance.retry_after, Duration::from_secs(300));
    assert_eq!(c.routes[0].cache, None);
    assert_eq!(c.routes[0].maintenance, None);
    assert_eq!(c.server.state_dir, None);
}

#[test]
fn every_cache_key_is_read() {
    let dir = std::env::temp_dir();
    let c = ok(&format!(
        "[server]\nstate_dir = \"{d}/gh-state\"\n\
         [cache]\nmemory = \"128MiB\"\nmax_object_size = \"1MiB\"\ndisk_path = \"{d}/gh-cache.redb\"\n\
         disk_size = \"2GiB\"\nlock_timeout = \"2s\"\n\
         [robots]\nguard = false\nmax_age = \"7d\"\n\
         {ROUTE}[route.cache]\nmode = \"stale_if_error\"\nstale_if_error = \"0s\"\n{UPSTREAM}",
        d = dir.display()
    ))
    .config;
    assert_eq!(c.cache.memory, 128 << 20);
    assert_eq!(c.cache.max_object_size, 1 << 20);
    assert_eq!(c.cache.disk_path, Some(dir.join("gh-cache.redb")));
    assert_eq!(c.cache.disk_size, 2 << 30);
    assert_eq!(c.cache.lock_timeout, Duration::from_secs(2));
    assert!(!c.robots.guard);
    assert_eq!(c.robots.max_age, Duration::from_secs(7 * 24 * 3600));
    assert_eq!(c.server.state_dir, Some(dir.join("gh-state")));
    let route = c.routes[0]
        .cache
        .as_ref()
        .unwrap_or_else(|| panic!("no cache"));
    assert_eq!(route.mode, CacheMode::StaleIfError);
    assert_eq!(
        route.stale_if_error,
        Duration::ZERO,
        "zero: only the response's own window"
    );
}

#[test]
fn an_empty_route_cache_table_enables_the_full_cache() {
    let c = ok(&format!("{ROUTE}[route.cache]\n{UPSTREAM}")).config;
    let route = c.routes[0]
        .cache
        .as_ref()
        .unwrap_or_else(|| panic!("no cache"));
    assert_eq!(route.mode, CacheMode::Full);
    assert_eq!(route.stale_if_error, Duration::from_secs(24 * 3600));
}

#[test]
fn bad_cache_values_are_errors_at_their_line() {
    let d = one_error(&format!("[cache]\nmemory = \"10KiB\"\n{TAIL}"));
    at(
        &d,
        2,
        10,
        "cache.memory",
        "outside the allowed range 1MiB to",
    );
    let d = one_error(&format!(
        "{ROUTE}[route.cache]\nmode = \"everything\"\n{UPSTREAM}"
    ));
    at(
        &d,
        4,
        8,
        "route[0].cache.mode",
        "is not one of \"full\", \"stale_if_error\"",
    );
    let d = one_error(&format!(
        "{ROUTE}[route.cache]\nstale_if_error = \"soon\"\n{UPSTREAM}"
    ));
    at(
        &d,
        4,
        18,
        "route[0].cache.stale_if_error",
        "is not a duration",
    );
    let d = one_error(&format!("{ROUTE}[route.cache]\nttl = \"1h\"\n{UPSTREAM}"));
    at(&d, 4, 1, "route[0].cache.ttl", "unknown key");
    let d = one_error(&format!(
        "[cache]\ndisk_path = \"/nonexistent-gatehouse-dir/c.redb\"\n{TAIL}"
    ));
    at(&d, 2, 13, "cache.disk_path", "does not exist");
}

#[test]
fn an_object_limit_above_the_memory_is_a_warning() {
    let loaded = ok(&format!(
        "[cache]\nmemory = \"2MiB\"\nmax_object_size = \"4MiB\"\n{TAIL}"
    ));
    assert_eq!(loaded.warnings.len(), 1, "{:#?}", loaded.warnings);
    assert_eq!(loaded.warnings[0].severity, Severity::Warning);
    assert_eq!(loaded.warnings[0].key, "cache.max_object_size");
}

#[test]
fn a_state_dir_that_is_a_file_is_an_error() {
    let file = temp_file("not-a-dir", "x");
    let d = one_error(&format!(
        "[server]\nstate_dir = \"{}\"\n{TAIL}",
        file.display()
    ));
    at(&d, 2, 13, "server.state_dir", "is not a directory");
    let _ = std::fs::remove_file(file);
}

#[test]
fn a_maintenance_page_is_read_with_its_content_type() {
    let page = temp_file("page.html", "<h1>back soon</h1>");
    let c = ok(&format!(
        "[maintenance]\nenabled = true\nretry_after = \"10m\"\npage = \"{}\"\n{TAIL}",
        page.display()
    ))
    .config;
    assert!(c.maintenance.enabled);
    assert_eq!(c.maintenance.retry_after, Duration::from_secs(600));
    let read = c
        .maintenance
        .page
        .as_ref()
        .unwrap_or_else(|| panic!("no page"));
    assert_eq!(&*read.body, b"<h1>back soon</h1>");
    assert_eq!(read.content_type, "text/html; charset=utf-8");
    let _ = std::fs::remove_file(page);
}

#[test]
fn a_missing_maintenance_page_is_an_error_at_its_line() {
    let d = one_error(&format!(
        "[maintenance]\npage = \"/nonexistent-gatehouse-dir/503.html\"\n{TAIL}"
    ));
    at(&d, 2, 8, "maintenance.page", "cannot read");
}

#[test]
fn a_maintenance_page_on_a_device_without_end_is_refused() {
    let d = one_error(&format!("[maintenance]\npage = \"/dev/zero\"\n{TAIL}"));
    at(
        &d,
        2,
        8,
        "maintenance.page",
        "/dev/zero is more than 1048576 bytes",
    );
}

#[test]
fn a_route_maintenance_table_inherits_what_it_does_not_set() {
    let page = temp_file("page.json", "{\"down\":true}");
    let c = ok(&format!(
        "[maintenance]\nretry_after = \"1m\"\npage = \"{}\"\n\
         {ROUTE}[route.maintenance]\nenabled = true\n{UPSTREAM}",
        page.display()
    ))
    .config;
    assert!(!c.maintenance.enabled, "the global switch stays off");
    let route = c.routes[0]
        .maintenance
        .as_ref()
        .unwrap_or_else(|| panic!("no route maintenance"));
    assert!(route.enabled);
    assert_eq!(route.retry_after, Duration::from_secs(60), "inherited");
    let inherited = route.page.as_ref().unwrap_or_else(|| panic!("no page"));
    assert_eq!(inherited.content_type, "application/json");
    let _ = std::fs::remove_file(page);
}

#[test]
fn targeted_fields_default_to_gatehouse_s_own_then_cdn_cache_control() {
    let c = ok(TAIL).config;
    assert_eq!(
        c.cache.targeted_field.as_deref(),
        Some("gatehouse-cache-control")
    );
    assert!(c.cache.cdn_cache_control);
    assert!(!c.cache.forward_targeted_field);
    let c = ok(&format!(
        "[cache]\ntargeted_field = \"Edge-Control\"\ncdn_cache_control = false\n\
         forward_targeted_field = true\n{TAIL}"
    ))
    .config;
    assert_eq!(c.cache.targeted_field.as_deref(), Some("edge-control"));
    assert!(!c.cache.cdn_cache_control);
    assert!(c.cache.forward_targeted_field);
    let c = ok(&format!("[cache]\ntargeted_field = \"\"\n{TAIL}")).config;
    assert_eq!(c.cache.targeted_field, None);
}

#[test]
fn a_targeted_field_that_is_no_field_name_or_not_our_own_is_an_error() {
    for (value, message) in [
        ("Edge Control", "is not a header field name"),
        ("x:y", "is not a header field name"),
        ("Cache-Control", "is not a field of gatehouse's own"),
        ("cdn-cache-control", "is not a field of gatehouse's own"),
    ] {
        let d = one_error(&format!("[cache]\ntargeted_field = \"{value}\"\n{TAIL}"));
        at(&d, 2, 18, "cache.targeted_field", message);
    }
}
