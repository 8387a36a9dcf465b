//! Endpoints: health at a glance (failure rate, in flight, breaker), add
//! one (its secret shown once), edit, rotate the secret (shown once), send
//! a test event and see the answer.

use super::{given, redirect, render, span, time, Ctx, PageResult};
use actix_web::{web, HttpRequest};
use askama::Template;
use callback_api::endpoint_dto::{
    CreateEndpointRequest, EndpointView, InvokeEndpointRequest, InvokeView, UpdateEndpointRequest,
};
use callback_api::endpoints::{self, ListEndpointsQuery};
use callback_api::{ApiError, ApiState};
use chrono::Utc;
use serde::Deserialize;

/// One endpoint's line: what an operator scans for.
pub struct EndpointRow {
    pub view: EndpointView,
    pub failure_rate: String,
    pub in_flight: u32,
    pub breaker: &'static str,
    pub reopens: String,
    pub failing_since: String,
}

impl EndpointRow {
    fn new(view: EndpointView) -> Self {
        let now = Utc::now();
        let receiver = view.receiver.as_ref();
        Self {
            failure_rate: receiver
                .filter(|r| r.recent_attempts > 0)
                .map(|r| format!("{:.1}% / {}", r.failure_ratio * 100.0, r.recent_attempts))
                .unwrap_or_else(|| "-".into()),
            in_flight: receiver.map_or(0, |r| r.in_flight),
            breaker: receiver.map_or("closed", |r| r.breaker),
            reopens: receiver
                .and_then(|r| r.open_until)
                .map(|at| format!("{} ({})", time(at), span(now, at)))
                .unwrap_or_default(),
            failing_since: view
                .failing_since
                .map(|at| format!("{} ({})", time(at), span(at, now)))
                .unwrap_or_default(),
            view,
        }
    }
}

#[derive(Template)]
#[template(path = "endpoints.html")]
struct EndpointsPage {
    ctx: Ctx,
    rows: Vec<EndpointRow>,
    next_page: Option<String>,
    /// A new endpoint's name and secret, shown once.
    created: Option<(String, String)>,
}

#[derive(Deserialize)]
pub struct PageQuery {
    cursor: Option<String>,
}

async fn show_list(
    req: &HttpRequest,
    state: &ApiState,
    cursor: Option<String>,
    created: Option<(String, String)>,
) -> PageResult {
    let (ctx, caller) = Ctx::new(req, "endpoints")?;
    let page = endpoints::list(
        state,
        &caller,
        ListEndpointsQuery {
            cursor,
            ..ListEndpointsQuery::default()
        },
    )
    .await?;
    render(&EndpointsPage {
        ctx,
        rows: page.items.into_iter().map(EndpointRow::new).collect(),
        next_page: page
            .next_cursor
            .map(|c| format!("/console/endpoints?cursor={}", crate::encode(&c))),
        created,
    })
}

pub async fn list(
    req: HttpRequest,
    state: web::Data<ApiState>,
    query: web::Query<PageQuery>,
) -> PageResult {
    show_list(&req, &state, given(&query.cursor), None).await
}

#[derive(Deserialize)]
pub struct NewEndpoint {
    name: String,
    url: String,
    app: Option<String>,
    event_types: Option<String>,
}

fn event_types(raw: &Option<String>) -> Option<Vec<String>> {
    given(raw).map(|list| {
        list.split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect()
    })
}

pub async fn create(
    req: HttpRequest,
    state: web::Data<ApiState>,
    form: web::Form<NewEndpoint>,
) -> PageResult {
    let (_, caller) = Ctx::new(&req, "endpoints")?;
    let form = form.into_inner();
    let view = endpoints::create(
        &state,
        &caller,
        CreateEndpointRequest {
            name: form.name.trim().to_string(),
            url: form.url.trim().to_string(),
            app: given(&form.app),
            event_types: event_types(&form.event_types),
            ..CreateEndpointRequest::default()
        },
    )
    .await?;
    callback_api::audit::note(&req, Some(view.name.clone()), None);
    let secret = view.secret.clone().unwrap_or_default();
    show_list(&req, &state, None, Some((view.name, secret))).await
}

