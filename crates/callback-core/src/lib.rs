//! Domain types and ports of callback-center.
//!
//! This crate owns what a task *is* (its request, retry policy and success
//! expectation), the pure rules that move it between states, and the traits
//! (`TaskStore`, `DelayQueue`, `Dispatch`) that adapters implement. It depends
//! on no database, queue or HTTP crate, so every backend and every consumer
//! meets here and nowhere else.

pub mod access;
pub mod alert;
pub mod endpoint;
pub mod expect;
pub mod inbound;
pub mod observe;
pub mod operations;
pub mod outbound;
pub mod ports;
pub mod request;
pub mod retry;
pub mod signing;
pub mod sync;
pub mod task;
pub mod trace;
pub mod validation;
pub mod wechat_safe_mode;
pub mod window;

pub use access::{
    Account, AccountId, Actor, ApiKey, ApiKeyId, AppMismatch, AuditEntry, AuditFilter, AuditId,
    ConsoleSession, IpAllowlist, KeyHash, Principal, Role, Scope, Scopes,
};
pub use alert::{
    alert_body, alert_test_body, dingtalk_sign, dingtalk_signed_url, ops_alert_body,
    robot_accepted, AlertDigest, AlertHook, AlertHookId, AlertKind, AlertLinks, FailedTask,
    OpsAlert, ALERT_EXAMPLES,
};
pub use endpoint::{
    event_body, task_for_event, BreakerOverrides, Endpoint, EndpointDefaults, EndpointName,
    EventType, NewEvent, Published,
};
pub use expect::{Expectation, JsonExpectation};
pub use inbound::{
    hmac_sha256_hex_ok, key_at_pointer, parse_wechat_push, wechat_signature, wechat_signature_ok,
    InboundRecord, InboundStatus, Namespace, Route, RouteKey, WechatPush,
};
pub use observe::{
    AttemptReport, AttemptResult, AttemptTally, AttemptTrace, BothObservers, Finish, Intake,
    NoObserver, Observe,
};
pub use operations::{Backlog, BucketClock, BulkFilter, FailedBucket, BUCKET};
pub use outbound::{OutboundPolicy, Refused};
pub use ports::{
    AccountStore, AlertStore, AuditStore, DelayQueue, Dispatch, EndpointStore, Handoff,
    InboundFilter, InboundStore, Invoke, InvokeOutcome, InvokeRequest, KeyStore, KeyValue, Notices,
    OperatorStore, Page, PageRequest, QueueError, ReceiverStatus, ReceiverWatch, SharedLimits,
    Signing, StoreError, TaskFilter, TaskStore,
};
pub use request::{Body, HeaderList, Method, QueryList, TargetUrl};
pub use retry::{decide, AttemptFacts, Disposition, RetrySchedule};
pub use signing::{md5_legacy_signature, standard_signature, SignatureScheme, SigningSecret};
pub use sync::{lock, TtlCache};
pub use task::{
    Attempt, Cancelled, CancelledMany, ClaimedTask, Inserted, Lease, LeaseToken, MaxAttempts,
    NewTask, OnFailure, Ordering, OrderingKey, Recorded, Task, TaskDetail, TaskId, TaskSpec,
    TaskStatus,
};
pub use trace::TraceParent;
pub use validation::{FieldError, ValidationErrors};
pub use wechat_safe_mode::EncodingAesKey;
pub use window::SlidingCounts;
