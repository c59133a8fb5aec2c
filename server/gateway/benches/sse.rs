//! The SSE scanner alone: nanoseconds per event as an engine sends them (one event per chunk), for vLLM's output
//! (`\n` line ends, usage last), the same with `\r\n` line ends, usage written first, and, for comparison, a full
//! JSON parse of each event's data (what a parser that reads usage by parsing every event would pay).
//!
//! `cargo bench -p tollgate-gateway --bench sse` (`BENCH_EVENTS`, default 200000 per case; best of 5 runs).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test or benchmark may panic: that is how it fails

use std::hint::black_box;
use std::time::Instant;
use tollgate_gateway::model_name::ModelRename;
use tollgate_gateway::sse::{Output, SseScanner, Usage};

fn event(i: usize, usage: bool, eol: &str, usage_first: bool) -> Vec<u8> {
    let u = format!(
        "\"usage\":{{\"prompt_tokens\":9,\"total_tokens\":{},\"completion_tokens\":{i}}}",
        9 + i
    );
    let body = format!(
        "\"id\":\"chatcmpl-5f3c1c3a2b0e4d1f9a7e\",\"object\":\"chat.completion.chunk\",\"created\":1765100000,\"model\":\"meta/llama\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\" token{i}\"}},\"logprobs\":null,\"finish_reason\":null}}]"
    );
    let json = match (usage, usage_first) {
        (false, _) => format!("{{{body}}}"),
        (true, false) => format!("{{{body},{u}}}"),
        (true, true) => format!("{{{u},{body}}}"),
    };
    format!("data: {json}{eol}{eol}").into_bytes()
}

/// A case: its name, its events, what the client asked for (usage chunk, usage on every chunk), renaming.
type Row<'a> = (&'a str, &'a [Vec<u8>], (bool, bool), bool);

fn scan(events: &[Vec<u8>], wants: (bool, bool), rename: bool) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..5 {
        let mut s = SseScanner::new(wants.0, wants.1).renaming(
            rename
                .then(|| ModelRename::new("meta/llama", "llama"))
                .flatten()
                .map(std::sync::Arc::new),
        );
        let start = Instant::now();
        let mut bytes = 0usize;
        for e in events {
            bytes += match s.push(black_box(e)) {
                Output::Same => e.len(),
                Output::Rewritten(v) => v.len(),
            };
        }
        black_box((bytes, s.usage()));
        best = best.min(start.elapsed().as_nanos() as f64 / events.len() as f64);
    }
    best
}

fn parse_each(events: &[Vec<u8>]) -> f64 {
    #[derive(serde::Deserialize)]
    struct Chunk {
        usage: Option<Usage>,
    }
    let mut best = f64::MAX;
    for _ in 0..5 {
        let start = Instant::now();
        let mut last = None;
        for e in events {
            let json = &e[6..e.len() - 2];
            if let Ok(c) = serde_json::from_slice::<Chunk>(black_box(json)) {
                last = c.usage.or(last);
            }
        }
        black_box(last);
        best = best.min(start.elapsed().as_nanos() as f64 / events.len() as f64);
    }
    best
}

fn main() {
    let n = std::env::var("BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000usize);
    let make = |usage, eol, first| -> Vec<Vec<u8>> {
        (0..n).map(|i| event(i % 1000, usage, eol, first)).collect()
    };
    let plain = make(false, "\n", false);
    let usage_last = make(true, "\n", false);
    let usage_crlf = make(true, "\r\n", false);
    let usage_first = make(true, "\n", true);
    println!(
        "tollgate-gateway SSE scanner, one event per chunk, {} bytes an event with usage, best of 5 runs of {n} events",
        usage_last[0].len()
    );
    let rows: [Row; 7] = [
        ("vLLM, no usage, passed as is", &plain, (true, true), false),
        (
            "vLLM, usage last, passed as is",
            &usage_last,
            (true, true),
            false,
        ),
        (
            "vLLM, usage last, field cut",
            &usage_last,
            (false, false),
            false,
        ),
        (
            "vLLM, usage last, cut and model renamed",
            &usage_last,
            (false, false),
            true,
        ),
        (
            "\\r\\n line ends, usage last, passed as is",
            &usage_crlf,
            (true, true),
            false,
        ),
        (
            "\\r\\n line ends, usage last, field cut",
            &usage_crlf,
            (false, false),
            false,
        ),
        (
            "usage first, passed as is",
            &usage_first,
            (true, true),
            false,
        ),
    ];
    for (name, events, wants, rename) in rows {
        println!("  {name:<45} {:>7.1} ns/event", scan(events, wants, rename));
    }
    println!(
        "  {:<45} {:>7.1} ns/event",
        "(serde_json parse of each event, usage last)",
        parse_each(&usage_last)
    );
}
