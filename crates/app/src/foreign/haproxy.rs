//! HAProxy config files: sections (`global`, `defaults`, `frontend`, `backend`, `listen`, and
//! the others HAProxy knows, kept by name) and their lines, split into words as HAProxy's
//! `parse_line` does: whitespace between words, `#` comments, `"..."` (with escapes) and
//! `'...'` (literal) quoting, backslash escapes. `${VAR}` is left as text.

use std::path::Path;
use std::sync::Arc;

use super::{Origin, ParseError, read_text};

/// Section keywords HAProxy accepts at the start of a line (`cfg_register_section` callers).
const SECTIONS: &[&str] = &[
    "global",
    "defaults",
    "frontend",
    "backend",
    "listen",
    "resolvers",
    "peers",
    "userlist",
    "cache",
    "program",
    "http-errors",
    "ring",
    "mailers",
    "log-forward",
    "crt-store",
    "traces",
];

/// Lines longer than this are refused (HAProxy's own limit is about 64 KiB).
const MAX_LINE: usize = 64 * 1024;

/// One section: its keyword, the words after it (the name, `from DEFAULTS`...), its lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Section {
    pub(crate) kind: String,
    pub(crate) args: Vec<String>,
    pub(crate) origin: Origin,
    pub(crate) lines: Vec<Line>,
}

impl Section {
    /// The section's name (`frontend NAME`), or "".
    pub(crate) fn name(&self) -> &str {
        self.args.first().map_or("", String::as_str)
    }
}

/// One line of a section, split into words (at least one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Line {
    pub(crate) words: Vec<String>,
    pub(crate) origin: Origin,
}

impl Line {
    pub(crate) fn word(&self, i: usize) -> &str {
        self.words.get(i).map_or("", String::as_str)
    }

    /// The line as written (words joined by one space).
    pub(crate) fn text(&self) -> String {
        self.words.join(" ")
    }
}

/// Reads and parses the HAProxy config at `path`.
pub(crate) fn parse_file(path: &Path) -> Result<Vec<Section>, ParseError> {
    let text = read_text(path)?;
    parse_str(&text, path)
}

/// Parses HAProxy config text.
pub(crate) fn parse_str(text: &str, file: &Path) -> Result<Vec<Section>, ParseError> {
    let file: Arc<Path> = Arc::from(file);
    let mut sections: Vec<Section> = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let number = index + 1;
        let fail = |message: String| ParseError {
            file: file.to_path_buf(),
            line: number,
            message,
        };
        if raw.len() > MAX_LINE {
            return Err(fail(format!("line longer than {MAX_LINE} bytes")));
        }
        let words = split(raw).map_err(fail)?;
        let Some(first) = words.first() else {
            continue;
        };
        let origin = Origin::new(&file, number);
        if SECTIONS.contains(&first.as_str()) {
            sections.push(Section {
                kind: first.clone(),
                args: words[1..].to_vec(),
                origin,
                lines: Vec::new(),
            });
            continue;
        }
        match sections.last_mut() {
            Some(section) => section.lines.push(Line { words, origin }),
            None => {
                return Err(fail(format!(
                    "unknown keyword '{first}' out of section (a config starts with global, defaults, frontend, backend or listen)"
                )));
            }
        }
    }
    Ok(sections)
}

/// Splits one line into words; a comment ends it.
fn split(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '#' => break,
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some('t') => word.push('\t'),
                    Some('r') => word.push('\r'),
                    Some('n') => word.push('\n'),
                    Some(other) => word.push(other),
                    None => word.push('\\'),
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(ch) => word.push(ch),
                        None => return Err("unmatched quote (')".to_owned()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some('t') => word.push('\t'),
                            Some('r') => word.push('\r'),
                            Some('n') => word.push('\n'),
                            Some(ch) => word.push(ch),
                            None => return Err("unmatched quote (\")".to_owned()),
                        },
                        Some(ch) => word.push(ch),
                        None => return Err("unmatched quote (\")".to_owned()),
                    }
                }
            }
            other => {
                in_word = true;
                word.push(other);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<Section>, ParseError> {
        parse_str(text, Path::new("h.cfg"))
    }

    #[test]
    fn sections_and_lines_keep_their_lines() {
        let text = "# top\nglobal\n    maxconn 100\n\ndefaults\n  mode http\n  timeout server 30s # comment\nfrontend web\n  bind 127.0.0.1:80\n  use_backend api if { path_beg /api }\nbackend api\n  server a1 127.0.0.1:3000 check inter 2s\n";
        let sections = parse(text).expect("parses");
        let kinds: Vec<&str> = sections.iter().map(|s| s.kind.as_str()).collect();
        assert_eq!(kinds, ["global", "defaults", "frontend", "backend"]);
        assert_eq!(sections[2].name(), "web");
        assert_eq!(sections[2].origin.line, 8);
        assert_eq!(sections[1].lines[1].words, ["timeout", "server", "30s"]);
        assert_eq!(sections[1].lines[1].origin.to_string(), "h.cfg:7");
        assert_eq!(
            sections[2].lines[1].text(),
            "use_backend api if { path_beg /api }"
        );
        assert_eq!(sections[3].lines[0].word(2), "127.0.0.1:3000");
    }

    #[test]
    fn quotes_and_escapes() {
        let sections =
            parse("global\n a \"x y\" 'q # r' b\\ c \"e\\\"s\" d\\#e #c\n").expect("parses");
        assert_eq!(
            sections[0].lines[0].words,
            ["a", "x y", "q # r", "b c", "e\"s", "d#e"]
        );
    }

    #[test]
    fn errors_name_the_line() {
        let err = parse("mode http\n").expect_err("out of section");
        assert_eq!(err.line, 1);
        assert!(err.message.contains("out of section"), "{err}");
        let err = parse("global\n\n a \"open\n").expect_err("quote");
        assert_eq!(err.line, 3);
        assert!(err.message.contains("unmatched quote"), "{err}");
    }

    #[test]
    fn hostile_input_never_panics() {
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let alphabet = b"global backend \n\"'\\# {}\x00\xff";
        for _ in 0..2000 {
            let mut bytes = Vec::new();
            for _ in 0..(seed % 80) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                bytes.push(alphabet[(seed % alphabet.len() as u64) as usize]);
            }
            let _ = parse(&String::from_utf8_lossy(&bytes));
        }
        let long = format!("global\n{}\n", "a".repeat(MAX_LINE + 1));
        assert!(parse(&long).is_err());
    }
}
