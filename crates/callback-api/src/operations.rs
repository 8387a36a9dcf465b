//! Operators acting on many tasks: failed buckets of ten minutes, and bulk
//! re-send and cancel by filter. Work is done in batches, never holding the
//! whole set in memory.

use crate::auth::Caller;
use crate::json_body::read_json;
use crate::{ApiError, ApiState};
use actix_web::{web, HttpRequest, HttpResponse};
use callback_core::Scope;
use callback_core::{
    BulkFilter, StoreError, TargetUrl, TaskId, TaskStatus, ValidationErrors, BUCKET,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Tasks acted on per batch.
const BATCH: u32 = 500;

#[derive(Debug, Serialize, ToSchema)]
pub struct BucketView {
    /// `YYYYMMDDHHmm`: the bucket's start.
    pub date: String,
    /// Tasks still failed that failed in these ten minutes.
    pub size: u64,
    /// Times the bucket was re-sent.
    pub retry: u32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BucketList {
    pub items: Vec<BucketView>,
}

#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryBucketRequest {
    /// The bucket, `YYYYMMDDHHmm`.
    #[schema(example = "202109091440")]
    pub date: String,
    /// Re-send only if the bucket was re-sent exactly this many times
    /// before (so two operators do not re-send it twice).
    pub retry: Option<u32>,
    /// Send the tasks here instead of their own URL.
    pub target_url: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RetryBucketView {
    pub date: String,
    /// Tasks re-sent.
    pub queued: u64,
    /// Times the bucket has now been re-sent.
    pub retry: u32,
}

/// Which tasks a bulk operation acts on; at least one condition.
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkRequest {
    pub status: Option<String>,
    pub source_app: Option<String>,
    pub target_app: Option<String>,
    /// The host of the task URL, e.g. `pay.example.com`.
    pub url_host: Option<String>,
    pub created_from: Option<DateTime<Utc>>,
    pub created_to: Option<DateTime<Utc>>,
    pub failed_from: Option<DateTime<Utc>>,
    pub failed_to: Option<DateTime<Utc>>,
    /// Only count what would be acted on.
    pub dry_run: Option<bool>,
    /// For re-send: send the tasks here instead of their own URL.
    pub target_url: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BulkView {
    /// Tasks the filter matches.
    pub matched: u64,
    /// Tasks re-sent or cancelled (0 on a dry run); a matched task in a
    /// state that does not allow the action is left alone.
    pub acted: u64,
    pub dry_run: bool,
}

impl BulkRequest {
    fn filter(&self) -> Result<BulkFilter, ValidationErrors> {
        let mut errors = ValidationErrors::default();
        let status = self
            .status
            .as_deref()
            .and_then(|s| errors.take("status", TaskStatus::parse(s)));
        let filter = BulkFilter {
            status,
            source_app: self.source_app.clone(),
            target_app: self.target_app.clone(),
            url_host: self.url_host.clone(),
            created_from: self.created_from,
            created_to: self.created_to,
            failed_from: self.failed_from,
            failed_to: self.failed_to,
        };
        if filter == BulkFilter::default() && errors.is_empty() {
            errors.push(
                "filter",
                "name at least one condition (status, source_app, target_app, url_host or a time range)",
            );
        }
        errors.into_result().map(|()| filter)
    }
}

fn target_url(errors: &mut ValidationErrors, raw: Option<&str>) -> Option<Option<TargetUrl>> {
    match raw {
        Some(raw) => errors.take("target_url", TargetUrl::parse(raw)).map(Some),
        None => Some(None),
    }
}

/// Re-sends one finished task to another URL than its own (an operator's
/// fix for a receiver that moved); `InvalidState` when it is not finished.
pub async fn resend_to(
    state: &ApiState,
    caller: &Caller,
    id: TaskId,
    target_url: &str,
) -> Result<(), ApiError> {
    caller.require(Scope::Operator)?;
    let url = TargetUrl::parse(target_url).map_err(|e| ApiError::invalid("target_url", e))?;
    state.check_outbound("target_url", &url)?;
    let now = Utc::now();
    let done = state
        .operators
        .resend_many(&[id], Some(&url), now)
        .await
        .map_err(ApiError::StoreUnavailable)?;
    if done.is_empty() {
        return Err(ApiError::Conflict(
            "only a failed, cancelled or succeeded task can be re-sent".into(),
        ));
    }
    state.dispatch.accepted(id, now).await;
    Ok(())
}

/// Re-sends every task matching `filter`, batch by batch; returns how many.
async fn resend_matching(
    state: &ApiState,
    filter: &BulkFilter,
    url: Option<&TargetUrl>,
) -> Result<u64, ApiError> {
    let mut after: Option<TaskId> = None;
    let mut resent = 0;
    loop {
        let ids = state
            .operators
            .matching_ids(filter, after, BATCH)
            .await
            .map_err(ApiError::StoreUnavailable)?;
        let Some(last) = ids.last().copied() else {
            return Ok(resent);
        };
        let now = Utc::now();
        let done = state
            .operators
            .resend_many(&ids, url, now)
            .await
            .map_err(ApiError::StoreUnavailable)?;
        for id in &done {
            state.dispatch.accepted(*id, now).await;
        }
        resent += done.len() as u64;
        after = Some(last);
    }
}

/// Buckets of tasks that failed for good, newest first, within retention.
#[utoipa::path(get, path = "/api/v1/failed-buckets", tag = "operations", responses((status = 200, body = BucketList)), security(("bearer" = [])))]
pub async fn list_buckets(
    state: web::Data<ApiState>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(buckets(&state, &caller).await?))
}

/// The failed buckets within retention, newest first.
pub async fn buckets(state: &ApiState, caller: &Caller) -> Result<BucketList, ApiError> {
    caller.require(Scope::Operator)?;
    let since = Utc::now() - state.buckets.retention;
    let buckets = state
        .operators
        .failed_buckets(state.buckets.clock, since)
        .await
        .map_err(ApiError::StoreUnavailable)?;
    Ok(BucketList {
        items: buckets
            .iter()
            .map(|b| BucketView {
                date: state.buckets.clock.key(b.start),
                size: b.size,
                retry: b.retries,
            })
            .collect(),
    })
}

/// Re-send every task of a bucket, optionally to another URL.
#[utoipa::path(
    post,
    path = "/api/v1/failed-buckets/retry",
    tag = "operations",
    request_body = RetryBucketRequest,
    responses(
        (status = 200, body = RetryBucketView),
        (status = 400, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "`retry` did not match: re-sent meanwhile", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn retry_bucket(
    state: web::Data<ApiState>,
    caller: Caller,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let request: RetryBucketRequest = read_json(&req, payload, state.max_body_bytes).await?;
    let view = resend_bucket(&state, &caller, &request).await?;
    crate::audit::note(
        &req,
        Some(request.date.clone()),
        Some(serde_json::json!({ "request": &request, "queued": view.queued })),
    );
    Ok(HttpResponse::Ok().json(view))
}

/// Re-sends every task of a failed bucket, to their URLs or to another.
pub async fn resend_bucket(
    state: &ApiState,
    caller: &Caller,
    request: &RetryBucketRequest,
) -> Result<RetryBucketView, ApiError> {
    caller.require(Scope::Operator)?;
    let mut errors = ValidationErrors::default();
    let start = errors.take("date", state.buckets.clock.parse_key(&request.date));
    let url = target_url(&mut errors, request.target_url.as_deref());
    errors.clone().into_result().map_err(ApiError::Validation)?;
    let (Some(start), Some(url)) = (start, url) else {
        return Err(ApiError::Validation(errors));
    };
    if let Some(url) = &url {
        state.check_outbound("target_url", url)?;
    }
    let retry = state
        .operators
        .count_bucket_retry(start, request.retry)
        .await
        .map_err(|e| match e {
            StoreError::Conflict(message) => ApiError::Conflict(message),
            other => ApiError::StoreUnavailable(other),
        })?;
    let filter = BulkFilter {
        status: Some(TaskStatus::Failed),
        failed_from: Some(start),
        failed_to: Some(start + BUCKET),
        ..BulkFilter::default()
    };
    let queued = resend_matching(state, &filter, url.as_ref()).await?;
    tracing::info!(bucket = %request.date, queued, retry, "failed bucket re-sent");
    Ok(RetryBucketView {
        date: request.date.clone(),
        queued,
        retry,
    })
}

/// A bulk operation's audit detail: the filter as given, and the counts.
pub fn note_bulk(req: &HttpRequest, request: &BulkRequest, view: &BulkView) {
    let detail =
        serde_json::json!({ "filter": request, "matched": view.matched, "acted": view.acted });
    crate::audit::note(req, None, Some(detail));
}

/// Re-send every finished task matching the filter.
#[utoipa::path(post, path = "/api/v1/tasks/retry", tag = "tasks", request_body = BulkRequest, responses((status = 200, body = BulkView), (status = 400, body = crate::error::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn retry_tasks(
    state: web::Data<ApiState>,
    caller: Caller,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let request: BulkRequest = read_json(&req, payload, state.max_body_bytes).await?;
    let view = bulk_resend(&state, &caller, &request).await?;
    note_bulk(&req, &request, &view);
    Ok(HttpResponse::Ok().json(view))
}

/// Re-sends every finished task matching the request's filter (or counts
/// them on a dry run).
pub async fn bulk_resend(
    state: &ApiState,
    caller: &Caller,
    request: &BulkRequest,
) -> Result<BulkView, ApiError> {
    caller.require(Scope::Operator)?;
    let mut errors = ValidationErrors::default();
    let url = target_url(&mut errors, request.target_url.as_deref());
    let filter = match request.filter() {
        Ok(filter) => Some(filter),
        Err(more) => {
            errors.0.extend(more.0);
            None
        }
    };
    errors.clone().into_result().map_err(ApiError::Validation)?;
    let (Some(filter), Some(url)) = (filter, url) else {
        return Err(ApiError::Validation(errors));
    };
    if let Some(url) = &url {
        state.check_outbound("target_url", url)?;
    }
    let matched = state
        .operators
        .count_matching(&filter)
        .await
        .map_err(ApiError::StoreUnavailable)?;
    let dry_run = request.dry_run.unwrap_or(false);
    let acted = if dry_run {
        0
    } else {
        resend_matching(state, &filter, url.as_ref()).await?
    };
    Ok(BulkView {
        matched,
        acted,
        dry_run,
    })
}

/// Cancel every unfinished task matching the filter.
#[utoipa::path(post, path = "/api/v1/tasks/cancel", tag = "tasks", request_body = BulkRequest, responses((status = 200, body = BulkView), (status = 400, body = crate::error::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn cancel_tasks(
    state: web::Data<ApiState>,
    caller: Caller,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let request: BulkRequest = read_json(&req, payload, state.max_body_bytes).await?;
    let view = bulk_cancel(&state, &caller, &request).await?;
    note_bulk(&req, &request, &view);
    Ok(HttpResponse::Ok().json(view))
}

/// Cancels every unfinished task matching the request's filter (or counts
/// them on a dry run).
pub async fn bulk_cancel(
    state: &ApiState,
    caller: &Caller,
    request: &BulkRequest,
) -> Result<BulkView, ApiError> {
    caller.require(Scope::Operator)?;
    if request.target_url.is_some() {
        return Err(ApiError::invalid(
            "target_url",
            "only a re-send takes a target_url",
        ));
    }
    let filter = request.filter().map_err(ApiError::Validation)?;
    let matched = state
        .operators
        .count_matching(&filter)
        .await
        .map_err(ApiError::StoreUnavailable)?;
    let dry_run = request.dry_run.unwrap_or(false);
    let mut acted = 0;
    if !dry_run {
        let mut after = None;
        loop {
            let ids = state
                .operators
                .matching_ids(&filter, after, BATCH)
                .await
                .map_err(ApiError::StoreUnavailable)?;
            let Some(last) = ids.last().copied() else {
                break;
            };
            let now = Utc::now();
            let cancelled = state
                .operators
                .cancel_many(&ids, now)
                .await
                .map_err(ApiError::StoreUnavailable)?;
            let started: Vec<_> = cancelled.started.iter().map(|id| (*id, now)).collect();
            state.dispatch.accepted_many(&started).await;
            // Their applications are not read back: counted under none.
            for _ in 0..cancelled.count {
                state.observer.finished(
                    None,
                    callback_core::Finish::Cancelled,
                    std::time::Duration::ZERO,
                );
            }
            acted += cancelled.count;
            after = Some(last);
        }
    }
    Ok(BulkView {
        matched,
        acted,
        dry_run,
    })
}

/// Tasks accepted since a time, and how many of them are delivered,
/// failed for good and retrying: the console's overview.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Tally {
    pub accepted: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub retrying: u64,
}

/// The tasks accepted in the last hour and the last day, by where they
/// are now.
pub async fn tallies(state: &ApiState, caller: &Caller) -> Result<(Tally, Tally), ApiError> {
    caller.require(Scope::TasksRead)?;
    let now = Utc::now();
    let rows = state
        .operators
        .tally(
            now - chrono::TimeDelta::days(1),
            now - chrono::TimeDelta::hours(1),
            caller.app.as_deref(),
        )
        .await
        .map_err(ApiError::StoreUnavailable)?;
    let (mut day, mut hour) = (Tally::default(), Tally::default());
    for (status, in_day, in_hour) in rows {
        for (tally, n) in [(&mut day, in_day), (&mut hour, in_hour)] {
            tally.accepted += n;
            match status {
                TaskStatus::Succeeded => tally.succeeded += n,
                TaskStatus::Failed => tally.failed += n,
                TaskStatus::Retrying => tally.retrying += n,
                _ => {}
            }
        }
    }
    Ok((hour, day))
}

/// Tasks due now and not yet attempted, the oldest's age, and those
/// waiting for a later retry.
pub async fn backlog(
    state: &ApiState,
    caller: &Caller,
) -> Result<callback_core::Backlog, ApiError> {
    caller.require(Scope::TasksRead)?;
    state
        .operators
        .backlog(Utc::now())
        .await
        .map_err(ApiError::StoreUnavailable)
}
