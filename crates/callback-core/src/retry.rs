//! The retry schedule and the decision taken after each attempt. Pure
//! functions of their inputs (the clock and the jitter are passed in), so the
//! whole policy is unit-tested without waiting.

use chrono::{DateTime, TimeDelta, Utc};
use std::time::Duration;

/// Seconds to wait before each retry; the last one repeats when a task has
/// more retries than the schedule has entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySchedule(Vec<u32>);

impl RetrySchedule {
    /// 2, 10, 30, 60, 120, 360, 360, 600, 900, 900 minutes: ten retries over
    /// about two and a half days.
    pub const DEFAULT_S: [u32; 10] = [
        120, 600, 1_800, 3_600, 7_200, 21_600, 21_600, 36_000, 54_000, 54_000,
    ];
    /// No single wait longer than 30 days.
    pub const MAX_DELAY_S: u32 = 30 * 24 * 3600;
    pub const MAX_ENTRIES: usize = 100;

    pub fn parse(delays_s: Vec<u32>) -> Result<Self, String> {
        if delays_s.is_empty() {
            return Err("must list at least one delay".into());
        }
        if delays_s.len() > Self::MAX_ENTRIES {
            return Err(format!("must list at most {} delays", Self::MAX_ENTRIES));
        }
        if let Some(bad) = delays_s.iter().find(|d| **d > Self::MAX_DELAY_S) {
            return Err(format!(
                "{bad} s is longer than the maximum of {} s",
                Self::MAX_DELAY_S
            ));
        }
        Ok(Self(delays_s))
    }

    pub fn as_slice(&self) -> &[u32] {
        &self.0
    }

    /// The wait after the `failed`-th failed attempt (1-based).
    pub fn delay_after(&self, failed: u32) -> Duration {
        let index = (failed.max(1) as usize - 1).min(self.0.len() - 1);
        Duration::from_secs(u64::from(self.0[index]))
    }
}

impl Default for RetrySchedule {
    fn default() -> Self {
        Self(Self::DEFAULT_S.to_vec())
    }
}

/// What happens to a task after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    Succeeded,
    RetryAt(DateTime<Utc>),
    /// Every attempt is used up.
    Failed,
}

/// The facts about one finished attempt that decide the next step.
#[derive(Debug, Clone, Copy)]
pub struct AttemptFacts {
    pub success: bool,
    /// Attempts used since the task was last (re-)sent, this one included.
    pub attempts_used: u32,
    pub max_attempts: u32,
    /// A `Retry-After` the receiver sent with a 429 or 503.
    pub retry_after: Option<Duration>,
}

/// Decides the next step. `jitter` is a fraction in `[0, 1)` of the delay
/// added to spread retries of many tasks that failed together.
pub fn decide(
    facts: AttemptFacts,
    schedule: &RetrySchedule,
    jitter: f64,
    now: DateTime<Utc>,
) -> Disposition {
    if facts.success {
        return Disposition::Succeeded;
    }
    if facts.attempts_used >= facts.max_attempts {
        return Disposition::Failed;
    }
    let scheduled = schedule
        .delay_after(facts.attempts_used)
        .mul_f64(1.0 + jitter.clamp(0.0, 1.0));
    let delay = match facts.retry_after {
        Some(asked) if asked > scheduled => {
            asked.min(Duration::from_secs(u64::from(RetrySchedule::MAX_DELAY_S)))
        }
        _ => scheduled,
    };
    let delta = TimeDelta::from_std(delay).unwrap_or(TimeDelta::MAX);
    Disposition::RetryAt(
        now.checked_add_signed(delta)
            .unwrap_or(DateTime::<Utc>::MAX_UTC),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(success: bool, used: u32, max: u32) -> AttemptFacts {
        AttemptFacts {
            success,
            attempts_used: used,
            max_attempts: max,
            retry_after: None,
        }
    }

    #[test]
    fn default_schedule_is_ten_retries_over_about_two_and_a_half_days() {
        let schedule = RetrySchedule::default();
        let minutes: Vec<u64> = (1..=10)
            .map(|n| schedule.delay_after(n).as_secs() / 60)
            .collect();
        assert_eq!(minutes, [2, 10, 30, 60, 120, 360, 360, 600, 900, 900]);
        let total_h: u64 = minutes.iter().sum::<u64>() / 60;
        assert_eq!(total_h, 55);
    }

    #[test]
    fn last_delay_repeats_when_schedule_is_shorter_than_the_retries() {
        let schedule = RetrySchedule::parse(vec![1, 5]).unwrap();
        assert_eq!(schedule.delay_after(1), Duration::from_secs(1));
        assert_eq!(schedule.delay_after(2), Duration::from_secs(5));
        assert_eq!(schedule.delay_after(7), Duration::from_secs(5));
    }

    #[test]
    fn schedule_rejects_empty_and_absurd_values() {
        assert!(RetrySchedule::parse(vec![]).is_err());
        assert!(RetrySchedule::parse(vec![RetrySchedule::MAX_DELAY_S + 1]).is_err());
        assert!(RetrySchedule::parse(vec![0; 101]).is_err());
    }

    #[test]
    fn success_ends_the_task_and_exhaustion_fails_it() {
        let now = Utc::now();
        let s = RetrySchedule::default();
        assert_eq!(
            decide(facts(true, 3, 3), &s, 0.0, now),
            Disposition::Succeeded
        );
        assert_eq!(
            decide(facts(false, 3, 3), &s, 0.0, now),
            Disposition::Failed
        );
        assert_eq!(
            decide(facts(false, 1, 3), &s, 0.0, now),
            Disposition::RetryAt(now + TimeDelta::minutes(2))
        );
    }

    #[test]
    fn jitter_only_ever_delays() {
        let now = Utc::now();
        let s = RetrySchedule::parse(vec![100]).unwrap();
        let Disposition::RetryAt(at) = decide(facts(false, 1, 5), &s, 0.1, now) else {
            panic!("expected a retry");
        };
        assert_eq!(at - now, TimeDelta::seconds(110));
    }

    #[test]
    fn retry_after_is_honoured_only_when_later_than_the_schedule() {
        let now = Utc::now();
        let s = RetrySchedule::parse(vec![60]).unwrap();
        let mut f = facts(false, 1, 5);
        f.retry_after = Some(Duration::from_secs(600));
        assert_eq!(
            decide(f, &s, 0.0, now),
            Disposition::RetryAt(now + TimeDelta::seconds(600))
        );
        f.retry_after = Some(Duration::from_secs(5));
        assert_eq!(
            decide(f, &s, 0.0, now),
            Disposition::RetryAt(now + TimeDelta::seconds(60))
        );
    }
}
