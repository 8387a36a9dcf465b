//! Who is calling: every request under `/api/v1` presents a bearer token
//! (the admin token or an API key); the middleware turns it into the
//! principal handlers ask with [`Caller`].

use crate::{ApiError, ApiState};
use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{web, Error, FromRequest, HttpMessage, HttpRequest};
use callback_auth::{Denied, Presented};
use callback_core::{Principal, Scope};
use std::future::{ready, Ready};
use std::net::IpAddr;
use std::ops::Deref;
use std::sync::Arc;

/// The address a request came from, as the trusted proxies tell it.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddress(pub Option<IpAddr>);

impl ClientAddress {
    pub fn of(req: &HttpRequest, state: &ApiState) -> Self {
        Self(callback_auth::client_ip(
            req.peer_addr().map(|a| a.ip()),
            req.headers()
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok()),
            state.authenticator.trusted_proxies(),
        ))
    }
}

impl From<Denied> for ApiError {
    fn from(denied: Denied) -> Self {
        match denied {
            Denied::Unauthenticated(why) => ApiError::Unauthorized(why.into()),
            Denied::AddressNotAllowed(_) => ApiError::Forbidden(denied.to_string()),
            Denied::RateLimited { retry_after, .. } => ApiError::RateLimited {
                message: denied.to_string(),
                retry_after,
            },
            Denied::Unavailable(err) => ApiError::StoreUnavailable(err),
        }
    }
}

/// The token of an `Authorization: Bearer` header, if there is one.
pub fn bearer_token(headers: &header::HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

/// Authenticates the request, or answers 401, 403 (address), 429 (rate)
/// before any handler runs: a refused request stores nothing.
pub async fn authenticate(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let Some(state) = req.app_data::<web::Data<ApiState>>().cloned() else {
        return Err(ApiError::Unauthorized("authentication is not configured".into()).into());
    };
    let client = ClientAddress::of(req.request(), &state);
    let bearer = bearer_token(req.headers());
    let principal = state
        .authenticator
        .authenticate(
            Presented {
                bearer,
                client: client.0,
            },
            chrono::Utc::now(),
        )
        .await
        .map_err(ApiError::from)?;
    req.extensions_mut().insert(principal);
    req.extensions_mut().insert(client);
    next.call(req).await
}

/// The principal a handler acts for.
pub struct Caller(Arc<Principal>);

impl Caller {
    /// The console acts for its signed-in person through the same checks.
    pub fn new(principal: Arc<Principal>) -> Self {
        Self(principal)
    }

    /// `403 insufficient_scope` naming `scope` when the caller lacks it.
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        self.0.require(scope).map_err(ApiError::MissingScope)
    }

    /// The application a new task or event is for: the caller's own for an
    /// application's key (`403` if the request names another).
    pub fn app_for(&self, requested: Option<String>) -> Result<Option<String>, ApiError> {
        self.0
            .app_for(requested)
            .map_err(|mismatch| ApiError::Forbidden(mismatch.to_string()))
    }

    /// `404`, exactly as for a missing task, when the task belongs to an
    /// application the caller does not see.
    pub fn ensure_sees(&self, source_app: Option<&str>) -> Result<(), ApiError> {
        if self.0.sees(source_app) {
            Ok(())
        } else {
            Err(ApiError::NotFound("no task has this id".into()))
        }
    }
}

impl Deref for Caller {
    type Target = Principal;
    fn deref(&self) -> &Principal {
        &self.0
    }
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            req.extensions()
                .get::<Arc<Principal>>()
                .cloned()
                .map(Caller)
                .ok_or_else(|| ApiError::Unauthorized("missing bearer token".into())),
        )
    }
}
