//! Domain types and ports of callback-center.
//!
//! This crate owns what a task *is* (its request, retry policy and success
//! expectation), the pure rules that move it between states, and the traits
//! (`TaskStore`, `DelayQueue`, `Dispatch`) that adapters implement. It depends
//! on no database, queue or HTTP crate, so every backend and every consumer
//! meets here and nowhere else.

pub mod expect;
pub mod ports;
pub mod request;
pub mod retry;
pub mod task;
pub mod validation;

pub use expect::{Expectation, JsonExpectation};
pub use ports::{
    DelayQueue, Dispatch, Page, PageRequest, QueueError, StoreError, TaskFilter, TaskStore,
};
pub use request::{Body, HeaderList, Method, QueryList, TargetUrl};
pub use retry::{decide, AttemptFacts, Disposition, RetrySchedule};
pub use task::{
    Attempt, ClaimedTask, Inserted, LeaseToken, MaxAttempts, NewTask, Task, TaskDetail, TaskId,
    TaskSpec, TaskStatus,
};
pub use validation::{FieldError, ValidationErrors};
