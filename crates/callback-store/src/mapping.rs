//! Conversion between table rows and domain types. A row that does not
//! parse back into a valid task is reported as corrupt, never guessed at.

use crate::entities::{attempt, endpoint, idempotency_key, task};
use callback_core::{
    Attempt, Body, BreakerOverrides, Endpoint, EndpointName, EventType, Expectation, HeaderList,
    MaxAttempts, Method, NewTask, OnFailure, Ordering, OrderingKey, QueryList, RetrySchedule,
    SignatureScheme, SigningSecret, StoreError, TargetUrl, Task, TaskId, TaskSpec, TaskStatus,
    TraceParent,
};
use chrono::{DateTime, Utc};
use uuid::Uuid;

pub fn id_bytes(id: TaskId) -> Vec<u8> {
    id.as_uuid().as_bytes().to_vec()
}

pub fn ms(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

pub fn corrupt(what: &str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {detail}"))
}

pub fn time(ms: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_millis(ms).ok_or_else(|| corrupt("time", ms))
}

pub fn json<T: serde::Serialize>(value: &T) -> String {
    // Serialising these plain data types cannot fail.
    serde_json::to_string(value).unwrap_or_default()
}

pub fn task_id(bytes: &[u8]) -> Result<TaskId, StoreError> {
    Uuid::from_slice(bytes)
        .map(TaskId::from_uuid)
        .map_err(|e| corrupt("task id", e))
}

pub fn new_task_row(task: &NewTask) -> task::ActiveModel {
    use sea_orm::ActiveValue::Set;
    let spec = &task.spec;
    task::ActiveModel {
        id: Set(id_bytes(task.id)),
        status: Set(task.initial_status().as_str().into()),
        url: Set(spec.url.as_str().into()),
        method: Set(spec.method.as_str().into()),
        headers: Set(json(&spec.headers)),
        query: Set(json(&spec.query)),
        content_type: Set(spec.body.as_ref().map(|b| b.content_type.clone())),
        body: Set(spec.body.as_ref().map(|b| b.bytes.clone())),
        max_attempts: Set(spec.max_attempts.get() as i32),
        retry_delays_s: Set(spec.retry_schedule.as_ref().map(|s| json(&s.as_slice()))),
        timeout_ms: Set(spec.timeout_ms as i32),
        expect: Set((spec.expect != Expectation::default()).then(|| json(&spec.expect))),
        source_app: Set(spec.source_app.clone()),
        target_app: Set(spec.target_app.clone()),
        idempotency_key: Set(spec.idempotency_key.clone()),
        attempts_made: Set(0),
        attempts_base: Set(0),
        next_attempt_at: Set(Some(ms(task.first_attempt_at))),
        lease_token: Set(task.lease.map(|l| l.token.0.as_bytes().to_vec())),
        lease_until: Set(task.lease.map(|l| ms(l.until))),
        last_error: Set(None),
        created_at: Set(ms(task.created_at)),
        updated_at: Set(ms(task.created_at)),
        endpoint: Set(spec.endpoint.as_ref().map(|e| e.as_str().to_string())),
        event_type: Set(spec.event_type.as_ref().map(|t| t.as_str().to_string())),
        url_host: Set(spec.url.as_url().host_str().map(str::to_string)),
        alert_hook: Set(spec.alert_hook.map(|h| h.to_string())),
        traceparent: Set(spec.traceparent.map(|t| t.to_string())),
        ordering_key: Set(spec.ordering.as_ref().map(|o| o.key.as_str().to_string())),
        ordering_on_failure: Set(spec.ordering.as_ref().map(|o| o.on_failure.as_str().into())),
    }
}

/// Claims `key` for the task `id`.
pub fn key_row(id: TaskId, key: &str) -> idempotency_key::ActiveModel {
    use sea_orm::ActiveValue::Set;
    idempotency_key::ActiveModel {
        idempotency_key: Set(key.to_string()),
        task_id: Set(id_bytes(id)),
    }
}

pub fn task_from_row(row: task::Model) -> Result<Task, StoreError> {
    let body = match (row.body, row.content_type) {
        (Some(bytes), Some(content_type)) => Some(Body {
            content_type,
            bytes,
        }),
        (Some(bytes), None) => Some(Body {
            content_type: "application/octet-stream".into(),
            bytes,
        }),
        (None, _) => None,
    };
    let query: QueryList = serde_json::from_str(&row.query).map_err(|e| corrupt("query", e))?;
    let retry_schedule = retry_schedule(row.retry_delays_s)?;
    let expect = row
        .expect
        .map(|raw| serde_json::from_str(&raw).map_err(|e| corrupt("expect", e)))
        .transpose()?
        .unwrap_or_default();
    let spec = TaskSpec {
        url: TargetUrl::parse(&row.url).map_err(|e| corrupt("url", e))?,
        method: Method::parse(&row.method).map_err(|e| corrupt("method", e))?,
        headers: headers(&row.headers)?,
        query,
        body,
        max_attempts: MaxAttempts::parse(row.max_attempts.into())
            .map_err(|e| corrupt("max_attempts", e))?,
        retry_schedule,
        timeout_ms: u32::try_from(row.timeout_ms).map_err(|e| corrupt("timeout_ms", e))?,
        expect,
        source_app: row.source_app,
        target_app: row.target_app,
        idempotency_key: row.idempotency_key,
        endpoint: row
            .endpoint
            .map(|e| EndpointName::parse(&e).map_err(|err| corrupt("endpoint", err)))
            .transpose()?,
        event_type: row
            .event_type
            .map(|t| EventType::parse(&t).map_err(|err| corrupt("event_type", err)))
            .transpose()?,
        alert_hook: row
            .alert_hook
            .map(|h| h.parse().map_err(|err| corrupt("alert_hook", err)))
            .transpose()?,
        // Stored only after parsing; one that no longer reads is dropped,
        // as an unreadable traceparent header is.
        traceparent: row.traceparent.as_deref().and_then(TraceParent::parse),
        ordering: match (row.ordering_key, row.ordering_on_failure) {
            (Some(key), on_failure) => Some(Ordering {
                key: OrderingKey::parse(&key).map_err(|e| corrupt("ordering_key", e))?,
                on_failure: on_failure
                    .as_deref()
                    .map(OnFailure::parse)
                    .transpose()
                    .map_err(|e| corrupt("ordering_on_failure", e))?
                    .unwrap_or_default(),
            }),
            (None, _) => None,
        },
    };
    Ok(Task {
        id: task_id(&row.id)?,
        spec,
        status: TaskStatus::parse(&row.status).map_err(|e| corrupt("status", e))?,
        attempts_made: u32::try_from(row.attempts_made).map_err(|e| corrupt("attempts", e))?,
        attempts_base: u32::try_from(row.attempts_base).map_err(|e| corrupt("attempts", e))?,
        next_attempt_at: row.next_attempt_at.map(time).transpose()?,
        last_error: row.last_error,
        created_at: time(row.created_at)?,
        updated_at: time(row.updated_at)?,
    })
}

pub fn attempt_row(task: TaskId, attempt: &Attempt) -> attempt::ActiveModel {
    use sea_orm::ActiveValue::{NotSet, Set};
    attempt::ActiveModel {
        id: NotSet,
        task_id: Set(id_bytes(task)),
        number: Set(attempt.number as i32),
        started_at: Set(ms(attempt.started_at)),
        duration_ms: Set(i64::try_from(attempt.duration_ms).unwrap_or(i64::MAX)),
        status_code: Set(attempt.status_code.map(i32::from)),
        response_body: Set(attempt.response_body.clone()),
        error: Set(attempt.error.clone()),
        success: Set(attempt.success),
    }
}

pub fn attempt_from_row(row: attempt::Model) -> Result<Attempt, StoreError> {
    Ok(Attempt {
        number: u32::try_from(row.number).map_err(|e| corrupt("attempt number", e))?,
        started_at: time(row.started_at)?,
        duration_ms: u64::try_from(row.duration_ms).unwrap_or(0),
        status_code: row.status_code.and_then(|c| u16::try_from(c).ok()),
        response_body: row.response_body,
        error: row.error,
        success: row.success,
    })
}

fn retry_schedule(raw: Option<String>) -> Result<Option<RetrySchedule>, StoreError> {
    raw.map(|raw| {
        let delays: Vec<u32> =
            serde_json::from_str(&raw).map_err(|e| corrupt("retry_delays_s", e))?;
        RetrySchedule::parse(delays).map_err(|e| corrupt("retry_delays_s", e))
    })
    .transpose()
}

pub fn headers(raw: &str) -> Result<HeaderList, StoreError> {
    let pairs: Vec<(String, String)> =
        serde_json::from_str(raw).map_err(|e| corrupt("headers", e))?;
    HeaderList::parse(pairs).map_err(|e| corrupt("headers", e))
}

/// A count as the store's 32-bit column keeps it: never wrapped to a
/// negative number that would not read back.
fn saturated(n: impl TryInto<i32>) -> i32 {
    n.try_into().unwrap_or(i32::MAX)
}

pub fn endpoint_row(e: &Endpoint) -> endpoint::ActiveModel {
    use sea_orm::ActiveValue::Set;
    let types: Vec<&str> = e.event_types.iter().map(EventType::as_str).collect();
    endpoint::ActiveModel {
        name: Set(e.name.as_str().into()),
        url: Set(e.url.as_str().into()),
        enabled: Set(e.enabled),
        app: Set(e.app.clone()),
        event_types: Set(json(&types)),
        signature: Set(e.signature.as_str().into()),
        secret: Set(e.secret.expose().into()),
        timeout_ms: Set(e.timeout_ms.map(saturated)),
        max_attempts: Set(e.max_attempts.map(|m| saturated(m.get()))),
        retry_delays_s: Set(e.retry_schedule.as_ref().map(|s| json(&s.as_slice()))),
        headers: Set(json(&e.headers)),
        rate_limit_per_s: Set(e.rate_limit_per_s.map(saturated)),
        max_in_flight: Set(e.max_in_flight.map(saturated)),
        breaker_failure_threshold: Set(e.breaker.failure_threshold.map(saturated)),
        breaker_failure_permille: Set(e
            .breaker
            .failure_ratio
            .map(|r| (r.clamp(0.0, 1.0) * 1000.0).round() as i32)),
        failing_since: Set(e.failing_since.map(ms)),
        disabled_at: Set(e.disabled_at.map(ms)),
        created_at: Set(ms(e.created_at)),
        updated_at: Set(ms(e.updated_at)),
    }
}

pub fn endpoint_from_row(row: endpoint::Model) -> Result<Endpoint, StoreError> {
    let types: Vec<String> =
        serde_json::from_str(&row.event_types).map_err(|e| corrupt("event_types", e))?;
    let unsigned = |what: &str, v: Option<i32>| {
        v.map(|n| u32::try_from(n).map_err(|e| corrupt(what, e)))
            .transpose()
    };
    Ok(Endpoint {
        name: EndpointName::parse(&row.name).map_err(|e| corrupt("endpoint name", e))?,
        url: TargetUrl::parse(&row.url).map_err(|e| corrupt("url", e))?,
        enabled: row.enabled,
        app: row.app,
        event_types: types
            .iter()
            .map(|t| EventType::parse(t).map_err(|e| corrupt("event_types", e)))
            .collect::<Result<_, _>>()?,
        signature: SignatureScheme::parse(&row.signature).map_err(|e| corrupt("signature", e))?,
        secret: SigningSecret::from_stored(row.secret),
        timeout_ms: unsigned("timeout_ms", row.timeout_ms)?,
        max_attempts: row
            .max_attempts
            .map(|m| MaxAttempts::parse(m.into()).map_err(|e| corrupt("max_attempts", e)))
            .transpose()?,
        retry_schedule: retry_schedule(row.retry_delays_s)?,
        headers: headers(&row.headers)?,
        rate_limit_per_s: unsigned("rate_limit_per_s", row.rate_limit_per_s)?,
        max_in_flight: unsigned("max_in_flight", row.max_in_flight)?,
        breaker: BreakerOverrides {
            failure_threshold: unsigned(
                "breaker_failure_threshold",
                row.breaker_failure_threshold,
            )?,
            failure_ratio: row
                .breaker_failure_permille
                .map(|p| f64::from(p.clamp(0, 1000)) / 1000.0),
        },
        failing_since: row.failing_since.map(time).transpose()?,
        disabled_at: row.disabled_at.map(time).transpose()?,
        created_at: time(row.created_at)?,
        updated_at: time(row.updated_at)?,
    })
}
