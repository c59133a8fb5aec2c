//! Per-subscription limits: requests and tokens per minute, concurrent requests, monthly tokens. Two backends
//! behind one trait: in memory (one gateway) and Redis (several gateways sharing one set of counters).
//!
//! A request reserves an estimate before it is forwarded ([`Limiter::admit`]) and settles to the engine's count
//! when it ends ([`Limiter::settle`]); a request that fails or is abandoned settles at what it used.
//!
//! With Redis, [`failover::FailoverLimiter`] stands in front of it: while Redis cannot be reached, each replica
//! enforces its share of every limit in memory ([`share`]) and a prober waits for Redis to answer again.

pub mod failover;
pub mod guard;
pub mod headers;
pub mod memory;
pub mod redis;
pub mod share;
pub mod window;

use async_trait::async_trait;
use tollgate_domain::{grant::Limits, time::Millis};
pub use window::{LimitKind, Seen, Slot};

/// A reservation, made before it is admitted so that its id exists while the admission is in flight: settling it
/// is then safe whatever became of the admission (see [`Limiter::settle`] and `guard.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    /// Unique across gateways and restarts (the Redis backend keeps it as a member of the running set).
    pub id: String,
    pub subscription_id: String,
    pub reserved: u64,
    pub slot: Slot,
}

impl Ticket {
    /// A reservation of `reserved` tokens at `now_ms`, counted in the window of a limiter with `window_ms`.
    pub fn new(
        id: String,
        subscription_id: &str,
        reserved: u64,
        now_ms: i64,
        window_ms: i64,
    ) -> Self {
        Self {
            id,
            subscription_id: subscription_id.to_owned(),
            reserved,
            slot: slot_at(now_ms, window_ms),
        }
    }
}

/// Why a request was not admitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitError {
    Refused {
        kind: LimitKind,
        seen: Seen,
        retry_after_ms: i64,
    },
    /// The shared counters cannot be reached: requests are refused rather than let through unlimited.
    Unavailable(String),
}

#[async_trait]
pub trait Limiter: Send + Sync + 'static {
    /// Admits `ticket`'s reservation at `now_ms`, or refuses it. On success returns the counters after the
    /// reservation (for the rate-limit headers); the ticket must then be settled.
    async fn admit(
        &self,
        ticket: &Ticket,
        limits: &Limits,
        now_ms: i64,
    ) -> Result<Seen, LimitError>;

    /// Replaces the ticket's reservation by `used` tokens and frees its concurrency slot. A ticket that was never
    /// admitted (refused, or its admission abandoned before it ran) or is already settled is ignored, so a caller
    /// that cannot know whether an abandoned admission happened settles it anyway. Never waits: a backend that
    /// needs IO does it in the background, after (in order) any admission already sent.
    fn settle(&self, ticket: Ticket, used: u64);

    /// Tells the backend the ticket's request is still running (a long stream), for backends whose slots expire.
    fn refresh(&self, _ticket: &Ticket, _now_ms: i64) {}

    /// How often [`Limiter::refresh`] needs calling for a slot to stay held; None when slots never expire.
    fn refresh_every_ms(&self) -> Option<i64> {
        None
    }

    /// Raises a subscription's month-to-date tokens to at least `tokens`, the total of its usage records (at
    /// start, and after an outage of shared counters). Never lowers it: the live count also holds reservations of
    /// requests still running and records not yet written.
    async fn seed_month(
        &self,
        subscription_id: &str,
        month: i64,
        tokens: u64,
    ) -> Result<(), String>;

    /// The length of the rate window in milliseconds (a minute, except in tests).
    fn window_ms(&self) -> i64;

    /// Whether the backend answers (a round trip for a remote one), and whether it lost its counters since the
    /// last ping (a Redis that restarted empty): `Ok(true)` then, so they can be rebuilt from the usage records.
    async fn ping(&self) -> Result<bool, String> {
        Ok(false)
    }

    /// Adds requests and tokens admitted elsewhere in `slot`'s step (under local limits while this backend was
    /// unreachable), so that the window counts them while that step is in it.
    async fn absorb(
        &self,
        _subscription_id: &str,
        _slot: Slot,
        _requests: u64,
        _tokens: u64,
    ) -> Result<(), String> {
        Ok(())
    }

    /// Where limits are counted now, for `/readyz` and `/metrics`.
    fn status(&self) -> LimiterStatus {
        LimiterStatus::default()
    }

    /// How many gateway replicas share the limits (from their heartbeats), for backends that split limits between
    /// replicas when they cannot share counters.
    fn set_replicas(&self, _replicas: u32) {}
}

