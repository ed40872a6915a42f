//! Loopback ports for tests: free ones a server is about to bind, and refused ones.

use std::net::SocketAddr;

/// A loopback address with a port nothing listens on right now (for a listener whose port a
/// test must know before gatehouse starts, e.g. for a redirect's `Location`).
///
/// The port is picked at random below the kernel's ephemeral range, so that no socket of the
/// tests running beside this one can be handed it between this check and the bind that
/// follows: a port from the ephemeral range, released here, may become the local port of
/// another process's next outgoing connection, and the listener's bind then fails.
pub fn free_addr() -> SocketAddr {
    let ephemeral_low = ephemeral_low().unwrap_or(32768);
    if ephemeral_low > LOWEST + 1000 {
        let span = u64::from(ephemeral_low - LOWEST);
        for _ in 0..200 {
            let port = LOWEST + (random() % span) as u16;
            if let Ok(listener) = std::net::TcpListener::bind(("127.0.0.1", port)) {
                drop(listener);
                return SocketAddr::from(([127, 0, 0, 1], port));
            }
        }
    }
    // No room below the ephemeral range (or none of it free): whatever the kernel gives.
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap_or_else(|e| panic!("bind 127.0.0.1:0: {e}"))
}

/// The lowest free ports are picked from.
const LOWEST: u16 = 10000;

/// The first port of the kernel's ephemeral range (the local ports it hands out itself).
fn ephemeral_low() -> Option<u16> {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// A random number, different in each call and each process.
fn random() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    use std::sync::atomic::{AtomicU64, Ordering};
    static CALLS: AtomicU64 = AtomicU64::new(0);
    RandomState::new().hash_one((std::process::id(), CALLS.fetch_add(1, Ordering::Relaxed)))
}

/// A loopback port where connections are refused for as long as the test process runs: a
/// socket is bound to it and never listens (the kernel answers a SYN there with RST) and is
/// kept open, so no other test's listener can be handed the port in the meantime (as one could
/// a port bound and released).
pub fn closed_port() -> u16 {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
        .unwrap_or_else(|e| panic!("socket: {e}"));
    socket
        .bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap_or_else(|e| panic!("bind 127.0.0.1:0: {e}"));
    let port = socket
        .local_addr()
        .ok()
        .and_then(|addr| addr.as_socket())
        .map(|addr| addr.port())
        .unwrap_or_else(|| panic!("no local address"));
    // Kept for the process's life: the port stays taken and refusing.
    std::mem::forget(socket);
    port
}

/// A free loopback port, below the ephemeral range (see [`free_addr`]), for a server the
/// test starts right after.
pub fn free_port() -> u16 {
    free_addr().port()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_addresses_are_bindable_and_below_the_ephemeral_range() {
        let ephemeral_low = ephemeral_low().expect("the ephemeral range");
        let addrs: Vec<SocketAddr> = (0..20).map(|_| free_addr()).collect();
        for addr in &addrs {
            if ephemeral_low > LOWEST + 1000 {
                assert!(
                    addr.port() >= LOWEST && addr.port() < ephemeral_low,
                    "{addr}"
                );
            }
            std::net::TcpListener::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
        }
        let distinct: std::collections::HashSet<_> = addrs.iter().collect();
        assert!(
            distinct.len() > 1,
            "the ports are picked at random: {addrs:?}"
        );
    }
}
