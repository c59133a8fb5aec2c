//! Capacity benchmark of the simulator (prints figures; not a timed test).
//!
//! Runs the real `tollgate-sim` binary (release build) as a child process and drives it
//! from this process over raw keep-alive HTTP/1.1 connections:
//! 1. requests/s at zero simulated latency, non-streaming and streaming, 16 output tokens;
//! 2. N concurrent streams held open (slow decode), with the child's resident memory
//!    (VmRSS from /proc) and its CPU use while holding them.
//!
//! `cargo bench -p tollgate-sim --bench capacity`; environment knobs:
//! `BENCH_SECS` (default 5), `BENCH_CONNECTIONS` (64), `BENCH_STREAMS` (10000).
//! Client and server share the machine, so on a 2-core box the figures are a floor.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test or benchmark may panic: that is how it fails

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Sim {
    child: Child,
    addr: SocketAddr,
}

impl Sim {
    fn start(args: &[&str]) -> Sim {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tollgate-sim"))
            .args(args)
            .args(["--host", "127.0.0.1", "--port", "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn tollgate-sim");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("listening line");
        let addr = line
            .trim()
            .trim_start_matches("tollgate-sim listening on http://")
            .parse()
            .expect("address");
        Sim { child, addr }
    }

    fn status_kb(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with(field))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// utime + stime in clock ticks.
    fn cpu_ticks(&self) -> u64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let f: Vec<&str> = after.split_whitespace().collect();
        f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
            + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn request(addr: SocketAddr, body: &str, keep_alive: bool) -> Vec<u8> {
    format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: {}\r\n\r\n{body}",
        body.len(),
        if keep_alive { "keep-alive" } else { "close" }
    )
    .into_bytes()
}

/// Reads one response off a keep-alive connection (Content-Length or chunked body).
async fn read_response(s: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<()> {
    buf.clear();
    let mut tmp = [0u8; 16 * 1024];
    loop {
        let n = s.read(&mut tmp).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&tmp[..n]);
        let Some(h) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..h]).to_ascii_lowercase();
        if let Some(len) = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok())
        {
            if buf.len() >= h + 4 + len {
                return Ok(());
            }
        } else if buf.ends_with(b"0\r\n\r\n") {
            return Ok(());
        }
    }
}

