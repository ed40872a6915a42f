//! `server.log_file`, `server.access_log_format` and `server.access_log_file`: read into the
//! model, relative paths resolved against the config file's directory, and one test per
//! diagnostic (bad format, missing directory, a directory as the file, an empty path, a file
//! with the `log` format, one file for both logs).

use std::path::PathBuf;

use super::{TAIL, at, diags, ok, one_error};
use crate::{AccessLogFormat, parse};

/// A directory that exists, as a string for a TOML literal string.
fn tmp() -> String {
    std::env::temp_dir().display().to_string()
}

#[test]
fn defaults_are_stdout_and_the_log_format() {
    let s = ok(TAIL).config.server;
    assert_eq!(s.log_file, None);
    assert_eq!(s.access_log_format, AccessLogFormat::Log);
    assert_eq!(s.access_log_file, None);
}

#[test]
fn every_log_key_is_read() {
    let tmp = tmp();
    for (word, format) in [
        ("log", AccessLogFormat::Log),
        ("combined", AccessLogFormat::Combined),
        ("json", AccessLogFormat::Json),
    ] {
        let s = ok(&format!(
            "[server]\nlog_file = '{tmp}/g.log'\naccess_log_format = \"{word}\"\n{TAIL}"
        ))
        .config
        .server;
        assert_eq!(s.log_file, Some(PathBuf::from(format!("{tmp}/g.log"))));
        assert_eq!(s.access_log_format, format);
    }
    let s = ok(&format!(
        "[server]\naccess_log_format = \"json\"\naccess_log_file = '{tmp}/a.log'\n{TAIL}"
    ))
    .config
    .server;
    assert_eq!(s.log_file, None);
    assert_eq!(
        s.access_log_file,
        Some(PathBuf::from(format!("{tmp}/a.log")))
    );
}

#[test]
fn relative_paths_are_resolved_against_the_config_files_directory() {
    let dir = std::env::temp_dir();
    let source = dir.join("gatehouse.toml").display().to_string();
    let text = format!(
        "[server]\nlog_file = \"g.log\"\naccess_log_format = \"combined\"\naccess_log_file = \"./a.log\"\n{TAIL}"
    );
    let s = match parse(&source, &text) {
        Ok(loaded) => loaded.config.server,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(s.log_file, Some(dir.join("g.log")));
    assert_eq!(s.access_log_file, Some(dir.join("./a.log")));
}

#[test]
fn unknown_access_log_format() {
    let d = one_error(&format!("[server]\naccess_log_format = \"common\"\n{TAIL}"));
    at(
        &d,
        2,
        21,
        "server.access_log_format",
        "\"common\" is not one of \"log\", \"combined\", \"json\"",
    );
}

#[test]
fn unknown_format_with_a_file_is_one_error() {
    let tmp = tmp();
    let d = one_error(&format!(
        "[server]\naccess_log_format = \"nginx\"\naccess_log_file = '{tmp}/a.log'\n{TAIL}"
    ));
    at(
        &d,
        2,
        21,
        "server.access_log_format",
        "\"nginx\" is not one of",
    );
}

#[test]
fn misspelt_key_suggests_the_right_one() {
    let d = one_error(&format!("[server]\naccess_log_fromat = \"json\"\n{TAIL}"));
    at(&d, 2, 1, "server.access_log_fromat", "unknown key");
    assert_eq!(d.fix, "did you mean `access_log_format`?");
}

#[test]
fn missing_directory_is_an_error_naming_the_path() {
    let d = one_error(&format!(
        "[server]\nlog_file = \"/nonexistent-gatehouse-dir/logs/g.log\"\n{TAIL}"
    ));
    at(
        &d,
        2,
        12,
        "server.log_file",
        "cannot write /nonexistent-gatehouse-dir/logs/g.log: the directory /nonexistent-gatehouse-dir/logs does not exist",
    );
    assert!(
        d.fix.contains("mkdir -p /nonexistent-gatehouse-dir/logs"),
        "{d}"
    );
    let d = one_error(&format!(
        "[server]\naccess_log_format = \"json\"\naccess_log_file = \"/nonexistent-gatehouse-dir/a.log\"\n{TAIL}"
    ));
    at(
        &d,
        3,
        19,
        "server.access_log_file",
        "the directory /nonexistent-gatehouse-dir does not exist",
    );
}

#[test]
fn a_file_as_the_directory_is_an_error() {
    let file = std::env::temp_dir().join(format!("gatehouse-logs-test-{}", std::process::id()));
    std::fs::write(&file, "").unwrap_or_else(|e| panic!("write {}: {e}", file.display()));
    let text = format!("[server]\nlog_file = '{}/g.log'\n{TAIL}", file.display());
    let all = diags(&text);
    let _ = std::fs::remove_file(&file);
    assert_eq!(all.len(), 1, "{all:#?}");
    at(&all[0], 2, 12, "server.log_file", "is not a directory");
}

#[test]
fn a_directory_as_the_file_is_an_error() {
    let tmp = tmp();
    let d = one_error(&format!("[server]\nlog_file = '{tmp}'\n{TAIL}"));
    at(
        &d,
        2,
        12,
        "server.log_file",
        &format!("{tmp} is a directory, not a file"),
    );
    let d = one_error(&format!("[server]\nlog_file = \"logs/\"\n{TAIL}"));
    at(&d, 2, 12, "server.log_file", "is a directory");
}

#[test]
fn empty_path_is_an_error() {
    let d = one_error(&format!("[server]\nlog_file = \"\"\n{TAIL}"));
    at(&d, 2, 12, "server.log_file", "the path is empty");
    assert!(d.fix.contains("stdout"), "{d}");
}

#[test]
fn access_log_file_with_the_log_format_is_an_error() {
    let tmp = tmp();
    let d = one_error(&format!(
        "[server]\naccess_log_file = '{tmp}/a.log'\n{TAIL}"
    ));
    at(
        &d,
        2,
        19,
        "server.access_log_file",
        "access_log_file needs access_log_format = \"combined\" or \"json\"",
    );
    assert!(d.fix.contains("remove access_log_file"), "{d}");
    let d = one_error(&format!(
        "[server]\naccess_log_format = \"log\"\naccess_log_file = '{tmp}/a.log'\n{TAIL}"
    ));
    at(
        &d,
        3,
        19,
        "server.access_log_file",
        "needs access_log_format",
    );
}

#[test]
fn one_file_for_both_logs_is_an_error() {
    let tmp = tmp();
    let d = one_error(&format!(
        "[server]\nlog_file = '{tmp}/g.log'\naccess_log_format = \"combined\"\naccess_log_file = '{tmp}/g.log'\n{TAIL}"
    ));
    at(
        &d,
        4,
        19,
        "server.access_log_file",
        &format!("{tmp}/g.log is also log_file"),
    );
}
