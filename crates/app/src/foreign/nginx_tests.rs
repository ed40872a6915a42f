use std::path::Path;

use super::*;

fn parse(text: &str) -> Result<Vec<Directive>, ParseError> {
    parse_str(text, Path::new("t.conf"))
}

fn names(directives: &[Directive]) -> Vec<String> {
    directives.iter().map(Directive::text).collect()
}

/// A temp directory removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "gatehouse-nginx-{name}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("temp dir");
        Self(path)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("dir");
        }
        std::fs::write(&path, text).expect("write");
        path
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn directives_blocks_and_lines() {
    let text = "user www;\n# comment\nhttp {\n  server {\n    listen 80; # trailing\n    location / { proxy_pass http://app; }\n  }\n}\n";
    let parsed = parse(text).expect("parses");
    assert_eq!(names(&parsed), ["user www", "http"]);
    let server = &parsed[1].children()[0];
    assert_eq!(server.origin.line, 4);
    assert_eq!(names(server.children()), ["listen 80", "location /"]);
    let pass = &server.children()[1].children()[0];
    assert_eq!(pass.text(), "proxy_pass http://app");
    assert_eq!(pass.origin.line, 6);
    assert_eq!(pass.origin.to_string(), "t.conf:6");
}

#[test]
fn quotes_escapes_and_variables() {
    let parsed = parse("a \"x y\" 'q;{}' \"e\\\"s\\\\c\" \\;semi;\nb ${host}x;\n");
    let parsed = parsed.expect("parses");
    // As in nginx, `\;` keeps its backslash (only quotes and backslashes lose it).
    assert_eq!(parsed[0].args, ["x y", "q;{}", "e\"s\\c", "\\;semi"]);
    // `${host}` keeps its braces.
    assert_eq!(parsed[1].args, ["${host}x"]);
    let parsed = parse("c \"multi\nline\";\nd\n  e;\n").expect("parses");
    assert_eq!(parsed[0].args, ["multi\nline"]);
    assert_eq!(parsed[1].origin.line, 3);
    assert_eq!(parsed[1].args, ["e"]);
    // `#` inside a word is part of it.
    let parsed = parse("a b#c;").expect("parses");
    assert_eq!(parsed[0].args, ["b#c"]);
}

#[test]
fn grammar_errors_name_the_line() {
    for (text, line, words) in [
        ("http {\n server {\n", 2, "expecting \"}\""),
        ("a b;\n}\n", 2, "unexpected \"}\""),
        ("listen 80\n}", 2, "not terminated"),
        ("listen 80", 1, "no \";\""),
        ("a \"open;\n\n", 1, "not closed"),
        ("a \"x\"y;", 1, "after a quoted word"),
        (";", 1, "unexpected \";\""),
        ("{ }", 1, "unexpected \"{\""),
    ] {
        let err = parse(text).expect_err(text);
        assert_eq!(err.line, line, "{text:?}: {err}");
        assert!(err.message.contains(words), "{text:?}: {err}");
    }
}

#[test]
fn hostile_input_never_panics() {
    let deep = "a {".repeat(10_000);
    assert!(parse(&deep).is_err());
    let closes = "}".repeat(1000);
    assert!(parse(&closes).is_err());
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let alphabet = b"ab ;{}\"'\\#$\n\t\x00\xff";
    for _ in 0..2000 {
        let mut bytes = Vec::new();
        for _ in 0..(seed % 64) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            bytes.push(alphabet[(seed % alphabet.len() as u64) as usize]);
        }
        let text = String::from_utf8_lossy(&bytes);
        let _ = parse(&text);
    }
}

#[test]
fn invalid_utf8_is_read_as_text() {
    let dir = Dir::new("utf8");
    let path = dir.0.join("bad.conf");
    std::fs::write(&path, b"server_name caf\xe9.example;\nlisten 80;\n").expect("write");
    let parsed = parse_file(&path, None).expect("parses");
    assert_eq!(parsed[0].args, ["caf\u{fffd}.example"]);
    assert_eq!(parsed[1].origin.line, 2);
}

#[test]
fn includes_are_followed_with_globs_relative_to_the_prefix() {
    let dir = Dir::new("include");
    let main = dir.write(
        "nginx.conf",
        "http {\n  include conf.d/*.conf;\n  include extra/one.conf;\n}\n",
    );
    dir.write("conf.d/b.conf", "server { listen 81; }\n");
    dir.write(
        "conf.d/a.conf",
        "server { listen 80; include snippets/proxy.conf; }\n",
    );
    dir.write("conf.d/skip.txt", "garbage {");
    dir.write("snippets/proxy.conf", "\n\nproxy_read_timeout 5s;\n");
    dir.write("extra/one.conf", "upstream app { server 127.0.0.1:1; }\n");
    let parsed = parse_file(&main, None).expect("parses");
    let http = parsed[0].children();
    assert_eq!(names(http), ["server", "server", "upstream app"]);
    assert_eq!(
        names(http[0].children()),
        ["listen 80", "proxy_read_timeout 5s"]
    );
    let timeout = &http[0].children()[1];
    assert!(timeout.origin.file.ends_with("snippets/proxy.conf"));
    assert_eq!(timeout.origin.line, 3);
    assert_eq!(names(http[1].children()), ["listen 81"]);
    // A glob matching nothing is fine; a missing file is not.
    let none = dir.write("none.conf", "include nowhere/*.conf;\n");
    assert!(parse_file(&none, None).expect("parses").is_empty());
    let missing = dir.write("missing.conf", "\ninclude nowhere.conf;\n");
    let err = parse_file(&missing, None).expect_err("missing include");
    assert_eq!(err.line, 2);
    assert!(err.message.contains("no such file"), "{err}");
}

#[test]
fn include_cycles_are_refused() {
    let dir = Dir::new("cycle");
    let main = dir.write("a.conf", "include b.conf;\n");
    dir.write("b.conf", "include a.conf;\n");
    let err = parse_file(&main, None).expect_err("cycle");
    assert!(err.message.contains("include cycle"), "{err}");
    let own = dir.write("self.conf", "include *.conf;\n");
    assert!(parse_file(&own, None).is_err());
}

#[test]
fn include_errors_name_the_included_file() {
    let dir = Dir::new("inc-err");
    let main = dir.write("main.conf", "http { include bad.conf; }\n");
    dir.write("bad.conf", "server {\n listen 80\n}\n");
    let err = parse_file(&main, None).expect_err("bad include");
    assert!(err.file.ends_with("bad.conf"), "{err}");
    assert_eq!(err.line, 3);
}

#[test]
fn wildcards() {
    assert!(wildcard(b"*.conf", b"a.conf"));
    assert!(!wildcard(b"*.conf", b"a.conf.bak"));
    assert!(wildcard(b"site-?.conf", b"site-1.conf"));
    assert!(wildcard(b"[a-c]*", b"beta"));
    assert!(!wildcard(b"[!a-c]*", b"beta"));
    assert!(wildcard(b"*", b""));
}
