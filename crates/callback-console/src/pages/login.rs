//! Signing in (username and password, or the admin token) and out.

use super::{redirect, PageResult};
use crate::session::{self, SESSION_COOKIE};
use crate::{ConsoleState, Text};
use actix_web::cookie::Cookie;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use askama::Template;
use callback_api::{ApiError, ClientAddress};
use callback_auth::SignInError;
use callback_core::{KeyHash, Principal};
use serde::Deserialize;
use std::sync::Arc;

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    t: Text,
    next: String,
    problem: Option<String>,
    switch_url: String,
}

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

/// Only a console path: never sent elsewhere after signing in.
fn safe_next(next: Option<&str>) -> String {
    next.filter(|n| n.starts_with("/console") && !n.starts_with("//"))
        .unwrap_or("/console/overview")
        .to_string()
}

fn login_page(req: &HttpRequest, next: String, problem: Option<String>, status: u16) -> PageResult {
    let t = session::language(req);
    let back = format!("/console/login?next={}", crate::encode(&next));
    let page = LoginPage {
        t,
        switch_url: format!(
            "/console/lang?to={}&back={}",
            t.lang.other().code(),
            crate::encode(&back)
        ),
        next,
        problem,
    };
    let mut response = super::render(&page)?;
    *response.status_mut() =
        actix_web::http::StatusCode::from_u16(status).unwrap_or(actix_web::http::StatusCode::OK);
    Ok(response)
}

pub async fn form(req: HttpRequest, query: web::Query<NextQuery>) -> PageResult {
    login_page(&req, safe_next(query.next.as_deref()), None, 200)
}

#[derive(Deserialize)]
pub struct SignInForm {
    username: Option<String>,
    password: Option<String>,
    token: Option<String>,
    next: Option<String>,
}

pub async fn sign_in(
    req: HttpRequest,
    console: web::Data<ConsoleState>,
    form: web::Form<SignInForm>,
) -> PageResult {
    let form = form.into_inner();
    let next = safe_next(form.next.as_deref());
    let client = req.extensions().get::<ClientAddress>().and_then(|c| c.0);
    let now = chrono::Utc::now();
    let opened = match (&form.token, &form.username, &form.password) {
        (Some(token), _, _) if !token.is_empty() => {
            console.auth.sign_in_with_token(token, client, now).await
        }
        (_, Some(username), Some(password)) => {
            console
                .auth
                .sign_in(username.trim(), password, client, now)
                .await
        }
        _ => Err(SignInError::Refused),
    };
    let t = session::language(&req);
    match opened {
        Ok(opened) => {
            // The audit log records the sign-in as the person signed in.
            let principal: Arc<Principal> = Arc::new(opened.session.principal());
            req.extensions_mut().insert(principal);
            Ok(HttpResponse::SeeOther()
                .cookie(session::session_cookie(&req, opened.token))
                .insert_header((actix_web::http::header::LOCATION, next))
                .finish())
        }
        Err(SignInError::Refused) => {
            login_page(&req, next, Some(t.get("login.refused").into()), 401)
        }
        Err(SignInError::TooMany(_)) => {
            login_page(&req, next, Some(t.get("login.too_many").into()), 429)
        }
        Err(SignInError::Unavailable(err)) => Err(ApiError::StoreUnavailable(err).into()),
    }
}

pub async fn sign_out(req: HttpRequest, console: web::Data<ConsoleState>) -> PageResult {
    if let Some(session) = session::current(&req) {
        let hash: KeyHash = session.token_hash;
        console
            .auth
            .sign_out(&hash)
            .await
            .map_err(ApiError::StoreUnavailable)?;
    }
    let mut gone = Cookie::build(SESSION_COOKIE, "").path("/console").finish();
    gone.make_removal();
    let mut response = redirect("/console/login");
    response.add_removal_cookie(&gone).ok();
    Ok(response)
}
