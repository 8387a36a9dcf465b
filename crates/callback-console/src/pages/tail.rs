//! Attempts as they happen: the page, and the API's own stream of attempts
//! under the console's session.

use super::{given, render, Ctx, PageResult};
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use callback_api::live::{stream_attempts, TailQuery};
use callback_api::{ApiState, Caller};
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
pub struct TailForm {
    app: Option<String>,
    receiver: Option<String>,
    failed: Option<String>,
}

impl TailForm {
    fn stream_url(&self) -> String {
        let mut parts = Vec::new();
        if let Some(app) = given(&self.app) {
            parts.push(format!("app={}", crate::encode(&app)));
        }
        if let Some(receiver) = given(&self.receiver) {
            parts.push(format!("receiver={}", crate::encode(&receiver)));
        }
        if self.failed_only() {
            parts.push("failed=true".into());
        }
        format!("/console/tail/stream?{}", parts.join("&"))
    }

    fn failed_only(&self) -> bool {
        matches!(self.failed.as_deref(), Some("on" | "true" | "1"))
    }
}

#[derive(Template)]
#[template(path = "tail.html")]
struct TailPage {
    ctx: Ctx,
    form: TailForm,
    stream: String,
}

pub async fn page(req: HttpRequest, form: web::Query<TailForm>) -> PageResult {
    let (ctx, _) = Ctx::new(&req, "tail")?;
    let form = form.into_inner();
    render(&TailPage {
        stream: form.stream_url(),
        ctx,
        form,
    })
}

pub async fn stream(
    req: HttpRequest,
    state: web::Data<ApiState>,
    form: web::Query<TailForm>,
) -> Result<HttpResponse, crate::ConsoleError> {
    let (_, caller): (Ctx, Caller) = Ctx::new(&req, "tail")?;
    let form = form.into_inner();
    let query = TailQuery {
        failed: Some(form.failed_only()),
        app: given(&form.app),
        receiver: given(&form.receiver),
    };
    Ok(stream_attempts(state, caller, web::Query(query)).await?)
}
