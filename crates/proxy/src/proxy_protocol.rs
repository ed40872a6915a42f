//! The PROXY protocol (HAProxy's spec, versions 1 and 2): the header an L4 load balancer puts
//! before a connection's first byte to say whom it accepted the connection from. Parsed here
//! as a pure function of the bytes received so far, so the listener reads exactly the header
//! and leaves the HTTP (or TLS) bytes after it in the socket; and written here for upstreams
//! that ask for it (`send_proxy_protocol`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The twelve bytes every version 2 header starts with.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// A version 1 header is at most 107 bytes, CRLF included.
pub const V1_MAX: usize = 107;
/// The largest version 2 header accepted: the 16 fixed bytes and up to this many of addresses
/// and TLVs. The spec allows 64 KiB of TLVs; load balancers send a few hundred bytes at most.
pub const V2_MAX: usize = 16 + 4096;

/// What the first bytes of a connection say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// Not enough bytes yet: at least this many are needed to go on.
    Incomplete(usize),
    /// A complete header of `len` bytes. `source` is the client's address, `None` for a
    /// connection the load balancer opened itself (v2 `LOCAL`, e.g. its health checks) or
    /// v1 `UNKNOWN`: the peer's own address stands then.
    Header {
        len: usize,
        source: Option<SocketAddr>,
        destination: Option<SocketAddr>,
    },
    /// Not a valid PROXY header; why.
    Invalid(&'static str),
}

/// Parses the start of a connection.
pub fn parse(buf: &[u8]) -> Parsed {
    let v2_prefix = buf.len().min(V2_SIGNATURE.len());
    if buf[..v2_prefix] == V2_SIGNATURE[..v2_prefix] && !buf.is_empty() {
        return parse_v2(buf);
    }
    const V1_PREFIX: &[u8] = b"PROXY ";
    let v1_prefix = buf.len().min(V1_PREFIX.len());
    if buf[..v1_prefix] == V1_PREFIX[..v1_prefix] {
        return parse_v1(buf);
    }
    Parsed::Invalid("the connection does not start with a PROXY protocol header")
}

fn parse_v1(buf: &[u8]) -> Parsed {
    let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
        return if buf.len() >= V1_MAX {
            Parsed::Invalid("PROXY v1 header longer than 107 bytes")
        } else {
            Parsed::Incomplete(buf.len() + 1)
        };
    };
    let len = end + 2;
    if len > V1_MAX {
        return Parsed::Invalid("PROXY v1 header longer than 107 bytes");
    }
    let Ok(line) = std::str::from_utf8(&buf[..end]) else {
        return Parsed::Invalid("PROXY v1 header is not ASCII");
    };
    let fields: Vec<&str> = line.split(' ').collect();
    match fields.as_slice() {
        ["PROXY", "UNKNOWN", ..] => Parsed::Header {
            len,
            source: None,
            destination: None,
        },
        ["PROXY", family @ ("TCP4" | "TCP6"), src, dst, sport, dport] => {
            let v4 = *family == "TCP4";
            let (Some(src), Some(dst)) = (v1_ip(src, v4), v1_ip(dst, v4)) else {
                return Parsed::Invalid("PROXY v1 header with an invalid address");
            };
            let (Some(sport), Some(dport)) = (v1_port(sport), v1_port(dport)) else {
                return Parsed::Invalid("PROXY v1 header with an invalid port");
            };
            Parsed::Header {
                len,
                source: Some(SocketAddr::new(src, sport)),
                destination: Some(SocketAddr::new(dst, dport)),
            }
        }
        _ => Parsed::Invalid("malformed PROXY v1 header"),
    }
}

fn v1_ip(text: &str, v4: bool) -> Option<IpAddr> {
    if v4 {
        text.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
    } else {
        text.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
    }
}

/// A port as the spec writes it: decimal digits, no sign, no leading zero.
fn v1_port(text: &str) -> Option<u16> {
    let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    let leading_zero = text.len() > 1 && text.starts_with('0');
    if !digits || leading_zero {
        return None;
    }
    text.parse().ok()
}

