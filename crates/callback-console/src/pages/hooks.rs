//! Alert hooks (失败通知管理): list, add a DingTalk, WeCom or webhook hook,
//! send a test message and show the robot's answer.

use super::{given, render, Ctx, PageResult};
use actix_web::{web, HttpRequest};
use askama::Template;
use callback_api::alert_hooks::{self, AlertHookView, AlertTestView, CreateAlertHookRequest};
use callback_api::ApiState;
use serde::Deserialize;

#[derive(Template)]
#[template(path = "hooks.html")]
struct HooksPage {
    ctx: Ctx,
    hooks: Vec<AlertHookView>,
    notice: Option<String>,
    /// The hook tested and what it answered.
    tested: Option<(String, AlertTestView, String)>,
}

async fn show(
    req: &HttpRequest,
    state: &ApiState,
    notice: Option<String>,
    tested: Option<(String, AlertTestView)>,
) -> PageResult {
    let (ctx, caller) = Ctx::new(req, "hooks")?;
    let hooks = alert_hooks::list(state, &caller).await?.items;
    let tested = tested.map(|(id, view)| {
        let answer = view.answer.to_string();
        (id, view, answer)
    });
    render(&HooksPage {
        ctx,
        hooks,
        notice,
        tested,
    })
}

pub async fn list(req: HttpRequest, state: web::Data<ApiState>) -> PageResult {
    show(&req, &state, None, None).await
}

#[derive(Deserialize)]
pub struct HookForm {
    kind: String,
    url: String,
    secret: Option<String>,
    remark: Option<String>,
    source_app: Option<String>,
}

pub async fn create(
    req: HttpRequest,
    state: web::Data<ApiState>,
    form: web::Form<HookForm>,
) -> PageResult {
    let (ctx, caller) = Ctx::new(&req, "hooks")?;
    let form = form.into_inner();
    let hook = alert_hooks::create(
        &state,
        &caller,
        CreateAlertHookRequest {
            kind: form.kind,
            url: form.url.trim().to_string(),
            secret: given(&form.secret),
            remark: given(&form.remark),
            source_app: given(&form.source_app),
            ..CreateAlertHookRequest::default()
        },
    )
    .await?;
    callback_api::audit::note(&req, Some(hook.id.clone()), None);
    show(&req, &state, Some(ctx.t.get("hooks.created").into()), None).await
}

pub async fn test(
    req: HttpRequest,
    state: web::Data<ApiState>,
    path: web::Path<String>,
) -> PageResult {
    let (_, caller) = Ctx::new(&req, "hooks")?;
    let view = alert_hooks::test(&state, &caller, &path).await?;
    show(&req, &state, None, Some((path.into_inner(), view))).await
}
