//! RESP2, the Redis protocol, as far as the limit store needs it: commands out (arrays of bulk
//! strings) and replies in. The parser takes whatever bytes arrive and never panics: a reply
//! that is malformed, nested too deep or announces more than [`MAX_BULK`] bytes or
//! [`MAX_ELEMENTS`] elements is an error, and the connection is dropped.

use std::fmt;

/// A bulk string larger than this is not a reply to anything the store sends.
pub const MAX_BULK: usize = 1 << 20;
/// Nor an array longer than this.
pub const MAX_ELEMENTS: usize = 1024;
/// Nor nesting deeper than this.
const MAX_DEPTH: usize = 8;
/// A status or error line longer than this is not Redis talking.
const MAX_LINE: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Status(String),
    Error(String),
    Int(i64),
    /// `None`: the null bulk string (`$-1`).
    Bulk(Option<Vec<u8>>),
    /// `None`: the null array (`*-1`).
    Array(Option<Vec<Reply>>),
}

/// What the bytes received are not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError(pub String);

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed reply: {}", self.0)
    }
}

/// Appends one command to `out`.
pub fn encode(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

/// The first reply in `buf` and the bytes it took; `Ok(None)` when more bytes are needed.
pub fn parse(buf: &[u8]) -> Result<Option<(Reply, usize)>, ProtocolError> {
    parse_at(buf, 0, 0)
}

fn parse_at(buf: &[u8], at: usize, depth: usize) -> Result<Option<(Reply, usize)>, ProtocolError> {
    if depth > MAX_DEPTH {
        return Err(ProtocolError("nested too deep".into()));
    }
    let Some(&kind) = buf.get(at) else {
        return Ok(None);
    };
    let Some((line, next)) = line(buf, at + 1)? else {
        return Ok(None);
    };
    match kind {
        b'+' => Ok(Some((Reply::Status(text(line)), next))),
        b'-' => Ok(Some((Reply::Error(text(line)), next))),
        b':' => Ok(Some((Reply::Int(int(line)?), next))),
        b'$' => {
            let len = int(line)?;
            if len == -1 {
                return Ok(Some((Reply::Bulk(None), next)));
            }
            let len = usize::try_from(len)
                .ok()
                .filter(|len| *len <= MAX_BULK)
                .ok_or_else(|| ProtocolError(format!("bulk length {len}")))?;
            let Some(end) = next.checked_add(len) else {
                return Err(ProtocolError("bulk length overflows".into()));
            };
            if buf.len() < end + 2 {
                return Ok(None);
            }
            if &buf[end..end + 2] != b"\r\n" {
                return Err(ProtocolError("bulk string not followed by CRLF".into()));
            }
            Ok(Some((Reply::Bulk(Some(buf[next..end].to_vec())), end + 2)))
        }
        b'*' => {
            let len = int(line)?;
            if len == -1 {
                return Ok(Some((Reply::Array(None), next)));
            }
            let len = usize::try_from(len)
                .ok()
                .filter(|len| *len <= MAX_ELEMENTS)
                .ok_or_else(|| ProtocolError(format!("array length {len}")))?;
            let mut items = Vec::with_capacity(len.min(16));
            let mut at = next;
            for _ in 0..len {
                let Some((item, after)) = parse_at(buf, at, depth + 1)? else {
                    return Ok(None);
                };
                items.push(item);
                at = after;
            }
            Ok(Some((Reply::Array(Some(items)), at)))
        }
        other => Err(ProtocolError(format!(
            "unknown reply type byte 0x{other:02x}"
        ))),
    }
}

/// The line starting at `at` (without CRLF) and where the next one starts.
fn line(buf: &[u8], at: usize) -> Result<Option<(&[u8], usize)>, ProtocolError> {
    let rest = buf.get(at..).unwrap_or_default();
    match rest.windows(2).position(|w| w == b"\r\n") {
        Some(end) if end > MAX_LINE => Err(ProtocolError("line too long".into())),
        Some(end) => Ok(Some((&rest[..end], at + end + 2))),
        None if rest.len() > MAX_LINE => Err(ProtocolError("line too long".into())),
        None => Ok(None),
    }
}

fn text(line: &[u8]) -> String {
    String::from_utf8_lossy(line).into_owned()
}

fn int(line: &[u8]) -> Result<i64, ProtocolError> {
    std::str::from_utf8(line)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| ProtocolError(format!("{:?} is not an integer", text(line))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_arrays_of_bulk_strings() {
        let mut out = Vec::new();
        encode(&mut out, &[b"GET", b"k\r\n"]);
        assert_eq!(out, b"*2\r\n$3\r\nGET\r\n$3\r\nk\r\n\r\n");
    }

    #[test]
    fn every_reply_type() {
        let cases: &[(&[u8], Reply)] = &[
            (b"+OK\r\n", Reply::Status("OK".into())),
            (
                b"-NOSCRIPT No matching script\r\n",
                Reply::Error("NOSCRIPT No matching script".into()),
            ),
            (b":-42\r\n", Reply::Int(-42)),
            (b"$3\r\na\r\n\r\n", Reply::Bulk(Some(b"a\r\n".to_vec()))),
            (b"$-1\r\n", Reply::Bulk(None)),
            (b"*-1\r\n", Reply::Array(None)),
            (
                b"*3\r\n:1\r\n:0\r\n$0\r\n\r\n",
                Reply::Array(Some(vec![
                    Reply::Int(1),
                    Reply::Int(0),
                    Reply::Bulk(Some(vec![])),
                ])),
            ),
        ];
        for (bytes, reply) in cases {
            assert_eq!(
                parse(bytes).unwrap(),
                Some((reply.clone(), bytes.len())),
                "{bytes:?}"
            );
            // Every prefix is incomplete, never an error or a wrong reply.
            for cut in 0..bytes.len() {
                assert_eq!(parse(&bytes[..cut]).unwrap(), None, "{:?}", &bytes[..cut]);
            }
        }
        // Two pipelined replies: the first and its length.
        assert_eq!(parse(b":1\r\n:2\r\n").unwrap(), Some((Reply::Int(1), 4)));
    }

    #[test]
    fn hostile_replies_are_errors() {
        let deep = "*1\r\n".repeat(20) + ":1\r\n";
        let long_line = format!("+{}", "a".repeat(MAX_LINE + 10));
        for bad in [
            &b"?\r\n"[..],
            b":12x\r\n",
            b":99999999999999999999999\r\n",
            b"$-2\r\n",
            b"$9999999999\r\n",
            b"$18446744073709551615\r\n",
            b"$2\r\nabcd",
            b"*-5\r\n",
            b"*100000\r\n",
            b"*2\r\n?\r\n",
            deep.as_bytes(),
            long_line.as_bytes(),
        ] {
            assert!(
                parse(bad).is_err(),
                "{:?} was accepted",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A deterministic walk over many short byte strings built from RESP's own characters.
        let alphabet = b"+-:$*\r\n0123-9aZ";
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..200_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = (state % 24) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|i| alphabet[((state >> (i % 8 * 8)) as usize + i) % alphabet.len()])
                .collect();
            let _ = parse(&bytes);
        }
    }
}
