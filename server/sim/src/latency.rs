//! The latency model: how long prefill and each decode step take.
//!
//! Prefill time grows linearly with the prompt (`prompt / prefill_tokens_per_s`); a decode
//! step costs `decode_ms + decode_ms_per_seq * (running - 1)`, so inter-token latency grows
//! with the batch as it does under continuous batching. Zero values mean "instant".

use std::time::Duration;

/// Speeds of the simulated engine.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatencyModel {
    /// Prompt tokens processed per second during prefill; 0 = instant prefill.
    pub prefill_tokens_per_s: f64,
    /// Milliseconds per decode step with one running sequence.
    pub decode_ms: f64,
    /// Extra milliseconds per decode step for each additional running sequence.
    pub decode_ms_per_seq: f64,
}

impl Default for LatencyModel {
    fn default() -> Self {
        Self {
            prefill_tokens_per_s: 5000.0,
            decode_ms: 20.0,
            decode_ms_per_seq: 0.15,
        }
    }
}

impl LatencyModel {
    /// A model where nothing takes time.
    pub fn zero() -> Self {
        Self {
            prefill_tokens_per_s: 0.0,
            decode_ms: 0.0,
            decode_ms_per_seq: 0.0,
        }
    }

    /// Time to process `prompt_tokens` of prompt.
    pub fn prefill(&self, prompt_tokens: u64) -> Duration {
        if self.prefill_tokens_per_s <= 0.0 || prompt_tokens == 0 {
            return Duration::ZERO;
        }
        secs(prompt_tokens as f64 / self.prefill_tokens_per_s)
    }

    /// Time of one decode step while `running` sequences share the batch.
    pub fn decode_step(&self, running: u32) -> Duration {
        let extra = f64::from(running.saturating_sub(1)) * self.decode_ms_per_seq.max(0.0);
        secs((self.decode_ms.max(0.0) + extra) / 1000.0)
    }

    /// Whether every step is instant (lets the engine skip timers entirely).
    pub fn is_zero(&self) -> bool {
        self.prefill_tokens_per_s <= 0.0 && self.decode_ms <= 0.0 && self.decode_ms_per_seq <= 0.0
    }
}

fn secs(s: f64) -> Duration {
    if s.is_finite() && s > 0.0 {
        Duration::from_secs_f64(s.min(86_400.0))
    } else {
        Duration::ZERO
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefill_grows_with_prompt_length() {
        let m = LatencyModel::default();
        assert_eq!(m.prefill(0), Duration::ZERO);
        assert_eq!(m.prefill(5000), Duration::from_secs(1));
        assert!(m.prefill(100) < m.prefill(1000));
    }

    #[test]
    fn decode_grows_with_batch_size() {
        let m = LatencyModel {
            prefill_tokens_per_s: 1.0,
            decode_ms: 20.0,
            decode_ms_per_seq: 0.5,
        };
        assert_eq!(m.decode_step(0), Duration::from_millis(20));
        assert_eq!(m.decode_step(1), Duration::from_millis(20));
        assert_eq!(m.decode_step(11), Duration::from_millis(25));
        assert!(m.decode_step(100) > m.decode_step(10));
    }

    #[test]
    fn zero_model_is_instant() {
        let m = LatencyModel::zero();
        assert!(m.is_zero());
        assert_eq!(m.prefill(100_000), Duration::ZERO);
        assert_eq!(m.decode_step(1000), Duration::ZERO);
    }

    #[test]
    fn nonsense_values_do_not_panic() {
        let m = LatencyModel {
            prefill_tokens_per_s: f64::NAN,
            decode_ms: -5.0,
            decode_ms_per_seq: f64::INFINITY,
        };
        assert_eq!(m.prefill(10), Duration::ZERO);
        let _ = m.decode_step(3);
    }
}
