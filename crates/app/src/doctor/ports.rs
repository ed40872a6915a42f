//! What this machine's socket tables say about a failed connect to a local upstream.
//!
//! A failed TCP connect says very little: "connection refused" means some kernel
//! answered a SYN with a RST, and "timed out" means nothing answered at all. When the
//! upstream address belongs to this machine, the kernel's own table of listening
//! sockets usually says *why*:
//!
//! - nothing listens on the configured port but a port one typo away does
//!   (`3001` configured, `3000` listening);
//! - the port listens, but on another local address (the app binds `[::1]:3000`
//!   while the config says `127.0.0.1:3000`, or the reverse), so the kernel refuses
//!   connections to the configured one;
//! - the port listens and its accept queue is full: the process stopped calling
//!   `accept()` (hung or overloaded), so the kernel silently drops new SYNs and
//!   clients time out instead of being refused;
//! - the port listens and is healthy, so a refusal must come from something else,
//!   such as a firewall REJECT rule.
//!
//! The socket table itself is read in [`table`].

mod table;

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};

pub(crate) use table::listening;

/// A TCP socket in LISTEN state on this machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Listener {
    /// The address exactly as the kernel reports it (may be unspecified or IPv4-mapped).
    pub(crate) addr: SocketAddr,
    /// Connections fully established by the kernel and waiting for `accept()`.
    pub(crate) accept_queue: u32,
    /// The accept-queue limit given to `listen()` (capped by `net.core.somaxconn`);
    /// `None` when it could not be read (see [`table`]: `/proc` lacks it).
    pub(crate) backlog: Option<u32>,
}

impl Listener {
    /// Whether the kernel drops new SYNs for this listener. Linux's own test
    /// (`sk_acceptq_is_full`) is `queue > backlog`, so a queue holds backlog + 1.
    /// Without the backlog, any waiting connection counts: a process that accepts
    /// keeps the queue near 0, and this is only asked after a connect just failed.
    fn queue_full(&self) -> bool {
        match self.backlog {
            Some(backlog) => self.accept_queue > backlog,
            None => self.accept_queue > 0,
        }
    }
}

/// What the socket table says about a failed connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PortHint {
    /// The same port listens on another local address, one that would not accept
    /// connections to `wanted`.
    OtherAddress {
        wanted: SocketAddr,
        found: SocketAddr,
    },
    /// A port one typo away listens on an address that would accept connections to
    /// `wanted`'s IP.
    NearbyPort {
        wanted: SocketAddr,
        found: SocketAddr,
    },
    /// A listener that accepts connections for the address exists, but its accept
    /// queue is full.
    QueueFull(Listener),
    /// A listener that accepts connections for the address exists and its queue is
    /// not full: a refusal came from elsewhere (e.g. a firewall REJECT rule).
    Listening(Listener),
}

impl fmt::Display for PortHint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OtherAddress { wanted, found } => {
                let ip = wanted.ip();
                write!(
                    f,
                    "something listens on {found}, but not on {ip}: the backend binds another address"
                )
            }
            Self::NearbyPort { wanted, found } => {
                let port = found.port();
                write!(
                    f,
                    "nothing listens on {wanted}, but {found} does: did you mean port {port}?"
                )
            }
            Self::QueueFull(l) => {
                let (addr, waiting) = (l.addr, l.accept_queue);
                match l.backlog {
                    Some(backlog) => write!(
                        f,
                        "a process listens on {addr} but its accept queue is full ({waiting} waiting, backlog {backlog}): it is not accepting connections (hung or overloaded)"
                    ),
                    None => write!(
                        f,
                        "a process listens on {addr} but {waiting} connections wait in its accept queue: it is probably not accepting connections (hung or overloaded)"
                    ),
                }
            }
            Self::Listening(l) => {
                let (addr, waiting) = (l.addr, l.accept_queue);
                match l.backlog {
                    Some(backlog) => write!(
                        f,
                        "a process listens on {addr} (queue {waiting}/{backlog}): the refusal comes from elsewhere, e.g. a firewall REJECT rule"
                    ),
                    None => write!(
                        f,
                        "a process listens on {addr} (queue {waiting}): the refusal comes from elsewhere, e.g. a firewall REJECT rule"
                    ),
                }
            }
        }
    }
}

