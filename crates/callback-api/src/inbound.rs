//! The API of routes and recorded callbacks (`/api/v1/routes`,
//! `/api/v1/inbound`): where vendor callbacks go, and what came in.

use crate::auth::Caller;
use crate::json_body::read_json;
use crate::paging::{page_limit, split_page};
use crate::{ApiError, ApiState};
use actix_web::{web, HttpRequest, HttpResponse};
use callback_core::Scope;
use callback_core::{
    HeaderList, InboundFilter, InboundRecord, InboundStatus, Namespace, Route, RouteKey,
    StoreError, TargetUrl, ValidationErrors,
};
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// A route to create or replace.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpsertRouteRequest {
    #[schema(example = "moderate")]
    pub namespace: String,
    #[schema(example = "60f96f1d-3845297a-1976a3ae")]
    pub key: String,
    pub target_url: String,
    /// The route expires this many seconds from now...
    pub ttl_s: Option<u32>,
    /// ...or at this time (not both).
    pub expires_at: Option<DateTime<Utc>>,
    pub remark: Option<String>,
    pub headers: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RouteView {
    pub namespace: String,
    pub key: String,
    pub target_url: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub remark: Option<String>,
    pub headers: BTreeMap<String, String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// In the answer to an upsert: callbacks that waited for this route and
    /// were forwarded now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forwarded_waiting: Option<u64>,
}

