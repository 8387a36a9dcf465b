//! Liveness and readiness probes, outside authentication.

use crate::ApiState;
use actix_web::{web, HttpResponse};
use serde_json::json;

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "Up")))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// The store answers; without it no task can be accepted.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses((status = 200, description = "Ready"), (status = 503, description = "Store unreachable"))
)]
pub async fn readyz(state: web::Data<ApiState>) -> HttpResponse {
    match state.store.ping().await {
        Ok(()) => HttpResponse::Ok().json(json!({"status": "ready", "store": "ok"})),
        Err(err) => {
            tracing::warn!(error = %err, "readiness check: store unreachable");
            HttpResponse::ServiceUnavailable()
                .json(json!({"status": "unavailable", "store": "unreachable"}))
        }
    }
}
