//! nginx config files: the grammar of `ngx_conf_file.c` (directives ending in `;`, blocks in
//! `{}`, `#` comments, `"` and `'` quoting, backslash escapes, `${var}` kept as text) and
//! `include` followed: globs, relative paths against the main config's directory (nginx's
//! `conf_prefix` when started with `-c FILE`), cycles refused.
//!
//! Variables (`$host`) are left as text: what they mean is the importer's question.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{Origin, ParseError, read_text};

/// One directive: `name args...;` or `name args... { block }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Directive {
    pub(crate) name: String,
    pub(crate) args: Vec<String>,
    pub(crate) origin: Origin,
    /// `Some` for a block directive (`http`, `server`, `location`, `upstream`, ...).
    pub(crate) block: Option<Vec<Directive>>,
}

impl Directive {
    /// The first argument, or "".
    pub(crate) fn arg(&self, i: usize) -> &str {
        self.args.get(i).map_or("", String::as_str)
    }

    /// The directive as written (without its block), e.g. `proxy_pass http://app`.
    pub(crate) fn text(&self) -> String {
        if self.args.is_empty() {
            self.name.clone()
        } else {
            format!("{} {}", self.name, self.args.join(" "))
        }
    }

    /// The directives of the block (empty for a simple directive).
    pub(crate) fn children(&self) -> &[Directive] {
        self.block.as_deref().unwrap_or(&[])
    }
}

/// Blocks nested deeper than this are refused (nginx has no limit, but no real config comes
/// close, and a hostile one must not exhaust the stack).
const MAX_DEPTH: usize = 64;
/// Includes nested deeper than this are refused.
const MAX_INCLUDE_DEPTH: usize = 16;
/// At most this many files are read for one config.
const MAX_FILES: usize = 1024;

/// Parses the nginx config at `path` with every `include` replaced by the directives of the
/// files it names. Relative include paths are resolved against `prefix` (nginx's conf prefix),
/// by default the directory of `path`.
pub(crate) fn parse_file(path: &Path, prefix: Option<&Path>) -> Result<Vec<Directive>, ParseError> {
    let prefix = match prefix {
        Some(p) => p.to_path_buf(),
        None => path
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf),
    };
    let mut reader = Includes {
        prefix,
        stack: Vec::new(),
        files: 0,
    };
    reader.read(path)
}

/// Parses one file's text, without following `include`s (they stay directives).
pub(crate) fn parse_str(text: &str, file: &Path) -> Result<Vec<Directive>, ParseError> {
    let file: Arc<Path> = Arc::from(file);
    let tokens = tokenize(text, &file)?;
    let mut pos = 0;
    let directives = block(&tokens, &mut pos, &file, 0)?;
    match tokens.get(pos) {
        None => Ok(directives),
        Some(token) => Err(error(&file, token.line, "unexpected \"}\"")),
    }
}

// === include ===

struct Includes {
    prefix: PathBuf,
    /// The files being read, outermost first (canonical paths), to refuse cycles.
    stack: Vec<PathBuf>,
    files: usize,
}

impl Includes {
    fn read(&mut self, path: &Path) -> Result<Vec<Directive>, ParseError> {
        let canonical = std::fs::canonicalize(path).map_err(|e| ParseError {
            file: path.to_path_buf(),
            line: 0,
            message: format!("cannot read it: {e}"),
        })?;
        if self.stack.contains(&canonical) {
            return Err(ParseError {
                file: path.to_path_buf(),
                line: 0,
                message: "include cycle: the file includes itself (through the includes it names)"
                    .to_owned(),
            });
        }
        self.files += 1;
        if self.files > MAX_FILES || self.stack.len() >= MAX_INCLUDE_DEPTH {
            return Err(ParseError {
                file: path.to_path_buf(),
                line: 0,
                message: format!(
                    "too many includes (more than {MAX_FILES} files or nested {MAX_INCLUDE_DEPTH} deep)"
                ),
            });
        }
        let text = read_text(path)?;
        let directives = parse_str(&text, path)?;
        self.stack.push(canonical);
        let expanded = self.expand(directives);
        self.stack.pop();
        expanded
    }

    /// Replaces each `include` (at any depth) by the directives of the files it names.
    fn expand(&mut self, directives: Vec<Directive>) -> Result<Vec<Directive>, ParseError> {
        let mut out = Vec::with_capacity(directives.len());
        for mut directive in directives {
            if directive.name == "include" && directive.block.is_none() {
                if directive.args.len() != 1 {
                    return Err(ParseError {
                        file: directive.origin.file.to_path_buf(),
                        line: directive.origin.line,
                        message: "\"include\" takes one file name or glob".to_owned(),
                    });
                }
                for file in self.resolve(&directive)? {
                    out.extend(self.read(&file)?);
                }
                continue;
            }
            if let Some(children) = directive.block.take() {
                directive.block = Some(self.expand(children)?);
            }
            out.push(directive);
        }
        Ok(out)
    }

