//! Vendor callbacks: routes (add, change the lifetime, delete; admins),
//! the log of what came in, and those waiting for a route, each with
//! "forward to…".

use super::{given, render, time, Ctx, PageResult};
use actix_web::{web, HttpRequest};
use askama::Template;
use callback_api::inbound::{
    self, InboundQuery, InboundView, ListRoutesQuery, RouteView, UpsertRouteRequest,
};
use callback_api::{ApiError, ApiState};
use callback_core::Scope;
use serde::Deserialize;

#[derive(Template)]
#[template(path = "inbound.html")]
struct InboundPage {
    ctx: Ctx,
    /// `None` for a caller who may not manage routes.
    routes: Option<Vec<RouteView>>,
    log: Vec<InboundView>,
    unrouted: Vec<InboundView>,
    notice: Option<String>,
}

impl InboundPage {
    fn when(&self, at: &chrono::DateTime<chrono::Utc>) -> String {
        time(*at)
    }
}

async fn show(req: &HttpRequest, state: &ApiState, notice: Option<String>) -> PageResult {
    let (ctx, caller) = Ctx::new(req, "inbound")?;
    let routes = if caller.require(Scope::Admin).is_ok() {
        Some(
            inbound::routes(state, &caller, &ListRoutesQuery::default())
                .await?
                .items,
        )
    } else {
        None
    };
    let log = inbound::records(state, &caller, &InboundQuery::default(), false)
        .await?
        .items;
    let unrouted = inbound::records(state, &caller, &InboundQuery::default(), true)
        .await?
        .items;
    render(&InboundPage {
        ctx,
        routes,
        log,
        unrouted,
        notice,
    })
}

pub async fn page(req: HttpRequest, state: web::Data<ApiState>) -> PageResult {
    show(&req, &state, None).await
}

#[derive(Deserialize)]
pub struct RouteForm {
    namespace: String,
    key: String,
    target_url: String,
    ttl_s: Option<String>,
    remark: Option<String>,
}

pub async fn upsert(
    req: HttpRequest,
    state: web::Data<ApiState>,
    form: web::Form<RouteForm>,
) -> PageResult {
    let (ctx, caller) = Ctx::new(&req, "inbound")?;
    let form = form.into_inner();
    let ttl_s = given(&form.ttl_s)
        .map(|t| {
            t.parse::<u32>()
                .map_err(|_| ApiError::invalid("ttl_s", "is not a whole number"))
        })
        .transpose()?;
    let (view, _) = inbound::upsert(
        &state,
        &caller,
        UpsertRouteRequest {
            namespace: form.namespace.trim().to_string(),
            key: form.key.trim().to_string(),
            target_url: form.target_url.trim().to_string(),
            ttl_s,
            expires_at: None,
            remark: given(&form.remark),
            headers: None,
        },
    )
    .await?;
    let count = view.forwarded_waiting.unwrap_or(0).to_string();
    show(
        &req,
        &state,
        Some(ctx.t.fill("inbound.saved", &[("count", count)])),
    )
    .await
}

pub async fn delete(
    req: HttpRequest,
    state: web::Data<ApiState>,
    path: web::Path<(String, String)>,
) -> PageResult {
    let (_, caller) = Ctx::new(&req, "inbound")?;
    inbound::delete(&state, &caller, &path).await?;
    show(&req, &state, None).await
}

#[derive(Deserialize)]
pub struct ForwardForm {
    target_url: String,
}

pub async fn forward(
    req: HttpRequest,
    state: web::Data<ApiState>,
    path: web::Path<String>,
    form: web::Form<ForwardForm>,
) -> PageResult {
    let (ctx, caller) = Ctx::new(&req, "inbound")?;
    inbound::forward(&state, &caller, &path, form.target_url.trim()).await?;
    show(&req, &state, Some(ctx.t.get("inbound.forwarded").into())).await
}
