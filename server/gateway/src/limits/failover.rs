//! Limits that survive an outage of the shared counters. In front of the Redis limiter: while Redis answers, every
//! decision is Redis's; when an admission finds it unreachable, this replica switches to its share of every limit
//! in memory (`share.rs`: the limit divided by the live replicas), logs the outage once, and a prober pings Redis
//! with backoff until it answers. Then decisions are Redis's again, and what was admitted locally is added to the
//! shared counters: requests and tokens to their steps of the window, tokens to the month.
//!
//! Monthly counts stay exact: settlements made during an outage are retried until Redis takes them
//! (`redis.rs`), and local usage is added when it returns. A Redis that restarted empty is noticed by the prober's
//! ping (a sentinel key gone missing, checked every `check_every`), and its monthly counts are then raised to the
//! usage records' totals; raising never lowers a count, so nothing is counted twice. The records are read only
//! then, not on a timer: a month's aggregate is too heavy to run every minute on every replica.
//!
//! Configured to fail closed, it refuses requests instead while Redis is unreachable (503 `limiter_unavailable`).
//!
//! Each ticket settles where it was counted: the local limiter knows the tickets it admitted, every other ticket
//! is Redis's. A ticket whose Redis admission failed may still have been counted there (the reply was lost), so it
//! is also released in Redis, at zero, when it settles.

use super::memory::MemoryLimiter;
use super::share::share;
use super::{LimitError, Limiter, LimiterMode, LimiterStatus, Seen, Slot, Ticket};
use async_trait::async_trait;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::Notify;
use tollgate_domain::{grant::Limits, time::Millis};

/// Where this month's usage comes from: the usage records (the database). The monthly quota is exact because it is
/// settled from them, not from Redis alone.
#[async_trait]
pub trait MonthToDate: Send + Sync + 'static {
    /// Tokens used since `month_start` (epoch ms), per subscription.
    async fn month_to_date(&self, month_start: i64) -> Result<Vec<(String, u64)>, String>;
}

/// Raises `limiter`'s monthly counts to this month's usage records (at start, and when Redis came back empty).
/// Returns how many subscriptions had usage; a count the limiter cannot take is logged and skipped.
pub async fn seed_months(limiter: &dyn Limiter, months: &dyn MonthToDate) -> Result<usize, String> {
    let month = Millis(tollgate_store::now_millis()).month_start().0;
    let rows = months.month_to_date(month).await?;
    for (sub, tokens) in &rows {
        if let Err(e) = limiter.seed_month(sub, month, *tokens).await {
            tracing::debug!(error = %e, subscription = %sub, "could not seed a monthly count");
        }
    }
    Ok(rows.len())
}

#[async_trait]
impl MonthToDate for tollgate_store::Store {
    async fn month_to_date(&self, month_start: i64) -> Result<Vec<(String, u64)>, String> {
        self.usage_tokens_since(month_start)
            .await
            .map(|rows| {
                rows.into_iter()
                    .map(|(sub, tokens)| (sub, u64::try_from(tokens).unwrap_or(0)))
                    .collect()
            })
            .map_err(|e| e.to_string())
    }
}

#[derive(Debug, Clone)]
pub struct FailoverOptions {
    /// Refuse requests while the shared counters are unreachable, instead of enforcing local shares.
    pub fail_closed: bool,
    /// A fixed replica count to divide limits by; None counts the replicas' heartbeats (`set_replicas`).
    pub replicas: Option<u32>,
    /// First and longest wait between pings while the shared counters are unreachable.
    pub probe_min: Duration,
    pub probe_max: Duration,
    /// How often the prober checks, while Redis answers, that it still holds its counters.
    pub check_every: Duration,
}

impl Default for FailoverOptions {
    fn default() -> Self {
        Self {
            fail_closed: false,
            replicas: None,
            probe_min: Duration::from_millis(250),
            probe_max: Duration::from_secs(2),
            check_every: Duration::from_secs(10),
        }
    }
}

