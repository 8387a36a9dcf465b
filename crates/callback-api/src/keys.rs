//! API keys: create (the secret shown once), list, revoke. Admin only.

use crate::auth::Caller;
use crate::dto::label;
use crate::json_body::read_json;
use crate::{ApiError, ApiState};
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use callback_core::{ApiKey, ApiKeyId, IpAllowlist, Scope, Scopes, StoreError, ValidationErrors};
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use std::num::NonZeroU32;

const MAX_NAME: usize = 128;
const MAX_ALLOWED_NETWORKS: usize = 100;

/// A new key.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyRequest {
    /// Who uses the key, e.g. `shop-backend`.
    pub name: String,
    /// The application the key acts for: its tasks get this `source_app`,
    /// and it sees nothing of other applications. Omit for a
    /// cross-application key, which must hold `operator` or `admin`.
    pub app: Option<String>,
    /// Any of `tasks:write`, `tasks:read`, `tasks:manage`,
    /// `events:publish`, `endpoints:manage`, `operator`, `admin`.
    pub scopes: Vec<String>,
    /// Networks (`10.0.0.0/8`) or addresses the key may be used from;
    /// empty or absent: anywhere.
    #[serde(default)]
    pub allow_ips: Vec<String>,
    /// After this the key stops working; absent: never.
    pub expires_at: Option<DateTime<Utc>>,
    /// Most requests a second; absent: no limit.
    pub rate_limit_per_s: Option<u32>,
}

/// A key as listed: never its secret.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KeyView {
    pub id: String,
    pub name: String,
    pub app: Option<String>,
    pub scopes: Vec<String>,
    pub allow_ips: Vec<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub rate_limit_per_s: Option<u32>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<&ApiKey> for KeyView {
    fn from(k: &ApiKey) -> Self {
        Self {
            id: k.id.to_string(),
            name: k.name.clone(),
            app: k.app.clone(),
            scopes: k.scopes.iter().map(|s| s.as_str().to_string()).collect(),
            allow_ips: k
                .allow_ips
                .entries()
                .iter()
                .map(ToString::to_string)
                .collect(),
            expires_at: k.expires_at,
            rate_limit_per_s: k.rate_limit_per_s.map(NonZeroU32::get),
            created_at: k.created_at,
            last_used_at: k.last_used_at,
            revoked_at: k.revoked_at,
        }
    }
}

/// A key just created: the one time its secret is shown.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedKeyView {
    /// The secret, `cbk_...`: keep it now, it is stored only as a hash.
    pub key: String,
    #[serde(flatten)]
    pub view: KeyView,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KeyList {
    pub items: Vec<KeyView>,
}

impl CreateKeyRequest {
    fn into_key(self, now: DateTime<Utc>) -> Result<ApiKey, ValidationErrors> {
        let mut errors = ValidationErrors::default();
        let name = label(&mut errors, "name", Some(self.name), MAX_NAME);
        let app = label(&mut errors, "app", self.app, MAX_NAME);
        let scopes = errors.take(
            "scopes",
            self.scopes
                .iter()
                .map(|s| Scope::parse(s))
                .collect::<Result<Vec<_>, _>>()
                .and_then(Scopes::new),
        );
        if let Some(scopes) = &scopes {
            if let Err(why) = ApiKey::check_binding(app.as_deref(), scopes) {
                errors.push("scopes", why);
            }
        }
        if self.allow_ips.len() > MAX_ALLOWED_NETWORKS {
            errors.push(
                "allow_ips",
                format!("at most {MAX_ALLOWED_NETWORKS} networks"),
            );
        }
        let allow_ips = errors.take("allow_ips", IpAllowlist::parse(&self.allow_ips));
        if self.expires_at.is_some_and(|at| at <= now) {
            errors.push("expires_at", "must be in the future");
        }
        let rate_limit_per_s = match self.rate_limit_per_s {
            None => None,
            Some(n) if (1..=1_000_000).contains(&n) => NonZeroU32::new(n),
            Some(_) => {
                errors.push("rate_limit_per_s", "must be between 1 and 1000000");
                None
            }
        };
        errors.into_result()?;
        match (name, scopes, allow_ips) {
            (Some(name), Some(scopes), Some(allow_ips)) => Ok(ApiKey {
                id: ApiKeyId::new(),
                name,
                app,
                scopes,
                allow_ips,
                expires_at: self.expires_at,
                rate_limit_per_s,
                created_at: now,
                last_used_at: None,
                revoked_at: None,
            }),
            _ => Err(ValidationErrors::default()),
        }
    }
}

