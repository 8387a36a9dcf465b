//! What the engines tell an observer as work happens: tasks accepted,
//! attempts made, tasks finished, alerts sent, callbacks received.
//!
//! A port like the stores: the engines call it and never learn what
//! listens (the server's metrics, or nothing). Every method has a default
//! that does nothing, so an observer implements only what it counts.

use crate::trace::TraceParent;
use std::time::Duration;

/// Where an accepted task came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Intake {
    /// `POST /api/v1/tasks`.
    Api,
    /// `POST /api/v1/tasks/batch`.
    Batch,
    /// A published event, one task per endpoint.
    Event,
    /// A vendor callback forwarded to its route.
    Inbound,
}

impl Intake {
    pub fn as_str(self) -> &'static str {
        match self {
            Intake::Api => "api",
            Intake::Batch => "batch",
            Intake::Event => "event",
            Intake::Inbound => "inbound",
        }
    }
}

/// How one attempt ended, or why a task was put off without one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttemptResult {
    Success,
    /// An answer that does not meet the task's expectation.
    UnexpectedAnswer,
    Timeout,
    /// No answer: refused, reset, TLS, DNS, or the outbound policy.
    ConnectionError,
    /// Put off without an attempt: the receiver's breaker is open.
    DeferredBreaker,
    /// Put off without an attempt: the receiver's in-flight cap is full.
    DeferredCap,
    /// Put off without an attempt: the receiver's rate limit is used up.
    DeferredRate,
}

impl AttemptResult {
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptResult::Success => "success",
            AttemptResult::UnexpectedAnswer => "unexpected_answer",
            AttemptResult::Timeout => "timeout",
            AttemptResult::ConnectionError => "connection_error",
            AttemptResult::DeferredBreaker => "deferred_breaker",
            AttemptResult::DeferredCap => "deferred_cap",
            AttemptResult::DeferredRate => "deferred_rate",
        }
    }
}

/// How a task ended for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Finish {
    Delivered,
    Failed,
    Cancelled,
}

impl Finish {
    pub fn as_str(self) -> &'static str {
        match self {
            Finish::Delivered => "delivered",
            Finish::Failed => "failed",
            Finish::Cancelled => "cancelled",
        }
    }
}

pub trait Observe: Send + Sync + 'static {
    /// `count` tasks of `app` were committed.
    fn accepted(&self, _app: Option<&str>, _intake: Intake, _count: u64) {}

    /// An attempt to `receiver` (a URL's host, or an endpoint) ended, or a
    /// task was put off (then `duration` is zero). An attempt that ended is
    /// reported once, as `attempt_report`, whose default comes here.
    fn attempt(&self, _receiver: &str, _result: AttemptResult, _duration: Duration) {}

    /// A task of `app` ended for good; `since_accepted` is its age then.
    fn finished(&self, _app: Option<&str>, _finish: Finish, _since_accepted: Duration) {}

    /// An alert message was handed to `channel` (dingtalk, wecom, webhook).
    fn alert(&self, _channel: &str, _sent: bool) {}

    /// A vendor callback from `source` was recorded, routed or not.
    fn inbound(&self, _source: &str, _routed: bool) {}

    /// An attempt ended, in full: what a live view or a span exporter
    /// shows of it. By default, counted as `attempt`; an observer that
    /// takes the report and still counts calls `attempt` itself.
    fn attempt_report(&self, report: &AttemptReport<'_>) {
        self.attempt(report.receiver, report.result, report.duration);
    }
}

/// One attempt, as it ended.
#[derive(Debug, Clone)]
pub struct AttemptReport<'a> {
    pub task_id: crate::TaskId,
    pub attempt: u32,
    /// The task's source application.
    pub app: Option<&'a str>,
    pub receiver: &'a str,
    pub method: crate::Method,
    pub url: &'a crate::TargetUrl,
    /// For a task submitted with a `traceparent`: the attempt's span.
    pub trace: Option<AttemptTrace>,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub duration: Duration,
    pub status_code: Option<u16>,
    pub result: AttemptResult,
    pub error: Option<&'a str>,
}

