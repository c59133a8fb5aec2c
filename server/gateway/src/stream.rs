//! The body of a streamed answer: engine chunks forwarded as they arrive (through the SSE scanner, which reads the
//! usage and takes out what the client did not ask for), with an idle timeout. A failure after the stream began
//! ends it with one clean error event; the request's usage record is emitted when the body ends or is dropped
//! (a client that goes away drops it).

use crate::engine_conn::EngineBody;
use crate::inflight::Inflight;
use crate::sse::{Output, SseScanner};
use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// The size of the buffer rewritten chunks are copied into (a few dozen events).
const OUT_BUFFER: usize = 8 * 1024;

pub struct ProxyBody {
    first: Option<Bytes>,
    upstream: EngineBody,
    scanner: SseScanner,
    /// Some until the stream ends; dropping it emits the record.
    inflight: Option<Inflight>,
    idle: Duration,
    /// When the engine last sent something; the timer is moved to `last_data + idle` only when the stream waits
    /// (once per network read, not once per chunk).
    last_data: Instant,
    idle_timer: Pin<Box<Sleep>>,
    /// Where rewritten chunks are copied to be sent: one buffer that many chunks share (each sent chunk a view of
    /// it), instead of an allocation or two per rewritten event.
    out: BytesMut,
}

impl ProxyBody {
    pub fn new(
        first: Bytes,
        upstream: EngineBody,
        scanner: SseScanner,
        inflight: Inflight,
        idle: Duration,
    ) -> Self {
        Self {
            first: Some(first),
            upstream,
            scanner,
            inflight: Some(inflight),
            idle,
            last_data: Instant::now(),
            idle_timer: Box::pin(tokio::time::sleep(idle)),
            out: BytesMut::new(),
        }
    }

    /// Passes a chunk through the scanner; None when nothing is left to send.
    fn pass(&mut self, chunk: Bytes) -> Option<Bytes> {
        let out = match self.scanner.push(&chunk) {
            Output::Same => chunk,
            Output::Rewritten(v) => {
                if self.out.capacity() < v.len() {
                    // A fresh buffer once the shared one is spent (sent chunks keep the old one alive).
                    self.out.reserve(v.len().max(OUT_BUFFER));
                }
                self.out.extend_from_slice(&v);
                self.scanner.recycle(v);
                self.out.split().freeze()
            }
        };
        if let Some(i) = &mut self.inflight {
            i.keep_slot();
        }
        (!out.is_empty()).then_some(out)
    }

    /// The engine ended the stream.
    fn end(&mut self) -> Option<Bytes> {
        let tail = self.scanner.finish();
        if let Some(mut i) = self.inflight.take() {
            i.usage = self.scanner.usage();
            let status = i.status;
            i.finish(status);
        }
        (!tail.is_empty()).then(|| Bytes::from(tail))
    }

    /// The engine failed mid-stream: the client gets an error event; the request is recorded with what was used.
    fn fail(&mut self, why: &str) -> Bytes {
        if let Some(mut i) = self.inflight.take() {
            i.usage = self.scanner.usage();
            i.metrics.upstream_error();
            tracing::warn!(request_id = %i.request_id(), why, "engine stream failed after it began");
            i.finish(502);
        }
        Bytes::from(self.scanner.error_event(&format!(
            "The model's engine failed during the response ({why}); the tokens produced so far are billed."
        )))
    }
}

impl Drop for ProxyBody {
    /// A stream dropped before its end (the client left): the request is recorded with the usage seen so far.
    /// When the engine's `data: [DONE]` already went by, the client has the whole answer and only the engine's
    /// closing bytes were still to come (uvicorn sends its last chunk separately): that request finished, it was
    /// not cut.
    fn drop(&mut self) {
        if let Some(mut i) = self.inflight.take() {
            i.usage = self.scanner.usage();
            if self.scanner.done() {
                let status = i.status;
                i.finish(status);
            }
        }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if let Some(first) = this.first.take() {
            if let Some(out) = this.pass(first) {
                return Poll::Ready(Some(Ok(Frame::data(out))));
            }
        }
        loop {
            if this.inflight.is_none() {
                return Poll::Ready(None);
            }
            match Pin::new(&mut this.upstream).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    this.last_data = Instant::now();
                    if let Ok(data) = frame.into_data() {
                        if let Some(out) = this.pass(data) {
                            return Poll::Ready(Some(Ok(Frame::data(out))));
                        }
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    let event = this.fail(&format!("connection lost: {e}"));
                    return Poll::Ready(Some(Ok(Frame::data(event))));
                }
                Poll::Ready(None) => {
                    return Poll::Ready(this.end().map(|tail| Ok(Frame::data(tail))));
                }
                Poll::Pending => {
                    let due = this.last_data + this.idle;
                    if this.idle_timer.deadline() != due {
                        this.idle_timer.as_mut().reset(due);
                    }
                    if this.idle_timer.as_mut().poll(cx).is_ready() {
                        let event = this.fail("no data within the idle timeout");
                        return Poll::Ready(Some(Ok(Frame::data(event))));
                    }
                    return Poll::Pending;
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inflight.is_none() && self.first.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}
