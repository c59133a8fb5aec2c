//! Attempts over replicas and connections to engines: a replica that hangs before its first byte is left for
//! another within the request's time, streaming or not; idle pooled connections are not kept past the engine's
//! keep-alive.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test or benchmark may panic: that is how it fails

mod common;

use common::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tollgate_domain::grant::Limits;
use tollgate_gateway::GatewayConfig;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_hangs_before_its_first_byte_is_left_for_the_next() {
    let mut hanging = fast_sim();
    // Every generation stalls before its first token for far longer than the test runs.
    hanging.faults.stall_ms = 120_000;
    hanging.faults.stall_after_tokens = 0;
    let hung = sim(hanging).await;
    let healthy = sim(fast_sim()).await;
    let k = key(80, "sub_hang", MODEL, Limits::default());
    let config = GatewayConfig {
        first_token_timeout: Duration::from_millis(300),
        first_byte_timeout: Duration::from_millis(300),
        request_timeout: Duration::from_secs(30),
        ..GatewayConfig::default()
    };
    let g = gateway_with(
        vec![k.entry.clone()],
        &routes(&[hung, healthy], 0),
        memory(),
        config,
    )
    .await;
    let c = client();
    // Ties between idle replicas rotate, so some requests try the hung replica first.
    let tries = [false, true, false, true, false, true];
    for stream in tries {
        let r = c
            .post(g.url("/v1/chat/completions"))
            .header("authorization", format!("Bearer {}", k.secret))
            .json(&chat_body("are you there", 4, stream))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "stream {stream}");
        let text = r.text().await.unwrap();
        assert!(!text.contains("\"error\""), "{text}");
    }
    let records = g.wait_records(tries.len()).await;
    assert!(records
        .iter()
        .all(|r| r.status == 200 && r.replica == format!("http://{healthy}")));
    let metrics = g.gw.metrics_text();
    let line = metrics
        .lines()
        .find(|l| l.starts_with("tollgate_gateway_upstream_errors_total"))
        .unwrap();
    let errors: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(
        errors >= 2.0,
        "the hung replica was tried first at least twice: {line}"
    );
}

/// Forwards connections to `to`, counting them; with `close_when_idle`, closes any that stays idle that long (as an
/// engine's keep-alive would).
async fn counting_proxy(
    to: std::net::SocketAddr,
    close_when_idle: Option<Duration>,
) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let counted = count.clone();
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                if let Ok(outbound) = tokio::net::TcpStream::connect(to).await {
                    forward(inbound, outbound, close_when_idle).await;
                }
            });
        }
    });
    (addr, count)
}

