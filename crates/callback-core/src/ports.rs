//! The ports: what the delivery engine and the API need from a task store,
//! a delay queue and a dispatcher. Adapters implement these; consumers hold
//! `Arc<dyn ...>` and never learn which backend is behind them.

use crate::{
    AlertDigest, AlertHook, AlertHookId, Attempt, BucketClock, BulkFilter, ClaimedTask,
    Disposition, Endpoint, EndpointName, EventType, FailedBucket, Inserted, NewEvent, NewTask,
    Published, SigningSecret, TargetUrl, Task, TaskDetail, TaskId, TaskStatus,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::time::Duration;

type Cause = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// Something with the same unique name exists already.
    #[error("already exists")]
    AlreadyExists,
    /// Someone else changed it first.
    #[error("{0}")]
    Conflict(String),
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
    async fn insert(&self, task: NewTask) -> Result<Inserted, StoreError>;

    /// Commits many tasks in one transaction, all or nothing, answering in
    /// order. A task whose idempotency key is taken answers the existing
    /// task and creates nothing. Keys must not repeat within the batch.
    async fn insert_batch(&self, tasks: Vec<NewTask>) -> Result<Vec<Inserted>, StoreError>;

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

    /// Gives a claimed task back without an attempt, due at `until`: its
    /// receiver is paused, disabled or at its limit. Nothing is recorded and
    /// no attempt is used up.
    async fn defer(
        &self,
        claim: &ClaimedTask,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

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

/// Endpoints and the events published to them.
#[async_trait]
pub trait EndpointStore: Send + Sync + 'static {
    /// `AlreadyExists` when the name is taken.
    async fn create_endpoint(&self, endpoint: &Endpoint) -> Result<(), StoreError>;

    async fn endpoint(&self, name: &EndpointName) -> Result<Option<Endpoint>, StoreError>;

    /// By name, after `after`, at most `limit`.
    async fn endpoints(
        &self,
        after: Option<&EndpointName>,
        limit: u32,
    ) -> Result<Vec<Endpoint>, StoreError>;

    /// Replaces every field but the name and creation time; `NotFound` when
    /// there is no such endpoint.
    async fn update_endpoint(&self, endpoint: &Endpoint) -> Result<(), StoreError>;

    /// Deletes the endpoint and cancels its unfinished tasks, in one
    /// transaction.
    async fn delete_endpoint(
        &self,
        name: &EndpointName,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Enabled endpoints that want this event.
    async fn subscribers(
        &self,
        event_type: &EventType,
        app: Option<&str>,
    ) -> Result<Vec<Endpoint>, StoreError>;

    /// Stores the event and its tasks in one transaction. With a call id
    /// already taken, creates nothing and returns the first event's tasks.
    async fn publish(&self, event: &NewEvent, tasks: &[NewTask]) -> Result<Published, StoreError>;

    /// Makes the endpoint's waiting tasks due now (after it was enabled
    /// again); returns their ids.
    async fn wake_endpoint(
        &self,
        name: &EndpointName,
        now: DateTime<Utc>,
    ) -> Result<Vec<TaskId>, StoreError>;
}

/// What operators do to many tasks at once, in batches: never the whole set
/// in memory.
#[async_trait]
pub trait OperatorStore: Send + Sync + 'static {
    async fn count_matching(&self, filter: &BulkFilter) -> Result<u64, StoreError>;

    /// Ids of matching tasks after `after`, in id order, at most `limit`.
    async fn matching_ids(
        &self,
        filter: &BulkFilter,
        after: Option<TaskId>,
        limit: u32,
    ) -> Result<Vec<TaskId>, StoreError>;

    /// Re-sends those of `ids` that are finished (pending again, due now,
    /// fresh attempts), to `target_url` instead of their own when given.
    /// Returns the ids re-sent.
    async fn resend_many(
        &self,
        ids: &[TaskId],
        target_url: Option<&TargetUrl>,
        now: DateTime<Utc>,
    ) -> Result<Vec<TaskId>, StoreError>;

    /// Cancels those of `ids` that are not finished; returns how many.
    async fn cancel_many(&self, ids: &[TaskId], now: DateTime<Utc>) -> Result<u64, StoreError>;

    /// Buckets of failed tasks since `since`, newest first.
    async fn failed_buckets(
        &self,
        clock: BucketClock,
        since: DateTime<Utc>,
    ) -> Result<Vec<FailedBucket>, StoreError>;

    /// Counts one more re-send of the bucket; with `expected`, only if it
    /// was re-sent exactly that many times before (`InvalidState`
    /// otherwise, so two operators do not re-send it twice). Returns the
    /// new count.
    async fn count_bucket_retry(
        &self,
        start: DateTime<Utc>,
        expected: Option<u32>,
    ) -> Result<u32, StoreError>;

    /// Forgets re-send counts of buckets older than `before`.
    async fn expire_buckets(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;

    /// Deletes up to `limit` tasks in `status` (succeeded or failed) that
    /// finished before `before`, with their attempts; returns how many.
    async fn purge(
        &self,
        status: TaskStatus,
        before: DateTime<Utc>,
        limit: u32,
    ) -> Result<u64, StoreError>;
}

/// Alert hooks, and the record of what each has been told.
#[async_trait]
pub trait AlertStore: Send + Sync + 'static {
    async fn create_hook(&self, hook: &AlertHook) -> Result<(), StoreError>;
    async fn hook(&self, id: AlertHookId) -> Result<Option<AlertHook>, StoreError>;
    async fn hooks(&self) -> Result<Vec<AlertHook>, StoreError>;
    async fn update_hook(&self, hook: &AlertHook) -> Result<(), StoreError>;
    async fn delete_hook(&self, id: AlertHookId) -> Result<(), StoreError>;

    /// Until when the hook has been told of failures, and when its last
    /// message was queued (none yet: `None`).
    async fn alert_state(
        &self,
        id: AlertHookId,
    ) -> Result<(DateTime<Utc>, Option<DateTime<Utc>>), StoreError>;

    /// Failures after `since` up to `until` that the hook's filters let
    /// through, leaving out alert tasks; `None` when there are none.
    async fn failures(
        &self,
        hook: &AlertHook,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Option<AlertDigest>, StoreError>;

    /// Moves the hook's watermark from `since` to `until` and stores the
    /// alert task, in one transaction. `false` when another instance moved
    /// it first (then nothing is stored).
    async fn claim_alert(
        &self,
        id: AlertHookId,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        task: &NewTask,
    ) -> Result<bool, StoreError>;
}

/// Which inbound callbacks a search returns; every field given must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InboundFilter {
    pub source: Option<String>,
    pub namespace: Option<crate::Namespace>,
    pub key: Option<crate::RouteKey>,
    pub status: Option<crate::InboundStatus>,
}

/// Routes, and every inbound callback received.
#[async_trait]
pub trait InboundStore: Send + Sync + 'static {
    /// Creates or replaces the route of (namespace, key); `true` when new.
    async fn upsert_route(&self, route: &crate::Route) -> Result<bool, StoreError>;

    /// The route, expired ones included (the caller checks `is_live`).
    async fn route(
        &self,
        namespace: &crate::Namespace,
        key: &crate::RouteKey,
    ) -> Result<Option<crate::Route>, StoreError>;

    /// Routes by (namespace, key) after `after`, at most `limit`.
    async fn routes(
        &self,
        namespace: Option<&crate::Namespace>,
        after: Option<(crate::Namespace, crate::RouteKey)>,
        limit: u32,
    ) -> Result<Vec<crate::Route>, StoreError>;

    async fn delete_route(
        &self,
        namespace: &crate::Namespace,
        key: &crate::RouteKey,
    ) -> Result<(), StoreError>;

    /// Records a callback and, when it is forwarded, stores its task, in
    /// one transaction: nothing is acknowledged that is not stored.
    async fn receive(
        &self,
        record: &crate::InboundRecord,
        task: Option<&NewTask>,
    ) -> Result<(), StoreError>;

    async fn inbound_record(
        &self,
        id: uuid::Uuid,
    ) -> Result<Option<crate::InboundRecord>, StoreError>;

    /// Newest first, older than `before`, at most `limit`.
    async fn inbound(
        &self,
        filter: &InboundFilter,
        before: Option<uuid::Uuid>,
        limit: u32,
    ) -> Result<Vec<crate::InboundRecord>, StoreError>;

    /// Marks an unrouted (or any, with `any_status`) record forwarded by
    /// `task` and stores the task, in one transaction; `false` when it was
    /// not in a state to forward.
    async fn forward(
        &self,
        id: uuid::Uuid,
        task: &NewTask,
        any_status: bool,
    ) -> Result<bool, StoreError>;
}

