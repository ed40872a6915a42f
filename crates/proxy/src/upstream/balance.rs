//! Choosing a server among the eligible ones: smooth weighted round robin, least requests by
//! power of two choices, or consistent (rendezvous) hashing.
//!
//! The caller decides eligibility (available, not yet tried, not at its connection limit) and
//! calls [`Balancer::pick`] again with a narrower predicate when a pick cannot be used, so a
//! retry or a full server naturally moves on to another candidate.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use gatehouse_config::{Balance, HashKey};

use super::server::Server;

/// One tier of a pool (primaries or backups) with its precomputed round-robin order.
#[derive(Debug, Default)]
pub struct Tier {
    pub servers: Vec<Arc<Server>>,
    /// Indices into `servers` in smooth weighted round-robin order (one cycle).
    order: Vec<u32>,
}

impl Tier {
    pub fn new(servers: Vec<Arc<Server>>) -> Self {
        let weights: Vec<u32> = servers.iter().map(|s| s.weight).collect();
        Self {
            order: smooth_order(&weights),
            servers,
        }
    }
}

/// The balancing algorithm of one pool, with its mutable cursor.
#[derive(Debug)]
pub struct Balancer {
    balance: Balance,
    cursor: AtomicUsize,
}

impl Balancer {
    pub fn new(balance: Balance) -> Self {
        Self {
            balance,
            cursor: AtomicUsize::new(0),
        }
    }

    pub fn hash_key(&self) -> Option<&HashKey> {
        match &self.balance {
            Balance::Hash(key) => Some(key),
            Balance::RoundRobin | Balance::LeastRequests => None,
        }
    }

    /// The index in `tier` of the server to use, among those `eligible` accepts. `key` is the
    /// request's hash key (hash balancing without one falls back to round robin). A retry
    /// (`retry`) does not advance the round-robin cursor: otherwise, with a failing server
    /// next to a good one, every new request would start at the failing one.
    pub fn pick(
        &self,
        tier: &Tier,
        key: Option<u64>,
        retry: bool,
        eligible: impl Fn(&Server) -> bool,
    ) -> Option<usize> {
        match (&self.balance, key) {
            (Balance::Hash(_), Some(key)) => rendezvous(tier, key, eligible),
            (Balance::LeastRequests, _) => self.least_requests(tier, eligible),
            (Balance::RoundRobin | Balance::Hash(_), _) => self.round_robin(tier, retry, eligible),
        }
    }

    fn round_robin(
        &self,
        tier: &Tier,
        retry: bool,
        eligible: impl Fn(&Server) -> bool,
    ) -> Option<usize> {
        let len = tier.order.len();
        if len == 0 {
            return None;
        }
        if retry {
            // Scan on from the cursor without moving it.
            let start = self.cursor.load(Ordering::Relaxed);
            return (0..len)
                .map(|i| tier.order[(start + i) % len] as usize)
                .find(|&index| eligible(&tier.servers[index]));
        }
        // An ineligible slot draws the next slot rather than falling through to its neighbour,
        // so an out server's share spreads over all the others instead of doubling one.
        for _ in 0..len {
            let slot = self.cursor.fetch_add(1, Ordering::Relaxed);
            let index = tier.order[slot % len] as usize;
            if eligible(&tier.servers[index]) {
                return Some(index);
            }
        }
        (0..tier.servers.len()).find(|&index| eligible(&tier.servers[index]))
    }

    /// Power of two choices: two random eligible servers, the one with fewer requests in
    /// flight per unit of weight wins.
    fn least_requests(&self, tier: &Tier, eligible: impl Fn(&Server) -> bool) -> Option<usize> {
        let candidates: Vec<usize> = (0..tier.servers.len())
            .filter(|&i| eligible(&tier.servers[i]))
            .collect();
        match candidates.len() {
            0 => None,
            1 => Some(candidates[0]),
            n => {
                let r = random();
                let a = (r % n as u64) as usize;
                let b = (a + 1 + ((r >> 32) % (n as u64 - 1)) as usize) % n;
                let load = |i: usize| {
                    let server = &tier.servers[candidates[i]];
                    // Cross-multiplied to compare in_flight / weight without division.
                    (
                        u64::from(server.state.in_flight()),
                        u64::from(server.weight),
                    )
                };
                let ((load_a, weight_a), (load_b, weight_b)) = (load(a), load(b));
                Some(if load_b * weight_a < load_a * weight_b {
                    candidates[b]
                } else {
                    candidates[a]
                })
            }
        }
    }
}

