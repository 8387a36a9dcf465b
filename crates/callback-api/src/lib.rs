//! The HTTP API: actix-web routes, request/response bodies, authentication,
//! and the mapping of every error to `application/problem+json`.
//!
//! Handlers see the store and the dispatcher only through the ports of
//! `callback-core`; the server decides which backends are behind them.

mod auth;
pub mod dto;
mod error;
mod health;
mod json_body;
pub mod openapi;
mod tasks;

pub use auth::AdminToken;
pub use dto::TaskDefaults;
pub use error::{ApiError, Problem};

use actix_web::{middleware, web};
use callback_core::{DelayQueue, Dispatch, TaskStore};
use std::sync::Arc;

/// What every handler shares.
pub struct ApiState {
    pub store: Arc<dyn TaskStore>,
    /// Only for readiness: intake never waits on the queue.
    pub queue: Arc<dyn DelayQueue>,
    pub dispatch: Arc<dyn Dispatch>,
    pub defaults: TaskDefaults,
    /// Request bodies larger than this are refused with 413.
    pub max_body_bytes: usize,
}

/// Mounts every route. `state` and `token` are shared by all workers.
pub fn configure(
    state: web::Data<ApiState>,
    token: web::Data<AdminToken>,
) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.app_data(state)
            .app_data(token)
            .app_data(
                web::PathConfig::default()
                    .error_handler(|err, _| ApiError::MalformedBody(err.to_string()).into()),
            )
            .route("/healthz", web::get().to(health::healthz))
            .route("/readyz", web::get().to(health::readyz))
            .service(
                web::scope("/api/v1")
                    .wrap(middleware::from_fn(auth::require_token))
                    .route("/openapi.json", web::get().to(openapi::openapi_json))
                    .route("/tasks", web::post().to(tasks::create_task))
                    .route("/tasks", web::get().to(tasks::list_tasks))
                    .route("/tasks/{task_id}", web::get().to(tasks::get_task))
                    .route("/tasks/{task_id}/retry", web::post().to(tasks::retry_task))
                    .route(
                        "/tasks/{task_id}/cancel",
                        web::post().to(tasks::cancel_task),
                    )
                    .default_service(web::to(|| async {
                        Err::<actix_web::HttpResponse, _>(ApiError::NotFound(
                            "no such API endpoint".into(),
                        ))
                    })),
            );
    }
}
