//! One test per diagnostic condition of `[[route]]` and `[upstream.NAME]` (errors and warnings),
//! asserting line, column and key path, and the test that every problem of a file is reported.

use super::{TAIL, at, diags, ok, one_error};
use crate::Severity;

// === routes and upstreams ===

#[test]
fn route_to_unknown_upstream_suggests_a_similar_name() {
    let d =
        one_error("[[route]]\nupstream = \"ap\"\n[upstream.api]\nservers = [\"127.0.0.1:3000\"]\n");
    at(
        &d,
        2,
        12,
        "route[0].upstream",
        "there is no upstream named \"ap\"",
    );
    assert_eq!(d.fix, "did you mean \"api\"?");
    // The unused "api" is a warning alongside.
    let all =
        diags("[[route]]\nupstream = \"ap\"\n[upstream.api]\nservers = [\"127.0.0.1:3000\"]\n");
    assert!(
        all.iter()
            .any(|w| w.severity == Severity::Warning && w.key == "upstream.api"),
        "{all:#?}"
    );
}

#[test]
fn route_to_unknown_upstream_without_a_similar_name() {
    let d = one_error(&format!(
        "{TAIL}[[route]]\npath = \"/x\"\nupstream = \"database\"\n"
    ));
    at(
        &d,
        7,
        12,
        "route[1].upstream",
        "no upstream named \"database\"",
    );
    assert_eq!(d.fix, "use one of \"api\", or add [upstream.database]");
}

#[test]
fn route_without_upstream() {
    let d = one_error(&format!("{TAIL}[[route]]\npath = \"/x\"\n"));
    at(&d, 5, 1, "route[1].upstream", "route has no `upstream`");
}

#[test]
fn upstream_without_servers() {
    let d = one_error("[[route]]\nupstream = \"api\"\n[upstream.api]\nconnect_timeout = \"1s\"\n");
    at(&d, 3, 1, "upstream.api.servers", "has no `servers`");
}

#[test]
fn route_path_must_start_with_slash() {
    let d = one_error(&format!(
        "[[route]]\npath = \"api\"\nupstream = \"api\"\n{TAIL}"
    ));
    at(&d, 2, 8, "route[0].path", "does not start with \"/\"");
    assert_eq!(d.fix, "write \"/api\"");
}

#[test]
fn route_path_must_be_in_normal_form() {
    let text = format!(
        "[[route]]\npath = \"//api/%7ev1\"\nupstream = \"api\"\n\
         [[route]]\npath = \"/api/../admin\"\nupstream = \"api\"\n\
         [[route]]\npath = \"/100%\"\nupstream = \"api\"\n{TAIL}"
    );
    let all = diags(&text);
    assert_eq!(all.len(), 3, "{all:#?}");
    at(&all[0], 2, 8, "route[0].path", "is not in normal form");
    assert_eq!(all[0].fix, "write \"/api/~v1\"");
    at(&all[1], 5, 8, "route[1].path", "has a . or .. segment");
    at(
        &all[2],
        8,
        8,
        "route[2].path",
        "% not followed by two hex digits",
    );
}

#[test]
fn route_host_problems() {
    let text = format!(
        "[[route]]\nhost = \"example.com:8080\"\nupstream = \"api\"\n\
         [[route]]\nhost = \"exa mple.com\"\nupstream = \"api\"\n\
         [[route]]\nhost = \"api.*.example.com\"\nupstream = \"api\"\n\
         [[route]]\nhost = \"*example.com\"\nupstream = \"api\"\n{TAIL}"
    );
    let all = diags(&text);
    assert_eq!(all.len(), 4, "{all:#?}");
    at(&all[0], 2, 8, "route[0].host", "has a port");
    assert_eq!(
        all[0].fix,
        "write \"example.com\": hosts are matched without the port"
    );
    at(&all[1], 5, 8, "route[1].host", "not a valid host name");
    at(&all[2], 8, 8, "route[2].host", "not a leading \"*.\"");
    at(&all[3], 11, 8, "route[3].host", "not a leading \"*.\"");
}

