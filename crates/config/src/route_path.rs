//! The path a request is routed by, and the form a route's `path` is written in: normalized as
//! RFC 3986 §6.2.2 says,
//! so that the usual other spellings of a path that a server behind gatehouse reads as `/login`
//! take `/login`'s route (its limits, its cache, its maintenance), never a laxer one:
//!
//! - percent-encoded unreserved characters are decoded (`/%61dmin` is `/admin`), and the hex
//!   digits of the other percent-encodings are uppercased (`%c3%a9` is `%C3%A9`);
//! - empty segments are dropped (`//admin` is `/admin`), as nginx merges slashes.
//!
//! Both only ever make a path match a longer prefix. Dot segments are another matter: servers
//! differ on whether `/admin/..` is `/` or still under `/admin`, so a path with a `.` or `..`
//! segment (`%2e` counting as a dot) is refused, as is a `%` not followed by two hex digits (RFC
//! 3986 §2.1). Browsers and HTTP clients resolve dot segments before they send a request. The
//! request goes upstream as it came: only routing reads the normalized path. Most paths need
//! none of this, and are checked by one pass over their bytes without a copy.

use std::borrow::Cow;

/// Why a path has no normal form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unroutable {
    /// A `.` or `..` segment.
    DotSegment,
    /// A `%` not followed by two hex digits.
    BadPercent,
}

impl Unroutable {
    /// Why, for the 400's log line.
    pub fn describe(self) -> &'static str {
        match self {
            Self::DotSegment => {
                "request path has a . or .. segment, which clients resolve before sending \
                 (RFC 3986 §5.2.4)"
            }
            Self::BadPercent => {
                "request path has a % not followed by two hex digits (RFC 3986 §2.1)"
            }
        }
    }
}

/// `path` as routing reads it (see the module's doc). Paths that do not start with `/` are
/// returned as they are.
pub fn normalize(path: &str) -> Result<Cow<'_, str>, Unroutable> {
    if !path.starts_with('/') || is_normal(path.as_bytes()) {
        return Ok(Cow::Borrowed(path));
    }
    let decoded = decode_unreserved(path)?;
    let mut out = String::with_capacity(decoded.len());
    for segment in decoded[1..].split('/') {
        match segment {
            "" => {}
            "." | ".." => return Err(Unroutable::DotSegment),
            _ => {
                out.push('/');
                out.push_str(segment);
            }
        }
    }
    if decoded.ends_with('/') || out.is_empty() {
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
/// the rest. Every `%` must start a triplet: decoding then never makes a new one, so the result
/// is its own normal form.
fn decode_unreserved(path: &str) -> Result<Cow<'_, str>, Unroutable> {
    if !path.contains('%') {
        return Ok(Cow::Borrowed(path));
    }
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let (Some(high), Some(low)) = (hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) else {
                return Err(Unroutable::BadPercent);
            };
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
        // Copy up to the next `%` (a char boundary: `%` is ASCII, and `i` is one too).
        let next = bytes[i + 1..]
            .iter()
            .position(|&b| b == b'%')
            .map_or(bytes.len(), |at| i + 1 + at);
        out.push_str(&path[i..next]);
        i = next;
    }
    Ok(Cow::Owned(out))
}

fn hex(digit: Option<&u8>) -> Option<u8> {
    let digit = *digit?;
    char::from(digit).to_digit(16).map(|value| value as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routed(path: &str) -> Result<String, Unroutable> {
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
            ("/..a/b", "/..a/b"),
            ("/a./b.", "/a./b."),
            ("//admin", "/admin"),
            ("/a//b///c", "/a/b/c"),
            ("/a//", "/a/"),
            ("//", "/"),
            ("/%61dmin", "/admin"),
            ("/caf%c3%a9", "/caf%C3%A9"),
            ("/a%2fb", "/a%2Fb"),
            ("/%7Euser", "/~user"),
            ("/é%41", "/éA"),
            ("/%41é%C3%A9é", "/Aé%C3%A9é"),
            ("/%25%2566", "/%25%2566"),
        ] {
            assert_eq!(routed(path).as_deref(), Ok(expected), "{path:?}");
        }
    }

    #[test]
    fn dot_segments_and_bad_percents_are_refused() {
        // Servers differ on what `/admin/..` is: no route is picked for it.
        for path in [
            "/..",
            "/.",
            "/admin/..",
            "/admin//..",
            "/admin/%2e%2E",
            "/public/../admin",
            "/./admin",
            "/a/./b",
            "/%2e/x",
        ] {
            assert_eq!(routed(path), Err(Unroutable::DotSegment), "{path:?}");
        }
        // With a lone `%` allowed, `/%%666` would decode to `/%%f6`, which reads differently.
        for path in ["/100%", "/%zz", "/%4", "/%%666", "/a%2", "/%4%41"] {
            assert_eq!(routed(path), Err(Unroutable::BadPercent), "{path:?}");
        }
    }
}
