//! [`CodedBody`]: a response body compressed or decompressed frame by frame on its way out.
//!
//! Memory stays flat whatever the body's size: an encoder's output is taken after every frame,
//! and a decoder writes into one fixed buffer, so a frame of a few compressed bytes that stands
//! for gigabytes comes out a buffer at a time. When the upstream pauses (its body is not
//! ready), what the encoder holds is flushed, so a stream of events is not held back.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf as _, Bytes};
use http_body::{Body, Frame, SizeHint};
use prometheus::IntCounter;

use super::coder::{Decoder, Encoder};
use crate::body::{AbortedResponse, BoxError, ProxyBody};
use crate::failure::{Failure, FailureKind, Phase};

/// How much a decoder writes per frame.
const DECODE_BUFFER: usize = 32 * 1024;

/// Byte counters for one response's coding: what went into the coder, what came out.
#[derive(Debug, Clone)]
pub(crate) struct Counters {
    pub(crate) input: IntCounter,
    pub(crate) output: IntCounter,
}

/// The coder a [`CodedBody`] drives.
#[derive(Debug)]
pub(crate) enum Coder {
    Encode(Option<Encoder>),
    Decode(Box<DecodeState>),
}

#[derive(Debug)]
pub(crate) struct DecodeState {
    decoder: Decoder,
    /// Input not yet taken by the decoder.
    pending: Bytes,
    buffer: Box<[u8]>,
    /// The last step filled the buffer: the decoder may hold more output without more input.
    full: bool,
}

impl Coder {
    pub(crate) fn encode(encoder: Encoder) -> Self {
        Self::Encode(Some(encoder))
    }

    pub(crate) fn decode(decoder: Decoder) -> Self {
        Self::Decode(Box::new(DecodeState {
            decoder,
            pending: Bytes::new(),
            buffer: vec![0; DECODE_BUFFER].into_boxed_slice(),
            full: false,
        }))
    }
}

/// A body passed through an encoder or a decoder.
#[derive(Debug)]
pub struct CodedBody {
    inner: ProxyBody,
    coder: Coder,
    counters: Counters,
    /// The inner body has ended (its end was seen).
    inner_done: bool,
    /// Bytes the inner body gave (an empty body needs no decoding: it stays empty).
    received: u64,
    /// The coder has taken bytes that it has not flushed yet.
    unflushed: bool,
    /// Trailers of the inner body, sent after the coded data.
    trailers: Option<Frame<Bytes>>,
    /// Everything was sent (or the body failed).
    done: bool,
}

impl CodedBody {
    pub(crate) fn new(mut inner: ProxyBody, coder: Coder, counters: Counters) -> Self {
        inner.hold_completion();
        Self {
            inner,
            coder,
            counters,
            inner_done: false,
            received: 0,
            unflushed: false,
            trailers: None,
            done: false,
        }
    }

