//! This machine's TCP sockets in LISTEN state, with their accept queues and, when `ss` can
//! say, their backlogs.
//!
//! The listener set and each accept-queue length come from `/proc/net/tcp{,6}`. Those
//! files do NOT carry the backlog limit: for a LISTEN socket the `tx_queue` column is
//! `write_seq - snd_una`, which is always 0. Only the `sock_diag` netlink interface
//! reports the limit (`sk_max_ack_backlog`), and talking netlink needs raw libc calls,
//! which this workspace denies (`unsafe_code = "deny"`; only the allocator may). So the
//! backlog is taken, best effort, from `ss -ltn` (iproute2, which speaks `sock_diag`) and
//! stays `None` when `ss` is missing.

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::Listener;

/// Every TCP socket in LISTEN state on this machine (this network namespace), from
/// `/proc/net/tcp` and `/proc/net/tcp6`, with backlogs from `ss` when it is installed.
/// Empty when `/proc` is unreadable (not Linux); never panics.
///
/// Blocking: reads files and may run `ss` (bounded to a couple of seconds), so call it
/// from `spawn_blocking` or outside the async runtime.
pub(crate) fn listening() -> Vec<Listener> {
    let mut listeners = Vec::new();
    for (path, v6) in [("/proc/net/tcp", false), ("/proc/net/tcp6", true)] {
        // A missing tcp6 just means IPv6 is disabled; keep whatever else we got.
        if let Ok(text) = std::fs::read_to_string(path) {
            listeners.extend(parse_table(&text, v6));
        }
    }
    if !listeners.is_empty()
        && let Some(text) = ss_output()
    {
        apply_backlogs(&mut listeners, &parse_ss(&text));
    }
    listeners
}

/// The TCP state number of LISTEN in `/proc/net/tcp` (`TCP_LISTEN` = 10).
const TCP_LISTEN: u32 = 0x0A;

/// Parses the text of `/proc/net/tcp` (`v6 = false`) or `/proc/net/tcp6` (`v6 =
/// true`) into its LISTEN sockets. The header, other states and malformed lines are
/// skipped. `backlog` is always `None`: the file does not carry it.
pub(crate) fn parse_table(text: &str, v6: bool) -> Vec<Listener> {
    text.lines()
        .filter_map(|line| parse_line(line, v6))
        .collect()
}

/// One line: `sl local_address rem_address st tx_queue:rx_queue ...`.
fn parse_line(line: &str, v6: bool) -> Option<Listener> {
    let mut fields = line.split_whitespace();
    let _slot = fields.next()?;
    let local = fields.next()?;
    let _remote = fields.next()?;
    if hex_u32(fields.next()?)? != TCP_LISTEN {
        return None;
    }
    // For a listener, rx_queue is the accept-queue length (`sk_ack_backlog`).
    let (_tx, rx) = fields.next()?.split_once(':')?;
    let accept_queue = hex_u32(rx)?;

    let (ip_hex, port_hex) = local.split_once(':')?;
    if port_hex.len() != 4 {
        return None;
    }
    let port = u16::try_from(hex_u32(port_hex)?).ok()?;
    let ip = if v6 {
        IpAddr::V6(parse_ipv6(ip_hex)?)
    } else {
        IpAddr::V4(parse_ipv4(ip_hex)?)
    };
    Some(Listener {
        addr: SocketAddr::new(ip, port),
        accept_queue,
        backlog: None,
    })
}

/// Hex digits only, at most 8 (`from_str_radix` alone would also take a sign).
fn hex_u32(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 8 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(s, 16).ok()
}

/// The kernel prints the network-order address as one native `u32` (`%08X`), so
/// the native byte order of that number gives the address bytes back: on x86
/// `0100007F` is 127.0.0.1.
fn parse_ipv4(hex: &str) -> Option<Ipv4Addr> {
    if hex.len() != 8 {
        return None;
    }
    Some(Ipv4Addr::from(hex_u32(hex)?.to_ne_bytes()))
}

