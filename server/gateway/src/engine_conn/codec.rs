//! HTTP/1.1 as the gateway speaks it to engines, without IO: a request head written into a reused buffer, and a
//! response decoded from whatever bytes have arrived (head, then a body framed by length, chunks or close).
//!
//! Only what an engine's answer needs is kept: the status, `Content-Type`, the body's framing and whether the
//! connection can be reused. The decoder is a state machine over a `BytesMut`, so body data leaves it as slices of
//! the read buffer (no copy) and a test or a fuzzer can feed it any split of any bytes.

use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderValue, StatusCode};

/// A response head larger than this is refused (vLLM's are about 200 bytes).
pub const MAX_HEAD: usize = 64 * 1024;
/// Longest chunk-size line, extensions included.
const MAX_CHUNK_LINE: usize = 4096;
/// Most trailer bytes accepted after the last chunk.
const MAX_TRAILERS: usize = 16 * 1024;
/// Most header lines in a response head.
const MAX_HEADERS: usize = 64;

/// Why the engine's bytes are not a response the gateway can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("the engine sent an invalid response head ({0})")]
    Head(&'static str),
    #[error("the engine's response head is larger than {MAX_HEAD} bytes")]
    HeadTooLarge,
    #[error("the engine sent an invalid chunked body ({0})")]
    Chunk(&'static str),
    #[error("the engine closed the connection before the response ended")]
    Truncated,
}

/// How a request head is written: request line and fixed headers (each line ending in CRLF), built once per
/// engine and endpoint by `EngineAddress::head`.
#[derive(Debug, Clone)]
pub struct RequestHead(Bytes);

impl RequestHead {
    /// `method path` to `host`, with `content_type` if the request carries a body.
    pub fn new(method: &str, path: &str, host: &str, content_type: Option<&str>) -> Option<Self> {
        let line_safe = |s: &str| !s.bytes().any(|b| b.is_ascii_control() || b == b' ');
        if !(line_safe(method) && line_safe(path) && line_safe(host) && path.starts_with('/')) {
            return None;
        }
        let mut head = format!("{method} {path} HTTP/1.1\r\nhost: {host}\r\n");
        if let Some(ct) = content_type.filter(|ct| !ct.bytes().any(|b| b.is_ascii_control())) {
            head.push_str("content-type: ");
            head.push_str(ct);
            head.push_str("\r\n");
        }
        Some(Self(Bytes::from(head)))
    }

    /// Writes the complete head into `out` (cleared first): the fixed part, an `x-request-id` when given, and the
    /// body's length when there is a body (`None`: no body, as for a GET).
    pub fn encode(
        &self,
        out: &mut Vec<u8>,
        request_id: Option<&HeaderValue>,
        body_len: Option<usize>,
    ) {
        out.clear();
        out.extend_from_slice(&self.0);
        if let Some(id) = request_id {
            out.extend_from_slice(b"x-request-id: ");
            out.extend_from_slice(id.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        if let Some(n) = body_len {
            out.extend_from_slice(b"content-length: ");
            out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// A response head, as much of it as the gateway uses.
#[derive(Debug, Clone, PartialEq)]
pub struct ResponseHead {
    pub status: StatusCode,
    pub content_type: Option<HeaderValue>,
    pub body: BodyDecoder,
    /// Whether the connection may carry another request once this body has been read.
    pub keep_alive: bool,
}

/// Takes a complete response head off the front of `buf`, skipping interim (1xx) responses. `Ok(None)`: more
/// bytes are needed.
pub fn parse_head(buf: &mut BytesMut) -> Result<Option<ResponseHead>, ProtocolError> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut headers);
        let len = match response.parse(buf) {
            // The size is checked either way, so a head is refused alike whether it arrives whole or in pieces.
            Ok(httparse::Status::Complete(len)) if len <= MAX_HEAD => len,
            Ok(httparse::Status::Complete(_)) => return Err(ProtocolError::HeadTooLarge),
            Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
                return Err(ProtocolError::HeadTooLarge)
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => return Err(ProtocolError::HeadTooLarge),
            Err(_) => return Err(ProtocolError::Head("not HTTP/1.x")),
        };
        let code = response.code.unwrap_or_default();
        let status = StatusCode::from_u16(code).map_err(|_| ProtocolError::Head("status code"))?;
        if status == StatusCode::SWITCHING_PROTOCOLS {
            return Err(ProtocolError::Head("unexpected protocol switch"));
        }
        if status.is_informational() {
            buf.advance(len);
            continue;
        }
        let head = read_headers(status, response.version == Some(1), response.headers)?;
        buf.advance(len);
        return Ok(Some(head));
    }
}

fn read_headers(
    status: StatusCode,
    http11: bool,
    headers: &[httparse::Header<'_>],
) -> Result<ResponseHead, ProtocolError> {
    let mut content_type = None;
    let mut length: Option<u64> = None;
    let mut chunked = None;
    let mut close = !http11;
    for h in headers {
        let name = h.name.as_bytes();
        if name.eq_ignore_ascii_case(b"content-type") {
            content_type = Some(known_content_type(h.value)?);
        } else if name.eq_ignore_ascii_case(b"content-length") {
            let n = parse_length(h.value).ok_or(ProtocolError::Head("content-length"))?;
            if length.is_some_and(|l| l != n) {
                return Err(ProtocolError::Head("conflicting content-length"));
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            // Only the last coding decides whether the body is chunked.
            if let Some(last) = tokens(h.value).last() {
                chunked = Some(last.eq_ignore_ascii_case(b"chunked"));
            }
        } else if name.eq_ignore_ascii_case(b"connection") {
            for token in tokens(h.value) {
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") && !http11 {
                    close = false;
                }
            }
        }
    }
    // RFC 9112 §6.3, in order: no body for 204 and 304; Transfer-Encoding wins over Content-Length (and the
    // connection is not reused, as a peer sending both may be desynchronised); then the length; else until close.
    let body = if status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        BodyDecoder::length(0)
    } else if let Some(chunked) = chunked {
        close |= length.is_some() || !chunked;
        if chunked {
            BodyDecoder::chunked()
        } else {
            BodyDecoder::until_close()
        }
    } else if let Some(n) = length {
        BodyDecoder::length(n)
    } else {
        close = true;
        BodyDecoder::until_close()
    };
    Ok(ResponseHead {
        status,
        content_type,
        body,
        keep_alive: !close,
    })
}

/// The content types engines send, without a copy; anything else is copied.
fn known_content_type(value: &[u8]) -> Result<HeaderValue, ProtocolError> {
    Ok(match value {
        b"application/json" => HeaderValue::from_static("application/json"),
        b"text/event-stream" => HeaderValue::from_static("text/event-stream"),
        b"text/event-stream; charset=utf-8" => {
            HeaderValue::from_static("text/event-stream; charset=utf-8")
        }
        b"text/plain; charset=utf-8" => HeaderValue::from_static("text/plain; charset=utf-8"),
        b"text/plain; version=0.0.4; charset=utf-8" => {
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8")
        }
        other => HeaderValue::from_bytes(other).map_err(|_| ProtocolError::Head("content-type"))?,
    })
}

fn parse_length(value: &[u8]) -> Option<u64> {
    let digits = value.trim_ascii();
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    digits.iter().try_fold(0u64, |n, d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// The comma-separated tokens of a header value, trimmed, empty ones skipped.
fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
}

/// Decodes a response body from the bytes read so far.
#[derive(Debug, Clone, PartialEq)]
pub struct BodyDecoder {
    state: State,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    /// This many bytes are left.
    Length(u64),
    /// Expecting a chunk-size line.
    ChunkSize,
    /// This many bytes of the current chunk are left.
    ChunkData(u64),
    /// Expecting the CRLF after a chunk's data.
    ChunkEnd,
    /// After the last chunk: trailer lines up to an empty line, with the bytes seen so far.
    Trailers(usize),
    /// Everything until the engine closes the connection.
    UntilClose,
    Done,
}

impl BodyDecoder {
    pub fn length(n: u64) -> Self {
        Self {
            state: if n == 0 {
                State::Done
            } else {
                State::Length(n)
            },
        }
    }

    pub fn chunked() -> Self {
        Self {
            state: State::ChunkSize,
        }
    }

    pub fn until_close() -> Self {
        Self {
            state: State::UntilClose,
        }
    }

    /// The whole body has been decoded.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The body's remaining length, when the framing says it.
    pub fn remaining(&self) -> Option<u64> {
        match self.state {
            State::Length(n) => Some(n),
            State::Done => Some(0),
            _ => None,
        }
    }

    /// The next piece of body data in `buf`, taken off its front; framing bytes are consumed along the way.
    /// `Ok(None)`: nothing more until more bytes arrive, or the body is done (`is_done`).
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, ProtocolError> {
        loop {
            match self.state {
                State::Done => return Ok(None),
                State::Length(left) | State::ChunkData(left) => {
                    if buf.is_empty() {
                        return Ok(None);
                    }
                    let n = usize::try_from(left).map_or(buf.len(), |l| l.min(buf.len()));
                    let rest = left - n as u64;
                    self.state = match (self.state, rest) {
                        (State::Length(_), 0) => State::Done,
                        (State::Length(_), r) => State::Length(r),
                        (_, 0) => State::ChunkEnd,
                        (_, r) => State::ChunkData(r),
                    };
                    return Ok(Some(buf.split_to(n).freeze()));
                }
                State::UntilClose => {
                    if buf.is_empty() {
                        return Ok(None);
                    }
                    return Ok(Some(buf.split().freeze()));
                }
                State::ChunkSize => {
                    let Some(line) = take_line(buf, MAX_CHUNK_LINE, "chunk-size line too long")?
                    else {
                        return Ok(None);
                    };
                    let size = chunk_size(&line)?;
                    self.state = if size == 0 {
                        State::Trailers(0)
                    } else {
                        State::ChunkData(size)
                    };
                }
                State::ChunkEnd => {
                    if buf.len() < 2 {
                        return Ok(None);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(ProtocolError::Chunk("chunk data longer than its size"));
                    }
                    buf.advance(2);
                    self.state = State::ChunkSize;
                }
                State::Trailers(seen) => {
                    if seen > MAX_TRAILERS {
                        return Err(ProtocolError::Chunk("trailers too long"));
                    }
                    let Some(line) = take_line(
                        buf,
                        MAX_TRAILERS.saturating_sub(seen) + 2,
                        "trailers too long",
                    )?
                    else {
                        return Ok(None);
                    };
                    self.state = if line.is_empty() {
                        State::Done
                    } else {
                        State::Trailers(seen + line.len() + 2)
                    };
                }
            }
        }
    }

    /// The engine closed the connection: fine only for a body that runs until close, or one already done.
    pub fn eof(&mut self) -> Result<(), ProtocolError> {
        match self.state {
            State::UntilClose | State::Done => {
                self.state = State::Done;
                Ok(())
            }
            _ => Err(ProtocolError::Truncated),
        }
    }
}

/// Takes one line (without its CRLF) off the front of `buf`; `Ok(None)` while it is incomplete.
fn take_line(
    buf: &mut BytesMut,
    max: usize,
    too_long: &'static str,
) -> Result<Option<BytesMut>, ProtocolError> {
    match memchr::memchr(b'\n', buf) {
        Some(i) if i > max => Err(ProtocolError::Chunk(too_long)),
        Some(i) => {
            if i == 0 || buf[i - 1] != b'\r' {
                return Err(ProtocolError::Chunk("line not ended by CRLF"));
            }
            let mut line = buf.split_to(i + 1);
            line.truncate(i - 1);
            Ok(Some(line))
        }
        None if buf.len() > max => Err(ProtocolError::Chunk(too_long)),
        None => Ok(None),
    }
}

/// A chunk-size line's size: hex digits, then optionally extensions (ignored).
fn chunk_size(line: &[u8]) -> Result<u64, ProtocolError> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    let rest = &line[digits..];
    if digits == 0 || digits > 16 {
        return Err(ProtocolError::Chunk("chunk size"));
    }
    // Whitespace may follow the size (hyper and h11 accept it), then only extensions.
    let after = rest.trim_ascii_start();
    if !(after.is_empty() || after.starts_with(b";")) {
        return Err(ProtocolError::Chunk("chunk size"));
    }
    Ok(line[..digits].iter().fold(0u64, |n, &d| {
        let v = (d as char).to_digit(16).unwrap_or(0);
        (n << 4) | u64::from(v)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buf(s: &[u8]) -> BytesMut {
        BytesMut::from(s)
    }

    /// Decodes `body` fed in pieces of `step` bytes; the data, and whether it ended.
    fn decode_in_steps(mut decoder: BodyDecoder, body: &[u8], step: usize) -> (Vec<u8>, bool) {
        let mut input = BytesMut::new();
        let mut out = Vec::new();
        for piece in body.chunks(step.max(1)) {
            input.extend_from_slice(piece);
            while let Some(data) = decoder.decode(&mut input).unwrap() {
                out.extend_from_slice(&data);
            }
        }
        (out, decoder.is_done())
    }

    #[test]
    fn request_heads() {
        let head = RequestHead::new(
            "POST",
            "/v1/chat/completions",
            "10.0.0.7:8000",
            Some("application/json"),
        )
        .unwrap();
        let mut out = Vec::new();
        head.encode(&mut out, Some(&HeaderValue::from_static("req_1")), Some(42));
        assert_eq!(
            out,
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: 10.0.0.7:8000\r\ncontent-type: application/json\r\n\
              x-request-id: req_1\r\ncontent-length: 42\r\n\r\n"
        );
        let get = RequestHead::new("GET", "/metrics", "e:1", None).unwrap();
        get.encode(&mut out, None, None);
        assert_eq!(out, b"GET /metrics HTTP/1.1\r\nhost: e:1\r\n\r\n");
        for (path, host) in [
            ("/a b", "h"),
            ("/a\r\nx: y", "h"),
            ("/a", "h\n"),
            ("a", "h"),
        ] {
            assert!(
                RequestHead::new("GET", path, host, None).is_none(),
                "{path:?} {host:?}"
            );
        }
    }

    #[test]
    fn a_json_answer_by_length() {
        let mut b = buf(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nContent-Length: 7\r\n\r\n{\"a\":1}");
        let head = parse_head(&mut b).unwrap().unwrap();
        assert_eq!(head.status, StatusCode::OK);
        assert_eq!(head.content_type.unwrap(), "application/json");
        assert!(head.keep_alive);
        let mut body = head.body;
        assert_eq!(body.remaining(), Some(7));
        assert_eq!(body.decode(&mut b).unwrap().unwrap(), &b"{\"a\":1}"[..]);
        assert!(body.is_done());
        assert_eq!(body.decode(&mut b).unwrap(), None);
    }

    #[test]
    fn a_head_arriving_in_pieces() {
        let whole =
            b"HTTP/1.1 503 Service Unavailable\r\nserver: uvicorn\r\ncontent-length: 0\r\n\r\n";
        for split in 1..whole.len() {
            let mut b = buf(&whole[..split]);
            assert_eq!(parse_head(&mut b).unwrap(), None, "split at {split}");
            b.extend_from_slice(&whole[split..]);
            let head = parse_head(&mut b).unwrap().unwrap();
            assert_eq!(head.status, StatusCode::SERVICE_UNAVAILABLE);
            assert!(head.body.is_done());
            assert!(b.is_empty());
        }
    }

    #[test]
    fn chunked_streams_in_any_split() {
        // As uvicorn sends an SSE stream: one chunk per event, then the last chunk.
        let wire = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n\
                     transfer-encoding: chunked\r\n\r\n\
                     f\r\ndata: {\"a\":1}\n\n\r\n10;ext=1\r\ndata: [DONE]\n\n  \r\n0\r\nx-trailer: 1\r\n\r\n";
        let mut b = buf(wire);
        let head = parse_head(&mut b).unwrap().unwrap();
        assert!(head.keep_alive);
        assert_eq!(
            head.content_type.unwrap(),
            "text/event-stream; charset=utf-8"
        );
        let rest = b.to_vec();
        for step in 1..=rest.len() {
            let (data, done) = decode_in_steps(head.body.clone(), &rest, step);
            assert_eq!(
                data, b"data: {\"a\":1}\n\ndata: [DONE]\n\n  ",
                "step {step}"
            );
            assert!(done, "step {step}");
        }
    }

    #[test]
    fn bodies_until_close_and_truncation() {
        let mut b = buf(b"HTTP/1.0 200 OK\r\n\r\nhello");
        let head = parse_head(&mut b).unwrap().unwrap();
        assert!(!head.keep_alive);
        let mut body = head.body;
        assert_eq!(body.decode(&mut b).unwrap().unwrap(), &b"hello"[..]);
        assert!(!body.is_done());
        body.eof().unwrap();
        assert!(body.is_done());

        let mut short = BodyDecoder::length(10);
        assert_eq!(
            short.decode(&mut buf(b"12345")).unwrap().unwrap(),
            &b"12345"[..]
        );
        assert_eq!(short.eof(), Err(ProtocolError::Truncated));
        let mut chunks = BodyDecoder::chunked();
        assert_eq!(
            chunks.decode(&mut buf(b"5\r\nab")).unwrap().unwrap(),
            &b"ab"[..]
        );
        assert_eq!(chunks.eof(), Err(ProtocolError::Truncated));
    }

    #[test]
    fn connection_reuse() {
        let keep = |wire: &[u8]| parse_head(&mut buf(wire)).unwrap().unwrap().keep_alive;
        assert!(keep(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"));
        assert!(!keep(
            b"HTTP/1.1 200 OK\r\nConnection: Close\r\ncontent-length: 0\r\n\r\n"
        ));
        assert!(!keep(
            b"HTTP/1.1 200 OK\r\nconnection: upgrade, close\r\ncontent-length: 0\r\n\r\n"
        ));
        assert!(!keep(b"HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n"));
        assert!(keep(
            b"HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 0\r\n\r\n"
        ));
        // No length and not chunked: the body runs until close.
        assert!(!keep(b"HTTP/1.1 200 OK\r\n\r\n"));
        // Both framings: chunked wins, and the connection is not reused.
        let mut b =
            buf(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n");
        let head = parse_head(&mut b).unwrap().unwrap();
        assert!(!head.keep_alive);
        assert_eq!(head.body, BodyDecoder::chunked());
        // A coding other than chunked last: until close.
        let head = parse_head(&mut buf(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked, gzip\r\n\r\n",
        ))
        .unwrap()
        .unwrap();
        assert_eq!(head.body, BodyDecoder::until_close());
        assert!(!head.keep_alive);
    }

    #[test]
    fn interim_responses_are_skipped() {
        let mut b = buf(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\ncontent-length: 5\r\n\r\n",
        );
        let head = parse_head(&mut b).unwrap().unwrap();
        assert_eq!(head.status, StatusCode::NO_CONTENT);
        assert!(
            head.body.is_done(),
            "204 has no body whatever its length says"
        );
        assert!(b.is_empty());
        assert!(parse_head(&mut buf(b"HTTP/1.1 101 Switching Protocols\r\n\r\n")).is_err());
    }

    #[test]
    fn malformed_heads_are_refused() {
        for wire in [
            &b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 99999999999999999999\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 1 2\r\n\r\n",
            b"SSH-2.0-OpenSSH\r\n\r\n",
            b"HTTP/1.1 20 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-type: a\x01b\r\n\r\n",
        ] {
            assert!(
                parse_head(&mut buf(wire)).is_err(),
                "{}",
                String::from_utf8_lossy(wire)
            );
        }
        // Repeated equal lengths are one length.
        let same = parse_head(&mut buf(
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 2\r\n\r\n",
        ));
        assert_eq!(same.unwrap().unwrap().body.remaining(), Some(2));
        let mut huge = buf(b"HTTP/1.1 200 OK\r\n");
        huge.extend(std::iter::repeat_n(b'x', MAX_HEAD));
        assert_eq!(parse_head(&mut huge), Err(ProtocolError::HeadTooLarge));
        let mut many = b"HTTP/1.1 200 OK\r\n".to_vec();
        for _ in 0..=MAX_HEADERS {
            many.extend_from_slice(b"a: b\r\n");
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(
            parse_head(&mut buf(&many)),
            Err(ProtocolError::HeadTooLarge)
        );
    }

    #[test]
    fn malformed_chunks_are_refused() {
        for body in [
            &b"zz\r\n"[..],
            b"5 x\r\nabcde\r\n",
            b"\r\n",
            b"5\nabcde\r\n",
            b"3\r\nabcde\r\n",
            b"11111111111111111\r\n",
        ] {
            let mut d = BodyDecoder::chunked();
            let mut b = buf(body);
            let result = (|| {
                while d.decode(&mut b)?.is_some() {}
                Ok::<_, ProtocolError>(())
            })();
            assert!(result.is_err(), "{}", String::from_utf8_lossy(body));
        }
        let mut long = buf(b"5;");
        long.extend(std::iter::repeat_n(b'x', MAX_CHUNK_LINE + 1));
        assert!(BodyDecoder::chunked().decode(&mut long).is_err());
        let mut trailers = buf(b"0\r\n");
        for _ in 0..MAX_TRAILERS / 8 + 1 {
            trailers.extend_from_slice(b"t: 123\r\n");
        }
        let mut d = BodyDecoder::chunked();
        assert!(d.decode(&mut trailers).is_err());
        // Many short trailer lines are refused too, not read forever.
        let mut short = buf(b"0\r\n");
        for _ in 0..MAX_TRAILERS / 3 + 1 {
            short.extend_from_slice(b"a\r\n");
        }
        assert!(BodyDecoder::chunked().decode(&mut short).is_err());
    }

    #[test]
    fn chunk_sizes() {
        assert_eq!(chunk_size(b"0").unwrap(), 0);
        assert_eq!(chunk_size(b"1a").unwrap(), 26);
        assert_eq!(chunk_size(b"FFFFFFFFFFFFFFFF").unwrap(), u64::MAX);
        assert_eq!(chunk_size(b"10 ;name=value").unwrap(), 16);
        assert_eq!(chunk_size(b"10 \t").unwrap(), 16);
        assert!(chunk_size(b"10 x").is_err());
        assert!(chunk_size(b"").is_err());
    }
}
