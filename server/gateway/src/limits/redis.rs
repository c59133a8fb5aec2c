//! Counters in Redis, shared by every gateway replica, so N replicas never allow N times a limit. Each decision is
//! one Lua script (atomic on the server) applying the same rules as `window.rs`; settlement runs in the background.
//!
//! Keys, all under a configurable prefix (tests use a fresh one, so runs never collide), with the subscription in a
//! hash tag so one subscription's keys live on one cluster slot:
//! - `{prefix}:{sub}:w:{window}`: hash of `r` (requests) and `t` (tokens), expiring after two windows;
//! - `{prefix}:{sub}:c`: running requests, a sorted set of ticket ids scored by the time their slot lapses
//!   (admission + the lease, pushed on by long streams). Each admission first drops the lapsed members, so a slot
//!   lost by a crashed replica comes back one lease later however busy the subscription is, and a running request
//!   never loses its slot to a key expiring under it (the key's own expiry only collects idle subscriptions: every
//!   member lapses before it).
//! - `{prefix}:{sub}:m:{month}`: tokens this month, expiring after 40 days.

use super::{retry_after_ms, LimitError, LimitKind, Limiter, Seen, Slot, Ticket};
use async_trait::async_trait;
use redis::aio::MultiplexedConnection;
use redis::Script;
use std::sync::Arc;
use tollgate_domain::grant::Limits;

const ADMIT: &str = r#"
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[7])
local r = tonumber(redis.call('HGET', KEYS[1], 'r') or '0')
local t = tonumber(redis.call('HGET', KEYS[1], 't') or '0')
local c = redis.call('ZCARD', KEYS[2])
local m = tonumber(redis.call('GET', KEYS[3]) or '0')
local rpm, tpm, cmax, mmax = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local res = tonumber(ARGV[5])
if cmax >= 0 and c + 1 > cmax then return {1, r, t} end
if rpm >= 0 and r + 1 > rpm then return {2, r, t} end
if tpm >= 0 and t + res > tpm then return {3, r, t} end
if mmax >= 0 and m + res > mmax then return {4, r, t} end
redis.call('HINCRBY', KEYS[1], 'r', 1)
redis.call('HINCRBY', KEYS[1], 't', res)
redis.call('PEXPIRE', KEYS[1], ARGV[6])
redis.call('ZADD', KEYS[2], ARGV[8], ARGV[10])
redis.call('PEXPIRE', KEYS[2], ARGV[9])
redis.call('INCRBY', KEYS[3], res)
redis.call('EXPIRE', KEYS[3], 3456000)
return {0, r + 1, t + res}
"#;

/// Only a ticket still in the running set is settled: a refused, abandoned-before-it-ran or already settled one
/// changes nothing (see `Limiter::settle`).
const SETTLE: &str = r#"
if redis.call('ZREM', KEYS[2], ARGV[3]) == 0 then return 0 end
local delta = tonumber(ARGV[2]) - tonumber(ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 1 then
  local t = redis.call('HINCRBY', KEYS[1], 't', delta)
  if t < 0 then redis.call('HSET', KEYS[1], 't', 0) end
end
if redis.call('EXISTS', KEYS[3]) == 1 then
  local m = redis.call('INCRBY', KEYS[3], delta)
  if m < 0 then redis.call('SET', KEYS[3], 0, 'KEEPTTL') end
end
return 1
"#;

/// Pushes a running ticket's lapse time on (XX: a ticket already settled or lapsed is not brought back).
const REFRESH: &str = r#"
if redis.call('ZADD', KEYS[1], 'XX', 'CH', ARGV[1], ARGV[2]) == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
return 1
"#;

/// How long an admitted request holds its concurrency slot without a refresh: the longest non-streaming request
/// (the default request timeout), after which a slot whose settlement was lost comes back.
pub const DEFAULT_LEASE_MS: i64 = 600_000;

pub struct RedisLimiter {
    conn: MultiplexedConnection,
    /// The runtime that connected, where background updates run: the gateway's per-core listener threads end at
    /// shutdown, and a settlement must not end with them.
    runtime: tokio::runtime::Handle,
    prefix: Arc<str>,
    window_ms: i64,
    lease_ms: i64,
    admit: Arc<Script>,
    settle: Arc<Script>,
    refresh: Arc<Script>,
}

impl RedisLimiter {
    /// Connects to `url` (`redis://127.0.0.1:6379`); every key starts with `prefix`.
    pub async fn connect(url: &str, prefix: &str, window_ms: i64) -> Result<Self, String> {
        let client = redis::Client::open(url).map_err(|e| format!("redis url {url}: {e}"))?;
        let conn = client
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| format!("cannot reach redis at {url}: {e}"))?;
        Ok(Self {
            conn,
            runtime: tokio::runtime::Handle::current(),
            prefix: prefix.into(),
            window_ms: window_ms.max(1),
            lease_ms: DEFAULT_LEASE_MS,
            admit: Arc::new(Script::new(ADMIT)),
            settle: Arc::new(Script::new(SETTLE)),
            refresh: Arc::new(Script::new(REFRESH)),
        })
    }

    /// Sets how long a slot is held without a refresh (at least a second).
    pub fn with_lease_ms(mut self, lease_ms: i64) -> Self {
        self.lease_ms = lease_ms.max(1000);
        self
    }

    /// Runs `script` in the background, so settlement and refreshes never hold a request up. It goes over the shared
    /// connection, so it reaches Redis after any admission of the same ticket already sent on it.
    fn spawn(
        &self,
        script: &Arc<Script>,
        keys: Vec<String>,
        args: Vec<String>,
        what: &'static str,
    ) {
        let mut conn = self.conn.clone();
        let script = script.clone();
        self.runtime.spawn(async move {
            let mut invocation = script.prepare_invoke();
            for k in keys {
                invocation.key(k);
            }
            for a in args {
                invocation.arg(a);
            }
            if let Err(e) = invocation.invoke_async::<i64>(&mut conn).await {
                tracing::warn!(error = %e, what, "a redis limiter update failed; the slot lapses with its lease");
            }
        });
    }

    fn keys(prefix: &str, sub: &str, slot: Slot) -> [String; 3] {
        [
            format!("{prefix}:{{{sub}}}:w:{}", slot.window),
            format!("{prefix}:{{{sub}}}:c"),
            format!("{prefix}:{{{sub}}}:m:{}", slot.month),
        ]
    }
}

