//! Retention: deletes finished tasks (with their attempts) once they are
//! older than the configured number of days, in batches, and forgets the
//! re-send counts of expired failed buckets. Off unless configured.

use callback_core::{OperatorStore, TaskStatus};
use chrono::{TimeDelta, Utc};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const PURGE_BATCH: u32 = 1000;

#[derive(Debug, Clone, Copy)]
pub struct RetentionConfig {
    /// Succeeded tasks are deleted this long after they succeeded; `None`
    /// keeps them.
    pub succeeded: Option<TimeDelta>,
    /// Failed tasks are deleted this long after they failed; `None` keeps
    /// them.
    pub failed: Option<TimeDelta>,
    /// Cancelled tasks are deleted this long after they were cancelled;
    /// `None` keeps them.
    pub cancelled: Option<TimeDelta>,
    /// Failed buckets are listed this long.
    pub buckets: TimeDelta,
    pub interval: Duration,
}

/// How long an ordering key with no task on it is kept.
const IDLE_ORDERING_KEY: chrono::TimeDelta = chrono::TimeDelta::days(1);

/// Runs a pass every `interval` until `shutdown`.
pub async fn run_retention(
    store: Arc<dyn OperatorStore>,
    config: RetentionConfig,
    shutdown: CancellationToken,
) {
    loop {
        if let Err(err) = purge_once(store.as_ref(), &config, &shutdown).await {
            tracing::warn!(error = %err, "retention pass failed; trying again later");
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(config.interval) => {}
        }
    }
}

/// One pass; returns how many tasks were deleted.
pub async fn purge_once(
    store: &dyn OperatorStore,
    config: &RetentionConfig,
    shutdown: &CancellationToken,
) -> Result<u64, callback_core::StoreError> {
    let mut deleted = 0;
    for (status, keep) in [
        (TaskStatus::Succeeded, config.succeeded),
        (TaskStatus::Failed, config.failed),
        (TaskStatus::Cancelled, config.cancelled),
    ] {
        let Some(keep) = keep else { continue };
        let before = Utc::now() - keep;
        while !shutdown.is_cancelled() {
            let n = store.purge(status, before, PURGE_BATCH).await?;
            deleted += n;
            if n < u64::from(PURGE_BATCH) {
                break;
            }
        }
    }
    store.expire_buckets(Utc::now() - config.buckets).await?;
    // A key with nothing on it costs a row; after a day idle it goes, and
    // comes back afresh with its next task.
    store
        .forget_idle_ordering_keys(Utc::now() - IDLE_ORDERING_KEY)
        .await?;
    if deleted > 0 {
        tracing::info!(deleted, "retention: old finished tasks deleted");
    }
    Ok(deleted)
}
