//! The codings themselves, driven one body frame at a time.
//!
//! An [`Encoder`] takes a frame's bytes and returns what the coding has ready; `flush` makes it
//! give out everything it holds (so a paused stream is not held back), `finish` ends the stream.
//! Its output is never more than a little above its input, so it is taken whole after each call.
//!
//! A [`Decoder`] writes into a caller's fixed buffer and says how much input it took: a few
//! compressed bytes can stand for gigabytes, so output is produced a buffer at a time, never
//! all at once.

use std::io::{self, Write as _};

use flate2::{Crc, Decompress, FlushDecompress};
use gatehouse_config::{CompressConfig, Encoding};

/// The largest window of brotli and zstd: 2^18 = 256 KiB. Their defaults (4 MiB for brotli,
/// 2 MiB for zstd level 3) cost memory per response being compressed, for little gain on web
/// responses. Measured with 50 concurrent 14 MB text responses to slow clients, gatehouse held
/// about 2.2 MiB per zstd response with a 1 MiB window and 1.4 MiB with this one (its output no
/// larger); brotli stayed near 1.7-1.9 MiB either way (its hash tables dominate).
const MAX_WINDOW_LOG: u32 = 18;
/// The smallest window both allow.
const MIN_WINDOW_LOG: u32 = 10;
/// The largest zstd window a body to decode may ask for: 2^23 = 8 MiB, the limit of the zstd
/// content coding (RFC 9659 §3); a frame that asks for more is refused, not given the memory.
const ZSTD_DECODE_WINDOW_LOG_MAX: u32 = 23;
/// A gzip header with names and comments larger than this is not one an upstream means.
const MAX_GZIP_HEADER: usize = 64 * 1024;

// === Encoder ===

/// One response's compressor, writing into a buffer that is emptied after each call.
pub(crate) enum Encoder {
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    Brotli(Box<brotli::CompressorWriter<Vec<u8>>>),
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Gzip(_) => "Encoder(gzip)",
            Self::Brotli(_) => "Encoder(br)",
            Self::Zstd(_) => "Encoder(zstd)",
        })
    }
}

impl Encoder {
    /// An encoder for a body of `length` bytes when that is known: brotli's and zstd's window
    /// (and zstd's tables) are then no larger than the body needs, so a small response does
    /// not allocate (and clear) the megabytes a long one uses.
    pub(crate) fn new(
        encoding: Encoding,
        config: &CompressConfig,
        length: Option<u64>,
    ) -> io::Result<Self> {
        let window_log = window_log(length);
        Ok(match encoding {
            Encoding::Gzip => Self::Gzip(flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::new(config.gzip_level),
            )),
            Encoding::Brotli => Self::Brotli(Box::new(brotli::CompressorWriter::new(
                Vec::new(),
                16 * 1024,
                config.brotli_level,
                window_log,
            ))),
            Encoding::Zstd => {
                let level = i32::try_from(config.zstd_level).unwrap_or(3);
                let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), level)?;
                // The length is the body's exactly (hyper enforces an upstream's
                // Content-Length; a stored copy's is its own), so it can be pledged.
                encoder.set_pledged_src_size(length)?;
                encoder.window_log(window_log)?;
                Self::Zstd(encoder)
            }
        })
    }

    /// Compresses `data`; returns what is ready to send (often nothing yet).
    pub(crate) fn write(&mut self, data: &[u8]) -> io::Result<Vec<u8>> {
        match self {
            Self::Gzip(e) => e.write_all(data)?,
            Self::Brotli(e) => e.write_all(data)?,
            Self::Zstd(e) => e.write_all(data)?,
        }
        Ok(self.take())
    }

    /// Everything compressed so far, so that a client can decode it now (a sync flush).
    pub(crate) fn flush(&mut self) -> io::Result<Vec<u8>> {
        match self {
            Self::Gzip(e) => e.flush()?,
            Self::Brotli(e) => e.flush()?,
            Self::Zstd(e) => e.flush()?,
        }
        Ok(self.take())
    }

    /// Ends the stream: the rest of the output and the coding's trailer.
    pub(crate) fn finish(self) -> io::Result<Vec<u8>> {
        match self {
            Self::Gzip(e) => e.finish(),
            Self::Brotli(e) => Ok(e.into_inner()),
            Self::Zstd(e) => e.finish(),
        }
    }

    fn take(&mut self) -> Vec<u8> {
        let buffer = match self {
            Self::Gzip(e) => e.get_mut(),
            Self::Brotli(e) => e.get_mut(),
            Self::Zstd(e) => e.get_mut(),
        };
        std::mem::take(buffer)
    }
}

