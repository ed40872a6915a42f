//! One test per diagnostic condition of upstream pools (server entries, balancing, limits, the
//! deny list and the `health`, `passive` and `retry` tables), errors and warnings, asserting line,
//! column and key path.

use super::{TAIL, at, diags, ok, one_error};
use crate::{Diagnostic, Severity};

/// A route and the header of `[upstream.api]`, so line 4 is the first key of the upstream.
const HEAD: &str = "[[route]]\nupstream = \"api\"\n[upstream.api]\n";

/// The warnings of a text that must be valid.
fn warnings(text: &str) -> Vec<Diagnostic> {
    let warnings = ok(text).warnings;
    assert!(
        warnings.iter().all(|w| w.severity == Severity::Warning),
        "{warnings:#?}"
    );
    warnings
}

/// The one warning of a text that must be valid with exactly one warning.
fn one_warning(text: &str) -> Diagnostic {
    let all = warnings(text);
    assert_eq!(all.len(), 1, "{all:#?}");
    all.into_iter().next().unwrap_or_else(|| unreachable!())
}

// === server entries ===

#[test]
fn unknown_key_in_a_server_table() {
    let d = one_error(&format!(
        "{HEAD}servers = [{{ address = \"127.0.0.1:3000\", wieght = 2 }}]\n"
    ));
    at(
        &d,
        4,
        42,
        "upstream.api.servers[0].wieght",
        "unknown key `wieght`",
    );
    assert_eq!(d.fix, "did you mean `weight`?");
}

#[test]
fn server_of_the_wrong_type() {
    let d = one_error(&format!("{HEAD}servers = [\"127.0.0.1:3000\", 3000]\n"));
    at(
        &d,
        4,
        30,
        "upstream.api.servers[1]",
        "expected a string or a table, found an integer",
    );
    // Both keys are removed; the missing address that leaves is not reported again.
    let all = diags(&format!(
        "{HEAD}servers = [{{ address = 3000, backup = \"yes\" }}]\n"
    ));
    assert_eq!(all.len(), 2, "{all:#?}");
    at(
        &all[0],
        4,
        24,
        "upstream.api.servers[0].address",
        "expected a string, found an integer",
    );
    at(
        &all[1],
        4,
        39,
        "upstream.api.servers[0].backup",
        "expected true or false",
    );
}

#[test]
fn server_table_without_address() {
    let d = one_error(&format!("{HEAD}servers = [{{ weight = 2 }}]\n"));
    at(
        &d,
        4,
        12,
        "upstream.api.servers[0].address",
        "server entry has no `address`",
    );
}

#[test]
fn bad_address_in_a_server_table() {
    let d = one_error(&format!("{HEAD}servers = [{{ address = \"app\" }}]\n"));
    at(&d, 4, 24, "upstream.api.servers[0].address", "has no port");
}

#[test]
fn weight_out_of_range() {
    let all = diags(&format!(
        "{HEAD}servers = [{{ address = \"127.0.0.1:3000\", weight = 0 }}, {{ address = \"127.0.0.1:3001\", weight = 1001 }}]\n"
    ));
    assert_eq!(all.len(), 2, "{all:#?}");
    at(
        &all[0],
        4,
        51,
        "upstream.api.servers[0].weight",
        "0 is outside the allowed range 1 to 1000",
    );
    at(
        &all[1],
        4,
        95,
        "upstream.api.servers[1].weight",
        "1001 is outside the allowed range 1 to 1000",
    );
    assert!(all[1].fix.contains("e.g. 1 (the default)"), "{}", all[1]);
}

#[test]
fn server_max_connections_zero_is_refused() {
    let d = one_error(&format!(
        "{HEAD}servers = [{{ address = \"127.0.0.1:3000\", max_connections = 0 }}]\n"
    ));
    at(
        &d,
        4,
        60,
        "upstream.api.servers[0].max_connections",
        "0 is not allowed for one server",
    );
    assert!(d.fix.contains("remove the key"), "{d}");
    let d = one_error(&format!(
        "{HEAD}servers = [{{ address = \"127.0.0.1:3000\", max_connections = -1 }}]\n"
    ));
    at(
        &d,
        4,
        60,
        "upstream.api.servers[0].max_connections",
        "-1 is less than 1",
    );
}

