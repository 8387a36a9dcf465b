//! The task endpoints: submit, look up, list, re-send, cancel.

use crate::auth::Caller;
use crate::dto::{CreateTaskRequest, ListTasksQuery, TaskList, TaskView};
use crate::json_body::read_json;
use crate::{ApiError, ApiState};
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use callback_core::{
    Finish, Handoff, Inserted, Intake, NewTask, Page, PageRequest, Scope, Task, TaskDetail,
    TaskFilter, TaskId, TaskStatus, ValidationErrors,
};
use chrono::{DateTime, Utc};

fn parse_task_id(raw: &str) -> Result<TaskId, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::invalid("task_id", "is not a UUID"))
}

/// Submit a task. Answers only after the task is committed to the store.
#[utoipa::path(
    post,
    path = "/api/v1/tasks",
    tag = "tasks",
    request_body = CreateTaskRequest,
    responses(
        (status = 201, description = "Stored; delivery starts", body = TaskView,
            headers(("Location" = String, description = "The task's URL"))),
        (status = 200, description = "A task with this idempotency key already exists", body = TaskView),
        (status = 400, description = "Invalid fields", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong token", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Missing scope `tasks:write`, or `source_app` other than the key's", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over the limit", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "Store unavailable; nothing stored", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn create_task(
    state: web::Data<ApiState>,
    caller: Caller,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::TasksWrite)?;
    let mut request: CreateTaskRequest = read_json(&req, payload, state.max_body_bytes).await?;
    request.source_app = caller.app_for(request.source_app)?;
    let now = Utc::now();
    let mut new_task = request
        .into_new_task(state.defaults, now)
        .map_err(ApiError::Validation)?;
    new_task.spec.traceparent = crate::traceparent(&req);
    state.check_outbound("url", &new_task.spec.url)?;
    let handoff = reserve_worker(&state, &mut new_task, now);
    let first_attempt_at = new_task.first_attempt_at;
    let inserted = state
        .store
        .insert(new_task)
        .await
        .map_err(ApiError::StoreUnavailable)?;
    match inserted {
        Inserted::Created(task) => {
            let app = task.spec.source_app.as_deref();
            state.observer.accepted(app, Intake::Api, 1);
            let response = HttpResponse::Created()
                .insert_header((header::LOCATION, format!("/api/v1/tasks/{}", task.id)))
                .json(TaskView::new(&task, None));
            hand_over(&state, handoff, task, first_attempt_at).await;
            Ok(response)
        }
        Inserted::Existing(task) => Ok(HttpResponse::Ok()
            .insert_header((header::LOCATION, format!("/api/v1/tasks/{}", task.id)))
            .json(TaskView::new(&task, None))),
    }
}

/// Takes a free worker for a task due now, and marks the task to be stored
/// leased to it: delivery then starts without a claim or a second read.
fn reserve_worker(
    state: &ApiState,
    task: &mut NewTask,
    now: DateTime<Utc>,
) -> Option<Box<dyn Handoff>> {
    // A task with an ordering key may wait behind another: only the store
    // knows, so it is stored pending and claimed like any other.
    if task.first_attempt_at > now || task.spec.ordering.is_some() {
        return None;
    }
    let handoff = state.dispatch.reserve(task.spec.timeout_ms)?;
    task.lease = Some(handoff.lease());
    Some(handoff)
}

/// Gives a committed task to its reserved worker, or to delivery at large.
async fn hand_over(
    state: &ApiState,
    handoff: Option<Box<dyn Handoff>>,
    task: Task,
    due: DateTime<Utc>,
) {
    match handoff {
        Some(handoff) => handoff.deliver(task),
        // Its turn comes when the task before it on its key ends.
        None if task.status == TaskStatus::Waiting => {}
        None => state.dispatch.accepted(task.id, due).await,
    }
}

/// Most tasks in one batch.
pub const MAX_BATCH: usize = 1000;

/// Many tasks in one request.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTasksRequest {
    /// 1 to 1000 tasks, each as for `POST /api/v1/tasks`.
    pub tasks: Vec<CreateTaskRequest>,
}

/// One task of a batch, in the order given.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct BatchItemView {
    pub task_id: String,
    pub status: String,
    /// False when a task with the same idempotency key existed already.
    pub created: bool,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct BatchView {
    pub tasks: Vec<BatchItemView>,
}