/// An attempt as a span of the submitter's trace.
#[derive(Debug, Clone, Copy)]
pub struct AttemptTrace {
    /// The traceparent the task was submitted with: the span's parent.
    pub parent: TraceParent,
    /// The traceparent the attempt was sent with: names the span itself.
    pub span: TraceParent,
}

/// Observes nothing: for engines built without metrics (tests, tools).
pub struct NoObserver;

impl Observe for NoObserver {}

/// Tells two observers everything: e.g. the metrics, and the alerter's
/// count of attempts for the success rate alert or the span exporter.
pub struct BothObservers<A, B>(pub A, pub B);

impl<A: Observe, B: Observe> Observe for BothObservers<A, B> {
    fn accepted(&self, app: Option<&str>, intake: Intake, count: u64) {
        self.0.accepted(app, intake, count);
        self.1.accepted(app, intake, count);
    }

    fn attempt(&self, receiver: &str, result: AttemptResult, duration: Duration) {
        self.0.attempt(receiver, result, duration);
        self.1.attempt(receiver, result, duration);
    }

    fn finished(&self, app: Option<&str>, finish: Finish, since_accepted: Duration) {
        self.0.finished(app, finish, since_accepted);
        self.1.finished(app, finish, since_accepted);
    }

    fn alert(&self, channel: &str, sent: bool) {
        self.0.alert(channel, sent);
        self.1.alert(channel, sent);
    }

    fn inbound(&self, source: &str, routed: bool) {
        self.0.inbound(source, routed);
        self.1.inbound(source, routed);
    }

    fn attempt_report(&self, report: &AttemptReport<'_>) {
        self.0.attempt_report(report);
        self.1.attempt_report(report);
    }
}

impl<T: Observe + ?Sized> Observe for std::sync::Arc<T> {
    fn accepted(&self, app: Option<&str>, intake: Intake, count: u64) {
        (**self).accepted(app, intake, count);
    }

    fn attempt(&self, receiver: &str, result: AttemptResult, duration: Duration) {
        (**self).attempt(receiver, result, duration);
    }

    fn finished(&self, app: Option<&str>, finish: Finish, since_accepted: Duration) {
        (**self).finished(app, finish, since_accepted);
    }

    fn alert(&self, channel: &str, sent: bool) {
        (**self).alert(channel, sent);
    }

    fn inbound(&self, source: &str, routed: bool) {
        (**self).inbound(source, routed);
    }

    fn attempt_report(&self, report: &AttemptReport<'_>) {
        (**self).attempt_report(report);
    }
}

/// Attempts that got an answer or failed to, counted for a success rate;
/// attempts put off by a breaker, cap or rate limit are neither.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AttemptTally {
    pub succeeded: u64,
    pub failed: u64,
}

impl AttemptTally {
    pub fn attempts(self) -> u64 {
        self.succeeded + self.failed
    }

    /// Successes over attempts; `None` without attempts.
    pub fn success_rate(self) -> Option<f64> {
        let attempts = self.attempts();
        (attempts > 0).then(|| self.succeeded as f64 / attempts as f64)
    }

    /// Counts one attempt; a deferral counts nothing.
    pub fn count(&mut self, result: AttemptResult) {
        match result {
            AttemptResult::Success => self.succeeded += 1,
            AttemptResult::UnexpectedAnswer
            | AttemptResult::Timeout
            | AttemptResult::ConnectionError => self.failed += 1,
            AttemptResult::DeferredBreaker
            | AttemptResult::DeferredCap
            | AttemptResult::DeferredRate => {}
        }
    }
}

impl std::ops::Add for AttemptTally {
    type Output = Self;

    fn add(self, other: Self) -> Self {
        Self {
            succeeded: self.succeeded + other.succeeded,
            failed: self.failed + other.failed,
        }
    }
}