#[test]
fn duplicate_servers() {
    let all = diags(&format!(
        "{HEAD}servers = [\"127.0.0.1:3000\", {{ address = \"127.0.0.1:3000\" }}, \"App:80\", \"app:80\"]\n"
    ));
    assert_eq!(all.len(), 2, "{all:#?}");
    at(
        &all[0],
        4,
        42,
        "upstream.api.servers[1].address",
        "127.0.0.1:3000 is listed twice (also upstream.api.servers[0])",
    );
    at(
        &all[1],
        4,
        72,
        "upstream.api.servers[3]",
        "app:80 is listed twice (also upstream.api.servers[2])",
    );
}

#[test]
fn every_server_a_backup_is_a_warning() {
    let w = one_warning(&format!(
        "{HEAD}servers = [{{ address = \"127.0.0.1:3000\", backup = true }}, {{ address = \"127.0.0.1:3001\", backup = true }}]\n"
    ));
    at(
        &w,
        4,
        11,
        "upstream.api.servers",
        "every server has backup = true",
    );
    // One primary is enough.
    let none = warnings(&format!(
        "{HEAD}servers = [\"127.0.0.1:3001\", {{ address = \"127.0.0.1:3000\", backup = true }}]\n"
    ));
    assert!(none.is_empty(), "{none:#?}");
}

#[test]
fn literal_server_ip_inside_deny_addresses_is_a_warning() {
    let text = format!(
        "{HEAD}servers = [\"10.1.2.3:80\", \"[fd00::5]:80\", \"[::ffff:169.254.1.1]:80\", \"10.1.2.4:80\"]\n\
         deny_addresses = [\"169.254.0.0/16\", \"fd00::/8\", \"10.1.2.3\"]\n"
    );
    let all = warnings(&text);
    assert_eq!(all.len(), 3, "{all:#?}");
    at(
        &all[0],
        4,
        12,
        "upstream.api.servers[0]",
        "10.1.2.3 is inside deny_addresses entry 10.1.2.3/32: every request to this server will fail with destination_ip_prohibited",
    );
    at(
        &all[1],
        4,
        27,
        "upstream.api.servers[1]",
        "fd00::5 is inside deny_addresses entry fd00::/8",
    );
    at(
        &all[2],
        4,
        43,
        "upstream.api.servers[2]",
        "::ffff:169.254.1.1 is inside deny_addresses entry 169.254.0.0/16",
    );
    // In a server table, the warning points at the address.
    let w = one_warning(&format!(
        "{HEAD}servers = [{{ address = \"10.1.2.3:80\" }}]\ndeny_addresses = [\"10.0.0.0/8\"]\n"
    ));
    at(&w, 4, 24, "upstream.api.servers[0].address", "inside");
}

// === balancing ===

#[test]
fn bad_balance() {
    let d = one_error(&format!("{TAIL}balance = \"random\"\n"));
    at(
        &d,
        5,
        11,
        "upstream.api.balance",
        "\"random\" is not one of \"round_robin\", \"least_requests\", \"hash\"",
    );
}

#[test]
fn hash_key_without_hash_is_a_warning() {
    let w = one_warning(&format!("{TAIL}hash_key = \"client_ip\"\n"));
    at(
        &w,
        5,
        12,
        "upstream.api.hash_key",
        "no effect unless balance = \"hash\"",
    );
    let w = one_warning(&format!(
        "{TAIL}balance = \"least_requests\"\nhash_key = \"cookie:s\"\n"
    ));
    at(&w, 6, 12, "upstream.api.hash_key", "no effect");
    // A misspelt balance is its own error; no warning about hash_key on top.
    let all = diags(&format!(
        "{TAIL}balance = \"hsh\"\nhash_key = \"client_ip\"\n"
    ));
    assert_eq!(all.len(), 1, "{all:#?}");
    at(&all[0], 5, 11, "upstream.api.balance", "not one of");
}

