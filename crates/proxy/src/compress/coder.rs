//! The codings themselves, driven one body frame at a time.
//!
//! An [`Encoder`] takes a frame's bytes and returns what the coding has ready; `flush` makes it
//! give out everything it holds (so a paused stream is not held back), `finish` ends the stream.
//! Its output is never more than a little above its input, so it is taken whole after each call.
//!
//! A [`Decoder`] writes into a caller's fixed buffer and says how much input it took: a few
//! compressed bytes can stand for gigabytes, so output is produced a buffer at a time, never
//! all at once. The decoders live in `decode`.

mod decode;

use std::io::{self, Write as _};

use gatehouse_config::{CompressConfig, Encoding};

pub(crate) use decode::Decoder;

/// The largest window of brotli and zstd: 2^18 = 256 KiB. Their defaults (4 MiB for brotli,
/// 2 MiB for zstd level 3) cost memory per response being compressed, for little gain on web
/// responses. Measured with 50 concurrent 14 MB text responses to slow clients, gatehouse held
/// about 2.2 MiB per zstd response with a 1 MiB window and 1.4 MiB with this one (its output no
/// larger); brotli stayed near 1.7-1.9 MiB either way (its hash tables dominate).
const MAX_WINDOW_LOG: u32 = 18;
/// The smallest window both allow.
const MIN_WINDOW_LOG: u32 = 10;

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

#[cfg(test)]
mod tests;
