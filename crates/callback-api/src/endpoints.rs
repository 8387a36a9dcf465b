//! Endpoints: create, read, list, change, delete, rotate the secret, call
//! one synchronously; and the receivers whose breaker is open.

use crate::auth::Caller;
use crate::endpoint_dto::{
    BreakerList, CreateEndpointRequest, EndpointList, EndpointView, InvokeEndpointRequest,
    InvokeView, SecretView, UpdateEndpointRequest,
};
use crate::json_body::read_json;
use crate::paging::{page_limit, split_page};
use crate::{ApiError, ApiState};
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use callback_core::Scope;
use callback_core::{
    event_body, EndpointName, EventType, InvokeOutcome, InvokeRequest, NewEvent, QueryList,
    SignatureScheme, Signing, SigningSecret, TargetUrl, ValidationErrors,
};
use chrono::Utc;
use serde::Deserialize;
use std::time::Duration;

/// A synchronous call waits this long unless the caller says otherwise.
pub const DEFAULT_INVOKE_TIMEOUT_MS: u32 = 2_000;
const MAX_INVOKE_TIMEOUT_MS: u32 = 30_000;

fn parse_name(raw: &str) -> Result<EndpointName, ApiError> {
    EndpointName::parse(raw).map_err(|message| ApiError::invalid("name", message))
}

/// The endpoint, if it exists and the caller sees its application: an
/// application's key sees that application's endpoints only.
async fn load(
    state: &ApiState,
    caller: &Caller,
    name: &EndpointName,
) -> Result<callback_core::Endpoint, ApiError> {
    state
        .endpoints
        .endpoint(name)
        .await
        .map_err(ApiError::from_endpoint_store)?
        .filter(|e| caller.sees(e.app.as_deref()))
        .ok_or_else(|| ApiError::NotFound("no endpoint has this name".into()))
}

/// Create an endpoint. The answer shows its secret, once.
#[utoipa::path(
    post,
    path = "/api/v1/endpoints",
    tag = "endpoints",
    request_body = CreateEndpointRequest,
    responses(
        (status = 201, body = EndpointView),
        (status = 400, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The name is taken", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn create_endpoint(
    state: web::Data<ApiState>,
    caller: Caller,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let request: CreateEndpointRequest = read_json(&req, payload, state.max_body_bytes).await?;
    let view = create(&state, &caller, request).await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/v1/endpoints/{}", view.name)))
        .json(view))
}

/// Creates an endpoint; the view shows its secret, this once.
pub async fn create(
    state: &ApiState,
    caller: &Caller,
    mut request: CreateEndpointRequest,
) -> Result<EndpointView, ApiError> {
    caller.require(Scope::EndpointsManage)?;
    request.app = caller.app_for(request.app)?;
    let endpoint = request
        .into_endpoint(Utc::now())
        .map_err(ApiError::Validation)?;
    state.check_outbound("url", &endpoint.url)?;
    state
        .endpoints
        .create_endpoint(&endpoint)
        .await
        .map_err(ApiError::from_endpoint_store)?;
    state.receivers.forget_endpoint(&endpoint.name);
    Ok(EndpointView::new(&endpoint).with_secret(&endpoint))
}

/// An endpoint, with this instance's view of its receiver.
#[utoipa::path(
    get,
    path = "/api/v1/endpoints/{name}",
    tag = "endpoints",
    params(("name" = String, Path)),
    responses((status = 200, body = EndpointView), (status = 404, body = crate::error::Problem, content_type = "application/problem+json")),
    security(("bearer" = []))
)]
pub async fn get_endpoint(
    state: web::Data<ApiState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(get(&state, &caller, &path).await?))
}

