//! Raw usage records are kept for a configured number of days (`TOLLGATE_USAGE_RETENTION_DAYS`, 90 by default),
//! then deleted in bounded batches, so no statement holds the table for long. The rollups are kept: dashboards and
//! monthly quotas never read raw records.

use std::time::Duration;
use tollgate_store::Store;

/// Records deleted per statement.
pub const PRUNE_BATCH: i64 = 5_000;

/// Deletes the records older than `days` before `now` (epoch ms), batch after batch; returns how many went.
pub async fn prune(store: &Store, days: u32, now: i64) -> Result<u64, tollgate_store::StoreError> {
    let before = now - i64::from(days) * 86_400_000;
    let mut total = 0;
    loop {
        let n = store.prune_usage_records(before, PRUNE_BATCH).await?;
        total += n;
        if n < PRUNE_BATCH as u64 {
            return Ok(total);
        }
        // Let the gateway's batch writer in between two deletes.
        tokio::task::yield_now().await;
    }
}

/// Prunes every `every` (the first time at once) and refreshes the planner's statistics of the usage tables,
/// logging what went and any failure.
pub fn spawn(store: Store, days: u32, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match prune(&store, days, tollgate_store::now_millis()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    records = n,
                    days,
                    "pruned usage records past their retention"
                ),
                Err(e) => tracing::warn!(error = %e, "could not prune old usage records"),
            }
            if let Err(e) = store.refresh_usage_statistics().await {
                tracing::warn!(error = %e, "could not refresh the usage tables' statistics");
            }
        }
    })
}
