//! tower-sessions storage in our own database: sessions survive restarts and are shared by every server
//! replica on the same PostgreSQL. We keep the owner's user id in its own column so a user can list and
//! revoke their sessions.
//!
//! The database never holds a session id, only its SHA-256 ([`session_key`]): a read of the table, a backup or
//! a cached account page cannot be turned into a cookie. The same hash is the session's handle where one is
//! shown (the account page lists sessions and ends them by it).

use async_trait::async_trait;
use std::collections::HashMap;
use tollgate_store::{SessionWrite, Store, StoreError};
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, SessionStore};

use crate::session::USER_ID;

/// The key a session is stored and shown under: the SHA-256 of its id, in hex. Not a secret: knowing it does not
/// let anyone present the session.
pub fn session_key(id: &Id) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(id.to_string().as_bytes()))
}

/// Expired sessions deleted per statement by the sweeper.
const SWEEP_BATCH: i64 = 1000;

/// Deletes expired sessions every `every`, a bounded batch at a time until none is left, for as long as the
/// returned task runs. Without it, every abandoned sign-in would stay in the table for good.
pub fn spawn_sweeper(store: Store, every: std::time::Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let mut swept = 0;
            loop {
                match store.delete_expired_sessions(SWEEP_BATCH).await {
                    Ok(n) => {
                        swept += n;
                        if n < SWEEP_BATCH as u64 {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "could not sweep expired sessions");
                        break;
                    }
                }
            }
            if swept > 0 {
                tracing::debug!(swept, "deleted expired sessions");
            }
        }
    })
}

#[derive(Clone, Debug)]
pub struct DbSessionStore {
    store: Store,
}

impl DbSessionStore {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    async fn write(&self, record: &Record, only_if_new: bool) -> session_store::Result<bool> {
        let data = serde_json::to_string(&record.data)
            .map_err(|e| session_store::Error::Encode(e.to_string()))?;
        let user_id = record.data.get(USER_ID).and_then(|v| v.as_str());
        let expires_at = i64::try_from(record.expiry_date.unix_timestamp_nanos() / 1_000_000)
            .unwrap_or(i64::MAX);
        let id = session_key(&record.id);
        self.store
            .save_session(
                SessionWrite {
                    id: &id,
                    user_id,
                    data: &data,
                    expires_at,
                },
                only_if_new,
            )
            .await
            .map_err(backend)
    }
}

fn backend(e: StoreError) -> session_store::Error {
    session_store::Error::Backend(e.to_string())
}

#[async_trait]
impl SessionStore for DbSessionStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        // Ids are 128 random bits; a collision is astronomically unlikely, but never overwrite another session.
        while !self.write(record, true).await? {
            record.id = Id::default();
        }
        Ok(())
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        self.write(record, false).await.map(|_| ())
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let Some(row) = self
            .store
            .load_session(&session_key(id))
            .await
            .map_err(backend)?
        else {
            return Ok(None);
        };
        let data: HashMap<String, serde_json::Value> = serde_json::from_str(&row.data)
            .map_err(|e| session_store::Error::Decode(e.to_string()))?;
        let expiry_date =
            time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(row.expires_at) * 1_000_000)
                .map_err(|e| session_store::Error::Decode(e.to_string()))?;
        Ok(Some(Record {
            id: *id,
            data,
            expiry_date,
        }))
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        self.store
            .delete_session(&session_key(id))
            .await
            .map_err(backend)
    }
}

#[cfg(test)]
mod tests {
    use super::session_key;
    use tower_sessions::session::Id;

    #[test]
    fn the_stored_key_is_a_hash_not_the_id() {
        let id = Id::default();
        let key = session_key(&id);
        assert_eq!(key.len(), 64);
        assert!(!key.contains(&id.to_string()));
        assert_eq!(key, session_key(&id), "stable");
        assert_ne!(key, session_key(&Id::default()));
    }
}
