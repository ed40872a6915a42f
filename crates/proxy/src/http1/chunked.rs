//! The chunked transfer coding of request bodies (RFC 9112 §7.1), decoded in place.
//!
//! Strict where leniency has been used for request smuggling: every line ends in CRLF (a bare
//! LF or CR is an error), a chunk size is 1 to 16 hex digits, a chunk line (size and
//! extensions) and the trailer section are bounded. Extensions are skipped; trailer fields are
//! read and dropped (nginx drops them too), so a body always ends at its final CRLF.

use bytes::{Buf, Bytes, BytesMut};

/// Longest chunk line (size, extensions, CRLF) accepted.
const MAX_CHUNK_LINE: usize = 4096;
/// Largest trailer section accepted.
const MAX_TRAILERS: usize = 16 * 1024;

/// What the decoder found in the buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Body bytes, split off the front of the buffer without copying.
    Data(Bytes),
    /// The buffer ends inside the framing: read more.
    NeedMore,
    /// The last chunk and the trailer section were read; the buffer starts after the body.
    End,
}

/// Why a chunked body cannot be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChunkError {
    #[error("invalid chunk size line")]
    InvalidSize,
    #[error("chunk size does not fit in 64 bits")]
    SizeOverflow,
    #[error("chunk line longer than {MAX_CHUNK_LINE} bytes")]
    LineTooLong,
    #[error("chunk data not followed by CRLF")]
    MissingCrlf,
    #[error("invalid byte in the trailer section")]
    InvalidTrailer,
    #[error("trailer section longer than {MAX_TRAILERS} bytes")]
    TrailersTooLarge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Hex digits of a chunk size.
    Size,
    /// After the size: extensions, up to CR.
    Extension,
    /// The LF ending a chunk line.
    SizeLf,
    /// Chunk data, `remaining` bytes to go.
    Data,
    DataCr,
    DataLf,
    /// The start of a trailer line (or of the final CRLF).
    TrailerStart,
    TrailerLine,
    TrailerLf,
    /// The LF of the final CRLF.
    EndLf,
    Done,
}

/// Decoder state between reads.
#[derive(Debug)]
pub struct ChunkedDecoder {
    state: State,
    size: u64,
    digits: u8,
    line: usize,
    trailers: usize,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self {
            state: State::Size,
            size: 0,
            digits: 0,
            line: 0,
            trailers: 0,
        }
    }
}

