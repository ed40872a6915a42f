//! The decoders: one response's decompressor, writing into a caller's fixed buffer a step at
//! a time (gzip read by hand around flate2's deflate, brotli, zstd with a bounded window).

use std::io;

use flate2::{Crc, Decompress, FlushDecompress};
use gatehouse_config::Encoding;

/// The largest zstd window a body to decode may ask for: 2^23 = 8 MiB, the limit of the zstd
/// content coding (RFC 9659 §3); a frame that asks for more is refused, not given the memory.
const ZSTD_DECODE_WINDOW_LOG_MAX: u32 = 23;
/// A gzip header with names and comments larger than this is not one an upstream means.
const MAX_GZIP_HEADER: usize = 64 * 1024;

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
