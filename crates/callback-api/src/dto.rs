//! Request and response bodies of the task API, and their conversion to
//! domain types. Parsing happens here, once; the rest of the system only
//! sees values that are known to be valid.

use callback_core::{
    Attempt, Body, Expectation, HeaderList, JsonExpectation, MaxAttempts, Method, NewTask,
    OnFailure, Ordering, OrderingKey, QueryList, RetrySchedule, TargetUrl, Task, TaskDetail,
    TaskId, TaskSpec, ValidationErrors,
};
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// Defaults applied to fields a submitter leaves out.
#[derive(Debug, Clone, Copy)]
pub struct TaskDefaults {
    pub max_attempts: MaxAttempts,
    pub timeout_ms: u32,
}

pub const MAX_TIMEOUT_MS: u32 = 300_000;
pub const MAX_DELAY_S: u32 = 90 * 24 * 3600;
const MAX_LABEL: usize = 128;
const MAX_IDEMPOTENCY_KEY: usize = 255;

/// A task to submit.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTaskRequest {
    /// Absolute http or https URL to call.
    #[schema(example = "https://receiver.example.com/hooks/order")]
    pub url: String,
    /// GET, POST, PUT, PATCH or DELETE. Default POST.
    pub method: Option<String>,
    /// Extra request headers.
    pub headers: Option<BTreeMap<String, String>>,
    /// Parameters appended to the URL's query string; values are strings,
    /// numbers or booleans.
    #[schema(value_type = Option<Object>)]
    pub query: Option<BTreeMap<String, serde_json::Value>>,
    /// Any JSON, sent as `application/json`, byte for byte as given.
    #[schema(value_type = Option<Object>)]
    pub body: Option<Box<serde_json::value::RawValue>>,
    /// A raw body, sent as is with the `Content-Type` from `headers`
    /// (default `text/plain`). Not together with `body`.
    pub body_text: Option<String>,
    /// 1 to 100; default 11 (one attempt and ten retries).
    pub max_attempts: Option<i64>,
    /// Seconds before each retry, replacing the default schedule; the last
    /// value repeats.
    pub retry_delays_s: Option<Vec<u32>>,
    /// Whole-request timeout of each attempt, 1 to 300000; default 10000.
    pub timeout_ms: Option<u32>,
    /// The first attempt is made no sooner than this many seconds from now.
    pub delay_s: Option<u32>,
    pub expect: Option<ExpectRequest>,
    pub source_app: Option<String>,
    pub target_app: Option<String>,
    /// Submitting the same key again returns the first task and creates nothing.
    pub idempotency_key: Option<String>,
    /// Tasks with the same key are delivered one at a time, in the order
    /// they were accepted: the next starts when the one before succeeded,
    /// was cancelled, or failed for good (see `on_failure`). 1 to 255
    /// characters. Not together with `delay_s`.
    #[schema(example = "order-1042")]
    pub ordering_key: Option<String>,
    /// With `ordering_key`, what a task that fails for good does to the
    /// ones behind it: `block` (default) holds them until an operator
    /// re-sends or cancels it; `skip` lets the next start.
    pub on_failure: Option<String>,
}

/// The ordering of a task or an event, when asked for: `on_failure` only
/// with a key, and a key and a delay never together, since a task behind
/// another is sent as soon as the one before it ends.
pub(crate) fn ordering(
    errors: &mut ValidationErrors,
    key: Option<String>,
    on_failure: Option<String>,
    delayed: bool,
) -> Option<Ordering> {
    let Some(key) = key else {
        if on_failure.is_some() {
            errors.push("on_failure", "only applies with ordering_key");
        }
        return None;
    };
    let on_failure = match on_failure {
        Some(raw) => errors.take("on_failure", OnFailure::parse(&raw)),
        None => Some(OnFailure::default()),
    };
    if delayed {
        errors.push(
            "delay_s",
            "cannot be combined with ordering_key: a task behind another is sent as soon as the one before it ends",
        );
    }
    let key = errors.take("ordering_key", OrderingKey::parse(&key));
    Some(Ordering {
        key: key?,
        on_failure: on_failure?,
    })
}

