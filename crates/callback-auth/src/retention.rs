//! The audit log's own retention: task retention never touches it.

use callback_core::AuditStore;
use chrono::{TimeDelta, Utc};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const PRUNE_BATCH: u32 = 1_000;

/// Deletes audit entries older than `keep` every `interval` until
/// `shutdown`. Entries are never deleted when `keep` is `None`.
pub async fn run_audit_retention(
    store: Arc<dyn AuditStore>,
    keep: Option<TimeDelta>,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let Some(keep) = keep else { return };
    loop {
        let before = Utc::now() - keep;
        let mut deleted = 0;
        loop {
            match store.prune_audit(before, PRUNE_BATCH).await {
                Ok(n) => {
                    deleted += n;
                    if n < u64::from(PRUNE_BATCH) || shutdown.is_cancelled() {
                        break;
                    }
                }
                Err(err) => {
                    tracing::warn!(error = %err, "audit retention pass failed; trying again later");
                    break;
                }
            }
        }
        if deleted > 0 {
            tracing::info!(deleted, "audit retention: old entries deleted");
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}
