//! Every key gatehouse knows, table by table, with its TOML type and an example of a correct
//! value (used in the fix of a type error).

use super::{Field, Kind, field};

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

pub(super) const ROOT: &[Field] = &[
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