#[test]
fn bad_hash_key() {
    let d = one_error(&format!(
        "{TAIL}balance = \"hash\"\nhash_key = \"header:\"\n"
    ));
    at(
        &d,
        6,
        12,
        "upstream.api.hash_key",
        "\"header:\" names no header",
    );
    assert_eq!(
        d.fix,
        "write the header name after the colon, e.g. \"header:X-User\""
    );
    let d = one_error(&format!(
        "{TAIL}balance = \"hash\"\nhash_key = \"cookie:\"\n"
    ));
    at(&d, 6, 12, "upstream.api.hash_key", "names no cookie");
    let d = one_error(&format!("{TAIL}balance = \"hash\"\nhash_key = \"ip\"\n"));
    at(&d, 6, 12, "upstream.api.hash_key", "not a hash key");
    let d = one_error(&format!(
        "{TAIL}balance = \"hash\"\nhash_key = \"header:X User\"\n"
    ));
    at(
        &d,
        6,
        12,
        "upstream.api.hash_key",
        "not a valid header name",
    );
}

// === limits, DNS, deny list ===

#[test]
fn bad_limits() {
    let all = diags(&format!(
        "{TAIL}max_connections = -1\nqueue_size = -5\nqueue_timeout = \"0s\"\n"
    ));
    assert_eq!(all.len(), 3, "{all:#?}");
    at(
        &all[0],
        5,
        19,
        "upstream.api.max_connections",
        "-1 is less than 0",
    );
    at(
        &all[1],
        6,
        14,
        "upstream.api.queue_size",
        "-5 is less than 0",
    );
    at(&all[2], 7, 17, "upstream.api.queue_timeout", "is zero");
    let d = one_error(&format!("{TAIL}max_connections = 5000000000\n"));
    at(
        &d,
        5,
        19,
        "upstream.api.max_connections",
        "5000000000 is too large (at most 4294967295)",
    );
}

#[test]
fn resolve_interval_below_one_second() {
    let d = one_error(&format!("{TAIL}resolve_interval = \"500ms\"\n"));
    at(
        &d,
        5,
        20,
        "upstream.api.resolve_interval",
        "\"500ms\" is shorter than 1s",
    );
    let d = one_error(&format!("{TAIL}resolve_interval = \"0s\"\n"));
    at(&d, 5, 20, "upstream.api.resolve_interval", "is zero");
}

#[test]
fn bad_deny_addresses() {
    let text = format!(
        "{TAIL}deny_addresses = [\"10.0.0.0/33\", \"fd00::/129\", \"localhost\", \"10.1.2.3/8\", 7]\n"
    );
    let all = diags(&text);
    assert_eq!(all.len(), 5, "{all:#?}");
    at(
        &all[0],
        5,
        19,
        "upstream.api.deny_addresses[0]",
        "\"10.0.0.0/33\" has a prefix longer than 32 bits",
    );
    at(
        &all[1],
        5,
        34,
        "upstream.api.deny_addresses[1]",
        "longer than 128 bits",
    );
    at(
        &all[2],
        5,
        48,
        "upstream.api.deny_addresses[2]",
        "not an IP address or CIDR block",
    );
    assert_eq!(all[3].severity, Severity::Warning);
    at(
        &all[3],
        5,
        61,
        "upstream.api.deny_addresses[3]",
        "has address bits set after the /8 prefix, so it means 10.0.0.0/8",
    );
    assert_eq!(
        all[3].fix,
        "write \"10.0.0.0/8\", or \"10.1.2.3\" for that one address"
    );
    at(
        &all[4],
        5,
        75,
        "upstream.api.deny_addresses[4]",
        "expected a string, found an integer",
    );
}

// === [upstream.NAME.health] ===

