//! HTTP/1.1 and WebSocket framing for both ends of the soak: a buffered connection that heads,
//! bodies (`Content-Length`, chunked, or up to the close) and frames are read from, the body
//! pattern every upload and download carries, and the small pieces a WebSocket handshake needs
//! (SHA-1, base64). std only, like the other bench tools.

use std::io::{self, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use gatehouse_bench::header_end;

/// Largest header section read.
pub(crate) const MAX_HEAD: usize = 64 * 1024;

/// Milliseconds since the Unix epoch (the clock `date +%s%3N` in the script reads too).
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Byte `i` of every body: a period of 251 (prime), so a shifted or repeated piece shows.
pub(crate) fn pattern_byte(i: u64) -> u8 {
    ((i % 251) * 31 % 251) as u8 ^ 0x5a
}

/// One period of the pattern repeated past 1 MiB: `pattern_slice(offset, n)` is a borrowed view.
fn pattern_buffer() -> &'static [u8] {
    static BUF: OnceLock<Vec<u8>> = OnceLock::new();
    BUF.get_or_init(|| (0..(1 << 20) + 251).map(pattern_byte).collect())
}

/// Up to 1 MiB of the pattern starting at body offset `offset`.
pub(crate) fn pattern_slice(offset: u64, n: usize) -> &'static [u8] {
    let start = (offset % 251) as usize;
    &pattern_buffer()[start..start + n.min(1 << 20)]
}

/// Writes `n` pattern bytes starting at body offset 0, in pieces of at most `piece` bytes.
pub(crate) fn write_pattern(w: &mut impl Write, n: u64, piece: usize) -> io::Result<()> {
    let mut done = 0u64;
    while done < n {
        let len = (n - done).min(piece as u64) as usize;
        w.write_all(pattern_slice(done, len))?;
        done += len as u64;
    }
    Ok(())
}

/// Checks body bytes against the pattern as they arrive.
#[derive(Debug, Default)]
pub(crate) struct PatternCheck {
    pub(crate) len: u64,
    /// Offset of the first byte that differs.
    pub(crate) bad_at: Option<u64>,
}

impl PatternCheck {
    pub(crate) fn feed(&mut self, bytes: &[u8]) {
        if self.bad_at.is_none() {
            let expected = pattern_slice(self.len, bytes.len());
            if let Some(p) = bytes.iter().zip(expected).position(|(a, b)| a != b) {
                self.bad_at = Some(self.len + p as u64);
            }
        }
        self.len += bytes.len() as u64;
    }
}

/// A TCP stream with a read buffer; bytes read past the end of one message stay for the next.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) stream: TcpStream,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Messages read on this connection so far (a reused keep-alive connection has some).
    pub(crate) exchanges: u64,
}

impl Conn {
    pub(crate) fn new(stream: TcpStream) -> Self {
        let _ = stream.set_nodelay(true);
        Self {
            stream,
            buf: vec![0; MAX_HEAD + 1024],
            start: 0,
            end: 0,
            exchanges: 0,
        }
    }

    fn buffered(&self) -> usize {
        self.end - self.start
    }

