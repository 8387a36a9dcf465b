//! API keys (admins): create one (its secret shown once), revoke.

use super::{given, render, time, Ctx, PageResult};
use actix_web::{web, HttpRequest};
use askama::Template;
use callback_api::keys::{self, CreateKeyRequest, KeyView};
use callback_api::ApiState;
use callback_core::Scope;

#[derive(Template)]
#[template(path = "keys.html")]
struct KeysPage {
    ctx: Ctx,
    keys: Vec<KeyView>,
    scopes: Vec<&'static str>,
    /// A new key's name and secret, shown once.
    created: Option<(String, String)>,
}

impl KeysPage {
    fn when(&self, at: &Option<chrono::DateTime<chrono::Utc>>) -> String {
        at.map(time).unwrap_or_default()
    }
}

async fn show(
    req: &HttpRequest,
    state: &ApiState,
    created: Option<(String, String)>,
) -> PageResult {
    let (ctx, caller) = Ctx::new(req, "admin")?;
    let keys = keys::list(state, &caller).await?.items;
    render(&KeysPage {
        ctx,
        keys,
        scopes: Scope::ALL.iter().map(|s| s.as_str()).collect(),
        created,
    })
}

pub async fn list(req: HttpRequest, state: web::Data<ApiState>) -> PageResult {
    show(&req, &state, None).await
}

/// The form: name, app, and one `scope` field per ticked box.
struct NewKey {
    name: String,
    app: Option<String>,
    scope: Vec<String>,
}

pub async fn create(
    req: HttpRequest,
    state: web::Data<ApiState>,
    form: web::Form<Vec<(String, String)>>,
) -> PageResult {
    let (_, caller) = Ctx::new(&req, "admin")?;
    // Repeated fields (`scope`) come as pairs: a url-encoded form has no lists.
    let mut new = NewKey {
        name: String::new(),
        app: None,
        scope: Vec::new(),
    };
    for (name, value) in form.into_inner() {
        match name.as_str() {
            "name" => new.name = value,
            "app" => new.app = Some(value),
            "scope" => new.scope.push(value),
            _ => {}
        }
    }
    let created = keys::create(
        &state,
        &caller,
        CreateKeyRequest {
            name: new.name.trim().to_string(),
            app: given(&new.app),
            scopes: new.scope,
            ..CreateKeyRequest::default()
        },
    )
    .await?;
    callback_api::audit::note(&req, Some(created.view.id.clone()), None);
    show(&req, &state, Some((created.view.name, created.key))).await
}

pub async fn revoke(
    req: HttpRequest,
    state: web::Data<ApiState>,
    path: web::Path<String>,
) -> PageResult {
    let (_, caller) = Ctx::new(&req, "admin")?;
    keys::revoke(&state, &caller, &path).await?;
    show(&req, &state, None).await
}
