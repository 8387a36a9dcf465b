//! Errors as pages: the API's error with its status and message, or a
//! refusal of the console's own, on a page that needs no session.

use crate::i18n::{Lang, Text};
use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use askama::Template;
use callback_api::ApiError;

/// An error as a page: the API's error (its status and message), or a
/// refusal of the console's own.
#[derive(Debug)]
pub struct ConsoleError(ApiError);

impl From<ApiError> for ConsoleError {
    fn from(err: ApiError) -> Self {
        Self(err)
    }
}

impl std::fmt::Display for ConsoleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl ResponseError for ConsoleError {
    fn status_code(&self) -> StatusCode {
        self.0.status_code()
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        if status.is_server_error() {
            tracing::error!(error = ?self.0, "console page failed");
        }
        // No request here to choose a language by: both are shown.
        let message = match &self.0 {
            ApiError::MissingScope(_) | ApiError::Forbidden(_) => {
                "You may not do this. / 你无权执行此操作。".to_string()
            }
            other => other.to_string(),
        };
        error_page(
            Text { lang: Lang::En },
            status.as_u16(),
            &format!("{message}{}", field_errors(&self.0)),
        )
    }
}

/// The fields a validation error names, for the page.
fn field_errors(err: &ApiError) -> String {
    match err {
        ApiError::Validation(errors) | ApiError::UrlNotAllowed(errors) => errors
            .0
            .iter()
            .map(|e| format!(" {}: {}.", e.field, e.message))
            .collect(),
        _ => String::new(),
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    t: Text,
    status: u16,
    message: &'a str,
}

pub fn error_page(t: Text, status: u16, message: &str) -> HttpResponse {
    let html = ErrorPage { t, status, message }
        .render()
        .unwrap_or_else(|_| message.to_string());
    HttpResponse::build(
        actix_web::http::StatusCode::from_u16(status)
            .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR),
    )
    .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
    .body(html)
}
