//! The delivery engine, written only against the ports of `callback-core`.
//!
//! Flow: a task due now that finds a free worker is stored already leased
//! to it and handed over directly (`Dispatch::reserve`); any other committed
//! task offers its id to a bounded channel; a delay queue offers retries and
//! delayed tasks when due; a reconciler scans the store for due tasks nobody
//! holds (overflow, crashes, lost queue entries). The dispatcher takes ids
//! from the channel and claims each in the store with a lease (the store
//! groups concurrent claims), the receiver's gate admits it or lets it wait
//! for a slot, and the attempt and the next step are recorded in one
//! transaction (grouped too). The channel and the waiting room are bounded
//! and offers never wait, so a backlog of any size waits in the store, not
//! in memory.

mod breaker;
mod engine;
mod health;
mod outcome;
mod pace;
mod receivers;
mod resolver;
mod retention;
mod sender;
mod work;

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
    #[error("the user agent is not a valid header value")]
    UserAgent(#[source] reqwest::header::InvalidHeaderValue),
    #[error("delivery.extra_ca_file {}: {why}", path.display())]
    CaFile {
        path: std::path::PathBuf,
        why: String,
    },
    #[error("could not set up TLS")]
    Tls(#[source] rustls::Error),
}
