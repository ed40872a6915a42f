//! `Accept-Encoding` (RFC 9110 §12.5.3): which of gatehouse's codings a client takes, with
//! q-values, `*` and `identity`. Malformed members are skipped, never a panic or an error: the
//! header comes from the network.

use gatehouse_config::Encoding;
use http::HeaderMap;
use http::header::{self, HeaderValue};

/// What one request's `Accept-Encoding` says, in thousandths (q=0.5 is 500).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Accepted {
    /// The request had an `Accept-Encoding` field.
    present: bool,
    gzip: Option<u16>,
    br: Option<u16>,
    zstd: Option<u16>,
    identity: Option<u16>,
    star: Option<u16>,
}

impl Accepted {
    /// Reads every `Accept-Encoding` line of `headers`.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let mut accepted = Self::default();
        for value in headers.get_all(header::ACCEPT_ENCODING) {
            accepted.present = true;
            accepted.read(value);
        }
        accepted
    }

    /// Parses `value` alone (for tests and the fuzz target).
    pub fn parse(value: &str) -> Self {
        let mut accepted = Self {
            present: true,
            ..Self::default()
        };
        if let Ok(value) = HeaderValue::from_str(value) {
            accepted.read(&value);
        }
        accepted
    }

    fn read(&mut self, value: &HeaderValue) {
        let Ok(text) = value.to_str() else {
            // Not visible ASCII: nothing in it can be read with confidence.
            return;
        };
        for member in text.split(',') {
            let mut parts = member.split(';');
            let coding = parts.next().unwrap_or("").trim();
            if coding.is_empty() {
                continue;
            }
            let mut q = Some(1000);
            for param in parts {
                let Some((name, value)) = param.split_once('=') else {
                    q = None;
                    break;
                };
                if name.trim().eq_ignore_ascii_case("q") {
                    q = qvalue(value.trim());
                }
            }
            // A member whose q cannot be read is ignored rather than guessed at.
            let Some(q) = q else { continue };
            let slot =
                if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
                    &mut self.gzip
                } else if coding.eq_ignore_ascii_case("br") {
                    &mut self.br
                } else if coding.eq_ignore_ascii_case("zstd") {
                    &mut self.zstd
                } else if coding.eq_ignore_ascii_case("identity") {
                    &mut self.identity
                } else if coding == "*" {
                    &mut self.star
                } else {
                    continue;
                };
            // Listed twice: the higher weight counts.
            *slot = Some(slot.map_or(q, |old| old.max(q)));
        }
    }

    /// The request had an `Accept-Encoding` field.
    pub fn present(&self) -> bool {
        self.present
    }

    /// The client's weight for `encoding`; 0 = not acceptable. Without the field, no coding is
    /// taken (RFC 9110 would allow any, but clients that send none expect none).
    pub fn weight(&self, encoding: Encoding) -> u16 {
        if !self.present {
            return 0;
        }
        let named = match encoding {
            Encoding::Gzip => self.gzip,
            Encoding::Brotli => self.br,
            Encoding::Zstd => self.zstd,
        };
        named.or(self.star).unwrap_or(0)
    }

    /// The client's weight for the unencoded response: acceptable unless `identity;q=0`, or
    /// `*;q=0` without `identity` listed (RFC 9110 §12.5.3).
    pub fn identity_weight(&self) -> u16 {
        match (self.identity, self.star) {
            (Some(q), _) => q,
            (None, Some(0)) => 0,
            // Identity is always acceptable otherwise; it ranks below any explicit choice.
            (None, _) => 1,
        }
    }

    /// The coding to send: the highest weight among `offered`, ties going to the earlier one
    /// (the server's preference). `None` = send the response as it is: nothing offered is
    /// acceptable, or the client ranks identity above every coding it takes.
    pub fn choose(&self, offered: &[Encoding]) -> Option<Encoding> {
        let mut best: Option<(Encoding, u16)> = None;
        for &encoding in offered {
            let q = self.weight(encoding);
            if q > 0 && best.is_none_or(|(_, b)| q > b) {
                best = Some((encoding, q));
            }
        }
        let (encoding, q) = best?;
        (q >= self.identity_weight()).then_some(encoding)
    }
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`, in thousandths.
fn qvalue(text: &str) -> Option<u16> {
    let (whole, fraction) = match text.split_once('.') {
        Some((w, f)) => (w, f),
        None => (text, ""),
    };
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut thousandths: u16 = 0;
    for (i, digit) in fraction.bytes().enumerate() {
        let place = [100, 10, 1][i];
        thousandths += u16::from(digit - b'0') * place;
    }
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Encoding::{Brotli, Gzip, Zstd};

    const ALL: &[Encoding] = &[Zstd, Brotli, Gzip];

    #[test]
    fn server_order_breaks_ties() {
        assert_eq!(Accepted::parse("gzip, br, zstd").choose(ALL), Some(Zstd));
        assert_eq!(Accepted::parse("gzip, br").choose(ALL), Some(Brotli));
        assert_eq!(Accepted::parse("gzip").choose(ALL), Some(Gzip));
        assert_eq!(
            Accepted::parse("gzip, br").choose(&[Gzip, Brotli]),
            Some(Gzip)
        );
    }

    #[test]
    fn higher_q_wins_over_server_order() {
        assert_eq!(
            Accepted::parse("zstd;q=0.5, br;q=0.8, gzip;q=0.9").choose(ALL),
            Some(Gzip)
        );
        assert_eq!(
            Accepted::parse("gzip;q=1.0, br; q=0.999").choose(ALL),
            Some(Gzip)
        );
    }

    #[test]
    fn q_zero_excludes() {
        assert_eq!(
            Accepted::parse("zstd;q=0, br;q=0, gzip").choose(ALL),
            Some(Gzip)
        );
        assert_eq!(Accepted::parse("gzip;q=0").choose(ALL), None);
        assert_eq!(Accepted::parse("*;q=0").choose(ALL), None);
        assert_eq!(Accepted::parse("*, br;q=0").choose(ALL), Some(Zstd));
        assert_eq!(
            Accepted::parse("*, zstd;q=0, br;q=0").choose(ALL),
            Some(Gzip)
        );
    }

    #[test]
    fn star_and_identity() {
        assert_eq!(Accepted::parse("*").choose(ALL), Some(Zstd));
        assert_eq!(Accepted::parse("identity").choose(ALL), None);
        assert_eq!(Accepted::parse("").choose(ALL), None);
        // The client prefers the plain response to gzip.
        assert_eq!(Accepted::parse("gzip;q=0.5, identity").choose(ALL), None);
        assert_eq!(
            Accepted::parse("gzip, identity;q=0").choose(ALL),
            Some(Gzip)
        );
        let refuses = Accepted::parse("gzip, identity;q=0");
        assert_eq!(refuses.identity_weight(), 0);
        assert_eq!(Accepted::parse("*;q=0").identity_weight(), 0);
        assert_eq!(Accepted::parse("*;q=0, identity").identity_weight(), 1000);
        assert!(Accepted::parse("br").identity_weight() > 0);
    }

    #[test]
    fn no_field_takes_nothing() {
        let none = Accepted::from_headers(&HeaderMap::new());
        assert!(!none.present());
        assert_eq!(none.choose(ALL), None);
        assert!(none.identity_weight() > 0);
    }

    #[test]
    fn several_lines_and_case() {
        let mut headers = HeaderMap::new();
        headers.append(header::ACCEPT_ENCODING, HeaderValue::from_static("GZIP"));
        headers.append(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("Br;Q=0.5"),
        );
        let accepted = Accepted::from_headers(&headers);
        assert_eq!(accepted.weight(Gzip), 1000);
        assert_eq!(accepted.weight(Brotli), 500);
        assert_eq!(accepted.choose(ALL), Some(Gzip));
        assert_eq!(Accepted::parse("x-gzip").choose(ALL), Some(Gzip));
    }

    #[test]
    fn malformed_members_are_skipped() {
        for text in [
            "gzip;q=2",
            "gzip;q=1.5",
            "gzip;q=0.1234",
            "gzip;q=",
            "gzip;q=abc",
            "gzip;q",
            "gzip;q=-1",
            "gzip;q=1.001",
            ";;;,,,",
            "gzip;;q=0.5",
        ] {
            let accepted = Accepted::parse(text);
            assert_eq!(accepted.choose(ALL), None, "{text}");
        }
        assert_eq!(Accepted::parse("gzip;q=2, br").choose(ALL), Some(Brotli));
        assert_eq!(Accepted::parse("gzip ; q=0.5 ").weight(Gzip), 500);
        assert_eq!(Accepted::parse("gzip;level=1").weight(Gzip), 1000);
    }

    #[test]
    fn qvalues() {
        assert_eq!(qvalue("1"), Some(1000));
        assert_eq!(qvalue("1.000"), Some(1000));
        assert_eq!(qvalue("0.5"), Some(500));
        assert_eq!(qvalue("0.05"), Some(50));
        assert_eq!(qvalue("0.005"), Some(5));
        assert_eq!(qvalue("0."), Some(0));
        assert_eq!(qvalue("0"), Some(0));
        assert_eq!(qvalue(".5"), None);
        assert_eq!(qvalue("01"), None);
        assert_eq!(qvalue(""), None);
    }

    proptest::proptest! {
        /// Whatever the bytes, reading them never panics and a choice is one that was offered.
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let mut headers = HeaderMap::new();
            if let Ok(value) = HeaderValue::from_bytes(&bytes) {
                headers.insert(header::ACCEPT_ENCODING, value);
            }
            let accepted = Accepted::from_headers(&headers);
            if let Some(choice) = accepted.choose(&[Gzip, Brotli]) {
                proptest::prop_assert!(choice != Zstd);
            }
        }

        #[test]
        fn never_panics_on_text(text in "[a-z*;=q0-9., ]{0,40}") {
            let accepted = Accepted::parse(&text);
            let _ = accepted.choose(ALL);
            let _ = accepted.identity_weight();
        }
    }
}
