//! The scheduler model: running and waiting sequences, and the KV cache.
//!
//! A request asks for `seqs` sequence slots (its `n`) and a KV reservation of its prompt
//! plus its planned output. It runs at once if fewer than `max_num_seqs` sequences run and
//! the reservation fits in the cache; otherwise it waits, head-of-line, ordered by its
//! `priority` and then by arrival: as vLLM's priority scheduler (lower value first, 0 the
//! default), which with every priority at 0 is vLLM's FCFS. Unlike vLLM, a running request is
//! never preempted for a higher-priority one. Reserving the whole output up front means the
//! simulator never needs to preempt. The KV-usage gauge reports the tokens actually *held* (prompt plus
//! tokens generated so far) over capacity, so it rises as answers are produced.
//!
//! There is no thread or task per request: a waiting request is a future parked on a
//! oneshot channel; [`Slot`] and the waiting guard release everything on drop, so a client
//! that disconnects frees its place.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;

use crate::latency::LatencyModel;

/// What a request needs from the scheduler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Demand {
    /// Sequence slots (the request's `n`, times its prompts).
    pub seqs: u32,
    /// Prompt tokens held in the KV cache from the start.
    pub prompt_tokens: u64,
    /// KV tokens reserved: prompt plus planned output.
    pub reserve_tokens: u64,
    /// vLLM's request `priority`: lower values are scheduled earlier; 0 is the default.
    pub priority: i64,
}

/// A point-in-time view of the scheduler, for metrics and tests.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Snapshot {
    /// Requests running (vLLM counts requests; here one per sequence slot group).
    pub running_requests: u32,
    /// Sequences running.
    pub running_seqs: u32,
    /// Requests waiting for admission.
    pub waiting_requests: u32,
    /// KV tokens held right now.
    pub kv_held: u64,
    /// KV capacity in tokens.
    pub kv_capacity: u64,
}

impl Snapshot {
    /// Fraction of the KV cache in use, 0..=1.
    pub fn kv_usage(&self) -> f64 {
        if self.kv_capacity == 0 {
            return 0.0;
        }
        (self.kv_held as f64 / self.kv_capacity as f64).min(1.0)
    }
}

struct Waiter {
    id: u64,
    demand: Demand,
    tx: oneshot::Sender<()>,
}

#[derive(Default)]
struct Inner {
    running_requests: u32,
    running_seqs: u32,
    kv_reserved: u64,
    waiting: VecDeque<Waiter>,
    next_id: u64,
}

/// The simulated engine core.
pub struct Engine {
    max_num_seqs: u32,
    kv_capacity: u64,
    latency: LatencyModel,
    inner: Mutex<Inner>,
    /// Mirrors of hot values, readable without the lock.
    running_seqs: AtomicU32,
    kv_held: AtomicU64,
}

impl Engine {
    /// An idle engine.
    pub fn new(max_num_seqs: u32, kv_capacity: u64, latency: LatencyModel) -> Arc<Self> {
        Arc::new(Self {
            max_num_seqs: max_num_seqs.max(1),
            kv_capacity,
            latency,
            inner: Mutex::new(Inner::default()),
            running_seqs: AtomicU32::new(0),
            kv_held: AtomicU64::new(0),
        })
    }

    /// The latency model.
    pub fn latency(&self) -> &LatencyModel {
        &self.latency
    }

    /// Sequences running now (cheap; used for every decode step).
    pub fn running_seqs(&self) -> u32 {
        self.running_seqs.load(Ordering::Relaxed)
    }

