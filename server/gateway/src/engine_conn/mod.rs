//! HTTP/1.1 connections to one engine replica, pooled per runtime, each driven by the request that is using it.
//!
//! The gateway speaks to engines (vLLM behind uvicorn, or the simulator) in a narrow dialect: a POST of a JSON
//! body, or a GET, and an answer framed by length or by chunks. So it writes the request head itself, from bytes
//! built once per replica and endpoint (`codec::RequestHead`), and decodes the answer with `codec`'s state machine,
//! on the request's own task: no connection task, no channel, no header map. A connection sits idle in its
//! replica's pool between requests; before reuse, one non-blocking read tells whether the engine closed it
//! meanwhile, and it is not reused past `idle_timeout` (kept below uvicorn's 5 s keep-alive, so the gateway does
//! not write on a connection the engine is closing).
//!
//! An `https://` engine gets the same codec over TLS (`tls.rs`); plain HTTP keeps the readiness-based path, which
//! writes head and body in one vectored call and reads straight into the connection's buffer.

mod body;
pub mod codec;
mod tls;

pub use body::{ConnError, EngineBody};
pub use codec::RequestHead;
pub use tls::EngineTls;

use bytes::BytesMut;
use http::{HeaderValue, StatusCode, Uri};
use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::ServerName;

/// What a read asks the socket for at least (an answer's head and a small body fit).
const READ_CHUNK: usize = 8 * 1024;
/// A read buffer grown past this by a large answer is not kept with an idle connection.
const KEEP_BUFFER: usize = 64 * 1024;
/// Idle connections kept per replica beyond what is in use; more than this are closed when released.
const MAX_IDLE: usize = 256;

/// The socket: plain TCP, or TLS over it.
enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// An open connection with its buffers, which it keeps across requests (a reused connection allocates nothing).
struct Conn {
    stream: Stream,
    read: BytesMut,
    write: Vec<u8>,
    /// The runtime whose reactor the socket is registered with (`listener::current_worker` when it connected): it
    /// is reused only there, so its events wake the thread that uses it.
    worker: usize,
}

impl Conn {
    fn new(stream: Stream) -> Box<Self> {
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
        match &mut self.stream {
            Stream::Plain(tcp) => {
                matches!(tcp.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
            }
            // Quiet when a read would wait; anything else (data, a close, an alert) retires the connection.
            Stream::Tls(tls) => {
                let mut buf = ReadBuf::new(&mut probe);
                let mut cx = Context::from_waker(std::task::Waker::noop());
                std::pin::Pin::new(tls.as_mut())
                    .poll_read(&mut cx, &mut buf)
                    .is_pending()
            }
        }
    }

    /// Writes the head in `self.write`, then `body`. On failure, says whether any byte left.
    async fn write_request(&mut self, body: &[u8]) -> Result<(), (bool, io::Error)> {
        let tcp = match &mut self.stream {
            Stream::Plain(tcp) => tcp,
            Stream::Tls(tls) => {
                // Through rustls's buffer: the head may leave before the body is encrypted, so only a failure of
                // the first write counts as nothing sent.
                tls.write_all(&self.write).await.map_err(|e| (false, e))?;
                tls.write_all(body).await.map_err(|e| (true, e))?;
                return tls.flush().await.map_err(|e| (true, e));
            }
        };
        let total = self.write.len() + body.len();
        let mut done = 0;
        while done < total {
            let (head, body) = match self.write.get(done..) {
                Some(head) if !head.is_empty() => (head, body),
                _ => (&[][..], &body[done - self.write.len()..]),
            };
            match tcp.try_write_vectored(&[IoSlice::new(head), IoSlice::new(body)]) {
                Ok(0) => return Err((done > 0, io::ErrorKind::WriteZero.into())),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    tcp.writable().await.map_err(|e| (done > 0, e))?
                }
                Err(e) => return Err((done > 0, e)),
            }
        }
        Ok(())
    }

