//! Accelerators in front of the store: the delay queue and plain keys.

use super::QueueError;
use crate::TaskId;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::time::Duration;

/// Plain keys in Redis: the route cache, routes other services write as
/// plain keys, and the flags by which one instance of several claims a job
/// while the store cannot be asked.
#[async_trait]
pub trait KeyValue: Send + Sync + 'static {
    async fn get(&self, key: &str) -> Result<Option<String>, QueueError>;
    async fn set_ex(&self, key: &str, value: &str, ttl: Duration) -> Result<(), QueueError>;
    async fn del(&self, key: &str) -> Result<(), QueueError>;
    /// Sets `key` for `ttl` unless it is set; `true` when this call set it.
    async fn set_nx(&self, key: &str, value: &str, ttl: Duration) -> Result<bool, QueueError>;
}

/// An index of task ids by due time. It only accelerates delivery: the store
/// stays the truth, and whatever a queue loses is found again there.
///
/// A queue may keep taken ids "in flight" until they are acknowledged, so
/// that ids taken by a process that died come back; the store's lease is
/// what guarantees one delivery at a time, never the queue.
#[async_trait]
pub trait DelayQueue: Send + Sync + 'static {
    /// A short name of the backend, for readiness and logs.
    fn backend(&self) -> &'static str;

    /// Succeeds when the queue answers.
    async fn ping(&self) -> Result<(), QueueError>;

    /// Puts `id` in the queue, due at `due`, replacing any entry it had,
    /// in flight or not. Used after an attempt to schedule the next one.
    async fn schedule(&self, id: TaskId, due: DateTime<Utc>) -> Result<(), QueueError>;

    /// `schedule` for each entry. A queue that can put many in with one
    /// call does so: tasks put off together (a busy receiver's, retries
    /// after an outage) are scheduled together.
    async fn schedule_many(&self, entries: &[(TaskId, DateTime<Utc>)]) -> Result<(), QueueError> {
        for &(id, due) in entries {
            self.schedule(id, due).await?;
        }
        Ok(())
    }

    /// Puts back entries the store knows and the queue may have lost,
    /// leaving alone ids that someone took and still holds.
    async fn restore(&self, entries: &[(TaskId, DateTime<Utc>)]) -> Result<(), QueueError>;

    /// Puts in ids of new tasks, which nobody can have taken yet. A queue
    /// that checks each restored id for a holder can skip that check here;
    /// by default this is `restore`.
    async fn add_new(&self, entries: &[(TaskId, DateTime<Utc>)]) -> Result<(), QueueError> {
        self.restore(entries).await
    }

    /// Removes and returns up to `limit` ids due by `now`.
    async fn take_due(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<TaskId>, QueueError>;

    /// Says attempts for these taken ids are finished, so a queue that
    /// keeps taken ids in flight (to return them if their taker dies) drops
    /// them. Delivery gathers the ids of attempts that end together into
    /// one call.
    async fn ack(&self, ids: &[TaskId]) -> Result<(), QueueError>;

    /// Returns when an id may have become due, or after `max_wait`.
    async fn wait(&self, max_wait: Duration);
}

/// Receiver limits shared by the instances of a cluster (Redis): a
/// receiver one instance paused is paused on all of them, and a rate limit
/// holds for the cluster, not for each instance. Without it each instance
/// keeps its own.
#[async_trait]
pub trait SharedLimits: Send + Sync + 'static {
    /// Takes one of the `per_s` requests the receiver may get in the
    /// second of `now`, across the cluster; `false` when all are taken.
    async fn take_rate_token(
        &self,
        receiver: &str,
        per_s: u32,
        now: DateTime<Utc>,
    ) -> Result<bool, QueueError>;

    /// Sets how many of the receiver's `cap` attempts in flight `holder`
    /// (an instance) may have, across the cluster: `want`, or what the
    /// other holders leave of the cap, whichever is less. With `grow`, an
    /// allowance is never lowered (concurrent growers cannot shrink each
    /// other). The allowance lasts `lease` unless set again, so an instance
    /// that dies gives its share back. Returns the allowance.
    async fn allow(
        &self,
        receiver: &str,
        cap: u32,
        holder: &str,
        want: u32,
        lease: Duration,
        grow: bool,
    ) -> Result<u32, QueueError>;

    /// The receiver is paused until `until`.
    async fn open(&self, receiver: &str, until: DateTime<Utc>) -> Result<(), QueueError>;

    /// The receiver answers again.
    async fn close(&self, receiver: &str) -> Result<(), QueueError>;

    /// The receivers paused beyond `now`, each with the end of its pause.
    async fn open_now(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<(String, DateTime<Utc>)>, QueueError>;
}
