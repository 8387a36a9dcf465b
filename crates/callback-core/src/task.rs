//! Tasks, their states and their attempts.

use crate::{
    Body, EndpointName, EventType, Expectation, HeaderList, Method, QueryList, RetrySchedule,
    TargetUrl,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

/// A task's id: a UUIDv7, so ids sort by creation time and "newest first"
/// is an index scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TaskId(Uuid);

impl TaskId {
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    pub fn from_uuid(uuid: Uuid) -> Self {
        Self(uuid)
    }

    pub fn as_uuid(&self) -> Uuid {
        self.0
    }

    /// The smallest id a task made at `at` or later can have: every task
    /// made before `at` has a smaller id. A scan for tasks made before a
    /// time is then a range on the primary key, or on an index that ends
    /// with it. Times before 1970 give the smallest id of all.
    pub fn first_made_at(at: DateTime<Utc>) -> Self {
        let millis = u64::try_from(at.timestamp_millis()).unwrap_or(0);
        Self(uuid::Builder::from_unix_timestamp_millis(millis, &[0; 10]).into_uuid())
    }
}

impl Default for TaskId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for TaskId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self)
    }
}

/// Where a task is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// Accepted, no attempt finished yet.
    Pending,
    /// An attempt is in flight under a lease.
    Delivering,
    /// At least one attempt failed; the next is scheduled.
    Retrying,
    Succeeded,
    /// Every attempt failed.
    Failed,
    Cancelled,
    /// Kept without attempts while its endpoint is disabled for failing;
    /// pending again, in acceptance order, once it is enabled.
    Held,
    /// Accepted with an ordering key, behind an earlier task of that key:
    /// pending, due at once, when the one before it ends.
    Waiting,
}

impl TaskStatus {
    pub const ALL: [TaskStatus; 8] = [
        Self::Pending,
        Self::Delivering,
        Self::Retrying,
        Self::Succeeded,
        Self::Failed,
        Self::Cancelled,
        Self::Held,
        Self::Waiting,
    ];
    /// States from which an operator may cancel a task. A failed task
    /// that holds its ordering key (`OnFailure::Block`) may be cancelled
    /// too, to let the key move on.
    pub const CANCELLABLE: [TaskStatus; 5] = [
        Self::Pending,
        Self::Retrying,
        Self::Delivering,
        Self::Held,
        Self::Waiting,
    ];
    /// States from which an operator may re-send a task.
    pub const RESENDABLE: [TaskStatus; 3] = [Self::Failed, Self::Cancelled, Self::Succeeded];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivering => "delivering",
            Self::Retrying => "retrying",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::Held => "held",
            Self::Waiting => "waiting",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == raw)
            .ok_or_else(|| {
                format!(
                    "must be one of pending, delivering, retrying, succeeded, failed, cancelled, held, waiting, not {raw:?}"
                )
            })
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How many attempts a task gets, 1 to 100.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxAttempts(u32);

impl MaxAttempts {
    pub const LIMIT: u32 = 100;

    pub fn parse(n: i64) -> Result<Self, String> {
        match u32::try_from(n) {
            Ok(n) if (1..=Self::LIMIT).contains(&n) => Ok(Self(n)),
            _ => Err(format!("must be between 1 and {}", Self::LIMIT)),
        }
    }

