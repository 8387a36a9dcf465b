//! When a busy receiver's overflow should come back. Tasks that find the
//! receiver at its cap and its waiting room full are given back to the
//! store; put off by a fixed 2 to 4 s, a backlog came back in waves, each
//! claimed and put off again, while the receiver's slots idled between
//! them. Put off at the receiver's own pace instead, the k-th such task is
//! due about when k deliveries after the waiting ones have ended: the
//! backlog comes back as fast as the receiver takes it, and a task is put
//! off about once.

use std::time::{Duration, Instant};

/// No task is put off shorter than this, so that it is not claimed again
/// before anything could have changed.
const SHORTEST: Duration = Duration::from_millis(100);
/// No task is put off longer than this by pacing: an estimate that is too
/// slow costs at most this much.
const LONGEST: Duration = Duration::from_secs(60);
/// Weight of the newest attempt in the running mean of attempt times.
const NEWEST_WEIGHT: f64 = 0.1;

#[derive(Debug, Default)]
pub(crate) struct Pace {
    /// Running mean of how long an attempt of the receiver takes, in
    /// seconds; `None` until one has ended.
    attempt_s: Option<f64>,
    /// When the task put off last is due.
    horizon: Option<Instant>,
}

impl Pace {
    /// An attempt of the receiver ended after `took`.
    pub(crate) fn ended(&mut self, took: Duration) {
        let took = took.as_secs_f64();
        self.attempt_s = Some(match self.attempt_s {
            Some(mean) => mean + NEWEST_WEIGHT * (took - mean),
            None => took,
        });
    }

    /// How long to put off a task that found no room, with `ahead` tasks
    /// waiting in memory and `slots` attempts at once: behind the waiting
    /// ones and those put off before it, one delivery time apart, between
    /// `SHORTEST` and `LONGEST`. `None` while no attempt has ended to tell
    /// the pace.
    pub(crate) fn put_off(&mut self, now: Instant, ahead: usize, slots: u32) -> Option<Duration> {
        let attempt_s = self.attempt_s?;
        let step = Duration::try_from_secs_f64(attempt_s / f64::from(slots.max(1))).ok()?;
        let behind_waiting = step
            .checked_mul(u32::try_from(ahead).unwrap_or(u32::MAX))
            .unwrap_or(LONGEST)
            .max(SHORTEST);
        let earliest = now + behind_waiting.min(LONGEST);
        let due = self
            .horizon
            .map_or(earliest, |h| h.max(earliest))
            .min(now + LONGEST);
        self.horizon = Some(due + step);
        Some(due - now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn no_pace_until_an_attempt_has_ended() {
        let mut pace = Pace::default();
        assert_eq!(pace.put_off(Instant::now(), 10, 64), None);
    }

    #[test]
    fn tasks_put_off_together_come_back_one_delivery_time_apart() {
        let mut pace = Pace::default();
        // 64 slots, 32 ms an attempt: a delivery every 0.5 ms.
        pace.ended(ms(32));
        let now = Instant::now();
        let first = pace.put_off(now, 512, 64).unwrap();
        assert_eq!(first, ms(256), "behind the 512 waiting");
        let second = pace.put_off(now, 512, 64).unwrap();
        assert_eq!(second - first, Duration::from_micros(500));
        let later: Vec<Duration> = (0..1000)
            .map(|_| pace.put_off(now, 512, 64).unwrap())
            .collect();
        assert_eq!(later[999] - first, Duration::from_micros(500) * 1001);
    }

    #[test]
    fn a_put_off_is_at_least_the_shortest_and_at_most_a_minute() {
        let mut pace = Pace::default();
        pace.ended(ms(1));
        let now = Instant::now();
        assert_eq!(pace.put_off(now, 0, 64).unwrap(), SHORTEST);
        let mut slow = Pace::default();
        slow.ended(Duration::from_secs(30));
        for _ in 0..10 {
            assert!(slow.put_off(now, 1_000, 1).unwrap() <= LONGEST);
        }
    }

    #[test]
    fn the_pace_follows_the_attempt_times() {
        let mut pace = Pace::default();
        pace.ended(ms(10));
        for _ in 0..100 {
            pace.ended(ms(50));
        }
        let now = Instant::now();
        let off = pace.put_off(now, 100, 10).unwrap();
        // About 5 ms a delivery now, behind 100 waiting.
        assert!(off > ms(490) && off <= ms(500), "{off:?}");
    }

    #[test]
    fn a_horizon_in_the_past_starts_again_behind_the_waiting_ones() {
        let mut pace = Pace::default();
        pace.ended(ms(64));
        let then = Instant::now();
        pace.put_off(then, 200, 64).unwrap();
        let later = then + Duration::from_secs(5);
        assert_eq!(pace.put_off(later, 200, 64).unwrap(), ms(200));
    }
}