/// IPv6 is printed as four native `u32` words, each converted like IPv4: on x86
/// `00000000000000000000000001000000` is `::1`.
fn parse_ipv6(hex: &str) -> Option<Ipv6Addr> {
    if hex.len() != 32 || !hex.is_ascii() {
        return None;
    }
    let mut bytes = [0u8; 16];
    for (i, chunk) in bytes.chunks_exact_mut(4).enumerate() {
        let word = hex_u32(hex.get(i * 8..i * 8 + 8)?)?;
        chunk.copy_from_slice(&word.to_ne_bytes());
    }
    Some(Ipv6Addr::from(bytes))
}

/// How long `ss` may take before we give up on backlogs; it normally takes
/// milliseconds, but a doctor must never hang on its own tooling.
const SS_TIMEOUT: Duration = Duration::from_secs(2);

/// The output of `ss -ltn`, or `None` when it is not installed, fails or hangs.
pub(super) fn ss_output() -> Option<String> {
    let mut child = Command::new("ss")
        .arg("-ltn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let Some(mut stdout) = child.stdout.take() else {
        let _ = child.kill();
        let _ = child.wait();
        return None;
    };
    // Read on another thread: a big table could fill the pipe and block `ss` while
    // we wait for it to exit.
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        stdout.read_to_string(&mut text).ok().map(|_| text)
    });
    let deadline = Instant::now() + SS_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            // Failed, timed out, or could not be waited for. Killing closes the pipe,
            // so the reader thread ends on its own.
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
    reader.join().ok().flatten()
}

/// One LISTEN line of `ss -ltn`: local address (`None` for `*`, the wildcard of
/// either family), port, and the backlog (`Send-Q` for a listener).
type SsEntry = (Option<IpAddr>, u16, u32);

/// Parses `ss -ltn` output. Lines look like
/// `LISTEN 0 128 127.0.0.1:3000 0.0.0.0:*`; the header and anything unexpected
/// are skipped.
fn parse_ss(text: &str) -> Vec<SsEntry> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            if fields.next()? != "LISTEN" {
                return None;
            }
            let _accept_queue: u32 = fields.next()?.parse().ok()?;
            let backlog: u32 = fields.next()?.parse().ok()?;
            let (ip, port) = parse_ss_addr(fields.next()?)?;
            Some((ip, port, backlog))
        })
        .collect()
}

/// `127.0.0.1:3000`, `[::1]:3000`, `*:3000`, `127.0.0.53%lo:53`, `[fe80::1]%eth0:22`.
fn parse_ss_addr(s: &str) -> Option<(Option<IpAddr>, u16)> {
    let (host, port) = s.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    // Interface names cannot contain ':', so the scope suffix sits between them.
    let host = host.split_once('%').map_or(host, |(h, _)| h);
    if host == "*" {
        return Some((None, port));
    }
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    Some((Some(host.parse().ok()?), port))
}

