//! One test per diagnostic condition of the document shape, the values and `[server]`, asserting
//! line, column and key path. Routes, upstreams and warnings are in `routes`.

use super::{TAIL, at, diags, ok, one_error};

// === shape: syntax, unknown keys, types ===

#[test]
fn toml_syntax_error() {
    let all = diags("[server]\nlisten = [\"127.0.0.1:8080\"\nadmin = \"x\"\n");
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!((all[0].line, all[0].key.as_str()), (3, ""), "{}", all[0]);
    assert!(all[0].message.starts_with("invalid TOML"), "{}", all[0]);
    let d = one_error("a = \n");
    at(&d, 1, 5, "", "invalid TOML");
    assert!(d.fix.contains("quotes"), "{d}");
}

#[test]
fn unknown_key_suggests_the_closest() {
    let d = one_error(&format!("[server]\nlistn = [\"127.0.0.1:80\"]\n{TAIL}"));
    at(&d, 2, 1, "server.listn", "unknown key `listn`");
    assert_eq!(d.fix, "did you mean `listen`?");
}

#[test]
fn unknown_key_without_a_close_one_lists_the_keys() {
    let d = one_error(&format!("{TAIL}color = \"blue\"\n"));
    at(&d, 5, 1, "upstream.api.color", "unknown key `color`");
    assert!(d.fix.contains("servers, connect_timeout"), "{d}");
}

#[test]
fn a_table_where_an_array_of_tables_belongs() {
    // `[[server.tls]]` is an array of tables; one inline table is a shape error (tests/tls.rs
    // has the rest of TLS).
    let d = one_error(&format!("[server]\ntls = {{ cert = \"a.pem\" }}\n{TAIL}"));
    at(
        &d,
        2,
        7,
        "server.tls",
        "expected an array of tables, found a table",
    );
}

#[test]
fn type_errors() {
    let text = format!(
        "[server]\nworkers = \"two\"\nlisten = \"127.0.0.1:8080\"\naccess_log = \"yes\"\n{TAIL}servers2 = 1\n"
    );
    let all = diags(&text);
    assert_eq!(all.len(), 4, "{all:#?}");
    at(
        &all[0],
        2,
        11,
        "server.workers",
        "expected an integer, found a string",
    );
    at(
        &all[1],
        3,
        10,
        "server.listen",
        "expected a list of strings, found a string",
    );
    at(
        &all[2],
        4,
        14,
        "server.access_log",
        "expected true or false",
    );
    at(&all[3], 9, 1, "upstream.api.servers2", "unknown key");
}

#[test]
fn list_element_of_the_wrong_type() {
    let d = one_error(&format!(
        "[server]\nlisten = [\"127.0.0.1:80\", 8080]\n{TAIL}"
    ));
    at(
        &d,
        2,
        27,
        "server.listen[1]",
        "expected a string, found an integer",
    );
    // The other elements keep their index and are still checked.
    let all = diags(&format!(
        "[server]\nlisten = [8080, \"localhost:80\"]\n{TAIL}"
    ));
    assert_eq!(all.len(), 2, "{all:#?}");
    at(
        &all[0],
        2,
        11,
        "server.listen[0]",
        "expected a string, found an integer",
    );
    at(
        &all[1],
        2,
        17,
        "server.listen[1]",
        "not an IP address and port",
    );
}

#[test]
fn route_written_as_a_table() {
    let d =
        one_error("[route]\nupstream = \"api\"\n[upstream.api]\nservers = [\"127.0.0.1:3000\"]\n");
    at(
        &d,
        1,
        1,
        "route",
        "expected an array of tables, found a table",
    );
    assert!(d.fix.contains("[[route]]"), "{d}");
}

#[test]
fn removed_value_does_not_cause_more_errors() {
    // `upstream = 5` is removed after its type error; "route has no upstream" would be noise.
    let d = one_error("[[route]]\nupstream = 5\n[upstream.api]\nservers = [\"127.0.0.1:3000\"]\n");
    at(
        &d,
        2,
        12,
        "route[0].upstream",
        "expected a string, found an integer",
    );
}

// === values ===

#[test]
fn bad_duration() {
    let d = one_error(&format!("{TAIL}connect_timeout = \"two seconds\"\n"));
    at(
        &d,
        5,
        19,
        "upstream.api.connect_timeout",
        "\"two seconds\" is not a duration",
    );
    assert_eq!(d.fix, "write it like \"500ms\", \"2s\" or \"5m\"");
    let d = one_error(&format!("[dns]\ntimeout = \"5\"\n{TAIL}"));
    at(&d, 2, 11, "dns.timeout", "has no unit");
}

#[test]
fn zero_timeout() {
    let d = one_error(&format!("[server]\ndrain_timeout = \"0s\"\n{TAIL}"));
    at(&d, 2, 17, "server.drain_timeout", "is zero");
    let d = one_error(&format!("{TAIL}read_timeout = \"0ms\"\n"));
    at(&d, 5, 16, "upstream.api.read_timeout", "is zero");
    assert!(d.fix.contains("30s"), "{d}");
}

#[test]
fn bad_size() {
    let d = one_error(&format!(
        "[server]\nmax_uri_length = \"8 kilobytes\"\n{TAIL}"
    ));
    at(&d, 2, 18, "server.max_uri_length", "is not a size");
    let d = one_error(&format!("[server]\nmax_uri_length = -1\n{TAIL}"));
    at(&d, 2, 18, "server.max_uri_length", "negative");
}

