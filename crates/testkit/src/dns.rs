//! A name server on UDP `127.0.0.1:0` that fails every query in one chosen way. It parses
//! just enough of a query to answer it: the ID and the question are copied back.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// How the mock name server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnsAnswer {
    /// RCODE 3: the name does not exist.
    NxDomain,
    /// RCODE 2: the server failed.
    ServFail,
    /// Never answers.
    Silent,
}

impl DnsAnswer {
    const fn rcode(self) -> Option<u8> {
        match self {
            Self::NxDomain => Some(3),
            Self::ServFail => Some(2),
            Self::Silent => None,
        }
    }
}

/// The mock name server. Stops when dropped.
#[derive(Debug)]
pub struct MockDns {
    addr: SocketAddr,
    queries: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MockDns {
    pub fn start(answer: DnsAnswer) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind UDP: {e}"));
        let addr = socket
            .local_addr()
            .unwrap_or_else(|e| panic!("local_addr: {e}"));
        let _ = socket.set_read_timeout(Some(Duration::from_millis(50)));
        let queries = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (count, stopped) = (Arc::clone(&queries), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while !stopped.load(Ordering::Relaxed) {
                let Ok((n, from)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                count.fetch_add(1, Ordering::Relaxed);
                if let Some(reply) = answer.rcode().and_then(|rcode| reply(&buf[..n], rcode)) {
                    let _ = socket.send_to(&reply, from);
                }
            }
        });
        Self {
            addr,
            queries,
            stop,
            thread: Some(thread),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Queries received so far.
    pub fn queries(&self) -> usize {
        self.queries.load(Ordering::Relaxed)
    }
}

impl Drop for MockDns {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A response header and the query's question, with `rcode`: QR set, opcode and RD copied, RA
/// set, no records. `None` when the query is too short to have a question.
fn reply(query: &[u8], rcode: u8) -> Option<Vec<u8>> {
    if query.len() < 12 {
        return None;
    }
    // The question: a name (length-prefixed labels ending in a zero byte), QTYPE, QCLASS.
    let mut end = 12;
    loop {
        let len = usize::from(*query.get(end)?);
        end += 1 + len;
        if len == 0 {
            break;
        }
    }
    end += 4;
    let question = query.get(12..end)?;
    let mut out = Vec::with_capacity(end);
    out.extend_from_slice(&query[0..2]); // ID
    out.push(0x80 | (query[2] & 0x79)); // QR, opcode, RD (AA and TC clear)
    out.push(0x80 | (rcode & 0x0f)); // RA, RCODE
    out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // QDCOUNT 1, no records
    out.extend_from_slice(question);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_with_id_question_and_rcode() {
        // ID 0xabcd, RD, one question: app.test A IN
        let mut query = vec![0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        query.extend_from_slice(b"\x03app\x04test\x00\x00\x01\x00\x01");
        let out = reply(&query, 3).unwrap();
        assert_eq!(&out[..4], &[0xab, 0xcd, 0x81, 0x83]);
        assert_eq!(&out[12..], &query[12..]);
        assert!(reply(&query[..14], 3).is_none());
    }
}
