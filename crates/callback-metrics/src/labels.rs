//! Label values with a bound: applications and receivers are named by
//! users, and a series per name would grow without end.

use std::collections::HashSet;
use std::sync::Mutex;

/// Keeps the first `capacity` distinct values as they are; every later one
/// is `other`. The first values seen are the busiest in practice (they
/// are seen first because they are frequent), and the bound is what
/// matters: a scrape never grows past it.
pub(crate) struct Capped {
    seen: Mutex<HashSet<String>>,
    capacity: usize,
}

pub(crate) const OTHER: &str = "other";

impl Capped {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            seen: Mutex::default(),
            capacity,
        }
    }

    pub(crate) fn label(&self, value: &str) -> String {
        let mut seen = callback_core::lock(&self.seen);
        if seen.contains(value) {
            return value.to_string();
        }
        if seen.len() < self.capacity {
            seen.insert(value.to_string());
            return value.to_string();
        }
        OTHER.to_string()
    }

    /// An optional value: absent is the empty label.
    pub(crate) fn label_of(&self, value: Option<&str>) -> String {
        value.map_or_else(String::new, |v| self.label(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_past_the_capacity_are_other() {
        let capped = Capped::new(2);
        assert_eq!(capped.label("a"), "a");
        assert_eq!(capped.label("b"), "b");
        assert_eq!(capped.label("c"), OTHER);
        assert_eq!(capped.label("a"), "a");
        assert_eq!(capped.label_of(None), "");
    }
}