#[test]
fn bad_health_values() {
    let text = format!(
        "{TAIL}[upstream.api.health]\n\
         path = \"ping\"\n\
         unhealthy_threshold = 0\n\
         healthy_threshold = -1\n\
         expect_status = \"200-99\"\n\
         host = \"api internal\"\n"
    );
    let all = diags(&text);
    assert_eq!(all.len(), 5, "{all:#?}");
    at(
        &all[0],
        6,
        8,
        "upstream.api.health.path",
        "\"ping\" does not start with \"/\"",
    );
    assert_eq!(all[0].fix, "write \"/ping\"");
    at(
        &all[1],
        7,
        23,
        "upstream.api.health.unhealthy_threshold",
        "0 is less than 1",
    );
    at(
        &all[2],
        8,
        21,
        "upstream.api.health.healthy_threshold",
        "-1 is less than 1",
    );
    at(
        &all[3],
        9,
        17,
        "upstream.api.health.expect_status",
        "\"99\" in \"200-99\" is not a status code from 100 to 599",
    );
    at(
        &all[4],
        10,
        8,
        "upstream.api.health.host",
        "not a valid Host header value",
    );
}

#[test]
fn bad_expect_status() {
    let d = one_error(&format!(
        "{TAIL}[upstream.api.health]\nexpect_status = \"399-200\"\n"
    ));
    at(
        &d,
        6,
        17,
        "upstream.api.health.expect_status",
        "start is above its end",
    );
    assert_eq!(d.fix, "write \"200-399\"");
    let d = one_error(&format!(
        "{TAIL}[upstream.api.health]\nexpect_status = \"2xx\"\n"
    ));
    at(
        &d,
        6,
        17,
        "upstream.api.health.expect_status",
        "not a status code",
    );
    let d = one_error(&format!(
        "{TAIL}[upstream.api.health]\nexpect_status = 200\n"
    ));
    at(
        &d,
        6,
        17,
        "upstream.api.health.expect_status",
        "expected a string, found an integer",
    );
}

#[test]
fn unknown_key_in_health() {
    let d = one_error(&format!("{TAIL}[upstream.api.health]\npth = \"/x\"\n"));
    at(&d, 6, 1, "upstream.api.health.pth", "unknown key `pth`");
    assert_eq!(d.fix, "did you mean `path`?");
}

#[test]
fn health_that_is_not_a_table() {
    let d = one_error(&format!("{TAIL}health = true\n"));
    at(
        &d,
        5,
        10,
        "upstream.api.health",
        "expected a table, found a boolean",
    );
}

#[test]
fn health_timeout_not_shorter_than_interval_is_a_warning() {
    let w = one_warning(&format!(
        "{TAIL}[upstream.api.health]\ninterval = \"2s\"\ntimeout = \"2s\"\n"
    ));
    at(
        &w,
        7,
        11,
        "upstream.api.health.timeout",
        "the check timeout (2s) is not shorter than the interval (2s)",
    );
    // Against the default timeout (2s), the interval is the key that was written.
    let w = one_warning(&format!("{TAIL}[upstream.api.health]\ninterval = \"1s\"\n"));
    at(&w, 6, 12, "upstream.api.health.interval", "overlap");
    // A bad interval is an error, and no warning is derived from its replacement.
    let all = diags(&format!(
        "{TAIL}[upstream.api.health]\ninterval = \"0s\"\ntimeout = \"10s\"\n"
    ));
    assert_eq!(all.len(), 1, "{all:#?}");
    at(&all[0], 6, 12, "upstream.api.health.interval", "is zero");
}

// === [upstream.NAME.passive] ===

#[test]
fn bad_passive_values() {
    let text = format!(
        "{TAIL}[upstream.api.passive]\n\
         ejection = \"1m\"\n\
         max_ejection = \"30s\"\n\
         max_ejected_percent = 101\n\
         consecutive_failures = -1\n"
    );
    let all = diags(&text);
    assert_eq!(all.len(), 3, "{all:#?}");
    at(
        &all[0],
        7,
        16,
        "upstream.api.passive.max_ejection",
        "max_ejection (30s) is shorter than ejection (1m)",
    );
    assert_eq!(
        all[0].fix,
        "set max_ejection to \"1m\" or more, or shorten ejection"
    );
    at(
        &all[1],
        8,
        23,
        "upstream.api.passive.max_ejected_percent",
        "101 is outside the allowed range 0 to 100",
    );
    at(
        &all[2],
        9,
        24,
        "upstream.api.passive.consecutive_failures",
        "-1 is less than 0",
    );
}

// === [upstream.NAME.retry] ===

