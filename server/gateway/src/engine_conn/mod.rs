//! HTTP/1.1 connections to one engine replica, pooled per runtime, each driven by the request that is using it.
//!
//! The gateway speaks to engines (vLLM behind uvicorn, or the simulator) in a narrow dialect: a POST of a JSON
//! body, or a GET, and an answer framed by length or by chunks. So it writes the request head itself, from bytes
//! built once per replica and endpoint (`codec::RequestHead`), and decodes the answer with `codec`'s state machine,
//! on the request's own task: no connection task, no channel, no header map. A connection sits idle in its
//! replica's pool between requests; before reuse, one non-blocking read tells whether the engine closed it
//! meanwhile, and it is not reused past `idle_timeout` (kept below uvicorn's 5 s keep-alive, so the gateway does
//! not write on a connection the engine is closing).

mod body;
pub mod codec;

pub use body::{ConnError, EngineBody};
pub use codec::RequestHead;

use bytes::BytesMut;
use http::{HeaderValue, StatusCode, Uri};
use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// What a read asks the socket for at least (an answer's head and a small body fit).
const READ_CHUNK: usize = 8 * 1024;
/// A read buffer grown past this by a large answer is not kept with an idle connection.
const KEEP_BUFFER: usize = 64 * 1024;
/// Idle connections kept per replica beyond what is in use; more than this are closed when released.
const MAX_IDLE: usize = 256;

/// An open connection with its buffers, which it keeps across requests (a reused connection allocates nothing).
struct Conn {
    stream: TcpStream,
    read: BytesMut,
    write: Vec<u8>,
    /// The runtime whose reactor the socket is registered with (`listener::current_worker` when it connected): it
    /// is reused only there, so its events wake the thread that uses it.
    worker: usize,
}

impl Conn {
    fn new(stream: TcpStream) -> Box<Self> {
        Box::new(Self {
            stream,
            read: BytesMut::with_capacity(READ_CHUNK),
            write: Vec::with_capacity(512),
            worker: crate::listener::current_worker(),
        })
    }

    /// Whether a request can be sent now: the engine has neither closed the connection nor sent anything since
    /// its last answer. One read that does not wait (none at all when the socket is known to be quiet).
    fn usable(&mut self) -> bool {
        if !self.read.is_empty() {
            return false;
        }
        let mut probe = [0u8; 1];
        matches!(self.stream.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    /// Writes the head in `self.write`, then `body`. On failure, says whether any byte left.
    async fn write_request(&mut self, body: &[u8]) -> Result<(), (bool, io::Error)> {
        let total = self.write.len() + body.len();
        let mut done = 0;
        while done < total {
            let (head, body) = match self.write.get(done..) {
                Some(head) if !head.is_empty() => (head, body),
                _ => (&[][..], &body[done - self.write.len()..]),
            };
            match self
                .stream
                .try_write_vectored(&[IoSlice::new(head), IoSlice::new(body)])
            {
                Ok(0) => return Err((done > 0, io::ErrorKind::WriteZero.into())),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.stream.writable().await.map_err(|e| (done > 0, e))?
                }
                Err(e) => return Err((done > 0, e)),
            }
        }
        Ok(())
    }

    /// Reads what the engine has sent into the read buffer; `Ok(0)` when it closed the connection.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.stream.poll_read_ready(cx))?;
            if self.read.capacity() - self.read.len() < READ_CHUNK / 2 {
                self.read.reserve(READ_CHUNK.max(self.read.len()));
            }
            match self.stream.try_read_buf(&mut self.read) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                done => return Poll::Ready(done),
            }
        }
    }

    async fn read_head(&mut self) -> Result<codec::ResponseHead, ConnError> {
        poll_fn(|cx| loop {
            if let Some(head) = codec::parse_head(&mut self.read)? {
                return Poll::Ready(Ok(head));
            }
            if ready!(self.poll_fill(cx))? == 0 {
                return Poll::Ready(Err(codec::ProtocolError::Truncated.into()));
            }
        })
        .await
    }
}

