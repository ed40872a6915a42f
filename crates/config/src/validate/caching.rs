//! `[cache]`, `[route.cache]`, `[robots]`, `[maintenance]` and `[route.maintenance]`: keeping
//! copies of responses and answering without the origin.
//!
//! Looks at the file system twice: the cache file's directory must exist (like a log file's),
//! and a maintenance page is read here, so that `check` reports a missing or unreadable page and
//! a reload picks up an edited one.

use std::path::Path;
use std::time::Duration;

use toml::Spanned;

use super::fields::{choice, size_within, timeout};
use super::logs::writable_file_path;
use super::{KIB, MIB};
use crate::diag::Sink;
use crate::model::{
    CacheConfig, CacheMode, MaintenanceConfig, MaintenancePage, RobotsConfig, RouteCache,
};
use crate::raw::{RawCache, RawMaintenance, RawRobots, RawRouteCache};

const GIB: u64 = 1024 * MIB;
const DEFAULT_CACHE_MEMORY: u64 = 64 * MIB;
const DEFAULT_MAX_OBJECT_SIZE: u64 = 8 * MIB;
const DEFAULT_DISK_SIZE: u64 = GIB;
const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_TARGETED_FIELD: &str = "gatehouse-cache-control";
const DEFAULT_ROBOTS_MAX_AGE: Duration = Duration::from_secs(30 * 24 * 3600);
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(300);
const DEFAULT_STALE_IF_ERROR: Duration = Duration::from_secs(24 * 3600);
/// A maintenance page is held in memory and sent whole; larger is certainly a mistake.
const MAX_PAGE_SIZE: u64 = MIB;

pub(super) fn cache(raw: RawCache, base: &Path, sink: &mut Sink<'_>) -> CacheConfig {
    let memory = size_within(
        sink,
        raw.memory,
        "cache.memory",
        DEFAULT_CACHE_MEMORY,
        MIB,
        1024 * GIB,
    );
    let max_object_size = size_within(
        sink,
        raw.max_object_size,
        "cache.max_object_size",
        DEFAULT_MAX_OBJECT_SIZE,
        KIB,
        GIB,
    );
    if max_object_size > memory {
        sink.warning(
            None,
            "cache.max_object_size",
            "max_object_size is larger than the memory for the whole cache",
            "lower max_object_size or raise cache.memory; a response larger than the memory is never kept",
        );
    }
    let disk_path = raw.disk_path.as_ref().and_then(|path| {
        writable_file_path(
            path,
            "cache.disk_path",
            "/var/cache/gatehouse/cache.redb",
            base,
            sink,
        )
    });
    CacheConfig {
        memory,
        max_object_size,
        disk_path,
        disk_size: size_within(
            sink,
            raw.disk_size,
            "cache.disk_size",
            DEFAULT_DISK_SIZE,
            MIB,
            64 * 1024 * GIB,
        ),
        lock_timeout: timeout(
            sink,
            raw.lock_timeout,
            "cache.lock_timeout",
            DEFAULT_LOCK_TIMEOUT,
        ),
        targeted_field: targeted_field(raw.targeted_field, sink),
        cdn_cache_control: raw.cdn_cache_control.is_none_or(Spanned::into_inner),
        forward_targeted_field: raw.forward_targeted_field.is_some_and(Spanned::into_inner),
    }
}

/// `cache.targeted_field`: a field name (RFC 9110 §5.1 token), lowercased; empty = none.
fn targeted_field(raw: Option<Spanned<String>>, sink: &mut Sink<'_>) -> Option<String> {
    let Some(raw) = raw else {
        return Some(DEFAULT_TARGETED_FIELD.to_owned());
    };
    let span = raw.span();
    let name = raw.into_inner();
    if name.is_empty() {
        return None;
    }
    let tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    let lower = name.to_ascii_lowercase();
    if !lower.bytes().all(tchar) {
        sink.error(
            Some(span),
            "cache.targeted_field",
            format!("{name:?} is not a header field name"),
            "write a field name such as \"Gatehouse-Cache-Control\", or \"\" for none",
        );
        return None;
    }
    if matches!(lower.as_str(), "cache-control" | "cdn-cache-control") {
        sink.error(
            Some(span),
            "cache.targeted_field",
            format!("{name:?} is not a field of gatehouse's own"),
            "CDN-Cache-Control is set by cdn_cache_control; pick a name of your own, e.g. \"Gatehouse-Cache-Control\"",
        );
        return None;
    }
    Some(lower)
}

pub(super) fn robots(raw: RawRobots, sink: &mut Sink<'_>) -> RobotsConfig {
    RobotsConfig {
        guard: raw.guard.is_none_or(Spanned::into_inner),
        max_age: timeout(sink, raw.max_age, "robots.max_age", DEFAULT_ROBOTS_MAX_AGE),
    }
}