    /// Current state.
    pub fn snapshot(&self) -> Snapshot {
        let inner = self.lock();
        Snapshot {
            running_requests: inner.running_requests,
            running_seqs: inner.running_seqs,
            waiting_requests: inner.waiting.len() as u32,
            kv_held: self.kv_held.load(Ordering::Relaxed),
            kv_capacity: self.kv_capacity,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the counters half-updated in a way
        // that matters more than stopping the simulator, so poisoning is ignored.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn fits(&self, inner: &Inner, d: &Demand) -> bool {
        if inner.running_requests == 0 {
            // An idle engine always takes the next request, even one larger than the cache.
            return true;
        }
        inner.running_seqs + d.seqs <= self.max_num_seqs
            && inner.kv_reserved + d.reserve_tokens <= self.kv_capacity
    }

    fn grant(&self, inner: &mut Inner, d: &Demand) {
        inner.running_requests += 1;
        inner.running_seqs += d.seqs;
        inner.kv_reserved += d.reserve_tokens;
        self.running_seqs
            .store(inner.running_seqs, Ordering::Relaxed);
        self.kv_held.fetch_add(d.prompt_tokens, Ordering::Relaxed);
    }

    fn ungrant(&self, inner: &mut Inner, d: &Demand, held: u64) {
        inner.running_requests = inner.running_requests.saturating_sub(1);
        inner.running_seqs = inner.running_seqs.saturating_sub(d.seqs);
        inner.kv_reserved = inner.kv_reserved.saturating_sub(d.reserve_tokens);
        self.running_seqs
            .store(inner.running_seqs, Ordering::Relaxed);
        let _ = self
            .kv_held
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v.saturating_sub(held))
            });
    }

    /// Admits waiting requests in queue order (priority, then arrival) while they fit.
    fn admit_waiting(&self, inner: &mut Inner) {
        while let Some(front) = inner.waiting.front() {
            if !self.fits(inner, &front.demand) {
                break;
            }
            let Some(w) = inner.waiting.pop_front() else {
                break;
            };
            self.grant(inner, &w.demand);
            if w.tx.send(()).is_err() {
                // The waiter's future is gone; it will not release, so undo here.
                self.ungrant(inner, &w.demand, w.demand.prompt_tokens);
            }
        }
    }

    /// Waits until the request may run and returns its slot.
    pub async fn admit(self: &Arc<Self>, demand: Demand) -> Slot {
        let (id, rx) = {
            let mut inner = self.lock();
            // First in line when nobody waiting comes before it.
            let first = inner
                .waiting
                .front()
                .is_none_or(|w| w.demand.priority > demand.priority);
            if first && self.fits(&inner, &demand) {
                self.grant(&mut inner, &demand);
                return Slot::new(self.clone(), demand);
            }
            let id = inner.next_id;
            inner.next_id += 1;
            let (tx, rx) = oneshot::channel();
            // Behind every waiter of the same or a better priority: FIFO within a priority.
            let at = inner
                .waiting
                .iter()
                .position(|w| w.demand.priority > demand.priority)
                .unwrap_or(inner.waiting.len());
            inner.waiting.insert(at, Waiter { id, demand, tx });
            (id, rx)
        };
        let mut guard = WaitGuard {
            engine: self.clone(),
            id,
            demand,
            armed: true,
        };
        // The sender is only dropped after a successful send or by this guard.
        let _ = rx.await;
        guard.armed = false;
        Slot::new(self.clone(), demand)
    }
}

/// Removes a waiting request whose future was dropped (client gone).
struct WaitGuard {
    engine: Arc<Engine>,
    id: u64,
    demand: Demand,
    armed: bool,
}

impl Drop for WaitGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let mut inner = self.engine.lock();
        if let Some(pos) = inner.waiting.iter().position(|w| w.id == self.id) {
            inner.waiting.remove(pos);
        } else {
            // Granted after the future stopped being polled: give the slot back.
            self.engine
                .ungrant(&mut inner, &self.demand, self.demand.prompt_tokens);
        }
        self.engine.admit_waiting(&mut inner);
    }
}

/// A running request's place in the batch; dropping it frees the place and its KV blocks.
pub struct Slot {
    engine: Arc<Engine>,
    demand: Demand,
    held: u64,
}

impl Slot {
    fn new(engine: Arc<Engine>, demand: Demand) -> Self {
        Self {
            engine,
            demand,
            held: demand.prompt_tokens,
        }
    }

    /// Records `tokens` newly generated tokens as held in the KV cache.
    pub fn hold(&mut self, tokens: u64) {
        self.held += tokens;
        self.engine.kv_held.fetch_add(tokens, Ordering::Relaxed);
    }

