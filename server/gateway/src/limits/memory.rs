//! Counters in this process: the default for a single gateway. One short lock per admission and per settlement.

use super::{retry_after_ms, slot_at, window, LimitError, Limiter, Seen, Ticket};
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::Mutex;
use tollgate_domain::grant::Limits;

pub struct MemoryLimiter {
    counters: Mutex<HashMap<String, window::Counters>>,
    window_ms: i64,
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
        self.lock().get(subscription_id).copied()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, window::Counters>> {
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
        subscription_id: &str,
        limits: &Limits,
        reserve: u64,
        now_ms: i64,
    ) -> Result<(Ticket, Seen), LimitError> {
        let slot = slot_at(now_ms, self.window_ms);
        let result = {
            let mut map = self.lock();
            let counters = match map.get_mut(subscription_id) {
                Some(c) => c,
                None => map.entry(subscription_id.to_owned()).or_default(),
            };
            window::admit(counters, limits, reserve, slot)
        };
        match result {
            Ok(seen) => Ok((
                Ticket {
                    subscription_id: subscription_id.to_owned(),
                    reserved: reserve,
                    slot,
                },
                seen,
            )),
            Err((kind, seen)) => Err(LimitError::Refused {
                kind,
                seen,
                retry_after_ms: retry_after_ms(kind, now_ms, self.window_ms),
            }),
        }
    }

    fn settle(&self, ticket: Ticket, used: u64) {
        if let Some(c) = self.lock().get_mut(&ticket.subscription_id) {
            window::settle(c, ticket.slot, ticket.reserved, used);
        }
    }

    async fn seed_month(
        &self,
        subscription_id: &str,
        month: i64,
        tokens: u64,
    ) -> Result<(), String> {
        let mut map = self.lock();
        let c = map.entry(subscription_id.to_owned()).or_default();
        if c.month != month {
            c.month = month;
            c.month_tokens = tokens;
        }
        Ok(())
    }

    fn window_ms(&self) -> i64 {
        self.window_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::LimitKind;

    #[tokio::test]
    async fn admits_refuses_and_settles() {
        let l = MemoryLimiter::with_window(60_000);
        let limits = Limits {
            tokens_per_minute: Some(100),
            ..Limits::default()
        };
        let (t, seen) = l.admit("s", &limits, 80, 1_000).await.unwrap();
        assert_eq!(seen.tokens, 80);
        match l.admit("s", &limits, 30, 2_000).await {
            Err(LimitError::Refused {
                kind,
                retry_after_ms,
                ..
            }) => {
                assert_eq!(kind, LimitKind::Tokens);
                assert_eq!(retry_after_ms, 58_000);
            }
            other => panic!("{other:?}"),
        }
        l.settle(t, 20);
        assert_eq!(l.counters("s").unwrap().tokens, 20);
        assert!(l.admit("s", &limits, 30, 3_000).await.is_ok());
        assert!(
            l.admit("other", &limits, 100, 3_000).await.is_ok(),
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
        assert!(l.admit("s", &limits, 10, now).await.is_ok());
        assert!(matches!(
            l.admit("s", &limits, 1, now).await,
            Err(LimitError::Refused {
                kind: LimitKind::Monthly,
                ..
            })
        ));
    }
}
