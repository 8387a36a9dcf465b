//! `ApiError`: every failure the API reports, mapped to an RFC 9457
//! `application/problem+json` body with a stable `code`. 5xx bodies stay
//! opaque; their full cause chain goes to the log.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use callback_core::{FieldError, StoreError, TaskStatus, ValidationErrors};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("the request has invalid fields: {0}")]
    Validation(ValidationErrors),
    #[error("{0}")]
    MalformedBody(String),
    /// A URL the outbound policy refuses; each field says which rule.
    #[error("a URL is refused by the outbound policy: {0}")]
    UrlNotAllowed(ValidationErrors),
    /// No credential, or one that is not valid (now).
    #[error("{0}")]
    Unauthorized(String),
    /// The credential is valid but lacks the scope the action needs.
    #[error("this credential lacks the scope `{0}`")]
    MissingScope(callback_core::Scope),
    /// The credential is valid but may not do this: another application's
    /// data, or a client address outside its allowlist.
    #[error("{0}")]
    Forbidden(String),
    #[error("{message}")]
    RateLimited {
        message: String,
        retry_after: std::time::Duration,
    },
    #[error("{0}")]
    NotFound(String),
    #[error("cannot {action} a task that is {current}")]
    InvalidState {
        action: &'static str,
        current: TaskStatus,
    },
    #[error("{0}")]
    AlreadyExists(String),
    /// Someone changed it first.
    #[error("{0}")]
    Conflict(String),
    #[error("the endpoint did not answer usefully: {0}")]
    InvokeFailed(String),
    #[error("the request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("the request body did not arrive within {0:?}; nothing was stored")]
    RequestTimeout(std::time::Duration),
    #[error("the request body must be JSON (Content-Type: application/json)")]
    UnsupportedMediaType,
    #[error("the task store is unavailable; nothing was stored")]
    StoreUnavailable(#[source] StoreError),
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    /// The stable, machine-readable name of the problem.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Validation(_) => "validation_failed",
            Self::MalformedBody(_) => "malformed_request",
            Self::UrlNotAllowed(_) => "url_not_allowed",
            Self::Unauthorized(_) => "unauthorized",
            Self::MissingScope(_) => "insufficient_scope",
            Self::Forbidden(_) => "forbidden",
            Self::RateLimited { .. } => "rate_limited",
            Self::NotFound(_) => "not_found",
            Self::InvalidState { .. } => "invalid_state",
            Self::AlreadyExists(_) => "already_exists",
            Self::Conflict(_) => "conflict",
            Self::InvokeFailed(_) => "invoke_failed",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::RequestTimeout(_) => "request_timeout",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::StoreUnavailable(_) => "store_unavailable",
            Self::Internal(_) => "internal_error",
        }
    }

    fn title(&self) -> &'static str {
        match self {
            Self::Validation(_) => "Invalid request fields",
            Self::MalformedBody(_) => "Malformed request",
            Self::UrlNotAllowed(_) => "URL not allowed",
            Self::Unauthorized(_) => "Unauthorized",
            Self::MissingScope(_) => "Insufficient scope",
            Self::Forbidden(_) => "Forbidden",
            Self::RateLimited { .. } => "Too many requests",
            Self::NotFound(_) => "Not found",
            Self::InvalidState { .. } => "Not allowed in the current state",
            Self::AlreadyExists(_) => "Already exists",
            Self::Conflict(_) => "Conflict",
            Self::InvokeFailed(_) => "Endpoint call failed",
            Self::PayloadTooLarge { .. } => "Payload too large",
            Self::RequestTimeout(_) => "Request timeout",
            Self::UnsupportedMediaType => "Unsupported media type",
            Self::StoreUnavailable(_) => "Service unavailable",
            Self::Internal(_) => "Internal error",
        }
    }

    /// A `400` naming one offending field.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        let mut errors = ValidationErrors::default();
        errors.push(field, message);
        Self::Validation(errors)
    }

    /// Maps a store error met while looking up or changing an endpoint.
    pub fn from_endpoint_store(err: StoreError) -> Self {
        match err {
            StoreError::NotFound => Self::NotFound("no endpoint has this name".into()),
            StoreError::AlreadyExists => {
                Self::AlreadyExists("an endpoint with this name exists already".into())
            }
            StoreError::Conflict(message) => Self::Conflict(message),
            StoreError::InvalidState { .. } | StoreError::Corrupt(_) => {
                Self::Internal(Box::new(err))
            }
            StoreError::Unavailable(_) => Self::StoreUnavailable(err),
        }
    }

    /// Maps a store error met while looking up or changing a task.
    pub fn from_store(err: StoreError, action: &'static str) -> Self {
        match err {
            StoreError::NotFound => Self::NotFound("no task has this id".into()),
            StoreError::AlreadyExists => Self::AlreadyExists("it exists already".into()),
            StoreError::Conflict(message) => Self::Conflict(message),
            StoreError::InvalidState { current } => Self::InvalidState { action, current },
            StoreError::Unavailable(_) => Self::StoreUnavailable(err),
            StoreError::Corrupt(_) => Self::Internal(Box::new(err)),
        }
    }
}

/// An RFC 9457 problem document.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the problem type: `urn:callback-center:problem:{code}`.
    #[serde(rename = "type")]
    pub type_uri: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Stable machine-readable code, e.g. `validation_failed`.
    pub code: String,
    /// For `validation_failed`: every offending field.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<ProblemField>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProblemField {
    /// The field's path in the request, e.g. `expect.json.pointer`.
    pub field: String,
    pub message: String,
}

impl From<&FieldError> for ProblemField {
    fn from(e: &FieldError) -> Self {
        Self {
            field: e.field.clone(),
            message: e.message.clone(),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Validation(_) | Self::MalformedBody(_) | Self::UrlNotAllowed(_) => {
                StatusCode::BAD_REQUEST
            }
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::MissingScope(_) | Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::InvalidState { .. } | Self::AlreadyExists(_) | Self::Conflict(_) => {
                StatusCode::CONFLICT
            }
            Self::InvokeFailed(_) => StatusCode::BAD_GATEWAY,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::StoreUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        if status.is_server_error() {
            tracing::error!(error = ?self, code = self.code(), "request failed");
        }
        let errors = match self {
            Self::Validation(v) | Self::UrlNotAllowed(v) => {
                v.0.iter().map(ProblemField::from).collect()
            }
            _ => Vec::new(),
        };
        let problem = Problem {
            type_uri: format!("urn:callback-center:problem:{}", self.code()),
            title: self.title().into(),
            status: status.as_u16(),
            detail: self.to_string(),
            code: self.code().into(),
            errors,
        };
        let mut response = HttpResponse::build(status);
        response.insert_header((header::CONTENT_TYPE, "application/problem+json"));
        match self {
            Self::Unauthorized(_) => {
                response.insert_header((
                    header::WWW_AUTHENTICATE,
                    r#"Bearer realm="callback-center""#,
                ));
            }
            Self::MissingScope(scope) => {
                let challenge = format!(
                    r#"Bearer realm="callback-center", error="insufficient_scope", scope="{scope}""#
                );
                response.insert_header((header::WWW_AUTHENTICATE, challenge));
            }
            Self::RateLimited { retry_after, .. } => {
                // Whole seconds, rounded up: never invite a retry too early.
                let seconds = retry_after.as_millis().div_ceil(1000).max(1);
                response.insert_header((header::RETRY_AFTER, seconds.to_string()));
            }
            _ => {}
        }
        if matches!(self, Self::StoreUnavailable(_)) {
            response.insert_header((header::RETRY_AFTER, "5"));
        }
        response.json(problem)
    }
}