/// A limit as the scripts read it: -1 for none.
fn arg(limit: Option<u64>) -> i64 {
    limit.map_or(-1, |v| i64::try_from(v).unwrap_or(i64::MAX))
}

#[async_trait]
impl Limiter for RedisLimiter {
    async fn admit(
        &self,
        ticket: &Ticket,
        limits: &Limits,
        now_ms: i64,
    ) -> Result<Seen, LimitError> {
        let [w, c, m] = Self::keys(&self.prefix, &ticket.subscription_id, ticket.slot);
        let mut conn = self.conn.clone();
        let (code, requests, tokens): (i64, i64, i64) = self
            .admit
            .key(w)
            .key(c)
            .key(m)
            .arg(arg(limits.requests_per_minute.map(u64::from)))
            .arg(arg(limits.tokens_per_minute.map(u64::from)))
            .arg(arg(limits.max_concurrent.map(u64::from)))
            .arg(arg(limits.monthly_tokens))
            .arg(arg(Some(ticket.reserved)))
            .arg(self.window_ms * 2)
            .arg(now_ms)
            .arg(now_ms.saturating_add(self.lease_ms))
            .arg(self.lease_ms)
            .arg(&ticket.id)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| LimitError::Unavailable(e.to_string()))?;
        let seen = Seen {
            requests: requests.max(0) as u64,
            tokens: tokens.max(0) as u64,
        };
        let kind = match code {
            0 => return Ok(seen),
            1 => LimitKind::Concurrency,
            2 => LimitKind::Requests,
            3 => LimitKind::Tokens,
            _ => LimitKind::Monthly,
        };
        Err(LimitError::Refused {
            kind,
            seen,
            retry_after_ms: retry_after_ms(kind, now_ms, self.window_ms),
        })
    }

    fn settle(&self, ticket: Ticket, used: u64) {
        let [w, c, m] = Self::keys(&self.prefix, &ticket.subscription_id, ticket.slot);
        let args = vec![
            arg(Some(ticket.reserved)).to_string(),
            arg(Some(used)).to_string(),
            ticket.id,
        ];
        self.spawn(&self.settle, vec![w, c, m], args, "settle");
    }

    fn refresh(&self, ticket: &Ticket, now_ms: i64) {
        let [_, c, _] = Self::keys(&self.prefix, &ticket.subscription_id, ticket.slot);
        let args = vec![
            now_ms.saturating_add(self.lease_ms).to_string(),
            ticket.id.clone(),
            self.lease_ms.to_string(),
        ];
        self.spawn(&self.refresh, vec![c], args, "refresh");
    }

    fn refresh_every_ms(&self) -> Option<i64> {
        Some(self.lease_ms / 3)
    }

    async fn seed_month(
        &self,
        subscription_id: &str,
        month: i64,
        tokens: u64,
    ) -> Result<(), String> {
        let key = format!("{}:{{{subscription_id}}}:m:{month}", self.prefix);
        let mut conn = self.conn.clone();
        // NX: another replica (or this month's traffic) may already have set it; its count is the live one.
        redis::cmd("SET")
            .arg(key)
            .arg(tokens)
            .arg("NX")
            .arg("EX")
            .arg(3_456_000)
            .query_async::<Option<String>>(&mut conn)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn window_ms(&self) -> i64 {
        self.window_ms
    }
}
