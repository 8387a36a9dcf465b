//! The OpenAPI document, generated from the handlers and DTOs.

use actix_web::HttpResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "callback-center", description = "Guaranteed-delivery callback center"),
    paths(
        crate::tasks::create_task,
        crate::tasks::create_tasks,
        crate::tasks::get_task,
        crate::tasks::list_tasks,
        crate::tasks::retry_task,
        crate::tasks::cancel_task,
        crate::live::stream_attempts,
        crate::endpoints::create_endpoint,
        crate::endpoints::get_endpoint,
        crate::endpoints::list_endpoints,
        crate::endpoints::update_endpoint,
        crate::endpoints::delete_endpoint,
        crate::endpoints::rotate_secret,
        crate::endpoints::invoke_endpoint,
        crate::endpoints::enable_endpoint,
        crate::endpoints::list_breakers,
        crate::events::publish_event,
        crate::alert_hooks::create_hook,
        crate::alert_hooks::list_hooks,
        crate::alert_hooks::get_hook,
        crate::alert_hooks::update_hook,
        crate::alert_hooks::delete_hook,
        crate::alert_hooks::test_hook,
        crate::operations::list_buckets,
        crate::operations::retry_bucket,
        crate::operations::retry_tasks,
        crate::operations::cancel_tasks,
        crate::inbound::upsert_route,
        crate::inbound::list_routes,
        crate::inbound::get_route,
        crate::inbound::delete_route,
        crate::inbound::list_inbound,
        crate::inbound::list_unrouted,
        crate::inbound::get_inbound,
        crate::inbound::forward_inbound,
        crate::keys::create_key,
        crate::keys::list_keys,
        crate::keys::revoke_key,
        crate::audit::list_audit,
        crate::health::healthz,
        crate::health::readyz,
    ),
    components(schemas(
        crate::dto::CreateTaskRequest,
        crate::tasks::CreateTasksRequest,
        crate::tasks::BatchItemView,
        crate::tasks::BatchView,
        crate::dto::ExpectRequest,
        crate::dto::JsonExpectRequest,
        crate::dto::TaskView,
        crate::dto::AttemptView,
        crate::dto::TaskList,
        crate::live::LiveAttempt,
        crate::endpoint_dto::CreateEndpointRequest,
        crate::endpoint_dto::UpdateEndpointRequest,
        crate::endpoint_dto::EndpointView,
        crate::endpoint_dto::EndpointList,
        crate::endpoint_dto::BreakerRequest,
        crate::endpoint_dto::SecretView,
        crate::endpoint_dto::PublishEventRequest,
        crate::endpoint_dto::PublishedView,
        crate::endpoint_dto::InvokeEndpointRequest,
        crate::endpoint_dto::InvokeView,
        crate::endpoint_dto::BreakerList,
        crate::alert_hooks::CreateAlertHookRequest,
        crate::alert_hooks::UpdateAlertHookRequest,
        crate::alert_hooks::AlertHookView,
        crate::alert_hooks::AlertHookList,
        crate::alert_hooks::AlertTestView,
        crate::operations::BucketView,
        crate::operations::BucketList,
        crate::operations::RetryBucketRequest,
        crate::operations::RetryBucketView,
        crate::operations::BulkRequest,
        crate::operations::BulkView,
        crate::inbound::UpsertRouteRequest,
        crate::inbound::RouteView,
        crate::inbound::RouteList,
        crate::inbound::InboundView,
        crate::inbound::InboundList,
        crate::inbound::ForwardRequest,
        crate::vendors::ReceivedView,
        crate::keys::CreateKeyRequest,
        crate::keys::KeyView,
        crate::keys::CreatedKeyView,
        crate::keys::KeyList,
        crate::audit::AuditView,
        crate::audit::AuditList,
        crate::error::Problem,
        crate::error::ProblemField,
    )),
    modifiers(&BearerAuth, &CommonProblems),
    tags(
        (name = "tasks", description = "Submit and manage callback tasks"),
        (name = "endpoints", description = "Receivers subscribed to event types"),
        (name = "events", description = "Publish events to subscribed endpoints"),
        (name = "alerts", description = "Alert hooks told when tasks fail for good"),
        (name = "operations", description = "Failed buckets and other operator tools"),
        (name = "inbound", description = "Routes and recorded vendor callbacks"),
        (name = "keys", description = "API keys with scopes, per application"),
        (name = "audit", description = "Who changed what, when, from where"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The answers every `/api/v1` operation can give whatever it does
/// (credentials, scopes, rate, the store, malformed input), added to each
/// operation that does not describe them itself: the document then lists
/// every status the server can answer, which the fuzzing suite checks.
struct CommonProblems;

impl Modify for CommonProblems {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let problem = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/problem+json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("Problem")))
                        .build(),
                )
                .build()
        };
        let always = [
            ("400", "Invalid fields, path or query"),
            ("401", "Missing, wrong, expired or revoked credentials"),
            ("403", "Missing scope, another application's data, or an address outside the key's allowlist"),
            ("429", "The key's rate limit is used up; see Retry-After"),
            ("503", "Store unavailable; nothing stored"),
        ];
        let with_body = [
            ("408", "The body did not arrive in time; nothing stored"),
            ("413", "Body over the limit"),
            ("415", "Body is not JSON"),
        ];
        for (path, item) in openapi.paths.paths.iter_mut() {
            if !path.starts_with("/api/v1/") {
                continue;
            }
            let has_id = path.contains('{');
            let operations = [
                item.get.as_mut(),
                item.post.as_mut(),
                item.put.as_mut(),
                item.patch.as_mut(),
                item.delete.as_mut(),
            ];
            for operation in operations.into_iter().flatten() {
                let body = operation.request_body.is_some();
                let responses = &mut operation.responses.responses;
                let extra = always
                    .iter()
                    .chain(with_body.iter().filter(|_| body))
                    .chain([("404", "Not found")].iter().filter(|_| has_id));
                for (status, description) in extra {
                    responses
                        .entry((*status).to_string())
                        .or_insert_with(|| problem(description).into());
                }
            }
        }
    }
}

/// The OpenAPI 3 document of the whole API.
pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}
