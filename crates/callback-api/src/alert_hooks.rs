//! Alert hooks: create, read, list, change, delete, and send a test
//! message. Secrets are write-only; tokens in hook URLs are masked.

use crate::auth::Caller;
use crate::dto::label;
use crate::json_body::read_json;
use crate::{ApiError, ApiState};
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use callback_core::Scope;
use callback_core::{
    alert_test_body, robot_accepted, AlertHook, AlertHookId, AlertKind, InvokeOutcome,
    SignatureScheme, SigningSecret, TargetUrl, ValidationErrors,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

const MAX_LABEL: usize = 128;
const MAX_REMARK: usize = 255;

/// An alert hook to create.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAlertHookRequest {
    /// `dingtalk`, `wecom` or `webhook`.
    pub kind: String,
    /// The robot's webhook URL (with its `access_token` or `key`), or any URL.
    pub url: String,
    /// DingTalk: the robot's signing secret (`SEC...`). Webhook: a `whsec_`
    /// secret for Standard Webhooks signatures. Never shown again.
    pub secret: Option<String>,
    pub remark: Option<String>,
    /// Default true.
    pub enabled: Option<bool>,
    /// Only failures of tasks with this `source_app`.
    pub source_app: Option<String>,
    /// Only failures of tasks with this `target_app`.
    pub target_app: Option<String>,
}

/// Changes to a hook: left out stays, `null` clears.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateAlertHookRequest {
    pub url: Option<String>,
    #[serde(default, deserialize_with = "crate::json_body::present")]
    #[schema(value_type = Option<String>)]
    pub secret: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::json_body::present")]
    #[schema(value_type = Option<String>)]
    pub remark: Option<Option<String>>,
    pub enabled: Option<bool>,
    #[serde(default, deserialize_with = "crate::json_body::present")]
    #[schema(value_type = Option<String>)]
    pub source_app: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::json_body::present")]
    #[schema(value_type = Option<String>)]
    pub target_app: Option<Option<String>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AlertHookView {
    pub id: String,
    pub kind: String,
    /// Credentials in the query are shown as `***`.
    pub url: String,
    /// Whether a secret is set; the secret itself is never shown.
    pub has_secret: bool,
    pub remark: Option<String>,
    pub enabled: bool,
    pub source_app: Option<String>,
    pub target_app: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AlertHookList {
    pub items: Vec<AlertHookView>,
}

/// What the hook answered to a test message.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlertTestView {
    /// The hook took the message (for robots: HTTP 200 and `errcode` 0).
    pub ok: bool,
    pub status: Option<u16>,
    /// The answer: JSON when it parses, else a string; `null` without one.
    pub answer: serde_json::Value,
    pub error: Option<String>,
}

impl AlertHookView {
    fn new(h: &AlertHook) -> Self {
        Self {
            id: h.id.to_string(),
            kind: h.kind.as_str().into(),
            url: h.url.redacted(),
            has_secret: h.secret.is_some(),
            remark: h.remark.clone(),
            enabled: h.enabled,
            source_app: h.source_app.clone(),
            target_app: h.target_app.clone(),
            created_at: h.created_at,
            updated_at: h.updated_at,
        }
    }
}

fn secret_for(
    errors: &mut ValidationErrors,
    kind: AlertKind,
    raw: Option<String>,
) -> Option<SigningSecret> {
    let raw = raw?;
    let parsed = match kind {
        AlertKind::Webhook => SigningSecret::parse(&raw, SignatureScheme::Standard),
        AlertKind::Dingtalk if (1..=255).contains(&raw.len()) => {
            Ok(SigningSecret::from_stored(raw))
        }
        AlertKind::Dingtalk => Err("must be 1 to 255 characters".into()),
        AlertKind::Wecom => Err("WeCom robots are not signed: the key is part of the url".into()),
    };
    errors.take("secret", parsed)
}

fn parse_id(raw: &str) -> Result<AlertHookId, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::invalid("id", "is not an alert hook id"))
}

fn not_found() -> ApiError {
    ApiError::NotFound("no alert hook has this id".into())
}

