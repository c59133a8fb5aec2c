//! A counter per concern, bumped by every write that concern caches. Server replicas poll it (one indexed read)
//! and rebuild their in-memory copies when it moves, so changes reach every replica within the poll interval
//! without a message bus.

use crate::{Result, Store};

const GATEWAY: &str = "gateway";

/// Marks keys, subscriptions, plans or models as changed for every gateway, inside the transaction of the write
/// that changed them: the change and the bump commit together or not at all, so no replica can miss a
/// revocation that a failed bump would otherwise leave unannounced.
pub(crate) async fn bump_gateway_revision(tx: &mut sqlx::Transaction<'_, sqlx::Any>) -> Result<()> {
    sqlx::query("UPDATE revisions SET value = value + 1 WHERE name = $1")
        .bind(GATEWAY)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

impl Store {
    pub async fn gateway_revision(&self) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT value FROM revisions WHERE name = $1")
                .bind(GATEWAY)
                .fetch_one(&self.pool)
                .await?,
        )
    }
}
