//! Endpoints that switch themselves off: one that has failed every attempt
//! for `endpoints.disable_after_s` (5 days, as Svix does) is disabled, and
//! the chat groups are told in the same transaction. Its new events are
//! then kept as `held` tasks until an operator enables it.

use crate::Alerter;
use callback_core::{OpsAlert, StoreError};
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
            let (hooks, messages) = self.ops_messages(&alert, now).await?;
            if !endpoints
                .disable_failing(&endpoint.name, cutoff, now, &messages)
                .await?
            {
                continue;
            }
            disabled += 1;
            tracing::warn!(endpoint = %endpoint.name, failing_since = %since, "endpoint disabled: it failed every attempt for too long; its new events are held");
            self.hand_over(&hooks, &messages, now).await;
        }
        Ok(disabled)
    }
}
