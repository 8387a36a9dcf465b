//! Failed buckets of ten minutes: list, and re-send one to its tasks' URLs
//! or to another.

use super::{given, render, Ctx, PageResult};
use actix_web::{web, HttpRequest};
use askama::Template;
use callback_api::operations::{buckets, resend_bucket, BucketView, RetryBucketRequest};
use callback_api::{ApiError, ApiState};
use callback_core::BUCKET;
use serde::Deserialize;

#[derive(Template)]
#[template(path = "buckets.html")]
struct BucketsPage {
    ctx: Ctx,
    items: Vec<(BucketView, String)>,
    done: Option<String>,
}

/// Each bucket with the link to its failed tasks.
async fn with_links(
    state: &ApiState,
    caller: &callback_api::Caller,
) -> Result<Vec<(BucketView, String)>, ApiError> {
    let items = buckets(state, caller).await?.items;
    Ok(items
        .into_iter()
        .map(|bucket| {
            let link = state
                .buckets
                .clock
                .parse_key(&bucket.date)
                .map(|start| {
                    let at = |t: chrono::DateTime<chrono::Utc>| {
                        t.format("%Y-%m-%dT%H:%M:%S").to_string()
                    };
                    format!(
                        "/console/tasks?status=failed&failed_from={}&failed_to={}",
                        at(start),
                        at(start + BUCKET)
                    )
                })
                .unwrap_or_default();
            (bucket, link)
        })
        .collect())
}

pub async fn list(req: HttpRequest, state: web::Data<ApiState>) -> PageResult {
    let (ctx, caller) = Ctx::new(&req, "buckets")?;
    let items = with_links(&state, &caller).await?;
    render(&BucketsPage {
        ctx,
        items,
        done: None,
    })
}

#[derive(Deserialize)]
pub struct BucketForm {
    date: String,
    retry: Option<u32>,
    target_url: Option<String>,
}

pub async fn resend(
    req: HttpRequest,
    state: web::Data<ApiState>,
    form: web::Form<BucketForm>,
) -> PageResult {
    let (ctx, caller) = Ctx::new(&req, "buckets")?;
    let form = form.into_inner();
    let request = RetryBucketRequest {
        date: form.date,
        // The count the page showed: a bucket re-sent meanwhile by someone
        // else is refused (409), not re-sent twice.
        retry: form.retry,
        target_url: given(&form.target_url),
    };
    let view = resend_bucket(&state, &caller, &request).await?;
    callback_api::audit::note(
        &req,
        Some(request.date.clone()),
        Some(serde_json::json!({ "request": &request, "queued": view.queued })),
    );
    let done = ctx
        .t
        .fill("buckets.done", &[("queued", view.queued.to_string())]);
    let items = with_links(&state, &caller).await?;
    render(&BucketsPage {
        ctx,
        items,
        done: Some(done),
    })
}
