//! Prometheus metrics written once, for the gateway and the simulator: [`Histogram`] (fixed buckets, recorded
//! with atomics), the text exposition format 0.0.4 ([`Exposition`], with [`Labels`], the one place label values
//! are escaped) and its parser ([`parse`]), which the gateway uses to read the engines' `/metrics`.
//!
//! Why this crate and not `prometheus-client` (0.26): measured with `benches/observe.rs` on the 2-core VM, shared
//! with other builds (ns per operation, fastest of 7 rounds, range over 4 runs; 1 thread / 2 threads on the same
//! series):
//!
//! | operation | gateway's atomics before | prometheus-client | this crate |
//! |---|---|---|---|
//! | counter +1 | 1.7 / 3.0–6.6 | 1.8–2.0 / 3.2–8.1 | (an `AtomicU64`, as before) |
//! | histogram observation | 6.7–7.6 / 13.3–42.8 | 9.0–9.5 / 17.9–20.9 (a `Mutex`) | 5.4–7.3 / 10.4–30.3 (a `Duration`), 7.6–7.9 / 15.3–22.7 (an `f64`) |
//! | count for a model and status | 6.3–8.7 / 11.9–20.6 (an atomic per status) | 51.5–55.3 / 105.1–109.7 (`Family`) | (as before) |
//!
//! Its histogram takes a lock (`Arc<parking_lot::Mutex<..>>`) and costs 2–4 ns more on one thread (contended,
//! the lock hands off no worse than atomics' cache lines bounce), and a labelled series is a hash-map lookup under
//! a read lock: about 45 ns more per request (90 ns contended) for the gateway's per-status count. Its encoders
//! would also change the text: a full stop added to every `# HELP`, counter families named with `_total`.
//! This histogram makes two atomic adds where the gateway's made three (its total is the buckets' sum).

mod histogram;
pub mod parse;
mod text;

pub use histogram::Histogram;
pub use text::{Exposition, Floats, Kind, Labels, Value};