    /// Tokens this request holds.
    pub fn held(&self) -> u64 {
        self.held
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut inner = self.engine.lock();
        self.engine.ungrant(&mut inner, &self.demand, self.held);
        self.engine.admit_waiting(&mut inner);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn demand(seqs: u32, prompt: u64, reserve: u64) -> Demand {
        Demand {
            seqs,
            prompt_tokens: prompt,
            reserve_tokens: reserve,
            priority: 0,
        }
    }

    #[tokio::test]
    async fn runs_up_to_max_num_seqs_then_queues() {
        let e = Engine::new(2, 1_000_000, LatencyModel::zero());
        let a = e.admit(demand(1, 10, 20)).await;
        let b = e.admit(demand(1, 10, 20)).await;
        assert_eq!(e.snapshot().running_seqs, 2);
        let e2 = e.clone();
        let waiting = tokio::spawn(async move { e2.admit(demand(1, 10, 20)).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let s = e.snapshot();
        assert_eq!((s.running_requests, s.waiting_requests), (2, 1));
        drop(a);
        let c = tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .expect("admitted")
            .expect("task");
        let s = e.snapshot();
        assert_eq!((s.running_requests, s.waiting_requests), (2, 0));
        drop((b, c));
        let s = e.snapshot();
        assert_eq!((s.running_requests, s.running_seqs, s.kv_held), (0, 0, 0));
    }

    #[tokio::test]
    async fn full_kv_cache_makes_requests_wait() {
        let e = Engine::new(100, 100, LatencyModel::zero());
        let a = e.admit(demand(1, 40, 80)).await;
        let e2 = e.clone();
        let waiting = tokio::spawn(async move { e2.admit(demand(1, 10, 30)).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(e.snapshot().waiting_requests, 1, "80 + 30 > 100 must wait");
        drop(a);
        let _b = tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .expect("admitted")
            .expect("task");
        assert_eq!(e.snapshot().waiting_requests, 0);
    }

    #[tokio::test]
    async fn kv_usage_is_tokens_held_over_capacity() {
        let e = Engine::new(10, 1000, LatencyModel::zero());
        let mut a = e.admit(demand(1, 100, 300)).await;
        assert!((e.snapshot().kv_usage() - 0.1).abs() < 1e-9);
        a.hold(150);
        assert_eq!(a.held(), 250);
        assert!((e.snapshot().kv_usage() - 0.25).abs() < 1e-9);
        drop(a);
        assert_eq!(e.snapshot().kv_usage(), 0.0);
    }

    #[tokio::test]
    async fn idle_engine_takes_an_oversized_request() {
        let e = Engine::new(1, 10, LatencyModel::zero());
        let a = tokio::time::timeout(Duration::from_secs(1), e.admit(demand(4, 50, 500)))
            .await
            .expect("not stuck");
        assert_eq!(e.snapshot().running_seqs, 4);
        assert!(e.snapshot().kv_usage() <= 1.0);
        drop(a);
    }

    #[tokio::test]
    async fn dropped_waiter_leaves_the_queue() {
        let e = Engine::new(1, 1000, LatencyModel::zero());
        let a = e.admit(demand(1, 1, 1)).await;
        let fut = e.admit(demand(1, 1, 1));
        let r = tokio::time::timeout(Duration::from_millis(20), fut).await;
        assert!(r.is_err(), "must still be waiting");
        let s = e.snapshot();
        assert_eq!(s.waiting_requests, 0, "timed-out waiter removed");
        drop(a);
        let s = e.snapshot();
        assert_eq!(
            (s.running_requests, s.waiting_requests, s.kv_held),
            (0, 0, 0)
        );
    }

    #[tokio::test]
    async fn a_better_priority_goes_first_and_fifo_holds_within_a_priority() {
        let e = Engine::new(1, 1000, LatencyModel::zero());
        let a = e.admit(demand(1, 1, 1)).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        // Arrival order: three at 0, then one at -5, then one at 0 and one at -5.
        for (i, priority) in [(0, 0), (1, 0), (2, 0), (3, -5), (4, 0), (5, -5)] {
            let (e, order) = (e.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let slot = e
                    .admit(Demand {
                        priority,
                        ..demand(1, 1, 1)
                    })
                    .await;
                order.lock().unwrap_or_else(|p| p.into_inner()).push(i);
                drop(slot);
            }));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(e.snapshot().waiting_requests, 6);
        drop(a);
        for t in tasks {
            t.await.expect("task");
        }
        assert_eq!(
            *order.lock().unwrap_or_else(|p| p.into_inner()),
            vec![3, 5, 0, 1, 2, 4]
        );
    }

    #[tokio::test]
    async fn fifo_order_is_kept() {
        let e = Engine::new(1, 1000, LatencyModel::zero());
        let a = e.admit(demand(1, 1, 1)).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for i in 0..5 {
            let (e, order) = (e.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let slot = e.admit(demand(1, 1, 1)).await;
                order.lock().unwrap_or_else(|p| p.into_inner()).push(i);
                drop(slot);
            }));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        drop(a);
        for t in tasks {
            t.await.expect("task");
        }
        assert_eq!(
            *order.lock().unwrap_or_else(|p| p.into_inner()),
            vec![0, 1, 2, 3, 4]
        );
    }
}
