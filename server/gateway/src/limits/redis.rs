//! Counters in Redis, shared by every gateway replica, so N replicas never allow N times a limit. Each decision is
//! one Lua script (atomic on the server) applying the same rules as `window.rs`; settlement runs in the background.
//!
//! Keys, all under a configurable prefix (tests use a fresh one, so runs never collide), with the subscription in a
//! hash tag so one subscription's keys live on one cluster slot:
//! - `{prefix}:{sub}:w`: the sliding window (`window.rs`), one hash: `h` the newest step counted, `R` and `T` the
//!   requests and tokens in the window, `r<step>` and `t<step>` each counted step's. Every script that touches it
//!   first rolls it to its step (the `ROLL` function), dropping the steps that left the window; it expires after two
//!   windows without traffic.
//! - `{prefix}:{sub}:c`: running requests, a sorted set of ticket ids scored by the time their slot lapses
//!   (admission + the lease, pushed on by long streams). Each admission first drops the lapsed members, so a slot
//!   lost by a crashed replica comes back one lease later however busy the subscription is, and a running request
//!   never loses its slot to a key expiring under it (the key's own expiry only collects idle subscriptions: every
//!   member lapses before it).
//! - `{prefix}:{sub}:m:{month}`: tokens this month, expiring after 40 days.
//!
//! The connection is a `redis::aio::ConnectionManager`, which reconnects by itself; every command has a deadline
//! (`RedisOptions::timeout_ms`), so an unreachable Redis fails fast rather than holding requests up. What happens
//! to requests meanwhile is `failover.rs`'s business: this file only reports `LimitError::Unavailable`.

use super::{retry_after_ms, window, LimitError, LimitKind, Limiter, Seen, Slot, Ticket};
use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Script;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OnceCell;
use tollgate_domain::grant::Limits;

/// Brings the window hash `w` to `step` (see `window::roll`) and returns the step admissions are counted in: the
/// given one, or the oldest still counted when a replica's clock lags by more than a window. `steps` is
/// `window::STEPS`.
const ROLL: &str = r#"
local function roll(w, step, steps)
  local h = tonumber(redis.call('HGET', w, 'h'))
  if not h or step - h > steps then
    redis.call('DEL', w)
    redis.call('HSET', w, 'h', step, 'R', 0, 'T', 0)
    return step
  end
  if step <= h then return math.max(step, h - steps) end
  local gone_r, gone_t = 0, 0
  for s = h - steps, step - steps - 1 do
    local v = redis.call('HMGET', w, 'r' .. s, 't' .. s)
    gone_r = gone_r + (tonumber(v[1]) or 0)
    gone_t = gone_t + (tonumber(v[2]) or 0)
    if v[1] or v[2] then redis.call('HDEL', w, 'r' .. s, 't' .. s) end
  end
  -- (Only when something left: Lua writes -0 for a zero, which HINCRBY refuses.)
  if gone_r > 0 then redis.call('HINCRBY', w, 'R', -gone_r) end
  if gone_t > 0 then redis.call('HINCRBY', w, 'T', -gone_t) end
  redis.call('HSET', w, 'h', step)
  return step
end
-- The oldest step whose leaving frees `need_r` requests and `need_t` tokens (see `window::Counters::frees_at`).
local function frees_at(w, steps, need_r, need_t)
  local h = tonumber(redis.call('HGET', w, 'h'))
  local r, t = 0, 0
  for s = h - steps, h do
    local v = redis.call('HMGET', w, 'r' .. s, 't' .. s)
    r = r + (tonumber(v[1]) or 0)
    t = t + (tonumber(v[2]) or 0)
    if r >= need_r and t >= need_t then return s end
  end
  return h
end
"#;

