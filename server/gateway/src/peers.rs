//! How many gateway replicas share the limits: each server writes a heartbeat row to the database every few
//! seconds and counts the rows written recently. The count divides every limit between the replicas while Redis is
//! unreachable (`limits/share.rs`). While the database is unreachable too, the last count stands.

use crate::Gateway;
use std::time::Duration;

/// How often a replica writes its heartbeat; a replica silent for three of these no longer counts.
pub const HEARTBEAT: Duration = Duration::from_secs(5);

impl Gateway {
    /// Writes this replica's heartbeat every `every` and tells the limiter how many replicas are alive.
    pub fn spawn_peer_heartbeat(
        &self,
        store: tollgate_store::Store,
        every: Duration,
    ) -> tokio::task::JoinHandle<()> {
        let limiter = self.inner.limiter.clone();
        let id = tollgate_store::new_id("gw");
        let every_ms = i64::try_from(every.as_millis()).unwrap_or(i64::MAX);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let now = tollgate_store::now_millis();
                match store
                    .peer_heartbeat(&id, now, now.saturating_sub(every_ms.saturating_mul(3)))
                    .await
                {
                    Ok(live) => {
                        limiter.set_replicas(u32::try_from(live).unwrap_or(u32::MAX).max(1))
                    }
                    Err(e) => tracing::debug!(error = %e, "could not write the gateway heartbeat"),
                }
            }
        })
    }
}