#[test]
fn response_header_size_out_of_range() {
    let d = one_error(&format!("{TAIL}max_response_header_size = \"4KiB\"\n"));
    at(
        &d,
        5,
        28,
        "upstream.api.max_response_header_size",
        "outside the allowed range 8KiB to 1MiB",
    );
    let d = one_error(&format!("{TAIL}max_response_header_size = \"2MiB\"\n"));
    at(
        &d,
        5,
        28,
        "upstream.api.max_response_header_size",
        "outside",
    );
    let d = one_error(&format!("[server]\nmax_request_header_size = 1024\n{TAIL}"));
    at(&d, 2, 27, "server.max_request_header_size", "outside");
}

#[test]
fn bad_listen_and_admin_addresses() {
    let text =
        format!("[server]\nlisten = [\"localhost:8080\", \"127.0.0.1\"]\nadmin = \"9901\"\n{TAIL}");
    let all = diags(&text);
    assert_eq!(all.len(), 3, "{all:#?}");
    at(
        &all[0],
        2,
        11,
        "server.listen[0]",
        "not an IP address and port",
    );
    assert!(all[0].fix.contains("127.0.0.1:8080"), "{}", all[0]);
    at(&all[1], 2, 29, "server.listen[1]", "has no port");
    at(&all[2], 3, 9, "server.admin", "not an IP address and port");
}

#[test]
fn bad_nameserver() {
    let d = one_error(&format!(
        "[dns]\nnameservers = [\"1.1.1.1\", \"dns.google\"]\n{TAIL}"
    ));
    at(&d, 2, 27, "dns.nameservers[1]", "not an IP address");
}

#[test]
fn bad_upstream_servers() {
    let text = "[[route]]\nupstream = \"api\"\n[upstream.api]\nservers = [\"::1\", \"app\", \"app:99999\", \"a b:80\"]\n";
    let all = diags(text);
    assert_eq!(all.len(), 4, "{all:#?}");
    at(
        &all[0],
        4,
        12,
        "upstream.api.servers[0]",
        "IPv6 address without brackets",
    );
    at(&all[1], 4, 19, "upstream.api.servers[1]", "has no port");
    at(&all[2], 4, 26, "upstream.api.servers[2]", "invalid port");
    at(
        &all[3],
        4,
        39,
        "upstream.api.servers[3]",
        "invalid host name",
    );
}

// === [server] ===

#[test]
fn empty_name() {
    let d = one_error(&format!("[server]\nname = \"\"\n{TAIL}"));
    at(&d, 2, 8, "server.name", "name is empty");
}

#[test]
fn name_is_not_a_token() {
    let d = one_error(&format!("[server]\nname = \"edge proxy\"\n{TAIL}"));
    at(
        &d,
        2,
        8,
        "server.name",
        "not a valid Proxy-Status member name",
    );
    let d = one_error(&format!("[server]\nname = \"1edge\"\n{TAIL}"));
    at(&d, 2, 8, "server.name", "RFC 8941");
    ok(&format!("[server]\nname = \"*edge:1/eu\"\n{TAIL}"));
}

#[test]
fn duplicate_listen() {
    let d = one_error(&format!(
        "[server]\nlisten = [\"127.0.0.1:80\", \"127.0.0.1:80\"]\n{TAIL}"
    ));
    at(
        &d,
        2,
        27,
        "server.listen[1]",
        "listed twice (also server.listen[0])",
    );
    let d = one_error(&format!(
        "[server]\nlisten = [\"0.0.0.0:80\", \"127.0.0.1:80\"]\n{TAIL}"
    ));
    at(&d, 2, 25, "server.listen[1]", "overlaps server.listen[0]");
    // Port 0 (any free port) never clashes: tests bind several of them.
    ok(&format!(
        "[server]\nlisten = [\"127.0.0.1:0\", \"127.0.0.1:0\"]\nadmin = \"127.0.0.1:0\"\n{TAIL}"
    ));
}

#[test]
fn empty_listen() {
    let d = one_error(&format!("[server]\nlisten = []\n{TAIL}"));
    at(&d, 2, 10, "server.listen", "no listen address");
}

#[test]
fn admin_equals_listen() {
    let d = one_error(&format!(
        "[server]\nlisten = [\"127.0.0.1:8080\"]\nadmin = \"127.0.0.1:8080\"\n{TAIL}"
    ));
    at(
        &d,
        3,
        9,
        "server.admin",
        "clashes with the listen address 127.0.0.1:8080",
    );
    // Against the default listen address too.
    let d = one_error(&format!("[server]\nadmin = \"127.0.0.1:8080\"\n{TAIL}"));
    at(&d, 2, 9, "server.admin", "clashes");
}

#[test]
fn workers_zero() {
    let d = one_error(&format!("[server]\nworkers = 0\n{TAIL}"));
    at(&d, 2, 11, "server.workers", "workers = 0");
    let d = one_error(&format!("[server]\nworkers = -3\n{TAIL}"));
    at(&d, 2, 11, "server.workers", "workers = -3");
}

#[test]
fn bad_choices() {
    let d = one_error(&format!("[server]\nproxy_status = \"verbose\"\n{TAIL}"));
    at(
        &d,
        2,
        16,
        "server.proxy_status",
        "\"verbose\" is not one of \"off\", \"minimal\", \"full\"",
    );
    let d = one_error(&format!("[server]\nlog_format = \"xml\"\n{TAIL}"));
    at(&d, 2, 14, "server.log_format", "not one of");
    let d = one_error(&format!("[server]\nlog_level = \"infos\"\n{TAIL}"));
    at(&d, 2, 13, "server.log_level", "not a log level");
    assert_eq!(d.fix, "did you mean \"info\"?");
}