/// Copies backlogs from `ss` onto the `/proc` listeners. A listener gets one only
/// when every `ss` line for its address agrees (`SO_REUSEPORT` sockets share an
/// address and could differ); otherwise it stays unknown rather than guessed.
fn apply_backlogs(listeners: &mut [Listener], entries: &[SsEntry]) {
    for listener in listeners {
        let ip = listener.addr.ip();
        let mut backlogs = entries.iter().filter_map(|&(ss_ip, port, backlog)| {
            let same_ip = match ss_ip {
                Some(ss_ip) => ss_ip == ip,
                None => ip.is_unspecified(),
            };
            (port == listener.addr.port() && same_ip).then_some(backlog)
        });
        if let Some(first) = backlogs.next()
            && backlogs.all(|b| b == first)
        {
            listener.backlog = Some(first);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listener(addr: &str, accept_queue: u32, backlog: Option<u32>) -> Listener {
        Listener {
            addr: addr.parse().expect("test address"),
            accept_queue,
            backlog,
        }
    }

    // Literal lines from /proc/net/tcp{,6} on x86_64; the kernel prints addresses in
    // host byte order, so these bytes only mean the same on a little-endian host.
    #[cfg(target_endian = "little")]
    #[test]
    fn parses_ipv4_table() {
        let text = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:07E8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 627 1 00000000b591ffd2 100 0 0 10 0
   1: 0100007F:0BB8 00000000:0000 0A 00000000:00000081 00:00000000 00000000  1000        0 13844160 4 000000005b026769 100 0 0 10 0
   2: 0100007F:0BB8 0100007F:D3A6 01 00000000:00000000 00:00000000 00000000  1000        0 13844170 1 0000000000000000 20 4 30 10 -1
   3: 0100007F:ZZZZ 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0
   4: 0100007F:0BB9 00000000:0000 0A 00000000
   5: 0100007F
garbage
";
        assert_eq!(
            parse_table(text, false),
            vec![
                listener("0.0.0.0:2024", 0, None),
                listener("127.0.0.1:3000", 129, None)
            ]
        );
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn parses_ipv6_table() {
        let text = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:0BB8 00000000000000000000000000000000:0000 0A 00000000:00000002 00:00000000 00000000     0        0 13844071 1 00000000898697a4 100 0 0 10 0
   1: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 13845433 1 00000000d73a642c 100 0 0 10 0
   2: 0000000000000000FFFF00000100007F:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 13845432 1 000000002546c1e4 100 0 0 10 0
   3: B80D0120000000000000000001000000:01BB 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 13845434 1 000000002546c1e5 100 0 0 10 0
   4: 00000000000000000000000001000000:0BB8 00000000000000000000000001000000:9C40 01 00000000:00000000 00:00000000 00000000     0        0 13845435 1 000000002546c1e6 20 4 30 10 -1
   5: 000000000000000000000000010000:0BB8 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0
";
        assert_eq!(
            parse_table(text, true),
            vec![
                listener("[::1]:3000", 2, None),
                listener("[::]:8080", 0, None),
                listener("[::ffff:127.0.0.1]:80", 0, None),
                listener("[2001:db8::1]:443", 0, None),
            ]
        );
    }

    #[test]
    fn parses_ss_output() {
        let text = "State  Recv-Q Send-Q      Local Address:Port  Peer Address:PortProcess
LISTEN 0      128               0.0.0.0:2024       0.0.0.0:*
LISTEN 3      7               127.0.0.1:54181      0.0.0.0:*
LISTEN 0      3      [::ffff:127.0.0.1]:50575            *:*
LISTEN 0      4096                    *:60513            *:*
LISTEN 0      4096        127.0.0.53%lo:53         0.0.0.0:*
LISTEN 0      5        [fe80::1]%eth0:22              [::]:*
ESTAB  0      0             127.0.0.1:1          127.0.0.1:2
";
        let ip = |s: &str| Some(s.parse::<IpAddr>().expect("test ip"));
        assert_eq!(
            parse_ss(text),
            vec![
                (ip("0.0.0.0"), 2024, 128),
                (ip("127.0.0.1"), 54181, 7),
                (ip("::ffff:127.0.0.1"), 50575, 3),
                (None, 60513, 4096),
                (ip("127.0.0.53"), 53, 4096),
                (ip("fe80::1"), 22, 5),
            ]
        );
    }

    #[test]
    fn applies_backlogs_only_when_unambiguous() {
        let mut listeners = [
            listener("127.0.0.1:3000", 0, None),
            listener("[::]:8080", 0, None),
            listener("0.0.0.0:9000", 0, None),
            listener("0.0.0.0:9000", 0, None),
            listener("127.0.0.1:4000", 0, None),
        ];
        let ip = |s: &str| Some(s.parse::<IpAddr>().expect("test ip"));
        let entries = [
            (ip("127.0.0.1"), 3000, 128),
            (None, 8080, 4096),
            // Two SO_REUSEPORT sockets with different backlogs: cannot tell which is which.
            (ip("0.0.0.0"), 9000, 10),
            (ip("0.0.0.0"), 9000, 20),
        ];
        apply_backlogs(&mut listeners, &entries);
        let backlogs: Vec<Option<u32>> = listeners.iter().map(|l| l.backlog).collect();
        assert_eq!(backlogs, [Some(128), Some(4096), None, None, None]);
    }
}