/// Copies both ways until either side closes or, with `idle`, nothing moves for that long (dropping both closes
/// them).
async fn forward(
    mut a: tokio::net::TcpStream,
    mut b: tokio::net::TcpStream,
    idle: Option<Duration>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Some(idle) = idle else {
        let _ = tokio::io::copy_bidirectional(&mut a, &mut b).await;
        return;
    };
    let (mut from_a, mut from_b) = ([0u8; 16384], [0u8; 16384]);
    loop {
        let moved = tokio::select! {
            r = a.read(&mut from_a) => match r {
                Ok(n) if n > 0 => b.write_all(&from_a[..n]).await.is_ok(),
                _ => false,
            },
            r = b.read(&mut from_b) => match r {
                Ok(n) if n > 0 => a.write_all(&from_b[..n]).await.is_ok(),
                _ => false,
            },
            _ = tokio::time::sleep(idle) => false,
        };
        if !moved {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_engine_connections_are_not_reused_past_the_pool_timeout() {
    let engine = sim(fast_sim()).await;
    let (proxy, connections) = counting_proxy(engine, None).await;
    let k = key(81, "sub_pool", MODEL, Limits::default());
    let config = GatewayConfig {
        pool_idle_timeout: Duration::from_millis(200),
        ..GatewayConfig::default()
    };
    let g = one_engine_gateway(&k, proxy, config).await;
    let c = client();
    let send = || {
        c.post(g.url("/v1/chat/completions"))
            .header("authorization", format!("Bearer {}", k.secret))
            .json(&chat_body("hello", 2, false))
            .send()
    };
    assert_eq!(send().await.unwrap().status(), 200);
    assert_eq!(send().await.unwrap().status(), 200);
    assert_eq!(
        connections.load(Ordering::SeqCst),
        1,
        "back to back: one pooled connection"
    );
    // Idle for longer than the pool keeps connections (the engine may be closing it): a fresh one is used.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(send().await.unwrap().status(), 200);
    assert_eq!(connections.load(Ordering::SeqCst), 2);
}

#[test]
fn pooled_connections_are_dropped_before_the_engine_closes_them() {
    // uvicorn's default keep-alive: an idle connection older than this may be closing under a new request.
    const UVICORN_KEEP_ALIVE: Duration = Duration::from_secs(5);
    assert!(GatewayConfig::default().pool_idle_timeout < UVICORN_KEEP_ALIVE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pooled_connection_the_engine_closed_while_idle_is_not_used() {
    let engine = sim(fast_sim()).await;
    let (proxy, connections) = counting_proxy(engine, Some(Duration::from_millis(100))).await;
    let k = key(82, "sub_closed", MODEL, Limits::default());
    // The pool would keep the connection for 4 s; the "engine" closes it after 100 ms.
    let g = gateway(vec![k.entry.clone()], &routes(&[proxy], 0), memory()).await;
    let c = client();
    for (i, stream) in [false, true, false, true].into_iter().enumerate() {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let r = c
            .post(g.url("/v1/chat/completions"))
            .bearer_auth(&k.secret)
            .json(&chat_body("hello", 2, stream))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "request {i}");
        assert!(!r.text().await.unwrap().contains("\"error\""));
    }
    assert_eq!(
        connections.load(Ordering::SeqCst),
        4,
        "a fresh connection each time"
    );
    let records = g.wait_records(4).await;
    assert!(records.iter().all(|r| r.status == 200));
}

/// An engine that answers the first request on each connection and, when a second one arrives on it, closes the
/// connection without answering: what an engine's keep-alive timeout racing a request looks like to the gateway.
async fn engine_closing_reused_connections() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let counted = count.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut got = Vec::new();
                let mut buf = [0u8; 4096];
                // The first request: its head, then as many body bytes as it declares.
                let whole = loop {
                    let Ok(n) = conn.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    got.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&got).to_ascii_lowercase();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let length = text
                            .split("content-length:")
                            .nth(1)
                            .and_then(|v| v.split("\r\n").next())
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        if got.len() >= end + 4 + length {
                            break true;
                        }
                    }
                };
                assert!(whole);
                let body = format!(
                    r#"{{"id":"c","object":"chat.completion","created":1,"model":"{MODEL}","choices":[{{"index":0,"message":{{"role":"assistant","content":"hi"}},"finish_reason":"stop"}}],"usage":{{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}}}"#
                );
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                if conn.write_all(answer.as_bytes()).await.is_err() {
                    return;
                }
                // The next request on this connection is never answered: the connection closes as it arrives.
                let _ = conn.read(&mut buf).await;
            });
        }
    });
    (addr, count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_connection_the_engine_closes_before_answering_is_retried_on_a_fresh_one() {
    let (engine, connections) = engine_closing_reused_connections().await;
    let k = key(84, "sub_race", MODEL, Limits::default());
    // One replica: the retry is the pool's own, not a move to another replica.
    let g = gateway(vec![k.entry.clone()], &routes(&[engine], 0), memory()).await;
    let c = client();
    for i in 0..3 {
        let r = c
            .post(g.url("/v1/chat/completions"))
            .bearer_auth(&k.secret)
            .json(&chat_body("hello", 2, false))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "request {i}");
        let answer: serde_json::Value = r.json().await.unwrap();
        assert_eq!(answer["choices"][0]["message"]["content"], "hi");
    }
    // The first connection served request 0; requests 1 and 2 each found theirs closed and went on a fresh one.
    assert_eq!(connections.load(Ordering::SeqCst), 3);
    let records = g.wait_records(3).await;
    assert!(records.iter().all(|r| r.status == 200), "{records:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_goes_silent_ends_with_an_error_event_after_the_idle_timeout() {
    let mut stalling = fast_sim();
    // Three tokens, then nothing for far longer than the test runs.
    stalling.faults.stall_after_tokens = 3;
    stalling.faults.stall_ms = 120_000;
    let engine = sim(stalling).await;
    let k = key(83, "sub_silent", MODEL, Limits::default());
    let config = GatewayConfig {
        idle_timeout: Duration::from_millis(300),
        ..GatewayConfig::default()
    };
    let g = one_engine_gateway(&k, engine, config).await;
    let started = std::time::Instant::now();
    let r = client()
        .post(g.url("/v1/chat/completions"))
        .bearer_auth(&k.secret)
        .json(&chat_body("then silence", 50, true))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.expect("the stream ends cleanly");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "ended by the idle timeout, not the stall"
    );
    let events = sse_data(&text);
    let last: serde_json::Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "upstream_error", "{text}");
    assert!(last["error"]["message"]
        .as_str()
        .unwrap()
        .contains("idle timeout"));
    assert!(
        events.len() >= 2,
        "the tokens before the silence arrived: {text}"
    );
    let records = g.wait_records(1).await;
    assert_eq!(records[0].status, 502);
    assert!(
        (1..=3).contains(&records[0].completion_tokens),
        "{:?}",
        records[0]
    );
}