pub struct FailoverLimiter {
    inner: Arc<Inner>,
    prober: tokio::task::JoinHandle<()>,
}

struct Inner {
    shared: Arc<dyn Limiter>,
    local: MemoryLimiter,
    months: Option<Arc<dyn MonthToDate>>,
    options: FailoverOptions,
    /// Since when the shared counters have been unreachable (epoch ms); 0 while they answer.
    down_since_ms: AtomicI64,
    replicas: AtomicU32,
    local_admissions: AtomicU64,
    outages: AtomicU64,
    /// Entries in `Outage::uncertain`, read without the lock on every settlement.
    uncertain: AtomicUsize,
    outage: Mutex<Outage>,
    wake: Notify,
    /// Where corrections that cannot wait for the next outage run (the main runtime, not a listener's).
    runtime: tokio::runtime::Handle,
}

/// What an outage leaves to reconcile. Touched only during one, or for the tickets it left uncertain.
#[derive(Default)]
struct Outage {
    /// A subscription's month usage when local limits took over: the base its monthly share is counted from.
    month_base: HashMap<String, u64>,
    /// Per subscription and step of the window: requests admitted locally, and the tokens they used once settled. Added to
    /// Redis when it returns; a local request still running then adds its tokens when it settles.
    admitted: HashMap<(String, Slot), (u64, u64)>,
    /// Tickets whose Redis admission failed: it may have been counted there.
    uncertain: HashSet<String>,
}

impl FailoverLimiter {
    /// Wraps `shared` (the Redis limiter); `months` reads the usage records. Starts the prober, so call it inside
    /// the Tokio runtime. `shared_up` says whether the shared counters answered at start.
    pub fn new(
        shared: Arc<dyn Limiter>,
        months: Option<Arc<dyn MonthToDate>>,
        options: FailoverOptions,
        shared_up: bool,
    ) -> Self {
        let now = tollgate_store::now_millis();
        let inner = Arc::new(Inner {
            local: MemoryLimiter::with_window(shared.window_ms()),
            shared,
            months,
            replicas: AtomicU32::new(options.replicas.unwrap_or(1).max(1)),
            options,
            down_since_ms: AtomicI64::new(if shared_up { 0 } else { now.max(1) }),
            local_admissions: AtomicU64::new(0),
            outages: AtomicU64::new(u64::from(!shared_up)),
            uncertain: AtomicUsize::new(0),
            outage: Mutex::default(),
            wake: Notify::new(),
            runtime: tokio::runtime::Handle::current(),
        });
        if !shared_up {
            inner.log_down("not reachable at start");
        }
        let prober = tokio::spawn(probe(inner.clone()));
        Self { inner, prober }
    }
}