struct Idle {
    conn: Box<Conn>,
    since: Instant,
}

/// Where an engine listens, from its base URL (`http://host:port`, optionally with a path prefix).
#[derive(Debug, Clone)]
pub struct EngineAddress {
    /// `host:port`, what is connected to.
    authority: String,
    /// The `Host` header: the URL's authority as written.
    host: String,
    /// The base URL's path, without a trailing slash ("" for none).
    prefix: String,
}

impl EngineAddress {
    /// None unless `base` is a plain `http://` URL with a host (engines are reached over the cluster network;
    /// TLS to them is not supported).
    pub fn parse(base: &str) -> Option<Self> {
        let uri: Uri = base.parse().ok()?;
        if uri.scheme_str() != Some("http") {
            return None;
        }
        let authority = uri.authority()?;
        let port = authority.port_u16().unwrap_or(80);
        Some(Self {
            authority: format!("{}:{port}", authority.host()),
            host: authority.as_str().to_string(),
            prefix: uri.path().trim_end_matches('/').to_string(),
        })
    }

    /// The head of a request for `path` (which starts with `/`) on this engine; `content_type` for a request with
    /// a body.
    pub fn head(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
    ) -> Option<RequestHead> {
        RequestHead::new(
            method,
            &format!("{}{path}", self.prefix),
            &self.host,
            content_type,
        )
    }

    pub fn authority(&self) -> &str {
        &self.authority
    }
}

/// A request to send: its head, and a body for a POST.
#[derive(Clone, Copy)]
pub struct EngineRequest<'a> {
    pub head: &'a RequestHead,
    pub request_id: Option<&'a HeaderValue>,
    /// None: no body (a GET).
    pub body: Option<&'a [u8]>,
}

/// The engine's answer: its status and content type, and the body still to be read.
pub struct EngineResponse {
    pub status: StatusCode,
    pub content_type: Option<HeaderValue>,
    pub body: EngineBody,
}

/// Why a request did not get an answer.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("the replica's base URL is not one the gateway can send to")]
    BadAddress,
    #[error("could not connect to the engine: {0}")]
    Connect(io::Error),
    #[error("connecting to the engine timed out")]
    ConnectTimeout,
    /// Writing the request failed; `unsent`: before any of it left.
    #[error("could not send the request to the engine: {error}")]
    Write { unsent: bool, error: io::Error },
    /// The engine closed the connection (or reset it) without a byte of an answer: on a reused connection, the
    /// engine was closing it as idle while the request was on its way.
    #[error("the engine closed the connection before answering")]
    ClosedBeforeAnswer,
    #[error(transparent)]
    Read(#[from] ConnError),
}

/// One replica's connections.
#[derive(Default)]
pub struct EnginePool {
    idle: Mutex<Vec<Idle>>,
    opened: AtomicU64,
}