/// The window for a body of `length` bytes: the smallest power of two that holds it, within
/// the bounds; the largest when the length is unknown.
fn window_log(length: Option<u64>) -> u32 {
    length.map_or(MAX_WINDOW_LOG, |n| {
        let ceil_log2 = u64::BITS - n.saturating_sub(1).leading_zeros();
        ceil_log2.clamp(MIN_WINDOW_LOG, MAX_WINDOW_LOG)
    })
}

// === Decoder ===

/// One response's decompressor.
pub(crate) enum Decoder {
    Gzip(Box<GzipDecoder>),
    Brotli(Box<BrotliDecoder>),
    Zstd(ZstdDecoder),
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Gzip(_) => "Decoder(gzip)",
            Self::Brotli(_) => "Decoder(br)",
            Self::Zstd(_) => "Decoder(zstd)",
        })
    }
}

/// What one decoding step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Step {
    /// Input bytes taken.
    pub(crate) read: usize,
    /// Output bytes written.
    pub(crate) written: usize,
}

impl Decoder {
    pub(crate) fn new(encoding: Encoding) -> io::Result<Self> {
        Ok(match encoding {
            Encoding::Gzip => Self::Gzip(Box::default()),
            Encoding::Brotli => Self::Brotli(Box::default()),
            Encoding::Zstd => {
                let mut inner = zstd::stream::raw::Decoder::new()?;
                inner.set_parameter(zstd::stream::raw::DParameter::WindowLogMax(
                    ZSTD_DECODE_WINDOW_LOG_MAX,
                ))?;
                Self::Zstd(ZstdDecoder {
                    inner,
                    ended: false,
                })
            }
        })
    }

    /// Decodes from `input` into `output` as far as either allows.
    pub(crate) fn decode(&mut self, input: &[u8], output: &mut [u8]) -> io::Result<Step> {
        match self {
            Self::Gzip(d) => d.decode(input, output),
            Self::Brotli(d) => d.decode(input, output),
            Self::Zstd(d) => d.decode(input, output),
        }
    }

    /// The compressed stream is complete (a body that ends before this was truncated).
    pub(crate) fn ended(&self) -> bool {
        match self {
            Self::Gzip(d) => matches!(d.state, GzipState::Done),
            Self::Brotli(d) => d.ended,
            Self::Zstd(d) => d.ended,
        }
    }
}

