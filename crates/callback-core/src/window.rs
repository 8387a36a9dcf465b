//! Attempts and failures over a sliding window, in a fixed ring of slots:
//! what a receiver's circuit breaker and the success rate alert both
//! count. Memory is the same at ten attempts a second and at twenty
//! thousand.

use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct SlidingCounts {
    /// When slot number 0 began; a slot's number is its time since then
    /// divided by `slot_length`.
    origin: Instant,
    slot_length: Duration,
    /// Per slot: the number it holds, attempts, failures.
    slots: Vec<(u64, u32, u32)>,
}

impl SlidingCounts {
    /// A window of `window` cut into `slots` slots (at least one, each at
    /// least a millisecond long).
    pub fn new(window: Duration, slots: u32, origin: Instant) -> Self {
        let slots = slots.max(1);
        Self {
            origin,
            slot_length: (window / slots).max(Duration::from_millis(1)),
            slots: vec![(u64::MAX, 0, 0); slots as usize],
        }
    }

    fn number(&self, at: Instant) -> u64 {
        let elapsed = at.saturating_duration_since(self.origin);
        u64::try_from(elapsed.as_nanos() / self.slot_length.as_nanos()).unwrap_or(u64::MAX)
    }

    /// Counts one attempt at `at`.
    pub fn add(&mut self, success: bool, at: Instant) {
        let number = self.number(at);
        let len = self.slots.len() as u64;
        let slot = &mut self.slots[(number % len) as usize];
        if slot.0 != number {
            *slot = (number, 0, 0);
        }
        slot.1 = slot.1.saturating_add(1);
        if !success {
            slot.2 = slot.2.saturating_add(1);
        }
    }

    /// Attempts and failures of each slot of the window ending at `at`,
    /// oldest first: a slot with nothing counted (or counted too long
    /// ago) is `(0, 0)`.
    pub fn slots(&self, at: Instant) -> Vec<(u32, u32)> {
        let current = self.number(at);
        let len = self.slots.len() as u64;
        (0..len)
            .map(|back| {
                let Some(number) = current.checked_sub(len - 1 - back) else {
                    return (0, 0);
                };
                let slot = &self.slots[(number % len) as usize];
                if slot.0 == number {
                    (slot.1, slot.2)
                } else {
                    (0, 0)
                }
            })
            .collect()
    }

    /// Attempts and failures within the window ending at `at`.
    pub fn totals(&self, at: Instant) -> (u64, u64) {
        let current = self.number(at);
        let len = self.slots.len() as u64;
        self.slots
            .iter()
            .filter(|(number, _, _)| *number <= current && current - number < len)
            .fold((0, 0), |(a, f), (_, attempts, failures)| {
                (a + u64::from(*attempts), f + u64::from(*failures))
            })
    }

    pub fn clear(&mut self) {
        self.slots.fill((u64::MAX, 0, 0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_read_oldest_first_with_empty_and_aged_slots_as_zero() {
        let t0 = Instant::now();
        let minute = Duration::from_secs(60);
        let mut counts = SlidingCounts::new(minute * 4, 4, t0);
        counts.add(true, t0);
        counts.add(false, t0 + minute * 2);
        counts.add(true, t0 + minute * 2);
        // Slots 0..=2 end at minute 2; minute 3 is empty.
        assert_eq!(
            counts.slots(t0 + minute * 2),
            [(0, 0), (1, 0), (0, 0), (2, 1)]
        );
        assert_eq!(
            counts.slots(t0 + minute * 3),
            [(1, 0), (0, 0), (2, 1), (0, 0)]
        );
        // Minute 0 has left a window that ends at minute 4.
        assert_eq!(
            counts.slots(t0 + minute * 4),
            [(0, 0), (2, 1), (0, 0), (0, 0)]
        );
    }

    #[test]
    fn counts_leave_the_window_as_their_slots_age_and_a_reused_slot_starts_empty() {
        let t0 = Instant::now();
        let mut counts = SlidingCounts::new(Duration::from_secs(30), 30, t0);
        counts.add(true, t0);
        counts.add(false, t0 + Duration::from_secs(10));
        counts.add(false, t0 + Duration::from_secs(20));
        assert_eq!(counts.totals(t0 + Duration::from_secs(20)), (3, 2));
        // 35 s on, the first 5 s have left the 30 s window.
        assert_eq!(counts.totals(t0 + Duration::from_secs(35)), (2, 2));
        // The slot of second 0 is reused at second 60.
        counts.add(true, t0 + Duration::from_secs(60));
        assert_eq!(counts.totals(t0 + Duration::from_secs(60)), (1, 0));
        counts.clear();
        assert_eq!(counts.totals(t0 + Duration::from_secs(60)), (0, 0));
    }
}
