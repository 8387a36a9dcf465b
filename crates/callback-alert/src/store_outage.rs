//! The store outage alert. While the store does not answer, no alert task
//! can be stored, so this one message goes straight to the hooks last read
//! from the store; of several instances, the one that sets a Redis flag
//! tells it (without Redis each instance does: better twice than never).
//! Its recovery is stored and delivered like every other alert, once the
//! store answers again.

use crate::Alerter;
use callback_core::lock;
use callback_core::{
    ops_alert_body, robot_accepted, AlertHook, Invoke, InvokeOutcome, KeyValue, OpsAlert,
};
use chrono::{DateTime, TimeDelta, Utc};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How the alerter reaches the hooks without the store.
pub struct DirectSend {
    pub invoker: Arc<dyn Invoke>,
    /// Redis, for the flags by which one instance tells; `None`: each does.
    pub flags: Option<Arc<dyn KeyValue>>,
    /// Prefix of the flags' keys, shared by the instances of one cluster.
    pub flag_prefix: String,
}

impl DirectSend {
    /// Whether this instance is the one to tell `what` now; the flag holds
    /// for `ttl`, so it is told again once that long has passed.
    async fn claim(&self, what: &str, ttl: Duration) -> bool {
        let Some(flags) = &self.flags else {
            return true;
        };
        let key = format!("{}:ops:{what}", self.flag_prefix);
        match flags.set_nx(&key, "1", ttl).await {
            Ok(claimed) => claimed,
            Err(err) => {
                tracing::warn!(error = %err, "Redis does not answer either; telling of the store without asking the other instances");
                true
            }
        }
    }

    async fn release(&self, what: &str) {
        if let Some(flags) = &self.flags {
            let key = format!("{}:ops:{what}", self.flag_prefix);
            if let Err(err) = flags.del(&key).await {
                tracing::debug!(error = %err, "could not drop the flag {key}");
            }
        }
    }
}

/// What this instance has seen of the store.
#[derive(Default)]
pub(crate) struct StoreWatch {
    down_since: Option<Instant>,
    /// The outage lasted long enough to be told (by this instance or
    /// another): its end is news.
    told: bool,
    /// The hooks that hear operational alerts, as last read.
    hooks: Vec<AlertHook>,
}

impl Alerter {
    /// Asks the store for the hooks; after `outage_after` without an
    /// answer, tells the hooks last seen directly, and once it answers
    /// again, stores the recovery message. Returns whether a message was
    /// sent or queued.
    pub async fn check_store(&self, now: DateTime<Utc>) -> bool {
        let (Some(outage_after), Some(direct)) = (self.config.outage_after, &self.direct) else {
            return false;
        };
        let answer = tokio::time::timeout(Duration::from_secs(5), self.store.hooks()).await;
        if let Ok(Ok(hooks)) = answer {
            let was_told = {
                let mut watch = lock(&self.store_watch);
                watch.down_since = None;
                watch.hooks = hooks.into_iter().filter(AlertHook::hears_ops).collect();
                std::mem::take(&mut watch.told)
            };
            return was_told && self.tell_store_recovered(direct, outage_after, now).await;
        }
        let (down_for, hooks) = {
            let mut watch = lock(&self.store_watch);
            let down_for = watch.down_since.get_or_insert_with(Instant::now).elapsed();
            if down_for >= outage_after {
                watch.told = true;
            }
            (down_for, watch.hooks.clone())
        };
        if down_for < outage_after || !direct.claim("store-down", self.config.ops_repeat).await {
            return false;
        }
        let alert = OpsAlert {
            condition: "store",
            firing: true,
            detail: format!(
                "The store has not answered for **{} s**. Intake answers 503, so clients keep what they could not hand over, and nothing accepted is lost; delivery waits until the store answers. Check the database.",
                down_for.as_secs()
            ),
        };
        tracing::warn!(condition = alert.condition, detail = %alert.detail, hooks = hooks.len(), "operational alert told directly");
        for hook in &hooks {
            let request = hook.direct_request(
                ops_alert_body(hook.kind, &alert),
                format!("ops_{}", uuid::Uuid::now_v7().simple()),
            );
            let delivered = match direct.invoker.invoke(request).await {
                InvokeOutcome::Answered { status, body, .. } => {
                    robot_accepted(hook.kind, status, &body)
                }
                InvokeOutcome::Failed { error, .. } => Err(error),
            };
            if let Err(error) = &delivered {
                tracing::warn!(hook = %hook.id, error = %error, "could not tell the hook that the store is down");
            }
            self.observer.alert(hook.kind.as_str(), delivered.is_ok());
        }
        true
    }

    /// The store answers again after an outage that was told: one
    /// instance (the one that sets the flag) records the outage and queues
    /// its recovery like any operational alert.
    async fn tell_store_recovered(
        &self,
        direct: &DirectSend,
        outage_after: Duration,
        now: DateTime<Utc>,
    ) -> bool {
        // The other instances notice within a few checks; a new outage is
        // told no sooner than `outage_after` from now.
        let hold = outage_after.max(self.config.check_interval * 3);
        if !direct.claim("store-up", hold).await {
            return false;
        }
        direct.release("store-down").await;
        let repeat = TimeDelta::from_std(self.config.ops_repeat).unwrap_or(TimeDelta::minutes(10));
        let recovery = async {
            self.store
                .claim_ops_alert("store", true, now, repeat, &[])
                .await?;
            self.tell(
                OpsAlert {
                    condition: "store",
                    firing: false,
                    detail: "The store answers again: intake and delivery go on.".to_string(),
                },
                true,
                now,
            )
            .await
        };
        match recovery.await {
            Ok(told) => told,
            Err(err) => {
                tracing::warn!(error = %err, "could not queue the store's recovery message");
                false
            }
        }
    }
}
