use crate::types::Problem;
use std::time::Duration;

/// Why a call did not give what was asked.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered with an error (`401`, `404`, `409`, `422`...).
    #[error("{} {}: {}", problem.status, problem.code, problem.detail)]
    Api { problem: Box<Problem> },
    /// The server could not be reached, or the exchange broke off.
    #[error("could not reach the server: {0}")]
    Transport(#[source] reqwest::Error),
    /// The server stayed unavailable (`503`, `429`, no connection) until
    /// the retry deadline.
    #[error("gave up after {attempts} tries over {elapsed:?}: {last}")]
    GaveUp {
        attempts: u32,
        elapsed: Duration,
        last: Box<Error>,
    },
    /// `wait_for` ran out of time; `status` is the task's last status.
    #[error("task {task_id} is still {status} after {waited:?}")]
    WaitTimedOut {
        task_id: String,
        status: String,
        waited: Duration,
    },
    /// The answer was not what the API documents.
    #[error("unexpected answer ({status}): {detail}")]
    Decode { status: u16, detail: String },
    /// The client was given something it cannot use (a base URL...).
    #[error("{0}")]
    Config(String),
}

impl Error {
    /// The API's error code (`not_found`, `validation_failed`,
    /// `insufficient_scope`...), when the server answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Api { problem } => Some(&problem.code),
            Self::GaveUp { last, .. } => last.code(),
            _ => None,
        }
    }

    /// The HTTP status of the answer, when there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { problem } => Some(problem.status),
            Self::Decode { status, .. } => Some(*status),
            Self::GaveUp { last, .. } => last.status(),
            _ => None,
        }
    }
}