/// What counts as success. All conditions given must hold.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectRequest {
    /// Status codes that count as success; default any 2xx.
    pub status: Option<Vec<u16>>,
    pub body_contains: Option<String>,
    /// Compared after trimming white space.
    pub body_equals: Option<String>,
    pub json: Option<JsonExpectRequest>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JsonExpectRequest {
    /// A JSON pointer, e.g. `/code`.
    pub pointer: String,
    /// Any JSON value: `0`, `"ok"`, `true`, an object...
    pub equals: serde_json::Value,
}

/// A free-text label of 1 to `max` characters, when given.
pub(crate) fn label(
    errors: &mut ValidationErrors,
    field: &str,
    value: Option<String>,
    max: usize,
) -> Option<String> {
    let value = value?;
    if value.is_empty() || value.chars().count() > max {
        errors.push(field, format!("must be 1 to {max} characters"));
        return None;
    }
    Some(value)
}

impl CreateTaskRequest {
    /// Validates every field, reporting all errors at once.
    pub fn into_new_task(
        self,
        defaults: TaskDefaults,
        now: DateTime<Utc>,
    ) -> Result<NewTask, ValidationErrors> {
        let mut errors = ValidationErrors::default();
        let url = errors.take("url", TargetUrl::parse(&self.url));
        let method = match self.method {
            Some(raw) => errors.take("method", Method::parse(&raw)),
            None => Some(Method::default()),
        };
        let headers = errors.take(
            "headers",
            HeaderList::parse(self.headers.unwrap_or_default().into_iter().collect()),
        );
        let mut query = Vec::new();
        for (name, value) in self.query.unwrap_or_default() {
            match value {
                serde_json::Value::String(s) => query.push((name, s)),
                serde_json::Value::Number(n) => query.push((name, n.to_string())),
                serde_json::Value::Bool(b) => query.push((name, b.to_string())),
                _ => errors.push(
                    format!("query.{name}"),
                    "must be a string, number or boolean",
                ),
            }
        }
        let body = match (self.body, self.body_text) {
            (Some(_), Some(_)) => {
                errors.push("body_text", "give either body or body_text, not both");
                None
            }
            (Some(json), None) => Some(Body::raw_json(&json)),
            (None, Some(text)) => headers.as_ref().map(|h| Body::text(text, h)),
            (None, None) => None,
        };
        let max_attempts = match self.max_attempts {
            Some(n) => errors.take("max_attempts", MaxAttempts::parse(n)),
            None => Some(defaults.max_attempts),
        };
        let retry_schedule = match self.retry_delays_s {
            Some(delays) => errors
                .take("retry_delays_s", RetrySchedule::parse(delays))
                .map(Some),
            None => Some(None),
        };
        let timeout_ms = self.timeout_ms.unwrap_or(defaults.timeout_ms);
        if !(1..=MAX_TIMEOUT_MS).contains(&timeout_ms) {
            errors.push(
                "timeout_ms",
                format!("must be between 1 and {MAX_TIMEOUT_MS}"),
            );
        }
        let delay_s = self.delay_s.unwrap_or(0);
        if delay_s > MAX_DELAY_S {
            errors.push(
                "delay_s",
                format!("must be at most {MAX_DELAY_S} (90 days)"),
            );
        }
        let expect = match self.expect {
            Some(e) => Expectation {
                status: e.status,
                body_contains: e.body_contains,
                body_equals: e.body_equals,
                json: e.json.map(|j| JsonExpectation {
                    pointer: j.pointer,
                    equals: j.equals,
                }),
            },
            None => Expectation::default(),
        };
        if let Err((field, message)) = expect.validate() {
            errors.push(field, message);
        }
        let source_app = label(&mut errors, "source_app", self.source_app, MAX_LABEL);
        let target_app = label(&mut errors, "target_app", self.target_app, MAX_LABEL);
        let idempotency_key = label(
            &mut errors,
            "idempotency_key",
            self.idempotency_key,
            MAX_IDEMPOTENCY_KEY,
        );
        let ordering = ordering(&mut errors, self.ordering_key, self.on_failure, delay_s > 0);
        errors.clone().into_result()?;
        let (Some(url), Some(method), Some(headers), Some(max_attempts), Some(retry_schedule)) =
            (url, method, headers, max_attempts, retry_schedule)
        else {
            return Err(errors);
        };
        Ok(NewTask {
            id: TaskId::new(),
            spec: TaskSpec {
                url,
                method,
                headers,
                query: QueryList(query),
                body,
                max_attempts,
                retry_schedule,
                timeout_ms,
                expect,
                source_app,
                target_app,
                idempotency_key,
                endpoint: None,
                event_type: None,
                alert_hook: None,
                traceparent: None,
                ordering,
            },
            first_attempt_at: now + TimeDelta::seconds(i64::from(delay_s)),
            created_at: now,
            lease: None,
            held: false,
        })
    }
}