async fn load(state: &ApiState, id: AlertHookId) -> Result<AlertHook, ApiError> {
    state
        .alerts
        .hook(id)
        .await
        .map_err(ApiError::StoreUnavailable)?
        .ok_or_else(not_found)
}

/// Create an alert hook.
#[utoipa::path(
    post,
    path = "/api/v1/alert-hooks",
    tag = "alerts",
    request_body = CreateAlertHookRequest,
    responses((status = 201, body = AlertHookView), (status = 400, body = crate::error::Problem, content_type = "application/problem+json")),
    security(("bearer" = []))
)]
pub async fn create_hook(
    state: web::Data<ApiState>,
    caller: Caller,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let request: CreateAlertHookRequest = read_json(&req, payload, state.max_body_bytes).await?;
    let hook = create(&state, &caller, request).await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/v1/alert-hooks/{}", hook.id)))
        .json(hook))
}

/// Creates an alert hook: the API's and the console's one way.
pub async fn create(
    state: &ApiState,
    caller: &Caller,
    request: CreateAlertHookRequest,
) -> Result<AlertHookView, ApiError> {
    caller.require(Scope::Operator)?;
    let mut errors = ValidationErrors::default();
    let kind = errors.take("kind", AlertKind::parse(&request.kind));
    let url = errors.take("url", TargetUrl::parse(&request.url));
    let secret = kind.and_then(|k| secret_for(&mut errors, k, request.secret));
    let remark = label(&mut errors, "remark", request.remark, MAX_REMARK);
    let source_app = label(&mut errors, "source_app", request.source_app, MAX_LABEL);
    let target_app = label(&mut errors, "target_app", request.target_app, MAX_LABEL);
    errors.clone().into_result().map_err(ApiError::Validation)?;
    let (Some(kind), Some(url)) = (kind, url) else {
        return Err(ApiError::Validation(errors));
    };
    state.check_outbound("url", &url)?;
    let now = Utc::now();
    let hook = AlertHook {
        id: AlertHookId::new(),
        kind,
        url,
        secret,
        remark,
        enabled: request.enabled.unwrap_or(true),
        source_app,
        target_app,
        created_at: now,
        updated_at: now,
    };
    state
        .alerts
        .create_hook(&hook)
        .await
        .map_err(ApiError::StoreUnavailable)?;
    Ok(AlertHookView::new(&hook))
}

/// Every alert hook.
#[utoipa::path(get, path = "/api/v1/alert-hooks", tag = "alerts", responses((status = 200, body = AlertHookList)), security(("bearer" = [])))]
pub async fn list_hooks(
    state: web::Data<ApiState>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(list(&state, &caller).await?))
}

/// Every alert hook, secrets hidden.
pub async fn list(state: &ApiState, caller: &Caller) -> Result<AlertHookList, ApiError> {
    caller.require(Scope::Operator)?;
    let hooks = state
        .alerts
        .hooks()
        .await
        .map_err(ApiError::StoreUnavailable)?;
    Ok(AlertHookList {
        items: hooks.iter().map(AlertHookView::new).collect(),
    })
}

/// One alert hook.
#[utoipa::path(get, path = "/api/v1/alert-hooks/{id}", tag = "alerts", params(("id" = String, Path)), responses((status = 200, body = AlertHookView), (status = 404, body = crate::error::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn get_hook(
    state: web::Data<ApiState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::Operator)?;
    let hook = load(&state, parse_id(&path)?).await?;
    Ok(HttpResponse::Ok().json(AlertHookView::new(&hook)))
}