/// An endpoint, with this instance's view of its receiver.
pub async fn get(state: &ApiState, caller: &Caller, name: &str) -> Result<EndpointView, ApiError> {
    caller.require(Scope::EndpointsManage)?;
    let name = parse_name(name)?;
    let endpoint = load(state, caller, &name).await?;
    let mut view = EndpointView::new(&endpoint);
    view.receiver = Some(state.receivers.endpoint_status(&name));
    Ok(view)
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListEndpointsQuery {
    /// 1 to 200, default 50.
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Endpoints by name, paginated.
#[utoipa::path(
    get,
    path = "/api/v1/endpoints",
    tag = "endpoints",
    params(ListEndpointsQuery),
    responses((status = 200, body = EndpointList)),
    security(("bearer" = []))
)]
pub async fn list_endpoints(
    state: web::Data<ApiState>,
    caller: Caller,
    query: web::Query<ListEndpointsQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    Ok(HttpResponse::Ok().json(list(&state, &caller, query).await?))
}

/// A page of endpoints by name, those the caller sees.
pub async fn list(
    state: &ApiState,
    caller: &Caller,
    query: ListEndpointsQuery,
) -> Result<EndpointList, ApiError> {
    caller.require(Scope::EndpointsManage)?;
    let mut errors = ValidationErrors::default();
    let limit = page_limit(&mut errors, query.limit);
    let after = crate::paging::cursor(&mut errors, query.cursor.as_deref(), EndpointName::parse);
    errors.into_result().map_err(ApiError::Validation)?;
    let items = state
        .endpoints
        .endpoints(after.as_ref(), limit + 1)
        .await
        .map_err(ApiError::from_endpoint_store)?;
    let (items, next_cursor) = split_page(items, limit, |e| e.name.to_string());
    // An application's key pages through every name but is shown its own
    // endpoints only: a page may hold fewer than `limit`.
    Ok(EndpointList {
        items: items
            .iter()
            .filter(|e| caller.sees(e.app.as_deref()))
            .map(|e| {
                let mut view = EndpointView::new(e);
                view.receiver = Some(state.receivers.endpoint_status(&e.name));
                view
            })
            .collect(),
        next_cursor,
    })
}

/// Change an endpoint. Enabling a disabled one makes its waiting tasks due
/// at once.
#[utoipa::path(
    patch,
    path = "/api/v1/endpoints/{name}",
    tag = "endpoints",
    params(("name" = String, Path)),
    request_body = UpdateEndpointRequest,
    responses((status = 200, body = EndpointView), (status = 400, body = crate::error::Problem, content_type = "application/problem+json"), (status = 404, body = crate::error::Problem, content_type = "application/problem+json")),
    security(("bearer" = []))
)]
pub async fn update_endpoint(
    state: web::Data<ApiState>,
    caller: Caller,
    path: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let request: UpdateEndpointRequest = read_json(&req, payload, state.max_body_bytes).await?;
    Ok(HttpResponse::Ok().json(update(&state, &caller, &path, request).await?))
}

/// Changes an endpoint.
pub async fn update(
    state: &ApiState,
    caller: &Caller,
    name: &str,
    request: UpdateEndpointRequest,
) -> Result<EndpointView, ApiError> {
    caller.require(Scope::EndpointsManage)?;
    let name = parse_name(name)?;
    if let Some(app) = &request.app {
        if caller.app.is_some() && caller.app_for(app.clone())? != *app {
            return Err(ApiError::Forbidden(
                "this key's endpoints belong to its application; `app` cannot be cleared".into(),
            ));
        }
    }
    let endpoint = change(state, caller, &name, request).await?;
    Ok(EndpointView::new(&endpoint))
}

/// Enable an endpoint, whether an operator or the server disabled it: its
/// waiting tasks are due at once, and the events held while it was
/// disabled for failing are delivered, in the order they were accepted.
#[utoipa::path(
    post,
    path = "/api/v1/endpoints/{name}/enable",
    tag = "endpoints",
    params(("name" = String, Path)),
    responses((status = 200, body = EndpointView), (status = 404, body = crate::error::Problem, content_type = "application/problem+json")),
    security(("bearer" = []))
)]
pub async fn enable_endpoint(
    state: web::Data<ApiState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::EndpointsManage)?;
    let name = parse_name(&path)?;
    let enable = UpdateEndpointRequest {
        enabled: Some(true),
        ..UpdateEndpointRequest::default()
    };
    let endpoint = change(&state, &caller, &name, enable).await?;
    Ok(HttpResponse::Ok().json(EndpointView::new(&endpoint)))
}

