//! Domain types and ports of callback-center.
//!
//! This crate owns what a task *is* (its request, retry policy and success
//! expectation), the pure rules that move it between states, and the traits
//! (`TaskStore`, `DelayQueue`, `Dispatch`) that adapters implement. It depends
//! on no database, queue or HTTP crate, so every backend and every consumer
//! meets here and nowhere else.

pub mod endpoint;
pub mod expect;
pub mod ports;
pub mod request;
pub mod retry;
pub mod signing;
pub mod task;
pub mod validation;

pub use endpoint::{
    event_body, task_for_event, Endpoint, EndpointDefaults, EndpointName, EventType, NewEvent,
    Published,
};
pub use expect::{Expectation, JsonExpectation};
pub use ports::{
    DelayQueue, Dispatch, EndpointStore, Invoke, InvokeOutcome, InvokeRequest, Page, PageRequest,
    QueueError, ReceiverStatus, ReceiverWatch, StoreError, TaskFilter, TaskStore,
};
pub use request::{Body, HeaderList, Method, QueryList, TargetUrl};
pub use retry::{decide, AttemptFacts, Disposition, RetrySchedule};
pub use signing::{md5_legacy_signature, standard_signature, SignatureScheme, SigningSecret};
pub use task::{
    Attempt, ClaimedTask, Inserted, LeaseToken, MaxAttempts, NewTask, Task, TaskDetail, TaskId,
    TaskSpec, TaskStatus,
};
pub use validation::{FieldError, ValidationErrors};
