//! Receiver limits shared by the cluster.
//!
//! - Breakers: one hash, `{prefix}:breakers`, receiver to the end of its
//!   pause (epoch ms). Instances read it whole every second; ended pauses
//!   are pruned as they are read.
//! - Rate limits: a counter per receiver and second,
//!   `{prefix}:rate:{receiver}:{epoch second}`, expiring after two
//!   seconds. A request may go while the counter is within the limit.
//! - In-flight caps: a hash per receiver, `{prefix}:slots:{receiver}`, of
//!   each instance's allowance (how many attempts it may have in flight)
//!   and when it ends (epoch ms, Redis's own clock). Allowances sum to at
//!   most the cap; an instance grows its own in chunks when it needs more
//!   and sets it to what it uses every second, so Redis is asked about
//!   once a second per busy receiver, not once per attempt.

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

/// Drops ended allowances and sets the holder's, in one step.
/// KEYS[1]: the receiver's allowances, holder to "count:expiry_ms".
/// ARGV: cap, holder, want, lease (ms), "grow" or "set".
const ALLOW: &str = r"
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local all = redis.call('HGETALL', KEYS[1])
local others, mine = 0, 0
for i = 1, #all, 2 do
  local value = all[i + 1]
  local sep = string.find(value, ':', 1, true)
  local count = tonumber(string.sub(value, 1, sep - 1))
  local expiry = tonumber(string.sub(value, sep + 1))
  if expiry <= now_ms then
    redis.call('HDEL', KEYS[1], all[i])
  elseif all[i] == ARGV[2] then
    mine = count
  else
    others = others + count
  end
end
local grant = math.min(tonumber(ARGV[3]), math.max(tonumber(ARGV[1]) - others, 0))
if ARGV[5] == 'grow' and grant < mine then
  grant = mine
end
if grant > 0 then
  redis.call('HSET', KEYS[1], ARGV[2], grant .. ':' .. (now_ms + tonumber(ARGV[4])))
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[4]) * 2)
else
  redis.call('HDEL', KEYS[1], ARGV[2])
end
return grant
";

/// Hashed once: `EVALSHA` thereafter.
fn allow_script() -> &'static redis::Script {
    static SCRIPT: std::sync::OnceLock<redis::Script> = std::sync::OnceLock::new();
    SCRIPT.get_or_init(|| redis::Script::new(ALLOW))
}

impl RedisLimits {
    fn slots_key(&self, receiver: &str) -> String {
        format!("{{{}}}:slots:{receiver}", self.prefix)
    }
}

#[async_trait]
impl SharedLimits for RedisLimits {
    async fn allow(
        &self,
        receiver: &str,
        cap: u32,
        holder: &str,
        want: u32,
        lease: Duration,
        grow: bool,
    ) -> Result<u32, QueueError> {
        let key = self.slots_key(receiver);
        let lease_ms = u64::try_from(lease.as_millis()).unwrap_or(u64::MAX).max(1);
        let granted: i64 = self
            .pool
            .with_conn(self.timeout, |mut conn| async move {
                allow_script()
                    .key(&key)
                    .arg(cap)
                    .arg(holder)
                    .arg(want)
                    .arg(lease_ms)
                    .arg(if grow { "grow" } else { "set" })
                    .invoke_async(&mut conn)
                    .await
            })
            .await?;
        Ok(u32::try_from(granted).unwrap_or(0))
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