/// Where limits are counted now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LimiterMode {
    /// In this process: the only replica (no shared counters configured).
    #[default]
    InProcess,
    /// In the shared counters (Redis), one set for every replica.
    Shared,
    /// The shared counters cannot be reached: each replica enforces its share of every limit in memory.
    LocalShare,
    /// The shared counters cannot be reached and the gateway is configured to fail closed: requests are refused.
    Refusing,
}

impl LimiterMode {
    pub fn label(self) -> &'static str {
        match self {
            Self::InProcess => "in_process",
            Self::Shared => "shared",
            Self::LocalShare => "local_share",
            Self::Refusing => "refusing",
        }
    }
}

/// A limiter's state, as `/readyz` (this, as JSON) and `/metrics` report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct LimiterStatus {
    pub mode: LimiterMode,
    /// Replicas the limits are divided between while they are local.
    pub replicas: u32,
    /// Since when (epoch ms) the shared counters have been unreachable, while they are.
    pub down_since_ms: Option<i64>,
    /// Requests admitted under local limits because the shared counters were unreachable, since start.
    pub local_admissions: u64,
    /// Times the shared counters became unreachable, since start.
    pub outages: u64,
}

impl Default for LimiterStatus {
    fn default() -> Self {
        Self {
            mode: LimiterMode::InProcess,
            replicas: 1,
            down_since_ms: None,
            local_admissions: 0,
            outages: 0,
        }
    }
}

/// The step of the rate window and the month `now_ms` falls in.
pub fn slot_at(now_ms: i64, window_ms: i64) -> Slot {
    Slot {
        step: now_ms.div_euclid(window::step_ms(window_ms)),
        month: Millis(now_ms).month_start().0,
    }
}

/// Milliseconds from `now_ms` until what is admitted now has left the sliding window: when the per-minute counts
/// are back to their initial state if nothing more is admitted (OpenAI's `x-ratelimit-reset-*`).
pub fn window_reset_ms(now_ms: i64, window_ms: i64) -> i64 {
    window::leaves_at_ms(slot_at(now_ms, window_ms).step, window_ms) - now_ms
}

/// How long a refused client should wait before trying again: for the per-minute limits, until the step named by
/// the refusal (`frees_at_step`) has left the window, when the same request would fit.
pub fn retry_after_ms(
    kind: LimitKind,
    now_ms: i64,
    window_ms: i64,
    frees_at_step: Option<i64>,
) -> i64 {
    match kind {
        // A slot frees when any running request ends: a short wait.
        LimitKind::Concurrency => 1000,
        LimitKind::Requests | LimitKind::Tokens => match frees_at_step {
            Some(step) => (window::leaves_at_ms(step, window_ms) - now_ms).max(1),
            None => window_reset_ms(now_ms, window_ms),
        },
        LimitKind::Monthly => {
            let month = Millis(now_ms).month_start().0;
            let next = Millis(month + 32 * 86_400_000).month_start().0;
            next - now_ms
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_points_at_the_end_of_what_refused() {
        // At 5 min 15 s, the request admitted in second 4 min 30 s must leave: it does at 5 min 31 s.
        assert_eq!(
            retry_after_ms(LimitKind::Requests, 315_000, 60_000, Some(270)),
            16_000
        );
        assert_eq!(
            retry_after_ms(LimitKind::Tokens, 315_500, 60_000, None),
            61_000 - 500,
            "no step named: the whole window"
        );
        assert_eq!(
            retry_after_ms(LimitKind::Concurrency, 1, 60_000, None),
            1000
        );
        // 2026-01-31 00:00 UTC → 2026-02-01 00:00 UTC is one day.
        let jan31 = 1_769_817_600_000;
        assert_eq!(
            retry_after_ms(LimitKind::Monthly, jan31, 60_000, None),
            86_400_000
        );
    }

    #[test]
    fn mode_labels_in_metrics_and_readyz_agree() {
        for mode in [
            LimiterMode::InProcess,
            LimiterMode::Shared,
            LimiterMode::LocalShare,
            LimiterMode::Refusing,
        ] {
            assert_eq!(
                serde_json::to_value(mode).ok(),
                Some(serde_json::Value::from(mode.label()))
            );
        }
    }

    #[test]
    fn slots_follow_the_step_and_the_month() {
        let s = slot_at(1_769_817_600_000 + 61_500, 60_000);
        assert_eq!(s.step, (1_769_817_600_000 + 61_000) / 1000);
        assert_eq!(window_reset_ms(61_500, 60_000), 60_500);
        assert_eq!(s.month, Millis(1_769_817_600_000).month_start().0);
    }
}