impl Drop for FailoverLimiter {
    fn drop(&mut self) {
        self.prober.abort();
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Outage> {
        // Plain maps of counts: a panic elsewhere cannot leave them inconsistent, so poisoning is ignored.
        self.outage.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn is_down(&self) -> bool {
        self.down_since_ms.load(Ordering::Relaxed) != 0
    }

    /// The first admission to find Redis unreachable switches to local limits and wakes the prober; later ones
    /// see the switch already made.
    fn went_down(&self, error: &str) {
        let now = tollgate_store::now_millis().max(1);
        if self
            .down_since_ms
            .compare_exchange(0, now, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            self.outages.fetch_add(1, Ordering::Relaxed);
            self.log_down(error);
            self.wake.notify_one();
        }
    }

    fn log_down(&self, error: &str) {
        if self.options.fail_closed {
            tracing::error!(error, "the shared rate limiter (Redis) is unreachable: requests are refused until it answers (fail closed)");
        } else {
            tracing::warn!(
                error,
                replicas = self.replicas.load(Ordering::Relaxed),
                "the shared rate limiter (Redis) is unreachable: this replica enforces its share of every limit in memory until it answers"
            );
        }
    }

    fn forget_uncertain(&self, ticket_id: &str) -> bool {
        if self.uncertain.load(Ordering::Relaxed) == 0 {
            return false;
        }
        let removed = self.lock().uncertain.remove(ticket_id);
        if removed {
            self.uncertain.fetch_sub(1, Ordering::Relaxed);
        }
        removed
    }

    /// Admits under this replica's share of `limits`, in memory.
    async fn admit_locally(
        &self,
        ticket: &Ticket,
        limits: &Limits,
        now_ms: i64,
    ) -> Result<Seen, LimitError> {
        let base = {
            let mut o = self.lock();
            *o.month_base
                .entry(ticket.subscription_id.clone())
                .or_insert_with(|| {
                    self.local
                        .counters(&ticket.subscription_id)
                        .filter(|c| c.month == ticket.slot.month)
                        .map_or(0, |c| c.month_tokens)
                })
        };
        let mine = share(limits, self.replicas.load(Ordering::Relaxed), base);
        let seen = self.local.admit(ticket, &mine, now_ms).await?;
        self.local_admissions.fetch_add(1, Ordering::Relaxed);
        let mut o = self.lock();
        let counted = o
            .admitted
            .entry((ticket.subscription_id.clone(), ticket.slot))
            .or_default();
        counted.0 += 1;
        Ok(seen)
    }

    /// Reads this month's usage records into the local counters and the monthly bases (at the start of an outage:
    /// the database usually still answers when Redis does not).
    async fn load_local_months(&self) {
        let Some(months) = &self.months else { return };
        let month = Millis(tollgate_store::now_millis()).month_start().0;
        match months.month_to_date(month).await {
            Ok(rows) => {
                for (sub, tokens) in rows {
                    let _ = self.local.seed_month(&sub, month, tokens).await;
                    let mut o = self.lock();
                    let base = o.month_base.entry(sub).or_insert(0);
                    *base = (*base).max(tokens);
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "could not read this month's usage for local limits")
            }
        }
    }

    /// Raises the shared monthly counts to the usage records' totals.
    async fn raise_shared_months(&self) {
        let Some(months) = &self.months else { return };
        if let Err(e) = seed_months(self.shared.as_ref(), months.as_ref()).await {
            tracing::warn!(error = %e, "could not read this month's usage to correct the shared monthly counts");
        }
    }

    /// Redis answers again: it first counts what was admitted locally, while decisions stay local, and only then
    /// do decisions go back to it, so the first request it decides sees the outage's admissions (switching first
    /// let one through in between: the outage test's fourth request on a 3/min plan was once admitted). Switching
    /// back and taking what was admitted meanwhile happen under one lock, so a local request settling then is
    /// counted exactly once: in what is taken here, or by `settle_local` afterwards.
    async fn recover(&self, lost_counters: bool) {
        let earlier = std::mem::take(&mut self.lock().admitted);
        if let Err(unsent) = self.absorb_all(earlier).await {
            // Gone again: the counts wait for the next recovery, and decisions stay local.
            let mut o = self.lock();
            for (at, (requests, tokens)) in unsent {
                let counted = o.admitted.entry(at).or_default();
                counted.0 += requests;
                counted.1 = counted.1.saturating_add(tokens);
            }
            return;
        }
        let (since, admitted) = {
            let mut o = self.lock();
            o.month_base.clear();
            let since = self.down_since_ms.swap(0, Ordering::AcqRel);
            (since, std::mem::take(&mut o.admitted))
        };
        if let Err(unsent) = self.absorb_all(admitted).await {
            tracing::debug!(
                steps = unsent.len(),
                "could not add the last local admissions to Redis"
            );
        }
        // Redis kept its counters: what was added above is exactly what it missed. It came back empty: rebuild
        // the months from the usage records, which hold every replica's usage, this outage's included.
        if lost_counters {
            self.raise_shared_months().await;
        }
        tracing::warn!(
            lost_counters,
            outage_ms = tollgate_store::now_millis() - since,
            local_admissions = self.local_admissions.load(Ordering::Relaxed),
            "the shared rate limiter (Redis) answers again: limits are shared again"
        );
    }

    /// Adds local counts to Redis (windows already over too: their keys expire soon, and the month needs the
    /// tokens). On a failure, what was not added is given back.
    async fn absorb_all(
        &self,
        counts: HashMap<(String, Slot), (u64, u64)>,
    ) -> Result<(), HashMap<(String, Slot), (u64, u64)>> {
        let mut unsent = HashMap::new();
        for ((sub, slot), (requests, tokens)) in counts {
            if !unsent.is_empty() {
                unsent.insert((sub, slot), (requests, tokens));
                continue;
            }
            if let Err(e) = self.shared.absorb(&sub, slot, requests, tokens).await {
                tracing::debug!(error = %e, subscription = %sub, "could not add local admissions to Redis");
                unsent.insert((sub, slot), (requests, tokens));
            }
        }
        if unsent.is_empty() {
            Ok(())
        } else {
            Err(unsent)
        }
    }

    /// Settles a ticket this replica admitted locally: counts its tokens for Redis when it returns, or now if it is
    /// back already.
    fn settle_local(&self, ticket: &Ticket, used: u64) {
        {
            let mut o = self.lock();
            if self.is_down() {
                let counted = o
                    .admitted
                    .entry((ticket.subscription_id.clone(), ticket.slot))
                    .or_default();
                counted.1 = counted.1.saturating_add(used);
                return;
            }
        }
        if used == 0 {
            return;
        }
        let (shared, sub, slot) = (
            self.shared.clone(),
            ticket.subscription_id.clone(),
            ticket.slot,
        );
        self.runtime.spawn(async move {
            if let Err(e) = shared.absorb(&sub, slot, 0, used).await {
                tracing::debug!(error = %e, subscription = %sub, "could not add a local request's tokens to Redis");
            }
        });
    }
}

/// Waits for an outage, then pings with backoff until the shared counters answer, and recovers. While they answer,
/// checks every `check_every` that they still hold their data, and rebuilds the monthly counts if not.
async fn probe(inner: Arc<Inner>) {
    loop {
        if !inner.is_down() {
            // `notify_one` keeps a permit, so an outage that began before this wait is not missed.
            let _ = tokio::time::timeout(inner.options.check_every, inner.wake.notified()).await;
            if !inner.is_down() {
                if let Ok(true) = inner.shared.ping().await {
                    tracing::warn!("the shared rate limiter (Redis) lost its counters: monthly counts are rebuilt from the usage records");
                    inner.raise_shared_months().await;
                }
            }
            continue;
        }
        inner.load_local_months().await;
        let mut wait = inner.options.probe_min;
        let lost_counters = loop {
            tokio::time::sleep(wait).await;
            match inner.shared.ping().await {
                Ok(lost) => break lost,
                Err(e) => tracing::debug!(error = %e, "redis still unreachable"),
            }
            wait = (wait * 2).min(inner.options.probe_max);
        };
        inner.recover(lost_counters).await;
    }
}

#[async_trait]
impl Limiter for FailoverLimiter {
    async fn admit(
        &self,
        ticket: &Ticket,
        limits: &Limits,
        now_ms: i64,
    ) -> Result<Seen, LimitError> {
        let i = &self.inner;
        if !i.is_down() {
            match i.shared.admit(ticket, limits, now_ms).await {
                Ok(seen) => {
                    i.local.observe(&ticket.subscription_id, ticket.slot, seen);
                    return Ok(seen);
                }
                Err(LimitError::Unavailable(e)) => {
                    if i.lock().uncertain.insert(ticket.id.clone()) {
                        i.uncertain.fetch_add(1, Ordering::Relaxed);
                    }
                    i.went_down(&e);
                }
                Err(refused) => return Err(refused),
            }
        }
        if i.options.fail_closed {
            return Err(LimitError::Unavailable(
                "the shared rate limiter is unreachable and the gateway fails closed".into(),
            ));
        }
        i.admit_locally(ticket, limits, now_ms).await
    }

    fn settle(&self, ticket: Ticket, used: u64) {
        let i = &self.inner;
        if i.local.settle_running(&ticket, used) {
            i.settle_local(&ticket, used);
            if i.forget_uncertain(&ticket.id) {
                i.shared.settle(ticket, 0);
            }
        } else {
            i.forget_uncertain(&ticket.id);
            i.shared.settle(ticket, used);
        }
    }

    fn refresh(&self, ticket: &Ticket, now_ms: i64) {
        if !self.inner.local.is_running(ticket) {
            self.inner.shared.refresh(ticket, now_ms);
        }
    }

    fn refresh_every_ms(&self) -> Option<i64> {
        self.inner.shared.refresh_every_ms()
    }

    async fn seed_month(
        &self,
        subscription_id: &str,
        month: i64,
        tokens: u64,
    ) -> Result<(), String> {
        self.inner
            .local
            .seed_month(subscription_id, month, tokens)
            .await?;
        if self.inner.is_down() {
            return Ok(());
        }
        self.inner
            .shared
            .seed_month(subscription_id, month, tokens)
            .await
    }

    fn window_ms(&self) -> i64 {
        self.inner.shared.window_ms()
    }

    async fn ping(&self) -> Result<bool, String> {
        self.inner.shared.ping().await
    }

    fn status(&self) -> LimiterStatus {
        let i = &self.inner;
        let since = i.down_since_ms.load(Ordering::Relaxed);
        LimiterStatus {
            mode: match (since, i.options.fail_closed) {
                (0, _) => LimiterMode::Shared,
                (_, true) => LimiterMode::Refusing,
                (_, false) => LimiterMode::LocalShare,
            },
            replicas: i.replicas.load(Ordering::Relaxed),
            down_since_ms: (since != 0).then_some(since),
            local_admissions: i.local_admissions.load(Ordering::Relaxed),
            outages: i.outages.load(Ordering::Relaxed),
        }
    }

    fn set_replicas(&self, replicas: u32) {
        if self.inner.options.replicas.is_none() {
            self.inner
                .replicas
                .store(replicas.max(1), Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    const WINDOW: i64 = 3_600_000;

    /// A shared backend that can be cut: in memory, answering Unavailable while `down`.
    struct Cuttable {
        counters: MemoryLimiter,
        down: AtomicBool,
        /// Answers the next ping with "lost its counters", like a Redis that restarted empty.
        lost: AtomicBool,
        absorbed: Mutex<Vec<(String, u64, u64)>>,
        raised: Mutex<Vec<(String, u64)>>,
        settled: Mutex<Vec<(String, u64)>>,
    }

    impl Cuttable {
        fn new() -> Arc<Self> {
            Arc::new(Self {
                counters: MemoryLimiter::with_window(WINDOW),
                down: AtomicBool::new(false),
                lost: AtomicBool::new(false),
                absorbed: Mutex::default(),
                raised: Mutex::default(),
                settled: Mutex::default(),
            })
        }
        fn check(&self) -> Result<(), String> {
            if self.down.load(Ordering::SeqCst) {
                Err("connection refused".into())
            } else {
                Ok(())
            }
        }
    }

    #[async_trait]
    impl Limiter for Cuttable {
        async fn admit(&self, t: &Ticket, l: &Limits, now: i64) -> Result<Seen, LimitError> {
            self.check().map_err(LimitError::Unavailable)?;
            self.counters.admit(t, l, now).await
        }
        fn settle(&self, t: Ticket, used: u64) {
            self.settled.lock().unwrap().push((t.id.clone(), used));
            if self.check().is_ok() {
                self.counters.settle(t, used);
            }
        }
        async fn seed_month(&self, s: &str, m: i64, t: u64) -> Result<(), String> {
            self.check()?;
            self.raised.lock().unwrap().push((s.into(), t));
            self.counters.seed_month(s, m, t).await
        }
        fn window_ms(&self) -> i64 {
            WINDOW
        }
        async fn ping(&self) -> Result<bool, String> {
            self.check()?;
            Ok(self.lost.swap(false, Ordering::SeqCst))
        }
        async fn absorb(&self, s: &str, _: Slot, r: u64, t: u64) -> Result<(), String> {
            self.check()?;
            self.absorbed.lock().unwrap().push((s.into(), r, t));
            Ok(())
        }
    }

    struct Months(u64);

    #[async_trait]
    impl MonthToDate for Months {
        async fn month_to_date(&self, _: i64) -> Result<Vec<(String, u64)>, String> {
            Ok(vec![("sub".into(), self.0)])
        }
    }

    fn options(fail_closed: bool, replicas: Option<u32>) -> FailoverOptions {
        FailoverOptions {
            fail_closed,
            replicas,
            probe_min: Duration::from_millis(10),
            probe_max: Duration::from_millis(20),
            check_every: Duration::from_millis(20),
        }
    }

    fn rpm(n: u32) -> Limits {
        Limits {
            requests_per_minute: Some(n),
            ..Limits::default()
        }
    }

    fn now() -> i64 {
        // The start of an hour-long window, so a test never straddles two.
        let t = tollgate_store::now_millis();
        t - t.rem_euclid(WINDOW) + 1_000
    }

    fn ticket(id: &str, now: i64) -> Ticket {
        Ticket::new(id.into(), "sub", 10, now, WINDOW)
    }

    async fn wait_for(mut ok: impl FnMut() -> bool) {
        for _ in 0..300 {
            if ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("condition not reached in 3 s");
    }

    #[tokio::test]
    async fn an_outage_switches_to_the_local_share_and_back() {
        let shared = Cuttable::new();
        let f = FailoverLimiter::new(
            shared.clone(),
            Some(Arc::new(Months(500))),
            options(false, None),
            true,
        );
        f.set_replicas(2);
        let t0 = now();
        assert!(f.admit(&ticket("a", t0), &rpm(5), t0).await.is_ok());
        assert_eq!(f.status().mode, LimiterMode::Shared);

        shared.down.store(true, Ordering::SeqCst);
        // RPM 5 over two replicas: 2 here. One was already admitted in this window (seen from Redis), so one more.
        assert!(
            f.admit(&ticket("b", t0), &rpm(5), t0).await.is_ok(),
            "served under local limits, not refused"
        );
        let status = f.status();
        assert_eq!(status.mode, LimiterMode::LocalShare);
        assert_eq!(
            (status.replicas, status.outages, status.local_admissions),
            (2, 1, 1)
        );
        assert!(matches!(
            f.admit(&ticket("c", t0), &rpm(5), t0).await,
            Err(LimitError::Refused { .. })
        ));
        // "b" went to Redis first and failed: it settles locally, and is released in Redis in case it counted.
        f.settle(ticket("b", t0), 7);
        assert!(shared.settled.lock().unwrap().contains(&("b".into(), 0)));

        shared.down.store(false, Ordering::SeqCst);
        wait_for(|| f.status().mode == LimiterMode::Shared).await;
        assert_eq!(
            shared.absorbed.lock().unwrap().as_slice(),
            &[("sub".to_string(), 1, 7)],
            "the local admission is added to the shared window"
        );
        // Redis kept its counters: the local usage was added to them, and the records were not read.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(shared.raised.lock().unwrap().is_empty(), "no month rebuilt");
        // Redis restarts empty: the next check notices and rebuilds the months from the records.
        shared.lost.store(true, Ordering::SeqCst);
        wait_for(|| !shared.raised.lock().unwrap().is_empty()).await;
        assert_eq!(
            shared.raised.lock().unwrap()[0],
            ("sub".into(), 500),
            "months rebuilt from the records"
        );
        // A local request that was still running when Redis came back adds its tokens when it settles.
        shared.down.store(true, Ordering::SeqCst);
        assert!(f.admit(&ticket("d", t0), &rpm(100), t0).await.is_ok());
        shared.down.store(false, Ordering::SeqCst);
        wait_for(|| f.status().mode == LimiterMode::Shared).await;
        f.settle(ticket("d", t0), 4);
        wait_for(|| {
            shared
                .absorbed
                .lock()
                .unwrap()
                .contains(&("sub".into(), 0, 4))
        })
        .await;
        assert_eq!(f.status().outages, 2);
        assert_eq!(f.status().down_since_ms, None);
    }

    #[tokio::test]
    async fn failing_closed_refuses_while_redis_is_away() {
        let shared = Cuttable::new();
        shared.down.store(true, Ordering::SeqCst);
        let f = FailoverLimiter::new(shared.clone(), None, options(true, None), true);
        let t0 = now();
        assert!(matches!(
            f.admit(&ticket("a", t0), &rpm(5), t0).await,
            Err(LimitError::Unavailable(_))
        ));
        assert_eq!(f.status().mode, LimiterMode::Refusing);
        // The guard settles a failed admission at zero: it goes to Redis, where it may have counted.
        f.settle(ticket("a", t0), 0);
        assert!(shared.settled.lock().unwrap().contains(&("a".into(), 0)));
        shared.down.store(false, Ordering::SeqCst);
        wait_for(|| f.status().mode == LimiterMode::Shared).await;
        assert!(f.admit(&ticket("b", t0), &rpm(5), t0).await.is_ok());
    }

    #[tokio::test]
    async fn down_at_start_serves_locally_and_a_configured_count_wins() {
        let shared = Cuttable::new();
        shared.down.store(true, Ordering::SeqCst);
        let f = FailoverLimiter::new(shared.clone(), None, options(false, Some(3)), false);
        f.set_replicas(1);
        assert_eq!(
            f.status().replicas,
            3,
            "a configured count is not overridden by heartbeats"
        );
        assert_eq!(f.status().mode, LimiterMode::LocalShare);
        let t0 = now();
        // RPM 6 over three replicas: 2 each.
        assert!(f.admit(&ticket("a", t0), &rpm(6), t0).await.is_ok());
        assert!(f.admit(&ticket("b", t0), &rpm(6), t0).await.is_ok());
        assert!(f.admit(&ticket("c", t0), &rpm(6), t0).await.is_err());
        f.settle(ticket("a", t0), 3);
        assert!(
            shared.settled.lock().unwrap().is_empty(),
            "a local ticket is never sent to Redis"
        );
    }

    #[tokio::test]
    async fn the_monthly_share_counts_from_the_records() {
        let shared = Cuttable::new();
        shared.down.store(true, Ordering::SeqCst);
        let f = FailoverLimiter::new(
            shared.clone(),
            Some(Arc::new(Months(900))),
            options(false, Some(2)),
            false,
        );
        let limits = Limits {
            monthly_tokens: Some(1_000),
            ..Limits::default()
        };
        // Let the prober read the records: 900 used, 100 left, 50 for this replica (tickets reserve 10).
        let t0 = now();
        wait_for(|| {
            f.inner
                .local
                .counters("sub")
                .is_some_and(|c| c.month_tokens == 900)
        })
        .await;
        for n in 0..5 {
            assert!(
                f.admit(&ticket(&format!("t{n}"), t0), &limits, t0)
                    .await
                    .is_ok(),
                "admission {n}"
            );
        }
        assert!(
            f.admit(&ticket("t5", t0), &limits, t0).await.is_err(),
            "the sixth would pass 950"
        );
    }
}
