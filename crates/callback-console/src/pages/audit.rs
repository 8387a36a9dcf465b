//! The audit log, newest first, filtered by actor and action.

use super::{given, render, Ctx, PageResult};
use actix_web::{web, HttpRequest};
use askama::Template;
use callback_api::audit::{entries, AuditQuery, AuditView};
use callback_api::ApiState;
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
pub struct AuditForm {
    actor: Option<String>,
    action: Option<String>,
    cursor: Option<String>,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    ctx: Ctx,
    form: AuditForm,
    items: Vec<AuditView>,
    next_page: Option<String>,
}

pub async fn list(
    req: HttpRequest,
    state: web::Data<ApiState>,
    form: web::Query<AuditForm>,
) -> PageResult {
    let (ctx, caller) = Ctx::new(&req, "admin")?;
    let form = form.into_inner();
    let query = AuditQuery {
        actor: given(&form.actor),
        action: given(&form.action),
        cursor: given(&form.cursor),
        ..AuditQuery::default()
    };
    let page = entries(&state, &caller, query).await?;
    let next_page = page.next_cursor.map(|cursor| {
        format!(
            "/console/audit?actor={}&action={}&cursor={cursor}",
            crate::encode(&given(&form.actor).unwrap_or_default()),
            crate::encode(&given(&form.action).unwrap_or_default())
        )
    });
    render(&AuditPage {
        ctx,
        form,
        items: page.items,
        next_page,
    })
}