impl ChunkedDecoder {
    /// Whether the whole body was decoded.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes what `buf` holds, consuming framing bytes and splitting off data.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Step, ChunkError> {
        loop {
            if self.state == State::Done {
                return Ok(Step::End);
            }
            if self.state == State::Data {
                if buf.is_empty() {
                    return Ok(Step::NeedMore);
                }
                let take = usize::try_from(self.size)
                    .unwrap_or(usize::MAX)
                    .min(buf.len());
                self.size -= take as u64;
                if self.size == 0 {
                    self.state = State::DataCr;
                }
                return Ok(Step::Data(buf.split_to(take).freeze()));
            }
            let Some(&byte) = buf.first() else {
                return Ok(Step::NeedMore);
            };
            buf.advance(1);
            self.step(byte)?;
        }
    }

    fn step(&mut self, byte: u8) -> Result<(), ChunkError> {
        match self.state {
            State::Size | State::Extension => {
                self.line += 1;
                if self.line > MAX_CHUNK_LINE {
                    return Err(ChunkError::LineTooLong);
                }
            }
            State::TrailerStart | State::TrailerLine => {
                self.trailers += 1;
                if self.trailers > MAX_TRAILERS {
                    return Err(ChunkError::TrailersTooLarge);
                }
            }
            _ => {}
        }
        self.state = match (self.state, byte) {
            (State::Size, b) if self.state == State::Size && (b as char).is_ascii_hexdigit() => {
                if self.digits == 16 {
                    return Err(ChunkError::SizeOverflow);
                }
                let digit = (b as char).to_digit(16).map_or(0, u64::from);
                self.size = self.size * 16 + digit;
                self.digits += 1;
                State::Size
            }
            (State::Size, _) if self.digits == 0 => return Err(ChunkError::InvalidSize),
            (State::Size, b'\r') => State::SizeLf,
            // Extensions (RFC 9112 §7.1.1), with optional whitespace before the `;`.
            (State::Size, b';' | b' ' | b'\t') => State::Extension,
            (State::Size, _) => return Err(ChunkError::InvalidSize),
            (State::Extension, b'\r') => State::SizeLf,
            (State::Extension, b) if b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80 => {
                State::Extension
            }
            (State::Extension, _) => return Err(ChunkError::InvalidSize),
            (State::SizeLf, b'\n') => {
                self.line = 0;
                self.digits = 0;
                if self.size == 0 {
                    State::TrailerStart
                } else {
                    State::Data
                }
            }
            (State::SizeLf, _) => return Err(ChunkError::InvalidSize),
            (State::DataCr, b'\r') => State::DataLf,
            (State::DataLf, b'\n') => State::Size,
            (State::DataCr | State::DataLf, _) => return Err(ChunkError::MissingCrlf),
            (State::TrailerStart, b'\r') => State::EndLf,
            (State::TrailerLine, b'\r') => State::TrailerLf,
            (State::TrailerStart | State::TrailerLine, b)
                if b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80 =>
            {
                State::TrailerLine
            }
            (State::TrailerLf, b'\n') => State::TrailerStart,
            (State::EndLf, b'\n') => State::Done,
            (State::TrailerStart | State::TrailerLine | State::TrailerLf | State::EndLf, _) => {
                return Err(ChunkError::InvalidTrailer);
            }
            (State::Data | State::Done, _) => self.state,
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` fed in pieces of `step` bytes; the body and what is left after it.
    fn decode(input: &[u8], step: usize) -> Result<(Vec<u8>, Vec<u8>), ChunkError> {
        let mut decoder = ChunkedDecoder::default();
        let mut buf = BytesMut::new();
        let mut body = Vec::new();
        let mut fed = 0;
        loop {
            match decoder.decode(&mut buf)? {
                Step::Data(data) => body.extend_from_slice(&data),
                Step::End => return Ok((body, buf.to_vec())),
                Step::NeedMore => {
                    assert!(fed < input.len(), "input ended inside the body");
                    let end = (fed + step).min(input.len());
                    buf.extend_from_slice(&input[fed..end]);
                    fed = end;
                }
            }
        }
    }

    #[test]
    fn decodes_chunks_in_any_split() {
        let input = b"5\r\nhello\r\n1;name=value\r\n \r\nA\r\n0123456789\r\n0\r\nX-T: 1\r\n\r\nGET";
        for step in [1, 2, 3, 7, input.len()] {
            let (body, rest) = decode(input, step).unwrap_or_else(|e| panic!("{step}: {e}"));
            assert_eq!(body, b"hello 0123456789", "split {step}");
            // Bytes after the body stay for the next request, whatever arrived with them.
            assert!(b"GET".starts_with(&rest), "split {step}: {rest:?}");
        }
    }

    #[test]
    fn upper_case_hex_and_leading_zeros() {
        assert_eq!(
            decode(b"000A\r\n0123456789\r\n00\r\n\r\n", 4).map(|r| r.0),
            Ok(b"0123456789".to_vec())
        );
    }

    #[test]
    fn refuses_what_smugglers_use() {
        for (input, error) in [
            (&b"zz\r\nhello\r\n0\r\n\r\n"[..], ChunkError::InvalidSize),
            (b"\r\n", ChunkError::InvalidSize),
            (b"5\nhello\r\n0\r\n\r\n", ChunkError::InvalidSize),
            (b"5\r\nhelloXX0\r\n\r\n", ChunkError::MissingCrlf),
            (b"5\r\nhello\n0\r\n\r\n", ChunkError::MissingCrlf),
            (b"-5\r\nhello\r\n0\r\n\r\n", ChunkError::InvalidSize),
            (b"0x5\r\nhello\r\n0\r\n\r\n", ChunkError::InvalidSize),
            (b"11111111111111111\r\n", ChunkError::SizeOverflow),
            (b"0\r\nX: 1\n\r\n", ChunkError::InvalidTrailer),
            (b"0\r\n\rX", ChunkError::InvalidTrailer),
            (b"5;\x00\r\nhello\r\n0\r\n\r\n", ChunkError::InvalidSize),
        ] {
            assert_eq!(decode(input, 1).err(), Some(error), "{input:?}");
        }
    }

    #[test]
    fn bounds_lines_and_trailers() {
        let mut long = b"1;".to_vec();
        long.extend(std::iter::repeat_n(b'a', MAX_CHUNK_LINE));
        assert_eq!(decode(&long, 512).err(), Some(ChunkError::LineTooLong));
        let mut trailers = b"0\r\n".to_vec();
        for _ in 0..2000 {
            trailers.extend_from_slice(b"X-Trailer: 123456\r\n");
        }
        assert_eq!(
            decode(&trailers, 512).err(),
            Some(ChunkError::TrailersTooLarge)
        );
    }
}
