//! Small text helpers shared by the parsers: `key=value` fields (quoted or not) and the
//! server part of a URL.

/// The value of ` key=` in a `tracing` text line or an access line's tail: the last
/// occurrence (fields follow the free-text message), quoted (`"..."` with `\"` escapes) or up
/// to the next space.
pub(crate) fn field(line: &str, key: &str) -> Option<String> {
    let needle = format!(" {key}=");
    let start = line.rfind(&needle)? + needle.len();
    let rest = line.get(start..)?;
    if let Some(quoted) = rest.strip_prefix('"') {
        let mut value = String::new();
        let mut chars = quoted.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => value.push(chars.next()?),
                '"' => return Some(value),
                c => value.push(c),
            }
        }
        None
    } else {
        Some(rest.split(' ').next().unwrap_or_default().to_owned())
    }
}

/// The `key=value` fields of an access line's tail (custom nginx `log_format`s:
/// `us=502, 502 ua=127.0.0.1:1, 127.0.0.1:2 rt=0.001`): a value runs until the next token
/// that looks like `key=`, so nginx's `, ` and ` : ` separated lists stay whole.
pub(crate) fn tail_fields(tail: &str) -> Vec<(String, String)> {
    let mut fields: Vec<(String, String)> = Vec::new();
    for token in tail.split_whitespace() {
        let key_value = token.split_once('=').filter(|(k, _)| {
            !k.is_empty()
                && k.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'$')
        });
        match (key_value, fields.last_mut()) {
            (Some((key, value)), _) => {
                fields.push((key.trim_start_matches('$').to_owned(), unquote(value)));
            }
            (None, Some((_, value))) => {
                value.push(' ');
                value.push_str(&unquote(token));
            }
            (None, None) => {}
        }
    }
    fields
}

fn unquote(value: &str) -> String {
    value.trim_matches('"').to_owned()
}

/// `http://127.0.0.1:3000/path?q` → `127.0.0.1:3000`; a value without a scheme is kept up to
/// its first `/`.
pub(crate) fn server_of_url(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    // A unix socket: `unix:/run/app.sock:/path` (nginx ends the socket path with `:`).
    if let Some(socket) = rest.strip_prefix("unix:") {
        let path = socket.split(':').next().unwrap_or(socket);
        return format!("unix:{path}");
    }
    rest.split('/').next().unwrap_or(rest).to_owned()
}

/// The last entry of an nginx list value (`a, b : c`; `, ` between attempts, ` : ` between
/// internal redirects): the server that answered last.
pub(crate) fn last_of_list(value: &str) -> &str {
    let last = value.rsplit(", ").next().unwrap_or(value);
    last.rsplit(" : ").next().unwrap_or(last).trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_and_bare_fields() {
        let line = r#"x WARN t: msg kind="a \"b\"" pool=app attempt=1"#;
        assert_eq!(field(line, "kind").as_deref(), Some(r#"a "b""#));
        assert_eq!(field(line, "pool").as_deref(), Some("app"));
        assert_eq!(field(line, "attempt").as_deref(), Some("1"));
        assert_eq!(field(line, "missing"), None);
        assert_eq!(field(r#" k="unterminated"#, "k"), None);
    }

    #[test]
    fn tail_lists_stay_whole() {
        let f = tail_fields("us=502, 502 ua=127.0.0.1:1, 127.0.0.1:2 urt=0.000, 0.000 rt=0.000");
        assert_eq!(f[0], ("us".to_owned(), "502, 502".to_owned()));
        assert_eq!(f[1].1, "127.0.0.1:1, 127.0.0.1:2");
        assert_eq!(last_of_list(&f[1].1), "127.0.0.1:2");
        assert_eq!(f[3], ("rt".to_owned(), "0.000".to_owned()));
    }

    #[test]
    fn url_server() {
        assert_eq!(
            server_of_url("http://127.0.0.1:1/refused?q=1"),
            "127.0.0.1:1"
        );
        assert_eq!(server_of_url("https://dead/x"), "dead");
        assert_eq!(server_of_url("10.0.0.1:80"), "10.0.0.1:80");
        assert_eq!(server_of_url("http://[::1]:8080/x"), "[::1]:8080");
        assert_eq!(
            server_of_url("http://unix:/run/app.sock:/login?next=/"),
            "unix:/run/app.sock"
        );
        assert_eq!(
            server_of_url("fastcgi://unix:/run/php/php-fpm.sock:"),
            "unix:/run/php/php-fpm.sock"
        );
    }
}
