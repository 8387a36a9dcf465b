//! The operator console under `/console`: pages rendered on the server
//! (askama), a little htmx, one stylesheet, in English and Chinese.
//!
//! Every action goes through the same functions the JSON API's handlers
//! call (`callback_api::tasks::resend`, `operations::bulk_resend`, …), as
//! the signed-in person's principal, so scopes, application confinement,
//! validation and the audit log are the API's own. Nothing here talks to a
//! store except through `callback-auth`'s sessions.

mod error;
mod i18n;
mod pages;
mod session;

pub use error::ConsoleError;
pub use i18n::{Lang, Text};

use actix_web::http::header;
use actix_web::{middleware, web, HttpRequest, HttpResponse};
use callback_auth::ConsoleAuth;
use std::sync::Arc;

/// What the console's pages share besides the API's state.
pub struct ConsoleState {
    pub auth: Arc<ConsoleAuth>,
}

/// Percent-encodes a query value.
pub(crate) fn encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

const HTMX: &str = include_str!("../static/htmx-2.0.11.min.js");
const STYLE: &str = include_str!("../static/console.css");
const SCRIPT: &str = include_str!("../static/console.js");

async fn static_file(path: web::Path<String>) -> HttpResponse {
    let (body, kind) = match path.as_str() {
        "htmx.min.js" => (HTMX, "text/javascript; charset=utf-8"),
        "console.css" => (STYLE, "text/css; charset=utf-8"),
        "console.js" => (SCRIPT, "text/javascript; charset=utf-8"),
        _ => return HttpResponse::NotFound().finish(),
    };
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, kind))
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(body)
}

#[derive(serde::Deserialize)]
struct LangQuery {
    to: String,
    back: Option<String>,
}

/// The language switch: remembered in a cookie, then back to the page.
async fn switch_language(req: HttpRequest, query: web::Query<LangQuery>) -> HttpResponse {
    let lang = Lang::parse(&query.to).unwrap_or(Lang::En);
    // Only back into the console: never an open redirect.
    let back = query
        .back
        .as_deref()
        .filter(|b| b.starts_with("/console") && !b.starts_with("//"))
        .unwrap_or("/console");
    let cookie = actix_web::cookie::Cookie::build(i18n::LANG_COOKIE, lang.code())
        .path("/console")
        .same_site(actix_web::cookie::SameSite::Lax)
        .secure(req.connection_info().scheme() == "https")
        .max_age(actix_web::cookie::time::Duration::days(365))
        .finish();
    HttpResponse::SeeOther()
        .cookie(cookie)
        .insert_header((header::LOCATION, back.to_string()))
        .finish()
}

/// Mounts the console under `/console`. The API's state must be mounted
/// too (`callback_api::configure`).
pub fn configure(state: web::Data<ConsoleState>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.service(
            web::scope("/console")
                .app_data(state)
                .app_data(web::FormConfig::default().limit(64 * 1024))
                // Outermost last: the session first, then the audit record
                // of what the signed-in person did.
                .wrap(middleware::from_fn(callback_api::audit::record))
                .wrap(middleware::from_fn(session::guard))
                .route("", web::get().to(pages::home))
                .route("/", web::get().to(pages::home))
                .route("/static/{file}", web::get().to(static_file))
                .route("/lang", web::get().to(switch_language))
                .route("/login", web::get().to(pages::login::form))
                .route("/login", web::post().to(pages::login::sign_in))
                .route("/logout", web::post().to(pages::login::sign_out))
                .route("/overview", web::get().to(pages::overview::page))
                .route("/tasks", web::get().to(pages::tasks::list))
                .route("/tasks/retry", web::post().to(pages::bulk::resend))
                .route("/tasks/cancel", web::post().to(pages::bulk::cancel))
                .route("/tasks/{task_id}", web::get().to(pages::tasks::detail))
                .route(
                    "/tasks/{task_id}/retry",
                    web::post().to(pages::tasks::resend),
                )
                .route(
                    "/tasks/{task_id}/cancel",
                    web::post().to(pages::tasks::cancel),
                )
                .route("/bulk", web::get().to(pages::bulk::page))
                .route("/failed-buckets", web::get().to(pages::buckets::list))
                .route(
                    "/failed-buckets/retry",
                    web::post().to(pages::buckets::resend),
                )
                .route("/tail", web::get().to(pages::tail::page))
                .route("/tail/stream", web::get().to(pages::tail::stream))
                .route("/endpoints", web::get().to(pages::endpoints::list))
                .route("/endpoints", web::post().to(pages::endpoints::create))
                .route("/endpoints/{name}", web::get().to(pages::endpoints::detail))
                .route(
                    "/endpoints/{name}",
                    web::post().to(pages::endpoints::update),
                )
                .route(
                    "/endpoints/{name}/rotate-secret",
                    web::post().to(pages::endpoints::rotate),
                )
                .route(
                    "/endpoints/{name}/test",
                    web::post().to(pages::endpoints::test),
                )
                .route("/alert-hooks", web::get().to(pages::hooks::list))
                .route("/alert-hooks", web::post().to(pages::hooks::create))
                .route("/alert-hooks/{id}/test", web::post().to(pages::hooks::test))
                .route("/inbound", web::get().to(pages::inbound::page))
                .route("/routes", web::post().to(pages::inbound::upsert))
                .route(
                    "/routes/{namespace}/{key}/delete",
                    web::post().to(pages::inbound::delete),
                )
                .route(
                    "/inbound/{id}/forward",
                    web::post().to(pages::inbound::forward),
                )
                .route("/accounts", web::get().to(pages::accounts::list))
                .route("/accounts", web::post().to(pages::accounts::create))
                .route(
                    "/accounts/{id}/disable",
                    web::post().to(pages::accounts::disable),
                )
                .route(
                    "/accounts/{id}/enable",
                    web::post().to(pages::accounts::enable),
                )
                .route(
                    "/accounts/{id}/reset-password",
                    web::post().to(pages::accounts::reset_password),
                )
                .route("/keys", web::get().to(pages::keys::list))
                .route("/keys", web::post().to(pages::keys::create))
                .route("/keys/{id}/revoke", web::post().to(pages::keys::revoke))
                .route("/audit", web::get().to(pages::audit::list)),
        );
    }
}
