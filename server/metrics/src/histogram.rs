//! A histogram with fixed buckets, recorded with two relaxed atomic adds and no lock.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// A Prometheus histogram: fixed upper bounds, a count per bucket and the sum of what was observed. Observing
/// takes no lock: one atomic add on the value's bucket and one on the sum. The total (`_count`, and the `+Inf`
/// bucket) is the sum of the buckets when written, so the two always agree.
///
/// The sum is kept in millionths of the unit (microseconds for seconds, as the gateway always kept it), in an
/// integer: an `f64` sum needs a compare-and-swap loop, which retries when two threads observe at once (see the
/// benchmark in `benches/observe.rs`). It holds ±9.2e12 units: 97 years of request time at 3,000 seconds a second.
#[derive(Debug)]
pub struct Histogram {
    bounds: Box<[f64]>,
    /// One count per bound (not cumulative), then one for values above the last bound.
    counts: Box<[AtomicU64]>,
    /// The sum of the values observed, in millionths.
    sum_micros: AtomicI64,
}

impl Histogram {
    /// An empty histogram with these upper bounds (ascending, finite; `+Inf` is implied).
    pub fn new(bounds: &[f64]) -> Self {
        debug_assert!(
            bounds.windows(2).all(|w| w[0] < w[1]) && bounds.iter().all(|b| b.is_finite()),
            "bounds must be finite and ascending: {bounds:?}"
        );
        Self {
            bounds: bounds.into(),
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicI64::new(0),
        }
    }

    /// Records one value. A value that is not finite is ignored (it would make the sum meaningless).
    #[inline]
    pub fn observe(&self, v: f64) {
        if v.is_finite() {
            // `as` saturates: a value beyond ±9.2e12 adds the most the sum can hold.
            self.record(v, (v * 1e6).round() as i64);
        }
    }

    /// Records a duration, in seconds.
    #[inline]
    pub fn observe_duration(&self, d: Duration) {
        self.record(d.as_secs_f64(), d.as_micros().min(i64::MAX as u128) as i64);
    }

    #[inline]
    fn record(&self, v: f64, micros: i64) {
        let i = self
            .bounds
            .iter()
            .position(|b| v <= *b)
            .unwrap_or(self.bounds.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// Number of values recorded.
    pub fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// The sum of the values recorded.
    pub fn sum(&self) -> f64 {
        self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
    }

    /// The upper bounds (without `+Inf`).
    pub fn bounds(&self) -> &[f64] {
        &self.bounds
    }

    /// The cumulative count at each bound, then the total (the `+Inf` bucket).
    pub fn cumulative(&self) -> Vec<u64> {
        let mut total = 0;
        self.counts
            .iter()
            .map(|c| {
                total += c.load(Ordering::Relaxed);
                total
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_the_total_is_the_last() {
        let h = Histogram::new(&[0.1, 1.0]);
        for v in [0.05, 0.1, 0.5, 5.0, f64::NAN, f64::INFINITY] {
            h.observe(v);
        }
        assert_eq!(h.cumulative(), vec![2, 3, 4]);
        assert_eq!(h.count(), 4);
        assert_eq!(h.sum(), 5.65);
        h.observe_duration(Duration::from_millis(30));
        assert_eq!(h.cumulative(), vec![3, 4, 5]);
    }

    #[test]
    fn concurrent_observations_all_count() {
        let h = Histogram::new(&[1.0]);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..10_000 {
                        h.observe(0.5);
                    }
                });
            }
        });
        assert_eq!(h.count(), 40_000);
        assert_eq!(h.sum(), 20_000.0);
    }
}
