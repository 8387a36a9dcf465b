//! Re-send or cancel every task of a filter: the exact count is shown
//! first, and the action runs only when the operator types that count
//! back and it still holds.

use super::tasks::TaskQuery;
use super::{render, Ctx, PageResult};
use actix_web::{web, HttpRequest};
use askama::Template;
use callback_api::operations::{bulk_cancel, bulk_resend, note_bulk, BulkRequest, BulkView};
use callback_api::{ApiError, ApiState, Caller};
use serde::Deserialize;

#[derive(Template)]
#[template(path = "bulk.html")]
struct BulkPage {
    ctx: Ctx,
    query: TaskQuery,
    filter: String,
    /// Tasks matching now; `None` without a usable filter.
    matched: Option<u64>,
    problem: Option<String>,
    done: Option<String>,
    /// The filter, carried by the action forms.
    hidden: Vec<(&'static str, String)>,
}

/// The bulk request of a list filter; `Err` names why there is none.
fn bulk_request(query: &TaskQuery) -> Result<BulkRequest, &'static str> {
    if super::given(&query.url).is_some() || super::given(&query.key).is_some() {
        return Err("bulk.unsupported");
    }
    if query.is_empty() {
        return Err("bulk.need_filter");
    }
    let api = query.to_api().map_err(|_| "bulk.need_filter")?;
    Ok(BulkRequest {
        status: api.status,
        source_app: api.source_app,
        url_host: api.url_host,
        created_from: api.created_from,
        created_to: api.created_to,
        failed_from: api.failed_from,
        failed_to: api.failed_to,
        ..BulkRequest::default()
    })
}

async fn count(state: &ApiState, caller: &Caller, request: &BulkRequest) -> Result<u64, ApiError> {
    let dry = BulkRequest {
        dry_run: Some(true),
        target_url: None,
        ..request.clone()
    };
    Ok(bulk_cancel(state, caller, &dry).await?.matched)
}

pub async fn page(
    req: HttpRequest,
    state: web::Data<ApiState>,
    query: web::Query<TaskQuery>,
) -> PageResult {
    let (ctx, caller) = Ctx::new(&req, "bulk")?;
    let query = query.into_inner();
    show(ctx, &state, &caller, query, None, None).await
}

async fn show(
    ctx: Ctx,
    state: &ApiState,
    caller: &Caller,
    query: TaskQuery,
    problem: Option<String>,
    done: Option<String>,
) -> PageResult {
    let (matched, problem) = match bulk_request(&query) {
        Ok(request) => (Some(count(state, caller, &request).await?), problem),
        Err(key) => (None, problem.or_else(|| Some(ctx.t.get(key).to_string()))),
    };
    let hidden = [
        ("status", &query.status),
        ("app", &query.app),
        ("host", &query.host),
        ("from", &query.from),
        ("to", &query.to),
        ("failed_from", &query.failed_from),
        ("failed_to", &query.failed_to),
    ]
    .into_iter()
    .filter_map(|(name, value)| super::given(value).map(|v| (name, v)))
    .collect();
    render(&BulkPage {
        hidden,
        filter: query.query_string(),
        ctx,
        query,
        matched,
        problem,
        done,
    })
}

#[derive(Deserialize)]
pub struct BulkForm {
    #[serde(flatten)]
    query: TaskQuery,
    /// The count the operator typed.
    confirm: Option<String>,
    target_url: Option<String>,
}

enum Action {
    Resend,
    Cancel,
}

pub async fn resend(
    req: HttpRequest,
    state: web::Data<ApiState>,
    form: web::Form<BulkForm>,
) -> PageResult {
    act(req, state, form.into_inner(), Action::Resend).await
}

pub async fn cancel(
    req: HttpRequest,
    state: web::Data<ApiState>,
    form: web::Form<BulkForm>,
) -> PageResult {
    act(req, state, form.into_inner(), Action::Cancel).await
}

async fn act(
    req: HttpRequest,
    state: web::Data<ApiState>,
    form: BulkForm,
    action: Action,
) -> PageResult {
    let (ctx, caller) = Ctx::new(&req, "bulk")?;
    let mut request = match bulk_request(&form.query) {
        Ok(request) => request,
        Err(_) => return show(ctx, &state, &caller, form.query, None, None).await,
    };
    let matched = count(&state, &caller, &request).await?;
    let typed = form
        .confirm
        .as_deref()
        .map(str::trim)
        .and_then(|c| c.parse::<u64>().ok());
    if typed != Some(matched) {
        let problem = ctx.t.get("bulk.mismatch").to_string();
        return show(ctx, &state, &caller, form.query, Some(problem), None).await;
    }
    request.target_url = super::given(&form.target_url);
    let view: BulkView = match action {
        Action::Resend => bulk_resend(&state, &caller, &request).await?,
        Action::Cancel => bulk_cancel(&state, &caller, &request).await?,
    };
    note_bulk(&req, &request, &view);
    let done = ctx.t.fill(
        "bulk.done",
        &[
            ("matched", view.matched.to_string()),
            ("acted", view.acted.to_string()),
        ],
    );
    show(ctx, &state, &caller, form.query, None, Some(done)).await
}
