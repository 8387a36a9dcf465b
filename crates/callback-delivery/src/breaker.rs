//! The circuit breaker of one receiver, as pure logic over an injected
//! clock. It opens when, within `window`, at least `failure_threshold`
//! attempts failed **and** failures make at least `failure_ratio` of the
//! attempts: a receiver that fails 2 % of 15,000 requests a second is busy,
//! not failing, and is never paused; one that fails most of them is. It
//! stays open `base_pause` times the number of openings in the last 24
//! hours, capped at `max_pause`. Once the pause is over, one trial attempt
//! decides: success closes it, failure opens it again.
//!
//! Attempts are counted in one-second buckets over the window, so memory
//! is the same at ten requests a second and at twenty thousand.

use callback_core::SlidingCounts;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

const DAY: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerConfig {
    pub failure_threshold: u32,
    /// Failures over attempts within the window, at least, to open; 0
    /// opens on the threshold alone.
    pub failure_ratio: f64,
    pub window: Duration,
    pub base_pause: Duration,
    pub max_pause: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 90,
            failure_ratio: 0.5,
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
    /// Attempts and failures over the window, in one-second slots.
    recent: SlidingCounts,
    openings: VecDeque<Instant>,
}

impl Breaker {
    pub fn new(config: BreakerConfig) -> Self {
        Self {
            config,
            state: BreakerState::Closed,
            recent: SlidingCounts::new(
                config.window,
                u32::try_from(config.window.as_secs().max(1)).unwrap_or(u32::MAX),
                Instant::now(),
            ),
            openings: VecDeque::new(),
        }
    }

    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// New limits (an endpoint's settings changed); what was counted stays.
    pub fn set_limits(&mut self, failure_threshold: u32, failure_ratio: f64) {
        self.config.failure_threshold = failure_threshold.max(1);
        self.config.failure_ratio = failure_ratio.clamp(0.0, 1.0);
    }

    pub fn config(&self) -> BreakerConfig {
        self.config
    }

    /// Failures within the window, as of `now`.
    pub fn recent_failures(&self, now: Instant) -> u64 {
        self.recent(now).1
    }

    /// Attempts and failures within the window, as of `now`.
    pub fn recent(&self, now: Instant) -> (u64, u64) {
        self.recent.totals(now)
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
                self.recent.clear();
                return Some(Transition::Closed);
            }
            return Some(self.open(now));
        }
        self.recent.add(success, now);
        if success || self.state != BreakerState::Closed {
            return None;
        }
        let (attempts, failures) = self.recent.totals(now);
        let enough = failures >= u64::from(self.config.failure_threshold);
        // attempts >= failures >= 1 here.
        let ratio = failures as f64 / attempts.max(1) as f64;
        if enough && ratio >= self.config.failure_ratio {
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
        // The counts stay, for the views to show what opened it; they are
        // out of the window long before the pause ends.
        self.state = BreakerState::Open { until: now + pause };
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

    fn run(
        b: &mut Breaker,
        attempts: u32,
        fail_every: u32,
        from: Instant,
        per_s: u32,
    ) -> Option<Transition> {
        let mut opened = None;
        for i in 0..attempts {
            let at = from + Duration::from_secs(u64::from(i / per_s));
            if let Verdict::WaitUntil(_) = b.check(at) {
                return opened;
            }
            let failed = i % fail_every == 0;
            if let Some(t) = b.record(!failed, at) {
                opened = Some(t);
            }
        }
        opened
    }

    #[test]
    fn a_busy_receiver_failing_two_percent_is_never_paused() {
        let t0 = Instant::now();
        let mut b = Breaker::new(BreakerConfig::default());
        // 15,000 a second for a minute, one in fifty failing: 300 failures
        // a second, far past the threshold, at a 2 % ratio.
        assert_eq!(run(&mut b, 900_000, 50, t0, 15_000), None);
        assert_eq!(b.state(), BreakerState::Closed);
        let later = t0 + Duration::from_secs(59);
        assert_eq!(b.recent(later), (30 * 15_000, 30 * 300));
    }

    #[test]
    fn a_receiver_failing_most_attempts_is_paused_near_the_threshold() {
        let t0 = Instant::now();
        let mut all = Breaker::new(BreakerConfig::default());
        assert!(matches!(
            run(&mut all, 200, 1, t0, 1_000),
            Some(Transition::Opened { .. })
        ));
        assert_eq!(all.recent(t0), (90, 90), "opened at the threshold");
        let mut sixty = Breaker::new(BreakerConfig::default());
        // Three of five failing: 60 %.
        let mut opened = None;
        for i in 0..1_000u32 {
            if let Verdict::WaitUntil(_) = sixty.check(t0) {
                break;
            }
            opened = sixty.record(i % 5 < 2, t0).or(opened);
        }
        assert!(
            matches!(opened, Some(Transition::Opened { .. })),
            "60 % failing is paused"
        );
    }

    #[test]
    fn a_ratio_of_zero_is_the_threshold_alone() {
        let t0 = Instant::now();
        let config = BreakerConfig {
            failure_ratio: 0.0,
            ..BreakerConfig::default()
        };
        let mut b = Breaker::new(config);
        assert!(matches!(
            run(&mut b, 10_000, 50, t0, 10_000),
            Some(Transition::Opened { .. })
        ));
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
        assert!(b.recent_failures(t0 + Duration::from_secs(199)) <= 30);
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
