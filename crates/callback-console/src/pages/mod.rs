//! One module per page; each renders a template of `templates/`.

pub mod accounts;
pub mod audit;
pub mod buckets;
pub mod bulk;
pub mod endpoints;
pub mod hooks;
pub mod inbound;
pub mod keys;
pub mod login;
pub mod overview;
pub mod tail;
pub mod tasks;

use crate::error::ConsoleError;
use crate::i18n::Text;
use crate::session;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};
use askama::Template;
use callback_api::{ApiError, Caller};
use callback_core::{ConsoleSession, Role};
use chrono::{DateTime, Utc};
use std::sync::Arc;

pub type PageResult = Result<HttpResponse, ConsoleError>;

/// What every signed-in page shows around its content.
pub struct Ctx {
    pub t: Text,
    pub username: String,
    pub role: Role,
    pub csrf: String,
    /// The nav entry to mark.
    pub section: &'static str,
    /// This page, for the language switch to come back to.
    pub here: String,
}

impl Ctx {
    pub fn new(req: &HttpRequest, section: &'static str) -> Result<(Self, Caller), ConsoleError> {
        let session: ConsoleSession =
            session::current(req).ok_or_else(|| ApiError::Unauthorized("sign in first".into()))?;
        let caller = Caller::new(Arc::new(session.principal()));
        let here = req
            .uri()
            .path_and_query()
            .map(|pq| pq.as_str().to_string())
            .unwrap_or_else(|| "/console".into());
        Ok((
            Self {
                t: session::language(req),
                username: session.username,
                role: session.role,
                csrf: session.csrf,
                section,
                here,
            },
            caller,
        ))
    }

    /// Whether to show buttons that change tasks and endpoints. The server
    /// checks again on every POST: hiding is a courtesy, not the guard.
    pub fn can_manage(&self) -> bool {
        self.role >= Role::Operator
    }

    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    pub fn switch_url(&self) -> String {
        format!(
            "/console/lang?to={}&back={}",
            self.t.lang.other().code(),
            crate::encode(&self.here)
        )
    }

    pub fn active(&self, section: &str) -> &'static str {
        if self.section == section {
            "active"
        } else {
            ""
        }
    }
}

pub fn render(page: &impl Template) -> PageResult {
    let html = page.render().map_err(|e| ApiError::Internal(Box::new(e)))?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        // The console frames nothing and is framed by nothing.
        .insert_header(("x-frame-options", "DENY"))
        .insert_header((
            "content-security-policy",
            "default-src 'self'; style-src 'self'; script-src 'self'; frame-ancestors 'none'",
        ))
        .body(html))
}

pub fn redirect(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to.to_string()))
        .finish()
}

pub async fn home() -> HttpResponse {
    redirect("/console/overview")
}

/// `2 h 5 min`, `40 s`: how long ago, or how long until.
pub fn span(from: DateTime<Utc>, to: DateTime<Utc>) -> String {
    let secs = (to - from).num_seconds().abs();
    match secs {
        0..=59 => format!("{secs} s"),
        60..=3599 => format!("{} min", secs / 60),
        3600..=86_399 => format!("{} h {} min", secs / 3600, secs % 3600 / 60),
        _ => format!("{} d {} h", secs / 86_400, secs % 86_400 / 3600),
    }
}

pub fn time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// An empty form field is no condition.
pub fn given(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}
