//! The result of one delivery attempt, as data: the dispatcher decides the
//! next step from it; it is never a Rust error.

use callback_core::Attempt;
use chrono::{DateTime, Utc};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryOutcome {
    pub started_at: DateTime<Utc>,
    pub duration: Duration,
    /// The traceparent the attempt was sent with, as a span of the task's
    /// trace; `None` for a task without one.
    pub span: Option<callback_core::TraceParent>,
    /// `None` when no response arrived.
    pub status_code: Option<u16>,
    /// The first bytes of the response body (at most the recorded limit).
    pub body_head: Option<Vec<u8>>,
    /// Why the attempt failed, in words; `None` on success.
    pub error: Option<String>,
    pub success: bool,
    /// A `Retry-After` sent with a 429 or 503.
    pub retry_after: Option<Duration>,
}

impl DeliveryOutcome {
    /// How the attempt ended, as the metrics count it.
    pub fn result(&self) -> callback_core::AttemptResult {
        use callback_core::AttemptResult;
        match (self.success, self.status_code, self.error.as_deref()) {
            (true, _, _) => AttemptResult::Success,
            (false, Some(_), _) => AttemptResult::UnexpectedAnswer,
            (false, None, Some(error)) if error.starts_with("timeout") => AttemptResult::Timeout,
            (false, None, _) => AttemptResult::ConnectionError,
        }
    }

    /// The attempt as it is recorded.
    pub fn to_attempt(&self, number: u32) -> Attempt {
        Attempt {
            number,
            started_at: self.started_at,
            duration_ms: u64::try_from(self.duration.as_millis()).unwrap_or(u64::MAX),
            status_code: self.status_code,
            response_body: self
                .body_head
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned()),
            error: self.error.clone(),
            success: self.success,
        }
    }
}
