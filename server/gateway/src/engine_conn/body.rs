//! An engine's answer body, read from its connection as the request's task polls it. Its end gives the connection
//! back to the pool; dropped before that, the connection is closed, which is how the engine learns that the
//! client left (vLLM then aborts the request).

use super::codec::{BodyDecoder, ProtocolError};
use super::{Conn, EnginePool};
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

/// Why an answer could not be read to its end.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    #[error("the engine connection failed: {0}")]
    Io(#[from] std::io::Error),
}

impl ConnError {
    /// The engine closed or reset the connection (rather than sending something that is not HTTP).
    pub fn is_close(&self) -> bool {
        use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset};
        match self {
            ConnError::Protocol(p) => *p == ProtocolError::Truncated,
            ConnError::Io(e) => {
                matches!(e.kind(), ConnectionReset | ConnectionAborted | BrokenPipe)
            }
        }
    }
}

pub struct EngineBody {
    /// None once the body has ended (or failed): the connection went back to the pool, or was closed.
    conn: Option<Box<Conn>>,
    decoder: BodyDecoder,
    keep_alive: bool,
    pool: Arc<EnginePool>,
}

impl EngineBody {
    pub(super) fn new(
        conn: Box<Conn>,
        decoder: BodyDecoder,
        keep_alive: bool,
        pool: Arc<EnginePool>,
    ) -> Self {
        let mut body = Self {
            conn: Some(conn),
            decoder,
            keep_alive,
            pool,
        };
        if body.decoder.is_done() {
            body.finish();
        }
        body
    }

    /// The whole answer has been read: the connection can serve another request, if the engine allows.
    fn finish(&mut self) {
        if let Some(conn) = self.conn.take() {
            if self.keep_alive {
                self.pool.release(conn);
            }
        }
    }

    /// Decodes what has arrived, reading more as needed.
    fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, ConnError>> {
        let Some(conn) = self.conn.as_mut() else {
            return Poll::Ready(Ok(None));
        };
        loop {
            if let Some(data) = self.decoder.decode(&mut conn.read)? {
                return Poll::Ready(Ok(Some(data)));
            }
            if self.decoder.is_done() {
                return Poll::Ready(Ok(None));
            }
            if ready!(conn.poll_fill(cx))? == 0 {
                self.decoder.eof()?;
                self.keep_alive = false;
                return Poll::Ready(Ok(None));
            }
        }
    }
}

impl Body for EngineBody {
    type Data = Bytes;
    type Error = ConnError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ConnError>>> {
        let this = &mut *self;
        let polled = ready!(this.poll_data(cx));
        match &polled {
            // The last bytes of a framed body: the connection goes back before the caller even asks again.
            Ok(Some(_)) if this.decoder.is_done() => this.finish(),
            Ok(Some(_)) => {}
            Ok(None) => this.finish(),
            Err(_) => this.conn = None,
        }
        Poll::Ready(polled.transpose().map(|r| r.map(Frame::data)))
    }

    fn is_end_stream(&self) -> bool {
        self.conn.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        match self.decoder.remaining() {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}
