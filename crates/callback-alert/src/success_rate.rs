//! The success rate alert: the share of delivery attempts that succeeded
//! over the last window, across the cluster.
//!
//! Each instance counts its own attempts in a sliding window (slots of a
//! thirtieth of the window), publishes the count to the store at each
//! check, and judges the sum of every instance's fresh count. So all
//! instances see the same rate and one of them tells a change.

use crate::Alerter;
use callback_core::lock;
use callback_core::{AttemptResult, AttemptTally, Observe, OpsAlert, SlidingCounts, StoreError};
use chrono::{DateTime, TimeDelta, Utc};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const SLOTS: u32 = 30;

/// When the success rate alert fires.
#[derive(Debug, Clone, Copy)]
pub struct SuccessRateRule {
    /// Fires below this share of successful attempts (0 to 1).
    pub below: f64,
    /// Over this long.
    pub window: Duration,
    /// With fewer attempts in the window the rate says too little to
    /// judge: nothing is told either way.
    pub min_attempts: u64,
}

impl SuccessRateRule {
    /// Whether the rate fires, given whether it did. It clears only
    /// halfway back from the threshold to 100%, so a rate that hovers at
    /// the threshold is one alert, not one a check.
    pub fn firing(&self, rate: f64, was_firing: bool) -> bool {
        if was_firing {
            rate < self.below + (1.0 - self.below) / 2.0
        } else {
            rate < self.below
        }
    }
}

/// This instance's attempts in a sliding window. The alerter's observer:
/// the delivery engine tells it of every attempt.
pub struct AttemptWindow {
    counts: Mutex<SlidingCounts>,
}

impl AttemptWindow {
    pub fn new(window: Duration) -> Self {
        Self {
            counts: Mutex::new(SlidingCounts::new(window, SLOTS, Instant::now())),
        }
    }

    /// Counts one attempt's result; a deferral is no attempt.
    pub fn count_at(&self, result: AttemptResult, at: Instant) {
        let mut tally = AttemptTally::default();
        tally.count(result);
        if tally.attempts() > 0 {
            lock(&self.counts).add(tally.failed == 0, at);
        }
    }

    /// The attempts counted within the window ending at `at`.
    pub fn tally_at(&self, at: Instant) -> AttemptTally {
        let (attempts, failed) = lock(&self.counts).totals(at);
        AttemptTally {
            succeeded: attempts - failed,
            failed,
        }
    }
}

impl Observe for AttemptWindow {
    fn attempt(&self, receiver: &str, result: AttemptResult, _duration: Duration) {
        // Alert messages are not deliveries: a failing robot must not make
        // the rate look bad, and then tell the failing robot.
        if !receiver.starts_with("alert:") {
            self.count_at(result, Instant::now());
        }
    }
}

impl Alerter {
    /// The success rate alert: told to every enabled hook without an
    /// application filter when, over the window, fewer attempts than
    /// `below` succeeded across the cluster, repeated while it lasts, and
    /// once when it clears. Returns whether a message was queued.
    pub async fn check_success_rate(&self, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let Some(rule) = self.config.success_rate else {
            return Ok(false);
        };
        // A count older than three checks is of an instance that stopped.
        let fresh = TimeDelta::from_std(self.config.check_interval * 3 + Duration::from_secs(1))
            .unwrap_or(TimeDelta::seconds(30));
        let mine = self.attempts.tally_at(Instant::now());
        let cluster = self
            .store
            .share_tally(&self.instance, mine, now, now - fresh)
            .await?;
        if cluster.attempts() < rule.min_attempts {
            return Ok(false);
        }
        let rate = cluster.success_rate().unwrap_or(1.0);
        let was_firing = self.store.ops_alert_firing("success_rate").await?;
        let firing = rule.firing(rate, was_firing);
        let minutes = rule.window.as_secs().div_ceil(60);
        let detail = if firing {
            format!(
                "Only **{:.1}%** of delivery attempts succeeded over the last {minutes} min ({} of {}; threshold {:.1}%). See which receivers fail: `callback_delivery_attempts_total` by receiver, or the failed tasks.",
                rate * 100.0,
                cluster.succeeded,
                cluster.attempts(),
                rule.below * 100.0
            )
        } else {
            format!(
                "{:.1}% of delivery attempts succeeded over the last {minutes} min ({} of {}).",
                rate * 100.0,
                cluster.succeeded,
                cluster.attempts()
            )
        };
        self.tell(
            OpsAlert {
                condition: "success_rate",
                firing,
                detail,
            },
            was_firing,
            now,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_counts_attempts_and_forgets_them_once_they_are_older_than_it() {
        let start = Instant::now();
        let window = AttemptWindow::new(Duration::from_secs(30));
        window.count_at(AttemptResult::Success, start);
        window.count_at(AttemptResult::Timeout, start + Duration::from_secs(10));
        window.count_at(
            AttemptResult::DeferredBreaker,
            start + Duration::from_secs(10),
        );
        window.count_at(
            AttemptResult::UnexpectedAnswer,
            start + Duration::from_secs(20),
        );
        assert_eq!(
            window.tally_at(start + Duration::from_secs(20)),
            AttemptTally {
                succeeded: 1,
                failed: 2
            }
        );
        // 35 s on, the first 5 s of slots have left the 30 s window.
        assert_eq!(
            window.tally_at(start + Duration::from_secs(35)),
            AttemptTally {
                succeeded: 0,
                failed: 2
            }
        );
        // A slot reused a window later starts from nothing.
        window.count_at(AttemptResult::Success, start + Duration::from_secs(60));
        assert_eq!(
            window.tally_at(start + Duration::from_secs(60)),
            AttemptTally {
                succeeded: 1,
                failed: 0
            }
        );
    }

    #[test]
    fn the_rule_fires_below_the_threshold_and_clears_halfway_back_to_all() {
        let rule = SuccessRateRule {
            below: 0.9,
            window: Duration::from_secs(300),
            min_attempts: 10,
        };
        assert!(rule.firing(0.89, false));
        assert!(!rule.firing(0.9, false));
        assert!(rule.firing(0.94, true));
        assert!(!rule.firing(0.95, true));
    }

    #[test]
    fn alert_messages_are_not_counted_as_deliveries() {
        let window = AttemptWindow::new(Duration::from_secs(30));
        window.attempt("alert:dingtalk", AttemptResult::Timeout, Duration::ZERO);
        window.attempt("shop.example", AttemptResult::Success, Duration::ZERO);
        assert_eq!(
            window.tally_at(Instant::now()),
            AttemptTally {
                succeeded: 1,
                failed: 0
            }
        );
    }
}