/// Plain keys in Redis: the route cache, and routes other services write as
/// plain keys.
#[async_trait]
pub trait KeyValue: Send + Sync + 'static {
    async fn get(&self, key: &str) -> Result<Option<String>, QueueError>;
    async fn set_ex(&self, key: &str, value: &str, ttl: Duration) -> Result<(), QueueError>;
    async fn del(&self, key: &str) -> Result<(), QueueError>;
}

/// How a request is signed at send time, with the current secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signing {
    /// Standard Webhooks headers.
    Standard(SigningSecret),
    /// DingTalk robot: `timestamp` and `sign` query parameters.
    Dingtalk(String),
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

/// What an operator sees of one receiver's health on this instance.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ReceiverStatus {
    /// `endpoint:NAME`, or a URL origin for plain tasks.
    pub receiver: String,
    /// `closed`, `open` or `half_open`.
    pub breaker: &'static str,
    pub open_until: Option<DateTime<Utc>>,
    /// Failed attempts within the breaker's window.
    pub recent_failures: u32,
    /// Times the breaker opened in the last 24 hours.
    pub openings_24h: u32,
    pub in_flight: u32,
}

impl ReceiverStatus {
    /// A receiver this instance has nothing on.
    pub fn idle(receiver: String) -> Self {
        Self {
            receiver,
            breaker: "closed",
            open_until: None,
            recent_failures: 0,
            openings_24h: 0,
            in_flight: 0,
        }
    }
}