/// Whether `ip` belongs to this machine: loopback, unspecified (a connect to it goes
/// to loopback on Linux), or an address a socket can be bound to.
///
/// Binding is the kernel's own answer to "is this one of my addresses", and covers
/// every interface without parsing `/proc/net/if_inet6` or netlink. Caveats: an IPv6
/// link-local address is only bindable with its scope id, so it reads as not local;
/// with `net.ipv4.ip_nonlocal_bind=1` every address binds.
pub(crate) fn is_local(ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    if ip.is_loopback() || ip.is_unspecified() {
        return true;
    }
    // UDP sockets may bind multicast and broadcast addresses, but no TCP server
    // lives there.
    if ip.is_multicast() || ip == IpAddr::V4(Ipv4Addr::BROADCAST) {
        return false;
    }
    UdpSocket::bind((ip, 0)).is_ok()
}

/// At most this many hints of each kind; more is noise.
const MAX_OTHER_ADDRESSES: usize = 2;
const MAX_NEARBY_PORTS: usize = 3;

/// What the socket table says about a failed connect to `addr`; empty when
/// `addr.ip()` is not local. Most telling first: a listener that would take the
/// connection (full queue, or healthy) explains everything by itself; otherwise the
/// same port on other addresses, then nearby ports (closest first, at most 3).
pub(crate) fn hints_for(addr: SocketAddr, listeners: &[Listener]) -> Vec<PortHint> {
    if !is_local(addr.ip()) {
        return Vec::new();
    }
    local_hints(addr, listeners)
}

/// [`hints_for`] for an address already known to be local.
fn local_hints(addr: SocketAddr, listeners: &[Listener]) -> Vec<PortHint> {
    let ip = connect_target(addr.ip());
    let port = addr.port();

    let accepting: Vec<&Listener> = listeners
        .iter()
        .filter(|l| accepts_for(l.addr, ip, port))
        .collect();
    // With SO_REUSEPORT several sockets share the port; the kernel spreads SYNs over
    // them, so one full queue is enough to make some connects time out.
    if let Some(full) = accepting.iter().find(|l| l.queue_full()) {
        return vec![PortHint::QueueFull(**full)];
    }
    // Prefer the listener bound to exactly this IP over a wildcard one.
    if let Some(ok) = accepting
        .iter()
        .find(|l| l.addr.ip().to_canonical() == ip)
        .or_else(|| accepting.first())
    {
        return vec![PortHint::Listening(**ok)];
    }

    let mut hints = Vec::new();

    let mut others: Vec<SocketAddr> = listeners
        .iter()
        .filter(|l| l.addr.port() == port)
        .map(|l| l.addr)
        .collect();
    others.sort();
    others.dedup();
    hints.extend(others.into_iter().take(MAX_OTHER_ADDRESSES).map(|found| {
        PortHint::OtherAddress {
            wanted: addr,
            found,
        }
    }));

    let mut nearby: Vec<&Listener> = listeners
        .iter()
        .filter(|l| {
            let p = l.addr.port();
            p > 0 && accepts_for(l.addr, ip, p) && is_one_typo(port, p)
        })
        .collect();
    // Closest port first; for one port, the exact-IP listener before a wildcard one,
    // so that dedup keeps the most specific address.
    nearby.sort_by_key(|l| {
        let p = l.addr.port();
        (p.abs_diff(port), p, l.addr.ip().to_canonical() != ip)
    });
    let mut seen_ports = HashSet::new();
    hints.extend(
        nearby
            .into_iter()
            .filter(|l| seen_ports.insert(l.addr.port()))
            .take(MAX_NEARBY_PORTS)
            .map(|l| PortHint::NearbyPort {
                wanted: addr,
                found: l.addr,
            }),
    );
    hints
}

/// The IP a connect to `ip` really reaches: IPv4-mapped IPv6 is plain IPv4, and
/// Linux sends a connect to the unspecified address to loopback.
fn connect_target(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        other => other,
    }
}

