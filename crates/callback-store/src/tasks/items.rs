//! What the hot path's group writers carry (`Groups` in `connection`):
//! a claim asked for, a result to record, a task given back. Plain data in
//! a module of its own, so that the connection that starts the writers and
//! the task files that write the groups both depend on it and not on each
//! other.

use super::ordering::KeyQueue;
use callback_core::{Attempt, Disposition, LeaseToken, OnFailure, TaskId, TaskStatus};
use chrono::{DateTime, Utc};
use std::time::Duration;

/// A due task to claim under a lease lasting its timeout plus `lease_margin`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClaimRequest {
    pub(crate) id: TaskId,
    pub(crate) now: DateTime<Utc>,
    pub(crate) lease_margin: Duration,
}

/// A claimed task given back untried, due again at `until`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deferral {
    pub(crate) task_id: TaskId,
    pub(crate) lease: LeaseToken,
    pub(crate) back_to: TaskStatus,
    pub(crate) until: DateTime<Utc>,
    pub(crate) now: DateTime<Utc>,
}

/// An attempt and the state it moves its task to, for the task held under
/// `lease`.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    pub(crate) task_id: TaskId,
    pub(crate) lease: LeaseToken,
    pub(crate) attempt: Attempt,
    pub(crate) next: Disposition,
    pub(crate) now: DateTime<Utc>,
    /// The task's ordering key, and what its failure does to it.
    pub(crate) ordering: Option<(KeyQueue, OnFailure)>,
    /// How long past its timeout the lease of the next task of its key,
    /// claimed for the caller when this one ends, holds.
    pub(crate) lease_margin: Duration,
}
