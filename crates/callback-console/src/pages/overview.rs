//! What is happening now: counts of the last hour and day, the backlog,
//! the receivers failing most, open breakers. Refreshes itself (htmx).

use super::{render, span, time, Ctx, PageResult};
use actix_web::{web, HttpRequest};
use askama::Template;
use callback_api::operations::{backlog, tally_since, Tally};
use callback_api::ApiState;
use callback_core::{Backlog, ReceiverStatus};
use chrono::{TimeDelta, Utc};

#[derive(Template)]
#[template(path = "overview.html")]
struct OverviewPage {
    ctx: Ctx,
    hour: Tally,
    day: Tally,
    backlog: Backlog,
    oldest_due: Option<String>,
    receivers: Vec<ReceiverRow>,
    breakers: Vec<ReceiverRow>,
}

struct ReceiverRow {
    receiver: String,
    failure_rate: String,
    attempts: u32,
    in_flight: u32,
    breaker: &'static str,
    until: String,
}

impl ReceiverRow {
    fn new(status: &ReceiverStatus) -> Self {
        let now = Utc::now();
        Self {
            receiver: status.receiver.clone(),
            failure_rate: format!("{:.1}%", status.failure_ratio * 100.0),
            attempts: status.recent_attempts,
            in_flight: status.in_flight,
            breaker: status.breaker,
            until: status
                .open_until
                .map(|at| format!("{} ({})", time(at), span(now, at)))
                .unwrap_or_default(),
        }
    }
}

/// Receivers shown by failure rate.
const TOP: usize = 10;

pub async fn page(req: HttpRequest, state: web::Data<ApiState>) -> PageResult {
    let (ctx, caller) = Ctx::new(&req, "overview")?;
    let now = Utc::now();
    let hour = tally_since(&state, &caller, now - TimeDelta::hours(1)).await?;
    let day = tally_since(&state, &caller, now - TimeDelta::days(1)).await?;
    let backlog = backlog(&state, &caller).await?;
    let mut busy = state.receivers.busy_receivers();
    busy.sort_by(|a, b| {
        b.failure_ratio
            .total_cmp(&a.failure_ratio)
            .then(b.recent_attempts.cmp(&a.recent_attempts))
    });
    let receivers = busy.iter().take(TOP).map(ReceiverRow::new).collect();
    let breakers = state
        .receivers
        .open_breakers()
        .iter()
        .map(ReceiverRow::new)
        .collect();
    render(&OverviewPage {
        oldest_due: backlog
            .oldest_due_at
            .map(|at| format!("{} ({})", time(at), span(at, now))),
        ctx,
        hour,
        day,
        backlog,
        receivers,
        breakers,
    })
}
