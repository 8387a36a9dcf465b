//! The ports: what the delivery engine and the API need from a task store,
//! a delay queue and a dispatcher. Adapters implement these; consumers hold
//! `Arc<dyn ...>` and never learn which backend is behind them.
//!
//! - `stores`: the durable store, one trait per aggregate (tasks,
//!   endpoints and events, operations, alert hooks, inbound callbacks).
//! - `queues`: the delay queue and plain keys, accelerators in front of it.
//! - `delivery`: what the API asks of delivery (dispatch, synchronous
//!   calls, receiver health) and what delivery reports.

mod delivery;
mod queues;
mod stores;

pub use delivery::{
    Dispatch, Handoff, Invoke, InvokeOutcome, InvokeRequest, Notices, ReceiverStatus,
    ReceiverWatch, Signing,
};
pub use queues::{DelayQueue, KeyValue, SharedLimits};
pub use stores::{
    AccountStore, AlertStore, AuditStore, EndpointStore, InboundFilter, InboundStore, KeyStore,
    OperatorStore, TaskStore,
};

use crate::{TaskId, TaskStatus};

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
    /// The receiver's host, lower case (`pay.example.com`).
    pub url_host: Option<String>,
    /// A part of the URL. Unlike the other conditions no index serves it:
    /// combine it with one that is, at millions of tasks.
    pub url_contains: Option<String>,
    pub idempotency_key: Option<String>,
    /// Created at or after.
    pub created_from: Option<chrono::DateTime<chrono::Utc>>,
    /// Created before.
    pub created_to: Option<chrono::DateTime<chrono::Utc>>,
    /// Failed for good at or after (a failed bucket opened).
    pub failed_from: Option<chrono::DateTime<chrono::Utc>>,
    /// Failed for good before.
    pub failed_to: Option<chrono::DateTime<chrono::Utc>>,
}

/// One page of a newest-first listing; `C` is the id the cursor names
/// (a task's by default, an audit entry's for the audit log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest<C = TaskId> {
    pub limit: u32,
    /// Continue with items older than this one.
    pub after: Option<C>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Page<T, C = TaskId> {
    pub items: Vec<T>,
    /// Where the next page starts; `None` on the last page.
    pub next_cursor: Option<C>,
}