    /// The coding failed: the response is aborted (it cannot end cleanly once sent). A body
    /// that does not decode is the upstream's fault (`http_response_content_coding`), recorded
    /// as its body's failure; an encoder that fails is gatehouse's own.
    fn failed(&mut self, why: String) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.done = true;
        let kind = match self.coder {
            Coder::Decode(_) => FailureKind::HttpResponseContentCoding,
            Coder::Encode(_) => FailureKind::ProxyInternalError,
        };
        let failure = Failure::new(kind, Phase::ReadingResponseBody, why);
        self.inner.release(Some(&failure));
        Poll::Ready(Some(Err(Box::new(AbortedResponse(failure)))))
    }

    /// Everything was sent: the upstream's exchange is complete (its record written).
    fn finished(&mut self) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.done = true;
        self.inner.release(None);
        Poll::Ready(self.trailers.take().map(Ok))
    }

    fn out(&self, bytes: Vec<u8>) -> Option<Frame<Bytes>> {
        if bytes.is_empty() {
            return None;
        }
        self.counters.output.inc_by(bytes.len() as u64);
        Some(Frame::data(Bytes::from(bytes)))
    }

    fn poll_encode(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        loop {
            if self.inner_done {
                // The encoder was finished when the inner body ended; trailers close the body.
                return self.finished();
            }
            match Pin::new(&mut self.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        self.counters.input.inc_by(data.len() as u64);
                        let Coder::Encode(Some(encoder)) = &mut self.coder else {
                            return self.failed("the encoder is gone".into());
                        };
                        match encoder.write(&data) {
                            Ok(bytes) => {
                                self.unflushed = true;
                                if let Some(frame) = self.out(bytes) {
                                    return Poll::Ready(Some(Ok(frame)));
                                }
                            }
                            Err(err) => return self.failed(format!("compressing failed: {err}")),
                        }
                    }
                    Err(trailers) => {
                        if trailers.is_trailers() {
                            self.trailers = Some(trailers);
                        }
                    }
                },
                Poll::Ready(Some(Err(err))) => {
                    // The upstream's failure aborts the response as it would without coding.
                    self.done = true;
                    return Poll::Ready(Some(Err(err)));
                }
                Poll::Ready(None) => {
                    self.inner_done = true;
                    let Coder::Encode(encoder) = &mut self.coder else {
                        return self.failed("the encoder is gone".into());
                    };
                    let Some(encoder) = encoder.take() else {
                        return self.failed("the encoder is gone".into());
                    };
                    match encoder.finish() {
                        Ok(bytes) => {
                            if let Some(frame) = self.out(bytes) {
                                return Poll::Ready(Some(Ok(frame)));
                            }
                        }
                        Err(err) => return self.failed(format!("compressing failed: {err}")),
                    }
                }
                Poll::Pending => {
                    // The upstream paused: what the encoder holds goes out now.
                    if self.unflushed
                        && let Coder::Encode(Some(encoder)) = &mut self.coder
                    {
                        self.unflushed = false;
                        match encoder.flush() {
                            Ok(bytes) => {
                                if let Some(frame) = self.out(bytes) {
                                    return Poll::Ready(Some(Ok(frame)));
                                }
                            }
                            Err(err) => return self.failed(format!("compressing failed: {err}")),
                        }
                    }
                    return Poll::Pending;
                }
            }
        }
    }

    fn poll_decode(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        loop {
            let Coder::Decode(state) = &mut self.coder else {
                return self.failed("the decoder is gone".into());
            };
            // Decode what is at hand (or, at the end, what the decoder still holds).
            if !state.pending.is_empty() || state.full || self.inner_done {
                let DecodeState {
                    decoder,
                    pending,
                    buffer,
                    full,
                } = &mut **state;
                let step = match decoder.decode(pending, buffer) {
                    Ok(step) => step,
                    Err(err) => return self.failed(format!("decompressing failed: {err}")),
                };
                pending.advance(step.read);
                *full = step.written == buffer.len();
                if step.written > 0 {
                    let frame = Bytes::copy_from_slice(&buffer[..step.written]);
                    self.counters.output.inc_by(frame.len() as u64);
                    return Poll::Ready(Some(Ok(Frame::data(frame))));
                }
                if self.inner_done {
                    if self.received > 0 && (!pending.is_empty() || !decoder.ended()) {
                        let why = if pending.is_empty() {
                            "the compressed body ended early (truncated)"
                        } else {
                            "data after the end of the compressed body"
                        };
                        return self.failed(why.into());
                    }
                    return self.finished();
                }
                if step.read == 0 && !pending.is_empty() {
                    return self.failed("the decoder made no progress".into());
                }
                if !pending.is_empty() {
                    continue;
                }
            }
            match Pin::new(&mut self.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        self.counters.input.inc_by(data.len() as u64);
                        self.received += data.len() as u64;
                        if let Coder::Decode(state) = &mut self.coder {
                            state.pending = data;
                        }
                    }
                    Err(trailers) => {
                        if trailers.is_trailers() {
                            self.trailers = Some(trailers);
                        }
                    }
                },
                Poll::Ready(Some(Err(err))) => {
                    self.done = true;
                    return Poll::Ready(Some(Err(err)));
                }
                Poll::Ready(None) => self.inner_done = true,
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl Body for CodedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        match this.coder {
            Coder::Encode(_) => this.poll_encode(cx),
            Coder::Decode(_) => this.poll_decode(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        // The coded length is known only at the end: chunked (HTTP/1.1) or DATA frames (h2).
        if self.done {
            SizeHint::with_exact(0)
        } else {
            SizeHint::default()
        }
    }
}
