//! Gateway replicas' heartbeats (`gateway_peers`): how many replicas share the rate limits.

use crate::{Result, Store};

/// Rows older than this are deleted by the next heartbeat of any replica.
const FORGET_AFTER_MS: i64 = 3_600_000;

impl Store {
    /// Records that replica `id` is alive at `now` and returns how many replicas have written a heartbeat since
    /// `live_since` (this one included).
    pub async fn peer_heartbeat(&self, id: &str, now: i64, live_since: i64) -> Result<i64> {
        sqlx::query(
            "INSERT INTO gateway_peers (id, seen_at) VALUES ($1, $2)
             ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at",
        )
        .bind(id)
        .bind(now)
        .execute(&self.pool)
        .await?;
        sqlx::query("DELETE FROM gateway_peers WHERE seen_at < $1")
            .bind(now.saturating_sub(FORGET_AFTER_MS))
            .execute(&self.pool)
            .await?;
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM gateway_peers WHERE seen_at >= $1")
                .bind(live_since)
                .fetch_one(&self.pool)
                .await?,
        )
    }
}
