//! The queue between the request path and the writer, and the overflow spooler: when the writer is behind by a
//! whole queue, records overflow into a second list that a blocking task appends to the spool; past that too, the
//! request path appends to the spool itself. Memory therefore holds at most two queues' worth of records, however
//! long the database is down.

use super::spool::Spool;
use super::{MeterStats, UsageRecord};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::Notify;

/// Records handed over and not yet taken by the writer. The request path only pushes under a short lock; the
/// writer is woken when a whole batch is waiting (partial batches go on its tick), not once per record.
pub(super) struct Queue {
    pub(super) records: Vec<UsageRecord>,
    /// Records that found the queue full, waiting for the spooler (a blocking task, off the request path); at
    /// most `capacity` of them, beyond which the request path appends to the spool itself.
    pub(super) overflow: Vec<UsageRecord>,
    /// A spooler task is running (it clears this, under the lock, once `overflow` is empty).
    pub(super) spooling: bool,
}

pub(super) struct Shared {
    pub(super) queue: Mutex<Queue>,
    pub(super) capacity: usize,
    pub(super) batch_size: usize,
    /// Wakes the writer: a whole batch is waiting.
    pub(super) batch_ready: Notify,
    /// Signalled when the spooler has emptied `overflow`.
    pub(super) spooled: Notify,
    pub(super) spool: Arc<Spool>,
    pub(super) stats: Arc<MeterStats>,
}

impl Shared {
    pub(super) fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn spool_overflow(&self, records: &[UsageRecord]) {
        let a = self.spool.append(records);
        self.stats
            .spooled
            .fetch_add(a.kept as u64, Ordering::Relaxed);
        self.stats
            .dropped
            .fetch_add(a.dropped as u64, Ordering::Relaxed);
    }

    /// Appends overflow to the spool until none is left. Runs on a blocking thread.
    fn run_spooler(&self) {
        loop {
            let records = {
                let mut q = self.lock();
                if q.overflow.is_empty() {
                    q.spooling = false;
                    break;
                }
                std::mem::take(&mut q.overflow)
            };
            self.spool_overflow(&records);
        }
        self.spooled.notify_waiters();
    }

    /// Waits until every record that overflowed so far is in the spool.
    pub(super) async fn overflow_spooled(&self) {
        loop {
            let done = self.spooled.notified();
            tokio::pin!(done);
            done.as_mut().enable();
            {
                let q = self.lock();
                if !q.spooling && q.overflow.is_empty() {
                    return;
                }
            }
            done.await;
        }
    }
}

/// A spooler run handed to a blocking thread. Dropped without running (the runtime has shut down), it spools on
/// the thread that drops it, so the records are written and a flush waiting for them returns.
pub(super) struct Spooler(pub(super) Option<Arc<Shared>>);

impl Spooler {
    pub(super) fn run(mut self) {
        if let Some(shared) = self.0.take() {
            shared.run_spooler();
        }
    }
}

impl Drop for Spooler {
    fn drop(&mut self) {
        if let Some(shared) = self.0.take() {
            shared.run_spooler();
        }
    }
}
