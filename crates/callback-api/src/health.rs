//! Liveness and readiness probes, outside authentication.

use crate::ApiState;
use actix_web::{web, HttpResponse};
use serde_json::json;

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "Up")))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Ready when the store answers: without it no task can be accepted. The
/// delay queue is reported beside it; while it is unreachable the server is
/// `degraded` but still ready, since delivery falls back to polling the store.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "Ready (`status` is `ready`, or `degraded` while the delay queue is unreachable)"),
        (status = 503, description = "Store unreachable")
    )
)]
pub async fn readyz(state: web::Data<ApiState>) -> HttpResponse {
    let (store, queue) = tokio::join!(state.store.ping(), state.queue.ping());
    let queue_report = json!({
        "backend": state.queue.backend(),
        "status": if queue.is_ok() { "ok" } else { "unreachable" },
    });
    if let Err(err) = &queue {
        tracing::warn!(error = %err, "readiness check: delay queue unreachable");
    }
    // Shared by the cluster through Redis, or each instance's own.
    let breakers = match state.receivers.breakers_shared() {
        None => "local",
        Some(true) => "shared",
        Some(false) => "local: Redis unreachable",
    };
    match store {
        Ok(()) => HttpResponse::Ok().json(json!({
            "status": if queue.is_ok() { "ready" } else { "degraded" },
            "store": "ok",
            "queue": queue_report,
            "breakers": breakers,
        })),
        Err(err) => {
            tracing::warn!(error = %err, "readiness check: store unreachable");
            HttpResponse::ServiceUnavailable().json(json!({
                "status": "unavailable",
                "store": "unreachable",
                "queue": queue_report,
            }))
        }
    }
}
