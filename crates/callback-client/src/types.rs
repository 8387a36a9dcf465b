//! The API's requests and answers, as a client writes and reads them.
//!
//! The server's own types live in `callback-api`, bound to actix and to
//! the validation that turns them into domain values; these mirror their
//! JSON, and `tests/contract.rs` keeps the two in step against the
//! server's OpenAPI document. Unknown fields in answers are ignored, so a
//! newer server does not break an older client.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// A task to submit (`POST /api/v1/tasks`). Only `url` is required.
///
/// ```
/// use callback_client::NewTask;
/// let task = NewTask::post("https://shop.example/paid")
///     .json(&serde_json::json!({"order": 42}))
///     .max_attempts(5)
///     .source_app("shop");
/// assert_eq!(task.method.as_deref(), Some("POST"));
/// ```
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct NewTask {
    pub url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub headers: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<BTreeMap<String, Value>>,
    /// Any JSON, sent as `application/json`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    /// A raw body, sent as is. Not together with `body`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_delays_s: Option<Vec<u32>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay_s: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expect: Option<Expect>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_app: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_app: Option<String>,
    /// The same key submitted again returns the first task. The client
    /// sets one when none is given, so that its own retries are safe.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// Tasks with the same key are delivered one at a time, in the order
    /// they were accepted. Not together with `delay_s`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ordering_key: Option<String>,
    /// With an `ordering_key`: `block` (the default: a task that failed for
    /// good holds the tasks behind it until an operator re-sends or cancels
    /// it) or `skip` (the next starts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<String>,
}

impl NewTask {
    /// A task that POSTs to `url`.
    pub fn post(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            method: Some("POST".into()),
            ..Self::default()
        }
    }

    pub fn method(mut self, method: impl Into<String>) -> Self {
        self.method = Some(method.into());
        self
    }

    pub fn json(mut self, body: &Value) -> Self {
        self.body = Some(body.clone());
        self
    }

    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers
            .get_or_insert_with(BTreeMap::new)
            .insert(name.into(), value.into());
        self
    }

    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = Some(attempts);
        self
    }

    pub fn retry_delays_s(mut self, delays: Vec<u32>) -> Self {
        self.retry_delays_s = Some(delays);
        self
    }

    pub fn source_app(mut self, app: impl Into<String>) -> Self {
        self.source_app = Some(app.into());
        self
    }

    pub fn target_app(mut self, app: impl Into<String>) -> Self {
        self.target_app = Some(app.into());
        self
    }

    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    /// Delivered one at a time, in acceptance order, with the other tasks
    /// of `key`.
    pub fn ordering_key(mut self, key: impl Into<String>) -> Self {
        self.ordering_key = Some(key.into());
        self
    }

    /// `block` or `skip`: what a failure does to the tasks behind it on its
    /// ordering key.
    pub fn on_failure(mut self, on_failure: impl Into<String>) -> Self {
        self.on_failure = Some(on_failure.into());
        self
    }
}

/// What counts as success; every condition given must hold.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Expect {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<Vec<u16>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_contains: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_equals: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub json: Option<JsonExpect>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct JsonExpect {
    pub pointer: String,
    pub equals: Value,
}

/// A task as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Task {
    pub task_id: String,
    /// pending, waiting, delivering, retrying, succeeded, failed,
    /// cancelled or held.
    pub status: String,
    pub url: String,
    pub method: String,
    pub max_attempts: u32,
    pub attempts_made: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(default)]
    pub next_attempt_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub last_error: Option<String>,
    #[serde(default)]
    pub source_app: Option<String>,
    #[serde(default)]
    pub target_app: Option<String>,
    #[serde(default)]
    pub idempotency_key: Option<String>,
    #[serde(default)]
    pub traceparent: Option<String>,
    #[serde(default)]
    pub ordering_key: Option<String>,
    /// `block` or `skip`, for a task with an ordering key.
    #[serde(default)]
    pub on_failure: Option<String>,
    /// For a waiting task: the task of its key it waits for.
    #[serde(default)]
    pub waiting_for: Option<String>,
    /// Every attempt, oldest first; only when one task is asked for.
    #[serde(default)]
    pub attempts: Option<Vec<Attempt>>,
}