/// Change an alert hook.
#[utoipa::path(patch, path = "/api/v1/alert-hooks/{id}", tag = "alerts", params(("id" = String, Path)), request_body = UpdateAlertHookRequest, responses((status = 200, body = AlertHookView), (status = 400, body = crate::error::Problem, content_type = "application/problem+json"), (status = 404, body = crate::error::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn update_hook(
    state: web::Data<ApiState>,
    caller: Caller,
    path: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::Operator)?;
    let id = parse_id(&path)?;
    let request: UpdateAlertHookRequest = read_json(&req, payload, state.max_body_bytes).await?;
    let mut hook = load(&state, id).await?;
    let mut errors = ValidationErrors::default();
    if let Some(url) = request
        .url
        .and_then(|u| errors.take("url", TargetUrl::parse(&u)))
    {
        hook.url = url;
    }
    if let Some(secret) = request.secret {
        hook.secret = secret_for(&mut errors, hook.kind, secret);
    }
    if let Some(remark) = request.remark {
        hook.remark = label(&mut errors, "remark", remark, MAX_REMARK);
    }
    if let Some(enabled) = request.enabled {
        hook.enabled = enabled;
    }
    if let Some(app) = request.source_app {
        hook.source_app = label(&mut errors, "source_app", app, MAX_LABEL);
    }
    if let Some(app) = request.target_app {
        hook.target_app = label(&mut errors, "target_app", app, MAX_LABEL);
    }
    errors.into_result().map_err(ApiError::Validation)?;
    state.check_outbound("url", &hook.url)?;
    hook.updated_at = Utc::now();
    state.alerts.update_hook(&hook).await.map_err(|e| match e {
        callback_core::StoreError::NotFound => not_found(),
        other => ApiError::StoreUnavailable(other),
    })?;
    state.receivers.forget_alert_hook(id);
    Ok(HttpResponse::Ok().json(AlertHookView::new(&hook)))
}

/// Delete an alert hook.
#[utoipa::path(delete, path = "/api/v1/alert-hooks/{id}", tag = "alerts", params(("id" = String, Path)), responses((status = 204, description = "Deleted"), (status = 404, body = crate::error::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn delete_hook(
    state: web::Data<ApiState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::Operator)?;
    let id = parse_id(&path)?;
    state.alerts.delete_hook(id).await.map_err(|e| match e {
        callback_core::StoreError::NotFound => not_found(),
        other => ApiError::StoreUnavailable(other),
    })?;
    state.receivers.forget_alert_hook(id);
    Ok(HttpResponse::NoContent().finish())
}

/// Send a test message now and return what the hook answered.
#[utoipa::path(post, path = "/api/v1/alert-hooks/{id}/test", tag = "alerts", params(("id" = String, Path)), responses((status = 200, body = AlertTestView), (status = 404, body = crate::error::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn test_hook(
    state: web::Data<ApiState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(test(&state, &caller, &path).await?))
}

/// Sends a test message now; what the hook answered.
pub async fn test(state: &ApiState, caller: &Caller, id: &str) -> Result<AlertTestView, ApiError> {
    caller.require(Scope::Operator)?;
    let hook = load(state, parse_id(id)?).await?;
    let outcome = state
        .invoker
        .invoke(hook.direct_request(
            alert_test_body(hook.kind, &state.alert_links),
            format!("test_{}", uuid::Uuid::now_v7().simple()),
        ))
        .await;
    let view = match outcome {
        InvokeOutcome::Answered { status, body, .. } => {
            let verdict = robot_accepted(hook.kind, status, &body);
            AlertTestView {
                ok: verdict.is_ok(),
                status: Some(status),
                answer: serde_json::from_slice(&body)
                    .unwrap_or_else(|_| String::from_utf8_lossy(&body).into_owned().into()),
                error: verdict.err(),
            }
        }
        InvokeOutcome::Failed { status, error, .. } => AlertTestView {
            ok: false,
            status,
            answer: serde_json::Value::Null,
            error: Some(error),
        },
    };
    Ok(view)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_hook_urls_are_masked() {
        let url = TargetUrl::parse("https://oapi.dingtalk.com/robot/send?access_token=abc123&x=1")
            .unwrap();
        assert_eq!(
            url.redacted(),
            "https://oapi.dingtalk.com/robot/send?access_token=***&x=1"
        );
        let url =
            TargetUrl::parse("https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k-1").unwrap();
        assert_eq!(
            url.redacted(),
            "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=***"
        );
        let plain = TargetUrl::parse("https://ops.example.com/alerts").unwrap();
        assert_eq!(plain.redacted(), "https://ops.example.com/alerts");
    }
}
