//! The task list (its filter lives in the URL), a task with every
//! attempt, and re-sending or cancelling one task.

use super::{given, redirect, render, span, time, Ctx, PageResult};
use actix_web::{web, HttpRequest};
use askama::Template;
use callback_api::dto::ListTasksQuery;
use callback_api::{ApiError, ApiState};
use callback_core::{Task, TaskId, TaskStatus};
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Deserialize;

/// The list's filter as the form sends it: empty fields are no condition,
/// times are the browser's `datetime-local` (taken as UTC).
#[derive(Debug, Default, Deserialize)]
pub struct TaskQuery {
    pub status: Option<String>,
    pub app: Option<String>,
    pub host: Option<String>,
    pub url: Option<String>,
    pub key: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub failed_from: Option<String>,
    pub failed_to: Option<String>,
    pub cursor: Option<String>,
}

impl TaskQuery {
    pub fn to_api(&self) -> Result<ListTasksQuery, ApiError> {
        Ok(ListTasksQuery {
            status: given(&self.status),
            source_app: given(&self.app),
            url_host: given(&self.host),
            url_contains: given(&self.url),
            idempotency_key: given(&self.key),
            created_from: moment("from", &self.from)?,
            created_to: moment("to", &self.to)?,
            failed_from: moment("failed_from", &self.failed_from)?,
            failed_to: moment("failed_to", &self.failed_to)?,
            cursor: given(&self.cursor),
            limit: Some(PAGE),
            target_app: None,
        })
    }

    /// The filter as a query string, without the cursor: for links to the
    /// next page and to bulk actions.
    pub fn query_string(&self) -> String {
        [
            ("status", &self.status),
            ("app", &self.app),
            ("host", &self.host),
            ("url", &self.url),
            ("key", &self.key),
            ("from", &self.from),
            ("to", &self.to),
            ("failed_from", &self.failed_from),
            ("failed_to", &self.failed_to),
        ]
        .iter()
        .filter_map(|(name, value)| given(value).map(|v| format!("{name}={}", crate::encode(&v))))
        .collect::<Vec<_>>()
        .join("&")
    }

    pub fn is_empty(&self) -> bool {
        self.query_string().is_empty()
    }
}

/// `2026-12-04T10:30` (a `datetime-local` field) or RFC 3339, as UTC.
pub fn moment(field: &str, raw: &Option<String>) -> Result<Option<DateTime<Utc>>, ApiError> {
    let Some(raw) = given(raw) else {
        return Ok(None);
    };
    if let Ok(at) = DateTime::parse_from_rfc3339(&raw) {
        return Ok(Some(at.with_timezone(&Utc)));
    }
    ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(&raw, format).ok())
        .map(|naive| Some(naive.and_utc()))
        .ok_or_else(|| ApiError::invalid(field, "is not a time such as 2026-12-04T10:30"))
}

const PAGE: u32 = 50;

pub struct TaskRow {
    pub id: String,
    pub app: String,
    pub target: String,
    pub status: &'static str,
    pub attempts: String,
    pub next: String,
    pub age: String,
}

impl TaskRow {
    fn new(task: &Task, now: DateTime<Utc>) -> Self {
        Self {
            id: task.id.to_string(),
            app: task.spec.source_app.clone().unwrap_or_default(),
            target: shown_url(task),
            status: task.status.as_str(),
            attempts: format!("{}/{}", task.attempts_made, task.spec.max_attempts.get()),
            next: task
                .next_attempt_at
                .filter(|_| !TaskStatus::RESENDABLE.contains(&task.status))
                .map(time)
                .unwrap_or_default(),
            age: span(task.created_at, now),
        }
    }
}

/// An alert task's URL carries a robot's token: masked.
fn shown_url(task: &Task) -> String {
    if task.spec.alert_hook.is_some() {
        task.spec.url.redacted()
    } else {
        task.spec.url.to_string()
    }
}

#[derive(Template)]
#[template(path = "tasks.html")]
struct TasksPage {
    ctx: Ctx,
    query: TaskQuery,
    statuses: Vec<&'static str>,
    rows: Vec<TaskRow>,
    next_page: Option<String>,
    filter: String,
}

pub async fn list(
    req: HttpRequest,
    state: web::Data<ApiState>,
    query: web::Query<TaskQuery>,
) -> PageResult {
    let (ctx, caller) = Ctx::new(&req, "tasks")?;
    let query = query.into_inner();
    let page = callback_api::tasks::list(&state, &caller, query.to_api()?).await?;
    let now = Utc::now();
    let filter = query.query_string();
    let next_page = page.next_cursor.map(|cursor| {
        let sep = if filter.is_empty() { "" } else { "&" };
        format!("/console/tasks?{filter}{sep}cursor={cursor}")
    });
    render(&TasksPage {
        ctx,
        statuses: TaskStatus::ALL.iter().map(|s| s.as_str()).collect(),
        rows: page.items.iter().map(|t| TaskRow::new(t, now)).collect(),
        next_page,
        filter,
        query,
    })
}