    /// For defaults known at compile time.
    pub const fn parse_const(n: u32) -> Option<Self> {
        if n >= 1 && n <= Self::LIMIT {
            Some(Self(n))
        } else {
            None
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

/// An ordering key: tasks that carry the same one (for events: to the same
/// endpoint) are delivered one at a time, in the order they were accepted.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OrderingKey(String);

impl OrderingKey {
    pub const MAX_CHARS: usize = 255;

    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.is_empty() || raw.chars().count() > Self::MAX_CHARS {
            return Err(format!("must be 1 to {} characters", Self::MAX_CHARS));
        }
        if raw.chars().any(char::is_control) {
            return Err("must not hold control characters".into());
        }
        Ok(Self(raw.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OrderingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a task that fails for good does to the tasks behind it on its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum OnFailure {
    /// The key waits until an operator re-sends or cancels the failed task:
    /// nothing overtakes it.
    #[default]
    Block,
    /// The next task of the key starts; the failed one stays for an
    /// operator to see and re-send (at the key's end).
    Skip,
}

impl OnFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Block => "block",
            Self::Skip => "skip",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw {
            "block" => Ok(Self::Block),
            "skip" => Ok(Self::Skip),
            other => Err(format!("must be block or skip, not {other:?}")),
        }
    }
}

/// A task's place in ordered delivery (ADR 5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ordering {
    pub key: OrderingKey,
    pub on_failure: OnFailure,
}

/// Everything a submitter said about a task; it never changes afterwards.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskSpec {
    pub url: TargetUrl,
    pub method: Method,
    pub headers: HeaderList,
    pub query: QueryList,
    pub body: Option<Body>,
    pub max_attempts: MaxAttempts,
    /// `None`: the server's configured default schedule.
    pub retry_schedule: Option<RetrySchedule>,
    pub timeout_ms: u32,
    pub expect: Expectation,
    pub source_app: Option<String>,
    pub target_app: Option<String>,
    pub idempotency_key: Option<String>,
    /// The endpoint an event task goes to: it signs, gates and limits the
    /// delivery. `None` for a plain task.
    pub endpoint: Option<EndpointName>,
    /// The event an event task delivers.
    pub event_type: Option<EventType>,
    /// The alert hook an alert task goes to. An alert that fails for good
    /// never raises another alert.
    pub alert_hook: Option<crate::AlertHookId>,
    /// The submitter's trace: each attempt is sent as a span of it.
    pub traceparent: Option<crate::TraceParent>,
    /// Delivered in order with the other tasks of its key.
    pub ordering: Option<Ordering>,
}

/// A task about to be stored.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTask {
    pub id: TaskId,
    pub spec: TaskSpec,
    /// The first attempt is not made before this.
    pub first_attempt_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    /// Stored already held by the worker that will make its first attempt,
    /// so that no separate claim is written. `None`: stored pending.
    pub lease: Option<Lease>,
    /// Stored `held`: its endpoint is disabled for failing.
    pub held: bool,
}

impl NewTask {
    /// `delivering` when stored leased, else `pending`.
    pub fn initial_status(&self) -> TaskStatus {
        if self.held {
            TaskStatus::Held
        } else if self.lease.is_some() {
            TaskStatus::Delivering
        } else {
            TaskStatus::Pending
        }
    }
}

/// A lease on a task: its token, and when it ends. A task whose lease
/// ended without a result is due again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub token: LeaseToken,
    pub until: DateTime<Utc>,
}

/// A stored task with its current state.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub id: TaskId,
    pub spec: TaskSpec,
    pub status: TaskStatus,
    /// Attempts made over the task's whole life.
    pub attempts_made: u32,
    /// Attempts that do not count against `max_attempts`: those made before
    /// an operator's last re-send, and those interrupted by a shutdown.
    pub attempts_base: u32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Task {
    /// The task as it is stored right after its insert.
    pub fn from_new(new: NewTask) -> Self {
        Self {
            id: new.id,
            status: new.initial_status(),
            attempts_made: 0,
            attempts_base: 0,
            next_attempt_at: Some(new.first_attempt_at),
            last_error: None,
            created_at: new.created_at,
            updated_at: new.created_at,
            spec: new.spec,
        }
    }

    /// Attempts used from the current budget.
    pub fn attempts_used(&self) -> u32 {
        self.attempts_made.saturating_sub(self.attempts_base)
    }
}

/// A task with every attempt made, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskDetail {
    pub task: Task,
    pub attempts: Vec<Attempt>,
    /// For a waiting task: the task of its key that goes first, whose end
    /// it waits for.
    pub waiting_for: Option<TaskId>,
}

/// What recording an attempt did.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Recorded {
    /// The task moved on; `false` when its lease had been lost meanwhile
    /// (cancelled, or taken by another worker after it expired).
    pub applied: bool,
    /// The task of the same ordering key that starts because this one
    /// ended, claimed in the same commit for the caller to attempt now.
    /// Should the caller not, its lease ends and it is attempted again.
    pub promoted: Option<ClaimedTask>,
}

/// What an operator's cancel did.
#[derive(Debug, Clone, PartialEq)]
pub struct Cancelled {
    /// The task as it is now.
    pub task: Task,
    /// The task of the same ordering key that starts because this one no
    /// longer holds the key: pending and due now, for the caller to hand to
    /// delivery at once (else the reconciler's next pass finds it).
    pub started: Option<TaskId>,
}

/// What an operator's cancel of many tasks did.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CancelledMany {
    /// How many were cancelled.
    pub count: u64,
    /// The tasks of their ordering keys that start: see `Cancelled`.
    pub started: Vec<TaskId>,
}

