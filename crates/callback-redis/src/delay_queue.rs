//! `RedisDelayQueue`: the delay queue shared by every instance.
//!
//! Two sorted sets hold task ids (as hyphenated UUID strings):
//!
//! - `{prefix}:due`, scored by the due time in epoch milliseconds;
//! - `{prefix}:inflight`, ids taken by some instance, scored by the end of
//!   their lease.
//!
//! Taking due ids is one Lua script that first returns expired leases to
//! `due`, then moves up to `limit` due ids to `inflight`: any number of
//! instances may poll at once and none gets an id another holds. Both keys
//! carry the hash tag `{prefix}`, so every script touches a single slot and
//! runs unchanged on Redis Cluster.
//!
//! Nothing here is the truth: the store is. Every call is bounded by a
//! command timeout, so an unreachable Redis turns into a `QueueError`
//! quickly and the dispatcher falls back to polling the store.

use crate::connection::{RedisPool, RedisQueueError, RedisTopology, SharedConnection};
use crate::key_value::RedisKeyValue;
use async_trait::async_trait;
use callback_core::{DelayQueue, QueueError, TaskId};
use chrono::{DateTime, Utc};
use deadpool_redis::redis::{self, FromRedisValue, Script};
use deadpool_redis::{PoolConfig, Timeouts};
use std::future::Future;
use std::time::Duration;
use tokio::sync::Notify;

/// Lua: return expired leases to `due`, then move up to `limit` due ids to
/// `inflight` with a lease. KEYS: due, inflight. ARGV: now, limit, lease end,
/// most expired leases returned per take. The ids a range returns are the
/// set's lowest-ranked, so one `ZREMRANGEBYRANK` removes them and one
/// variadic `ZADD` moves them: two calls per take instead of two per id
/// (both counts are capped by `ENTRIES_PER_CALL`, well under Lua's limit on
/// `unpack`).
const TAKE_DUE: &str = r"
local function move(from, to, score, ids)
  if #ids == 0 then return end
  redis.call('ZREMRANGEBYRANK', from, 0, #ids - 1)
  local entries = {}
  for i, id in ipairs(ids) do
    entries[2 * i - 1] = score
    entries[2 * i] = id
  end
  redis.call('ZADD', to, unpack(entries))
end
move(KEYS[2], KEYS[1], ARGV[1], redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, ARGV[4]))
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
move(KEYS[1], KEYS[2], ARGV[3], ids)
return ids
";

