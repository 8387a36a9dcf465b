//! The ports: what the delivery engine and the API need from a task store,
//! a delay queue and a dispatcher. Adapters implement these; consumers hold
//! `Arc<dyn ...>` and never learn which backend is behind them.

use crate::{
    Attempt, ClaimedTask, Disposition, Inserted, NewTask, Task, TaskDetail, TaskId, TaskStatus,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::time::Duration;

type Cause = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("task not found")]
    NotFound,
    /// The operation is not allowed from the task's current state.
    #[error("the task is {current}")]
    InvalidState { current: TaskStatus },
    /// The store could not be reached or refused the operation; nothing was
    /// written.
    #[error("the task store is unavailable")]
    Unavailable(#[source] Cause),
    /// A stored row could not be read back into a task.
    #[error("stored task data is invalid: {0}")]
    Corrupt(String),
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("the delay queue is unavailable")]
    Unavailable(#[source] Cause),
}

/// Which tasks a listing returns; every field given must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskFilter {
    pub status: Option<TaskStatus>,
    pub source_app: Option<String>,
    pub target_app: Option<String>,
}

/// One page of a newest-first listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: u32,
    /// Continue with tasks older than this one.
    pub after: Option<TaskId>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Where the next page starts; `None` on the last page.
    pub next_cursor: Option<TaskId>,
}

/// The durable task store: the single source of truth.
#[async_trait]
pub trait TaskStore: Send + Sync + 'static {
    /// Succeeds when the store answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Commits a new task. Returns only after the commit, so the caller may
    /// acknowledge it. With an idempotency key already taken, returns the
    /// existing task and creates nothing.
    async fn insert(&self, task: &NewTask) -> Result<Inserted, StoreError>;

    async fn get(&self, id: TaskId) -> Result<Option<TaskDetail>, StoreError>;

    async fn list(&self, filter: &TaskFilter, page: PageRequest) -> Result<Page<Task>, StoreError>;

    /// Takes a due task for one attempt, by a conditional update: of any
    /// number of workers and instances trying at once, exactly one gets
    /// `Some`. The lease lasts the task's own timeout plus `lease_margin`;
    /// a task whose lease expired (its worker died) is due again.
    async fn claim(
        &self,
        id: TaskId,
        now: DateTime<Utc>,
        lease_margin: Duration,
    ) -> Result<Option<ClaimedTask>, StoreError>;

    /// Records the attempt and moves the task on, in one transaction. The
    /// attempt is always recorded; the state change applies only while the
    /// lease is still held (returns whether it did).
    async fn complete(
        &self,
        claim: &ClaimedTask,
        attempt: &Attempt,
        next: Disposition,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Gives a claimed task back at shutdown, due at once. The interrupted
    /// attempt is recorded (the receiver may have seen it) but does not use
    /// up one of the task's attempts.
    async fn release(
        &self,
        claim: &ClaimedTask,
        interrupted: &Attempt,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Ids of tasks due by `now` and not leased (or with an expired lease),
    /// the longest-waiting first.
    async fn due(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<TaskId>, StoreError>;

    /// Tasks due after `now`, soonest first: to rebuild an in-process delay
    /// queue at start.
    async fn scheduled(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<(TaskId, DateTime<Utc>)>, StoreError>;

    /// Stops a task that is not finished. An attempt already in flight
    /// completes and is recorded, but changes nothing.
    async fn cancel(&self, id: TaskId, now: DateTime<Utc>) -> Result<Task, StoreError>;

    /// An operator's re-send of a finished task: pending again, due now,
    /// with a fresh budget of attempts and its history kept.
    async fn resend(&self, id: TaskId, now: DateTime<Utc>) -> Result<Task, StoreError>;
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

    /// Puts back entries the store knows and the queue may have lost,
    /// leaving alone ids that someone took and still holds.
    async fn restore(&self, entries: &[(TaskId, DateTime<Utc>)]) -> Result<(), QueueError>;

    /// Removes and returns up to `limit` ids due by `now`.
    async fn take_due(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<TaskId>, QueueError>;

    /// Says an attempt for a taken id is finished, so a queue that keeps
    /// taken ids in flight (to return them if their taker dies) drops it.
    async fn ack(&self, id: TaskId) -> Result<(), QueueError>;

    /// Returns when an id may have become due, or after `max_wait`.
    async fn wait(&self, max_wait: Duration);
}

/// How the API hands a freshly committed task to delivery.
#[async_trait]
pub trait Dispatch: Send + Sync + 'static {
    /// The task is committed and due at `due`. Never fails: a task that
    /// cannot be handed over now waits in the store and is found again.
    async fn accepted(&self, id: TaskId, due: DateTime<Utc>);
}
