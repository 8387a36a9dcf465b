//! What is happening now: counts of the last hour and day, the backlog,
//! the receivers failing most, open breakers. Refreshes itself (htmx).

use super::{render, span, time, Ctx, PageResult};
use actix_web::{web, HttpRequest};
use askama::Template;
use callback_api::operations::{backlog, tallies, Tally};
use callback_api::ApiState;
use callback_core::{Backlog, ReceiverStatus};
use chrono::Utc;

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
    chart: Chart,
}

/// Attempts per minute over the last hour, as bars of an SVG drawn here.
struct Chart {
    bars: Vec<Bar>,
    peak: u32,
}

/// One minute: its whole bar, and the failed part at its foot.
struct Bar {
    x: u32,
    y: u32,
    height: u32,
    failed_y: u32,
    failed_height: u32,
    title: String,
}

const CHART_HEIGHT: u32 = 100;
const BAR_WIDTH: u32 = 10;

impl Chart {
    fn new(minutes: &[(u32, u32)]) -> Self {
        let peak = minutes.iter().map(|m| m.0).max().unwrap_or(0).max(1);
        let scale = |n: u32| (u64::from(n) * u64::from(CHART_HEIGHT) / u64::from(peak)) as u32;
        let count = minutes.len() as u32;
        let bars = minutes
            .iter()
            .enumerate()
            .map(|(i, &(attempts, failures))| {
                let height = scale(attempts);
                let failed_height = scale(failures);
                Bar {
                    x: i as u32 * BAR_WIDTH,
                    y: CHART_HEIGHT - height,
                    height,
                    failed_y: CHART_HEIGHT - failed_height,
                    failed_height,
                    title: format!("-{} min: {attempts} / {failures}", count - 1 - i as u32),
                }
            })
            .collect();
        Self { bars, peak }
    }

    fn width(&self) -> u32 {
        self.bars.len() as u32 * BAR_WIDTH
    }
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
    let (hour, day) = tallies(&state, &caller).await?;
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
    let chart = Chart::new(&state.attempts.per_minute());
    render(&OverviewPage {
        chart,
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