    /// Reads at most `max` more bytes into the buffer; false at EOF.
    fn fill(&mut self, max: usize) -> io::Result<bool> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            return Err(io::Error::new(ErrorKind::InvalidData, "message too long"));
        }
        let until = self.buf.len().min(self.end.saturating_add(max.max(1)));
        loop {
            match self.stream.read(&mut self.buf[self.end..until]) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    self.end += n;
                    return Ok(true);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// The next header section, or `None` when the peer closed before sending a byte of it.
    pub(crate) fn read_head(&mut self) -> io::Result<Option<Vec<u8>>> {
        loop {
            if let Some(len) = header_end(&self.buf[self.start..self.end]) {
                let head = self.buf[self.start..self.start + len].to_vec();
                self.start += len;
                self.exchanges += 1;
                return Ok(Some(head));
            }
            if self.buffered() >= MAX_HEAD {
                return Err(io::Error::new(
                    ErrorKind::InvalidData,
                    "header section too long",
                ));
            }
            if !self.fill(usize::MAX)? {
                return if self.buffered() == 0 {
                    Ok(None)
                } else {
                    Err(eof("in a header section"))
                };
            }
        }
    }

    /// Hands the next `n` body bytes to `f`, reading at most `max_read` bytes at a time.
    pub(crate) fn read_body(
        &mut self,
        mut n: u64,
        max_read: usize,
        f: &mut dyn FnMut(&[u8]),
    ) -> io::Result<()> {
        while n > 0 {
            if self.buffered() == 0 && !self.fill(max_read)? {
                return Err(eof("in a body"));
            }
            let take = (self.buffered() as u64).min(n).min(max_read as u64) as usize;
            f(&self.buf[self.start..self.start + take]);
            self.start += take;
            n -= take as u64;
        }
        Ok(())
    }

    /// Hands body bytes to `f` until the peer closes; how many there were.
    pub(crate) fn read_to_close(
        &mut self,
        max_read: usize,
        f: &mut dyn FnMut(&[u8]),
    ) -> io::Result<u64> {
        let mut total = 0u64;
        loop {
            if self.buffered() == 0 && !self.fill(max_read)? {
                return Ok(total);
            }
            let take = self.buffered().min(max_read);
            f(&self.buf[self.start..self.start + take]);
            self.start += take;
            total += take as u64;
        }
    }

    /// A chunked body (trailers skipped), handed to `f`; its decoded length.
    pub(crate) fn read_chunked(
        &mut self,
        max_read: usize,
        f: &mut dyn FnMut(&[u8]),
    ) -> io::Result<u64> {
        let mut total = 0u64;
        loop {
            let line = self.read_line()?;
            let size = line.split(|&b| b == b';').next().unwrap_or_default();
            let size = std::str::from_utf8(size)
                .ok()
                .and_then(|s| u64::from_str_radix(s.trim(), 16).ok())
                .ok_or_else(|| io::Error::new(ErrorKind::InvalidData, "bad chunk size line"))?;
            if size == 0 {
                while !self.read_line()?.is_empty() {}
                return Ok(total);
            }
            self.read_body(size, max_read, f)?;
            total += size;
            if !self.read_line()?.is_empty() {
                return Err(io::Error::new(
                    ErrorKind::InvalidData,
                    "chunk not followed by CRLF",
                ));
            }
        }
    }

    /// One line without its CRLF.
    fn read_line(&mut self) -> io::Result<Vec<u8>> {
        loop {
            if let Some(p) = self.buf[self.start..self.end]
                .iter()
                .position(|&b| b == b'\n')
            {
                let line = &self.buf[self.start..self.start + p];
                let line = line.strip_suffix(b"\r").unwrap_or(line).to_vec();
                self.start += p + 1;
                return Ok(line);
            }
            if self.buffered() >= MAX_HEAD {
                return Err(io::Error::new(ErrorKind::InvalidData, "line too long"));
            }
            if !self.fill(usize::MAX)? {
                return Err(eof("in a chunk size line"));
            }
        }
    }

    /// Exactly `n` bytes.
    pub(crate) fn read_vec(&mut self, n: usize) -> io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(n);
        self.read_body(n as u64, usize::MAX, &mut |b| out.extend_from_slice(b))?;
        Ok(out)
    }
}

pub(crate) fn eof(what: &str) -> io::Error {
    io::Error::new(
        ErrorKind::UnexpectedEof,
        format!("connection closed {what}"),
    )
}

/// The status code of a response head.
pub(crate) fn status_of(head: &[u8]) -> Option<u16> {
    let line = head.split(|&b| b == b'\n').next()?;
    let mut parts = line.split(|&b| b == b' ');
    let version = parts.next()?;
    if !version.starts_with(b"HTTP/1.") {
        return None;
    }
    std::str::from_utf8(parts.next()?).ok()?.trim().parse().ok()
}

// ---------------------------------------------------------------------------------------------
// WebSocket (RFC 6455): the accept key and frames.
// ---------------------------------------------------------------------------------------------

