//! A name server on UDP `127.0.0.1:0` that answers every query in one chosen way: fails it
//! (NXDOMAIN, SERVFAIL, silence) or answers it with A/AAAA records. The answer can be changed
//! while it runs, so a test can "redeploy" a backend to a new address. It parses just enough
//! of a query to answer it: the ID and the question are copied back.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// QTYPE A (RFC 1035 §3.2.2).
const TYPE_A: u16 = 1;
/// QTYPE AAAA (RFC 3596 §2.1).
const TYPE_AAAA: u16 = 28;

/// How the mock name server answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnsAnswer {
    /// RCODE 3: the name does not exist.
    NxDomain,
    /// RCODE 2: the server failed.
    ServFail,
    /// Never answers.
    Silent,
    /// NOERROR: A queries get one record per `v4` address, AAAA queries one per `v6` address,
    /// each with this TTL (seconds). An empty list (and any other query type) is a NOERROR
    /// answer with no records.
    Records {
        v4: Vec<Ipv4Addr>,
        v6: Vec<Ipv6Addr>,
        ttl: u32,
    },
}

impl DnsAnswer {
    /// A records only.
    pub fn v4(addrs: impl IntoIterator<Item = Ipv4Addr>, ttl: u32) -> Self {
        Self::Records {
            v4: addrs.into_iter().collect(),
            v6: Vec::new(),
            ttl,
        }
    }

    /// The reply to `query`; `None` for silence or a query too short to have a question.
    fn reply(&self, query: &[u8]) -> Option<Vec<u8>> {
        match self {
            Self::NxDomain => reply(query, 3, &[], 0),
            Self::ServFail => reply(query, 2, &[], 0),
            Self::Silent => None,
            Self::Records { v4, v6, ttl } => {
                let rdata: Vec<Vec<u8>> = match question_type(query)? {
                    TYPE_A => v4.iter().map(|ip| ip.octets().to_vec()).collect(),
                    TYPE_AAAA => v6.iter().map(|ip| ip.octets().to_vec()).collect(),
                    _ => Vec::new(),
                };
                reply(query, 0, &rdata, *ttl)
            }
        }
    }
}