#[derive(Template)]
#[template(path = "endpoint.html")]
struct EndpointPage {
    ctx: Ctx,
    row: EndpointRow,
    event_types: String,
    secret: Option<String>,
    tested: Option<(InvokeView, String)>,
    saved: bool,
}

async fn show_one(
    req: &HttpRequest,
    state: &ApiState,
    name: &str,
    secret: Option<String>,
    tested: Option<InvokeView>,
    saved: bool,
) -> PageResult {
    let (ctx, caller) = Ctx::new(req, "endpoints")?;
    let view = endpoints::get(state, &caller, name).await?;
    render(&EndpointPage {
        ctx,
        event_types: view.event_types.join(", "),
        row: EndpointRow::new(view),
        secret,
        tested: tested.map(|t| {
            let body = t.body.to_string();
            (t, body)
        }),
        saved,
    })
}

#[derive(Deserialize)]
pub struct EditEndpoint {
    url: String,
    enabled: Option<String>,
    event_types: Option<String>,
    rate_limit_per_s: Option<String>,
    max_in_flight: Option<String>,
}

fn number(field: &str, raw: &Option<String>) -> Result<Option<u32>, ApiError> {
    given(raw)
        .map(|n| {
            n.parse::<u32>()
                .map_err(|_| ApiError::invalid(field, "is not a whole number"))
        })
        .transpose()
}

pub async fn update(
    req: HttpRequest,
    state: web::Data<ApiState>,
    path: web::Path<String>,
    form: web::Form<EditEndpoint>,
) -> PageResult {
    let (_, caller) = Ctx::new(&req, "endpoints")?;
    let form = form.into_inner();
    endpoints::update(
        &state,
        &caller,
        &path,
        UpdateEndpointRequest {
            url: Some(form.url.trim().to_string()),
            enabled: Some(form.enabled.is_some()),
            event_types: Some(event_types(&form.event_types).unwrap_or_default()),
            rate_limit_per_s: Some(number("rate_limit_per_s", &form.rate_limit_per_s)?),
            max_in_flight: Some(number("max_in_flight", &form.max_in_flight)?),
            ..UpdateEndpointRequest::default()
        },
    )
    .await?;
    Ok(redirect(&format!(
        "/console/endpoints/{}?saved=1",
        crate::encode(&path)
    )))
}

pub async fn rotate(
    req: HttpRequest,
    state: web::Data<ApiState>,
    path: web::Path<String>,
) -> PageResult {
    let (_, caller) = Ctx::new(&req, "endpoints")?;
    let secret = endpoints::rotate(&state, &caller, &path).await?.secret;
    show_one(&req, &state, &path, Some(secret), None, false).await
}

pub async fn test(
    req: HttpRequest,
    state: web::Data<ApiState>,
    path: web::Path<String>,
) -> PageResult {
    let (ctx, caller) = Ctx::new(&req, "endpoints")?;
    let payload = serde_json::json!({
        "test": true,
        "sent_by": ctx.username,
        "at": Utc::now().to_rfc3339(),
    });
    let payload = serde_json::value::RawValue::from_string(payload.to_string())
        .map_err(|e| ApiError::Internal(Box::new(e)))?;
    let answer = endpoints::invoke(
        &state,
        &caller,
        &path,
        InvokeEndpointRequest {
            event_type: "console.test".into(),
            payload,
            app: None,
            timeout_ms: Some(5_000),
            fail_closed: None,
        },
    )
    .await?;
    show_one(&req, &state, &path, None, Some(answer), false).await
}

#[derive(Deserialize)]
pub struct Saved {
    saved: Option<String>,
}

pub async fn detail(
    req: HttpRequest,
    state: web::Data<ApiState>,
    path: web::Path<String>,
    query: web::Query<Saved>,
) -> PageResult {
    show_one(&req, &state, &path, None, None, query.saved.is_some()).await
}