impl RouteView {
    fn new(r: &Route) -> Self {
        Self {
            namespace: r.namespace.to_string(),
            key: r.key.to_string(),
            target_url: r.target_url.to_string(),
            expires_at: r.expires_at,
            remark: r.remark.clone(),
            headers: r
                .headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            created_at: r.created_at,
            updated_at: r.updated_at,
            forwarded_waiting: None,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RouteList {
    pub items: Vec<RouteView>,
    pub next_cursor: Option<String>,
}

/// Create or replace the route of (namespace, key); callbacks that waited
/// for it are forwarded at once.
#[utoipa::path(post, path = "/api/v1/routes", tag = "inbound", request_body = UpsertRouteRequest, responses((status = 201, description = "Created", body = RouteView), (status = 200, description = "Replaced", body = RouteView), (status = 400, body = crate::error::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn upsert_route(
    state: web::Data<ApiState>,
    caller: Caller,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let request: UpsertRouteRequest = read_json(&req, payload, state.max_body_bytes).await?;
    let (view, created) = upsert(&state, &caller, request).await?;
    Ok(if created {
        HttpResponse::Created().json(view)
    } else {
        HttpResponse::Ok().json(view)
    })
}

/// Creates or replaces a route and forwards what waited for it; whether
/// it was created.
pub async fn upsert(
    state: &ApiState,
    caller: &Caller,
    request: UpsertRouteRequest,
) -> Result<(RouteView, bool), ApiError> {
    caller.require(Scope::Admin)?;
    let now = Utc::now();
    let mut errors = ValidationErrors::default();
    let namespace = errors.take("namespace", Namespace::parse(&request.namespace));
    let key = errors.take("key", RouteKey::parse(&request.key));
    let target_url = errors.take("target_url", TargetUrl::parse(&request.target_url));
    let headers = errors.take(
        "headers",
        HeaderList::parse(request.headers.unwrap_or_default().into_iter().collect()),
    );
    let expires_at = match (request.ttl_s, request.expires_at) {
        (Some(_), Some(_)) => {
            errors.push("ttl_s", "give either ttl_s or expires_at, not both");
            None
        }
        (Some(0), None) => {
            errors.push("ttl_s", "must be at least 1");
            None
        }
        (Some(s), None) => Some(now + TimeDelta::seconds(i64::from(s))),
        (None, at) => at,
    };
    let remark = crate::dto::label(&mut errors, "remark", request.remark, 255);
    errors.clone().into_result().map_err(ApiError::Validation)?;
    let (Some(namespace), Some(key), Some(target_url), Some(headers)) =
        (namespace, key, target_url, headers)
    else {
        return Err(ApiError::Validation(errors));
    };
    state.check_outbound("target_url", &target_url)?;
    let route = Route {
        namespace,
        key,
        target_url,
        expires_at,
        remark,
        headers,
        created_at: now,
        updated_at: now,
    };
    let created = state
        .inbound_store
        .upsert_route(&route)
        .await
        .map_err(ApiError::StoreUnavailable)?;
    let forwarded = state
        .inbound
        .route_changed(&route.namespace, &route.key)
        .await
        .map_err(ApiError::StoreUnavailable)?;
    let stored = state
        .inbound_store
        .route(&route.namespace, &route.key)
        .await
        .map_err(ApiError::StoreUnavailable)?
        .unwrap_or(route);
    let mut view = RouteView::new(&stored);
    view.forwarded_waiting = Some(forwarded);
    state
        .observer
        .accepted(None, callback_core::Intake::Inbound, forwarded);
    Ok((view, created))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListRoutesQuery {
    pub namespace: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// Routes by namespace and key, paginated.
#[utoipa::path(get, path = "/api/v1/routes", tag = "inbound", params(ListRoutesQuery), responses((status = 200, body = RouteList)), security(("bearer" = [])))]
pub async fn list_routes(
    state: web::Data<ApiState>,
    caller: Caller,
    query: web::Query<ListRoutesQuery>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(routes(&state, &caller, &query).await?))
}

/// A page of routes by namespace and key.
pub async fn routes(
    state: &ApiState,
    caller: &Caller,
    query: &ListRoutesQuery,
) -> Result<RouteList, ApiError> {
    caller.require(Scope::Admin)?;
    let mut errors = ValidationErrors::default();
    let namespace = query
        .namespace
        .as_deref()
        .and_then(|n| errors.take("namespace", Namespace::parse(n)));
    let limit = page_limit(&mut errors, query.limit);
    let after = crate::paging::cursor(&mut errors, query.cursor.as_deref(), |c| {
        c.split_once('/')
            .and_then(|(ns, key)| Some((Namespace::parse(ns).ok()?, RouteKey::parse(key).ok()?)))
            .ok_or(())
    });
    errors.into_result().map_err(ApiError::Validation)?;
    let items = state
        .inbound_store
        .routes(namespace.as_ref(), after, limit + 1)
        .await
        .map_err(ApiError::StoreUnavailable)?;
    let (items, next_cursor) = split_page(items, limit, |r| format!("{}/{}", r.namespace, r.key));
    Ok(RouteList {
        items: items.iter().map(RouteView::new).collect(),
        next_cursor,
    })
}

fn route_id(path: &(String, String)) -> Result<(Namespace, RouteKey), ApiError> {
    let ns = Namespace::parse(&path.0).map_err(|e| ApiError::invalid("namespace", e))?;
    let key = RouteKey::parse(&path.1).map_err(|e| ApiError::invalid("key", e))?;
    Ok((ns, key))
}

/// One route.
#[utoipa::path(get, path = "/api/v1/routes/{namespace}/{key}", tag = "inbound", params(("namespace" = String, Path), ("key" = String, Path)), responses((status = 200, body = RouteView), (status = 404, body = crate::error::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn get_route(
    state: web::Data<ApiState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::Admin)?;
    let (ns, key) = route_id(&path)?;
    let route = state
        .inbound_store
        .route(&ns, &key)
        .await
        .map_err(ApiError::StoreUnavailable)?
        .ok_or_else(|| ApiError::NotFound("no route for this namespace and key".into()))?;
    Ok(HttpResponse::Ok().json(RouteView::new(&route)))
}

/// Delete a route; every instance stops using it at once.
#[utoipa::path(delete, path = "/api/v1/routes/{namespace}/{key}", tag = "inbound", params(("namespace" = String, Path), ("key" = String, Path)), responses((status = 204, description = "Deleted"), (status = 404, body = crate::error::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn delete_route(
    state: web::Data<ApiState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    delete(&state, &caller, &path).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Deletes the route of (namespace, key); every instance stops using it.
pub async fn delete(
    state: &ApiState,
    caller: &Caller,
    path: &(String, String),
) -> Result<(), ApiError> {
    caller.require(Scope::Admin)?;
    let (ns, key) = route_id(path)?;
    state
        .inbound_store
        .delete_route(&ns, &key)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => {
                ApiError::NotFound("no route for this namespace and key".into())
            }
            other => ApiError::StoreUnavailable(other),
        })?;
    state.inbound.forget(&ns, &key).await;
    Ok(())
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InboundView {
    pub id: String,
    pub source: String,
    pub namespace: Option<String>,
    pub key: Option<String>,
    pub received_at: DateTime<Utc>,
    pub content_type: String,
    pub size: usize,
    /// `forwarded`, `unrouted` or `ignored`.
    pub status: &'static str,
    /// The task that forwarded it.
    pub task_id: Option<String>,
    /// The body as received (lossy UTF-8), in the detail view.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

impl InboundView {
    fn new(r: &InboundRecord, with_body: bool) -> Self {
        Self {
            id: r.id.to_string(),
            source: r.source.clone(),
            namespace: r.namespace.as_ref().map(|n| n.to_string()),
            key: r.key.as_ref().map(|k| k.to_string()),
            received_at: r.received_at,
            content_type: r.content_type.clone(),
            size: r.body.len(),
            status: r.status.as_str(),
            task_id: r.task_id.map(|t| t.to_string()),
            body: with_body.then(|| String::from_utf8_lossy(&r.body).into_owned()),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InboundList {
    pub items: Vec<InboundView>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct InboundQuery {
    pub source: Option<String>,
    pub namespace: Option<String>,
    pub key: Option<String>,
    /// `forwarded`, `unrouted` or `ignored`.
    pub status: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// A page of recorded callbacks, newest first; `unrouted_only` lists those
/// waiting for a route.
pub async fn records(
    state: &ApiState,
    caller: &Caller,
    query: &InboundQuery,
    unrouted_only: bool,
) -> Result<InboundList, ApiError> {
    caller.require(Scope::Operator)?;
    let status = unrouted_only.then_some(InboundStatus::Unrouted);
    let mut errors = ValidationErrors::default();
    let filter = InboundFilter {
        source: query.source.clone(),
        namespace: query
            .namespace
            .as_deref()
            .and_then(|n| errors.take("namespace", Namespace::parse(n))),
        key: query
            .key
            .as_deref()
            .and_then(|k| errors.take("key", RouteKey::parse(k))),
        status: status.or_else(|| {
            query
                .status
                .as_deref()
                .and_then(|s| errors.take("status", InboundStatus::parse(s)))
        }),
    };
    let limit = page_limit(&mut errors, query.limit);
    let before = crate::paging::cursor(
        &mut errors,
        query.cursor.as_deref(),
        str::parse::<uuid::Uuid>,
    );
    errors.into_result().map_err(ApiError::Validation)?;
    let items = state
        .inbound_store
        .inbound(&filter, before, limit + 1)
        .await
        .map_err(ApiError::StoreUnavailable)?;
    let (items, next_cursor) = split_page(items, limit, |r| r.id.to_string());
    Ok(InboundList {
        items: items.iter().map(|r| InboundView::new(r, false)).collect(),
        next_cursor,
    })
}

/// Every inbound callback recorded, newest first, searchable.
#[utoipa::path(get, path = "/api/v1/inbound", tag = "inbound", params(InboundQuery), responses((status = 200, body = InboundList)), security(("bearer" = [])))]
pub async fn list_inbound(
    state: web::Data<ApiState>,
    caller: Caller,
    query: web::Query<InboundQuery>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(records(&state, &caller, &query, false).await?))
}

/// Callbacks waiting for a route.
#[utoipa::path(get, path = "/api/v1/inbound/unrouted", tag = "inbound", params(InboundQuery), responses((status = 200, body = InboundList)), security(("bearer" = [])))]
pub async fn list_unrouted(
    state: web::Data<ApiState>,
    caller: Caller,
    query: web::Query<InboundQuery>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(records(&state, &caller, &query, true).await?))
}

async fn load_record(state: &ApiState, id: uuid::Uuid) -> Result<InboundRecord, ApiError> {
    state
        .inbound_store
        .inbound_record(id)
        .await
        .map_err(ApiError::StoreUnavailable)?
        .ok_or_else(|| ApiError::NotFound("no inbound callback has this id".into()))
}

fn parse_record_id(raw: &str) -> Result<uuid::Uuid, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::invalid("id", "is not an inbound callback id"))
}

/// One recorded callback, with its body.
#[utoipa::path(get, path = "/api/v1/inbound/{id}", tag = "inbound", params(("id" = String, Path)), responses((status = 200, body = InboundView), (status = 404, body = crate::error::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn get_inbound(
    state: web::Data<ApiState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::Operator)?;
    let record = load_record(&state, parse_record_id(&path)?).await?;
    Ok(HttpResponse::Ok().json(InboundView::new(&record, true)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForwardRequest {
    pub target_url: String,
}

/// Forward a recorded callback to a URL of the operator's choice.
#[utoipa::path(post, path = "/api/v1/inbound/{id}/forward", tag = "inbound", params(("id" = String, Path)), request_body = ForwardRequest, responses((status = 200, body = InboundView), (status = 404, body = crate::error::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn forward_inbound(
    state: web::Data<ApiState>,
    caller: Caller,
    path: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let request: ForwardRequest = read_json(&req, payload, state.max_body_bytes).await?;
    Ok(HttpResponse::Ok().json(forward(&state, &caller, &path, &request.target_url).await?))
}

/// Forwards a recorded callback to a URL of the operator's choice.
pub async fn forward(
    state: &ApiState,
    caller: &Caller,
    id: &str,
    target_url: &str,
) -> Result<InboundView, ApiError> {
    caller.require(Scope::Operator)?;
    let id = parse_record_id(id)?;
    let url = TargetUrl::parse(target_url).map_err(|e| ApiError::invalid("target_url", e))?;
    state.check_outbound("target_url", &url)?;
    state
        .inbound
        .forward_to(id, url)
        .await
        .map_err(ApiError::StoreUnavailable)?
        .ok_or_else(|| ApiError::NotFound("no inbound callback has this id".into()))?;
    let record = load_record(state, id).await?;
    Ok(InboundView::new(&record, false))
}
