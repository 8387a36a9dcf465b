//! Who is signed in: the session cookie is resolved before any page runs,
//! and the request then carries the same principal and client address the
//! API's bearer middleware gives its handlers, so the API's checks and its
//! audit middleware apply unchanged. Every POST must carry the session's
//! CSRF token, in the form or in an `X-CSRF-Token` header.

use crate::i18n::{Lang, Text, LANG_COOKIE};
use crate::ConsoleState;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::cookie::{Cookie, SameSite};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, Method};
use actix_web::middleware::Next;
use actix_web::{web, Error, HttpMessage, HttpRequest, HttpResponse};
use callback_api::{ApiState, ClientAddress};
use callback_core::{ConsoleSession, Principal};
use std::sync::Arc;

pub const SESSION_COOKIE: &str = "cbc_session";

/// Most bytes of a console form read to find its CSRF token.
const MAX_FORM: usize = 64 * 1024;

/// Paths that need no session.
fn is_public(path: &str) -> bool {
    path == "/console/login" || path.starts_with("/console/static/") || path == "/console/lang"
}

/// The session cookie: HttpOnly, SameSite=Strict, for the console's paths
/// only, Secure when the console is reached over TLS (directly or as a
/// proxy's `X-Forwarded-Proto` says).
pub fn session_cookie(req: &HttpRequest, token: String) -> Cookie<'static> {
    Cookie::build(SESSION_COOKIE, token)
        .path("/console")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(req.connection_info().scheme() == "https")
        .finish()
}

pub fn language(req: &HttpRequest) -> Text {
    let cookie = req.cookie(LANG_COOKIE);
    let accept = req
        .headers()
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok());
    Text {
        lang: Lang::choose(cookie.as_ref().map(|c| c.value()), accept),
    }
}

/// Resolves the session; sends a visitor without one to the sign-in page
/// (a GET) or refuses (anything else); checks the CSRF token of a POST.
pub async fn guard(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let (Some(console), Some(api)) = (
        req.app_data::<web::Data<ConsoleState>>().cloned(),
        req.app_data::<web::Data<ApiState>>().cloned(),
    ) else {
        return Ok(req.into_response(HttpResponse::InternalServerError().finish()));
    };
    let client = ClientAddress::of(req.request(), &api);
    req.extensions_mut().insert(client);
    if is_public(req.path()) {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_boxed_body);
    }
    let token = req.cookie(SESSION_COOKIE).map(|c| c.value().to_string());
    let session = match token {
        Some(token) => console
            .auth
            .session(&token, chrono::Utc::now())
            .await
            .map_err(|e| crate::ConsoleError::from(callback_api::ApiError::StoreUnavailable(e)))?,
        None => None,
    };
    let Some(session) = session else {
        let response = if req.method() == Method::GET {
            let back = req
                .uri()
                .path_and_query()
                .map(|pq| pq.as_str().to_string())
                .unwrap_or_default();
            HttpResponse::SeeOther()
                .insert_header((
                    header::LOCATION,
                    format!("/console/login?next={}", crate::encode(&back)),
                ))
                .finish()
        } else {
            HttpResponse::Unauthorized().body("sign in first")
        };
        return Ok(req.into_response(response));
    };
    if req.method() == Method::POST && !csrf_ok(&mut req, &session).await {
        let text = language(req.request());
        let page = crate::error::error_page(text, 403, text.get("error.csrf"));
        return Ok(req.into_response(page));
    }
    let principal: Arc<Principal> = Arc::new(session.principal());
    req.extensions_mut().insert(principal);
    req.extensions_mut().insert(session);
    next.call(req)
        .await
        .map(ServiceResponse::map_into_boxed_body)
}

/// Whether the POST carries the session's token. The form is read here and
/// put back for the page to read again.
async fn csrf_ok(req: &mut ServiceRequest, session: &ConsoleSession) -> bool {
    let expected = session.csrf.as_bytes();
    if let Some(header) = req.headers().get("x-csrf-token") {
        return constant_time_eq::constant_time_eq(header.as_bytes(), expected);
    }
    let Ok(body) = req.extract::<web::Bytes>().await else {
        return false;
    };
    if body.len() > MAX_FORM {
        return false;
    }
    let found = form_field(&body, "csrf");
    req.set_payload(actix_web::dev::Payload::from(body));
    found.is_some_and(|token| constant_time_eq::constant_time_eq(token.as_bytes(), expected))
}

/// A field of a url-encoded form (the same encoding as a query string).
fn form_field(body: &[u8], name: &str) -> Option<String> {
    let raw = std::str::from_utf8(body).ok()?;
    let pairs = web::Query::<Vec<(String, String)>>::from_query(raw).ok()?;
    pairs
        .into_inner()
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// The signed-in session of a page's request.
pub fn current(req: &HttpRequest) -> Option<ConsoleSession> {
    req.extensions().get::<ConsoleSession>().cloned()
}
