//! The delivery engine, written only against the ports of `callback-core`.
//!
//! Flow: intake commits a task and offers its id to a bounded channel; a
//! delay queue offers retries and delayed tasks when due; a reconciler scans
//! the store for due tasks nobody holds (overflow, crashes, lost queue
//! entries). The dispatcher takes ids from the channel, claims each in the
//! store with a lease, sends it, and records the attempt and the next step
//! in one transaction. The channel is bounded and offers never wait, so a
//! backlog of any size waits in the store, not in memory.

mod breaker;
mod engine;
mod outcome;
mod receivers;
mod retention;
mod sender;

pub use breaker::BreakerConfig;
pub use engine::{Delivery, DeliveryConfig, DeliveryHandle};
pub use outcome::DeliveryOutcome;
pub use receivers::{ReceiverLimits, Receivers};
pub use retention::{purge_once, run_retention, RetentionConfig};
pub use sender::{HttpSender, SenderConfig};

/// Errors building the delivery engine.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("could not build the HTTP client")]
    Client(#[source] reqwest::Error),
}
