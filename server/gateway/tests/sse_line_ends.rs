//! An engine that writes its server-sent events with `\r\n` (or `\r`) line ends, as uvicorn apps and proxies do:
//! the client gets each event as the engine sends it, not when the stream ends, and the request is billed the
//! tokens the engine reported.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test or benchmark may panic: that is how it fails

mod common;

use common::*;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tollgate_domain::grant::Limits;
use tollgate_gateway::GatewayConfig;

const PROMPT: u64 = 9;
const TOKENS: [&str; 3] = ["Hello", ",", " world"];

fn event(eol: &str, choices: &str, completion: usize) -> String {
    format!(
        "data: {{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"{SERVED}\",\"choices\":{choices},\"usage\":{{\"prompt_tokens\":{PROMPT},\"total_tokens\":{},\"completion_tokens\":{completion}}}}}{eol}{eol}",
        PROMPT as usize + completion
    )
}

/// The events the engine sends one at a time (each waits for the test's go), then the final usage chunk and
/// `[DONE]` together.
fn events(eol: &str) -> (Vec<String>, String) {
    let mut one_by_one = vec![event(
        eol,
        "[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]",
        0,
    )];
    for (i, t) in TOKENS.iter().enumerate() {
        one_by_one.push(event(
            eol,
            &format!("[{{\"index\":0,\"delta\":{{\"content\":\"{t}\"}}}}]"),
            i + 1,
        ));
    }
    let last = event(eol, "[]", TOKENS.len()) + &format!("data: [DONE]{eol}{eol}");
    (one_by_one, last)
}

/// Reads one HTTP/1.1 request (head and Content-Length body); None when the connection closed.
async fn read_request(conn: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let n = conn.read(&mut byte).await.ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&byte[..n]);
            }
            return Some(head);
        }
        let n = conn.read(&mut byte).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&byte[..n]);
    }
}

async fn write_chunk(conn: &mut TcpStream, data: &[u8]) {
    let mut c = format!("{:x}\r\n", data.len()).into_bytes();
    c.extend_from_slice(data);
    c.extend_from_slice(b"\r\n");
    conn.write_all(&c).await.unwrap();
    conn.flush().await.unwrap();
}

/// An engine that answers chat completions with `events(eol)` in chunked SSE, sending each of the first events
/// only when `go` says so; anything else is a 404.
async fn crlf_engine(eol: &'static str, go: mpsc::Receiver<()>) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let go = std::sync::Arc::new(tokio::sync::Mutex::new(go));
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let go = go.clone();
            tokio::spawn(async move {
                while let Some(head) = read_request(&mut conn).await {
                    if !head.starts_with("POST /v1/chat/completions") {
                        // An engine with no `/metrics`, healthy on `/health`.
                        let answer: &[u8] = if head.starts_with("GET /health") {
                            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"
                        } else {
                            b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"
                        };
                        let _ = conn.write_all(answer).await;
                        continue;
                    }
                    conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
                        .await
                        .unwrap();
                    let (one_by_one, last) = events(eol);
                    let mut go = go.lock().await;
                    for e in one_by_one {
                        go.recv().await;
                        write_chunk(&mut conn, e.as_bytes()).await;
                    }
                    write_chunk(&mut conn, last.as_bytes()).await;
                    conn.write_all(b"0\r\n\r\n").await.unwrap();
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_writing_crlf_events_streams_each_as_sent_and_is_billed() {
    for (seed, eol) in [(120u8, "\r\n"), (121, "\r")] {
        let (go, wait) = mpsc::channel(1);
        let engine = crlf_engine(eol, wait).await;
        let k = key(seed, "sub_crlf", MODEL, Limits::default());
        let g = one_engine_gateway(&k, engine, GatewayConfig::default()).await;
        // The engine sends its first event on the first go.
        go.send(()).await.unwrap();
        let mut r = client()
            .post(g.url("/v1/chat/completions"))
            .header("authorization", format!("Bearer {}", k.secret))
            .json(&chat_body("hi", 16, true))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let blank = format!("{eol}{eol}");
        let mut received = String::new();
        for i in 0..=TOKENS.len() {
            // Each event arrives before the engine is let send the next one.
            let event = tokio::time::timeout(Duration::from_secs(5), async {
                while received.matches(&blank).count() <= i {
                    let chunk = r.chunk().await.unwrap().expect("the stream goes on");
                    received += std::str::from_utf8(&chunk).unwrap();
                }
            })
            .await;
            assert!(
                event.is_ok(),
                "{eol:?}: event {i} not received as it was sent: {received:?}"
            );
            if i < TOKENS.len() {
                go.send(()).await.unwrap();
            }
        }
        while let Some(chunk) = r.chunk().await.unwrap() {
            received += std::str::from_utf8(&chunk).unwrap();
        }
        let events: Vec<&str> = received.split(&blank).filter(|e| !e.is_empty()).collect();
        assert_eq!(events.len(), TOKENS.len() + 2, "{eol:?}: {received:?}");
        assert_eq!(events.last(), Some(&"data: [DONE]"));
        let mut text = String::new();
        for e in &events[..events.len() - 1] {
            let v: serde_json::Value =
                serde_json::from_str(e.strip_prefix("data: ").unwrap()).unwrap();
            assert_eq!(v["model"], MODEL, "the client's model name: {e}");
            assert!(
                v.get("usage").is_none(),
                "the client asked for no usage: {e}"
            );
            text += v["choices"][0]["delta"]["content"].as_str().unwrap();
        }
        assert_eq!(text, TOKENS.concat());
        let records = g.wait_records(1).await;
        assert_eq!(records.len(), 1, "{eol:?}");
        let rec = &records[0];
        assert_eq!(
            (
                rec.status,
                rec.streamed,
                rec.prompt_tokens,
                rec.completion_tokens
            ),
            (200, 1, PROMPT as i64, TOKENS.len() as i64),
            "{eol:?}: {rec:?}"
        );
    }
}