pub(crate) const OP_TEXT: u8 = 1;
pub(crate) const OP_BINARY: u8 = 2;
pub(crate) const OP_CLOSE: u8 = 8;
pub(crate) const OP_PING: u8 = 9;
pub(crate) const OP_PONG: u8 = 10;

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`.
pub(crate) fn ws_accept(key: &str) -> String {
    let mut input = key.trim().as_bytes().to_vec();
    input.extend_from_slice(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64(&sha1(&input))
}

#[derive(Debug)]
pub(crate) struct Frame {
    pub(crate) fin: bool,
    pub(crate) opcode: u8,
    pub(crate) payload: Vec<u8>,
}

/// Largest frame payload accepted.
const MAX_FRAME: u64 = 1 << 20;

/// One frame, unmasked.
pub(crate) fn read_frame(conn: &mut Conn) -> io::Result<Frame> {
    let first = conn.read_vec(2)?;
    let fin = first[0] & 0x80 != 0;
    let opcode = first[0] & 0x0f;
    let masked = first[1] & 0x80 != 0;
    let len = match first[1] & 0x7f {
        126 => {
            let b = conn.read_vec(2)?;
            u64::from(u16::from_be_bytes([b[0], b[1]]))
        }
        127 => {
            let b = conn.read_vec(8)?;
            u64::from_be_bytes(b.try_into().unwrap_or_default())
        }
        n => u64::from(n),
    };
    if len > MAX_FRAME {
        return Err(io::Error::new(ErrorKind::InvalidData, "frame too large"));
    }
    let mask = if masked {
        Some(conn.read_vec(4)?)
    } else {
        None
    };
    let mut payload = conn.read_vec(len as usize)?;
    if let Some(mask) = mask {
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= mask[i % 4];
        }
    }
    Ok(Frame {
        fin,
        opcode,
        payload,
    })
}

/// One final frame; masked with `mask` (clients must mask, servers must not).
pub(crate) fn write_frame(
    w: &mut impl Write,
    opcode: u8,
    payload: &[u8],
    mask: Option<[u8; 4]>,
) -> io::Result<()> {
    let mut out = Vec::with_capacity(payload.len() + 14);
    out.push(0x80 | opcode);
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(mask_bit | n as u8),
        n if n <= 0xffff => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(mask) => {
            out.extend_from_slice(&mask);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
    w.write_all(&out)
}

fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [
        0x6745_2301,
        0xEFCD_AB89,
        0x98BA_DCFE,
        0x1032_5476,
        0xC3D2_E1F0,
    ];
    let mut msg = data.to_vec();
    let bit_len = (data.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bit_len.to_be_bytes());
    for block in msg.chunks(64) {
        let mut w = [0u32; 80];
        for (i, word) in block.chunks(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, &wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A82_7999),
                20..=39 => (b ^ c ^ d, 0x6ED9_EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
                _ => (b ^ c ^ d, 0xCA62_C1D6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 20];
    for (i, word) in h.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&word.to_be_bytes());
    }
    out
}

pub(crate) fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Randomness: xorshift64*, seeded per thread; good enough to vary sizes and pauses.
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `lo..=hi`.
    pub(crate) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }

    /// True with probability `1 / n`.
    pub(crate) fn one_in(&mut self, n: u64) -> bool {
        self.next().is_multiple_of(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn websocket_accept_key_of_rfc_6455() {
        assert_eq!(
            ws_accept("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"a"), "YQ==");
    }

    #[test]
    fn a_chunk_size_line_split_across_reads() {
        // The second read appends to a partial line: `fill` with no limit must not overflow.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let writer = std::thread::spawn(move || {
            let mut client = TcpStream::connect(addr).unwrap();
            client.set_nodelay(true).unwrap();
            client.write_all(b"4\r\nabcd\r\n1").unwrap();
            std::thread::sleep(std::time::Duration::from_millis(100));
            client.write_all(b"\r\nx\r\n0\r\n\r\n").unwrap();
        });
        let mut conn = Conn::new(listener.accept().unwrap().0);
        let mut body = Vec::new();
        let len = conn
            .read_chunked(usize::MAX, &mut |b| body.extend_from_slice(b))
            .unwrap();
        writer.join().unwrap();
        assert_eq!((len, body.as_slice()), (5, b"abcdx".as_slice()));
    }

    #[test]
    fn pattern_check_finds_the_first_wrong_byte() {
        let mut check = PatternCheck::default();
        check.feed(pattern_slice(0, 1000));
        check.feed(pattern_slice(1000, 24));
        assert_eq!((check.len, check.bad_at), (1024, None));
        let mut bad = pattern_slice(1024, 10).to_vec();
        bad[3] ^= 1;
        check.feed(&bad);
        assert_eq!(check.bad_at, Some(1027));
    }
}
