//! The durable store, one trait per aggregate. Every implementation is
//! the truth for what it holds; caches and queues are rebuilt from it.

use super::{Page, PageRequest, StoreError, TaskFilter};
use crate::{
    Account, AccountId, AlertDigest, AlertHook, AlertHookId, ApiKey, ApiKeyId, Attempt, AuditEntry,
    AuditFilter, AuditId, BucketClock, BulkFilter, Cancelled, CancelledMany, ClaimedTask,
    ConsoleSession, Disposition, Endpoint, EndpointName, EventType, FailedBucket, Inserted,
    KeyHash, NewEvent, NewTask, Published, Recorded, TargetUrl, Task, TaskDetail, TaskId,
    TaskStatus,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::time::Duration;

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
    /// lease is still held (`Recorded::applied` says whether it did). A
    /// task with an ordering key that ends lets the next of its key start,
    /// in the same transaction, claimed for the caller under a lease of
    /// its timeout plus `lease_margin` (`Recorded::promoted`).
    async fn complete(
        &self,
        claim: &ClaimedTask,
        attempt: &Attempt,
        next: Disposition,
        now: DateTime<Utc>,
        lease_margin: Duration,
    ) -> Result<Recorded, StoreError>;

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
    /// completes and is recorded, but changes nothing. Cancelling the
    /// task an ordering key waits on (running, or failed and blocking)
    /// lets the next of the key start, due now (`Cancelled::started`).
    async fn cancel(&self, id: TaskId, now: DateTime<Utc>) -> Result<Cancelled, StoreError>;

    /// An operator's re-send of a finished task: pending again, due now,
    /// with a fresh budget of attempts and its history kept. A task with
    /// an ordering key that no longer holds its key goes to the key's end
    /// (`waiting` when others are ahead of it).
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

    /// Endpoints that want this event: the enabled ones, and those
    /// disabled for failing (their tasks are stored held).
    async fn subscribers(
        &self,
        event_type: &EventType,
        app: Option<&str>,
    ) -> Result<Vec<Endpoint>, StoreError>;

    /// Stores the event and its tasks in one transaction. With a call id
    /// already taken, creates nothing and returns the first event's tasks.
    async fn publish(&self, event: &NewEvent, tasks: &[NewTask]) -> Result<Published, StoreError>;

    /// Makes the endpoint's waiting tasks due now, and its held ones
    /// pending again in acceptance order (after it was enabled again);
    /// returns their ids.
    async fn wake_endpoint(
        &self,
        name: &EndpointName,
        now: DateTime<Utc>,
    ) -> Result<Vec<TaskId>, StoreError>;

    /// Notes that the endpoint failed an attempt at `at`, unless it was
    /// already failing (then its earlier start stays).
    async fn mark_failing(&self, name: &EndpointName, at: DateTime<Utc>) -> Result<(), StoreError>;

    /// Notes that an attempt to the endpoint succeeded.
    async fn clear_failing(&self, name: &EndpointName) -> Result<(), StoreError>;

    /// Enabled endpoints failing every attempt since before `cutoff`.
    async fn failing_since_before(
        &self,
        cutoff: DateTime<Utc>,
    ) -> Result<Vec<Endpoint>, StoreError>;

    /// Disables the endpoint for failing, if it is still enabled and
    /// failing since before `cutoff`, and stores `messages` (the alert) in
    /// the same transaction. `false` when it no longer qualifies or another
    /// instance disabled it first (then nothing is stored).
    async fn disable_failing(
        &self,
        name: &EndpointName,
        cutoff: DateTime<Utc>,
        now: DateTime<Utc>,
        messages: &[NewTask],
    ) -> Result<bool, StoreError>;
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

    /// Cancels those of `ids` that are not finished; returns how many, and
    /// the tasks of their ordering keys that start (see `cancel`).
    async fn cancel_many(
        &self,
        ids: &[TaskId],
        now: DateTime<Utc>,
    ) -> Result<CancelledMany, StoreError>;

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

    /// How many tasks are due and not yet attempted, how long the oldest
    /// has waited, how many wait for a later retry.
    async fn backlog(&self, now: DateTime<Utc>) -> Result<crate::Backlog, StoreError>;

    /// Tasks accepted since `day_from` (of `source_app` when given), by
    /// status: how many since `day_from` and how many since `hour_from`
    /// (later). One read for the console's overview.
    async fn tally(
        &self,
        day_from: DateTime<Utc>,
        hour_from: DateTime<Utc>,
        source_app: Option<&str>,
    ) -> Result<Vec<(TaskStatus, u64, u64)>, StoreError>;

    /// Forgets re-send counts of buckets older than `before`.
    async fn expire_buckets(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;

    /// Deletes up to `limit` tasks in `status` (succeeded or failed) that
    /// finished before `before`, with their attempts; returns how many. A
    /// failed task that still holds its ordering key is kept.
    async fn purge(
        &self,
        status: TaskStatus,
        before: DateTime<Utc>,
        limit: u32,
    ) -> Result<u64, StoreError>;

    /// Forgets ordering keys with no task left on them and untouched since
    /// `before`; returns how many. A key that comes back starts afresh.
    async fn forget_idle_ordering_keys(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;
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

    /// Records `instance`'s attempts within the success rate window, as of
    /// `now`, and returns the sum over every instance whose count is newer
    /// than `fresh_since` (this one's included).
    async fn share_tally(
        &self,
        instance: &str,
        tally: crate::AttemptTally,
        now: DateTime<Utc>,
        fresh_since: DateTime<Utc>,
    ) -> Result<crate::AttemptTally, StoreError>;

    /// Whether operational condition `condition` fires, as last told.
    async fn ops_alert_firing(&self, condition: &str) -> Result<bool, StoreError>;

    /// Moves operational condition `condition` to `firing` and stores the
    /// messages telling it, in one transaction, when that is news: the
    /// condition changed, or it still fires and was last told more than
    /// `repeat` ago. `false` when it is not news, or another instance told
    /// it first (then nothing is stored).
    async fn claim_ops_alert(
        &self,
        condition: &str,
        firing: bool,
        now: DateTime<Utc>,
        repeat: chrono::TimeDelta,
        messages: &[NewTask],
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

/// API keys. The store holds a key's hash, never its secret.
#[async_trait]
pub trait KeyStore: Send + Sync + 'static {
    async fn create_key(&self, key: &ApiKey, hash: &KeyHash) -> Result<(), StoreError>;

    /// Every key, revoked ones included, newest first.
    async fn keys(&self) -> Result<Vec<ApiKey>, StoreError>;

    /// The key whose secret hashes to `hash`, live or not.
    async fn key_by_hash(&self, hash: &KeyHash) -> Result<Option<ApiKey>, StoreError>;

    /// Marks the key revoked at `at` (once: a second revocation keeps the
    /// first time); `NotFound` when there is no such key.
    async fn revoke_key(&self, id: ApiKeyId, at: DateTime<Utc>) -> Result<ApiKey, StoreError>;

    /// Records a use of the key.
    async fn touch_key(&self, id: ApiKeyId, at: DateTime<Utc>) -> Result<(), StoreError>;
}

/// Console accounts and their sessions.
#[async_trait]
pub trait AccountStore: Send + Sync + 'static {
    /// `AlreadyExists` when the username is taken.
    async fn create_account(
        &self,
        account: &Account,
        password_hash: &str,
    ) -> Result<(), StoreError>;

    /// Oldest first.
    async fn accounts(&self) -> Result<Vec<Account>, StoreError>;

    /// The account and its password hash, disabled or not.
    async fn account_by_name(
        &self,
        username: &str,
    ) -> Result<Option<(Account, String)>, StoreError>;

    /// Disables (`Some(at)`) or enables (`None`) an account; disabling also
    /// ends its sessions. `NotFound` when there is no such account.
    async fn set_account_disabled(
        &self,
        id: AccountId,
        at: Option<DateTime<Utc>>,
    ) -> Result<Account, StoreError>;

    async fn set_account_password(
        &self,
        id: AccountId,
        password_hash: &str,
    ) -> Result<(), StoreError>;

    async fn note_login(&self, id: AccountId, at: DateTime<Utc>) -> Result<(), StoreError>;

    async fn create_session(&self, session: &ConsoleSession) -> Result<(), StoreError>;

    async fn session(&self, token_hash: &KeyHash) -> Result<Option<ConsoleSession>, StoreError>;

    async fn touch_session(
        &self,
        token_hash: &KeyHash,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    async fn delete_session(&self, token_hash: &KeyHash) -> Result<(), StoreError>;

    /// Deletes sessions last seen before `before`; returns how many.
    async fn prune_sessions(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;
}

/// The audit log: appended to, listed, and pruned by its own retention.
#[async_trait]
pub trait AuditStore: Send + Sync + 'static {
    async fn append_audit(&self, entry: &AuditEntry) -> Result<(), StoreError>;

    /// Newest first.
    async fn audit(
        &self,
        filter: &AuditFilter,
        page: PageRequest<AuditId>,
    ) -> Result<Page<AuditEntry, AuditId>, StoreError>;

    /// Deletes entries older than `before`, at most `limit`; returns how many.
    async fn prune_audit(&self, before: DateTime<Utc>, limit: u32) -> Result<u64, StoreError>;
}