    /// The files an `include` names: one file (which must exist), or the matches of a glob
    /// (sorted; none is fine, as for nginx).
    fn resolve(&self, include: &Directive) -> Result<Vec<PathBuf>, ParseError> {
        let written = Path::new(include.arg(0));
        let path = if written.is_absolute() {
            written.to_path_buf()
        } else {
            self.prefix.join(written)
        };
        let text = path.to_string_lossy();
        if !text.contains(['*', '?', '[']) {
            if !path.exists() {
                return Err(ParseError {
                    file: include.origin.file.to_path_buf(),
                    line: include.origin.line,
                    message: format!("include {}: no such file", path.display()),
                });
            }
            return Ok(vec![path]);
        }
        let mut found = Vec::new();
        glob(&path, &mut found);
        found.sort();
        Ok(found)
    }
}

/// The files matching `pattern`, whose components may hold `*`, `?` and `[...]`.
fn glob(pattern: &Path, found: &mut Vec<PathBuf>) {
    let mut candidates = vec![PathBuf::new()];
    let components: Vec<_> = pattern.components().collect();
    for (i, component) in components.iter().enumerate() {
        let last = i + 1 == components.len();
        let part = component.as_os_str().to_string_lossy();
        let mut next = Vec::new();
        for base in candidates {
            if !part.contains(['*', '?', '[']) {
                next.push(base.join(component.as_os_str()));
                continue;
            }
            let dir = if base.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                base.clone()
            };
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                // As glob(3): a leading dot is matched only by a leading dot.
                if name.starts_with('.') && !part.starts_with('.') {
                    continue;
                }
                if wildcard(part.as_bytes(), name.as_bytes()) {
                    next.push(base.join(&name));
                }
            }
        }
        candidates = next;
        if !last {
            candidates.retain(|p| p.is_dir());
        }
    }
    found.extend(candidates.into_iter().filter(|p| p.is_file()));
}

/// Shell wildcard match of one path component: `*`, `?`, `[abc]`, `[a-z]`, `[!a]`.
fn wildcard(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    let (mut star, mut star_n) = (None, 0);
    while n < name.len() {
        if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    star = Some(p);
                    star_n = n;
                    p += 1;
                    continue;
                }
                b'?' => {
                    p += 1;
                    n += 1;
                    continue;
                }
                b'[' => {
                    if let Some((matched, len)) = class(&pattern[p..], name[n])
                        && matched
                    {
                        p += len;
                        n += 1;
                        continue;
                    }
                }
                c if c == name[n] => {
                    p += 1;
                    n += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some(s) => {
                p = s + 1;
                star_n += 1;
                n = star_n;
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// A `[...]` class at the start of `pattern`: whether `c` is in it, and the class's length.
fn class(pattern: &[u8], c: u8) -> Option<(bool, usize)> {
    let mut i = 1;
    let negate = matches!(pattern.get(i), Some(b'!' | b'^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    while i < pattern.len() {
        let lo = pattern[i];
        if lo == b']' && !first {
            return Some((matched != negate, i + 1));
        }
        first = false;
        if pattern.get(i + 1) == Some(&b'-') && pattern.get(i + 2).is_some_and(|&h| h != b']') {
            let hi = pattern[i + 2];
            matched |= (lo..=hi).contains(&c);
            i += 3;
        } else {
            matched |= lo == c;
            i += 1;
        }
    }
    None
}

// === tokens ===

#[derive(Debug, PartialEq, Eq)]
enum Kind {
    Word(String),
    Semicolon,
    Open,
    Close,
}

#[derive(Debug)]
struct Token {
    kind: Kind,
    line: usize,
}

fn error(file: &Path, line: usize, message: impl Into<String>) -> ParseError {
    ParseError {
        file: file.to_path_buf(),
        line,
        message: message.into(),
    }
}

/// Splits the text into words and `;`, `{`, `}`, as `ngx_conf_read_token` does.
fn tokenize(text: &str, file: &Path) -> Result<Vec<Token>, ParseError> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\n' => {
                line += 1;
                i += 1;
            }
            c if c.is_whitespace() => i += 1,
            '#' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            ';' | '{' | '}' => {
                let kind = match c {
                    ';' => Kind::Semicolon,
                    '{' => Kind::Open,
                    _ => Kind::Close,
                };
                tokens.push(Token { kind, line });
                i += 1;
            }
            '"' | '\'' => {
                let start = line;
                let mut word = String::new();
                i += 1;
                loop {
                    let Some(&ch) = chars.get(i) else {
                        return Err(error(
                            file,
                            start,
                            format!(
                                "unexpected end of file: the {c} quote opened here is not closed"
                            ),
                        ));
                    };
                    i += 1;
                    if ch == c {
                        break;
                    }
                    if ch == '\n' {
                        line += 1;
                    }
                    if ch == '\\'
                        && let Some(&next) = chars.get(i)
                    {
                        i += 1;
                        if next == '\n' {
                            line += 1;
                        }
                        unescape(&mut word, next);
                        continue;
                    }
                    word.push(ch);
                }
                // nginx wants a separator right after a closing quote.
                if let Some(&next) = chars.get(i)
                    && !(next.is_whitespace() || matches!(next, ';' | '{' | '}'))
                {
                    return Err(error(
                        file,
                        line,
                        format!("unexpected \"{next}\" after a quoted word"),
                    ));
                }
                tokens.push(Token {
                    kind: Kind::Word(word),
                    line: start,
                });
            }
            _ => {
                let start = line;
                let mut word = String::new();
                while let Some(&ch) = chars.get(i) {
                    if ch.is_whitespace() || matches!(ch, ';' | '{' | '}') {
                        // `${var}`: the braces belong to the variable.
                        if ch == '{' && word.ends_with('$') {
                            while let Some(&v) = chars.get(i) {
                                word.push(v);
                                i += 1;
                                if v == '}' || v == '\n' {
                                    break;
                                }
                            }
                            continue;
                        }
                        break;
                    }
                    i += 1;
                    if ch == '\\'
                        && let Some(&next) = chars.get(i)
                    {
                        i += 1;
                        if next == '\n' {
                            line += 1;
                        }
                        unescape(&mut word, next);
                        continue;
                    }
                    word.push(ch);
                }
                tokens.push(Token {
                    kind: Kind::Word(word),
                    line: start,
                });
            }
        }
    }
    Ok(tokens)
}