/// Applies `request` to the endpoint and stores it; when that enabled it,
/// wakes its waiting and held tasks.
async fn change(
    state: &ApiState,
    caller: &Caller,
    name: &EndpointName,
    request: UpdateEndpointRequest,
) -> Result<callback_core::Endpoint, ApiError> {
    let mut endpoint = load(state, caller, name).await?;
    let was_enabled = endpoint.enabled;
    let now = Utc::now();
    request
        .apply(&mut endpoint, now)
        .map_err(ApiError::Validation)?;
    state.check_outbound("url", &endpoint.url)?;
    state
        .endpoints
        .update_endpoint(&endpoint)
        .await
        .map_err(ApiError::from_endpoint_store)?;
    state.receivers.forget_endpoint(name);
    if endpoint.enabled && !was_enabled {
        let woken = state
            .endpoints
            .wake_endpoint(name, now)
            .await
            .map_err(ApiError::from_endpoint_store)?;
        let due: Vec<_> = woken.into_iter().map(|id| (id, now)).collect();
        state.dispatch.accepted_many(&due).await;
    }
    Ok(endpoint)
}

/// Delete an endpoint; its unfinished tasks are cancelled.
#[utoipa::path(
    delete,
    path = "/api/v1/endpoints/{name}",
    tag = "endpoints",
    params(("name" = String, Path)),
    responses((status = 204, description = "Deleted"), (status = 404, body = crate::error::Problem, content_type = "application/problem+json")),
    security(("bearer" = []))
)]
pub async fn delete_endpoint(
    state: web::Data<ApiState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::EndpointsManage)?;
    let name = parse_name(&path)?;
    load(&state, &caller, &name).await?;
    state
        .endpoints
        .delete_endpoint(&name, Utc::now())
        .await
        .map_err(ApiError::from_endpoint_store)?;
    state.receivers.forget_endpoint(&name);
    Ok(HttpResponse::NoContent().finish())
}

/// Replace the secret. The answer shows the new one, once; requests from
/// now on are signed with it.
#[utoipa::path(
    post,
    path = "/api/v1/endpoints/{name}/rotate-secret",
    tag = "endpoints",
    params(("name" = String, Path)),
    responses((status = 200, body = SecretView), (status = 404, body = crate::error::Problem, content_type = "application/problem+json")),
    security(("bearer" = []))
)]
pub async fn rotate_secret(
    state: web::Data<ApiState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(rotate(&state, &caller, &path).await?))
}

/// Replaces the endpoint's secret; the view shows the new one, this once.
pub async fn rotate(state: &ApiState, caller: &Caller, name: &str) -> Result<SecretView, ApiError> {
    caller.require(Scope::EndpointsManage)?;
    let name = parse_name(name)?;
    let mut endpoint = load(state, caller, &name).await?;
    endpoint.secret = SigningSecret::generate();
    endpoint.updated_at = Utc::now();
    state
        .endpoints
        .update_endpoint(&endpoint)
        .await
        .map_err(ApiError::from_endpoint_store)?;
    state.receivers.forget_endpoint(&name);
    Ok(SecretView {
        secret: endpoint.secret.expose().to_string(),
    })
}

