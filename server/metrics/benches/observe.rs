//! What one observation costs: a counter increment and a histogram observation, on one thread and with two threads
//! on the same series, for (a) the gateway's atomics as they were before this crate, (b) `prometheus-client` and
//! (c) this crate's `Histogram`. Also what labelled counting costs per request: (a) an atomic per status, found by
//! index, against (b) a `prometheus-client` `Family` looked up by its label set.
//!
//! `cargo bench -p tollgate-metrics --bench observe`; `BENCH_OPS` (per thread, default 5,000,000) and
//! `BENCH_ROUNDS` (default 7). Prints ns per operation as each thread sees it: the fastest round, and the median.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test or benchmark may panic: that is how it fails

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter as PcCounter;
use prometheus_client::metrics::family::Family as PcFamily;
use prometheus_client::metrics::histogram::Histogram as PcHistogram;

/// The gateway's latency buckets.
const BUCKETS: [f64; 14] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0,
];

/// (a) The gateway's histogram before this crate, as it was (`server/gateway/src/metrics.rs`).
#[derive(Default)]
struct OldHistogram {
    counts: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl OldHistogram {
    fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(
            d.as_micros().min(u128::from(u64::MAX)) as u64,
            Ordering::Relaxed,
        );
    }
}

/// One operation, given the iteration's number.
type Op<'a> = Box<dyn Fn(usize) + Sync + 'a>;

fn main() {
    let ops: usize = env("BENCH_OPS", 5_000_000);
    let rounds: usize = env("BENCH_ROUNDS", 7);
    // Latencies from 0.2 ms to ~3 s, spread over the buckets, in an order the branch predictor cannot learn.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let durations: Vec<Duration> = (0..1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            Duration::from_micros(200 + x % 3_000_000 / (1 + x % 97))
        })
        .collect();
    let d = |i: usize| durations[i & 1023];

    let old_counter = AtomicU64::new(0);
    let old_hist = OldHistogram::default();
    let old_statuses: Vec<AtomicU64> = (0..500).map(|_| AtomicU64::new(0)).collect();
    let pc_counter = PcCounter::<u64>::default();
    let pc_hist = PcHistogram::new(BUCKETS);
    let pc_family = PcFamily::<Vec<(String, String)>, PcCounter>::default();
    let pc_labels = vec![
        ("model".to_string(), "llama-3.1-8b-instruct".to_string()),
        ("status".to_string(), "200".to_string()),
    ];
    let new_hist = tollgate_metrics::Histogram::new(&BUCKETS);

    println!(
        "tollgate-metrics observe benchmark: ns per operation as each thread sees it, fastest / median of {rounds} rounds, {ops} operations per thread per round"
    );
    println!("{:<64} {:>17} {:>17}", "", "1 thread", "2 threads");
    let rows: Vec<(&str, Op)> = vec![
        (
            "counter +1: (a) gateway AtomicU64::fetch_add",
            Box::new(|_| {
                old_counter.fetch_add(1, Ordering::Relaxed);
            }),
        ),
        (
            "counter +1: (b) prometheus-client Counter::inc",
            Box::new(|_| {
                pc_counter.inc();
            }),
        ),
        (
            "histogram: (a) gateway Histogram::observe (3 atomic adds)",
            Box::new(|i| old_hist.observe(d(i))),
        ),
        (
            "histogram: (b) prometheus-client Histogram::observe (Mutex)",
            Box::new(|i| pc_hist.observe(d(i).as_secs_f64())),
        ),
        (
            "histogram: (c) tollgate-metrics Histogram::observe_duration",
            Box::new(|i| new_hist.observe_duration(d(i))),
        ),
        (
            "histogram: (c) tollgate-metrics Histogram::observe (f64)",
            Box::new(|i| new_hist.observe(d(i).as_secs_f64())),
        ),
        (
            "status count: (a) gateway atomic per status, by index",
            Box::new(|i| {
                let status = black_box(200 + (i & 1) as u16 * 229);
                old_statuses[usize::from(status - 100)].fetch_add(1, Ordering::Relaxed);
            }),
        ),
        (
            "status count: (b) prometheus-client Family::get_or_create.inc",
            Box::new(|_| {
                pc_family.get_or_create(black_box(&pc_labels)).inc();
            }),
        ),
    ];
    for (name, op) in &rows {
        let one = measure(rounds, ops, 1, op.as_ref());
        let two = measure(rounds, ops, 2, op.as_ref());
        println!(
            "{name:<64} {:>7.1} / {:>7.1} {:>7.1} / {:>7.1}",
            one.0, one.1, two.0, two.1
        );
    }
    // Every observation counted, whatever the threads did: two rows, 1 + 2 threads, each `ops` per round.
    assert_eq!(new_hist.count(), (6 * rounds * ops) as u64);
    black_box((&old_counter, &old_hist, &pc_counter, &pc_hist));
}

/// Fastest and median ns per operation over `rounds`, with `threads` threads on the same series.
fn measure(rounds: usize, ops: usize, threads: usize, op: &(dyn Fn(usize) + Sync)) -> (f64, f64) {
    let mut per_op: Vec<f64> = (0..rounds)
        .map(|_| {
            let barrier = Barrier::new(threads);
            let elapsed: Vec<Duration> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..threads)
                    .map(|t| {
                        let barrier = &barrier;
                        s.spawn(move || {
                            barrier.wait();
                            let start = Instant::now();
                            for i in 0..ops {
                                op(black_box(i + t * 512));
                            }
                            start.elapsed()
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            let slowest = elapsed.into_iter().max().unwrap_or_default();
            slowest.as_nanos() as f64 / ops as f64
        })
        .collect();
    per_op.sort_by(f64::total_cmp);
    (per_op[0], per_op[per_op.len() / 2])
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
