//! Attempts as they happen: `GET /api/v1/attempts/stream`, server-sent
//! events, for `cbctl tail` and the console's live view.
//!
//! The feed is an observer of the delivery engine: it hears every attempt
//! this instance makes and hands it to the streams open on it. With no
//! stream open it does nothing but read a counter. Memory is bounded: each
//! stream may lag `FEED_CAPACITY` attempts behind, and one that lags more
//! is told how many it missed instead of slowing delivery.

use crate::auth::Caller;
use crate::{ApiError, ApiState};
use actix_web::http::header;
use actix_web::{web, HttpResponse};
use callback_core::{lock, AttemptReport, AttemptResult, Observe, Scope, SlidingCounts};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::broadcast;
use utoipa::{IntoParams, ToSchema};

/// Attempts a slow stream may fall behind before it is told it missed some.
const FEED_CAPACITY: usize = 1024;
/// A comment this often keeps proxies from closing a quiet stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// One attempt, as a stream shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LiveAttempt {
    pub task_id: String,
    pub attempt: u32,
    /// The task's source application.
    pub app: Option<String>,
    /// `endpoint:NAME`, a URL origin, or `alert:ID`.
    pub receiver: String,
    pub method: String,
    /// The URL, with robot tokens and keys in its query masked.
    pub url: String,
    pub started_at: DateTime<Utc>,
    pub duration_ms: u64,
    pub status_code: Option<u16>,
    /// success, unexpected_answer, timeout or connection_error.
    pub outcome: String,
    pub error: Option<String>,
}

/// Hands each attempt to the streams open on this instance, and counts
/// them by minute for the console's chart.
pub struct AttemptFeed {
    sender: broadcast::Sender<Arc<LiveAttempt>>,
    minutes: Mutex<SlidingCounts>,
}

impl Default for AttemptFeed {
    fn default() -> Self {
        Self {
            sender: broadcast::channel(FEED_CAPACITY).0,
            minutes: Mutex::new(SlidingCounts::new(
                Duration::from_secs(60 * 60),
                60,
                Instant::now(),
            )),
        }
    }
}

impl AttemptFeed {
    /// This instance's attempts and failures in each of the last 60
    /// minutes, oldest first (the current minute last).
    pub fn per_minute(&self) -> Vec<(u32, u32)> {
        lock(&self.minutes).slots(Instant::now())
    }
}

impl Observe for AttemptFeed {
    fn attempt_report(&self, report: &AttemptReport<'_>) {
        lock(&self.minutes).add(report.result == AttemptResult::Success, Instant::now());
        if self.sender.receiver_count() == 0 {
            return;
        }
        let _ = self.sender.send(Arc::new(LiveAttempt {
            task_id: report.task_id.to_string(),
            attempt: report.attempt,
            app: report.app.map(str::to_string),
            receiver: report.receiver.to_string(),
            method: report.method.as_str().to_string(),
            url: report.url.redacted(),
            started_at: report.started_at,
            duration_ms: u64::try_from(report.duration.as_millis()).unwrap_or(u64::MAX),
            status_code: report.status_code,
            outcome: report.result.as_str().to_string(),
            error: report.error.map(str::to_string),
        }));
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct TailQuery {
    /// Only attempts of tasks of this source application.
    pub app: Option<String>,
    /// Only attempts to receivers containing this text (a host, or
    /// `endpoint:NAME`).
    pub receiver: Option<String>,
    /// Only failed attempts.
    pub failed: Option<bool>,
}

/// Attempts as this instance makes them, as server-sent events: each is
/// `event: attempt` with a `LiveAttempt` as `data`; `event: missed` with
/// `{"missed": N}` when the stream fell behind. The stream shows the
/// attempts of the instance it is open on.
#[utoipa::path(
    get,
    path = "/api/v1/attempts/stream",
    tag = "tasks",
    params(TailQuery),
    responses((status = 200, description = "Server-sent events, until the client hangs up", content_type = "text/event-stream", body = LiveAttempt)),
    security(("bearer" = []))
)]
pub async fn stream_attempts(
    state: web::Data<ApiState>,
    caller: Caller,
    query: web::Query<TailQuery>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::TasksRead)?;
    let query = query.into_inner();
    // An application's key sees its own application's attempts only.
    let app = caller.app_for(query.app)?;
    let filter = Filter {
        app,
        receiver: query.receiver,
        failed_only: query.failed.unwrap_or(false),
    };
    let receiver = state.attempts.sender.subscribe();
    let events = futures_util::stream::unfold(
        (receiver, tokio::time::interval(KEEP_ALIVE), filter),
        |(mut receiver, mut keep_alive, filter)| async move {
            loop {
                let chunk = tokio::select! {
                    received = receiver.recv() => match received {
                        Ok(attempt) if filter.lets_through(&attempt) => event("attempt", &*attempt),
                        Ok(_) => continue,
                        Err(broadcast::error::RecvError::Lagged(missed)) => {
                            event("missed", &serde_json::json!({"missed": missed}))
                        }
                        Err(broadcast::error::RecvError::Closed) => return None,
                    },
                    _ = keep_alive.tick() => ": keep-alive\n\n".to_string(),
                };
                return Some((
                    Ok::<_, actix_web::Error>(web::Bytes::from(chunk)),
                    (receiver, keep_alive, filter),
                ));
            }
        },
    );
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        // nginx would otherwise buffer the stream.
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(events))
}

struct Filter {
    app: Option<String>,
    receiver: Option<String>,
    failed_only: bool,
}

impl Filter {
    fn lets_through(&self, attempt: &LiveAttempt) -> bool {
        self.app
            .as_ref()
            .is_none_or(|app| attempt.app.as_ref() == Some(app))
            && self
                .receiver
                .as_ref()
                .is_none_or(|r| attempt.receiver.contains(r.as_str()))
            && (!self.failed_only || attempt.outcome != AttemptResult::Success.as_str())
    }
}

fn event<T: Serialize>(name: &str, data: &T) -> String {
    let data = serde_json::to_string(data).unwrap_or_else(|_| "null".into());
    format!("event: {name}\ndata: {data}\n\n")
}