/// Call the endpoint now and return its answer. On a timeout, a connection
/// error or a 5xx the answer is a fail-open `fallback` (or 502 with
/// `fail_closed`), and the failure is logged.
#[utoipa::path(
    post,
    path = "/api/v1/endpoints/{name}/invoke",
    tag = "endpoints",
    params(("name" = String, Path)),
    request_body = InvokeEndpointRequest,
    responses(
        (status = 200, body = InvokeView),
        (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 502, description = "The call failed and fail_closed was asked", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn invoke_endpoint(
    state: web::Data<ApiState>,
    caller: Caller,
    path: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let request: InvokeEndpointRequest = read_json(&req, payload, state.max_body_bytes).await?;
    Ok(HttpResponse::Ok().json(invoke(&state, &caller, &path, request).await?))
}

/// Calls the endpoint now; its answer, or the fallback.
pub async fn invoke(
    state: &ApiState,
    caller: &Caller,
    name: &str,
    mut request: InvokeEndpointRequest,
) -> Result<InvokeView, ApiError> {
    caller.require(Scope::EventsPublish)?;
    let name = parse_name(name)?;
    request.app = caller.app_for(request.app)?;
    let mut errors = ValidationErrors::default();
    let event_type = errors.take("event_type", EventType::parse(&request.event_type));
    let timeout_ms = request.timeout_ms.unwrap_or(DEFAULT_INVOKE_TIMEOUT_MS);
    if !(1..=MAX_INVOKE_TIMEOUT_MS).contains(&timeout_ms) {
        errors.push(
            "timeout_ms",
            format!("must be between 1 and {MAX_INVOKE_TIMEOUT_MS}"),
        );
    }
    errors.clone().into_result().map_err(ApiError::Validation)?;
    let Some(event_type) = event_type else {
        return Err(ApiError::Validation(errors));
    };
    let endpoint = load(state, caller, &name).await?;

    let call_id = format!("invoke_{}", uuid::Uuid::now_v7().simple());
    let event = NewEvent {
        call_id: call_id.clone(),
        event_type: event_type.clone(),
        app: request.app.clone(),
        payload: request.payload,
        created_at: Utc::now(),
        ordering: None,
    };
    let mut query = vec![("event_type".to_string(), event_type.as_str().to_string())];
    if let Some(app) = &request.app {
        query.push(("app".into(), app.clone()));
    }
    let url = with_query(&endpoint.url, &QueryList(query))?;
    let signing = (endpoint.signature == SignatureScheme::Standard)
        .then(|| (call_id, Signing::Standard(endpoint.secret.clone())));
    let outcome = state
        .invoker
        .invoke(InvokeRequest {
            url,
            headers: endpoint.headers.clone(),
            body: event_body(&endpoint, &event),
            signing,
            timeout: Duration::from_millis(u64::from(timeout_ms)),
        })
        .await;
    match outcome {
        InvokeOutcome::Answered {
            status,
            body,
            duration_ms,
        } => Ok(InvokeView {
            outcome: "answered",
            status: Some(status),
            body: serde_json::from_slice(&body)
                .unwrap_or_else(|_| String::from_utf8_lossy(&body).into_owned().into()),
            error: None,
            duration_ms,
        }),
        InvokeOutcome::Failed {
            status,
            error,
            duration_ms,
        } => {
            let fallbacks = state.count_invoke_failure(&name);
            tracing::error!(
                endpoint = %name,
                event_type = event_type.as_str(),
                error = %error,
                fallbacks,
                fail_closed = request.fail_closed.unwrap_or(false),
                "synchronous call failed; answering with the fallback"
            );
            if request.fail_closed.unwrap_or(false) {
                return Err(ApiError::InvokeFailed(error));
            }
            Ok(InvokeView {
                outcome: "fallback",
                status,
                body: serde_json::Value::Null,
                error: Some(error),
                duration_ms,
            })
        }
    }
}

fn with_query(url: &TargetUrl, query: &QueryList) -> Result<TargetUrl, ApiError> {
    let mut url = url.as_url().clone();
    url.query_pairs_mut().extend_pairs(query.0.iter());
    TargetUrl::parse(url.as_str())
        .map_err(|e| ApiError::MalformedBody(format!("endpoint URL: {e}")))
}

/// Receivers whose circuit breaker is open or half open, on this instance.
#[utoipa::path(
    get,
    path = "/api/v1/breakers",
    tag = "endpoints",
    responses((status = 200, body = BreakerList)),
    security(("bearer" = []))
)]
pub async fn list_breakers(
    state: web::Data<ApiState>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::Operator)?;
    Ok(HttpResponse::Ok().json(BreakerList {
        items: state.receivers.open_breakers(),
    }))
}
