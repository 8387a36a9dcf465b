//! Receiver limits shared by the cluster.
//!
//! - Breakers: one hash, `{prefix}:breakers`, receiver to the end of its
//!   pause (epoch ms). Instances read it whole every second; ended pauses
//!   are pruned as they are read.
//! - Rate limits: a counter per receiver and second,
//!   `{prefix}:rate:{receiver}:{epoch second}`, expiring after two
//!   seconds. A request may go while the counter is within the limit.
//! - In-flight caps: a sorted set per receiver, `{prefix}:slots:{receiver}`,
//!   of the attempts in flight, each scored with the end of its lease
//!   (epoch ms, Redis's own clock). A slot is taken while the set, its
//!   ended leases dropped, holds fewer than the cap.

use crate::connection::RedisPool;
use async_trait::async_trait;
use callback_core::{QueueError, SharedLimits};
use chrono::{DateTime, Utc};
use deadpool_redis::redis;
use std::time::Duration;

#[derive(Clone)]
pub struct RedisLimits {
    pub(crate) pool: RedisPool,
    pub(crate) timeout: Duration,
    /// The breakers' hash.
    pub(crate) key: String,
    /// The queue's key prefix, the hash tag of every key here.
    pub(crate) prefix: String,
}

/// Drops ended leases and takes a slot if one is free, in one step.
/// KEYS[1]: the receiver's slots. ARGV: cap, token, lease (ms).
const TAKE_SLOT: &str = r"
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now_ms + tonumber(ARGV[3]), ARGV[2])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]) * 2)
  return 1
end
return 0
";

/// Hashed once: `EVALSHA` thereafter.
fn take_slot_script() -> &'static redis::Script {
    static SCRIPT: std::sync::OnceLock<redis::Script> = std::sync::OnceLock::new();
    SCRIPT.get_or_init(|| redis::Script::new(TAKE_SLOT))
}

impl RedisLimits {
    fn slots_key(&self, receiver: &str) -> String {
        format!("{{{}}}:slots:{receiver}", self.prefix)
    }
}

#[async_trait]
impl SharedLimits for RedisLimits {
    async fn take_slot(
        &self,
        receiver: &str,
        cap: u32,
        token: &str,
        lease: Duration,
    ) -> Result<bool, QueueError> {
        let key = self.slots_key(receiver);
        let lease_ms = u64::try_from(lease.as_millis()).unwrap_or(u64::MAX).max(1);
        let taken: i64 = self
            .pool
            .with_conn(self.timeout, |mut conn| async move {
                take_slot_script()
                    .key(&key)
                    .arg(cap)
                    .arg(token)
                    .arg(lease_ms)
                    .invoke_async(&mut conn)
                    .await
            })
            .await?;
        Ok(taken == 1)
    }

    async fn release_slot(&self, receiver: &str, token: &str) -> Result<(), QueueError> {
        let key = self.slots_key(receiver);
        let _: i64 = self
            .pool
            .with_conn(self.timeout, |mut conn| async move {
                redis::cmd("ZREM")
                    .arg(&key)
                    .arg(token)
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        Ok(())
    }

    async fn take_rate_token(
        &self,
        receiver: &str,
        per_s: u32,
        now: DateTime<Utc>,
    ) -> Result<bool, QueueError> {
        let key = format!("{{{}}}:rate:{receiver}:{}", self.prefix, now.timestamp());
        let (taken,): (i64,) = self
            .pool
            .with_conn(self.timeout, |mut conn| async move {
                redis::pipe()
                    .atomic()
                    .cmd("INCR")
                    .arg(&key)
                    .cmd("PEXPIRE")
                    .arg(&key)
                    .arg(2_000)
                    .ignore()
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        Ok(taken <= i64::from(per_s))
    }

    async fn open(&self, receiver: &str, until: DateTime<Utc>) -> Result<(), QueueError> {
        let key = self.key.clone();
        let _: i64 = self
            .pool
            .with_conn(self.timeout, |mut conn| async move {
                redis::cmd("HSET")
                    .arg(&key)
                    .arg(receiver)
                    .arg(until.timestamp_millis())
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        Ok(())
    }

    async fn close(&self, receiver: &str) -> Result<(), QueueError> {
        let key = self.key.clone();
        let _: i64 = self
            .pool
            .with_conn(self.timeout, |mut conn| async move {
                redis::cmd("HDEL")
                    .arg(&key)
                    .arg(receiver)
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        Ok(())
    }

    async fn open_now(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<(String, DateTime<Utc>)>, QueueError> {
        let key = self.key.clone();
        let all: Vec<(String, i64)> = self
            .pool
            .with_conn(self.timeout, |mut conn| {
                let key = key.clone();
                async move { redis::cmd("HGETALL").arg(&key).query_async(&mut conn).await }
            })
            .await?;
        let (open, ended): (Vec<_>, Vec<_>) = all
            .into_iter()
            .partition(|(_, until)| *until > now.timestamp_millis());
        if !ended.is_empty() {
            let names: Vec<String> = ended.into_iter().map(|(name, _)| name).collect();
            let _: i64 = self
                .pool
                .with_conn(self.timeout, |mut conn| async move {
                    redis::cmd("HDEL")
                        .arg(&key)
                        .arg(&names)
                        .query_async(&mut conn)
                        .await
                })
                .await?;
        }
        Ok(open
            .into_iter()
            .filter_map(|(name, until)| Some((name, DateTime::from_timestamp_millis(until)?)))
            .collect())
    }
}
