//! The circuit breaker of one receiver, as pure logic over an injected
//! clock: `failure_threshold` failed attempts within `window` open it for
//! `base_pause` times the number of openings in the last 24 hours, capped at
//! `max_pause`. Once the pause is over, one trial attempt decides: success
//! closes it, failure opens it again.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

const DAY: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    pub failure_threshold: u32,
    pub window: Duration,
    pub base_pause: Duration,
    pub max_pause: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 90,
            window: Duration::from_secs(30),
            base_pause: Duration::from_secs(300),
            max_pause: Duration::from_secs(1500),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    /// No attempt until `until`.
    Open {
        until: Instant,
    },
    /// The pause is over; one trial attempt is in flight or may start.
    HalfOpen {
        trial_in_flight: bool,
    },
}

/// What the breaker says about starting an attempt now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// Put the task off until then.
    WaitUntil(Instant),
}

/// A change worth logging (and alerting on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Opened { pause: Duration, openings_24h: u32 },
    Closed,
}

#[derive(Debug, Clone)]
pub struct Breaker {
    config: BreakerConfig,
    state: BreakerState,
    failures: VecDeque<Instant>,
    openings: VecDeque<Instant>,
}

impl Breaker {
    pub fn new(config: BreakerConfig) -> Self {
        Self {
            config,
            state: BreakerState::Closed,
            failures: VecDeque::new(),
            openings: VecDeque::new(),
        }
    }

    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// Failures within the window, as of `now`.
    pub fn recent_failures(&self, now: Instant) -> usize {
        self.failures
            .iter()
            .filter(|t| now.saturating_duration_since(**t) <= self.config.window)
            .count()
    }

    pub fn openings_24h(&self, now: Instant) -> usize {
        self.openings
            .iter()
            .filter(|t| now.saturating_duration_since(**t) <= DAY)
            .count()
    }

    /// Nothing to remember: closed with no failure in the window.
    pub fn is_idle(&self, now: Instant) -> bool {
        self.state == BreakerState::Closed
            && self.recent_failures(now) == 0
            && self.openings_24h(now) == 0
    }

    /// May an attempt start now? A half-open breaker lets exactly one
    /// trial through.
    pub fn check(&mut self, now: Instant) -> Verdict {
        match self.state {
            BreakerState::Closed => Verdict::Allow,
            BreakerState::Open { until } if now < until => Verdict::WaitUntil(until),
            BreakerState::Open { .. }
            | BreakerState::HalfOpen {
                trial_in_flight: false,
            } => {
                self.state = BreakerState::HalfOpen {
                    trial_in_flight: true,
                };
                Verdict::Allow
            }
            // Others wait a little for the trial's verdict.
            BreakerState::HalfOpen {
                trial_in_flight: true,
            } => Verdict::WaitUntil(now + Duration::from_secs(5)),
        }
    }

    /// The outcome of an attempt that `check` allowed.
    pub fn record(&mut self, success: bool, now: Instant) -> Option<Transition> {
        if let BreakerState::HalfOpen { .. } = self.state {
            if success {
                self.state = BreakerState::Closed;
                self.failures.clear();
                return Some(Transition::Closed);
            }
            return Some(self.open(now));
        }
        if success {
            return None;
        }
        self.failures.push_back(now);
        while self
            .failures
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) > self.config.window)
        {
            self.failures.pop_front();
        }
        if self.state == BreakerState::Closed
            && self.failures.len() >= self.config.failure_threshold as usize
        {
            return Some(self.open(now));
        }
        None
    }

    fn open(&mut self, now: Instant) -> Transition {
        while self
            .openings
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) > DAY)
        {
            self.openings.pop_front();
        }
        self.openings.push_back(now);
        let openings = u32::try_from(self.openings.len()).unwrap_or(u32::MAX);
        let pause = self
            .config
            .base_pause
            .saturating_mul(openings)
            .min(self.config.max_pause);
        self.state = BreakerState::Open { until: now + pause };
        self.failures.clear();
        Transition::Opened {
            pause,
            openings_24h: openings,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fail_n(b: &mut Breaker, n: u32, at: Instant) -> Option<Transition> {
        let mut last = None;
        for _ in 0..n {
            assert_eq!(b.check(at), Verdict::Allow);
            last = b.record(false, at).or(last);
        }
        last
    }

    #[test]
    fn ninety_failures_within_thirty_seconds_open_it_for_five_minutes() {
        let t0 = Instant::now();
        let mut b = Breaker::new(BreakerConfig::default());
        assert_eq!(fail_n(&mut b, 89, t0), None);
        assert_eq!(b.state(), BreakerState::Closed);
        let opened = fail_n(&mut b, 1, t0 + Duration::from_secs(10));
        assert_eq!(
            opened,
            Some(Transition::Opened {
                pause: Duration::from_secs(300),
                openings_24h: 1
            })
        );
        let until = t0 + Duration::from_secs(310);
        assert_eq!(
            b.check(t0 + Duration::from_secs(60)),
            Verdict::WaitUntil(until)
        );
    }

    #[test]
    fn failures_spread_wider_than_the_window_do_not_open_it() {
        let t0 = Instant::now();
        let mut b = Breaker::new(BreakerConfig::default());
        for i in 0..200u64 {
            assert_eq!(b.check(t0), Verdict::Allow);
            assert_eq!(b.record(false, t0 + Duration::from_secs(i)), None);
        }
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.recent_failures(t0 + Duration::from_secs(199)) <= 31);
    }

    #[test]
    fn one_trial_after_the_pause_decides() {
        let t0 = Instant::now();
        let mut b = Breaker::new(BreakerConfig::default());
        fail_n(&mut b, 90, t0);
        let after = t0 + Duration::from_secs(301);
        assert_eq!(b.check(after), Verdict::Allow, "the trial");
        assert!(
            matches!(b.check(after), Verdict::WaitUntil(_)),
            "only one trial"
        );
        assert_eq!(b.record(true, after), Some(Transition::Closed));
        assert_eq!(b.check(after), Verdict::Allow);
    }

    #[test]
    fn pauses_grow_with_openings_in_a_day_up_to_twenty_five_minutes() {
        let mut now = Instant::now();
        let mut b = Breaker::new(BreakerConfig::default());
        let mut pauses = Vec::new();
        fail_n(&mut b, 90, now);
        for _ in 0..6 {
            let BreakerState::Open { until } = b.state() else {
                panic!("open")
            };
            now = until;
            assert_eq!(b.check(now), Verdict::Allow);
            match b.record(false, now) {
                Some(Transition::Opened { pause, .. }) => pauses.push(pause.as_secs() / 60),
                other => panic!("a failed trial reopens, got {other:?}"),
            }
        }
        assert_eq!(pauses, [10, 15, 20, 25, 25, 25]);
    }
}