#[test]
fn duplicate_routes() {
    let text = format!(
        "[[route]]\nhost = \"Example.com\"\npath = \"/a\"\nupstream = \"api\"\n\
         [[route]]\nhost = \"example.com\"\npath = \"/a\"\nupstream = \"api\"\n{TAIL}"
    );
    let d = one_error(&text);
    at(
        &d,
        5,
        1,
        "route[1]",
        "same host and path as route[0] (line 1)",
    );
    // The default path "/" counts: TAIL's route and an explicit "/" clash.
    let d = one_error(&format!(
        "{TAIL}[[route]]\npath = \"/\"\nupstream = \"api\"\n"
    ));
    at(&d, 5, 1, "route[1]", "same host and path as route[0]");
}

#[test]
fn no_routes() {
    let d = one_error("[upstream.api]\nservers = [\"127.0.0.1:3000\"]\n");
    assert_eq!((d.line, d.column, d.key.as_str()), (0, 0, "route"), "{d}");
    assert!(d.message.contains("no routes"), "{d}");
}

#[test]
fn bad_upstream_name() {
    let d = one_error(
        "[[route]]\nupstream = \"my api\"\n[upstream.\"my api\"]\nservers = [\"127.0.0.1:3000\"]\n",
    );
    at(&d, 3, 1, "upstream.my api", "not a valid upstream name");
}

// === warnings ===

#[test]
fn empty_servers_is_a_warning() {
    let loaded = ok("[[route]]\nupstream = \"api\"\n[upstream.api]\nservers = []\n");
    assert_eq!(loaded.warnings.len(), 1, "{:#?}", loaded.warnings);
    let w = &loaded.warnings[0];
    assert_eq!(w.severity, Severity::Warning);
    at(
        w,
        4,
        11,
        "upstream.api.servers",
        "500 proxy_configuration_error",
    );
    assert!(loaded.config.upstreams[0].servers.is_empty());
}

#[test]
fn unused_upstream_is_a_warning() {
    let loaded = ok(&format!(
        "{TAIL}[upstream.spare]\nservers = [\"127.0.0.1:3001\"]\n"
    ));
    assert_eq!(loaded.warnings.len(), 1, "{:#?}", loaded.warnings);
    at(
        &loaded.warnings[0],
        5,
        1,
        "upstream.spare",
        "no route uses this upstream",
    );
}

// === everything at once ===

#[test]
fn every_problem_is_reported_at_once() {
    let text = "\
[server]
name = \"\"
listen = [\"127.0.0.1:8080\", \"127.0.0.1:8080\"]
colour = \"red\"
workers = 0

[dns]
nameserver = [\"1.1.1.1\"]

[[route]]
path = \"api\"
upstream = \"ap\"

[upstream.api]
servers = [\"127.0.0.1:3000\"]
connect_timeout = \"2 parsecs\"
max_response_header_size = \"1KiB\"
retries = 3
";
    let all = diags(text);
    let got: Vec<(usize, &str)> = all.iter().map(|d| (d.line, d.key.as_str())).collect();
    assert_eq!(
        got,
        [
            (2, "server.name"),
            (3, "server.listen[1]"),
            (4, "server.colour"),
            (5, "server.workers"),
            (8, "dns.nameserver"),
            (11, "route[0].path"),
            (12, "route[0].upstream"),
            (14, "upstream.api"),
            (16, "upstream.api.connect_timeout"),
            (17, "upstream.api.max_response_header_size"),
            (18, "upstream.api.retries"),
        ],
        "{all:#?}"
    );
    assert_eq!(all.iter().filter(|d| d.is_error()).count(), 10);
    assert_eq!(all[4].fix, "did you mean `nameservers`?");
}