pub struct AttemptRow {
    pub number: u32,
    pub at: String,
    pub status: String,
    pub latency: String,
    pub answer: String,
    pub error: String,
    pub success: bool,
}

#[derive(Template)]
#[template(path = "task.html")]
struct TaskPage {
    ctx: Ctx,
    row: TaskRow,
    method: &'static str,
    headers: Vec<(String, String)>,
    body: String,
    expect: String,
    attempts: Vec<AttemptRow>,
    trace: String,
    notice: Option<&'static str>,
    finished: bool,
    /// `key (block)` for a task with an ordering key, else empty.
    ordering: String,
    /// The task of its key a waiting task waits for.
    waiting_for: Option<String>,
    /// Failed and holding its key: it may be cancelled to let the key go on.
    blocking: bool,
}

#[derive(Deserialize)]
pub struct Done {
    done: Option<String>,
}

/// Header values that look like credentials are masked.
fn masked(name: &str, value: &str) -> String {
    let lower = name.to_ascii_lowercase();
    let secret = [
        "authorization",
        "cookie",
        "token",
        "secret",
        "key",
        "signature",
        "password",
    ]
    .iter()
    .any(|word| lower.contains(word));
    if secret {
        "***".into()
    } else {
        value.to_string()
    }
}

fn parse_id(raw: &str) -> Result<TaskId, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::NotFound("no task has this id".into()))
}

pub async fn detail(
    req: HttpRequest,
    state: web::Data<ApiState>,
    path: web::Path<String>,
    done: web::Query<Done>,
) -> PageResult {
    let (ctx, caller) = Ctx::new(&req, "tasks")?;
    let detail = callback_api::tasks::detail(&state, &caller, parse_id(&path)?).await?;
    let task = &detail.task;
    let spec = &task.spec;
    let body = spec
        .body
        .as_ref()
        .map(|b| {
            let text = String::from_utf8_lossy(&b.bytes);
            format!("Content-Type: {}\n\n{text}", b.content_type)
        })
        .unwrap_or_default();
    let attempts = detail
        .attempts
        .iter()
        .rev()
        .map(|a| AttemptRow {
            number: a.number,
            at: time(a.started_at),
            status: a
                .status_code
                .map(|s| s.to_string())
                .unwrap_or_else(|| "-".into()),
            latency: format!("{} ms", a.duration_ms),
            answer: a.response_body.clone().unwrap_or_default(),
            error: a.error.clone().unwrap_or_default(),
            success: a.success,
        })
        .collect();
    let notice = match done.done.as_deref() {
        Some("resend") => Some("task.done_resend"),
        Some("cancel") => Some("task.done_cancel"),
        _ => None,
    };
    render(&TaskPage {
        row: TaskRow::new(task, Utc::now()),
        method: spec.method.as_str(),
        headers: spec
            .headers
            .iter()
            .map(|(n, v)| (n.to_string(), masked(n, v)))
            .collect(),
        body,
        expect: serde_json::to_string(&spec.expect).unwrap_or_default(),
        attempts,
        trace: spec.traceparent.map(|t| t.to_string()).unwrap_or_default(),
        finished: TaskStatus::RESENDABLE.contains(&task.status),
        ordering: spec
            .ordering
            .as_ref()
            .map(|o| format!("{} ({})", o.key, o.on_failure.as_str()))
            .unwrap_or_default(),
        waiting_for: detail.waiting_for.map(|id| id.to_string()),
        blocking: task.status == TaskStatus::Failed
            && spec
                .ordering
                .as_ref()
                .is_some_and(|o| o.on_failure == callback_core::OnFailure::Block),
        notice,
        ctx,
    })
}

#[derive(Deserialize)]
pub struct ResendForm {
    /// Send it here instead of its own URL.
    target_url: Option<String>,
}

pub async fn resend(
    req: HttpRequest,
    state: web::Data<ApiState>,
    path: web::Path<String>,
    form: web::Form<ResendForm>,
) -> PageResult {
    let (_, caller) = Ctx::new(&req, "tasks")?;
    let id = parse_id(&path)?;
    match given(&form.target_url) {
        Some(url) => callback_api::operations::resend_to(&state, &caller, id, &url).await?,
        None => {
            callback_api::tasks::resend(&state, &caller, id).await?;
        }
    }
    Ok(redirect(&format!("/console/tasks/{id}?done=resend")))
}

pub async fn cancel(
    req: HttpRequest,
    state: web::Data<ApiState>,
    path: web::Path<String>,
) -> PageResult {
    let (_, caller) = Ctx::new(&req, "tasks")?;
    let task = callback_api::tasks::cancel(&state, &caller, parse_id(&path)?).await?;
    Ok(redirect(&format!("/console/tasks/{}?done=cancel", task.id)))
}
