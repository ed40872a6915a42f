//! The path a request is routed by: its target's path normalized as RFC 3986 §6.2.2 says,
//! so that every spelling of a path that a server behind gatehouse would read as `/login`
//! takes `/login`'s route (its limits, its cache, its maintenance), never a laxer one.
//!
//! - percent-encoded unreserved characters are decoded (`/%61dmin` is `/admin`), and the hex
//!   digits of the other percent-encodings are uppercased (`%c3%a9` is `%C3%A9`);
//! - dot segments are removed (`/public/../admin` is `/admin`), `%2E` counting as a dot;
//! - empty segments are dropped (`//admin` is `/admin`), as nginx merges slashes.
//!
//! A path whose `..` climbs above the root is refused (nginx answers it 400 too). The request
//! goes upstream as it came: only routing reads the normalized path. Most paths need none of
//! this, and are checked by one pass over their bytes without a copy.

use std::borrow::Cow;

/// A path whose `..` segments climb above the root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AboveRoot;

/// `path` as routing reads it (see the module's doc). Paths that do not start with `/` are
/// returned as they are.
pub fn normalize(path: &str) -> Result<Cow<'_, str>, AboveRoot> {
    if !path.starts_with('/') || is_normal(path.as_bytes()) {
        return Ok(Cow::Borrowed(path));
    }
    let decoded = decode_unreserved(path);
    let mut segments: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    for segment in decoded[1..].split('/') {
        trailing_slash = true;
        match segment {
            "" | "." => {}
            ".." => {
                if segments.pop().is_none() {
                    return Err(AboveRoot);
                }
            }
            _ => {
                segments.push(segment);
                trailing_slash = false;
            }
        }
    }
    let mut out = String::with_capacity(decoded.len());
    for segment in &segments {
        out.push('/');
        out.push_str(segment);
    }
    if trailing_slash || out.is_empty() {
        out.push('/');
    }
    Ok(Cow::Owned(out))
}

/// Whether `path` is already normal: no `%`, no `//`, and no segment starting with a dot that
/// is a dot segment.
fn is_normal(path: &[u8]) -> bool {
    let mut previous = 0u8;
    for (i, &b) in path.iter().enumerate() {
        match b {
            b'%' => return false,
            b'/' if previous == b'/' => return false,
            b'.' if previous == b'/' => {
                // `/.` or `/..` as a whole segment.
                let rest = &path[i + 1..];
                let dot_segment = matches!(rest, [] | [b'/', ..] | [b'.'] | [b'.', b'/', ..]);
                if dot_segment {
                    return false;
                }
            }
            _ => {}
        }
        previous = b;
    }
    true
}

/// Decodes percent-encoded unreserved characters (RFC 3986 §2.3) and uppercases the hex of
/// the rest; a `%` not followed by two hex digits is left as it is.
fn decode_unreserved(path: &str) -> Cow<'_, str> {
    if !path.contains('%') {
        return Cow::Borrowed(path);
    }
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let (Some(high), Some(low)) = (hex(bytes.get(i + 1)), hex(bytes.get(i + 2)))
        {
            let decoded = high * 16 + low;
            if decoded.is_ascii_alphanumeric() || matches!(decoded, b'-' | b'.' | b'_' | b'~') {
                out.push(char::from(decoded));
            } else {
                out.push('%');
                out.push(char::from(bytes[i + 1].to_ascii_uppercase()));
                out.push(char::from(bytes[i + 2].to_ascii_uppercase()));
            }
            i += 3;
            continue;
        }
        // Copy up to the next `%` (a char boundary: `%` is ASCII).
        let next = path[i + 1..].find('%').map_or(bytes.len(), |at| i + 1 + at);
        out.push_str(&path[i..next]);
        i = next;
    }
    Cow::Owned(out)
}

fn hex(digit: Option<&u8>) -> Option<u8> {
    let digit = *digit?;
    char::from(digit).to_digit(16).map(|value| value as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routed(path: &str) -> Result<String, AboveRoot> {
        normalize(path).map(Cow::into_owned)
    }

    #[test]
    fn normal_paths_are_borrowed_as_they_are() {
        for path in [
            "/",
            "/a",
            "/a/b/",
            "/a.b/c..d/.e/f.",
            "/.well-known/x",
            "/a?b",
            "*",
        ] {
            assert!(
                matches!(normalize(path), Ok(Cow::Borrowed(p)) if p == path),
                "{path:?}"
            );
        }
    }

    #[test]
    fn every_spelling_of_a_path_routes_as_that_path() {
        for (path, expected) in [
            ("/public/../admin", "/admin"),
            ("/public/./../admin/", "/admin/"),
            ("/a/./b", "/a/b"),
            ("/a/b/..", "/a/"),
            ("/a/b/.", "/a/b/"),
            ("/a/..", "/"),
            ("/..a/b", "/..a/b"),
            ("//admin", "/admin"),
            ("/a//b///c", "/a/b/c"),
            ("/%61dmin", "/admin"),
            ("/public/%2e%2E/admin", "/admin"),
            ("/public/%2e./admin", "/admin"),
            ("/caf%c3%a9", "/caf%C3%A9"),
            ("/a%2fb", "/a%2Fb"),
            ("/%7Euser", "/~user"),
            ("/100%", "/100%"),
            ("/%zz", "/%zz"),
            ("/é%41", "/éA"),
        ] {
            assert_eq!(routed(path).as_deref(), Ok(expected), "{path:?}");
        }
    }

    #[test]
    fn climbing_above_the_root_is_refused() {
        for path in ["/..", "/../etc/passwd", "/a/../../b", "/%2e%2e/x", "//../x"] {
            assert_eq!(routed(path), Err(AboveRoot), "{path:?}");
        }
    }
}