/// ARGV: 1-4 the limits (-1 for none), 5 the reservation, 6 the window key's expiry, 7 now, 8 the slot's lapse,
/// 9 the running set's expiry, 10 the ticket, 11 the step, 12 `window::STEPS`. Returns the decision (0 admitted,
/// 1-4 the limit that refused), the window's requests and tokens, the month's tokens, and the step that must leave
/// for a refused request to fit (-1 when none).
const ADMIT: &str = r#"
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[7])
local steps = tonumber(ARGV[12])
local at = roll(KEYS[1], tonumber(ARGV[11]), steps)
local r = tonumber(redis.call('HGET', KEYS[1], 'R'))
local t = tonumber(redis.call('HGET', KEYS[1], 'T'))
local c = redis.call('ZCARD', KEYS[2])
local m = tonumber(redis.call('GET', KEYS[3]) or '0')
local rpm, tpm, cmax, mmax = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local res = tonumber(ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
if cmax >= 0 and c + 1 > cmax then return {1, r, t, m, -1} end
if rpm >= 0 and r + 1 > rpm then return {2, r, t, m, frees_at(KEYS[1], steps, r + 1 - rpm, 0)} end
if tpm >= 0 and t + res > tpm then return {3, r, t, m, frees_at(KEYS[1], steps, 0, t + res - tpm)} end
if mmax >= 0 and m + res > mmax then return {4, r, t, m, -1} end
redis.call('HINCRBY', KEYS[1], 'r' .. at, 1)
redis.call('HINCRBY', KEYS[1], 't' .. at, res)
redis.call('HINCRBY', KEYS[1], 'R', 1)
redis.call('HINCRBY', KEYS[1], 'T', res)
redis.call('ZADD', KEYS[2], ARGV[8], ARGV[10])
redis.call('PEXPIRE', KEYS[2], ARGV[9])
redis.call('INCRBY', KEYS[3], res)
redis.call('EXPIRE', KEYS[3], 3456000)
return {0, r + 1, t + res, m + res, -1}
"#;

/// Only a ticket still in the running set is settled: a refused, abandoned-before-it-ran or already settled one
/// changes nothing (see `Limiter::settle`). Its step is corrected while it is still in the window (its field
/// exists). ARGV: 1 reserved, 2 used, 3 the ticket, 4 its step.
const SETTLE: &str = r#"
if redis.call('ZREM', KEYS[2], ARGV[3]) == 0 then return 0 end
local delta = tonumber(ARGV[2]) - tonumber(ARGV[1])
local f = 't' .. ARGV[4]
local before = tonumber(redis.call('HGET', KEYS[1], f))
if before then
  local after = math.max(before + delta, 0)
  redis.call('HSET', KEYS[1], f, after)
  local total = redis.call('HINCRBY', KEYS[1], 'T', after - before)
  if total < 0 then redis.call('HSET', KEYS[1], 'T', 0) end
end
if redis.call('EXISTS', KEYS[3]) == 1 then
  local m = redis.call('INCRBY', KEYS[3], delta)
  if m < 0 then redis.call('SET', KEYS[3], 0, 'KEEPTTL') end
end
return 1
"#;

/// Raises the month's count to at least the usage records' total (never lowers it: see `Limiter::seed_month`).
const RAISE_MONTH: &str = r#"
local m = tonumber(redis.call('GET', KEYS[1]) or '-1')
if m < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1], 'EX', 3456000) end
return 1
"#;

/// Adds what was admitted under local limits during an outage: requests and tokens to their step while it is in
/// the window, tokens to the month (creating either if Redis lost it meanwhile). ARGV: 1 requests, 2 tokens, 3 the
/// window key's expiry, 4 the step, 5 `window::STEPS`.
const ABSORB: &str = r#"
local step = tonumber(ARGV[4])
local at = roll(KEYS[1], step, tonumber(ARGV[5]))
if at == step then
  redis.call('HINCRBY', KEYS[1], 'r' .. at, ARGV[1])
  redis.call('HINCRBY', KEYS[1], 't' .. at, ARGV[2])
  redis.call('HINCRBY', KEYS[1], 'R', ARGV[1])
  redis.call('HINCRBY', KEYS[1], 'T', ARGV[2])
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('INCRBY', KEYS[2], ARGV[2])
redis.call('EXPIRE', KEYS[2], 3456000)
return 1
"#;

/// Settlements retrying at once, at most: past it a settlement that fails is dropped (its slot lapses with its
/// lease), so a long outage under heavy load cannot pile up tasks without bound.
const MAX_RETRYING: u64 = 50_000;

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

