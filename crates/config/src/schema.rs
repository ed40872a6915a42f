//! The shape check: walks the parsed, spanned TOML document once and reports every unknown key and
//! every value of the wrong TOML type, in all tables at once.
//!
//! serde's `deny_unknown_fields` and type errors stop at the first problem, so this walk runs
//! first. It also *removes* what it reported from the document, so that deserializing into the
//! `raw` types afterwards cannot fail and `validate` still checks everything else. It knows TOML
//! types only ("a string", "an integer"); what a string means (a duration, an address) is
//! `validate`'s business.

use std::borrow::Cow;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::diag::Sink;
use crate::values::closest;

/// One known key of a table.
struct Field {
    key: &'static str,
    kind: Kind,
    /// How a correct value looks, used in the fix of a type error.
    example: &'static str,
}

#[derive(Clone, Copy)]
enum Kind {
    Str,
    Int,
    /// A float, or an integer read as one.
    Float,
    Bool,
    /// An integer (bytes) or a string with a unit.
    Size,
    /// An array of strings.
    StrList,
    /// An array whose elements are strings or tables with these keys (`servers`).
    StrOrTableList(&'static [Field]),
    /// A table with these keys.
    Table(&'static [Field]),
    /// An array of tables with these keys (`[[route]]`).
    TableArray(&'static [Field]),
    /// A table of named tables with these keys (`[upstream.NAME]`).
    TableMap(&'static [Field]),
}

const fn field(key: &'static str, kind: Kind, example: &'static str) -> Field {
    Field { key, kind, example }
}

const SERVER: &[Field] = &[
    field("name", Kind::Str, r#"name = "gatehouse""#),
    field("listen", Kind::StrList, r#"listen = ["127.0.0.1:8080"]"#),
    field("admin", Kind::Str, r#"admin = "127.0.0.1:9901""#),
    field(
        "admin_token",
        Kind::Str,
        r#"admin_token = "a-long-random-secret""#,
    ),
    field("proxy_status", Kind::Str, r#"proxy_status = "minimal""#),
    field(
        "proxy_status_full_for",
        Kind::StrList,
        r#"proxy_status_full_for = ["10.0.0.0/8"]"#,
    ),
    field(
        "trusted_proxies",
        Kind::StrList,
        r#"trusted_proxies = ["10.0.0.0/8", "192.168.1.10"]"#,
    ),
    field("proxy_protocol", Kind::Bool, "proxy_protocol = true"),
    field("forwarded", Kind::Bool, "forwarded = true"),
    field("drain_timeout", Kind::Str, r#"drain_timeout = "30s""#),
    field("workers", Kind::Int, "workers = 2"),
    field("work_stealing", Kind::Bool, "work_stealing = false"),
    field(
        "client_header_timeout",
        Kind::Str,
        r#"client_header_timeout = "30s""#,
    ),
    field(
        "min_request_body_rate",
        Kind::Int,
        "min_request_body_rate = 240",
    ),
    field("min_response_rate", Kind::Int, "min_response_rate = 240"),
    field("min_rate_grace", Kind::Str, r#"min_rate_grace = "5s""#),
    field(
        "client_write_timeout",
        Kind::Str,
        r#"client_write_timeout = "60s""#,
    ),
    field(
        "max_request_header_size",
        Kind::Size,
        r#"max_request_header_size = "64KiB""#,
    ),
    field("max_uri_length", Kind::Size, r#"max_uri_length = "8KiB""#),
    field(
        "max_request_body_size",
        Kind::Size,
        r#"max_request_body_size = "10MiB""#,
    ),
    field("log_format", Kind::Str, r#"log_format = "text""#),
    field("log_level", Kind::Str, r#"log_level = "info""#),
    field("access_log", Kind::Bool, "access_log = true"),
    field(
        "log_file",
        Kind::Str,
        r#"log_file = "/var/log/gatehouse/gatehouse.log""#,
    ),
    field(
        "access_log_format",
        Kind::Str,
        r#"access_log_format = "combined""#,
    ),
    field(
        "access_log_file",
        Kind::Str,
        r#"access_log_file = "/var/log/gatehouse/access.log""#,
    ),
    field(
        "state_dir",
        Kind::Str,
        r#"state_dir = "/var/lib/gatehouse""#,
    ),
    field(
        "tls",
        Kind::TableArray(TLS_LISTENER),
        "[[server.tls]] (double brackets), one per group of HTTPS listeners",
    ),
    field(
        "redirect_https",
        Kind::StrList,
        r#"redirect_https = ["0.0.0.0:80"]"#,
    ),
    field("http2", Kind::Bool, "http2 = true"),
    field(
        "http2_max_concurrent_streams",
        Kind::Int,
        "http2_max_concurrent_streams = 128",
    ),
    field(
        "http2_stream_window",
        Kind::Size,
        r#"http2_stream_window = "1MiB""#,
    ),
    field(
        "http2_connection_window",
        Kind::Size,
        r#"http2_connection_window = "2MiB""#,
    ),
];

/// One certificate and its key, in `[[server.tls]]`'s `certificates`.
const CERT_PAIR: &[Field] = &[
    field(
        "cert",
        Kind::Str,
        r#"cert = "/etc/gatehouse/example.com.pem""#,
    ),
    field(
        "key",
        Kind::Str,
        r#"key = "/etc/gatehouse/example.com.key""#,
    ),
];

const TLS_LISTENER: &[Field] = &[
    field("listen", Kind::StrList, r#"listen = ["0.0.0.0:443"]"#),
    field("acme", Kind::Bool, "acme = true"),
    field("proxy_protocol", Kind::Bool, "proxy_protocol = true"),
    field(
        "cert",
        Kind::Str,
        r#"cert = "/etc/gatehouse/example.com.pem""#,
    ),
    field(
        "key",
        Kind::Str,
        r#"key = "/etc/gatehouse/example.com.key""#,
    ),
    field(
        "certificates",
        Kind::TableArray(CERT_PAIR),
        r#"certificates = [{ cert = "other.pem", key = "other.key" }]"#,
    ),
    field("min_version", Kind::Str, r#"min_version = "1.2""#),
];

const DNS: &[Field] = &[
    field(
        "nameservers",
        Kind::StrList,
        r#"nameservers = ["10.0.0.2", "1.1.1.1:53"]"#,
    ),
    field("timeout", Kind::Str, r#"timeout = "2s""#),
];

const CACHE: &[Field] = &[
    field("memory", Kind::Size, r#"memory = "256MiB""#),
    field("max_object_size", Kind::Size, r#"max_object_size = "8MiB""#),
    field(
        "disk_path",
        Kind::Str,
        r#"disk_path = "/var/cache/gatehouse/cache.redb""#,
    ),
    field("disk_size", Kind::Size, r#"disk_size = "1GiB""#),
    field("lock_timeout", Kind::Str, r#"lock_timeout = "5s""#),
    field(
        "targeted_field",
        Kind::Str,
        r#"targeted_field = "Gatehouse-Cache-Control""#,
    ),
    field("cdn_cache_control", Kind::Bool, "cdn_cache_control = true"),
    field(
        "forward_targeted_field",
        Kind::Bool,
        "forward_targeted_field = false",
    ),
];

const ROBOTS: &[Field] = &[
    field("guard", Kind::Bool, "guard = true"),
    field("max_age", Kind::Str, r#"max_age = "30d""#),
];

const MAINTENANCE: &[Field] = &[
    field("enabled", Kind::Bool, "enabled = true"),
    field("retry_after", Kind::Str, r#"retry_after = "10m""#),
    field(
        "page",
        Kind::Str,
        r#"page = "/etc/gatehouse/maintenance.html""#,
    ),
];

const ROUTE_CACHE: &[Field] = &[
    field("mode", Kind::Str, r#"mode = "full""#),
    field("stale_if_error", Kind::Str, r#"stale_if_error = "1d""#),
];

const LIMITS: &[Field] = &[
    field("store", Kind::Str, r#"store = "redis://127.0.0.1:6379/0""#),
    field("timeout", Kind::Str, r#"timeout = "50ms""#),
    field("fail", Kind::Str, r#"fail = "open""#),
    field("max_keys", Kind::Int, "max_keys = 100000"),
];

const ROUTE_LIMIT: &[Field] = &[
    field("rate", Kind::Int, "rate = 100"),
    field("period", Kind::Str, r#"period = "1m""#),
    field("burst", Kind::Int, "burst = 20"),
    field("key", Kind::Str, r#"key = "header:X-Api-Key""#),
    field("max_concurrent", Kind::Int, "max_concurrent = 10"),
];

const COMPRESS: &[Field] = &[
    field("enabled", Kind::Bool, "enabled = true"),
    field(
        "encodings",
        Kind::StrList,
        r#"encodings = ["zstd", "br", "gzip"]"#,
    ),
    field("min_size", Kind::Size, r#"min_size = "1KiB""#),
    field(
        "types",
        Kind::StrList,
        r#"types = ["text/*", "application/json"]"#,
    ),
    field("gzip_level", Kind::Int, "gzip_level = 5"),
    field("brotli_level", Kind::Int, "brotli_level = 4"),
    field("zstd_level", Kind::Int, "zstd_level = 3"),
    field("decompress", Kind::Bool, "decompress = true"),
];

const ROUTE: &[Field] = &[
    field("host", Kind::Str, r#"host = "example.com""#),
    field("path", Kind::Str, r#"path = "/api""#),
    field("upstream", Kind::Str, r#"upstream = "api""#),
    field(
        "retry_non_idempotent",
        Kind::Bool,
        "retry_non_idempotent = true",
    ),
    field(
        "max_request_body_size",
        Kind::Size,
        r#"max_request_body_size = "100MiB""#,
    ),
    field("cache", Kind::Table(ROUTE_CACHE), "[route.cache]"),
    field(
        "maintenance",
        Kind::Table(MAINTENANCE),
        "[route.maintenance]",
    ),
    field("limit", Kind::Table(ROUTE_LIMIT), "[route.limit]"),
    field("compress", Kind::Table(COMPRESS), "[route.compress]"),
];

const SERVER_ENTRY: &[Field] = &[
    field("address", Kind::Str, r#"address = "127.0.0.1:3000""#),
    field("weight", Kind::Int, "weight = 3"),
    field("max_connections", Kind::Int, "max_connections = 100"),
    field("backup", Kind::Bool, "backup = true"),
];

const HEALTH: &[Field] = &[
    field("path", Kind::Str, r#"path = "/ping""#),
    field("interval", Kind::Str, r#"interval = "5s""#),
    field("timeout", Kind::Str, r#"timeout = "2s""#),
    field("unhealthy_threshold", Kind::Int, "unhealthy_threshold = 2"),
    field("healthy_threshold", Kind::Int, "healthy_threshold = 2"),
    field("expect_status", Kind::Str, r#"expect_status = "200-399""#),
    field("host", Kind::Str, r#"host = "api.internal""#),
];

const PASSIVE: &[Field] = &[
    field(
        "consecutive_failures",
        Kind::Int,
        "consecutive_failures = 5",
    ),
    field(
        "consecutive_timeouts",
        Kind::Int,
        "consecutive_timeouts = 1",
    ),
    field("ejection", Kind::Str, r#"ejection = "10s""#),
    field("max_ejection", Kind::Str, r#"max_ejection = "5m""#),
    field("max_ejected_percent", Kind::Int, "max_ejected_percent = 50"),
];

const RETRY: &[Field] = &[
    field("attempts", Kind::Int, "attempts = 3"),
    field("deadline", Kind::Str, r#"deadline = "60s""#),
    field("budget", Kind::Float, "budget = 0.2"),
    field(
        "min_retries_per_second",
        Kind::Int,
        "min_retries_per_second = 10",
    ),
];

const UPSTREAM: &[Field] = &[
    field(
        "servers",
        Kind::StrOrTableList(SERVER_ENTRY),
        r#"servers = ["127.0.0.1:3000", { address = "https://app.internal", weight = 3 }]"#,
    ),
    field("connect_timeout", Kind::Str, r#"connect_timeout = "2s""#),
    field(
        "send_proxy_protocol",
        Kind::Str,
        r#"send_proxy_protocol = "v2""#,
    ),
    field("response_timeout", Kind::Str, r#"response_timeout = "30s""#),
    field("read_timeout", Kind::Str, r#"read_timeout = "30s""#),
    field("send_timeout", Kind::Str, r#"send_timeout = "30s""#),
    field(
        "max_response_header_size",
        Kind::Size,
        r#"max_response_header_size = "64KiB""#,
    ),
    field("balance", Kind::Str, r#"balance = "round_robin""#),
    field("hash_key", Kind::Str, r#"hash_key = "client_ip""#),
    field("max_connections", Kind::Int, "max_connections = 100"),
    field("queue_size", Kind::Int, "queue_size = 100"),
    field("queue_timeout", Kind::Str, r#"queue_timeout = "5s""#),
    field("resolve_interval", Kind::Str, r#"resolve_interval = "30s""#),
    field(
        "deny_addresses",
        Kind::StrList,
        r#"deny_addresses = ["169.254.0.0/16", "fd00::/8"]"#,
    ),
    field("tls", Kind::Bool, "tls = true"),
    field(
        "tls_server_name",
        Kind::Str,
        r#"tls_server_name = "api.internal""#,
    ),
    field(
        "tls_ca_file",
        Kind::Str,
        r#"tls_ca_file = "/etc/gatehouse/internal-ca.pem""#,
    ),
    field(
        "tls_client_cert",
        Kind::Str,
        r#"tls_client_cert = "/etc/gatehouse/client.pem""#,
    ),
    field(
        "tls_client_key",
        Kind::Str,
        r#"tls_client_key = "/etc/gatehouse/client.key""#,
    ),
    field("http2", Kind::Bool, "http2 = true"),
    field(
        "tunnel_idle_timeout",
        Kind::Str,
        r#"tunnel_idle_timeout = "5m""#,
    ),
    field("health", Kind::Table(HEALTH), "[upstream.NAME.health]"),
    field("passive", Kind::Table(PASSIVE), "[upstream.NAME.passive]"),
    field("retry", Kind::Table(RETRY), "[upstream.NAME.retry]"),
];

const ACME: &[Field] = &[
    field(
        "directory",
        Kind::Str,
        r#"directory = "https://acme-v02.api.letsencrypt.org/directory""#,
    ),
    field("email", Kind::Str, r#"email = "ops@example.com""#),
    field(
        "ca_file",
        Kind::Str,
        r#"ca_file = "/etc/gatehouse/acme-ca.pem""#,
    ),
    field(
        "challenges",
        Kind::StrList,
        r#"challenges = ["tls-alpn-01", "http-01"]"#,
    ),
    field("domains", Kind::StrList, r#"domains = ["example.com"]"#),
];

const ROOT: &[Field] = &[
    field("server", Kind::Table(SERVER), "[server]"),
    field("acme", Kind::Table(ACME), "[acme]"),
    field("dns", Kind::Table(DNS), "[dns]"),
    field("cache", Kind::Table(CACHE), "[cache]"),
    field("robots", Kind::Table(ROBOTS), "[robots]"),
    field("maintenance", Kind::Table(MAINTENANCE), "[maintenance]"),
    field("limits", Kind::Table(LIMITS), "[limits]"),
    field("compress", Kind::Table(COMPRESS), "[compress]"),
    field(
        "route",
        Kind::TableArray(ROUTE),
        "[[route]] (double brackets), one per route",
    ),
    field("upstream", Kind::TableMap(UPSTREAM), "[upstream.NAME]"),
];

/// Reports unknown keys and ill-typed values anywhere in `doc`, and removes them. Returns the key
/// paths that were removed, so diagnostics caused only by the removal can be left out.
pub(crate) fn check(doc: &mut DeTable<'_>, sink: &mut Sink<'_>) -> Vec<String> {
    let mut removed = Vec::new();
    walk_table(doc, ROOT, "", sink, &mut removed);
    removed
}

fn walk_table(
    table: &mut DeTable<'_>,
    fields: &[Field],
    path: &str,
    sink: &mut Sink<'_>,
    removed: &mut Vec<String>,
) {
    let mut remove = Vec::new();
    for (key, value) in table.iter_mut() {
        let name: &str = key.get_ref();
        let child = join(path, name);
        let keep = match fields.iter().find(|f| f.key == name) {
            Some(field) => walk_value(value, field, &child, sink, removed),
            None => {
                let supported = || fields.iter().map(|f| f.key);
                let fix = match closest(name, supported()) {
                    Some(similar) => format!("did you mean `{similar}`?"),
                    None => format!(
                        "remove it; the keys allowed here are {}",
                        supported().collect::<Vec<_>>().join(", ")
                    ),
                };
                sink.error(
                    Some(key.span()),
                    &child,
                    format!("unknown key `{name}`"),
                    fix,
                );
                false
            }
        };
        if !keep {
            remove.push(name.to_owned());
            removed.push(child);
        }
    }
    for name in remove {
        table.remove(name.as_str());
    }
}

/// Checks one value against its field; returns whether to keep it.
fn walk_value(
    value: &mut Spanned<DeValue<'_>>,
    field: &Field,
    path: &str,
    sink: &mut Sink<'_>,
    removed: &mut Vec<String>,
) -> bool {
    let span = value.span();
    match (field.kind, value.get_mut()) {
        (Kind::Str, DeValue::String(_))
        | (Kind::Bool, DeValue::Boolean(_))
        | (Kind::Size, DeValue::String(_)) => true,
        (Kind::Int | Kind::Size | Kind::Float, DeValue::Integer(n)) => {
            let fits = i64::from_str_radix(n.as_str(), n.radix()).is_ok();
            if !fits {
                sink.error(
                    Some(span),
                    path,
                    format!("{n} is too large"),
                    field_fix(field),
                );
            }
            fits
        }
        (Kind::Float, DeValue::Float(f)) => {
            // Rejects what toml would refuse to convert (1e999) and nan/inf, which no key takes.
            let finite = f.as_str().parse::<f64>().is_ok_and(f64::is_finite);
            if !finite {
                sink.error(
                    Some(span),
                    path,
                    format!("{} is not a finite number", f.as_str()),
                    field_fix(field),
                );
            }
            finite
        }
        (Kind::StrList, DeValue::Array(items)) => {
            list_elements(items, field, None, path, sink, removed);
            true
        }
        (Kind::StrOrTableList(fields), DeValue::Array(items)) => {
            list_elements(items, field, Some(fields), path, sink, removed);
            true
        }
        (Kind::Table(fields), DeValue::Table(table)) => {
            walk_table(table, fields, path, sink, removed);
            true
        }
        (Kind::TableArray(fields), DeValue::Array(items)) => {
            if let Some((i, item)) = items
                .iter()
                .enumerate()
                .find(|(_, v)| !v.get_ref().is_table())
            {
                let found = item.get_ref().type_str();
                sink.error(
                    Some(item.span()),
                    format!("{path}[{i}]"),
                    format!("expected a table, found {}", article(found)),
                    field_fix(field),
                );
                return false;
            }
            for (i, item) in items.iter_mut().enumerate() {
                if let DeValue::Table(table) = item.get_mut() {
                    walk_table(table, fields, &format!("{path}[{i}]"), sink, removed);
                }
            }
            true
        }
        (Kind::TableMap(fields), DeValue::Table(map)) => {
            let mut remove = Vec::new();
            for (name, entry) in map.iter_mut() {
                let child = join(path, name.get_ref());
                let entry_span = entry.span();
                if let DeValue::Table(table) = entry.get_mut() {
                    walk_table(table, fields, &child, sink, removed);
                } else {
                    let found = entry.get_ref().type_str();
                    sink.error(
                        Some(entry_span),
                        &child,
                        format!("expected a table, found {}", article(found)),
                        format!("write it as a table: [{child}]"),
                    );
                    remove.push(name.get_ref().to_string());
                    removed.push(child);
                }
            }
            for name in remove {
                map.remove(name.as_str());
            }
            true
        }
        (_, found) => {
            let found = found.type_str();
            sink.error(
                Some(span),
                path,
                format!(
                    "expected {}, found {}",
                    expected(field.kind),
                    article(found)
                ),
                field_fix(field),
            );
            false
        }
    }
}

/// Checks the elements of a list of strings (`tables: None`) or of strings and tables. A wrong
/// element is replaced by "" rather than removed, so the others keep their index and are still
/// checked; `removed` hides what "" would cause.
fn list_elements(
    items: &mut [Spanned<DeValue<'_>>],
    field: &Field,
    tables: Option<&[Field]>,
    path: &str,
    sink: &mut Sink<'_>,
    removed: &mut Vec<String>,
) {
    for (i, item) in items.iter_mut().enumerate() {
        let child = format!("{path}[{i}]");
        match (tables, item.get_mut()) {
            (_, DeValue::String(_)) => continue,
            (Some(fields), DeValue::Table(table)) => {
                walk_table(table, fields, &child, sink, removed);
                continue;
            }
            _ => {}
        }
        let found = item.get_ref().type_str();
        let expected = if tables.is_some() {
            "a string or a table"
        } else {
            "a string"
        };
        sink.error(
            Some(item.span()),
            &child,
            format!("expected {expected}, found {}", article(found)),
            field_fix(field),
        );
        *item = Spanned::new(item.span(), DeValue::String(Cow::Borrowed("")));
        removed.push(child);
    }
}

fn field_fix(field: &Field) -> String {
    format!("write it like {}", field.example)
}

fn expected(kind: Kind) -> &'static str {
    match kind {
        Kind::Str => "a string",
        Kind::Int => "an integer",
        Kind::Float => "a number",
        Kind::Bool => "true or false",
        Kind::Size => "a size (a string like \"64KiB\" or a number of bytes)",
        Kind::StrList => "a list of strings",
        Kind::StrOrTableList(_) => "a list of strings or tables",
        Kind::Table(_) | Kind::TableMap(_) => "a table",
        Kind::TableArray(_) => "an array of tables",
    }
}

/// `"integer"` → `"an integer"`.
fn article(type_str: &str) -> String {
    if type_str.starts_with(['a', 'e', 'i', 'o', 'u']) {
        format!("an {type_str}")
    } else {
        format!("a {type_str}")
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}
