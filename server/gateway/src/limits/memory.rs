//! Counters in this process: the default for a single gateway. One short lock per admission and per settlement.

use super::{retry_after_ms, window, LimitError, Limiter, Seen, Slot, Ticket};
use async_trait::async_trait;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use tollgate_domain::grant::Limits;

pub struct MemoryLimiter {
    counters: Mutex<HashMap<String, Subscription>>,
    window_ms: i64,
}

#[derive(Default)]
struct Subscription {
    counters: window::Counters,
    /// Admitted tickets not yet settled: settling anything else is ignored (see `Limiter::settle`).
    running: HashSet<String>,
}

impl MemoryLimiter {
    pub fn new() -> Self {
        Self::with_window(60_000)
    }

    /// A limiter whose "minute" lasts `window_ms` (tests use long windows so a run never straddles two).
    pub fn with_window(window_ms: i64) -> Self {
        Self {
            counters: Mutex::new(HashMap::new()),
            window_ms: window_ms.max(1),
        }
    }

    /// A subscription's counters, for tests and diagnostics.
    pub fn counters(&self, subscription_id: &str) -> Option<window::Counters> {
        self.lock().get(subscription_id).map(|s| s.counters.clone())
    }

    /// Settles `ticket` if this limiter admitted it and it is still running; says whether it did. Lets a limiter
    /// in front of two backends settle each ticket where it was counted.
    pub fn settle_running(&self, ticket: &Ticket, used: u64) -> bool {
        let mut map = self.lock();
        let Some(s) = map.get_mut(&ticket.subscription_id) else {
            return false;
        };
        if !s.running.remove(&ticket.id) {
            return false;
        }
        window::settle(&mut s.counters, ticket.slot, ticket.reserved, used);
        true
    }

    /// Whether `ticket` was admitted here and is still running.
    pub fn is_running(&self, ticket: &Ticket) -> bool {
        self.lock()
            .get(&ticket.subscription_id)
            .is_some_and(|s| s.running.contains(&ticket.id))
    }

    /// Takes in what shared counters reported for a subscription's window (`seen` after an admission there), so
    /// that if they become unreachable within this window, local limits start from what was already admitted.
    pub fn observe(&self, subscription_id: &str, slot: Slot, seen: Seen) {
        let mut map = self.lock();
        let sub = match map.get_mut(subscription_id) {
            Some(s) => s,
            None => map.entry(subscription_id.to_owned()).or_default(),
        };
        window::observe(&mut sub.counters, slot, seen);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Subscription>> {
        // The map holds plain counters: a panic elsewhere cannot leave it inconsistent, so poisoning is ignored.
        self.counters.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Default for MemoryLimiter {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl Limiter for MemoryLimiter {
    async fn admit(
        &self,
        ticket: &Ticket,
        limits: &Limits,
        now_ms: i64,
    ) -> Result<Seen, LimitError> {
        let result = {
            let mut map = self.lock();
            let sub = match map.get_mut(&ticket.subscription_id) {
                Some(s) => s,
                None => map.entry(ticket.subscription_id.clone()).or_default(),
            };
            let result = window::admit(&mut sub.counters, limits, ticket.reserved, ticket.slot);
            if result.is_ok() {
                sub.running.insert(ticket.id.clone());
            }
            result
        };
        match result {
            Ok(seen) => Ok(seen),
            Err(refusal) => Err(LimitError::Refused {
                kind: refusal.kind,
                seen: refusal.seen,
                retry_after_ms: retry_after_ms(
                    refusal.kind,
                    now_ms,
                    self.window_ms,
                    refusal.frees_at_step,
                ),
            }),
        }
    }

    fn settle(&self, ticket: Ticket, used: u64) {
        self.settle_running(&ticket, used);
    }

    async fn seed_month(
        &self,
        subscription_id: &str,
        month: i64,
        tokens: u64,
    ) -> Result<(), String> {
        let mut map = self.lock();
        let c = &mut map.entry(subscription_id.to_owned()).or_default().counters;
        if c.month != month {
            c.month = month;
            c.month_tokens = tokens;
        } else {
            c.month_tokens = c.month_tokens.max(tokens);
        }
        Ok(())
    }

    fn window_ms(&self) -> i64 {
        self.window_ms
    }

    async fn absorb(
        &self,
        subscription_id: &str,
        slot: Slot,
        requests: u64,
        tokens: u64,
    ) -> Result<(), String> {
        let mut map = self.lock();
        let c = &mut map.entry(subscription_id.to_owned()).or_default().counters;
        window::absorb(c, slot, requests, tokens);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::{slot_at, LimitKind};

    fn ticket(id: &str, sub: &str, reserve: u64, now: i64) -> Ticket {
        Ticket::new(id.into(), sub, reserve, now, 60_000)
    }

    #[tokio::test]
    async fn admits_refuses_and_settles() {
        let l = MemoryLimiter::with_window(60_000);
        let limits = Limits {
            tokens_per_minute: Some(100),
            ..Limits::default()
        };
        let t = ticket("a", "s", 80, 1_000);
        let seen = l.admit(&t, &limits, 1_000).await.unwrap();
        assert_eq!(seen.tokens, 80);
        match l.admit(&ticket("b", "s", 30, 2_000), &limits, 2_000).await {
            Err(LimitError::Refused {
                kind,
                retry_after_ms,
                ..
            }) => {
                assert_eq!(kind, LimitKind::Tokens);
                // The 80 tokens admitted in second 1 must leave: they do when second 62 begins.
                assert_eq!(retry_after_ms, 60_000);
            }
            other => panic!("{other:?}"),
        }
        l.settle(t.clone(), 20);
        assert_eq!(l.counters("s").unwrap().tokens, 20);
        l.settle(t, 0);
        assert_eq!(
            l.counters("s").unwrap().tokens,
            20,
            "a second settlement is ignored"
        );
        l.settle(ticket("b", "s", 30, 2_000), 0);
        assert_eq!(
            l.counters("s").unwrap().tokens,
            20,
            "so is a refused ticket"
        );
        assert!(l
            .admit(&ticket("c", "s", 30, 3_000), &limits, 3_000)
            .await
            .is_ok());
        assert!(
            l.admit(&ticket("d", "other", 100, 3_000), &limits, 3_000)
                .await
                .is_ok(),
            "subscriptions are separate"
        );
    }

    #[tokio::test]
    async fn a_seeded_month_counts_toward_the_quota() {
        let l = MemoryLimiter::new();
        let now = 1_769_817_600_000;
        let month = slot_at(now, 60_000).month;
        l.seed_month("s", month, 990).await.unwrap();
        let limits = Limits {
            monthly_tokens: Some(1000),
            ..Limits::default()
        };
        assert!(l
            .admit(&ticket("a", "s", 10, now), &limits, now)
            .await
            .is_ok());
        assert!(matches!(
            l.admit(&ticket("b", "s", 1, now), &limits, now).await,
            Err(LimitError::Refused {
                kind: LimitKind::Monthly,
                ..
            })
        ));
    }
}
