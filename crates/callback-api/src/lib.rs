//! The HTTP API: actix-web routes, request/response bodies, authentication,
//! and the mapping of every error to `application/problem+json`.
//!
//! Handlers see the store and the dispatcher only through the ports of
//! `callback-core`; the server decides which backends are behind them.

pub mod alert_hooks;
pub mod audit;
mod auth;
pub mod dto;
pub mod endpoint_dto;
pub mod endpoints;
mod error;
mod events;
mod health;
pub mod inbound;
mod json_body;
pub mod keys;
pub mod live;
pub mod openapi;
pub mod operations;
mod paging;
pub mod tasks;
mod vendors;

pub use auth::{bearer_token, Caller, ClientAddress};
pub use dto::TaskDefaults;
pub use error::{ApiError, Problem};

use actix_web::{middleware, web};
use callback_core::lock;
use callback_core::{
    AlertLinks, AlertStore, AuditStore, BucketClock, DelayQueue, Dispatch, EndpointDefaults,
    EndpointName, EndpointStore, InboundStore, Invoke, KeyStore, OperatorStore, ReceiverWatch,
    TargetUrl, TaskStore, ValidationErrors,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// What every handler shares.
pub struct ApiState {
    pub store: Arc<dyn TaskStore>,
    /// Only for readiness: intake never waits on the queue.
    pub queue: Arc<dyn DelayQueue>,
    pub dispatch: Arc<dyn Dispatch>,
    pub endpoints: Arc<dyn EndpointStore>,
    pub alerts: Arc<dyn AlertStore>,
    pub operators: Arc<dyn OperatorStore>,
    pub inbound_store: Arc<dyn InboundStore>,
    /// Routes and vendor callbacks.
    pub inbound: Arc<callback_inbound::Inbound>,
    pub receivers: Arc<dyn ReceiverWatch>,
    pub invoker: Arc<dyn Invoke>,
    pub defaults: TaskDefaults,
    /// Request bodies larger than this are refused with 413.
    pub max_body_bytes: usize,
    /// A body not read in full within this is refused with 408.
    pub body_read_timeout: std::time::Duration,
    /// Failed synchronous calls per endpoint since start, for the log.
    pub invoke_failures: Mutex<HashMap<EndpointName, u64>>,
    pub buckets: BucketSettings,
    /// For links in alert messages.
    pub alert_links: AlertLinks,
    /// What URLs may be submitted (literal addresses; names are judged at
    /// connect time).
    pub outbound: Arc<callback_core::OutboundPolicy>,
    /// Turns a bearer token into the principal a request acts as.
    pub authenticator: Arc<callback_auth::Authenticator>,
    pub keys: Arc<dyn KeyStore>,
    pub audit: Arc<dyn AuditStore>,
    /// Told of tasks accepted and cancelled, callbacks received.
    pub observer: Arc<dyn callback_core::Observe>,
    /// Attempts as they happen, for the streams open on this instance.
    pub attempts: Arc<live::AttemptFeed>,
}

/// The W3C `traceparent` a request carries, if it reads (one that does not
/// is ignored, as the W3C text asks).
pub(crate) fn traceparent(req: &actix_web::HttpRequest) -> Option<callback_core::TraceParent> {
    req.headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(callback_core::TraceParent::parse)
}

/// How failed tasks are bucketed and for how long buckets are listed.
#[derive(Debug, Clone, Copy)]
pub struct BucketSettings {
    pub clock: BucketClock,
    pub retention: chrono::TimeDelta,
}

impl ApiState {
    pub fn endpoint_defaults(&self) -> EndpointDefaults {
        EndpointDefaults {
            max_attempts: self.defaults.max_attempts,
            timeout_ms: self.defaults.timeout_ms,
        }
    }

    /// The outbound policy's check at submission: a URL naming a refused
    /// address literally is a 400 (`url_not_allowed`) naming `field` and
    /// the rule. Host names are judged at connect time.
    pub fn check_outbound(&self, field: &str, url: &TargetUrl) -> Result<(), ApiError> {
        self.outbound.check_url(url).map_err(|refused| {
            let mut errors = ValidationErrors::default();
            errors.push(field, refused.to_string());
            ApiError::UrlNotAllowed(errors)
        })
    }

    /// Counts a recorded vendor callback, and the task it became if routed.
    pub fn observe_inbound(&self, record: &callback_core::InboundRecord) {
        let routed = record.status == callback_core::InboundStatus::Forwarded;
        self.observer.inbound(&record.source, routed);
        if routed {
            self.observer
                .accepted(None, callback_core::Intake::Inbound, 1);
        }
    }

    /// Counts a failed synchronous call; returns the endpoint's count.
    pub fn count_invoke_failure(&self, name: &EndpointName) -> u64 {
        let mut counts = lock(&self.invoke_failures);
        let count = counts.entry(name.clone()).or_insert(0);
        *count += 1;
        *count
    }
}

/// Mounts every route. `state` is shared by all workers.
pub fn configure(state: web::Data<ApiState>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.app_data(state)
            .app_data(
                web::PathConfig::default()
                    .error_handler(|err, _| ApiError::MalformedBody(err.to_string()).into()),
            )
            // A query that does not parse is a problem document like every
            // other error, naming the query.
            .app_data(
                web::QueryConfig::default()
                    .error_handler(|err, _| ApiError::invalid("query", err.to_string()).into()),
            )
            .route("/healthz", web::get().to(health::healthz))
            // Vendors prove themselves with their own signatures.
            .route("/inbound/wechat", web::get().to(vendors::wechat_handshake))
            .route("/inbound/wechat", web::post().to(vendors::wechat_push))
            .route(
                "/inbound/{source}",
                web::post().to(vendors::source_callback),
            )
            .route("/readyz", web::get().to(health::readyz))
            .service(
                web::scope("/api/v1")
                    // Outermost last: authenticate, then record what was done.
                    .wrap(middleware::from_fn(audit::record))
                    .wrap(middleware::from_fn(auth::authenticate))
                    .route("/openapi.json", web::get().to(openapi::openapi_json))
                    .route("/tasks/batch", web::post().to(tasks::create_tasks))
                    .route("/tasks/retry", web::post().to(operations::retry_tasks))
                    .route("/tasks/cancel", web::post().to(operations::cancel_tasks))
                    .route("/tasks", web::post().to(tasks::create_task))
                    .route("/tasks", web::get().to(tasks::list_tasks))
                    .route("/tasks/{task_id}", web::get().to(tasks::get_task))
                    .route("/attempts/stream", web::get().to(live::stream_attempts))
                    .route("/tasks/{task_id}/retry", web::post().to(tasks::retry_task))
                    .route(
                        "/tasks/{task_id}/cancel",
                        web::post().to(tasks::cancel_task),
                    )
                    .route("/endpoints", web::post().to(endpoints::create_endpoint))
                    .route("/endpoints", web::get().to(endpoints::list_endpoints))
                    .route("/endpoints/{name}", web::get().to(endpoints::get_endpoint))
                    .route(
                        "/endpoints/{name}",
                        web::patch().to(endpoints::update_endpoint),
                    )
                    .route(
                        "/endpoints/{name}",
                        web::delete().to(endpoints::delete_endpoint),
                    )
                    .route(
                        "/endpoints/{name}/rotate-secret",
                        web::post().to(endpoints::rotate_secret),
                    )
                    .route(
                        "/endpoints/{name}/enable",
                        web::post().to(endpoints::enable_endpoint),
                    )
                    .route(
                        "/endpoints/{name}/invoke",
                        web::post().to(endpoints::invoke_endpoint),
                    )
                    .route("/breakers", web::get().to(endpoints::list_breakers))
                    .route("/events", web::post().to(events::publish_event))
                    .route("/alert-hooks", web::post().to(alert_hooks::create_hook))
                    .route("/alert-hooks", web::get().to(alert_hooks::list_hooks))
                    .route("/alert-hooks/{id}", web::get().to(alert_hooks::get_hook))
                    .route(
                        "/alert-hooks/{id}",
                        web::patch().to(alert_hooks::update_hook),
                    )
                    .route(
                        "/alert-hooks/{id}",
                        web::delete().to(alert_hooks::delete_hook),
                    )
                    .route(
                        "/alert-hooks/{id}/test",
                        web::post().to(alert_hooks::test_hook),
                    )
                    .route("/routes", web::post().to(inbound::upsert_route))
                    .route("/routes", web::get().to(inbound::list_routes))
                    .route(
                        "/routes/{namespace}/{key}",
                        web::get().to(inbound::get_route),
                    )
                    .route(
                        "/routes/{namespace}/{key}",
                        web::delete().to(inbound::delete_route),
                    )
                    .route("/inbound", web::get().to(inbound::list_inbound))
                    .route("/inbound/unrouted", web::get().to(inbound::list_unrouted))
                    .route("/inbound/{id}", web::get().to(inbound::get_inbound))
                    .route(
                        "/inbound/{id}/forward",
                        web::post().to(inbound::forward_inbound),
                    )
                    .route("/keys", web::post().to(keys::create_key))
                    .route("/keys", web::get().to(keys::list_keys))
                    .route("/keys/{id}", web::delete().to(keys::revoke_key))
                    .route("/audit", web::get().to(audit::list_audit))
                    .route("/failed-buckets", web::get().to(operations::list_buckets))
                    .route(
                        "/failed-buckets/retry",
                        web::post().to(operations::retry_bucket),
                    )
                    .default_service(web::to(|| async {
                        Err::<actix_web::HttpResponse, _>(ApiError::NotFound(
                            "no such API endpoint".into(),
                        ))
                    })),
            );
    }
}
