//! Per-subscription limits: requests and tokens per minute, concurrent requests, monthly tokens. Two backends
//! behind one trait: in memory (one gateway) and Redis (several gateways sharing one set of counters).
//!
//! A request reserves an estimate before it is forwarded ([`Limiter::admit`]) and settles to the engine's count
//! when it ends ([`Limiter::settle`]); a request that fails or is abandoned settles at what it used.

pub mod guard;
pub mod headers;
pub mod memory;
pub mod redis;
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

    /// Sets a subscription's month-to-date tokens when it has none yet (at start, from the usage records).
    async fn seed_month(
        &self,
        subscription_id: &str,
        month: i64,
        tokens: u64,
    ) -> Result<(), String>;

    /// The length of the rate window in milliseconds (a minute, except in tests).
    fn window_ms(&self) -> i64;
}

/// The window and month `now_ms` falls in.
pub fn slot_at(now_ms: i64, window_ms: i64) -> Slot {
    Slot {
        window: now_ms.div_euclid(window_ms),
        month: Millis(now_ms).month_start().0,
    }
}

/// Milliseconds from `now_ms` until the current window ends.
pub fn window_reset_ms(now_ms: i64, window_ms: i64) -> i64 {
    window_ms - now_ms.rem_euclid(window_ms)
}

/// How long a refused client should wait before trying again.
pub fn retry_after_ms(kind: LimitKind, now_ms: i64, window_ms: i64) -> i64 {
    match kind {
        // A slot frees when any running request ends: a short wait.
        LimitKind::Concurrency => 1000,
        LimitKind::Requests | LimitKind::Tokens => window_reset_ms(now_ms, window_ms),
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
        assert_eq!(
            retry_after_ms(LimitKind::Requests, 60_000 * 5 + 15_000, 60_000),
            45_000
        );
        assert_eq!(retry_after_ms(LimitKind::Concurrency, 1, 60_000), 1000);
        // 2026-01-31 00:00 UTC → 2026-02-01 00:00 UTC is one day.
        let jan31 = 1_769_817_600_000;
        assert_eq!(
            retry_after_ms(LimitKind::Monthly, jan31, 60_000),
            86_400_000
        );
    }

    #[test]
    fn slots_follow_the_window_and_the_month() {
        let s = slot_at(1_769_817_600_000 + 61_000, 60_000);
        assert_eq!(s.window, (1_769_817_600_000 + 61_000) / 60_000);
        assert_eq!(s.month, Millis(1_769_817_600_000).month_start().0);
    }
}