/// Weighted rendezvous hashing: each server scores `-weight / ln(u)` with `u` uniform from
/// hash(key, server); the highest score wins. Removing a server moves only its own keys.
fn rendezvous(tier: &Tier, key: u64, eligible: impl Fn(&Server) -> bool) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    for (index, server) in tier.servers.iter().enumerate() {
        if !eligible(server) {
            continue;
        }
        let h = mix(key ^ server.hash_id.rotate_left(17));
        // 53 random bits → u in (0, 1).
        let u = ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        let score = -f64::from(server.weight) / u.ln();
        if best.is_none_or(|(_, top)| score > top) {
            best = Some((index, score));
        }
    }
    best.map(|(index, _)| index)
}

/// One cycle of nginx's smooth weighted round robin: each step every server gains its weight,
/// the one with the most is chosen and loses the total. Weights {5,1,1} give a,a,b,a,c,a,a.
fn smooth_order(weights: &[u32]) -> Vec<u32> {
    // Weights {300, 100} cycle like {3, 1}: divide by their greatest common divisor.
    let divisor = weights.iter().copied().fold(0, gcd).max(1);
    let weights: Vec<u32> = weights.iter().map(|&w| w / divisor).collect();
    let weights = &weights[..];
    let total: i64 = weights.iter().map(|&w| i64::from(w)).sum();
    let mut current = vec![0i64; weights.len()];
    let mut order = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    for _ in 0..total {
        let mut best = 0;
        for (i, &w) in weights.iter().enumerate() {
            current[i] += i64::from(w);
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total;
        order.push(best as u32);
    }
    order
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// A 64-bit hash that is the same in every process (FNV-1a, then a finalizer), so consistent
/// hashing sends a key to the same server across restarts.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    mix(h)
}

/// splitmix64's finalizer.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A cheap random number: a process-wide counter through the finalizer (good enough to choose
/// between two servers; not for anything secret).
fn random() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0x9E37_79B9_7F4A_7C15);
    mix(COUNTER.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::net::SocketAddr;
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::upstream::health::ServerState;
    use crate::upstream::server::{ConnSettings, ServerSpec, WaitQueue};

    fn server(port: u16, weight: u32) -> Arc<Server> {
        let settings = ConnSettings {
            connect_timeout: std::time::Duration::from_secs(1),
            response_timeout: std::time::Duration::from_secs(1),
            read_timeout: std::time::Duration::from_secs(1),
            send_timeout: std::time::Duration::from_secs(1),
            max_response_header_size: 8192,
            proxy_protocol: None,
        };
        Arc::new(Server::new(
            "app",
            ServerSpec {
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
                host: "127.0.0.1".into(),
                named: false,
                weight,
                max_connections: None,
                backup: false,
            },
            Arc::new(ServerState::default()),
            Arc::new(WaitQueue::default()),
            settings,
        ))
    }

    fn counts(tier: &Tier, picks: impl Iterator<Item = usize>) -> HashMap<u16, usize> {
        let mut counts = HashMap::new();
        for index in picks {
            *counts.entry(tier.servers[index].addr.port()).or_default() += 1;
        }
        counts
    }

    #[test]
    fn smooth_round_robin_interleaves_by_weight() {
        assert_eq!(smooth_order(&[5, 1, 1]), vec![0, 0, 1, 0, 2, 0, 0]);
        assert_eq!(smooth_order(&[1, 1]), vec![0, 1]);
        let tier = Tier::new(vec![server(1, 1), server(2, 3)]);
        let balancer = Balancer::new(Balance::RoundRobin);
        let picks = (0..400).filter_map(|_| balancer.pick(&tier, None, false, |_| true));
        let counts = counts(&tier, picks);
        assert_eq!((counts[&1], counts[&2]), (100, 300));
    }

    #[test]
    fn round_robin_skips_ineligible_servers() {
        let tier = Tier::new(vec![server(1, 1), server(2, 1), server(3, 1)]);
        let balancer = Balancer::new(Balance::RoundRobin);
        for _ in 0..10 {
            let pick = balancer.pick(&tier, None, false, |s| s.addr.port() != 2);
            assert!(pick.is_some_and(|i| tier.servers[i].addr.port() != 2));
        }
        assert_eq!(balancer.pick(&tier, None, false, |_| false), None);
    }

    #[test]
    fn an_out_servers_share_spreads_over_all_the_others() {
        let tier = Tier::new(vec![server(1, 1), server(2, 1), server(3, 1)]);
        let balancer = Balancer::new(Balance::RoundRobin);
        let picks =
            (0..3000).filter_map(|_| balancer.pick(&tier, None, false, |s| s.addr.port() != 1));
        let counts = counts(&tier, picks);
        assert_eq!((counts.get(&1), counts[&2], counts[&3]), (None, 1500, 1500));
        assert_eq!(smooth_order(&[300, 100]), smooth_order(&[3, 1]));
    }

    #[test]
    fn least_requests_prefers_the_idle_server() {
        let tier = Tier::new(vec![server(1, 1), server(2, 1)]);
        tier.servers[0].state.in_flight.store(10, Ordering::Relaxed);
        let balancer = Balancer::new(Balance::LeastRequests);
        for _ in 0..50 {
            let pick = balancer.pick(&tier, None, false, |_| true);
            assert_eq!(pick.map(|i| tier.servers[i].addr.port()), Some(2));
        }
        // Spread over three equal servers: every one is chosen.
        let tier = Tier::new(vec![server(1, 1), server(2, 1), server(3, 1)]);
        let counts = counts(
            &tier,
            (0..300).filter_map(|_| balancer.pick(&tier, None, false, |_| true)),
        );
        assert_eq!(counts.len(), 3, "{counts:?}");
    }

    #[test]
    fn rendezvous_is_stable_fair_and_moves_only_the_removed_servers_keys() {
        let balancer = Balancer::new(Balance::Hash(HashKey::ClientIp));
        let four = Tier::new((1..=4).map(|port| server(port, 1)).collect());
        let three = Tier::new((1..=3).map(|port| server(port, 1)).collect());
        let keys: Vec<u64> = (0..4000u32)
            .map(|k| stable_hash(format!("user-{k}").as_bytes()))
            .collect();
        let port = |tier: &Tier, key: u64| {
            balancer
                .pick(tier, Some(key), false, |_| true)
                .map(|i| tier.servers[i].addr.port())
        };
        let mut per_server: HashMap<Option<u16>, usize> = HashMap::new();
        let mut moved = 0;
        for &key in &keys {
            let before = port(&four, key);
            assert_eq!(before, port(&four, key), "the same key, the same server");
            *per_server.entry(before).or_default() += 1;
            let after = port(&three, key);
            if before != Some(4) {
                assert_eq!(before, after, "a key not on the removed server stays put");
            } else {
                moved += 1;
            }
        }
        for count in per_server.values() {
            assert!((850..=1150).contains(count), "{per_server:?}");
        }
        assert!(
            (850..=1150).contains(&moved),
            "about 1/4 of keys moved: {moved}"
        );
    }

    #[test]
    fn rendezvous_honours_weights() {
        let balancer = Balancer::new(Balance::Hash(HashKey::ClientIp));
        let tier = Tier::new(vec![server(1, 1), server(2, 3)]);
        let picks = (0..4000u32).filter_map(|k| {
            balancer.pick(&tier, Some(stable_hash(&k.to_be_bytes())), false, |_| true)
        });
        let counts = counts(&tier, picks);
        assert!((850..=1150).contains(&counts[&1]), "{counts:?}");
    }

    #[test]
    fn stable_hash_does_not_change_between_builds() {
        // Consistent hashing across restarts depends on this value never changing.
        assert_eq!(
            stable_hash(b"127.0.0.1:3000"),
            stable_hash(b"127.0.0.1:3000")
        );
        assert_ne!(
            stable_hash(b"127.0.0.1:3000"),
            stable_hash(b"127.0.0.1:3001")
        );
        assert_eq!(stable_hash(b""), mix(0xcbf2_9ce4_8422_2325));
    }
}