fn parse_v2(buf: &[u8]) -> Parsed {
    if buf.len() < 16 {
        return Parsed::Incomplete(16);
    }
    let version_command = buf[12];
    if version_command >> 4 != 2 {
        return Parsed::Invalid("PROXY v2 header with an unknown version");
    }
    let local = match version_command & 0x0f {
        0 => true,
        1 => false,
        _ => return Parsed::Invalid("PROXY v2 header with an unknown command"),
    };
    let family = buf[13];
    let body = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    let len = 16 + body;
    if len > V2_MAX {
        return Parsed::Invalid("PROXY v2 header longer than gatehouse accepts (4 KiB of TLVs)");
    }
    if buf.len() < len {
        return Parsed::Incomplete(len);
    }
    let addresses = &buf[16..len];
    // LOCAL: the balancer's own connection; the addresses (if any) are to be ignored.
    if local {
        return Parsed::Header {
            len,
            source: None,
            destination: None,
        };
    }
    let (source, destination) = match family {
        // TCP over IPv4, TCP over IPv6.
        0x11 if addresses.len() >= 12 => {
            let ip = |at: usize| {
                IpAddr::V4(Ipv4Addr::new(
                    addresses[at],
                    addresses[at + 1],
                    addresses[at + 2],
                    addresses[at + 3],
                ))
            };
            let port = |at: usize| u16::from_be_bytes([addresses[at], addresses[at + 1]]);
            (
                SocketAddr::new(ip(0), port(8)),
                SocketAddr::new(ip(4), port(10)),
            )
        }
        0x21 if addresses.len() >= 36 => {
            let ip = |at: usize| {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(&addresses[at..at + 16]);
                IpAddr::V6(Ipv6Addr::from(octets))
            };
            let port = |at: usize| u16::from_be_bytes([addresses[at], addresses[at + 1]]);
            (
                SocketAddr::new(ip(0), port(32)),
                SocketAddr::new(ip(16), port(34)),
            )
        }
        0x11 | 0x21 => return Parsed::Invalid("PROXY v2 header too short for its addresses"),
        // UNSPEC, UDP or UNIX with the PROXY command: no TCP client address to take.
        _ => {
            return Parsed::Header {
                len,
                source: None,
                destination: None,
            };
        }
    };
    Parsed::Header {
        len,
        source: Some(source),
        destination: Some(destination),
    }
}

/// Which header to send an upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

/// The header that tells an upstream the connection is for `source` (the client) reaching
/// `destination` (the address it connected to); `None` for a connection of gatehouse's own (a
/// health check): v1 `UNKNOWN`, v2 `LOCAL`.
pub fn encode(version: Version, addrs: Option<(SocketAddr, SocketAddr)>) -> Vec<u8> {
    // Mixed families (an IPv4 client reaching an IPv6 listener) are written as IPv6.
    let addrs = addrs.map(|(src, dst)| match (src, dst) {
        (SocketAddr::V4(_), SocketAddr::V4(_)) | (SocketAddr::V6(_), SocketAddr::V6(_)) => {
            (src, dst)
        }
        _ => (as_v6(src), as_v6(dst)),
    });
    match version {
        Version::V1 => match addrs {
            None => b"PROXY UNKNOWN\r\n".to_vec(),
            Some((src, dst)) => {
                let family = if src.is_ipv4() { "TCP4" } else { "TCP6" };
                format!(
                    "PROXY {family} {} {} {} {}\r\n",
                    src.ip(),
                    dst.ip(),
                    src.port(),
                    dst.port()
                )
                .into_bytes()
            }
        },
        Version::V2 => {
            let mut out = V2_SIGNATURE.to_vec();
            match addrs {
                None => out.extend_from_slice(&[0x20, 0x00, 0, 0]),
                Some((src, dst)) => {
                    let (family, body): (u8, Vec<u8>) = match (src.ip(), dst.ip()) {
                        (IpAddr::V4(s), IpAddr::V4(d)) => {
                            (0x11, [s.octets().as_slice(), &d.octets()].concat())
                        }
                        (s, d) => (0x21, [v6(s).octets(), v6(d).octets()].concat()),
                    };
                    let body = [
                        body.as_slice(),
                        &src.port().to_be_bytes(),
                        &dst.port().to_be_bytes(),
                    ]
                    .concat();
                    out.push(0x21);
                    out.push(family);
                    // At most 36 bytes: always fits.
                    out.extend_from_slice(&(body.len() as u16).to_be_bytes());
                    out.extend_from_slice(&body);
                }
            }
            out
        }
    }
}

fn v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