/// The outcome of `TaskStore::insert`.
#[derive(Debug, Clone, PartialEq)]
pub enum Inserted {
    Created(Task),
    /// A task with the same idempotency key already existed; nothing was created.
    Existing(Task),
}

/// Proof that this process holds the delivery lease of a task. A state
/// change after an attempt only applies while the lease is still held, so
/// a worker whose lease expired cannot overwrite another's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LeaseToken(pub Uuid);

impl LeaseToken {
    pub fn new() -> Self {
        Self(Uuid::new_v4())
    }
}

impl Default for LeaseToken {
    fn default() -> Self {
        Self::new()
    }
}

/// A task taken for one delivery attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedTask {
    pub task: Task,
    pub lease: LeaseToken,
    /// The number this attempt will have (1-based, over the task's life).
    pub attempt_number: u32,
}

impl ClaimedTask {
    /// A task stored already leased (`NewTask::lease`): held from birth.
    pub fn leased_at_intake(task: Task, lease: LeaseToken) -> Self {
        Self {
            attempt_number: task.attempts_made + 1,
            task,
            lease,
        }
    }
}

/// One delivery attempt as it is recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub number: u32,
    pub started_at: DateTime<Utc>,
    pub duration_ms: u64,
    /// `None` when no response arrived.
    pub status_code: Option<u16>,
    /// The first part of the response body, lossy UTF-8.
    pub response_body: Option<String>,
    /// Why the attempt failed, in words.
    pub error: Option<String>,
    pub success: bool,
}

impl Attempt {
    /// An attempt that got no response: never sent, or cut off.
    pub fn without_response(number: u32, started_at: DateTime<Utc>, error: String) -> Self {
        Self {
            number,
            started_at,
            duration_ms: u64::try_from((Utc::now() - started_at).num_milliseconds()).unwrap_or(0),
            status_code: None,
            response_body: None,
            error: Some(error),
            success: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_ids_sort_by_creation() {
        let a = TaskId::new();
        let b = TaskId::new();
        assert!(a < b);
        assert_eq!(a.to_string().parse::<TaskId>().unwrap(), a);
    }

    #[test]
    fn ids_made_from_a_time_on_sort_after_its_first_id() {
        let before = TaskId::new();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let at = Utc::now();
        let first = TaskId::first_made_at(at);
        let after = TaskId::new();
        assert!(before < first, "{before} made before {at} sorts first");
        assert!(
            first <= after,
            "{after} made after {at} sorts after {first}"
        );
        assert_eq!(first.as_uuid().get_version_num(), 7);
        let same_ms = TaskId::from_uuid(
            uuid::Builder::from_unix_timestamp_millis(
                u64::try_from(at.timestamp_millis()).unwrap(),
                &[0xff; 10],
            )
            .into_uuid(),
        );
        assert!(
            first < same_ms,
            "the first id of a millisecond is its smallest"
        );
        let long_ago = DateTime::<Utc>::from_timestamp(-5, 0).unwrap();
        assert!(TaskId::first_made_at(long_ago) < before);
    }

    #[test]
    fn status_round_trips_through_its_name() {
        for s in TaskStatus::ALL {
            assert_eq!(TaskStatus::parse(s.as_str()), Ok(s));
        }
        assert!(TaskStatus::parse("done").is_err());
    }

    #[test]
    fn ordering_keys_are_printable_and_bounded() {
        assert!(OrderingKey::parse("order-42").is_ok());
        assert!(OrderingKey::parse("").is_err());
        assert!(OrderingKey::parse(&"x".repeat(256)).is_err());
        assert!(OrderingKey::parse(&"\u{4e2d}".repeat(255)).is_ok());
        assert!(OrderingKey::parse("a\nb").is_err());
        assert_eq!(OnFailure::parse("skip"), Ok(OnFailure::Skip));
        assert_eq!(
            OnFailure::parse(OnFailure::Block.as_str()),
            Ok(OnFailure::Block)
        );
        assert!(OnFailure::parse("retry").is_err());
    }

    #[test]
    fn max_attempts_is_between_1_and_100() {
        assert!(MaxAttempts::parse(0).is_err());
        assert!(MaxAttempts::parse(101).is_err());
        assert!(MaxAttempts::parse(-1).is_err());
        assert_eq!(MaxAttempts::parse(11).map(MaxAttempts::get), Ok(11));
    }
}