/// Delivery's view of its receivers, for the API.
pub trait ReceiverWatch: Send + Sync + 'static {
    fn endpoint_status(&self, name: &EndpointName) -> ReceiverStatus;
    /// Receivers whose breaker is open or half open.
    fn open_breakers(&self) -> Vec<ReceiverStatus>;
    /// The endpoint changed: drop what is cached of it.
    fn forget_endpoint(&self, name: &EndpointName);
    /// The alert hook changed: drop what is cached of it.
    fn forget_alert_hook(&self, id: AlertHookId);
}

/// A synchronous call to an endpoint, made now and answered within its
/// timeout.
#[derive(Debug, Clone)]
pub struct InvokeRequest {
    pub url: crate::TargetUrl,
    pub headers: crate::HeaderList,
    pub body: crate::Body,
    /// `webhook-id`, and how to sign.
    pub signing: Option<(String, Signing)>,
    pub timeout: Duration,
}

/// What a synchronous call came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvokeOutcome {
    /// The endpoint answered with a status below 500.
    Answered {
        status: u16,
        body: Vec<u8>,
        duration_ms: u64,
    },
    /// A timeout, a connection error or a 5xx.
    Failed {
        status: Option<u16>,
        error: String,
        duration_ms: u64,
    },
}

#[async_trait]
pub trait Invoke: Send + Sync + 'static {
    async fn invoke(&self, request: InvokeRequest) -> InvokeOutcome;
}

/// Events of delivery an operator must hear of besides failed tasks.
pub trait Notices: Send + Sync + 'static {
    /// A receiver's circuit breaker opened for `pause`. Never blocks.
    fn breaker_opened(&self, receiver: &str, pause: Duration, openings_24h: u32);
}

/// How the API hands a freshly committed task to delivery.
#[async_trait]
pub trait Dispatch: Send + Sync + 'static {
    /// The task is committed and due at `due`. Never fails: a task that
    /// cannot be handed over now waits in the store and is found again.
    async fn accepted(&self, id: TaskId, due: DateTime<Utc>);

    /// Many tasks committed together, each due at its time.
    async fn accepted_many(&self, tasks: &[(TaskId, DateTime<Utc>)]) {
        for &(id, due) in tasks {
            self.accepted(id, due).await;
        }
    }

    /// Holds a free worker for a task due now that is about to be stored,
    /// so that it can be stored already leased to that worker and delivered
    /// without a claim. `None` when every worker is busy: store the task
    /// pending and call `accepted`.
    fn reserve(&self, _timeout_ms: u32) -> Option<Box<dyn Handoff>> {
        None
    }
}

/// A worker held for one task. Dropping it unused frees the worker.
pub trait Handoff: Send {
    /// The lease to store the task under.
    fn lease(&self) -> crate::Lease;
    /// The task is committed under `lease()`: deliver it.
    fn deliver(self: Box<Self>, task: Task);
}
