//! The PROXY protocol header parser of `proxy_protocol` listeners.

use gatehouse_proxy::proxy_protocol::{Parsed, V2_MAX, Version, encode, parse};

/// The input is the first bytes of a connection.
///
/// Checked: a header never claims more bytes than arrived nor more than gatehouse accepts;
/// the header alone parses to the same result (nothing after it was needed); "incomplete"
/// always asks for more than arrived; an address read is written back (in either version)
/// into a header that parses to the same address.
pub fn proxy_protocol(data: &[u8]) {
    match parse(data) {
        Parsed::Header {
            len,
            source,
            destination,
        } => {
            assert!(
                len <= data.len() && len <= V2_MAX,
                "{len} of {}",
                data.len()
            );
            assert_eq!(
                parse(&data[..len]),
                Parsed::Header {
                    len,
                    source,
                    destination
                }
            );
            if let (Some(src), Some(dst)) = (source, destination) {
                for version in [Version::V1, Version::V2] {
                    let written = encode(version, Some((src, dst)));
                    let Parsed::Header {
                        source: Some(back), ..
                    } = parse(&written)
                    else {
                        panic!("{version:?} header of {src} does not parse back");
                    };
                    assert_eq!(back, src);
                }
            }
        }
        Parsed::Incomplete(need) => assert!(need > data.len(), "{need} <= {}", data.len()),
        Parsed::Invalid(why) => assert!(!why.is_empty()),
    }
}
