//! Publishing an event: one task per enabled endpoint that wants it, all
//! stored in one transaction before the answer.

use crate::auth::Caller;
use crate::endpoint_dto::{PublishEventRequest, PublishedView};
use crate::json_body::read_json;
use crate::{ApiError, ApiState};
use actix_web::{web, HttpRequest, HttpResponse};
use callback_core::{task_for_event, EventType, NewEvent, Published, Scope, ValidationErrors};
use chrono::Utc;

const MAX_CALL_ID: usize = 128;
const MAX_APP: usize = 128;

/// Publish an event to every enabled endpoint subscribed to its type.
#[utoipa::path(
    post,
    path = "/api/v1/events",
    tag = "events",
    request_body = PublishEventRequest,
    responses(
        (status = 201, description = "Stored, one task per endpoint", body = PublishedView),
        (status = 200, description = "This call id was published before; nothing new", body = PublishedView),
        (status = 400, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "Store unavailable; nothing stored", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn publish_event(
    state: web::Data<ApiState>,
    caller: Caller,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::EventsPublish)?;
    let mut request: PublishEventRequest = read_json(&req, payload, state.max_body_bytes).await?;
    request.app = caller.app_for(request.app)?;
    let mut errors = ValidationErrors::default();
    let event_type = errors.take("event_type", EventType::parse(&request.event_type));
    if request
        .call_id
        .as_ref()
        .is_some_and(|c| c.is_empty() || c.len() > MAX_CALL_ID)
    {
        errors.push("call_id", format!("must be 1 to {MAX_CALL_ID} bytes"));
    }
    if request
        .app
        .as_ref()
        .is_some_and(|a| a.is_empty() || a.chars().count() > MAX_APP)
    {
        errors.push("app", format!("must be 1 to {MAX_APP} characters"));
    }
    let ordering =
        crate::dto::ordering(&mut errors, request.ordering_key, request.on_failure, false);
    errors.clone().into_result().map_err(ApiError::Validation)?;
    let Some(event_type) = event_type else {
        return Err(ApiError::Validation(errors));
    };
    let event = NewEvent {
        ordering,
        call_id: request
            .call_id
            .unwrap_or_else(|| uuid::Uuid::now_v7().to_string()),
        event_type,
        app: request.app,
        payload: request.payload,
        created_at: Utc::now(),
    };
    let subscribers = state
        .endpoints
        .subscribers(&event.event_type, event.app.as_deref())
        .await
        .map_err(ApiError::StoreUnavailable)?;
    let traceparent = crate::traceparent(&req);
    let tasks: Vec<_> = subscribers
        .iter()
        .map(|endpoint| {
            let mut task = task_for_event(endpoint, &event, state.endpoint_defaults());
            task.spec.traceparent = traceparent;
            task
        })
        .collect();
    let published = state
        .endpoints
        .publish(&event, &tasks)
        .await
        .map_err(ApiError::StoreUnavailable)?;
    let (created, ids) = match published {
        Published::Created(ids) => {
            let app = event.app.as_deref();
            state
                .observer
                .accepted(app, callback_core::Intake::Event, tasks.len() as u64);
            // A held task waits for its endpoint to be enabled.
            for task in tasks.iter().filter(|t| !t.held) {
                state
                    .dispatch
                    .accepted(task.id, task.first_attempt_at)
                    .await;
            }
            (true, ids)
        }
        Published::Existing(ids) => (false, ids),
    };
    let note = ids.is_empty().then(|| {
        "no enabled endpoint wants this event; it was stored and delivered to none".to_string()
    });
    let view = PublishedView {
        call_id: event.call_id,
        task_ids: ids.iter().map(ToString::to_string).collect(),
        created,
        note,
    };
    Ok(if created {
        HttpResponse::Created().json(view)
    } else {
        HttpResponse::Ok().json(view)
    })
}
