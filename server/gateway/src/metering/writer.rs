//! The writer task: takes what the request path queued, writes it in batches, spools a batch the database
//! refuses, and replays the spool when the database answers again (and on every flush).

use super::queue::Shared;
use super::spool::Spool;
use super::{MeterStats, MeteringConfig, UsageRecord, UsageStore};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};

pub(super) struct Writer {
    pub(super) store: Arc<dyn UsageStore>,
    pub(super) spool: Arc<Spool>,
    pub(super) stats: Arc<MeterStats>,
    pub(super) shared: Arc<Shared>,
    pub(super) batch: Vec<UsageRecord>,
    pub(super) config: MeteringConfig,
    pub(super) last_failure: Option<Instant>,
}

impl Writer {
    pub(super) async fn run(mut self, mut flushes: mpsc::Receiver<oneshot::Sender<()>>) {
        self.replay().await;
        let mut tick = tokio::time::interval(self.config.flush_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let shared = self.shared.clone();
        loop {
            tokio::select! {
                _ = shared.batch_ready.notified() => {
                    self.take_queued();
                    self.write_full_batches().await;
                }
                ack = flushes.recv() => match ack {
                    Some(ack) => {
                        // Every record handed over before the flush is in the queue or the batch. Flushes queued
                        // meanwhile are answered by this one, once it is done: their records are in this batch too.
                        let mut acks = vec![ack];
                        while let Ok(ack) = flushes.try_recv() {
                            acks.push(ack);
                        }
                        self.take_queued();
                        self.write().await;
                        self.last_failure = None;
                        self.replay().await;
                        for ack in acks {
                            let _ = ack.send(());
                        }
                    }
                    None => {
                        self.take_queued();
                        self.write().await;
                        return;
                    }
                },
                _ = tick.tick() => {
                    self.take_queued();
                    self.write().await;
                    let due = self.last_failure.is_none_or(|at| at.elapsed() >= self.config.retry_interval);
                    if due && !self.spool.is_empty() {
                        self.replay().await;
                    }
                }
            }
        }
    }

    /// Moves what the request path queued into the batch.
    fn take_queued(&mut self) {
        let mut fresh = Vec::with_capacity(self.shared.capacity.min(4096));
        {
            let mut q = self.shared.lock();
            if q.records.is_empty() {
                return;
            }
            std::mem::swap(&mut q.records, &mut fresh);
        }
        if self.batch.is_empty() {
            self.batch = fresh;
        } else {
            self.batch.append(&mut fresh);
        }
    }

    /// The most records one transaction takes: a writer that is behind writes what queued up in bigger
    /// transactions, which cost less per record (`MeteringConfig::max_batch`).
    fn most(&self) -> usize {
        self.config.max_batch.max(self.config.batch_size).max(1)
    }

    /// Writes whole batches, keeping a partial one for later.
    async fn write_full_batches(&mut self) {
        let (size, most) = (self.config.batch_size.max(1), self.most());
        while self.batch.len() >= size {
            let rest = self.batch.split_off(self.batch.len().min(most));
            self.write_now().await;
            self.batch = rest;
            // More may have arrived while writing: the next transaction takes it too.
            self.take_queued();
        }
    }

    /// Writes everything in the batch, up to `most()` records at a time.
    async fn write(&mut self) {
        let most = self.most();
        while self.batch.len() > most {
            let rest = self.batch.split_off(most);
            self.write_now().await;
            self.batch = rest;
        }
        self.write_now().await;
    }

    async fn write_now(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.batch);
        match self.store.insert(&batch).await {
            Ok(()) => {
                self.stats
                    .written
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
            }
            Err(e) => {
                self.stats.write_failures.fetch_add(1, Ordering::Relaxed);
                self.last_failure = Some(Instant::now());
                tracing::warn!(error = %e, records = batch.len(), "usage records could not be stored; spooling them to disk");
                let a = self.spool.append(&batch);
                self.stats
                    .spooled
                    .fetch_add(a.kept as u64, Ordering::Relaxed);
                if a.dropped > 0 {
                    self.stats
                        .dropped
                        .fetch_add(a.dropped as u64, Ordering::Relaxed);
                    tracing::error!(
                        dropped = a.dropped,
                        "the usage spool is full: records were lost"
                    );
                }
            }
        }
        self.batch = batch;
        self.batch.clear();
    }

    /// Replays the spool until it is empty or the database refuses (a round may leave records appended meanwhile
    /// in the fresh file; the next round takes them).
    async fn replay(&mut self) {
        for _ in 0..8 {
            if self.spool.is_empty() {
                return;
            }
            // A bounded chunk at a time: never the whole spool in memory.
            let mut replay = self.spool.take_for_replay();
            let mut stored = 0u64;
            loop {
                let chunk = replay.next_chunk(self.most());
                if chunk.is_empty() {
                    break;
                }
                if let Err(e) = self.store.insert(&chunk).await {
                    self.last_failure = Some(Instant::now());
                    tracing::warn!(error = %e, "the database still refuses usage records; the spool is kept");
                    return;
                }
                stored += chunk.len() as u64;
            }
            self.stats.written.fetch_add(stored, Ordering::Relaxed);
            // Also forgets an empty or unreadable leftover.
            self.spool.replayed();
            if stored > 0 {
                tracing::info!(records = stored, "replayed spooled usage records");
            }
        }
    }
}