/// How the limiter talks to Redis.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// Every key starts with it.
    pub prefix: String,
    /// The rate window (a minute, except in tests).
    pub window_ms: i64,
    /// Deadline of one command, and of one connection attempt: past it Redis counts as unreachable.
    pub timeout_ms: u64,
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self {
            prefix: "tollgate".into(),
            window_ms: 60_000,
            timeout_ms: 250,
        }
    }
}

pub struct RedisLimiter {
    client: redis::Client,
    manager_config: ConnectionManagerConfig,
    /// Set once the first connection succeeds (at start, or later by `ping` when Redis was down at start); from
    /// then on the manager reconnects by itself.
    conn: Arc<OnceCell<ConnectionManager>>,
    /// Settlements waiting to be tried again.
    retrying: Arc<AtomicU64>,
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
    /// A limiter for Redis at `url` (`redis://127.0.0.1:6379`). Fails only for a URL that cannot be used; an
    /// unreachable Redis is connected to later (see [`RedisLimiter::connect`]). Call inside the Tokio runtime.
    pub fn new(url: &str, options: &RedisOptions) -> Result<Self, String> {
        let client = redis::Client::open(url).map_err(|e| format!("redis url {url}: {e}"))?;
        let timeout = Duration::from_millis(options.timeout_ms.max(1));
        // One quick retry per reconnection: the failover's prober paces the attempts while Redis is away.
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(timeout)
            .set_response_timeout(timeout)
            .set_number_of_retries(1)
            .set_max_delay(200);
        Ok(Self {
            client,
            manager_config,
            conn: Arc::new(OnceCell::new()),
            retrying: Arc::default(),
            runtime: tokio::runtime::Handle::current(),
            prefix: options.prefix.as_str().into(),
            window_ms: options.window_ms.max(1),
            lease_ms: DEFAULT_LEASE_MS,
            admit: Arc::new(Script::new(&format!("{ROLL}{ADMIT}"))),
            settle: Arc::new(Script::new(SETTLE)),
            refresh: Arc::new(Script::new(REFRESH)),
        })
    }

    /// A limiter already connected to Redis at `url`: fails when Redis cannot be reached (for tests and tools; the
    /// server starts even while Redis is down).
    pub async fn connected(url: &str, prefix: &str, window_ms: i64) -> Result<Self, String> {
        let limiter = Self::new(
            url,
            &RedisOptions {
                prefix: prefix.into(),
                window_ms,
                ..RedisOptions::default()
            },
        )?;
        limiter.connect().await?;
        Ok(limiter)
    }

    /// Connects now; an error says Redis cannot be reached yet (the limiter still works, reporting it unavailable
    /// until a later `ping` connects).
    pub async fn connect(&self) -> Result<(), String> {
        self.manager().await.map(|_| ())
    }

    /// The connection, made on first use.
    async fn manager(&self) -> Result<ConnectionManager, String> {
        self.conn
            .get_or_try_init(|| {
                ConnectionManager::new_with_config(self.client.clone(), self.manager_config.clone())
            })
            .await
            .cloned()
            .map_err(|e| format!("cannot reach redis: {e}"))
    }

    /// Sets how long a slot is held without a refresh (at least a second).
    pub fn with_lease_ms(mut self, lease_ms: i64) -> Self {
        self.lease_ms = lease_ms.max(1000);
        self
    }