impl Task {
    /// Whether the task has finished: succeeded, failed or cancelled.
    pub fn is_finished(&self) -> bool {
        matches!(self.status.as_str(), "succeeded" | "failed" | "cancelled")
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Attempt {
    pub number: u32,
    pub started_at: DateTime<Utc>,
    pub duration_ms: u64,
    pub success: bool,
    #[serde(default)]
    pub status_code: Option<u16>,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub response_body: Option<String>,
}

/// A page of a listing, newest first.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; `None` on the last page.
    #[serde(default)]
    pub next_cursor: Option<String>,
}

/// Which tasks a listing shows.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct TaskFilter {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_app: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_app: Option<String>,
    /// The receiver's host, e.g. `pay.example.com`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url_host: Option<String>,
    /// A part of the URL (combine it with another condition on a large
    /// store: no index serves it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url_contains: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// Created at or after.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_from: Option<DateTime<Utc>>,
    /// Created before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_to: Option<DateTime<Utc>>,
    /// Failed for good at or after.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_from: Option<DateTime<Utc>>,
    /// Failed for good before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_to: Option<DateTime<Utc>>,
    /// 1 to 200 a page; default 50.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// Which tasks a bulk re-send or cancel acts on; at least one condition.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Bulk {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_app: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_app: Option<String>,
    /// The host of the task URL, e.g. `pay.example.com`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url_host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_from: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_to: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_from: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_to: Option<DateTime<Utc>>,
    /// For a re-send: send the tasks here instead of their own URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_url: Option<String>,
    /// Only count what would be acted on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BulkResult {
    pub matched: u64,
    pub acted: u64,
    pub dry_run: bool,
}

/// One task of a batch: created, or found by its idempotency key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BatchItem {
    pub task_id: String,
    pub status: String,
    pub created: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Batch {
    pub tasks: Vec<BatchItem>,
}

/// A ten-minute bucket of tasks that failed for good.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Bucket {
    /// `YYYYMMDDHHmm`, the bucket's start.
    pub date: String,
    pub retry: u32,
    pub size: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RetryBucket {
    pub date: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_url: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RetriedBucket {
    pub date: String,
    pub retry: u32,
    pub queued: u64,
}

/// An event to publish to the endpoints subscribed to its type.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct NewEvent {
    pub event_type: String,
    pub payload: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// Publishing the same `call_id` again creates nothing. The client
    /// sets one when none is given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
    /// Each endpoint receives the events of one key one at a time, in the
    /// order they were published.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ordering_key: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Published {
    pub call_id: String,
    pub created: bool,
    pub task_ids: Vec<String>,
    #[serde(default)]
    pub note: Option<String>,
}

/// Breaker settings of an endpoint.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct BreakerSettings {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_threshold: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_ratio: Option<f64>,
}

/// An endpoint to create. `name` and `url` are required.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct NewEndpoint {
    pub name: String,
    pub url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_types: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub headers: Option<BTreeMap<String, String>>,
    /// `standard` (default) or `md5_legacy`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// Generated when not given, and shown once in the answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_delays_s: Option<Vec<u32>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit_per_s: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub breaker: Option<BreakerSettings>,
}

