//! The config loader: TOML text to a validated config, or every problem in it.

use gatehouse_config::{Diagnostic, parse};

const SOURCE: &str = "fuzz.toml";

/// The input is a config file (invalid UTF-8 replaced, as an editor would show it).
///
/// Checked: a refused config has at least one error; a taken one only warnings; every
/// diagnostic names the file, a line of it and a column within that line (0 and 0 for the
/// whole file), says what is wrong, and displays; diagnostics come in file order; a taken
/// config's routes name upstreams it has, and parsing is deterministic.
pub fn config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let result = parse(SOURCE, &text);
    let diagnostics = match &result {
        Ok(loaded) => {
            assert!(
                loaded.warnings.iter().all(|d| !d.is_error()),
                "a taken config with errors: {:?}",
                loaded.warnings
            );
            for route in &loaded.config.routes {
                assert!(
                    loaded
                        .config
                        .upstreams
                        .iter()
                        .any(|upstream| upstream.name == route.upstream),
                    "route to a missing upstream {:?}",
                    route.upstream
                );
                assert!(route.path.starts_with('/'), "route path {:?}", route.path);
            }
            &loaded.warnings
        }
        Err(errors) => {
            assert!(
                errors.errors().next().is_some(),
                "refused without an error: {errors:?}"
            );
            let _ = errors.to_string();
            &errors.diagnostics
        }
    };
    for diagnostic in diagnostics {
        check_diagnostic(diagnostic, &text);
    }
    let order: Vec<_> = diagnostics
        .iter()
        .map(|d| (d.line == 0, d.line, d.column))
        .collect();
    assert!(order.is_sorted(), "diagnostics out of order: {order:?}");
    let again = parse(SOURCE, &text);
    match (&result, &again) {
        (Ok(a), Ok(b)) => assert_eq!(a.warnings, b.warnings),
        (Err(a), Err(b)) => assert_eq!(a, b),
        _ => panic!("parsed twice, taken once"),
    }
}

fn check_diagnostic(d: &Diagnostic, text: &str) {
    assert_eq!(d.file, SOURCE);
    assert!(!d.message.is_empty(), "{d:?}");
    let lines: Vec<&str> = text.split('\n').collect();
    if d.line == 0 {
        assert_eq!(d.column, 0, "{d:?}");
    } else {
        let line = lines
            .get(d.line - 1)
            .unwrap_or_else(|| panic!("line {} of {}: {d:?}", d.line, lines.len()));
        assert!(
            d.column >= 1 && d.column <= line.chars().count() + 1,
            "column {} of {:?}: {d:?}",
            d.column,
            line
        );
    }
    let shown = d.to_string();
    assert!(shown.starts_with(SOURCE), "{shown}");
}
