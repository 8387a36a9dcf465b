//! Between the API and delivery: handing over committed tasks, synchronous
//! calls, receivers' health, and the notices delivery raises.

use crate::{AlertHookId, EndpointName, SigningSecret, Task, TaskId};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::time::Duration;

/// How a request is signed at send time, with the current secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signing {
    /// Standard Webhooks headers.
    Standard(SigningSecret),
    /// DingTalk robot: `timestamp` and `sign` query parameters.
    Dingtalk(String),
}

/// What an operator sees of one receiver's health on this instance.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ReceiverStatus {
    /// `endpoint:NAME`, or a URL origin for plain tasks.
    pub receiver: String,
    /// `closed`, `open` or `half_open`.
    pub breaker: &'static str,
    pub open_until: Option<DateTime<Utc>>,
    /// Failed attempts within the breaker's window.
    pub recent_failures: u32,
    /// Attempts within the breaker's window.
    pub recent_attempts: u32,
    /// `recent_failures / recent_attempts` (0 without attempts): the
    /// breaker opens when it reaches `breaker.failure_ratio` past the
    /// threshold.
    pub failure_ratio: f64,
    /// Times the breaker opened in the last 24 hours.
    pub openings_24h: u32,
    pub in_flight: u32,
}

impl ReceiverStatus {
    /// A receiver this instance has nothing on.
    pub fn idle(receiver: String) -> Self {
        Self {
            receiver,
            breaker: "closed",
            open_until: None,
            recent_failures: 0,
            recent_attempts: 0,
            failure_ratio: 0.0,
            openings_24h: 0,
            in_flight: 0,
        }
    }
}

/// Delivery's view of its receivers, for the API.
pub trait ReceiverWatch: Send + Sync + 'static {
    fn endpoint_status(&self, name: &EndpointName) -> ReceiverStatus;
    /// Receivers whose breaker is open or half open.
    fn open_breakers(&self) -> Vec<ReceiverStatus>;
    /// Receivers with attempts in flight or a breaker not closed: what the
    /// metrics show per receiver.
    fn busy_receivers(&self) -> Vec<ReceiverStatus>;
    /// The endpoint changed: drop what is cached of it.
    fn forget_endpoint(&self, name: &EndpointName);
    /// The alert hook changed: drop what is cached of it.
    fn forget_alert_hook(&self, id: AlertHookId);

    /// Whether circuit breakers are shared by the cluster: `None` without
    /// Redis, `Some(false)` while Redis does not answer (each instance then
    /// pauses receivers on what it sees alone).
    fn breakers_shared(&self) -> Option<bool> {
        None
    }
}

/// A synchronous call to an endpoint, made now and answered within its
/// timeout.
#[derive(Debug, Clone)]
pub struct InvokeRequest {
    pub url: crate::TargetUrl,
    pub headers: crate::HeaderList,
    pub body: crate::Body,
    /// `webhook-id`, and how to sign.
    pub signing: Option<(String, Signing)>,
    pub timeout: Duration,
}

/// What a synchronous call came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvokeOutcome {
    /// The endpoint answered with a status below 500.
    Answered {
        status: u16,
        body: Vec<u8>,
        duration_ms: u64,
    },
    /// A timeout, a connection error or a 5xx.
    Failed {
        status: Option<u16>,
        error: String,
        duration_ms: u64,
    },
}

#[async_trait]
pub trait Invoke: Send + Sync + 'static {
    async fn invoke(&self, request: InvokeRequest) -> InvokeOutcome;
}

/// Events of delivery an operator must hear of besides failed tasks.
pub trait Notices: Send + Sync + 'static {
    /// A receiver's circuit breaker opened for `pause`. Never blocks.
    fn breaker_opened(&self, receiver: &str, pause: Duration, openings_24h: u32);
}

/// How the API hands a freshly committed task to delivery.
#[async_trait]
pub trait Dispatch: Send + Sync + 'static {
    /// The task is committed and due at `due`. Never fails: a task that
    /// cannot be handed over now waits in the store and is found again.
    async fn accepted(&self, id: TaskId, due: DateTime<Utc>);

    /// Many tasks committed together, each due at its time.
    async fn accepted_many(&self, tasks: &[(TaskId, DateTime<Utc>)]) {
        for &(id, due) in tasks {
            self.accepted(id, due).await;
        }
    }

    /// Holds a free worker for a task due now that is about to be stored,
    /// so that it can be stored already leased to that worker and delivered
    /// without a claim. `None` when every worker is busy: store the task
    /// pending and call `accepted`.
    fn reserve(&self, _timeout_ms: u32) -> Option<Box<dyn Handoff>> {
        None
    }
}

/// A worker held for one task. Dropping it unused frees the worker.
pub trait Handoff: Send {
    /// The lease to store the task under.
    fn lease(&self) -> crate::Lease;
    /// The task is committed under `lease()`: deliver it.
    fn deliver(self: Box<Self>, task: Task);
}