/// The mock name server. Stops when dropped.
#[derive(Debug)]
pub struct MockDns {
    addr: SocketAddr,
    answer: Arc<Mutex<DnsAnswer>>,
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
        let answer = Arc::new(Mutex::new(answer));
        let queries = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (current, count, stopped) =
            (Arc::clone(&answer), Arc::clone(&queries), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while !stopped.load(Ordering::Relaxed) {
                let Ok((n, from)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                count.fetch_add(1, Ordering::Relaxed);
                let reply = current
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .reply(&buf[..n]);
                if let Some(reply) = reply {
                    let _ = socket.send_to(&reply, from);
                }
            }
        });
        Self {
            addr,
            answer,
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

    /// Answers every query from now on with `answer`.
    pub fn set_answer(&self, answer: DnsAnswer) {
        *self.answer.lock().unwrap_or_else(PoisonError::into_inner) = answer;
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

/// Where the question (a name of length-prefixed labels ending in a zero byte, QTYPE,
/// QCLASS) ends; `None` when the query is too short to have one.
fn question_end(query: &[u8]) -> Option<usize> {
    if query.len() < 12 {
        return None;
    }
    let mut end = 12;
    loop {
        let len = usize::from(*query.get(end)?);
        end += 1 + len;
        if len == 0 {
            break;
        }
    }
    end += 4;
    (end <= query.len()).then_some(end)
}

/// The QTYPE of the query's question.
fn question_type(query: &[u8]) -> Option<u16> {
    let end = question_end(query)?;
    Some(u16::from_be_bytes([query[end - 4], query[end - 3]]))
}

/// A response header and the query's question, with `rcode`: QR set, opcode and RD copied, RA
/// set; then one answer record (of the question's type, class IN, this TTL) per `rdata`, its
/// name a pointer to the question's. `None` when the query is too short to have a question.
fn reply(query: &[u8], rcode: u8, rdata: &[Vec<u8>], ttl: u32) -> Option<Vec<u8>> {
    let end = question_end(query)?;
    let question = &query[12..end];
    let ancount = u16::try_from(rdata.len()).ok()?;
    let mut out = Vec::with_capacity(end + rdata.len() * 28);
    out.extend_from_slice(&query[0..2]); // ID
    out.push(0x80 | (query[2] & 0x79)); // QR, opcode, RD (AA and TC clear)
    out.push(0x80 | (rcode & 0x0f)); // RA, RCODE
    out.extend_from_slice(&[0, 1]); // QDCOUNT 1
    out.extend_from_slice(&ancount.to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]); // no authority or additional records
    out.extend_from_slice(question);
    let qtype_and_class = &query[end - 4..end];
    for data in rdata {
        out.extend_from_slice(&[0xc0, 0x0c]); // the name: a pointer to the question's (offset 12)
        out.extend_from_slice(qtype_and_class);
        out.extend_from_slice(&ttl.to_be_bytes());
        out.extend_from_slice(&u16::try_from(data.len()).ok()?.to_be_bytes());
        out.extend_from_slice(data);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ID 0xabcd, RD, one question: app.test QTYPE IN
    fn query(qtype: u16) -> Vec<u8> {
        let mut query = vec![0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        query.extend_from_slice(b"\x03app\x04test\x00");
        query.extend_from_slice(&qtype.to_be_bytes());
        query.extend_from_slice(&[0, 1]);
        query
    }

    #[test]
    fn answers_with_id_question_and_rcode() {
        let query = query(TYPE_A);
        let out = DnsAnswer::NxDomain.reply(&query).unwrap();
        assert_eq!(&out[..4], &[0xab, 0xcd, 0x81, 0x83]);
        assert_eq!(&out[4..12], &[0, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&out[12..], &query[12..]);
        assert!(DnsAnswer::ServFail.reply(&query[..14]).is_none());
        assert!(DnsAnswer::Silent.reply(&query).is_none());
    }

    #[test]
    fn answers_a_and_aaaa_records() {
        let answer = DnsAnswer::Records {
            v4: vec![Ipv4Addr::new(127, 0, 0, 2), Ipv4Addr::new(127, 0, 0, 3)],
            v6: vec![Ipv6Addr::LOCALHOST],
            ttl: 7,
        };
        let a = query(TYPE_A);
        let out = answer.reply(&a).unwrap();
        assert_eq!(&out[2..4], &[0x81, 0x80], "NOERROR");
        assert_eq!(&out[6..8], &[0, 2], "ANCOUNT");
        let records = &out[a.len()..];
        let first = [0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 7, 0, 4, 127, 0, 0, 2];
        assert_eq!(&records[..16], &first);
        assert_eq!(
            &records[16..],
            &[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 7, 0, 4, 127, 0, 0, 3]
        );

        let aaaa = query(TYPE_AAAA);
        let out = answer.reply(&aaaa).unwrap();
        assert_eq!(&out[6..8], &[0, 1]);
        let record = &out[aaaa.len()..];
        assert_eq!(&record[..12], &[0xc0, 0x0c, 0, 28, 0, 1, 0, 0, 0, 7, 0, 16]);
        assert_eq!(&record[12..], &Ipv6Addr::LOCALHOST.octets());

        // No v6 addresses: NOERROR, no records. Other types: the same.
        let out = DnsAnswer::v4([Ipv4Addr::LOCALHOST], 1)
            .reply(&aaaa)
            .unwrap();
        assert_eq!((&out[2..4], &out[6..8]), (&[0x81, 0x80][..], &[0, 0][..]));
        assert_eq!(out.len(), aaaa.len());
        let out = answer.reply(&query(16)).unwrap();
        assert_eq!(&out[6..8], &[0, 0]);
    }

    #[test]
    fn set_answer_changes_what_a_resolver_gets() {
        let dns = MockDns::start(DnsAnswer::NxDomain);
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let ask = || {
            socket.send_to(&query(TYPE_A), dns.addr()).unwrap();
            let mut buf = [0u8; 512];
            let (n, _) = socket.recv_from(&mut buf).unwrap();
            buf[..n].to_vec()
        };
        assert_eq!(ask()[3] & 0x0f, 3);
        dns.set_answer(DnsAnswer::v4([Ipv4Addr::new(10, 1, 2, 3)], 30));
        let out = ask();
        assert_eq!(out[3] & 0x0f, 0);
        assert!(out.ends_with(&[10, 1, 2, 3]));
        assert_eq!(dns.queries(), 2);
    }
}
