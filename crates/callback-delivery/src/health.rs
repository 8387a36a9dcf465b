//! Since when an endpoint has failed every attempt, as the store keeps it
//! for disabling endpoints that fail for days, written sparingly.
//!
//! Each instance follows its own streak of failures, and writes only what
//! the store should change to:
//! - "failing since T" once its streak has lasted `STREAK`, so that a
//!   flapping receiver, which succeeds every few seconds, writes nothing;
//! - "not failing" on a success, when the store may think otherwise.
//!
//! What it last wrote is trusted for `BELIEF`, then written again if still
//! wanted (another instance may have changed it), and never more often
//! than every `GAP`. So one endpoint costs at most one write per `GAP` per
//! instance, and about one a minute when steady.

use chrono::{DateTime, TimeDelta, Utc};
use std::time::{Duration, Instant};

/// A streak of failures shorter than this is not news.
const STREAK: TimeDelta = TimeDelta::seconds(10);
/// What this instance wrote is taken to be still true this long.
const BELIEF: Duration = Duration::from_secs(60);
/// At least this long between two writes for one endpoint.
const GAP: Duration = Duration::from_secs(2);

/// What the store should be told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthWrite {
    FailingSince(DateTime<Utc>),
    Answers,
}

#[derive(Debug, Default)]
pub struct EndpointHealth {
    /// The start of this instance's current streak of failures.
    failing_since: Option<DateTime<Utc>>,
    /// What was last written (failing or not), and when.
    written: Option<(bool, Instant)>,
}

impl EndpointHealth {
    /// Notes an attempt's outcome; returns what to write, if anything.
    pub fn record(
        &mut self,
        success: bool,
        now: DateTime<Utc>,
        clock: Instant,
    ) -> Option<HealthWrite> {
        if success {
            self.failing_since = None;
        } else if self.failing_since.is_none() {
            self.failing_since = Some(now);
        }
        let wanted = match self.failing_since {
            None => HealthWrite::Answers,
            Some(since) if now - since >= STREAK => HealthWrite::FailingSince(since),
            Some(_) => return None,
        };
        let failing = matches!(wanted, HealthWrite::FailingSince(_));
        match self.written {
            Some((was, at)) if was == failing && clock.duration_since(at) < BELIEF => None,
            Some((_, at)) if clock.duration_since(at) < GAP => None,
            _ => {
                self.written = Some((failing, clock));
                Some(wanted)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flapping_receiver_writes_nothing_but_the_first_answer() {
        let mut health = EndpointHealth::default();
        let (t0, c0) = (Utc::now(), Instant::now());
        let mut writes = Vec::new();
        for s in 0..100 {
            let at = t0 + TimeDelta::seconds(s);
            let clock = c0 + Duration::from_secs(s as u64);
            writes.extend(health.record(s % 3 != 0, at, clock));
        }
        // One "answers" at the start, then once a minute at most.
        assert!(
            writes.iter().all(|w| *w == HealthWrite::Answers),
            "{writes:?}"
        );
        assert!(writes.len() <= 2, "{writes:?}");
    }

    #[test]
    fn a_long_streak_is_written_once_with_its_start_and_a_success_clears_it() {
        let mut health = EndpointHealth::default();
        let (t0, c0) = (Utc::now(), Instant::now());
        let at = |s: i64| {
            (
                t0 + TimeDelta::seconds(s),
                c0 + Duration::from_secs(s as u64),
            )
        };
        let mut writes = Vec::new();
        for s in 0..30 {
            let (now, clock) = at(s);
            writes.extend(health.record(false, now, clock));
        }
        assert_eq!(writes, vec![HealthWrite::FailingSince(t0)]);
        let (now, clock) = at(30);
        assert_eq!(health.record(true, now, clock), Some(HealthWrite::Answers));
        let (now, clock) = at(31);
        assert_eq!(health.record(true, now, clock), None, "already written");
    }

    #[test]
    fn writes_are_at_least_the_gap_apart() {
        let mut health = EndpointHealth::default();
        let (t0, c0) = (Utc::now(), Instant::now());
        assert_eq!(health.record(true, t0, c0), Some(HealthWrite::Answers));
        // A streak right after: its mark waits for the gap, not the belief.
        let late = t0 + TimeDelta::seconds(11);
        health.record(
            false,
            t0 + TimeDelta::milliseconds(500),
            c0 + Duration::from_millis(500),
        );
        assert_eq!(
            health.record(false, late, c0 + Duration::from_millis(1_000)),
            None,
            "within the gap"
        );
        assert!(matches!(
            health.record(false, late, c0 + Duration::from_secs(11)),
            Some(HealthWrite::FailingSince(_))
        ));
    }
}