impl EnginePool {
    /// Connections opened so far (a pool that works reuses them).
    pub fn opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }

    /// Sends `request` to `authority` (`host:port`) on an idle connection, or a new one, and reads the answer's
    /// head. A pooled connection that fails before any of the request left, or that the engine closes without a
    /// byte of an answer, is replaced by a fresh one once: an engine closing an idle connection (uvicorn's
    /// keep-alive timeout) can race the request written on it, and then never saw it, which is why browsers
    /// retry such requests too. A connection opened for this request is not retried.
    pub async fn send(
        self: &Arc<Self>,
        authority: &str,
        request: EngineRequest<'_>,
        connect_timeout: Duration,
        idle_timeout: Duration,
    ) -> Result<EngineResponse, SendError> {
        let (conn, reused) = match self.checkout(idle_timeout) {
            Some(c) => (c, true),
            None => (self.connect(authority, connect_timeout).await?, false),
        };
        match self.exchange(conn, request).await {
            Err(SendError::Write { unsent: true, .. } | SendError::ClosedBeforeAnswer)
                if reused =>
            {
                let conn = self.connect(authority, connect_timeout).await?;
                self.exchange(conn, request).await
            }
            other => other,
        }
    }

    fn checkout(&self, idle_timeout: Duration) -> Option<Box<Conn>> {
        let worker = crate::listener::current_worker();
        loop {
            let Idle {
                mut conn, since, ..
            } = {
                let mut idle = self.lock();
                let i = idle.iter().rposition(|i| i.conn.worker == worker)?;
                idle.swap_remove(i)
            };
            if since.elapsed() < idle_timeout && conn.usable() {
                return Some(conn);
            }
        }
    }

    async fn connect(&self, authority: &str, timeout: Duration) -> Result<Box<Conn>, SendError> {
        let stream = match tokio::time::timeout(timeout, TcpStream::connect(authority)).await {
            Err(_) => return Err(SendError::ConnectTimeout),
            Ok(Err(e)) => return Err(SendError::Connect(e)),
            Ok(Ok(s)) => s,
        };
        let _ = stream.set_nodelay(true);
        self.opened.fetch_add(1, Ordering::Relaxed);
        Ok(Conn::new(stream))
    }

    /// Writes the request and reads the answer's head.
    async fn exchange(
        self: &Arc<Self>,
        mut conn: Box<Conn>,
        request: EngineRequest<'_>,
    ) -> Result<EngineResponse, SendError> {
        let body = request.body.unwrap_or_default();
        request.head.encode(
            &mut conn.write,
            request.request_id,
            request.body.map(<[u8]>::len),
        );
        conn.write_request(body)
            .await
            .map_err(|(sent, error)| SendError::Write {
                unsent: !sent,
                error,
            })?;
        let head = match conn.read_head().await {
            Ok(head) => head,
            Err(e) if conn.read.is_empty() && e.is_close() => {
                return Err(SendError::ClosedBeforeAnswer)
            }
            Err(e) => return Err(e.into()),
        };
        Ok(EngineResponse {
            status: head.status,
            content_type: head.content_type,
            body: EngineBody::new(conn, head.body, head.keep_alive, self.clone()),
        })
    }

    /// Takes back a connection whose answer was read to its end.
    fn release(&self, mut conn: Box<Conn>) {
        if !conn.read.is_empty() {
            return; // the engine sent more than its answer: not a connection to trust again
        }
        if conn.read.capacity() > KEEP_BUFFER {
            conn.read = BytesMut::with_capacity(READ_CHUNK);
        }
        let mut idle = self.lock();
        if idle.len() < MAX_IDLE {
            idle.push(Idle {
                conn,
                since: Instant::now(),
            });
        }
    }

    /// Closes idle connections older than `idle_timeout`, and those the engine closed (called periodically, so
    /// an idle gateway does not hold sockets the engine has let go).
    pub fn sweep(&self, idle_timeout: Duration) {
        let mut idle = self.lock();
        idle.retain_mut(|i| i.since.elapsed() < idle_timeout && i.conn.usable());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Idle>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_addresses() {
        let a = EngineAddress::parse("http://10.0.0.7:8000").unwrap();
        assert_eq!(a.authority(), "10.0.0.7:8000");
        let head = a
            .head("POST", "/v1/completions", Some("application/json"))
            .unwrap();
        assert!(head
            .as_bytes()
            .starts_with(b"POST /v1/completions HTTP/1.1\r\nhost: 10.0.0.7:8000\r\n"));
        let b = EngineAddress::parse("http://vllm.models.svc/prefix/").unwrap();
        assert_eq!(b.authority(), "vllm.models.svc:80");
        let head = b.head("GET", "/metrics", None).unwrap();
        assert_eq!(
            head.as_bytes(),
            b"GET /prefix/metrics HTTP/1.1\r\nhost: vllm.models.svc\r\n"
        );
        for bad in ["https://x:1", "x:1", "", "http://", "/v1"] {
            assert!(EngineAddress::parse(bad).is_none(), "{bad}");
        }
    }
}