/// Submit up to 1000 tasks at once: all are stored in one transaction, or
/// none; ids come back in order. Validation errors name the index and the
/// field (`tasks[3].url`).
#[utoipa::path(
    post,
    path = "/api/v1/tasks/batch",
    tag = "tasks",
    request_body = CreateTasksRequest,
    responses(
        (status = 201, description = "Every task stored", body = BatchView),
        (status = 400, description = "Invalid fields; nothing stored", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "An idempotency key was taken meanwhile; nothing stored", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "Store unavailable; nothing stored", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn create_tasks(
    state: web::Data<ApiState>,
    caller: Caller,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::TasksWrite)?;
    // A batch is many tasks: it may be as large as that many bodies.
    let limit = state.max_body_bytes.saturating_mul(16);
    let request: CreateTasksRequest = read_json(&req, payload, limit).await?;
    let mut errors = ValidationErrors::default();
    if request.tasks.is_empty() || request.tasks.len() > MAX_BATCH {
        errors.push("tasks", format!("must hold 1 to {MAX_BATCH} tasks"));
        return Err(ApiError::Validation(errors));
    }
    let now = Utc::now();
    let mut tasks = Vec::with_capacity(request.tasks.len());
    let mut keys = std::collections::HashMap::new();
    for (i, mut item) in request.tasks.into_iter().enumerate() {
        item.source_app = caller
            .app_for(item.source_app)
            .map_err(|e| ApiError::Forbidden(format!("tasks[{i}]: {e}")))?;
        match item.into_new_task(state.defaults, now) {
            Ok(mut task) => {
                task.spec.traceparent = crate::traceparent(&req);
                if let Some(key) = &task.spec.idempotency_key {
                    if let Some(first) = keys.insert(key.clone(), i) {
                        errors.push(
                            format!("tasks[{i}].idempotency_key"),
                            format!("repeats tasks[{first}]"),
                        );
                    }
                }
                tasks.push(task);
            }
            Err(item_errors) => {
                for e in item_errors.0 {
                    errors.push(format!("tasks[{i}].{}", e.field), e.message);
                }
            }
        }
    }
    errors.into_result().map_err(ApiError::Validation)?;
    let mut refused = ValidationErrors::default();
    for (i, task) in tasks.iter().enumerate() {
        if let Err(why) = state.outbound.check_url(&task.spec.url) {
            refused.push(format!("tasks[{i}].url"), why.to_string());
        }
    }
    refused.into_result().map_err(ApiError::UrlNotAllowed)?;
    let mut handoffs: Vec<Option<Box<dyn Handoff>>> = tasks
        .iter_mut()
        .map(|task| reserve_worker(&state, task, now))
        .collect();
    let first_attempts: Vec<_> = tasks.iter().map(|t| t.first_attempt_at).collect();
    let inserted = state.store.insert_batch(tasks).await.map_err(|e| match e {
        callback_core::StoreError::Conflict(message) => ApiError::Conflict(message),
        other => ApiError::StoreUnavailable(other),
    })?;
    let mut items = Vec::with_capacity(inserted.len());
    let mut accepted = Vec::new();
    for ((result, first_attempt_at), handoff) in inserted
        .into_iter()
        .zip(first_attempts)
        .zip(handoffs.drain(..))
    {
        let (task, created) = match result {
            Inserted::Created(task) => {
                let app = task.spec.source_app.as_deref();
                state.observer.accepted(app, Intake::Batch, 1);
                (task, true)
            }
            Inserted::Existing(task) => (task, false),
        };
        items.push(BatchItemView {
            task_id: task.id.to_string(),
            status: task.status.as_str().into(),
            created,
        });
        match (created, handoff) {
            (true, Some(handoff)) => handoff.deliver(task),
            (true, None) if task.status == TaskStatus::Waiting => {}
            (true, None) => accepted.push((task.id, first_attempt_at)),
            // An existing task is delivery's already; its worker is freed.
            (false, _) => {}
        }
    }
    state.dispatch.accepted_many(&accepted).await;
    Ok(HttpResponse::Created().json(BatchView { tasks: items }))
}

/// A task with every attempt made.
#[utoipa::path(
    get,
    path = "/api/v1/tasks/{task_id}",
    tag = "tasks",
    params(("task_id" = String, Path, description = "The task's UUID")),
    responses(
        (status = 200, body = TaskView),
        (status = 400, description = "Malformed id", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such task", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn get_task(
    state: web::Data<ApiState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let detail = detail(&state, &caller, parse_task_id(&path)?).await?;
    Ok(HttpResponse::Ok().json(TaskView::detail(&detail)))
}

/// A task with every attempt, as the caller may see it.
pub async fn detail(state: &ApiState, caller: &Caller, id: TaskId) -> Result<TaskDetail, ApiError> {
    caller.require(Scope::TasksRead)?;
    load_task(state, caller, id).await
}

/// Tasks, newest first, filtered and paginated.
#[utoipa::path(
    get,
    path = "/api/v1/tasks",
    tag = "tasks",
    params(ListTasksQuery),
    responses(
        (status = 200, body = TaskList),
        (status = 400, description = "Invalid filter", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn list_tasks(
    state: web::Data<ApiState>,
    caller: Caller,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let query: ListTasksQuery = serde_urlencoded_query(req.query_string())?;
    let page = list(&state, &caller, query).await?;
    Ok(HttpResponse::Ok().json(TaskList {
        items: page.items.iter().map(|t| TaskView::new(t, None)).collect(),
        next_cursor: page.next_cursor.map(|id| id.to_string()),
    }))
}

/// A page of the tasks the caller sees, newest first: the listing of the
/// API and of the console.
pub async fn list(
    state: &ApiState,
    caller: &Caller,
    query: ListTasksQuery,
) -> Result<Page<Task>, ApiError> {
    caller.require(Scope::TasksRead)?;
    let mut errors = ValidationErrors::default();
    let status = query
        .status
        .as_deref()
        .and_then(|s| errors.take("status", TaskStatus::parse(s)));
    let limit = crate::paging::page_limit(&mut errors, query.limit);
    let after = crate::paging::cursor(&mut errors, query.cursor.as_deref(), str::parse::<TaskId>);
    errors.into_result().map_err(ApiError::Validation)?;
    let Some(source_app) = confine(caller, query.source_app) else {
        // Another application's tasks: for this key there are none.
        return Ok(Page {
            items: Vec::new(),
            next_cursor: None,
        });
    };
    let filter = TaskFilter {
        status,
        source_app,
        target_app: query.target_app,
        url_host: query.url_host,
        url_contains: query.url_contains,
        idempotency_key: query.idempotency_key,
        created_from: query.created_from,
        created_to: query.created_to,
        failed_from: query.failed_from,
        failed_to: query.failed_to,
    };
    state
        .store
        .list(&filter, PageRequest { limit, after })
        .await
        .map_err(|e| ApiError::from_store(e, "list"))
}

/// The `source_app` a listing is confined to: the one asked for, or the
/// key's own application; `None` when the key asks for another one.
fn confine(caller: &Caller, asked: Option<String>) -> Option<Option<String>> {
    match (&caller.app, asked) {
        (None, asked) => Some(asked),
        (Some(own), Some(asked)) if *own != asked => None,
        (Some(own), _) => Some(Some(own.clone())),
    }
}

/// The task with its attempts, if it exists and the caller sees its
/// application (another application's task is `404` like a missing one).
async fn load_task(state: &ApiState, caller: &Caller, id: TaskId) -> Result<TaskDetail, ApiError> {
    let detail = state
        .store
        .get(id)
        .await
        .map_err(|e| ApiError::from_store(e, "read"))?
        .ok_or_else(|| ApiError::NotFound("no task has this id".into()))?;
    caller.ensure_sees(detail.task.spec.source_app.as_deref())?;
    Ok(detail)
}

/// For a key confined to one application: `404` unless the task is that
/// application's. Cross-application callers skip the read.
async fn ensure_own_task(state: &ApiState, caller: &Caller, id: TaskId) -> Result<(), ApiError> {
    if caller.app.is_some() {
        load_task(state, caller, id).await?;
    }
    Ok(())
}

fn serde_urlencoded_query(raw: &str) -> Result<ListTasksQuery, ApiError> {
    web::Query::<ListTasksQuery>::from_query(raw)
        .map(web::Query::into_inner)
        .map_err(|e| ApiError::invalid("query", e.to_string()))
}

/// Re-send a failed, cancelled or succeeded task with a fresh budget of attempts.
#[utoipa::path(
    post,
    path = "/api/v1/tasks/{task_id}/retry",
    tag = "tasks",
    params(("task_id" = String, Path, description = "The task's UUID")),
    responses(
        (status = 200, description = "Pending again, due now", body = TaskView),
        (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not finished yet", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn retry_task(
    state: web::Data<ApiState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let task = resend(&state, &caller, parse_task_id(&path)?).await?;
    Ok(HttpResponse::Ok().json(TaskView::new(&task, None)))
}

/// Re-sends a finished task now, with a fresh budget of attempts.
pub async fn resend(state: &ApiState, caller: &Caller, id: TaskId) -> Result<Task, ApiError> {
    caller.require(Scope::TasksManage)?;
    ensure_own_task(state, caller, id).await?;
    let now = Utc::now();
    let task = state
        .store
        .resend(id, now)
        .await
        .map_err(|e| ApiError::from_store(e, "re-send"))?;
    if task.status != TaskStatus::Waiting {
        state.dispatch.accepted(task.id, now).await;
    }
    Ok(task)
}

/// Stop a task that has not finished.
#[utoipa::path(
    post,
    path = "/api/v1/tasks/{task_id}/cancel",
    tag = "tasks",
    params(("task_id" = String, Path, description = "The task's UUID")),
    responses(
        (status = 200, description = "Cancelled", body = TaskView),
        (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already finished", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn cancel_task(
    state: web::Data<ApiState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let task = cancel(&state, &caller, parse_task_id(&path)?).await?;
    Ok(HttpResponse::Ok().json(TaskView::new(&task, None)))
}

/// Stops a task that has not finished.
pub async fn cancel(state: &ApiState, caller: &Caller, id: TaskId) -> Result<Task, ApiError> {
    caller.require(Scope::TasksManage)?;
    ensure_own_task(state, caller, id).await?;
    let now = Utc::now();
    let cancelled = state
        .store
        .cancel(id, now)
        .await
        .map_err(|e| ApiError::from_store(e, "cancel"))?;
    if let Some(next) = cancelled.started {
        state.dispatch.accepted(next, now).await;
    }
    let task = cancelled.task;
    let age = (Utc::now() - task.created_at).to_std().unwrap_or_default();
    let app = task.spec.source_app.as_deref();
    state.observer.finished(app, Finish::Cancelled, age);
    Ok(task)
}