/// Changes to an endpoint; what is left out stays.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct EndpointChanges {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_types: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub headers: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_delays_s: Option<Vec<u32>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit_per_s: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub breaker: Option<BreakerSettings>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Endpoint {
    pub name: String,
    pub url: String,
    pub enabled: bool,
    pub event_types: Vec<String>,
    pub signature: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub app: Option<String>,
    /// Shown once: when the endpoint is created.
    #[serde(default)]
    pub secret: Option<String>,
    #[serde(default)]
    pub max_attempts: Option<u32>,
    #[serde(default)]
    pub retry_delays_s: Option<Vec<u32>>,
    #[serde(default)]
    pub timeout_ms: Option<u32>,
    #[serde(default)]
    pub max_in_flight: Option<u32>,
    #[serde(default)]
    pub rate_limit_per_s: Option<u32>,
    #[serde(default)]
    pub breaker: BreakerSettings,
    /// Every attempt has failed since then.
    #[serde(default)]
    pub failing_since: Option<DateTime<Utc>>,
    /// When the server disabled it for failing too long; its new events
    /// are held until it is enabled.
    #[serde(default)]
    pub disabled_at: Option<DateTime<Utc>>,
    /// The receiver's health on the instance that answered.
    #[serde(default)]
    pub receiver: Option<Value>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A synchronous call to an endpoint (`POST /endpoints/{name}/invoke`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Invoke {
    pub event_type: String,
    pub payload: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fail_closed: Option<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Invoked {
    pub outcome: String,
    pub duration_ms: u64,
    #[serde(default)]
    pub status: Option<u16>,
    #[serde(default)]
    pub body: Value,
    #[serde(default)]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Secret {
    pub secret: String,
}

/// A route for vendor callbacks: `namespace`/`key` to a URL.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct NewRoute {
    pub namespace: String,
    pub key: String,
    pub target_url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub headers: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl_s: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remark: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Route {
    pub namespace: String,
    pub key: String,
    pub target_url: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub remark: Option<String>,
    #[serde(default)]
    pub forwarded_waiting: Option<u64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A vendor callback as it was received.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Inbound {
    pub id: String,
    pub source: String,
    pub status: String,
    pub received_at: DateTime<Utc>,
    pub content_type: String,
    pub size: u64,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub task_id: Option<String>,
    #[serde(default)]
    pub body: Option<String>,
}

/// Which inbound callbacks a listing shows.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct InboundFilter {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// An API key to create.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct NewKey {
    pub name: String,
    pub scopes: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub allow_ips: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit_per_s: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Key {
    pub id: String,
    pub name: String,
    pub scopes: Vec<String>,
    #[serde(default)]
    pub allow_ips: Vec<String>,
    #[serde(default)]
    pub app: Option<String>,
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub rate_limit_per_s: Option<u32>,
    #[serde(default)]
    pub last_used_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub revoked_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// A key just created: the one time its secret is shown.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CreatedKey {
    #[serde(flatten)]
    pub key: Key,
    /// `cbk_...`: keep it now, it is stored only as a hash.
    #[serde(rename = "key")]
    pub secret: String,
}

/// An alert hook: a DingTalk or WeCom robot, or a webhook.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct NewAlertHook {
    /// `dingtalk`, `wecom` or `webhook`.
    pub kind: String,
    pub url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remark: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_app: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_app: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct AlertHookChanges {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remark: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_app: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_app: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AlertHook {
    pub id: String,
    pub kind: String,
    pub url: String,
    pub enabled: bool,
    pub has_secret: bool,
    #[serde(default)]
    pub remark: Option<String>,
    #[serde(default)]
    pub source_app: Option<String>,
    #[serde(default)]
    pub target_app: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What a hook answered a test message.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AlertTest {
    pub ok: bool,
    #[serde(default)]
    pub status: Option<u16>,
    #[serde(default)]
    pub answer: Value,
    #[serde(default)]
    pub error: Option<String>,
}

/// One entry of the audit log.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AuditEntry {
    pub id: String,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub actor_name: String,
    pub action: String,
    pub method: String,
    pub path: String,
    pub status: u16,
    #[serde(default)]
    pub ip: Option<String>,
    #[serde(default)]
    pub target: Option<String>,
    #[serde(default)]
    pub detail: Option<Value>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct AuditFilter {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// An RFC 9457 problem, as the API answers an error.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Problem {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub title: String,
    pub status: u16,
    #[serde(default)]
    pub detail: String,
    /// A stable name for the error, e.g. `validation_failed`.
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub errors: Vec<ProblemField>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProblemField {
    pub field: String,
    pub message: String,
}

/// One attempt as it happened, from [`crate::Client::tail`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LiveAttempt {
    pub task_id: String,
    pub attempt: u32,
    #[serde(default)]
    pub app: Option<String>,
    pub receiver: String,
    pub method: String,
    pub url: String,
    pub started_at: DateTime<Utc>,
    pub duration_ms: u64,
    #[serde(default)]
    pub status_code: Option<u16>,
    /// success, unexpected_answer, timeout or connection_error.
    pub outcome: String,
    #[serde(default)]
    pub error: Option<String>,
}

/// What a tail shows.
#[derive(Debug, Clone, PartialEq)]
pub enum TailEvent {
    Attempt(LiveAttempt),
    /// The stream fell behind and skipped this many attempts.
    Missed(u64),
}

/// Which attempts a tail shows.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct TailFilter {
    /// Only tasks of this source application.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// Only receivers containing this text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receiver: Option<String>,
    /// Only failed attempts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed: Option<bool>,
}
