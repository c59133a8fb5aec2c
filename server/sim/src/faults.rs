//! Fault injection: failures the simulator can be told to produce, at start-up (flags)
//! or at run time (`POST /sim/faults`).
//!
//! - `error_rate`: fraction (0..=1) of generation and embedding requests answered with 500.
//! - `cut_after_tokens`: after this many tokens the connection is dropped mid-body
//!   (no `[DONE]`, incomplete chunked encoding), for streams and non-streams alike.
//! - `stall_ms` / `stall_after_tokens`: each generation pauses `stall_ms` once, after
//!   `stall_after_tokens` tokens (0 = before the first token).
//! - `exit` (run time only) / `--sim-fault-exit-after-ms`: the process exits with
//!   `exit_code` (default 1), like an engine crash.

use std::sync::RwLock;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The fault settings in force. `POST /sim/faults` replaces them as a whole.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FaultSettings {
    /// Fraction of requests failed with HTTP 500.
    pub error_rate: f64,
    /// Drop the connection after this many generated tokens.
    pub cut_after_tokens: Option<u32>,
    /// Pause this long once per generation.
    pub stall_ms: u64,
    /// Tokens produced before the pause.
    pub stall_after_tokens: u32,
}

/// Body of `POST /sim/faults`: the new settings (missing fields are "off"), plus the
/// one-shot exit action. Unknown fields are rejected so a typo does not silently reset.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultUpdate {
    /// See [`FaultSettings::error_rate`].
    pub error_rate: f64,
    /// See [`FaultSettings::cut_after_tokens`].
    pub cut_after_tokens: Option<u32>,
    /// See [`FaultSettings::stall_ms`].
    pub stall_ms: u64,
    /// See [`FaultSettings::stall_after_tokens`].
    pub stall_after_tokens: u32,
    /// Exit the process shortly after answering.
    pub exit: bool,
    /// Exit status used with `exit` (default 1).
    pub exit_code: Option<i32>,
}

impl FaultUpdate {
    /// The settings part of the update.
    pub fn settings(&self) -> FaultSettings {
        FaultSettings {
            error_rate: self.error_rate,
            cut_after_tokens: self.cut_after_tokens,
            stall_ms: self.stall_ms,
            stall_after_tokens: self.stall_after_tokens,
        }
    }
}

impl FaultSettings {
    /// Checks ranges.
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.error_rate) {
            return Err(format!(
                "error_rate must be between 0 and 1, got {}",
                self.error_rate
            ));
        }
        Ok(())
    }
}

/// What one request must suffer, decided when it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FaultPlan {
    /// Answer 500 instead of serving.
    pub fail: bool,
    /// Drop the connection after this many tokens.
    pub cut_after_tokens: Option<u32>,
    /// Pause once, after `.0` tokens, for `.1`.
    pub stall: Option<(u32, Duration)>,
}

/// The live fault settings.
#[derive(Debug, Default)]
pub struct Faults {
    settings: RwLock<FaultSettings>,
}

impl Faults {
    /// Faults starting with `settings`.
    pub fn new(settings: FaultSettings) -> Self {
        Self {
            settings: RwLock::new(settings),
        }
    }

    /// The settings in force.
    pub fn get(&self) -> FaultSettings {
        self.settings
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces the settings.
    pub fn set(&self, s: FaultSettings) {
        *self.settings.write().unwrap_or_else(|e| e.into_inner()) = s;
    }

    /// Rolls the dice for one request; `roll` is uniform in `[0, 1)`.
    pub fn plan_with(&self, roll: f64) -> FaultPlan {
        let s = self.settings.read().unwrap_or_else(|e| e.into_inner());
        FaultPlan {
            fail: s.error_rate > 0.0 && roll < s.error_rate,
            cut_after_tokens: s.cut_after_tokens,
            stall: (s.stall_ms > 0)
                .then(|| (s.stall_after_tokens, Duration::from_millis(s.stall_ms))),
        }
    }

    /// Rolls the dice for one request.
    pub fn plan(&self) -> FaultPlan {
        self.plan_with(crate::rng::random_unit())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_by_default() {
        let f = Faults::default();
        assert_eq!(f.plan(), FaultPlan::default());
    }

    #[test]
    fn error_rate_is_a_fraction() {
        let f = Faults::new(FaultSettings {
            error_rate: 0.25,
            ..Default::default()
        });
        assert!(f.plan_with(0.1).fail);
        assert!(!f.plan_with(0.3).fail);
        let all = Faults::new(FaultSettings {
            error_rate: 1.0,
            ..Default::default()
        });
        assert!((0..100).all(|_| all.plan().fail));
    }

    #[test]
    fn cut_and_stall_apply_to_every_request() {
        let f = Faults::default();
        f.set(FaultSettings {
            cut_after_tokens: Some(3),
            stall_ms: 500,
            stall_after_tokens: 2,
            ..Default::default()
        });
        let p = f.plan_with(0.9);
        assert_eq!(p.cut_after_tokens, Some(3));
        assert_eq!(p.stall, Some((2, Duration::from_millis(500))));
        assert!(!p.fail);
    }

    #[test]
    fn update_body_parses_and_validates() {
        let u: FaultUpdate = serde_json::from_str(
            r#"{"error_rate": 0.5, "cut_after_tokens": 3, "stall_ms": 1000, "exit": true}"#,
        )
        .expect("parses");
        assert!(u.exit);
        let s = u.settings();
        assert_eq!(s.cut_after_tokens, Some(3));
        assert!(s.validate().is_ok());
        assert!(FaultSettings {
            error_rate: 2.0,
            ..Default::default()
        }
        .validate()
        .is_err());
        assert!(serde_json::from_str::<FaultUpdate>(r#"{"error_rat": 0.5}"#).is_err());
    }
}