/// Whether a socket listening on `listener` takes connections to `ip:port`: same
/// port and the same IP, the wildcard of the same family, or the IPv6 wildcard for
/// IPv4 (dual-stack). The last is an approximation: a `[::]` socket with
/// `IPV6_V6ONLY` set does not take IPv4, and `/proc` does not show that flag.
fn accepts_for(listener: SocketAddr, ip: IpAddr, port: u16) -> bool {
    if listener.port() != port {
        return false;
    }
    let lip = listener.ip().to_canonical();
    lip == ip || (lip.is_unspecified() && (lip.is_ipv4() == ip.is_ipv4() || lip.is_ipv6()))
}

/// Whether two ports are one typo apart in decimal: one digit substituted, inserted
/// or deleted, or two adjacent digits swapped (edit distance exactly 1).
fn is_one_typo(a: u16, b: u16) -> bool {
    let (a, b) = (a.to_string(), b.to_string());
    let (a, b) = (a.as_bytes(), b.as_bytes());
    match a.len().abs_diff(b.len()) {
        0 => {
            let diffs: Vec<usize> = (0..a.len()).filter(|&i| a[i] != b[i]).collect();
            match diffs.as_slice() {
                [_] => true,
                &[i, j] => j == i + 1 && a[i] == b[j] && a[j] == b[i],
                _ => false,
            }
        }
        1 => {
            let (long, short) = if a.len() > b.len() { (a, b) } else { (b, a) };
            (0..long.len())
                .any(|skip| long[..skip] == short[..skip] && long[skip + 1..] == short[skip..])
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};
    use std::time::{Duration, Instant};

    fn sa(s: &str) -> SocketAddr {
        s.parse().expect("test address")
    }

    fn listener(addr: &str, accept_queue: u32, backlog: Option<u32>) -> Listener {
        Listener {
            addr: sa(addr),
            accept_queue,
            backlog,
        }
    }

    #[test]
    fn typo_distance() {
        assert!(is_one_typo(3000, 3001), "substitution");
        assert!(is_one_typo(3000, 300), "deletion");
        assert!(is_one_typo(3000, 30000), "insertion");
        assert!(is_one_typo(8080, 8008), "adjacent swap 80 -> 08");
        assert!(!is_one_typo(3000, 3011), "distance 2");
        assert!(!is_one_typo(3000, 3000), "same port");
        assert!(!is_one_typo(1234, 4231), "non-adjacent swap");
        assert!(!is_one_typo(80, 8080), "two insertions");
    }

    #[test]
    fn is_local_addresses() {
        assert!(is_local("127.0.0.1".parse().expect("ip")));
        assert!(is_local("0.0.0.0".parse().expect("ip")));
        assert!(is_local("::ffff:127.0.0.1".parse().expect("ip")));
        // TEST-NET-1 (RFC 5737) is never assigned to a real interface.
        assert!(!is_local("192.0.2.1".parse().expect("ip")));
        assert!(!is_local("224.0.0.1".parse().expect("ip")));
        // ::1 is loopback by definition, even where IPv6 is disabled.
        assert!(is_local("::1".parse().expect("ip")));
    }

    #[test]
    fn nearby_ports_closest_first_at_most_three() {
        let listeners = [
            listener("127.0.0.1:3000", 0, Some(128)),
            listener("0.0.0.0:3010", 0, Some(128)),
            listener("127.0.0.1:3091", 0, Some(128)),
            listener("127.0.0.1:4001", 0, Some(128)),
            // Would be a typo away, but on an address that refuses 127.0.0.1.
            listener("10.9.9.9:3002", 0, Some(128)),
            listener("[::1]:3003", 0, Some(128)),
            // Far from 3001.
            listener("127.0.0.1:8080", 0, Some(128)),
        ];
        let wanted = sa("127.0.0.1:3001");
        let found: Vec<PortHint> = hints_for(wanted, &listeners);
        let near = |found: &str| PortHint::NearbyPort {
            wanted,
            found: sa(found),
        };
        assert_eq!(
            found,
            [
                near("127.0.0.1:3000"),
                near("0.0.0.0:3010"),
                near("127.0.0.1:3091")
            ]
        );
        assert_eq!(
            found[0].to_string(),
            "nothing listens on 127.0.0.1:3001, but 127.0.0.1:3000 does: did you mean port 3000?"
        );
    }

    #[test]
    fn nearby_port_deduplicated_to_most_specific_address() {
        let listeners = [
            listener("[::]:3000", 0, None),
            listener("0.0.0.0:3000", 0, None),
            listener("127.0.0.1:3000", 0, None),
        ];
        let wanted = sa("127.0.0.1:3001");
        assert_eq!(
            hints_for(wanted, &listeners),
            [PortHint::NearbyPort {
                wanted,
                found: sa("127.0.0.1:3000")
            }]
        );
    }

    #[test]
    fn same_port_on_another_address() {
        let wanted = sa("127.0.0.1:3000");
        let hints = hints_for(wanted, &[listener("[::1]:3000", 0, Some(128))]);
        assert_eq!(
            hints,
            [PortHint::OtherAddress {
                wanted,
                found: sa("[::1]:3000")
            }]
        );
        assert_eq!(
            hints[0].to_string(),
            "something listens on [::1]:3000, but not on 127.0.0.1: the backend binds another address"
        );

        // The reverse, and an IPv4 wildcard never takes IPv6.
        let wanted = sa("[::1]:3000");
        let listeners = [
            listener("127.0.0.1:3000", 0, None),
            listener("0.0.0.0:3000", 0, None),
        ];
        assert_eq!(
            hints_for(wanted, &listeners),
            [
                PortHint::OtherAddress {
                    wanted,
                    found: sa("0.0.0.0:3000")
                },
                PortHint::OtherAddress {
                    wanted,
                    found: sa("127.0.0.1:3000")
                },
            ]
        );
    }

    #[test]
    fn other_address_comes_before_nearby_port() {
        let wanted = sa("127.0.0.1:3000");
        let listeners = [
            listener("127.0.0.1:3001", 0, None),
            listener("[::1]:3000", 0, None),
        ];
        assert_eq!(
            hints_for(wanted, &listeners),
            [
                PortHint::OtherAddress {
                    wanted,
                    found: sa("[::1]:3000")
                },
                PortHint::NearbyPort {
                    wanted,
                    found: sa("127.0.0.1:3001")
                },
            ]
        );
    }

    #[test]
    fn accepting_listener_explains_alone() {
        // A dual-stack wildcard takes IPv4; the typo-distance neighbour is irrelevant.
        let listeners = [
            listener("[::]:3000", 0, Some(128)),
            listener("127.0.0.1:3001", 0, None),
        ];
        let hints = hints_for(sa("127.0.0.1:3000"), &listeners);
        assert_eq!(hints, [PortHint::Listening(listeners[0])]);
        assert_eq!(
            hints[0].to_string(),
            "a process listens on [::]:3000 (queue 0/128): the refusal comes from elsewhere, e.g. a firewall REJECT rule"
        );

        // IPv4-mapped config address, and connects to 0.0.0.0 going to loopback.
        let exact = listener("127.0.0.1:3000", 0, None);
        assert_eq!(
            hints_for(sa("[::ffff:127.0.0.1]:3000"), &[exact]),
            [PortHint::Listening(exact)]
        );
        assert_eq!(
            hints_for(sa("0.0.0.0:3000"), &[exact]),
            [PortHint::Listening(exact)]
        );
        assert_eq!(
            PortHint::Listening(exact).to_string(),
            "a process listens on 127.0.0.1:3000 (queue 0): the refusal comes from elsewhere, e.g. a firewall REJECT rule"
        );

        let full = listener("127.0.0.1:3000", 129, Some(128));
        let busy = listener("127.0.0.1:3000", 3, Some(128));
        assert_eq!(
            hints_for(sa("127.0.0.1:3000"), &[busy, full]),
            [PortHint::QueueFull(full)]
        );
        assert_eq!(
            hints_for(sa("127.0.0.1:3000"), &[busy]),
            [PortHint::Listening(busy)]
        );
        assert_eq!(
            PortHint::QueueFull(full).to_string(),
            "a process listens on 127.0.0.1:3000 but its accept queue is full (129 waiting, backlog 128): it is not accepting connections (hung or overloaded)"
        );
        let unknown = listener("127.0.0.1:3000", 129, None);
        assert_eq!(
            hints_for(sa("127.0.0.1:3000"), &[unknown]),
            [PortHint::QueueFull(unknown)]
        );
        assert_eq!(
            PortHint::QueueFull(unknown).to_string(),
            "a process listens on 127.0.0.1:3000 but 129 connections wait in its accept queue: it is probably not accepting connections (hung or overloaded)"
        );
    }

    #[test]
    fn non_local_address_gets_no_hints() {
        let listeners = [
            listener("0.0.0.0:3000", 0, None),
            listener("[::]:3001", 0, None),
        ];
        assert!(hints_for(sa("192.0.2.1:3000"), &listeners).is_empty());
        assert!(hints_for(sa("192.0.2.1:3001"), &listeners).is_empty());
    }

    fn find(listeners: &[Listener], addr: SocketAddr) -> Option<Listener> {
        listeners.iter().copied().find(|l| l.addr == addr)
    }

    fn ss_available() -> bool {
        table::ss_output().is_some()
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn sees_real_listeners() {
        let v4 = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let v4_addr = v4.local_addr().expect("local addr");
        // Binding ::1 fails where IPv6 is disabled (some containers and CI runners);
        // the IPv4 half of the test still says the table is read correctly.
        let v6 = TcpListener::bind("[::1]:0").ok();

        let listeners = listening();
        let found = find(&listeners, v4_addr).expect("127.0.0.1 listener in /proc/net/tcp");
        assert_eq!(found.accept_queue, 0);
        if ss_available() {
            // std passes 128 to listen(); assert only that a real limit came through.
            assert!(found.backlog.is_some_and(|b| b > 0), "{found:?}");
        } else {
            assert_eq!(found.backlog, None);
        }
        assert_eq!(hints_for(v4_addr, &listeners), [PortHint::Listening(found)]);

        if let Some(v6) = v6 {
            let v6_addr = v6.local_addr().expect("local addr");
            let found = find(&listeners, v6_addr).expect("::1 listener in /proc/net/tcp6");
            assert_eq!(found.accept_queue, 0);
            // The classic mismatch: the backend binds ::1, the config says 127.0.0.1.
            let wanted = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), v6_addr.port());
            let hints = hints_for(wanted, &listeners);
            assert!(
                hints.contains(&PortHint::OtherAddress {
                    wanted,
                    found: v6_addr
                }),
                "{hints:?}"
            );
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn sees_full_accept_queue() {
        // std listens with backlog 128 and Linux queues backlog + 1 connections, then
        // drops further SYNs. Connect without accepting until a connect times out
        // (the queue is full) or a bound is reached; one timeout costs CONNECT_WAIT.
        const MAX_CLIENTS: usize = 300;
        const CONNECT_WAIT: Duration = Duration::from_millis(300);
        let server = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let addr = server.local_addr().expect("local addr");
        let mut clients = Vec::new();
        while clients.len() < MAX_CLIENTS {
            match TcpStream::connect_timeout(&addr, CONNECT_WAIT) {
                Ok(client) => clients.push(client),
                Err(_) => break,
            }
        }
        assert!(
            clients.len() < MAX_CLIENTS,
            "the accept queue never filled ({} clients)",
            clients.len()
        );

        // The queue count is updated when the handshake's last ACK arrives, which is
        // before connect() returns, but give the table a moment anyway.
        let deadline = Instant::now() + Duration::from_secs(2);
        let found = loop {
            let found = find(&listening(), addr).expect("listener in /proc/net/tcp");
            if found.queue_full() || Instant::now() > deadline {
                break found;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(found.accept_queue as usize, clients.len(), "{found:?}");
        if let Some(backlog) = found.backlog {
            assert!(found.accept_queue > backlog, "{found:?}");
        }
        let hints = hints_for(addr, &listening());
        assert!(
            matches!(hints.as_slice(), [PortHint::QueueFull(l)] if l.addr == addr),
            "{hints:?}"
        );

        drop(clients);
        drop(server);
    }
}
