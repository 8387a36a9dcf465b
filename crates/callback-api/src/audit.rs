//! The audit log: every state-changing request under `/api/v1` is recorded
//! by one middleware, so no handler can forget it. Handlers add what only
//! they know (a new id, a bulk filter and count) with [`note`].
//! Submissions (tasks, batches, events) are deliveries, not
//! administration, and are not recorded.

use crate::auth::{Caller, ClientAddress};
use crate::{ApiError, ApiState};
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, Error, HttpMessage, HttpRequest, HttpResponse};
use callback_core::{
    AuditEntry, AuditFilter, AuditId, PageRequest, Principal, Scope, ValidationErrors,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;

/// What a handler adds to its request's audit entry.
#[derive(Debug, Clone)]
struct AuditNote {
    target: Option<String>,
    detail: Option<Value>,
}

/// Adds the ids acted on (when the path does not name them) and details
/// to this request's audit entry.
pub fn note(req: &HttpRequest, target: Option<String>, detail: Option<Value>) {
    req.extensions_mut().insert(AuditNote { target, detail });
}

/// The stable name of an action, by method and route. The console's
/// routes mirror the API's under `/console`, so that an action has one name
/// whichever way it was taken.
fn action_name(method: &Method, pattern: &str) -> String {
    let route = pattern
        .strip_prefix("/api/v1")
        .or_else(|| pattern.strip_prefix("/console"))
        .unwrap_or(pattern);
    let name = match (method.as_str(), route) {
        ("POST", "/tasks/{task_id}/retry") => "task.retry",
        ("POST", "/tasks/{task_id}/cancel") => "task.cancel",
        ("POST", "/tasks/retry") => "tasks.retry",
        ("POST", "/tasks/cancel") => "tasks.cancel",
        ("POST", "/endpoints") => "endpoint.create",
        ("PATCH", "/endpoints/{name}") | ("POST", "/endpoints/{name}") => "endpoint.update",
        ("DELETE", "/endpoints/{name}") => "endpoint.delete",
        ("POST", "/endpoints/{name}/rotate-secret") => "endpoint.rotate_secret",
        ("POST", "/endpoints/{name}/invoke") | ("POST", "/endpoints/{name}/test") => {
            "endpoint.invoke"
        }
        ("POST", "/alert-hooks") => "alert_hook.create",
        ("PATCH", "/alert-hooks/{id}") => "alert_hook.update",
        ("DELETE", "/alert-hooks/{id}") => "alert_hook.delete",
        ("POST", "/alert-hooks/{id}/test") => "alert_hook.test",
        ("POST", "/routes") => "route.upsert",
        ("DELETE", "/routes/{namespace}/{key}") | ("POST", "/routes/{namespace}/{key}/delete") => {
            "route.delete"
        }
        ("POST", "/inbound/{id}/forward") => "inbound.forward",
        ("POST", "/failed-buckets/retry") => "failed_bucket.retry",
        ("POST", "/keys") => "key.create",
        ("DELETE", "/keys/{id}") | ("POST", "/keys/{id}/revoke") => "key.revoke",
        ("POST", "/login") => "console.sign_in",
        ("POST", "/logout") => "console.sign_out",
        ("POST", "/accounts") => "account.create",
        ("POST", "/accounts/{id}/disable") => "account.disable",
        ("POST", "/accounts/{id}/enable") => "account.enable",
        ("POST", "/accounts/{id}/reset-password") => "account.reset_password",
        _ => return format!("{method} {route}"),
    };
    name.to_string()
}

/// Requests that change nothing, or that submit work: not recorded. The
/// submission routes have no path parameters, so the path itself tells
/// them: the hot path (every submitted task) is passed by without looking
/// its route pattern up.
fn is_audited(method: &Method, path: &str) -> bool {
    let reads = [Method::GET, Method::HEAD, Method::OPTIONS];
    let submissions = ["/api/v1/tasks", "/api/v1/tasks/batch", "/api/v1/events"];
    let submission = method == Method::POST && submissions.contains(&path);
    !reads.contains(method) && !submission
}

/// Records each state-changing request once it is answered, whatever the
/// answer (a refused attempt is worth knowing too). A failed append is
/// logged and does not undo the answer: the action has happened.
pub async fn record(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let response = next.call(req).await?;
    let request = response.request();
    if !is_audited(request.method(), request.path()) {
        return Ok(response);
    }
    let Some(pattern) = request.match_pattern() else {
        return Ok(response);
    };
    let (Some(state), Some(principal)) = (
        request.app_data::<web::Data<ApiState>>().cloned(),
        request.extensions().get::<Arc<Principal>>().cloned(),
    ) else {
        return Ok(response);
    };
    let note = request.extensions().get::<AuditNote>().cloned();
    let path_ids: Vec<&str> = request.match_info().iter().map(|(_, v)| v).collect();
    let target = note
        .as_ref()
        .and_then(|n| n.target.clone())
        .or_else(|| (!path_ids.is_empty()).then(|| path_ids.join("/")));
    let client = request
        .extensions()
        .get::<ClientAddress>()
        .and_then(|c| c.0);
    let entry = AuditEntry {
        id: AuditId::new(),
        at: Utc::now(),
        actor: principal.actor.label(),
        actor_name: principal.actor.name().to_string(),
        ip: client.map(|ip| ip.to_string()),
        action: action_name(request.method(), &pattern),
        method: request.method().to_string(),
        path: request.path().to_string(),
        target,
        detail: note.and_then(|n| n.detail),
        status: response.status().as_u16(),
    };
    if let Err(err) = state.audit.append_audit(&entry).await {
        tracing::error!(
            error = %err,
            action = %entry.action,
            actor = %entry.actor,
            "could not append to the audit log"
        );
    }
    Ok(response)
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// `admin`, `key:<id>` or `account:<username>`.
    pub actor: Option<String>,
    /// e.g. `task.retry`, `key.create`.
    pub action: Option<String>,
    /// RFC 3339; entries at or after.
    pub since: Option<DateTime<Utc>>,
    /// RFC 3339; entries at or before.
    pub until: Option<DateTime<Utc>>,
    /// 1 to 200; default 50.
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditView {
    pub id: String,
    pub at: DateTime<Utc>,
    /// `admin`, `key:<id>` or `account:<username>`.
    pub actor: String,
    pub actor_name: String,
    pub ip: Option<String>,
    pub action: String,
    pub method: String,
    pub path: String,
    pub target: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub detail: Option<Value>,
    /// The HTTP status answered.
    pub status: u16,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditList {
    pub items: Vec<AuditView>,
    pub next_cursor: Option<String>,
}

impl From<AuditEntry> for AuditView {
    fn from(e: AuditEntry) -> Self {
        Self {
            id: e.id.to_string(),
            at: e.at,
            actor: e.actor,
            actor_name: e.actor_name,
            ip: e.ip,
            action: e.action,
            method: e.method,
            path: e.path,
            target: e.target,
            detail: e.detail,
            status: e.status,
        }
    }
}

/// The audit log, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/audit",
    tag = "audit",
    params(AuditQuery),
    responses(
        (status = 200, body = AuditList),
        (status = 400, description = "Invalid filter", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn list_audit(
    state: web::Data<ApiState>,
    caller: Caller,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let query = web::Query::<AuditQuery>::from_query(req.query_string())
        .map_err(|e| ApiError::invalid("query", e.to_string()))?
        .into_inner();
    Ok(HttpResponse::Ok().json(entries(&state, &caller, query).await?))
}

/// A page of the audit log, newest first.
pub async fn entries(
    state: &ApiState,
    caller: &Caller,
    query: AuditQuery,
) -> Result<AuditList, ApiError> {
    caller.require(Scope::Admin)?;
    let mut errors = ValidationErrors::default();
    let limit = crate::paging::page_limit(&mut errors, query.limit);
    let after = crate::paging::cursor(&mut errors, query.cursor.as_deref(), str::parse::<AuditId>);
    errors.into_result().map_err(ApiError::Validation)?;
    let filter = AuditFilter {
        actor: query.actor,
        action: query.action,
        since: query.since,
        until: query.until,
    };
    let page = state
        .audit
        .audit(&filter, PageRequest { limit, after })
        .await
        .map_err(|e| ApiError::from_store(e, "read"))?;
    Ok(AuditList {
        items: page.items.into_iter().map(AuditView::from).collect(),
        next_cursor: page.next_cursor.map(|id| id.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_are_named_by_route_and_submissions_are_not_audited() {
        assert_eq!(
            action_name(&Method::POST, "/api/v1/tasks/{task_id}/retry"),
            "task.retry"
        );
        // The console's mirror of a route is the same action.
        assert_eq!(
            action_name(&Method::POST, "/console/tasks/{task_id}/retry"),
            "task.retry"
        );
        assert_eq!(
            action_name(&Method::POST, "/console/accounts"),
            "account.create"
        );
        assert_eq!(
            action_name(&Method::DELETE, "/api/v1/keys/{id}"),
            "key.revoke"
        );
        assert_eq!(
            action_name(&Method::PUT, "/api/v1/somewhere"),
            "PUT /somewhere"
        );
        assert!(!is_audited(&Method::POST, "/api/v1/tasks"));
        assert!(!is_audited(&Method::POST, "/api/v1/events"));
        assert!(!is_audited(&Method::GET, "/api/v1/tasks/0193aa"));
        assert!(is_audited(&Method::POST, "/api/v1/tasks/retry"));
        assert!(is_audited(&Method::DELETE, "/api/v1/endpoints/orders"));
    }
}
