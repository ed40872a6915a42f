//! `gatehouse purge`: asks the running instance to drop cached responses with
//! `POST /cache/purge` on its admin listener (the address and token come from the config
//! file, as for `gatehouse reload`), and prints how many keys went.

use std::path::Path;
use std::process::ExitCode;

/// What to drop: exactly one of the three.
#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
pub(crate) struct PurgeArgs {
    /// One URL: `http://example.com/path?query` or `example.com/path` (the Host the clients
    /// send, port included if they send one).
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// Every URL starting with this: `http://example.com/static/` or `example.com/static/`.
    #[arg(long, value_name = "URL")]
    prefix: Option<String>,
    /// Every response whose `Surrogate-Key` or `Cache-Tag` lists this value.
    #[arg(long, value_name = "VALUE")]
    tag: Option<String>,
}

impl PurgeArgs {
    /// The admin path, with the value percent-encoded.
    fn path(&self) -> String {
        let (name, value) = match (&self.url, &self.prefix, &self.tag) {
            (Some(url), _, _) => ("url", url),
            (_, Some(prefix), _) => ("prefix", prefix),
            (_, _, Some(tag)) => ("tag", tag),
            _ => ("url", &String::new()),
        };
        format!("/cache/purge?{name}={}", encode(value))
    }
}

/// Percent-encodes everything but unreserved characters and `/` (RFC 3986 §2.3).
fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// 0 when the running gatehouse purged (even nothing), 1 when it could not be asked or refused.
pub(crate) fn run(path: Option<&Path>, args: &PurgeArgs) -> ExitCode {
    crate::reload::post(
        path,
        "purge",
        &args.path(),
        "so the admin address is not known",
        "",
    )
}

#[cfg(test)]
mod tests {
    use super::encode;

    #[test]
    fn values_are_percent_encoded() {
        assert_eq!(
            encode("example.com/a b?x=1&y"),
            "example.com/a%20b%3Fx%3D1%26y"
        );
        assert_eq!(encode("http://h/"), "http%3A//h/");
        assert_eq!(encode("é"), "%C3%A9");
    }
}
