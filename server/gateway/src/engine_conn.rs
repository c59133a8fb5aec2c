//! HTTP/1.1 connections to one engine replica, pooled, each driven by the request that is using it.
//!
//! hyper's pooled client runs every connection as a task of its own: a request is handed to that task, and the
//! response head and each body chunk are handed back, a task wake-up each way. Here the request's own task polls
//! its connection (the `Connection` future) alongside the response and the body, so the bytes an engine sends are
//! read, parsed and forwarded in one go. Between requests a connection sits idle in its replica's pool, unpolled;
//! before reuse it is polled once, which reads a close the engine sent meanwhile, and it is not reused past
//! `idle_timeout` (kept below uvicorn's 5 s keep-alive, so the gateway does not write on a connection the engine
//! is closing).

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, Uri};
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

type Driver = http1::Connection<TokioIo<TcpStream>, Full<Bytes>>;

/// An open connection: the half that sends requests, and the future that does its IO.
struct Conn {
    sender: http1::SendRequest<Full<Bytes>>,
    /// None once the connection has ended.
    driver: Option<Driver>,
}

impl Conn {
    /// Does whatever IO is ready; false once the connection has ended.
    fn drive(&mut self, cx: &mut Context<'_>) -> bool {
        if let Some(driver) = &mut self.driver {
            if Pin::new(driver).poll(cx).is_ready() {
                self.driver = None;
            }
        }
        self.driver.is_some()
    }

    /// Whether a request can be sent now, after reading whatever the engine sent while the connection was idle.
    fn usable(&mut self) -> bool {
        poll_now(|cx| self.drive(cx)) && self.sender.is_ready()
    }
}

/// Polls once with a waker that does nothing: used only where the result is read at once, and the connection
/// is polled again with the request's own waker before anything waits on it.
fn poll_now<T>(f: impl FnOnce(&mut Context<'_>) -> T) -> T {
    f(&mut Context::from_waker(std::task::Waker::noop()))
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
    host: HeaderValue,
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
        let host = HeaderValue::from_str(authority.as_str()).ok()?;
        let port = authority.port_u16().unwrap_or(80);
        Some(Self {
            authority: format!("{}:{port}", authority.host()),
            host,
            prefix: uri.path().trim_end_matches('/').to_string(),
        })
    }

    /// The origin-form URI of `path` (which starts with `/`) on this engine.
    pub fn uri(&self, path: &str) -> Option<Uri> {
        format!("{}{path}", self.prefix).parse().ok()
    }

    /// A request to this engine: origin-form URI, `Host` set.
    pub fn request(&self, method: Method, uri: Uri, body: Bytes) -> Request<Full<Bytes>> {
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = method;
        *request.uri_mut() = uri;
        request
            .headers_mut()
            .insert(header::HOST, self.host.clone());
        request
    }

    pub fn authority(&self) -> &str {
        &self.authority
    }
}

/// Why a request did not get a response.
#[derive(Debug)]
pub enum SendError {
    /// The replica's base URL is not one the gateway can send to.
    BadAddress,
    Connect(std::io::Error),
    ConnectTimeout,
    Http(hyper::Error),
}

/// One replica's connections.
#[derive(Default)]
pub struct EnginePool {
    idle: Mutex<Vec<Idle>>,
    opened: AtomicU64,
}

/// Idle connections kept per replica beyond what is in use; more than this are closed when released.
const MAX_IDLE: usize = 256;

impl EnginePool {
    /// Connections opened so far (a pool that works reuses them).
    pub fn opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }

    /// Sends the request `make` builds to `authority` (`host:port`) on an idle connection, or a new one, and waits
    /// for the head of the response. A pooled connection that turns out closed before the request was written is
    /// replaced by a fresh one, with the request built again: safe, as the engine never saw it.
    pub async fn send(
        self: &Arc<Self>,
        authority: &str,
        make: impl Fn() -> Request<Full<Bytes>>,
        connect_timeout: Duration,
        idle_timeout: Duration,
    ) -> Result<Response<EngineBody>, SendError> {
        let (conn, reused) = match self.checkout(idle_timeout) {
            Some(c) => (c, true),
            None => (self.connect(authority, connect_timeout).await?, false),
        };
        match self.exchange(conn, make()).await {
            Err(SendError::Http(e)) if reused && e.is_canceled() => {
                let conn = self.connect(authority, connect_timeout).await?;
                self.exchange(conn, make()).await
            }
            other => other,
        }
    }

    fn checkout(&self, idle_timeout: Duration) -> Option<Box<Conn>> {
        loop {
            let Idle { mut conn, since } = self.lock().pop()?;
            if since.elapsed() < idle_timeout && conn.usable() {
                return Some(conn);
            }
        }
    }

    /// A new connection, boxed once: it moves between the pool and the bodies of requests by pointer (the
    /// connection's state is several hundred bytes).
    async fn connect(&self, authority: &str, timeout: Duration) -> Result<Box<Conn>, SendError> {
        let stream = match tokio::time::timeout(timeout, TcpStream::connect(authority)).await {
            Err(_) => return Err(SendError::ConnectTimeout),
            Ok(Err(e)) => return Err(SendError::Connect(e)),
            Ok(Ok(s)) => s,
        };
        let _ = stream.set_nodelay(true);
        let (sender, driver) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(SendError::Http)?;
        self.opened.fetch_add(1, Ordering::Relaxed);
        Ok(Box::new(Conn {
            sender,
            driver: Some(driver),
        }))
    }

    /// Writes the request and reads the response head, driving the connection meanwhile.
    async fn exchange(
        self: &Arc<Self>,
        mut conn: Box<Conn>,
        request: Request<Full<Bytes>>,
    ) -> Result<Response<EngineBody>, SendError> {
        let mut response = std::pin::pin!(conn.sender.send_request(request));
        let head = poll_fn(|cx| {
            conn.drive(cx);
            response.as_mut().poll(cx)
        })
        .await
        .map_err(SendError::Http)?;
        Ok(head.map(|body| EngineBody {
            body,
            conn: Some(conn),
            pool: self.clone(),
        }))
    }

    fn release(&self, mut conn: Box<Conn>) {
        if !conn.usable() {
            return;
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

/// A response body from an engine. Reading it drives its connection, which goes back to the pool when the body
/// has been read to its end; dropped before that, the connection is closed (the engine sees the client leave).
pub struct EngineBody {
    body: Incoming,
    conn: Option<Box<Conn>>,
    pool: Arc<EnginePool>,
}

impl Body for EngineBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        if let Some(conn) = &mut this.conn {
            conn.drive(cx);
        }
        let frame = std::task::ready!(Pin::new(&mut this.body).poll_frame(cx));
        if frame.is_none() {
            if let Some(conn) = this.conn.take() {
                this.pool.release(conn);
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_addresses() {
        let a = EngineAddress::parse("http://10.0.0.7:8000").unwrap();
        assert_eq!(a.authority(), "10.0.0.7:8000");
        assert_eq!(a.uri("/v1/completions").unwrap(), "/v1/completions");
        let r = a.request(Method::POST, a.uri("/metrics").unwrap(), Bytes::new());
        assert_eq!(r.headers()[header::HOST], "10.0.0.7:8000");
        let b = EngineAddress::parse("http://vllm.models.svc/prefix/").unwrap();
        assert_eq!(b.authority(), "vllm.models.svc:80");
        assert_eq!(b.uri("/metrics").unwrap(), "/prefix/metrics");
        for bad in ["https://x:1", "x:1", "", "http://", "/v1"] {
            assert!(EngineAddress::parse(bad).is_none(), "{bad}");
        }
    }
}