#[test]
fn bad_retry_values() {
    let text = format!(
        "{TAIL}[upstream.api.retry]\n\
         attempts = 0\n\
         budget = 1.5\n\
         deadline = \"0s\"\n\
         min_retries_per_second = -1\n"
    );
    let all = diags(&text);
    assert_eq!(all.len(), 4, "{all:#?}");
    at(
        &all[0],
        6,
        12,
        "upstream.api.retry.attempts",
        "0 is outside the allowed range 1 to 10",
    );
    at(
        &all[1],
        7,
        10,
        "upstream.api.retry.budget",
        "1.5 is outside the allowed range 0.0 to 1.0",
    );
    at(&all[2], 8, 12, "upstream.api.retry.deadline", "is zero");
    at(
        &all[3],
        9,
        26,
        "upstream.api.retry.min_retries_per_second",
        "-1 is less than 0",
    );
    let d = one_error(&format!("{TAIL}[upstream.api.retry]\nattempts = 11\n"));
    at(
        &d,
        6,
        12,
        "upstream.api.retry.attempts",
        "outside the allowed range",
    );
}

#[test]
fn budget_types() {
    let d = one_error(&format!("{TAIL}[upstream.api.retry]\nbudget = \"0.2\"\n"));
    at(
        &d,
        6,
        10,
        "upstream.api.retry.budget",
        "expected a number, found a string",
    );
    assert_eq!(d.fix, "write it like budget = 0.2");
    let d = one_error(&format!("{TAIL}[upstream.api.retry]\nbudget = nan\n"));
    at(
        &d,
        6,
        10,
        "upstream.api.retry.budget",
        "not a finite number",
    );
    let d = one_error(&format!("{TAIL}[upstream.api.retry]\nbudget = 1e999\n"));
    at(
        &d,
        6,
        10,
        "upstream.api.retry.budget",
        "not a finite number",
    );
    let d = one_error(&format!("{TAIL}[upstream.api.retry]\nbudget = -0.1\n"));
    at(&d, 6, 10, "upstream.api.retry.budget", "outside");
    let d = one_error(&format!("{TAIL}[upstream.api.retry]\nbudget = 2\n"));
    at(&d, 6, 10, "upstream.api.retry.budget", "2 is outside");
    let d = one_error(&format!("{TAIL}[upstream.api.retry]\nattempts = 2.5\n"));
    at(
        &d,
        6,
        12,
        "upstream.api.retry.attempts",
        "expected an integer, found a float",
    );
}

// === routes ===

#[test]
fn retry_non_idempotent_must_be_a_bool() {
    let d = one_error(
        "[[route]]\nupstream = \"api\"\nretry_non_idempotent = \"yes\"\n[upstream.api]\nservers = [\"127.0.0.1:3000\"]\n",
    );
    at(
        &d,
        3,
        24,
        "route[0].retry_non_idempotent",
        "expected true or false, found a string",
    );
}

// === everything at once ===

#[test]
fn every_pool_problem_is_reported_at_once() {
    let text = format!(
        "{HEAD}servers = [\"127.0.0.1:3000\", {{ address = \"127.0.0.1:3000\", weight = 0 }}]\n\
         balance = \"fastest\"\n\
         [upstream.api.health]\n\
         timeout = \"soon\"\n\
         [upstream.api.passive]\n\
         max_ejected_percent = 200\n\
         [upstream.api.retry]\n\
         attempts = 100\n\
         tries = 3\n"
    );
    let all = diags(&text);
    let got: Vec<(usize, &str)> = all.iter().map(|d| (d.line, d.key.as_str())).collect();
    assert_eq!(
        got,
        [
            (4, "upstream.api.servers[1].address"),
            (4, "upstream.api.servers[1].weight"),
            (5, "upstream.api.balance"),
            (7, "upstream.api.health.timeout"),
            (9, "upstream.api.passive.max_ejected_percent"),
            (11, "upstream.api.retry.attempts"),
            (12, "upstream.api.retry.tries"),
        ],
        "{all:#?}"
    );
    assert!(all.iter().all(Diagnostic::is_error), "{all:#?}");
}
