//! Plain Redis keys (`KeyValue`) on the same connection as the delay
//! queue: the route cache shared by instances, and routes other services
//! write as plain keys.

use crate::connection::RedisPool;
use async_trait::async_trait;
use callback_core::{KeyValue, QueueError};
use deadpool_redis::redis;
use std::time::Duration;

/// Plain keys on the queue's Redis: the route cache, and routes that other
/// services write as plain keys.
#[derive(Clone)]
pub struct RedisKeyValue {
    pub(crate) pool: RedisPool,
    pub(crate) timeout: Duration,
}

#[async_trait]
impl KeyValue for RedisKeyValue {
    async fn get(&self, key: &str) -> Result<Option<String>, QueueError> {
        Ok(self
            .pool
            .with_conn(self.timeout, |mut conn| async move {
                redis::cmd("GET").arg(key).query_async(&mut conn).await
            })
            .await?)
    }

    async fn set_ex(&self, key: &str, value: &str, ttl: Duration) -> Result<(), QueueError> {
        let _: () = self
            .pool
            .with_conn(self.timeout, |mut conn| async move {
                redis::cmd("SET")
                    .arg(key)
                    .arg(value)
                    .arg("PX")
                    .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1))
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        Ok(())
    }

    async fn set_nx(&self, key: &str, value: &str, ttl: Duration) -> Result<bool, QueueError> {
        let set: Option<String> = self
            .pool
            .with_conn(self.timeout, |mut conn| async move {
                redis::cmd("SET")
                    .arg(key)
                    .arg(value)
                    .arg("NX")
                    .arg("PX")
                    .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1))
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        Ok(set.is_some())
    }

    async fn del(&self, key: &str) -> Result<(), QueueError> {
        let _: i64 = self
            .pool
            .with_conn(self.timeout, |mut conn| async move {
                redis::cmd("DEL").arg(key).query_async(&mut conn).await
            })
            .await?;
        Ok(())
    }
}