fn as_v6(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(IpAddr::V6(v6(addr.ip())), addr.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn v1_tcp4_and_tcp6_give_the_client_address_and_the_header_length() {
        let line = b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nGET / HTTP/1.1\r\n";
        assert_eq!(
            parse(line),
            Parsed::Header {
                len: 45,
                source: Some(addr("192.0.2.1:56324")),
                destination: Some(addr("198.51.100.2:443")),
            }
        );
        let line = b"PROXY TCP6 2001:db8::1 2001:db8::2 1 80\r\n";
        assert!(matches!(
            parse(line),
            Parsed::Header { source: Some(s), .. } if s == addr("[2001:db8::1]:1")
        ));
        assert_eq!(
            parse(b"PROXY UNKNOWN ffff::1 whatever\r\n"),
            Parsed::Header {
                len: 32,
                source: None,
                destination: None
            }
        );
    }

    #[test]
    fn v1_refuses_what_the_spec_does_not_allow() {
        for bad in [
            &b"PROXY TCP4 192.0.2.1 198.51.100.2 56324\r\n"[..],
            b"PROXY TCP4 2001:db8::1 198.51.100.2 1 2\r\n",
            b"PROXY TCP6 192.0.2.1 198.51.100.2 1 2\r\n",
            b"PROXY TCP4 192.0.2.1 198.51.100.2 +1 2\r\n",
            b"PROXY TCP4 192.0.2.1 198.51.100.2 01 2\r\n",
            b"PROXY TCP4 192.0.2.1 198.51.100.2 65536 2\r\n",
            b"PROXY TCP4  192.0.2.1 198.51.100.2 1 2\r\n",
            b"PROXY UDP4 192.0.2.1 198.51.100.2 1 2\r\n",
            b"GET / HTTP/1.1\r\n",
            b"\x16\x03\x01\x02\x00",
        ] {
            assert!(
                matches!(parse(bad), Parsed::Invalid(_)),
                "{:?} was accepted",
                String::from_utf8_lossy(bad)
            );
        }
        let endless = [b'P', b'R', b'O', b'X', b'Y', b' ']
            .into_iter()
            .chain(std::iter::repeat_n(b'1', 200))
            .collect::<Vec<u8>>();
        assert!(matches!(parse(&endless), Parsed::Invalid(_)));
    }

    #[test]
    fn a_partial_header_asks_for_more() {
        assert!(matches!(parse(b"PRO"), Parsed::Incomplete(_)));
        assert!(matches!(
            parse(b"PROXY TCP4 192.0.2.1"),
            Parsed::Incomplete(_)
        ));
        assert_eq!(parse(&V2_SIGNATURE[..5]), Parsed::Incomplete(16));
        let full = encode(
            Version::V2,
            Some((addr("10.1.2.3:4000"), addr("10.0.0.1:443"))),
        );
        assert_eq!(parse(&full[..20]), Parsed::Incomplete(full.len()));
    }

    #[test]
    fn what_is_encoded_parses_back_for_both_versions_and_families() {
        let pairs = [
            (addr("10.1.2.3:4000"), addr("10.0.0.1:443")),
            (addr("[2001:db8::7]:1234"), addr("[2001:db8::1]:80")),
            (addr("10.1.2.3:4000"), addr("[::1]:80")),
        ];
        for version in [Version::V1, Version::V2] {
            for (src, dst) in pairs {
                let mut bytes = encode(version, Some((src, dst)));
                let len = bytes.len();
                bytes.extend_from_slice(b"GET / HTTP/1.1\r\n");
                let Parsed::Header {
                    len: parsed_len,
                    source: Some(source),
                    ..
                } = parse(&bytes)
                else {
                    panic!("{version:?} {src} did not parse back");
                };
                assert_eq!(parsed_len, len);
                assert_eq!(v6(source.ip()), v6(src.ip()));
                assert_eq!(source.port(), src.port());
            }
            let local = encode(version, None);
            assert!(matches!(
                parse(&local),
                Parsed::Header { source: None, len, .. } if len == local.len()
            ));
        }
    }

    #[test]
    fn v2_with_tlvs_skips_them_and_refuses_bad_versions_commands_and_lengths() {
        let mut bytes = V2_SIGNATURE.to_vec();
        bytes.extend_from_slice(&[0x21, 0x11, 0, 12 + 7]);
        bytes.extend_from_slice(&[192, 0, 2, 1, 198, 51, 100, 2, 0x1f, 0x90, 0, 80]);
        bytes.extend_from_slice(&[0x04, 0, 4, b'n', b'o', b'o', b'p']); // a NOOP TLV
        bytes.extend_from_slice(b"GET /");
        assert!(matches!(
            parse(&bytes),
            Parsed::Header { len: 35, source: Some(s), .. } if s == addr("192.0.2.1:8080")
        ));
        let mut version_one = bytes.clone();
        version_one[12] = 0x11;
        assert!(matches!(parse(&version_one), Parsed::Invalid(_)));
        let mut command_two = bytes.clone();
        command_two[12] = 0x22;
        assert!(matches!(parse(&command_two), Parsed::Invalid(_)));
        let mut short = bytes.clone();
        short[15] = 4;
        assert!(matches!(parse(&short), Parsed::Invalid(_)));
        let mut huge = bytes;
        huge[14] = 0xff;
        assert!(matches!(parse(&huge), Parsed::Invalid(_)));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = (state % 64) as usize;
            let mut bytes: Vec<u8> = (0..len)
                .map(|i| (state >> (i % 8 * 8)) as u8 ^ i as u8)
                .collect();
            if state & 1 == 0 {
                let prefix: &[u8] = if state & 2 == 0 {
                    &V2_SIGNATURE
                } else {
                    b"PROXY TCP4 "
                };
                bytes.splice(0..0, prefix.iter().copied());
            }
            let _ = parse(&bytes);
        }
    }
}