fn corrupt(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

/// gzip (RFC 1952): the header read by hand, the deflate data by flate2, the trailer checked.
pub(crate) struct GzipDecoder {
    state: GzipState,
    /// Header or trailer bytes gathered so far.
    held: Vec<u8>,
    inflate: Decompress,
    crc: Crc,
}

enum GzipState {
    Header,
    Body,
    Trailer,
    Done,
}

impl Default for GzipDecoder {
    fn default() -> Self {
        Self {
            state: GzipState::Header,
            held: Vec::new(),
            inflate: Decompress::new(false),
            crc: Crc::new(),
        }
    }
}

impl GzipDecoder {
    fn decode(&mut self, input: &[u8], output: &mut [u8]) -> io::Result<Step> {
        match self.state {
            GzipState::Header => {
                // Gathered a byte at a time is fine: headers are ten bytes and a name.
                let mut read = 0;
                while read < input.len() {
                    self.held.push(input[read]);
                    read += 1;
                    if let Some(len) = gzip_header_len(&self.held)? {
                        debug_assert_eq!(len, self.held.len());
                        self.held.clear();
                        self.state = GzipState::Body;
                        break;
                    }
                    if self.held.len() > MAX_GZIP_HEADER {
                        return Err(corrupt("gzip header larger than 64 KiB"));
                    }
                }
                Ok(Step { read, written: 0 })
            }
            GzipState::Body => {
                let (in_before, out_before) = (self.inflate.total_in(), self.inflate.total_out());
                let status = self
                    .inflate
                    .decompress(input, output, FlushDecompress::None)
                    .map_err(|e| corrupt(format!("gzip data: {e}")))?;
                let read = usize::try_from(self.inflate.total_in() - in_before).unwrap_or(0);
                let written = usize::try_from(self.inflate.total_out() - out_before).unwrap_or(0);
                self.crc.update(&output[..written]);
                if status == flate2::Status::StreamEnd {
                    self.state = GzipState::Trailer;
                }
                Ok(Step { read, written })
            }
            GzipState::Trailer => {
                let read = (8 - self.held.len()).min(input.len());
                self.held.extend_from_slice(&input[..read]);
                if self.held.len() == 8 {
                    let crc = u32::from_le_bytes([
                        self.held[0],
                        self.held[1],
                        self.held[2],
                        self.held[3],
                    ]);
                    let size = u32::from_le_bytes([
                        self.held[4],
                        self.held[5],
                        self.held[6],
                        self.held[7],
                    ]);
                    if crc != self.crc.sum() || size != self.crc.amount() {
                        return Err(corrupt(
                            "gzip trailer does not match the data (CRC or length)",
                        ));
                    }
                    self.held.clear();
                    self.state = GzipState::Done;
                }
                Ok(Step { read, written: 0 })
            }
            GzipState::Done => {
                if input.is_empty() {
                    return Ok(Step {
                        read: 0,
                        written: 0,
                    });
                }
                // Another member follows (RFC 1952 §2.2): decoded as a continuation.
                self.inflate.reset(false);
                self.crc.reset();
                self.state = GzipState::Header;
                self.decode(input, output)
            }
        }
    }
}

/// The length of a complete gzip header at the start of `held`, `None` while incomplete.
fn gzip_header_len(held: &[u8]) -> io::Result<Option<usize>> {
    const FHCRC: u8 = 0x02;
    const FEXTRA: u8 = 0x04;
    const FNAME: u8 = 0x08;
    const FCOMMENT: u8 = 0x10;
    if held.len() >= 2 && held[..2] != [0x1f, 0x8b] {
        return Err(corrupt("not gzip data (bad magic bytes)"));
    }
    if held.len() >= 3 && held[2] != 8 {
        return Err(corrupt("gzip with a compression method other than deflate"));
    }
    if held.len() < 10 {
        return Ok(None);
    }
    let flags = held[3];
    let mut at = 10;
    if flags & FEXTRA != 0 {
        if held.len() < at + 2 {
            return Ok(None);
        }
        at += 2 + usize::from(u16::from_le_bytes([held[at], held[at + 1]]));
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            match held
                .get(at..)
                .and_then(|rest| rest.iter().position(|&b| b == 0))
            {
                Some(zero) => at += zero + 1,
                None => return Ok(None),
            }
        }
    }
    if flags & FHCRC != 0 {
        at += 2;
    }
    Ok((held.len() >= at).then_some(at))
}

/// brotli (RFC 7932) through the decoder's streaming call.
pub(crate) struct BrotliDecoder {
    state: brotli::BrotliState<
        brotli::HeapAlloc<u8>,
        brotli::HeapAlloc<u32>,
        brotli::HeapAlloc<brotli::HuffmanCode>,
    >,
    ended: bool,
}

impl Default for BrotliDecoder {
    fn default() -> Self {
        Self {
            state: brotli::BrotliState::new_strict(
                brotli::HeapAlloc::default(),
                brotli::HeapAlloc::default(),
                brotli::HeapAlloc::default(),
            ),
            ended: false,
        }
    }
}

impl BrotliDecoder {
    fn decode(&mut self, input: &[u8], output: &mut [u8]) -> io::Result<Step> {
        if self.ended {
            if input.is_empty() {
                return Ok(Step {
                    read: 0,
                    written: 0,
                });
            }
            return Err(corrupt("data after the end of the brotli stream"));
        }
        let (mut available_in, mut input_offset) = (input.len(), 0);
        let (mut available_out, mut output_offset, mut total) = (output.len(), 0, 0);
        let result = brotli::BrotliDecompressStream(
            &mut available_in,
            &mut input_offset,
            input,
            &mut available_out,
            &mut output_offset,
            output,
            &mut total,
            &mut self.state,
        );
        match result {
            brotli::BrotliResult::ResultFailure => Err(corrupt("invalid brotli data")),
            brotli::BrotliResult::ResultSuccess => {
                self.ended = true;
                Ok(Step {
                    read: input_offset,
                    written: output_offset,
                })
            }
            brotli::BrotliResult::NeedsMoreInput | brotli::BrotliResult::NeedsMoreOutput => {
                Ok(Step {
                    read: input_offset,
                    written: output_offset,
                })
            }
        }
    }
}

