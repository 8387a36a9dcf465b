//! Connections to Redis, one server or a cluster: one multiplexed
//! connection shared by every call, each call bounded by a timeout, and the
//! errors of this crate.

use callback_core::{lock, QueueError};
use deadpool_redis::redis::aio::ConnectionLike;
use deadpool_redis::redis::{self, Cmd, Pipeline, RedisFuture, Value};
use deadpool_redis::{PoolConfig, Runtime};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Where Redis is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisTopology {
    /// One server (or a proxy): `redis://[:password@]host:port[/db]`.
    Single(String),
    /// A Redis Cluster, found through these seed nodes.
    Cluster(Vec<String>),
}

/// Why a Redis queue could not be built or could not answer.
#[derive(Debug, thiserror::Error)]
pub enum RedisQueueError {
    #[error("redis.key_prefix must be 1 to 64 characters without braces, not {0:?}")]
    InvalidPrefix(String),
    #[error("a Redis Cluster needs at least one node URL")]
    NoClusterNodes,
    #[error("cannot build the Redis connection pool")]
    Pool(#[source] deadpool_redis::CreatePoolError),
    #[error("no Redis connection")]
    Connection(#[source] deadpool_redis::PoolError),
    #[error("Redis refused the command")]
    Command(#[source] redis::RedisError),
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("Redis returned a member that is not a task id: {0:?}")]
    BadMember(String),
}

impl From<RedisQueueError> for QueueError {
    fn from(err: RedisQueueError) -> Self {
        QueueError::Unavailable(Box::new(err))
    }
}

/// Connections to one server or to a cluster.
///
/// Every call shares one multiplexed connection, which pipelines concurrent
/// commands over one socket. The pool only makes that connection: checking
/// a connection out of it for each call would cost a `PING` round trip
/// every time. A connection that fails or hangs is dropped, and the next
/// call makes a new one.
#[derive(Clone)]
pub(crate) struct RedisPool {
    kind: PoolKind,
    shared: Arc<Mutex<Option<SharedConnection>>>,
}

#[derive(Clone)]
enum PoolKind {
    Single(deadpool_redis::Pool),
    Cluster(deadpool_redis::cluster::Pool),
}

/// A connection of either kind; the scripts run on both alike.
#[derive(Clone)]
pub(crate) enum SharedConnection {
    Single(redis::aio::MultiplexedConnection),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl ConnectionLike for SharedConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

impl RedisPool {
    pub(crate) fn build(
        topology: &RedisTopology,
        config: PoolConfig,
    ) -> Result<Self, RedisQueueError> {
        let kind = match topology {
            RedisTopology::Single(url) => {
                let mut single = deadpool_redis::Config::from_url(url.clone());
                single.pool = Some(config);
                single
                    .create_pool(Some(Runtime::Tokio1))
                    .map(PoolKind::Single)
                    .map_err(RedisQueueError::Pool)?
            }
            RedisTopology::Cluster(urls) => {
                if urls.is_empty() {
                    return Err(RedisQueueError::NoClusterNodes);
                }
                let mut cluster = deadpool_redis::cluster::Config::from_urls(urls.clone());
                cluster.pool = Some(config);
                cluster
                    .create_pool(Some(Runtime::Tokio1))
                    .map(PoolKind::Cluster)
                    .map_err(RedisQueueError::Pool)?
            }
        };
        Ok(Self {
            kind,
            shared: Arc::new(Mutex::new(None)),
        })
    }

    fn shared(&self) -> std::sync::MutexGuard<'_, Option<SharedConnection>> {
        // Only ever replaced whole; a panic cannot leave it half-written.
        lock(&self.shared)
    }

    async fn connection(&self) -> Result<SharedConnection, RedisQueueError> {
        if let Some(connection) = self.shared().clone() {
            return Ok(connection);
        }
        let connection = match &self.kind {
            PoolKind::Single(pool) => pool
                .get()
                .await
                .map(|c| SharedConnection::Single(deadpool_redis::Connection::take(c))),
            PoolKind::Cluster(pool) => pool
                .get()
                .await
                .map(|c| SharedConnection::Cluster(deadpool_redis::cluster::Connection::take(c))),
        }
        .map_err(RedisQueueError::Connection)?;
        *self.shared() = Some(connection.clone());
        Ok(connection)
    }

    /// Runs one operation on the shared connection within `limit`.
    pub(crate) async fn with_conn<T, F, Fut>(
        &self,
        limit: Duration,
        op: F,
    ) -> Result<T, RedisQueueError>
    where
        F: FnOnce(SharedConnection) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let work = async {
            let conn = self.connection().await?;
            op(conn).await.map_err(|err| {
                if err.is_unrecoverable_error() || err.is_io_error() || err.is_connection_dropped()
                {
                    self.shared().take();
                }
                RedisQueueError::Command(err)
            })
        };
        match tokio::time::timeout(limit, work).await {
            Ok(result) => result,
            Err(_) => {
                // A hanging server: the next call tries a fresh connection.
                self.shared().take();
                Err(RedisQueueError::Timeout(limit))
            }
        }
    }
}
