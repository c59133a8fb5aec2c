//! Small pseudo-random helpers: a seeded SplitMix64 for deterministic text and vectors,
//! and a process-wide unseeded source for request ids and fault dice.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// SplitMix64: tiny, fast and good enough for simulated text.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        self.next_u64() % n
    }

    /// Uniform in `[0, 1)`.
    pub fn unit_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

static STATE: AtomicU64 = AtomicU64::new(0);

/// 64 unpredictable-enough bits (not for security).
pub fn random_u64() -> u64 {
    let mut s = STATE.load(Ordering::Relaxed);
    if s == 0 {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        let _ = STATE.compare_exchange(
            0,
            nanos ^ u64::from(std::process::id()) << 32 | 1,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
        s = STATE.load(Ordering::Relaxed);
    }
    let n = STATE.fetch_add(1, Ordering::Relaxed).wrapping_add(s);
    SplitMix64::new(n).next_u64()
}

/// Uniform in `[0, 1)`.
pub fn random_unit() -> f64 {
    (random_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// 32 hex characters, like Python's `uuid.uuid4().hex` that vLLM uses for ids.
pub fn random_uuid_hex() -> String {
    format!("{:016x}{:016x}", random_u64(), random_u64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_is_deterministic() {
        let mut a = SplitMix64::new(7);
        let mut b = SplitMix64::new(7);
        assert_eq!(a.next_u64(), b.next_u64());
        assert!(a.below(10) < 10);
        let u = a.unit_f64();
        assert!((0.0..1.0).contains(&u));
        assert_eq!(a.below(0), 0);
    }

    #[test]
    fn ids_are_unique_hex() {
        let a = random_uuid_hex();
        let b = random_uuid_hex();
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
    }
}
