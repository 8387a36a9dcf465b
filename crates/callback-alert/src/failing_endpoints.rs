//! Endpoints that switch themselves off: one that has failed every attempt
//! for `endpoints.disable_after_s` (5 days, as Svix does) is disabled, and
//! the chat groups are told in the same transaction. Its new events are
//! then kept as `held` tasks until an operator enables it.

use crate::{alert_task, Alerter};
use callback_core::{ops_alert_body, AlertHook, OpsAlert, StoreError};
use chrono::{DateTime, TimeDelta, Utc};

impl Alerter {
    /// Disables the endpoints failing since before `now - disable_after`.
    /// Of several instances, the one whose conditional update disables an
    /// endpoint tells it. Returns how many it disabled.
    pub async fn check_failing_endpoints(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        let Some((endpoints, disable_after)) = &self.endpoint_watch else {
            return Ok(0);
        };
        let cutoff = now - TimeDelta::from_std(*disable_after).unwrap_or(TimeDelta::days(5));
        let failing = endpoints.failing_since_before(cutoff).await?;
        if failing.is_empty() {
            return Ok(0);
        }
        let hooks: Vec<AlertHook> = self
            .store
            .hooks()
            .await?
            .into_iter()
            .filter(AlertHook::hears_ops)
            .collect();
        let mut disabled = 0;
        for endpoint in failing {
            let since = endpoint.failing_since.unwrap_or(cutoff);
            let alert = OpsAlert {
                condition: "endpoint",
                firing: true,
                detail: format!(
                    "Endpoint **{}** ({}) has failed every attempt since {} and is now **disabled**. Its new events are kept as held tasks, none is lost; they are delivered in order once it is enabled again: `POST /api/v1/endpoints/{}/enable`.",
                    endpoint.name,
                    endpoint.url.redacted(),
                    since.format("%Y-%m-%d %H:%M UTC"),
                    endpoint.name
                ),
            };
            let messages: Vec<_> = hooks
                .iter()
                .map(|hook| alert_task(hook, ops_alert_body(hook.kind, &alert), now))
                .collect();
            if !endpoints
                .disable_failing(&endpoint.name, cutoff, now, &messages)
                .await?
            {
                continue;
            }
            disabled += 1;
            tracing::warn!(endpoint = %endpoint.name, failing_since = %since, "endpoint disabled: it failed every attempt for too long; its new events are held");
            for (hook, message) in hooks.iter().zip(&messages) {
                self.observer.alert(hook.kind.as_str(), true);
                self.dispatch.accepted(message.id, now).await;
            }
        }
        Ok(disabled)
    }
}