/// A task as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskView {
    #[schema(value_type = String, format = Uuid)]
    pub task_id: TaskId,
    /// pending, delivering, retrying, succeeded, failed, cancelled, held
    /// or waiting (behind an earlier task of its ordering key).
    pub status: String,
    pub url: String,
    pub method: String,
    pub source_app: Option<String>,
    pub target_app: Option<String>,
    pub idempotency_key: Option<String>,
    /// The W3C `traceparent` the task was submitted with; each attempt is
    /// sent as a child span of it.
    pub traceparent: Option<String>,
    pub max_attempts: u32,
    /// Attempts made over the task's whole life.
    pub attempts_made: u32,
    /// When the next attempt is due; null when none is.
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_error: Option<String>,
    /// Delivered in order with the other tasks of this key.
    pub ordering_key: Option<String>,
    /// With `ordering_key`: `block` or `skip`.
    pub on_failure: Option<String>,
    /// A waiting task: the task of its key it waits for (only on a single
    /// task).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = Uuid)]
    pub waiting_for: Option<TaskId>,
    /// Every attempt, oldest first (only on a single task).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<Vec<AttemptView>>,
}

impl TaskView {
    pub fn new(task: &Task, attempts: Option<&[Attempt]>) -> Self {
        Self {
            task_id: task.id,
            status: task.status.as_str().into(),
            // An alert task's URL is a robot's, with its token in it.
            url: if task.spec.alert_hook.is_some() {
                task.spec.url.redacted()
            } else {
                task.spec.url.to_string()
            },
            method: task.spec.method.as_str().into(),
            source_app: task.spec.source_app.clone(),
            target_app: task.spec.target_app.clone(),
            idempotency_key: task.spec.idempotency_key.clone(),
            traceparent: task.spec.traceparent.map(|t| t.to_string()),
            max_attempts: task.spec.max_attempts.get(),
            attempts_made: task.attempts_made,
            next_attempt_at: task.next_attempt_at,
            created_at: task.created_at,
            updated_at: task.updated_at,
            last_error: task.last_error.clone(),
            ordering_key: task.spec.ordering.as_ref().map(|o| o.key.to_string()),
            on_failure: task
                .spec
                .ordering
                .as_ref()
                .map(|o| o.on_failure.as_str().to_string()),
            waiting_for: None,
            attempts: attempts.map(|a| a.iter().map(AttemptView::from).collect()),
        }
    }

    /// A single task, with its attempts and what it waits for.
    pub fn detail(detail: &TaskDetail) -> Self {
        Self {
            waiting_for: detail.waiting_for,
            ..Self::new(&detail.task, Some(&detail.attempts))
        }
    }
}

/// One delivery attempt.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptView {
    pub number: u32,
    pub started_at: DateTime<Utc>,
    pub duration_ms: u64,
    /// Null when no response arrived.
    pub status_code: Option<u16>,
    /// The first 1 KiB of the response body, lossy UTF-8.
    pub response_body: Option<String>,
    /// Why the attempt failed, in words.
    pub error: Option<String>,
    pub success: bool,
}

impl From<&Attempt> for AttemptView {
    fn from(a: &Attempt) -> Self {
        Self {
            number: a.number,
            started_at: a.started_at,
            duration_ms: a.duration_ms,
            status_code: a.status_code,
            response_body: a.response_body.clone(),
            error: a.error.clone(),
            success: a.success,
        }
    }
}