fn key_store_error(err: StoreError) -> ApiError {
    match err {
        StoreError::NotFound => ApiError::NotFound("no key has this id".into()),
        other => ApiError::from_store(other, "change"),
    }
}

/// Create an API key; its secret is in this answer and nowhere else, ever.
#[utoipa::path(
    post,
    path = "/api/v1/keys",
    tag = "keys",
    request_body = CreateKeyRequest,
    responses(
        (status = 201, description = "Created; `key` is the secret", body = CreatedKeyView),
        (status = 400, description = "Invalid fields", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn create_key(
    state: web::Data<ApiState>,
    caller: Caller,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let request: CreateKeyRequest = read_json(&req, payload, state.max_body_bytes).await?;
    let created = create(&state, &caller, request).await?;
    crate::audit::note(&req, Some(created.view.id.clone()), None);
    Ok(HttpResponse::Created()
        .insert_header((
            header::LOCATION,
            format!("/api/v1/keys/{}", created.view.id),
        ))
        .json(created))
}

/// Creates a key; the view shows its secret, this once.
pub async fn create(
    state: &ApiState,
    caller: &Caller,
    request: CreateKeyRequest,
) -> Result<CreatedKeyView, ApiError> {
    caller.require(Scope::Admin)?;
    let key = request.into_key(Utc::now()).map_err(ApiError::Validation)?;
    let (secret, hash) =
        callback_auth::generate_key().map_err(|e| ApiError::Internal(Box::new(e)))?;
    state
        .keys
        .create_key(&key, &hash)
        .await
        .map_err(key_store_error)?;
    Ok(CreatedKeyView {
        key: secret.expose_secret().to_string(),
        view: KeyView::from(&key),
    })
}

/// Every key, newest first, revoked ones included; never a secret.
#[utoipa::path(
    get,
    path = "/api/v1/keys",
    tag = "keys",
    responses((status = 200, body = KeyList)),
    security(("bearer" = []))
)]
pub async fn list_keys(
    state: web::Data<ApiState>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(list(&state, &caller).await?))
}

/// Every key, newest first, revoked ones included.
pub async fn list(state: &ApiState, caller: &Caller) -> Result<KeyList, ApiError> {
    caller.require(Scope::Admin)?;
    let keys = state.keys.keys().await.map_err(key_store_error)?;
    Ok(KeyList {
        items: keys.iter().map(KeyView::from).collect(),
    })
}

/// Revoke a key: refused at once by this instance, within a second or two
/// by every other.
#[utoipa::path(
    delete,
    path = "/api/v1/keys/{id}",
    tag = "keys",
    params(("id" = String, Path, description = "The key's id (not its secret)")),
    responses(
        (status = 200, description = "Revoked (or revoked already)", body = KeyView),
        (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn revoke_key(
    state: web::Data<ApiState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(revoke(&state, &caller, &path).await?))
}

/// Revokes a key: refused at once here, within the key cache's lifetime
/// by every other instance.
pub async fn revoke(state: &ApiState, caller: &Caller, id: &str) -> Result<KeyView, ApiError> {
    caller.require(Scope::Admin)?;
    let id: ApiKeyId = id
        .parse()
        .map_err(|_| ApiError::NotFound("no key has this id".into()))?;
    let key = state
        .keys
        .revoke_key(id, Utc::now())
        .await
        .map_err(key_store_error)?;
    state.authenticator.forget_keys();
    Ok(KeyView::from(&key))
}