    /// Runs `script` in the background, so settlement and refreshes never hold a request up. It goes over the shared
    /// connection, so it reaches Redis after any admission of the same ticket already sent on it. With `retry`, a
    /// failure is tried again with backoff until the ticket's lease would have lapsed anyway: settling is idempotent
    /// (only a ticket still in the running set is settled), so a settlement made during an outage lands when Redis
    /// answers again, and the month's count stays exact.
    fn spawn(
        &self,
        script: &Arc<Script>,
        keys: Vec<String>,
        args: Vec<String>,
        what: &'static str,
        retry: bool,
    ) {
        let script = script.clone();
        let retrying = self.retrying.clone();
        let conn = self.conn.clone();
        let give_up = Duration::from_millis(u64::try_from(self.lease_ms).unwrap_or(0));
        self.runtime.spawn(async move {
            let started = tokio::time::Instant::now();
            let mut wait = Duration::from_millis(100);
            // Whether this task counts among the retrying ones, and whether there were too many already.
            let (mut counted, mut over_limit) = (false, false);
            loop {
                let mut invocation = script.prepare_invoke();
                for k in &keys {
                    invocation.key(k);
                }
                for a in &args {
                    invocation.arg(a);
                }
                // Never connected: Redis has not answered since start; the limiter connects on its next use.
                let result = match conn.get().cloned() {
                    Some(mut c) => invocation
                        .invoke_async::<i64>(&mut c)
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string()),
                    None => Err("not connected".to_string()),
                };
                let Err(e) = result else { break };
                if retry && !counted {
                    counted = true;
                    over_limit = retrying.fetch_add(1, Ordering::Relaxed) >= MAX_RETRYING;
                }
                if !retry || over_limit || started.elapsed() + wait >= give_up {
                    // At debug level, not once per request: an outage is logged once, by the failover.
                    tracing::debug!(error = %e, what, "a redis limiter update failed; the slot lapses with its lease");
                    break;
                }
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(2));
            }
            if counted {
                retrying.fetch_sub(1, Ordering::Relaxed);
            }
        });
    }

    fn keys(prefix: &str, sub: &str, slot: Slot) -> [String; 3] {
        [
            format!("{prefix}:{{{sub}}}:w"),
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
        // Cloning the manager is an Arc clone; `get` is the common case, with no await.
        let mut conn = match self.conn.get() {
            Some(c) => c.clone(),
            None => self.manager().await.map_err(LimitError::Unavailable)?,
        };
        let (code, requests, tokens, month_tokens, frees_at): (i64, i64, i64, i64, i64) = self
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
            .arg(ticket.slot.step)
            .arg(window::STEPS)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| LimitError::Unavailable(e.to_string()))?;
        let seen = Seen {
            requests: requests.max(0) as u64,
            tokens: tokens.max(0) as u64,
            month_tokens: month_tokens.max(0) as u64,
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
            retry_after_ms: retry_after_ms(
                kind,
                now_ms,
                self.window_ms,
                (frees_at >= 0).then_some(frees_at),
            ),
        })
    }

    fn settle(&self, ticket: Ticket, used: u64) {
        let [w, c, m] = Self::keys(&self.prefix, &ticket.subscription_id, ticket.slot);
        let args = vec![
            arg(Some(ticket.reserved)).to_string(),
            arg(Some(used)).to_string(),
            ticket.id,
            ticket.slot.step.to_string(),
        ];
        self.spawn(&self.settle, vec![w, c, m], args, "settle", true);
    }

    fn refresh(&self, ticket: &Ticket, now_ms: i64) {
        let [_, c, _] = Self::keys(&self.prefix, &ticket.subscription_id, ticket.slot);
        let args = vec![
            now_ms.saturating_add(self.lease_ms).to_string(),
            ticket.id.clone(),
            self.lease_ms.to_string(),
        ];
        self.spawn(&self.refresh, vec![c], args, "refresh", false);
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
        let mut conn = self.manager().await?;
        Script::new(RAISE_MONTH)
            .key(key)
            .arg(arg(Some(tokens)))
            .invoke_async::<i64>(&mut conn)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn window_ms(&self) -> i64 {
        self.window_ms
    }

    /// A round trip that also tells whether Redis lost its data: a sentinel key is set when missing (`SET NX`),
    /// so finding it missing means Redis started empty since the last ping (or this is the first one).
    async fn ping(&self) -> Result<bool, String> {
        let mut conn = self.manager().await?;
        redis::cmd("SET")
            .arg(format!("{}:sentinel", self.prefix))
            .arg(1)
            .arg("NX")
            .query_async::<Option<String>>(&mut conn)
            .await
            .map(|set| set.is_some())
            .map_err(|e| e.to_string())
    }

    async fn absorb(
        &self,
        subscription_id: &str,
        slot: Slot,
        requests: u64,
        tokens: u64,
    ) -> Result<(), String> {
        let [w, _, m] = Self::keys(&self.prefix, subscription_id, slot);
        let mut conn = self.manager().await?;
        Script::new(&format!("{ROLL}{ABSORB}"))
            .key(w)
            .key(m)
            .arg(arg(Some(requests)))
            .arg(arg(Some(tokens)))
            .arg(self.window_ms * 2)
            .arg(slot.step)
            .arg(window::STEPS)
            .invoke_async::<i64>(&mut conn)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}