/// zstd (RFC 8878); concatenated frames decode as one stream.
pub(crate) struct ZstdDecoder {
    inner: zstd::stream::raw::Decoder<'static>,
    /// The last step completed a frame.
    ended: bool,
}

impl ZstdDecoder {
    fn decode(&mut self, input: &[u8], output: &mut [u8]) -> io::Result<Step> {
        use zstd::stream::raw::Operation as _;
        if input.is_empty() && self.ended {
            return Ok(Step {
                read: 0,
                written: 0,
            });
        }
        let status = self.inner.run_on_buffers(input, output)?;
        if status.bytes_read > 0 || status.bytes_written > 0 {
            self.ended = status.remaining == 0;
        }
        Ok(Step {
            read: status.bytes_read,
            written: status.bytes_written,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> CompressConfig {
        CompressConfig {
            enabled: true,
            encodings: vec![Encoding::Zstd, Encoding::Brotli, Encoding::Gzip],
            min_size: 0,
            types: vec!["text/*".into()],
            gzip_level: 5,
            brotli_level: 4,
            zstd_level: 3,
            decompress: true,
        }
    }

    fn sample() -> Vec<u8> {
        (0..200_000u32)
            .flat_map(|i| format!("line {i} of the sample {}\n", i % 7).into_bytes())
            .collect()
    }

    /// Encodes in uneven pieces with flushes, then decodes through a small output buffer.
    fn round_trip(encoding: Encoding) {
        let data = sample();
        let mut encoder = Encoder::new(encoding, &config(), None).unwrap();
        let mut coded = Vec::new();
        for (i, piece) in data.chunks(7919).enumerate() {
            coded.extend(encoder.write(piece).unwrap());
            if i % 5 == 0 {
                coded.extend(encoder.flush().unwrap());
            }
        }
        coded.extend(encoder.finish().unwrap());
        assert!(
            coded.len() < data.len() / 4,
            "{encoding:?}: {}",
            coded.len()
        );

        let mut decoder = Decoder::new(encoding).unwrap();
        let mut out = Vec::new();
        let mut buffer = vec![0; 4096];
        for piece in coded.chunks(1000) {
            let mut rest = piece;
            loop {
                let step = decoder.decode(rest, &mut buffer).unwrap();
                out.extend_from_slice(&buffer[..step.written]);
                rest = &rest[step.read..];
                if step.read == 0 && step.written == 0 {
                    assert!(rest.is_empty(), "{encoding:?} stuck");
                    break;
                }
            }
        }
        loop {
            let step = decoder.decode(&[], &mut buffer).unwrap();
            if step.written == 0 {
                break;
            }
            out.extend_from_slice(&buffer[..step.written]);
        }
        assert!(decoder.ended(), "{encoding:?}");
        assert!(out == data, "{encoding:?}: decoded differs");
    }

    #[test]
    fn windows_fit_the_length() {
        assert_eq!(window_log(None), 18);
        assert_eq!(window_log(Some(0)), 10);
        assert_eq!(window_log(Some(1000)), 10);
        assert_eq!(window_log(Some(1025)), 11);
        assert_eq!(window_log(Some(65_536)), 16);
        assert_eq!(window_log(Some(65_537)), 17);
        assert_eq!(window_log(Some(u64::MAX)), 18);
    }

    #[test]
    fn a_known_length_round_trips() {
        let data = sample();
        for encoding in [Encoding::Gzip, Encoding::Brotli, Encoding::Zstd] {
            for data in [&data[..], &data[..3000], &data[..1]] {
                let mut encoder =
                    Encoder::new(encoding, &config(), Some(data.len() as u64)).unwrap();
                let mut coded = Vec::new();
                for piece in data.chunks(5000) {
                    coded.extend(encoder.write(piece).unwrap());
                    coded.extend(encoder.flush().unwrap());
                }
                coded.extend(encoder.finish().unwrap());
                let mut decoder = Decoder::new(encoding).unwrap();
                let mut buffer = vec![0; 64 * 1024];
                let mut out = Vec::new();
                let mut rest = &coded[..];
                loop {
                    let step = decoder.decode(rest, &mut buffer).unwrap();
                    out.extend_from_slice(&buffer[..step.written]);
                    rest = &rest[step.read..];
                    if step.read == 0 && step.written == 0 {
                        break;
                    }
                }
                assert!(
                    decoder.ended() && out == data,
                    "{encoding:?} {}",
                    data.len()
                );
            }
        }
    }

    #[test]
    fn round_trips() {
        round_trip(Encoding::Gzip);
        round_trip(Encoding::Brotli);
        round_trip(Encoding::Zstd);
    }

    #[test]
    fn flush_makes_output_decodable() {
        for encoding in [Encoding::Gzip, Encoding::Brotli, Encoding::Zstd] {
            let mut encoder = Encoder::new(encoding, &config(), None).unwrap();
            let mut coded = encoder.write(b"data: event one\n\n").unwrap();
            coded.extend(encoder.flush().unwrap());
            let mut decoder = Decoder::new(encoding).unwrap();
            let mut buffer = vec![0; 1024];
            let mut out = Vec::new();
            let mut rest = &coded[..];
            loop {
                let step = decoder.decode(rest, &mut buffer).unwrap();
                out.extend_from_slice(&buffer[..step.written]);
                rest = &rest[step.read..];
                if step.read == 0 && step.written == 0 {
                    break;
                }
            }
            assert_eq!(out, b"data: event one\n\n", "{encoding:?}");
            assert!(!decoder.ended(), "{encoding:?}");
        }
    }

    #[test]
    fn garbage_is_an_error() {
        let mut buffer = vec![0; 1024];
        assert!(
            Decoder::new(Encoding::Gzip)
                .unwrap()
                .decode(b"not gzip at all", &mut buffer)
                .is_err()
        );
        assert!(
            Decoder::new(Encoding::Zstd)
                .unwrap()
                .decode(b"not zstd at all", &mut buffer)
                .is_err()
        );
        let mut brotli = Decoder::new(Encoding::Brotli).unwrap();
        let mut failed = false;
        let mut rest: &[u8] = &[0xff; 64];
        for _ in 0..64 {
            match brotli.decode(rest, &mut buffer) {
                Err(_) => {
                    failed = true;
                    break;
                }
                Ok(step) => rest = &rest[step.read..],
            }
        }
        assert!(failed || !brotli.ended());
    }

    #[test]
    fn a_zstd_window_above_8_mib_is_refused() {
        let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        encoder.window_log(24).unwrap();
        encoder.write_all(&sample()).unwrap();
        let coded = encoder.finish().unwrap();
        let mut buffer = vec![0; 1024];
        let mut decoder = Decoder::new(Encoding::Zstd).unwrap();
        assert!(decoder.decode(&coded, &mut buffer).is_err());
        // 8 MiB is taken.
        let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        encoder.window_log(23).unwrap();
        encoder.write_all(b"fits").unwrap();
        let coded = encoder.finish().unwrap();
        let mut decoder = Decoder::new(Encoding::Zstd).unwrap();
        let step = decoder.decode(&coded, &mut buffer).unwrap();
        assert_eq!(&buffer[..step.written], b"fits");
    }

    #[test]
    fn bomb_comes_out_a_buffer_at_a_time() {
        let zeros = vec![0u8; 64 * 1024 * 1024];
        let mut coded = Vec::new();
        let mut encoder = Encoder::new(Encoding::Zstd, &config(), None).unwrap();
        for piece in zeros.chunks(1 << 20) {
            coded.extend(encoder.write(piece).unwrap());
        }
        coded.extend(encoder.finish().unwrap());
        drop(zeros);
        let mut decoder = Decoder::new(Encoding::Zstd).unwrap();
        let mut buffer = vec![0; 16 * 1024];
        let step = decoder.decode(&coded, &mut buffer).unwrap();
        assert!(step.written <= buffer.len());
    }
}
