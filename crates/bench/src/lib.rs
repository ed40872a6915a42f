//! Small helpers shared by the failover benchmark tools (`failover-backend`, `failover-load`):
//! command-line parsing, durations written like `"500ms"` / `"20s"`, and HTTP/1.1 message
//! framing. std only; both tools are deliberately independent of the proxy they measure.

use std::time::Duration;

/// Parses `"250ms"`, `"1.5s"`, `"20s"`, `"2m"` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60.0)
    } else {
        (text, 1.0)
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (write it like 500ms, 20s or 2m)"))?;
    if !value.is_finite() || value < 0.0 {
        return Err(format!("{text:?} is not a duration"));
    }
    Ok(Duration::from_secs_f64(value * scale))
}

/// `--name value` / `--name=value` arguments; every option takes a value.
#[derive(Debug)]
pub struct Args {
    program: &'static str,
    pairs: Vec<(String, String)>,
}

impl Args {
    /// Parses `std::env::args()`; `known` lists the accepted option names (without `--`).
    /// Prints `usage` and exits 0 on `-h`/`--help`, exits 2 on anything unknown.
    pub fn parse(program: &'static str, known: &[&str], usage: &str) -> Self {
        let mut pairs = Vec::new();
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            if arg == "-h" || arg == "--help" {
                print!("{usage}");
                std::process::exit(0);
            }
            let Some(name) = arg.strip_prefix("--") else {
                fail(program, &format!("unexpected argument {arg:?}\n{usage}"));
            };
            let (name, value) = match name.split_once('=') {
                Some((n, v)) => (n.to_owned(), v.to_owned()),
                None => {
                    let Some(v) = args.next() else {
                        fail(program, &format!("--{name} needs a value"));
                    };
                    (name.to_owned(), v)
                }
            };
            if !known.contains(&name.as_str()) {
                fail(program, &format!("unknown option --{name}\n{usage}"));
            }
            pairs.push((name, value));
        }
        Self { program, pairs }
    }

    /// The last value given for `--name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn required(&self, name: &str) -> &str {
        self.get(name)
            .unwrap_or_else(|| fail(self.program, &format!("--{name} is required")))
    }

    pub fn duration(&self, name: &str, default: Duration) -> Duration {
        match self.get(name) {
            None => default,
            Some(v) => {
                parse_duration(v).unwrap_or_else(|e| fail(self.program, &format!("--{name}: {e}")))
            }
        }
    }

    pub fn number<T: std::str::FromStr>(&self, name: &str, default: T) -> T {
        match self.get(name) {
            None => default,
            Some(v) => v.parse().unwrap_or_else(|_| {
                fail(self.program, &format!("--{name}: {v:?} is not a number"))
            }),
        }
    }
}

/// Prints `program: message` and exits with status 2.
pub fn fail(program: &str, message: &str) -> ! {
    eprintln!("{program}: {message}");
    std::process::exit(2)
}

/// Where the header section of the message at the start of `buf` ends (just after the blank
/// line), or `None` if it is not complete yet.
pub fn header_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

/// The value of header `name` (ASCII case-insensitive) in a header section, trimmed.
pub fn header_value<'a>(head: &'a [u8], name: &str) -> Option<&'a [u8]> {
    head.split(|&b| b == b'\n').skip(1).find_map(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let colon = line.iter().position(|&b| b == b':')?;
        line[..colon]
            .eq_ignore_ascii_case(name.as_bytes())
            .then(|| line[colon + 1..].trim_ascii())
    })
}

/// Whether a comma-separated header value contains `token` (ASCII case-insensitive).
pub fn has_token(value: &[u8], token: &str) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// `Content-Length`, if present and valid.
pub fn content_length(head: &[u8]) -> Option<usize> {
    std::str::from_utf8(header_value(head, "content-length")?)
        .ok()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("20s"), Ok(Duration::from_secs(20)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn headers() {
        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nconnection: Keep-Alive, close\r\n\r\n";
        assert_eq!(header_end(head), Some(head.len()));
        assert_eq!(content_length(head), Some(3));
        assert!(has_token(
            header_value(head, "Connection").unwrap(),
            "close"
        ));
        assert_eq!(header_value(head, "x-missing"), None);
    }
}