/// A page of tasks, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskList {
    pub items: Vec<TaskView>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// Filters and paging of `GET /api/v1/tasks`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListTasksQuery {
    /// pending, delivering, retrying, succeeded, failed, cancelled, held
    /// or waiting.
    pub status: Option<String>,
    pub source_app: Option<String>,
    pub target_app: Option<String>,
    /// The receiver's host, e.g. `pay.example.com`.
    pub url_host: Option<String>,
    /// A part of the URL (no index serves it alone: combine it with
    /// another condition on a large store).
    pub url_contains: Option<String>,
    pub idempotency_key: Option<String>,
    /// Created at or after (RFC 3339).
    pub created_from: Option<DateTime<Utc>>,
    /// Created before (RFC 3339).
    pub created_to: Option<DateTime<Utc>>,
    /// Failed for good at or after (RFC 3339): a failed bucket's tasks.
    pub failed_from: Option<DateTime<Utc>>,
    /// Failed for good before (RFC 3339).
    pub failed_to: Option<DateTime<Utc>>,
    /// 1 to 200; default 50.
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json_body::parse_json;

    const DEFAULTS: TaskDefaults = TaskDefaults {
        max_attempts: match MaxAttempts::parse_const(11) {
            Some(m) => m,
            None => panic!(),
        },
        timeout_ms: 10_000,
    };

    fn parse(json: &str) -> Result<NewTask, ValidationErrors> {
        let req: CreateTaskRequest = parse_json(json.as_bytes()).expect("deserialises");
        req.into_new_task(DEFAULTS, Utc::now())
    }

    fn fields(err: ValidationErrors) -> Vec<String> {
        err.0.into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn a_minimal_task_gets_the_defaults() {
        let task = parse(r#"{"url": "https://example.com/hook"}"#).unwrap();
        assert_eq!(task.spec.method, Method::Post);
        assert_eq!(task.spec.max_attempts.get(), 11);
        assert_eq!(task.spec.timeout_ms, 10_000);
        assert!(task.spec.body.is_none());
        assert_eq!(task.first_attempt_at, task.created_at);
    }

    #[test]
    fn every_invalid_field_is_reported_at_once() {
        let err = parse(
            r#"{"url": "ftp://x", "method": "TRACE", "max_attempts": 0, "timeout_ms": 0,
                "body": {"a": 1}, "body_text": "x", "retry_delays_s": []}"#,
        )
        .unwrap_err();
        let mut got = fields(err);
        got.sort();
        assert_eq!(
            got,
            [
                "body_text",
                "max_attempts",
                "method",
                "retry_delays_s",
                "timeout_ms",
                "url"
            ]
        );
    }

    #[test]
    fn query_values_must_be_scalars() {
        let err = parse(r#"{"url": "https://e.com", "query": {"a": [1]}}"#).unwrap_err();
        assert_eq!(fields(err), ["query.a"]);
        let ok =
            parse(r#"{"url": "https://e.com", "query": {"n": 5, "b": true, "s": "x"}}"#).unwrap();
        assert_eq!(ok.spec.query.0.len(), 3);
    }

    #[test]
    fn delay_moves_the_first_attempt() {
        let task = parse(r#"{"url": "https://e.com", "delay_s": 30}"#).unwrap();
        assert_eq!(
            task.first_attempt_at - task.created_at,
            TimeDelta::seconds(30)
        );
        assert_eq!(
            fields(parse(r#"{"url": "https://e.com", "delay_s": 99999999}"#).unwrap_err()),
            ["delay_s"]
        );
    }

    #[test]
    fn labels_and_keys_have_bounded_length() {
        let long = "k".repeat(256);
        let err = parse(&format!(
            r#"{{"url": "https://e.com", "idempotency_key": "{long}", "source_app": ""}}"#
        ))
        .unwrap_err();
        let mut got = fields(err);
        got.sort();
        assert_eq!(got, ["idempotency_key", "source_app"]);
    }
}