/// What `\c` becomes: nginx turns `\"`, `\'`, `\\` into the character and `\t`, `\r`, `\n`
/// into the control character; any other pair is kept as written.
fn unescape(word: &mut String, c: char) {
    match c {
        '"' | '\'' | '\\' => word.push(c),
        't' => word.push('\t'),
        'r' => word.push('\r'),
        'n' => word.push('\n'),
        other => {
            word.push('\\');
            word.push(other);
        }
    }
}

// === directives ===

/// The directives up to the `}` that ends this block (left unconsumed) or the end of input.
fn block(
    tokens: &[Token],
    pos: &mut usize,
    file: &Arc<Path>,
    depth: usize,
) -> Result<Vec<Directive>, ParseError> {
    if depth > MAX_DEPTH {
        let line = tokens.get(*pos).map_or(0, |t| t.line);
        return Err(error(
            file,
            line,
            format!("blocks nested more than {MAX_DEPTH} deep"),
        ));
    }
    let mut directives = Vec::new();
    while let Some(token) = tokens.get(*pos) {
        let line = token.line;
        let name = match &token.kind {
            Kind::Close => return Ok(directives),
            Kind::Word(name) => name.clone(),
            Kind::Semicolon => return Err(error(file, line, "unexpected \";\"")),
            Kind::Open => return Err(error(file, line, "unexpected \"{\"")),
        };
        *pos += 1;
        let mut args = Vec::new();
        loop {
            let Some(token) = tokens.get(*pos) else {
                return Err(error(
                    file,
                    line,
                    format!("unexpected end of file: \"{name}\" has no \";\" or block"),
                ));
            };
            *pos += 1;
            match &token.kind {
                Kind::Word(word) => args.push(word.clone()),
                Kind::Semicolon => {
                    directives.push(Directive {
                        name,
                        args,
                        origin: Origin::new(file, line),
                        block: None,
                    });
                    break;
                }
                Kind::Open => {
                    let children = block(tokens, pos, file, depth + 1)?;
                    match tokens.get(*pos) {
                        Some(Token {
                            kind: Kind::Close, ..
                        }) => *pos += 1,
                        _ => {
                            return Err(error(
                                file,
                                line,
                                format!(
                                    "unexpected end of file, expecting \"}}\" to close \"{name}\" opened here"
                                ),
                            ));
                        }
                    }
                    directives.push(Directive {
                        name,
                        args,
                        origin: Origin::new(file, line),
                        block: Some(children),
                    });
                    break;
                }
                Kind::Close => {
                    return Err(error(
                        file,
                        token.line,
                        format!("unexpected \"}}\": \"{name}\" is not terminated by \";\""),
                    ));
                }
            }
        }
    }
    Ok(directives)
}

#[cfg(test)]
#[path = "nginx_tests.rs"]
mod tests;