async fn throughput(addr: SocketAddr, connections: u64, secs: u64, stream: bool) -> f64 {
    let body = serde_json::json!({
        "model": "m", "messages": [{"role": "user", "content": "Benchmark the simulator please."}],
        "max_tokens": 16, "ignore_eos": true, "stream": stream
    })
    .to_string();
    let req = Arc::new(request(addr, &body, true));
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (req, done, stop) = (req.clone(), done.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let Ok(mut s) = TcpStream::connect(addr).await else {
                return;
            };
            let _ = s.set_nodelay(true);
            let mut buf = Vec::with_capacity(8192);
            while !stop.load(Ordering::Relaxed) {
                if s.write_all(&req).await.is_err()
                    || read_response(&mut s, &mut buf).await.is_err()
                {
                    return;
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    // Warm up, then measure.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let start_count = done.load(Ordering::Relaxed);
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let n = done.load(Ordering::Relaxed) - start_count;
    let rate = n as f64 / t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    rate
}

async fn hold_streams(sim: &Sim, n: u64) -> (u64, f64) {
    let body = serde_json::json!({
        "model": "m", "messages": [{"role": "user", "content": "Hold this stream open."}],
        "max_tokens": 600, "ignore_eos": true, "stream": true
    })
    .to_string();
    let req = Arc::new(request(sim.addr, &body, false));
    let connect_limit = Arc::new(Semaphore::new(256));
    let opened = Arc::new(AtomicU64::new(0));
    let addr = sim.addr;
    let mut tasks = Vec::with_capacity(n as usize);
    let t0 = Instant::now();
    for _ in 0..n {
        let (req, limit, opened) = (req.clone(), connect_limit.clone(), opened.clone());
        tasks.push(tokio::spawn(async move {
            let permit = limit.acquire_owned().await;
            let Ok(mut s) = TcpStream::connect(addr).await else {
                return;
            };
            if s.write_all(&req).await.is_err() {
                return;
            }
            let mut buf = [0u8; 2048];
            // Headers and the first chunk (role) arrive after prefill.
            if !matches!(s.read(&mut buf).await, Ok(n) if n > 0) {
                return;
            }
            opened.fetch_add(1, Ordering::Relaxed);
            drop(permit);
            while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
        }));
    }
    while opened.load(Ordering::Relaxed) < n && t0.elapsed() < Duration::from_secs(120) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let open_secs = t0.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let held = opened.load(Ordering::Relaxed);
    let state = raw_get(addr, "/sim/state").await;
    let running =
        serde_json::from_str::<serde_json::Value>(state.split("\r\n\r\n").nth(1).unwrap_or("{}"))
            .ok()
            .and_then(|v| v["running_requests"].as_u64())
            .unwrap_or(0);
    println!("  streams opened: {held}/{n} in {open_secs:.1} s; engine reports running_requests = {running}");
    let ticks0 = sim.cpu_ticks();
    let t = Instant::now();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let cpu = (sim.cpu_ticks() - ticks0) as f64 / 100.0 / t.elapsed().as_secs_f64();
    for t in tasks {
        t.abort();
    }
    (held, cpu)
}

async fn raw_get(addr: SocketAddr, path: &str) -> String {
    let Ok(mut s) = TcpStream::connect(addr).await else {
        return String::new();
    };
    let _ = s
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await;
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    String::from_utf8_lossy(&out).into_owned()
}

fn main() {
    let secs = env_num("BENCH_SECS", 5);
    let connections = env_num("BENCH_CONNECTIONS", 64);
    let streams = env_num("BENCH_STREAMS", 10_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    println!("tollgate-sim capacity benchmark ({cores} cores shared by client and server)");

    {
        let sim = Sim::start(&[
            "m",
            "--sim-zero-latency",
            "--max-num-seqs",
            "100000",
            "--sim-kv-cache-tokens",
            "1000000000000",
        ]);
        std::thread::sleep(Duration::from_millis(200));
        println!("idle RSS: {} MiB", sim.status_kb("VmRSS:") / 1024);
        for stream in [false, true] {
            let rate = rt.block_on(throughput(sim.addr, connections, secs, stream));
            println!(
                "zero latency, {connections} keep-alive connections, 16 tokens/request, {}: {rate:.0} requests/s ({:.0} tokens/s)",
                if stream { "streaming" } else { "non-streaming" },
                rate * 16.0
            );
        }
        println!(
            "RSS after throughput runs: {} MiB",
            sim.status_kb("VmRSS:") / 1024
        );
    }

    {
        let sim = Sim::start(&[
            "m",
            "--max-num-seqs",
            "1000000",
            "--sim-kv-cache-tokens",
            "1000000000000",
            "--sim-decode-ms",
            "1000",
            "--sim-decode-ms-per-seq",
            "0",
            "--sim-prefill-tokens-per-s",
            "0",
        ]);
        std::thread::sleep(Duration::from_millis(200));
        let idle = sim.status_kb("VmRSS:");
        println!("holding {streams} concurrent streams (one token per second each):");
        let (held, cpu) = rt.block_on(hold_streams(&sim, streams));
        let rss = sim.status_kb("VmRSS:");
        let peak = sim.status_kb("VmHWM:");
        println!(
            "  {held} streams held: RSS {} MiB (idle {} MiB, peak {} MiB), {:.1} KiB per stream, server CPU {:.0}% of one core",
            rss / 1024,
            idle / 1024,
            peak / 1024,
            (rss.saturating_sub(idle)) as f64 / held.max(1) as f64,
            cpu * 100.0
        );
    }
}