    /// Reads what the engine has sent into the read buffer; `Ok(0)` when it closed the connection.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let tcp = match &mut self.stream {
            Stream::Plain(tcp) => tcp,
            Stream::Tls(tls) => {
                // Decrypted into a chunk on the stack, then copied: the copy is small beside the decryption.
                let mut chunk = [0u8; READ_CHUNK];
                let mut buf = ReadBuf::new(&mut chunk);
                return match ready!(std::pin::Pin::new(tls.as_mut()).poll_read(cx, &mut buf)) {
                    Ok(()) => {
                        self.read.extend_from_slice(buf.filled());
                        Poll::Ready(Ok(buf.filled().len()))
                    }
                    // A close without TLS's close_notify: an end like any other (a cut answer is still caught by
                    // its framing, which says how much was to come).
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Poll::Ready(Ok(0)),
                    Err(e) => Poll::Ready(Err(e)),
                };
            }
        };
        loop {
            ready!(tcp.poll_read_ready(cx))?;
            if self.read.capacity() - self.read.len() < READ_CHUNK / 2 {
                self.read.reserve(READ_CHUNK.max(self.read.len()));
            }
            match tcp.try_read_buf(&mut self.read) {
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

/// Where an engine listens, from its base URL (`http://host:port` or `https://host:port`, optionally with a path
/// prefix).
#[derive(Debug, Clone)]
pub struct EngineAddress {
    /// `host:port`, what is connected to.
    authority: String,
    /// For `https://`: the name the engine's certificate must carry (a DNS name or an IP address).
    tls: Option<ServerName<'static>>,
    /// The `Host` header: the URL's authority as written.
    host: String,
    /// The base URL's path, without a trailing slash ("" for none).
    prefix: String,
}

impl EngineAddress {
    /// None unless `base` is an `http://` or `https://` URL with a host.
    pub fn parse(base: &str) -> Option<Self> {
        let uri: Uri = base.parse().ok()?;
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return None,
        };
        let authority = uri.authority()?;
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        // An IPv6 host is written in brackets in a URL, and named without them in a certificate.
        let host = authority.host();
        let tls = match https {
            true => Some(
                ServerName::try_from(host.trim_start_matches('[').trim_end_matches(']'))
                    .ok()?
                    .to_owned(),
            ),
            false => None,
        };
        Some(Self {
            tls,
            authority: format!("{host}:{port}"),
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

    /// Whether the engine is reached over TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
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

/// How connections to engines are made and kept (borrowed from the gateway's settings for each request).
#[derive(Debug, Clone, Copy)]
pub struct ConnectOptions<'a> {
    /// Connecting, TLS handshake included.
    pub connect_timeout: Duration,
    /// An idle connection is not reused past this.
    pub idle_timeout: Duration,
    /// Whom `https://` engines are trusted by.
    pub tls: &'a EngineTls,
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

    /// Sends `request` to `address` on an idle connection, or a new one, and reads the answer's head. A pooled connection that fails before any of the request left, or that the engine closes without a
    /// byte of an answer, is replaced by a fresh one once: an engine closing an idle connection (uvicorn's
    /// keep-alive timeout) can race the request written on it, and then never saw it, which is why browsers
    /// retry such requests too. A connection opened for this request is not retried.
    pub async fn send(
        self: &Arc<Self>,
        address: &EngineAddress,
        request: EngineRequest<'_>,
        options: &ConnectOptions<'_>,
    ) -> Result<EngineResponse, SendError> {
        let (conn, reused) = match self.checkout(options.idle_timeout) {
            Some(c) => (c, true),
            None => (self.connect(address, options).await?, false),
        };
        match self.exchange(conn, request).await {
            Err(SendError::Write { unsent: true, .. } | SendError::ClosedBeforeAnswer)
                if reused =>
            {
                let conn = self.connect(address, options).await?;
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

    /// Opens a connection (and for `https://`, completes the TLS handshake) within the connect timeout.
    async fn connect(
        &self,
        address: &EngineAddress,
        options: &ConnectOptions<'_>,
    ) -> Result<Box<Conn>, SendError> {
        let open = async {
            let tcp = TcpStream::connect(&address.authority).await?;
            let _ = tcp.set_nodelay(true);
            Ok::<_, io::Error>(match &address.tls {
                None => Stream::Plain(tcp),
                Some(name) => {
                    let connector = options.tls.connector().map_err(io::Error::other)?;
                    Stream::Tls(Box::new(connector.connect(name.clone(), tcp).await?))
                }
            })
        };
        let stream = match tokio::time::timeout(options.connect_timeout, open).await {
            Err(_) => return Err(SendError::ConnectTimeout),
            Ok(Err(e)) => return Err(SendError::Connect(e)),
            Ok(Ok(s)) => s,
        };
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
        assert!(!b.is_tls());
        let c = EngineAddress::parse("https://vllm.example.com/v1-proxy").unwrap();
        assert_eq!(c.authority(), "vllm.example.com:443");
        assert!(c.is_tls());
        let d = EngineAddress::parse("https://[::1]:8443").unwrap();
        assert_eq!(d.authority(), "[::1]:8443");
        assert!(d.is_tls());
        for bad in ["ftp://x:1", "x:1", "", "http://", "https://", "/v1"] {
            assert!(EngineAddress::parse(bad).is_none(), "{bad}");
        }
    }
}