/// Lua: each id is due at its given time and no longer in flight, with
/// one `ZREM` and one variadic `ZADD`. KEYS: due, inflight. ARGV: id1,
/// due1, id2, due2, ...
const SCHEDULE_MANY: &str = r"
local ids = {}
local scored = {}
for i = 1, #ARGV, 2 do
  ids[#ids + 1] = ARGV[i]
  scored[#scored + 1] = ARGV[i + 1]
  scored[#scored + 1] = ARGV[i]
end
redis.call('ZREM', KEYS[2], unpack(ids))
redis.call('ZADD', KEYS[1], unpack(scored))
return #ids
";

/// Lua: put back (id, due) pairs unless the id is in flight under a lease
/// that has not expired. KEYS: due, inflight. ARGV: now, id1, due1, ...
const RESTORE: &str = r"
local now = tonumber(ARGV[1])
local restored = 0
for i = 2, #ARGV, 2 do
  local lease = redis.call('ZSCORE', KEYS[2], ARGV[i])
  if (not lease) or tonumber(lease) < now then
    redis.call('ZREM', KEYS[2], ARGV[i])
    redis.call('ZADD', KEYS[1], ARGV[i + 1], ARGV[i])
    restored = restored + 1
  end
end
return restored
";

/// Entries one call restores, adds, acknowledges or takes, at most, so that
/// a large one never blocks Redis for long.
const ENTRIES_PER_CALL: usize = 1000;

/// How to reach Redis and how to use it.
#[derive(Debug, Clone)]
pub struct RedisQueueOptions {
    pub topology: RedisTopology,
    /// Names the keys and is their hash tag: `{prefix}:due`,
    /// `{prefix}:inflight`. Instances sharing a queue use the same prefix.
    pub key_prefix: String,
    /// Longest wait for any one Redis call, connecting included.
    pub command_timeout: Duration,
    /// How often an idle instance looks for ids other instances scheduled.
    pub poll_interval: Duration,
    /// How long a taken id stays in flight before it returns to the queue,
    /// should its taker die before finishing with it.
    pub inflight_lease: Duration,
}

pub struct RedisDelayQueue {
    pool: RedisPool,
    due_key: String,
    inflight_key: String,
    options: RedisQueueOptions,
    take_due: Script,
    schedule_many: Script,
    restore: Script,
    /// Woken when this instance schedules an id that is due (almost) now,
    /// so the pump does not sleep through it.
    sooner: Notify,
}

impl RedisDelayQueue {
    /// Builds the pool; connects lazily, so a Redis that is down at start
    /// only means delivery polls the store until it is back.
    pub fn new(options: RedisQueueOptions) -> Result<Self, RedisQueueError> {
        let prefix = &options.key_prefix;
        if prefix.is_empty() || prefix.len() > 64 || prefix.contains(['{', '}']) {
            return Err(RedisQueueError::InvalidPrefix(prefix.clone()));
        }
        let timeout = Some(options.command_timeout);
        let pool = RedisPool::build(
            &options.topology,
            PoolConfig {
                // Only makes the shared connection and its replacements.
                max_size: 2,
                timeouts: Timeouts {
                    wait: timeout,
                    create: timeout,
                    recycle: timeout,
                },
                ..PoolConfig::default()
            },
        )?;
        Ok(Self {
            pool,
            due_key: format!("{{{prefix}}}:due"),
            inflight_key: format!("{{{prefix}}}:inflight"),
            options,
            take_due: Script::new(TAKE_DUE),
            schedule_many: Script::new(SCHEDULE_MANY),
            restore: Script::new(RESTORE),
            sooner: Notify::new(),
        })
    }

    /// The keys this queue uses, e.g. for an operator or a test to inspect.
    pub fn keys(&self) -> [&str; 2] {
        [&self.due_key, &self.inflight_key]
    }

    /// The receiver limits the instances sharing this queue share.
    pub fn limits(&self) -> crate::limits::RedisLimits {
        crate::limits::RedisLimits {
            pool: self.pool.clone(),
            timeout: self.options.command_timeout,
            key: format!("{{{}}}:breakers", self.options.key_prefix),
            prefix: self.options.key_prefix.clone(),
        }
    }

    /// Plain keys on the same Redis and pool.
    pub fn key_value(&self) -> RedisKeyValue {
        RedisKeyValue {
            pool: self.pool.clone(),
            timeout: self.options.command_timeout,
        }
    }

    /// Runs one operation on a pooled connection within the command timeout.
    async fn with_conn<T, F, Fut>(&self, op: F) -> Result<T, RedisQueueError>
    where
        F: FnOnce(SharedConnection) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        self.pool.with_conn(self.options.command_timeout, op).await
    }

    async fn run_script<T: FromRedisValue>(
        &self,
        script: &Script,
        args: Vec<String>,
    ) -> Result<T, RedisQueueError> {
        let mut invocation = script.prepare_invoke();
        invocation.key(&self.due_key).key(&self.inflight_key);
        for arg in &args {
            invocation.arg(arg);
        }
        self.with_conn(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await
    }

    /// The soonest due time in the queue, if any.
    async fn earliest_due_ms(&self) -> Result<Option<i64>, RedisQueueError> {
        let first: Vec<(String, f64)> = self
            .with_conn(|mut conn| async move {
                redis::cmd("ZRANGE")
                    .arg(&self.due_key)
                    .arg(0)
                    .arg(0)
                    .arg("WITHSCORES")
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        // Scores are whole milliseconds well inside f64's exact range.
        Ok(first.first().map(|(_, score)| *score as i64))
    }
}

#[async_trait]
impl DelayQueue for RedisDelayQueue {
    fn backend(&self) -> &'static str {
        "redis"
    }

    async fn ping(&self) -> Result<(), QueueError> {
        let _: String = self
            .with_conn(|mut conn| async move { redis::cmd("PING").query_async(&mut conn).await })
            .await?;
        Ok(())
    }

    async fn schedule(&self, id: TaskId, due: DateTime<Utc>) -> Result<(), QueueError> {
        self.schedule_many(&[(id, due)]).await
    }

    async fn schedule_many(&self, entries: &[(TaskId, DateTime<Utc>)]) -> Result<(), QueueError> {
        for chunk in entries.chunks(ENTRIES_PER_CALL) {
            let mut args = Vec::with_capacity(chunk.len() * 2);
            for (id, due) in chunk {
                args.push(id.to_string());
                args.push(due.timestamp_millis().to_string());
            }
            let _: i64 = self.run_script(&self.schedule_many, args).await?;
        }
        let now = Utc::now();
        if entries.iter().any(|(_, due)| *due <= now) {
            self.sooner.notify_one();
        }
        Ok(())
    }

    async fn restore(&self, entries: &[(TaskId, DateTime<Utc>)]) -> Result<(), QueueError> {
        let now = Utc::now();
        for chunk in entries.chunks(ENTRIES_PER_CALL) {
            let mut args = Vec::with_capacity(1 + chunk.len() * 2);
            args.push(now.timestamp_millis().to_string());
            for (id, due) in chunk {
                args.push(id.to_string());
                args.push(due.timestamp_millis().to_string());
            }
            let restored: i64 = self.run_script(&self.restore, args).await?;
            if restored > 0 {
                tracing::debug!(restored, "delay queue entries restored from the store");
            }
        }
        if entries.iter().any(|(_, due)| *due <= now) {
            self.sooner.notify_one();
        }
        Ok(())
    }

    /// One `ZADD` a chunk: a new id is in flight nowhere, so the restore
    /// script's look into `inflight` (three calls an id, in Lua) is not
    /// needed.
    async fn add_new(&self, entries: &[(TaskId, DateTime<Utc>)]) -> Result<(), QueueError> {
        let now = Utc::now();
        for chunk in entries.chunks(ENTRIES_PER_CALL) {
            let mut zadd = redis::cmd("ZADD");
            zadd.arg(&self.due_key);
            for (id, due) in chunk {
                zadd.arg(due.timestamp_millis()).arg(id.to_string());
            }
            let _: i64 = self
                .with_conn(|mut conn| async move { zadd.query_async(&mut conn).await })
                .await?;
        }
        if entries.iter().any(|(_, due)| *due <= now) {
            self.sooner.notify_one();
        }
        Ok(())
    }

    async fn take_due(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<TaskId>, QueueError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        // Lua unpacks a take's ids into one call's arguments; a chunk at a
        // time keeps that bounded whatever the caller's channel holds.
        let limit = limit.min(ENTRIES_PER_CALL);
        let lease = chrono::TimeDelta::from_std(self.options.inflight_lease)
            .unwrap_or(chrono::TimeDelta::MAX);
        let members: Vec<String> = self
            .run_script(
                &self.take_due,
                vec![
                    now.timestamp_millis().to_string(),
                    limit.to_string(),
                    (now + lease).timestamp_millis().to_string(),
                    ENTRIES_PER_CALL.to_string(),
                ],
            )
            .await?;
        let mut ids = Vec::with_capacity(members.len());
        for member in members {
            match member.parse::<TaskId>() {
                Ok(id) => ids.push(id),
                Err(_) => {
                    tracing::warn!(error = %RedisQueueError::BadMember(member), "skipping a foreign member of the delay queue")
                }
            }
        }
        Ok(ids)
    }

    async fn ack(&self, ids: &[TaskId]) -> Result<(), QueueError> {
        for chunk in ids.chunks(ENTRIES_PER_CALL) {
            let mut zrem = redis::cmd("ZREM");
            zrem.arg(&self.inflight_key);
            for id in chunk {
                zrem.arg(id.to_string());
            }
            let _: i64 = self
                .with_conn(|mut conn| async move { zrem.query_async(&mut conn).await })
                .await?;
        }
        Ok(())
    }

    async fn wait(&self, max_wait: Duration) {
        let cap = self.options.poll_interval.min(max_wait);
        let wait = match self.earliest_due_ms().await {
            Ok(Some(due_ms)) => {
                let until = due_ms.saturating_sub(Utc::now().timestamp_millis());
                Duration::from_millis(u64::try_from(until).unwrap_or(0)).min(cap)
            }
            Ok(None) => cap,
            // Unreachable: the caller's next call fails too and backs off.
            Err(_) => max_wait,
        };
        if wait.is_zero() {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = self.sooner.notified() => {}
        }
    }
}