/// `[maintenance]`, or (with `inherit`) a route's table, whose absent keys take `inherit`'s.
pub(super) fn maintenance(
    raw: Option<&Spanned<RawMaintenance>>,
    key: &str,
    inherit: Option<&MaintenanceConfig>,
    base: &Path,
    sink: &mut Sink<'_>,
) -> MaintenanceConfig {
    let raw = raw.map(Spanned::get_ref);
    let enabled = raw
        .and_then(|r| r.enabled.as_ref())
        .map(|e| *e.get_ref())
        .or(inherit.map(|i| i.enabled))
        .unwrap_or(false);
    let inherited_retry_after = inherit.map_or(DEFAULT_RETRY_AFTER, |i| i.retry_after);
    let retry_after = timeout(
        sink,
        raw.and_then(|r| r.retry_after.clone()),
        &format!("{key}.retry_after"),
        inherited_retry_after,
    );
    let page = match raw.and_then(|r| r.page.as_ref()) {
        Some(page) => read_page(page, &format!("{key}.page"), base, sink),
        None => inherit.and_then(|i| i.page.clone()),
    };
    MaintenanceConfig {
        enabled,
        retry_after,
        page,
    }
}

/// Reads a maintenance page now; a missing, unreadable or oversized file is reported.
fn read_page(
    raw: &Spanned<String>,
    key: &str,
    base: &Path,
    sink: &mut Sink<'_>,
) -> Option<MaintenancePage> {
    let path = base.join(raw.get_ref());
    let problem = match std::fs::metadata(&path) {
        Ok(meta) if meta.is_dir() => format!("{} is a directory, not a file", path.display()),
        Ok(meta) if meta.len() > MAX_PAGE_SIZE => format!(
            "{} is {} bytes; a maintenance page may be at most 1MiB",
            path.display(),
            meta.len()
        ),
        Ok(_) => match super::read_bounded(&path, MAX_PAGE_SIZE) {
            Ok(body) if body.len() as u64 > MAX_PAGE_SIZE => format!(
                "{} is more than {MAX_PAGE_SIZE} bytes; a maintenance page may be at most 1MiB",
                path.display()
            ),
            Ok(body) => {
                let content_type = page_content_type(&path);
                return Some(MaintenancePage {
                    path,
                    content_type,
                    body: body.into(),
                });
            }
            Err(err) => format!("cannot read {}: {err}", path.display()),
        },
        Err(err) => format!("cannot read {}: {err}", path.display()),
    };
    sink.error(
        Some(raw.span()),
        key,
        problem,
        "point page at a readable HTML file, or remove `page` to use gatehouse's own 503 page",
    );
    None
}

fn page_content_type(path: &Path) -> &'static str {
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match extension.as_deref() {
        Some("json") => "application/json",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "text/html; charset=utf-8",
    }
}

pub(super) fn route_cache(raw: &RawRouteCache, key: &str, sink: &mut Sink<'_>) -> RouteCache {
    RouteCache {
        mode: choice(
            sink,
            raw.mode.clone(),
            &format!("{key}.mode"),
            CacheMode::Full,
            &[
                ("full", CacheMode::Full),
                ("stale_if_error", CacheMode::StaleIfError),
            ],
        ),
        stale_if_error: stale_window(raw.stale_if_error.as_ref(), key, sink),
    }
}

/// `stale_if_error`: zero is allowed (only a response's own directive then opens a window).
fn stale_window(raw: Option<&Spanned<String>>, key: &str, sink: &mut Sink<'_>) -> Duration {
    let Some(raw) = raw else {
        return DEFAULT_STALE_IF_ERROR;
    };
    super::fields::parse_at(
        sink,
        raw,
        &format!("{key}.stale_if_error"),
        crate::values::duration,
    )
    .unwrap_or(DEFAULT_STALE_IF_ERROR)
}

/// `server.state_dir`: a directory (created at start when missing), not a file.
pub(super) fn state_dir(
    raw: Option<Spanned<String>>,
    base: &Path,
    sink: &mut Sink<'_>,
) -> Option<std::path::PathBuf> {
    let raw = raw?;
    if raw.get_ref().trim().is_empty() {
        sink.error(
            Some(raw.span()),
            "server.state_dir",
            "the path is empty",
            "give a directory like \"/var/lib/gatehouse\", or remove the key for the default",
        );
        return None;
    }
    let path = base.join(raw.get_ref());
    if path.exists() && !path.is_dir() {
        sink.error(
            Some(raw.span()),
            "server.state_dir",
            format!("{} exists and is not a directory", path.display()),
            "give a directory (it is created at start when missing)",
        );
        return None;
    }
    Some(path)
}
