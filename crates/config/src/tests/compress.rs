//! `[compress]` and `[route.compress]`: off without a table, the defaults a table brings, a
//! route's table over `[compress]`, and each problem reported at its line.

use super::{TAIL, at, diags, ok, one_error};
use crate::Encoding;

const ROUTE: &str = "[[route]]\nupstream = \"api\"\n";
const UPSTREAM: &str = "[upstream.api]\nservers = [\"127.0.0.1:3000\"]\n";

#[test]
fn off_without_a_table() {
    let c = ok(TAIL).config;
    assert!(!c.compress.enabled);
    assert_eq!(c.routes[0].compress, None);
}

#[test]
fn a_table_switches_it_on_with_the_defaults() {
    let c = ok(&format!("[compress]\n{TAIL}")).config;
    let z = &c.compress;
    assert!(z.enabled);
    assert_eq!(
        z.encodings,
        vec![Encoding::Zstd, Encoding::Brotli, Encoding::Gzip]
    );
    assert_eq!(z.min_size, 1024);
    assert!(z.types.iter().any(|t| t == "text/*"));
    assert!(z.types.iter().any(|t| t == "application/json"));
    assert!(z.types.iter().any(|t| t == "image/svg+xml"));
    assert_eq!((z.gzip_level, z.brotli_level, z.zstd_level), (5, 4, 3));
    assert!(!z.decompress);
}

#[test]
fn every_key_is_read_and_a_route_inherits_what_it_does_not_set() {
    let c = ok(&format!(
        "[compress]\nenabled = true\nencodings = [\"gzip\", \"zstd\"]\nmin_size = \"2KiB\"\n\
         types = [\"Text/HTML\", \"application/*+json\"]\ngzip_level = 9\nbrotli_level = 11\n\
         zstd_level = 19\ndecompress = true\n\
         {ROUTE}[route.compress]\nmin_size = 0\nencodings = [\"br\"]\n\
         [[route]]\npath = \"/off\"\nupstream = \"api\"\n[route.compress]\nenabled = false\n{UPSTREAM}"
    ))
    .config;
    let z = &c.compress;
    assert_eq!(z.encodings, vec![Encoding::Gzip, Encoding::Zstd]);
    assert_eq!(z.min_size, 2048);
    assert_eq!(z.types, vec!["text/html", "application/*+json"]);
    assert_eq!((z.gzip_level, z.brotli_level, z.zstd_level), (9, 11, 19));
    assert!(z.decompress);
    let route = c.routes[0]
        .compress
        .as_ref()
        .unwrap_or_else(|| panic!("no compress"));
    assert!(route.enabled);
    assert_eq!(route.encodings, vec![Encoding::Brotli]);
    assert_eq!(route.min_size, 0);
    assert_eq!(route.types, z.types);
    assert_eq!(route.gzip_level, 9);
    assert!(route.decompress);
    let off = c.routes[1]
        .compress
        .as_ref()
        .unwrap_or_else(|| panic!("no compress"));
    assert!(!off.enabled);
}

#[test]
fn a_route_table_alone_switches_that_route_on() {
    let c = ok(&format!(
        "{ROUTE}[route.compress]\ngzip_level = 1\n{UPSTREAM}"
    ))
    .config;
    assert!(!c.compress.enabled);
    let route = c.routes[0]
        .compress
        .as_ref()
        .unwrap_or_else(|| panic!("no compress"));
    assert!(route.enabled);
    assert_eq!(route.gzip_level, 1);
    assert_eq!(route.min_size, 1024);
}

#[test]
fn an_unknown_encoding_is_an_error_at_its_line() {
    let d = one_error(&format!(
        "[compress]\nencodings = [\"gzip\", \"brotli\"]\n{TAIL}"
    ));
    at(&d, 2, 22, "compress.encodings", "not an encoding");
    assert!(d.fix.contains("\"br\""), "{d}");
    let d = one_error(&format!(
        "{ROUTE}[route.compress]\nencodings = [\"deflate\"]\n{UPSTREAM}"
    ));
    at(&d, 4, 14, "route[0].compress.encodings", "not an encoding");
    let d = one_error(&format!(
        "[compress]\nencodings = [\"gzip\", \"gzip\"]\n{TAIL}"
    ));
    at(&d, 2, 22, "compress.encodings", "twice");
    let d = one_error(&format!("[compress]\nencodings = []\n{TAIL}"));
    at(&d, 2, 13, "compress.encodings", "empty");
}

#[test]
fn bad_types_are_errors_at_their_line() {
    for (bad, why) in [
        ("\"text/html; charset=utf-8\"", "parameters"),
        ("\"html\"", "no '/'"),
        ("\"*/*\"", "*/*"),
        ("\"text/\"", "subtype"),
        ("\"/json\"", "type before"),
        ("\"text/ht ml\"", "subtype"),
        ("\"application/*json\"", "subtype"),
    ] {
        let d = one_error(&format!("[compress]\ntypes = [{bad}]\n{TAIL}"));
        at(&d, 2, 10, "compress.types", why);
    }
    // Every bad entry is reported, not just the first.
    let all = diags(&format!(
        "[compress]\ntypes = [\"a\", \"text/css\", \"b\"]\n{TAIL}"
    ));
    assert_eq!(all.iter().filter(|d| d.is_error()).count(), 2);
}

#[test]
fn levels_out_of_range_are_errors() {
    for (key, value, column) in [
        ("gzip_level", "0", 14),
        ("gzip_level", "10", 14),
        ("brotli_level", "0", 16),
        ("brotli_level", "12", 16),
        ("zstd_level", "-1", 14),
        ("zstd_level", "0", 14),
        ("zstd_level", "20", 14),
    ] {
        let d = one_error(&format!("[compress]\n{key} = {value}\n{TAIL}"));
        at(
            &d,
            2,
            column,
            &format!("compress.{key}"),
            "outside the allowed range",
        );
    }
    let d = one_error(&format!("[compress]\nmin_size = -1\n{TAIL}"));
    at(&d, 2, 12, "compress.min_size", "negative");
}

#[test]
fn unknown_keys_and_wrong_types_are_errors() {
    let d = one_error(&format!("[compress]\nlevel = 3\n{TAIL}"));
    at(&d, 2, 1, "compress.level", "unknown key");
    let d = one_error(&format!("[compress]\nenabled = \"yes\"\n{TAIL}"));
    assert_eq!((d.line, d.key.as_str()), (2, "compress.enabled"), "{d}");
}

#[test]
fn the_documented_example_is_valid() {
    const DOC: &str = include_str!("../../../../docs/configuration.md");
    let block = DOC
        .split("## `[compress]`")
        .nth(1)
        .and_then(|rest| rest.split("```toml\n").nth(1))
        .and_then(|block| block.split("```").next())
        .unwrap_or_else(|| panic!("docs/configuration.md has no toml block under [compress]"));
    let loaded = ok(&format!(
        "{block}[[route]]\nupstream = \"files\"\n[upstream.files]\nservers = [\"127.0.0.1:3000\"]\n"
    ));
    assert!(loaded.warnings.is_empty(), "{:#?}", loaded.warnings);
    let c = loaded.config;
    assert!(c.compress.enabled);
    assert!(!c.routes[0].compress.as_ref().is_some_and(|z| z.enabled));
}
